// Read-only views of the datapath maps for the debug endpoint: each map's ABI layouts, its size and
// fill, and pages of decoded entries behind an opaque cursor, over real BPF maps or in memory.

import type { BpfMap } from '../bpf/binding.ts';
import { type Decoded, decode, encode, type FieldValue, type Layout, Layouts, MapNames, sumPerCpu } from '../datapath/abi.ts';
import { backendValue, frontendKey } from '../datapath/kernel-maps.ts';
import type { MemoryMaps } from '../datapath/maps.ts';

/** A u32 key, named for what it indexes. */
function u32Key(name: string, field: string): Layout {
  return { name, size: 4, fields: [{ name: field, type: 'u32', offset: 0 }] };
}

const SOCK_COUNT: Layout = { name: 'sock_count', size: 8, fields: [{ name: 'count', type: 'u64', offset: 0 }] };

/** Key and value layout of every map the agent holds, by map name. */
export const MAP_LAYOUTS: Readonly<Record<string, { key: Layout; value: Layout }>> = {
  [MapNames.lb4Services]: { key: Layouts.lb4Key, value: Layouts.service },
  [MapNames.lb6Services]: { key: Layouts.lb6Key, value: Layouts.service },
  [MapNames.slots]: { key: Layouts.slotKey, value: Layouts.slot },
  [MapNames.lb4Backends]: { key: Layouts.backendId, value: Layouts.lb4Backend },
  [MapNames.lb6Backends]: { key: Layouts.backendId, value: Layouts.lb6Backend },
  [MapNames.lb4Reverse]: { key: Layouts.lb4ReverseKey, value: Layouts.lb4Reverse },
  [MapNames.lb6Reverse]: { key: Layouts.lb6ReverseKey, value: Layouts.lb6Reverse },
  [MapNames.serviceStats]: { key: u32Key('service_id', 'service_id'), value: Layouts.serviceStats },
  [MapNames.backendStats]: { key: u32Key('backend_id', 'backend_id'), value: Layouts.backendStats },
  [MapNames.sockStats]: { key: u32Key('sock_reason', 'reason'), value: SOCK_COUNT },
  // Entry 0 is the switch that says sockets are counted (1), not a backend.
  [MapNames.backendConns]: {
    key: u32Key('backend_id', 'backend_id'),
    value: { name: 'open_connections', size: 8, fields: [{ name: 'open', type: 'u64', offset: 0 }] },
  },
  [MapNames.backendFlows]: {
    key: u32Key('backend_id', 'backend_id'),
    value: { name: 'open_flows', size: 8, fields: [{ name: 'open', type: 'u64', offset: 0 }] },
  },
  [MapNames.affinity]: { key: Layouts.affinityKey, value: Layouts.affinity },
  // Read from user space, an array of maps gives the id of each inner map (0: none).
  [MapNames.tables]: { key: u32Key('service_id', 'service_id'), value: u32Key('table_map_id', 'map_id') },
  [MapNames.lb4Destroy]: { key: Layouts.lb4DestroyKey, value: { name: 'u8', size: 1, fields: [{ name: 'value', type: 'u8', offset: 0 }] } },
  [MapNames.lb6Destroy]: { key: Layouts.lb6DestroyKey, value: { name: 'u8', size: 1, fields: [{ name: 'value', type: 'u8', offset: 0 }] } },
  [MapNames.lb4Ct]: { key: Layouts.lb4Tuple, value: Layouts.lb4Ct },
  [MapNames.lb6Ct]: { key: Layouts.lb6Tuple, value: Layouts.lb6Ct },
  [MapNames.lb4Rnat]: { key: Layouts.lb4Tuple, value: Layouts.lb4Rnat },
  [MapNames.lb6Rnat]: { key: Layouts.lb6Tuple, value: Layouts.lb6Rnat },
  [MapNames.lb4SrcRanges]: {
    key: Layouts.lb4SrcRangeKey,
    value: { name: 'u8', size: 1, fields: [{ name: 'allowed', type: 'u8', offset: 0 }] },
  },
  [MapNames.lb6SrcRanges]: {
    key: Layouts.lb6SrcRangeKey,
    value: { name: 'u8', size: 1, fields: [{ name: 'allowed', type: 'u8', offset: 0 }] },
  },
  [MapNames.nodeConfig]: { key: u32Key('index', 'index'), value: Layouts.nodeConfig },
  [MapNames.xdpStats]: { key: u32Key('xdp_reason', 'reason'), value: SOCK_COUNT },
};

/** A layout with no fields: entries of it are shown as hex. */
function rawLayout(size: number): Layout {
  return { name: 'raw', size, fields: [] };
}

/** What the kernel says of a map without reading an entry: one BPF_OBJ_GET_INFO_BY_FD and its fdinfo. */
export interface MapInfo {
  name: string;
  /** libbpf's name of the map type: 'hash', 'lru_hash', 'percpu_array', ... */
  type: string;
  keySize: number;
  /** Per element (per CPU for per-CPU maps), as the kernel reports it. */
  valueSize: number;
  maxEntries: number;
  /** Bytes charged to the map (fdinfo memlock); undefined when the kernel does not say. */
  memoryBytes: number | undefined;
  perCpu: boolean;
  keyLayout: string;
  valueLayout: string;
}

export interface MapSummary extends MapInfo {
  /** Keys present, counted by reading the whole map. An array map always holds maxEntries. */
  entries: number;
}

export interface RawPage {
  count: number;
  /** The page's keys back to back, in the map's layout. */
  keys: Buffer;
  /** Its values back to back, count of them; a per-CPU value holds one stride-8 slot per possible CPU. */
  values: Buffer;
  /** [key, value] views into keys and values, made when first read. */
  readonly entries: [Buffer, Buffer][];
  /** Where the next page starts, or undefined when this was the last. */
  next: Buffer | undefined;
}

/**
 * A page over back-to-back keys and values. Its entries are views made on first use: a reader of
 * the raw bytes (the counter sums at each scrape) makes no object per entry.
 */
function rawPage(keys: Buffer, values: Buffer, count: number, next: Buffer | undefined): RawPage {
  let entries: [Buffer, Buffer][] | undefined;
  return {
    count,
    keys,
    values,
    next,
    get entries() {
      if (!entries) {
        const ks = count && keys.length / count;
        const vs = count && values.length / count;
        entries = Array.from({ length: count }, (_, i) => [keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs)]);
      }
      return entries;
    },
  };
}

/** One map, read-only. */
export interface MapView {
  readonly name: string;
  readonly key: Layout;
  readonly value: Layout;
  /** Type, sizes and memory; reads no entry. */
  info(): MapInfo;
  /** info() and the entries in use: walks a hash map's every bucket. */
  summary(): MapSummary;
  /**
   * Up to about `limit` entries after `cursor` (from the start when undefined). A hash map's page
   * never splits a hash bucket, so a page may hold a few fewer, or more when one bucket exceeds limit.
   * Throws a RangeError for a cursor this map could not have made.
   */
  page(cursor: Buffer | undefined, limit: number): RawPage;
}

/** A JSON-ready field value: u64s as numbers while exact, as decimal strings beyond 2^53. */
export type JsonValue = number | string;

function jsonValue(v: FieldValue): JsonValue {
  if (typeof v !== 'bigint') return v;
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

function toJson(d: Decoded | Record<string, bigint>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(d)) out[k] = jsonValue(v);
  return out;
}

export interface DecodedEntry {
  key: Record<string, JsonValue>;
  /** For a per-CPU map: the sum over CPUs of each counter. */
  value: Record<string, JsonValue>;
  /** For a per-CPU map: the value of each possible CPU, by CPU number. */
  cpus?: Record<string, JsonValue>[];
}

/** Decodes one entry by field name; per-CPU values are summed, and also listed per CPU. */
export function decodeEntry(view: MapView, perCpu: boolean, key: Buffer, value: Buffer): DecodedEntry {
  if (view.key.fields.length === 0 || view.value.fields.length === 0) {
    return { key: { hex: key.toString('hex') }, value: { hex: value.toString('hex') } };
  }
  const k = toJson(decode(view.key, key));
  if (!perCpu) return { key: k, value: toJson(decode(view.value, value)) };
  const stride = Math.ceil(view.value.size / 8) * 8;
  const cpus: Record<string, JsonValue>[] = [];
  for (let at = 0; at + view.value.size <= value.length; at += stride) {
    cpus.push(toJson(decode(view.value, value.subarray(at, at + view.value.size))));
  }
  return { key: k, value: toJson(sumPerCpu(view.value, value)), cpus };
}

/** A pinned or loaded BPF map, paged with BPF_MAP_LOOKUP_BATCH. */
export class BpfMapView implements MapView {
  readonly name: string;
  readonly key: Layout;
  readonly value: Layout;
  readonly #map: BpfMap;

  /** A map without a known layout (one newer than this code) is shown as raw bytes. */
  constructor(name: string, map: BpfMap, layouts = MAP_LAYOUTS[name]) {
    this.name = name;
    this.#map = map;
    this.key = layouts?.key ?? rawLayout(map.keySize);
    this.value = layouts?.value ?? rawLayout(map.valueSize);
  }

  info(): MapInfo {
    const info = this.#map.info();
    return {
      name: this.name,
      type: info.typeName,
      keySize: info.keySize,
      valueSize: info.valueSize,
      maxEntries: info.maxEntries,
      memoryBytes: info.memlock,
      perCpu: this.#map.perCpu,
      keyLayout: this.key.name,
      valueLayout: this.value.name,
    };
  }

  summary(): MapSummary {
    const info = this.info();
    // An array (of values or of maps) holds every index; walking lb_tables_v1's would cost a syscall each.
    return { ...info, entries: info.type.endsWith('array') || info.type === 'array_of_maps' ? info.maxEntries : this.#count() };
  }

  #count(): number {
    let n = 0;
    let cursor: Buffer | undefined;
    do {
      const page = this.#map.lookupBatch(cursor, 4096);
      n += page.count;
      cursor = page.nextCursor;
    } while (cursor);
    return n;
  }

  /**
   * The cursor is the kernel's batch cursor: a bucket index for hash maps, the last key for arrays.
   * Unlike a last-key cursor walked with get_next_key, a bucket index stays valid when that key is
   * deleted between pages (an LRU map evicts all the time), so a walk never restarts from the top.
   */
  page(cursor: Buffer | undefined, limit: number): RawPage {
    const size = Math.max(this.#map.keySize, 8);
    if (cursor && cursor.length !== size) throw new RangeError(`cursor is not one of map ${this.name}`);
    const page = this.#map.lookupBatch(cursor, limit);
    return rawPage(page.keys, page.values, page.count, page.nextCursor ? Buffer.from(page.nextCursor) : undefined);
  }
}

export interface MemoryMapInit {
  name: string;
  type: string;
  maxEntries: number;
  perCpu?: boolean;
  /** For a per-CPU map: CPUs in each value (default 1). */
  cpus?: number;
}

/** A map held in memory, in the same byte layouts, for tests of the endpoint without a kernel. */
export class MemoryMapView implements MapView {
  readonly name: string;
  readonly key: Layout;
  readonly value: Layout;
  readonly #init: MemoryMapInit;
  #entries = new Map<string, [Buffer, Buffer]>();

  constructor(init: MemoryMapInit) {
    const layouts = MAP_LAYOUTS[init.name];
    if (!layouts) throw new TypeError(`no ABI layout is known for map ${init.name}`);
    this.name = init.name;
    this.key = layouts.key;
    this.value = layouts.value;
    this.#init = init;
  }

  get #valueBytes(): number {
    return this.#init.perCpu ? (this.#init.cpus ?? 1) * Math.ceil(this.value.size / 8) * 8 : this.value.size;
  }

  set(key: Buffer, value: Buffer): void {
    if (key.length !== this.key.size || value.length !== this.#valueBytes) {
      throw new RangeError(`map ${this.name}: entry of ${key.length}/${value.length} bytes, want ${this.key.size}/${this.#valueBytes}`);
    }
    this.#entries.set(key.toString('hex'), [Buffer.from(key), Buffer.from(value)]);
  }

  clear(): void {
    this.#entries.clear();
  }

  info(): MapInfo {
    return {
      name: this.name,
      type: this.#init.type,
      keySize: this.key.size,
      valueSize: this.value.size,
      maxEntries: this.#init.maxEntries,
      memoryBytes: undefined,
      perCpu: this.#init.perCpu ?? false,
      keyLayout: this.key.name,
      valueLayout: this.value.name,
    };
  }

  summary(): MapSummary {
    // As the kernel counts them: an array holds every index, set or not (pages list only set ones).
    const entries = this.#init.type.endsWith('array') ? this.#init.maxEntries : this.#entries.size;
    return { ...this.info(), entries };
  }

  /**
   * Pages an array by index, as the kernel does, and a hash map in key byte order; the cursor is
   * the last key returned.
   */
  page(cursor: Buffer | undefined, limit: number): RawPage {
    if (cursor && cursor.length !== this.key.size) throw new RangeError(`cursor is not one of map ${this.name}`);
    const byIndex = this.#init.type.endsWith('array');
    const index = (hex: string) => Buffer.from(hex, 'hex').readUInt32LE(0);
    const after = (a: string, b: string) => (byIndex ? index(a) > index(b) : a > b);
    const sorted = [...this.#entries.keys()].sort((a, b) => (after(a, b) ? 1 : after(b, a) ? -1 : 0));
    const last = cursor?.toString('hex');
    const start = last === undefined ? 0 : sorted.findIndex((k) => after(k, last));
    const slice = start < 0 ? [] : sorted.slice(start, start + limit);
    const entries = slice.map((k) => this.#entries.get(k)!);
    const more = start >= 0 && start + limit < sorted.length;
    const keys = Buffer.concat(entries.map(([k]) => k));
    const values = Buffer.concat(entries.map(([, v]) => v));
    return rawPage(keys, values, entries.length, more ? Buffer.from(entries.at(-1)![0]) : undefined);
  }
}

/**
 * The service maps of a MemoryMaps, written out in the ABI byte layouts, so tests of the endpoint
 * decode the same bytes the kernel would hold; call refresh() after the maps change.
 */
export function memoryMapViews(maps: MemoryMaps): { views: MemoryMapView[]; refresh(): void } {
  const c = maps.capacity;
  const v = (name: string, type: string, maxEntries: number, perCpu = false) => new MemoryMapView({ name, type, maxEntries, perCpu });
  const byName = {
    lb4Services: v(MapNames.lb4Services, 'hash', c.services),
    lb6Services: v(MapNames.lb6Services, 'hash', c.services),
    slots: v(MapNames.slots, 'hash', c.slots),
    lb4Backends: v(MapNames.lb4Backends, 'hash', c.backends),
    lb6Backends: v(MapNames.lb6Backends, 'hash', c.backends),
    serviceStats: v(MapNames.serviceStats, 'array', c.serviceIds),
    backendStats: v(MapNames.backendStats, 'array', c.backendIds),
  };
  const u32 = (n: number) => encode(Layouts.backendId, { backend_id: n });
  const refresh = () => {
    for (const view of Object.values(byName)) view.clear();
    const dump = maps.dump();
    for (const { frontend, entry } of dump.services) {
      const value = encode(Layouts.service, {
        service_id: entry.serviceId,
        backend_count: entry.backendCount,
        flags: entry.flags,
        affinity_timeout: entry.affinityTimeout,
      });
      (frontend.family === 4 ? byName.lb4Services : byName.lb6Services).set(frontendKey(frontend), value);
      const counters = maps.serviceCounters(entry.serviceId);
      byName.serviceStats.set(u32(entry.serviceId), encode(Layouts.serviceStats, counters as unknown as Record<string, bigint>));
    }
    for (const s of dump.slots) {
      const key = encode(Layouts.slotKey, { service_id: s.serviceId, slot: s.slot });
      byName.slots.set(key, encode(Layouts.slot, { backend_id: s.backendId }));
    }
    for (const { id, backend } of dump.backends) {
      (backend.family === 4 ? byName.lb4Backends : byName.lb6Backends).set(u32(id), backendValue(backend));
      byName.backendStats.set(u32(id), encode(Layouts.backendStats, { connects: maps.backendConnects(id) }));
    }
  };
  refresh();
  return { views: Object.values(byName), refresh };
}
