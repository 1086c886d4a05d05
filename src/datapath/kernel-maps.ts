// DatapathMaps over the real BPF maps: encodes model values into the ABI structs.

import { BpfMap } from '../bpf/binding.ts';
import type { Backend, Family, Frontend, Protocol } from '../model/types.ts';
import {
  BackendFlags,
  BPF_F_INNER_MAP,
  decode,
  encodeInto,
  IPPROTO,
  type Layout,
  Layouts,
  MapNames,
  Scope,
  type SockMapName,
  TABLE_ELEM_SIZE,
  TABLE_SLOTS_PER_ELEM,
  u32Bytes,
  writeU32,
} from './abi.ts';
import type { FrontendFilter } from './frontend-filter.ts';
import {
  type BackendEntry,
  type Capacity,
  type DatapathMaps,
  eachUntilFailure,
  type FrontendEntry,
  type MapsDump,
  type ServiceCounters,
  type ServiceEntry,
  type SlotEntry,
} from './maps.ts';

export type ServiceMapSet = Record<SockMapName, BpfMap>;

const PROTOCOL_BY_NUMBER: Record<number, Protocol> = { [IPPROTO.TCP]: 'TCP', [IPPROTO.UDP]: 'UDP' };

export function frontendKey(f: Frontend): Buffer {
  return into(f.family === 4 ? Layouts.lb4Key : Layouts.lb6Key, f, frontendKeyInto);
}

function frontendKeyInto(f: Frontend, buf: Buffer, offset: number): void {
  const values = {
    address: f.address,
    dport: f.port,
    proto: IPPROTO[f.protocol],
    scope: f.scope === 'external' ? Scope.external : Scope.internal,
  };
  encodeInto(f.family === 4 ? Layouts.lb4Key : Layouts.lb6Key, values, buf, offset);
}

/** A struct of layout `l` encoded by `write` into a Buffer of its own (the one-entry writes). */
function into<T>(l: Layout, entry: T, write: (e: T, buf: Buffer, offset: number) => void): Buffer {
  const buf = Buffer.alloc(l.size);
  write(entry, buf, 0);
  return buf;
}

/** Every frontend in the service maps, read from their keys alone. */
export function* frontendsIn(maps: ServiceMapSet): Generator<Frontend> {
  for (const [family, name] of [
    [4, MapNames.lb4Services],
    [6, MapNames.lb6Services],
  ] as const) {
    for (const key of maps[name].keys()) {
      const frontend = frontendOf(family, key);
      if (frontend) yield frontend;
    }
  }
}

function frontendOf(family: Family, key: Buffer): Frontend | undefined {
  const k = decode(family === 4 ? Layouts.lb4Key : Layouts.lb6Key, key);
  const protocol = PROTOCOL_BY_NUMBER[Number(k.proto)];
  if (!protocol) return undefined;
  const frontend: Frontend = { family, address: String(k.address), port: Number(k.dport), protocol };
  if (Number(k.scope) === Scope.external) frontend.scope = 'external';
  return frontend;
}

export function backendValue(b: Backend): Buffer {
  return into(b.family === 4 ? Layouts.lb4Backend : Layouts.lb6Backend, b, backendValueInto);
}

function backendValueInto(b: Backend, buf: Buffer, offset: number): void {
  const values = {
    address: b.address,
    port: b.port,
    proto: IPPROTO[b.protocol],
    flags: b.local ? BackendFlags.local : 0,
    ...(b.node === undefined ? {} : { node_address: b.node }),
  };
  encodeInto(b.family === 4 ? Layouts.lb4Backend : Layouts.lb6Backend, values, buf, offset);
}

function serviceValueInto(entry: ServiceEntry, buf: Buffer, offset: number): void {
  const values = {
    service_id: entry.serviceId,
    backend_count: entry.backendCount,
    flags: entry.flags,
    affinity_timeout: entry.affinityTimeout,
    scheduler: entry.scheduler ?? 0,
  };
  encodeInto(Layouts.service, values, buf, offset);
}

function slotKeyInto(slot: SlotEntry, buf: Buffer, offset: number): void {
  encodeInto(Layouts.slotKey, { service_id: slot.serviceId, slot: slot.slot }, buf, offset);
}

function slotValueInto(slot: SlotEntry, buf: Buffer, offset: number): void {
  encodeInto(Layouts.slot, { backend_id: slot.backendId }, buf, offset);
}

/** Writes each run of entries of one family (they go to different maps) with `write`; how many leading entries went in. */
function byFamily<T>(entries: readonly T[], familyOf: (e: T) => Family, write: (family: Family, run: readonly T[]) => number): number {
  let start = 0;
  while (start < entries.length) {
    const family = familyOf(entries[start]!);
    let end = start + 1;
    while (end < entries.length && familyOf(entries[end]!) === family) end++;
    const done = write(family, start === 0 && end === entries.length ? entries : entries.slice(start, end));
    if (done < end - start) return start + done;
    start = end;
  }
  return entries.length;
}

/** What bpf_map_update_batch fails with where the kernel (or the map type) has no batch ops. */
const UNSUPPORTED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUP', 'ENOTSUPP', 'Unknown system error -524']);

/** Which counter maps an agent made empty at this start (Datapath.countersStartZero). */
export interface CountersStartZero {
  services: boolean;
  backends: boolean;
}

export class KernelMaps implements DatapathMaps {
  readonly capacity: Capacity;
  readonly #maps: ServiceMapSet;
  readonly #filter: FrontendFilter;
  /**
   * Per counter map, the id from which every entry is known to be zero: the map was made empty at
   * this start and no id from there on was handed out, or adopted from the maps by dump(). A reset
   * of such ids writes nothing (200,000 writes at a first programming of 50,000 services).
   * Infinity: nothing known.
   */
  readonly #zeroFrom: { services: number; backends: number };
  /** Cleared when the kernel has no BPF_MAP_UPDATE_BATCH for these maps (before 5.6): writes go one by one. */
  #batches = true;

  /**
   * `filter` is the datapath's (Datapath.frontendFilter): every write of a frontend keeps it.
   * `countersStartZero`: only for the one KernelMaps that programs a Datapath just opened.
   */
  constructor(maps: ServiceMapSet, capacity: Capacity, filter: FrontendFilter, countersStartZero?: CountersStartZero) {
    this.#maps = maps;
    this.capacity = capacity;
    this.#filter = filter;
    this.#zeroFrom = { services: countersStartZero?.services ? 0 : Infinity, backends: countersStartZero?.backends ? 0 : Infinity };
  }

  #services(family: Family): BpfMap {
    return family === 4 ? this.#maps[MapNames.lb4Services] : this.#maps[MapNames.lb6Services];
  }

  #backends(family: Family): BpfMap {
    return family === 4 ? this.#maps[MapNames.lb4Backends] : this.#maps[MapNames.lb6Backends];
  }

  putService(frontend: Frontend, entry: ServiceEntry): void {
    const value = into(Layouts.service, entry, serviceValueInto);
    this.#filter.add(frontend);
    try {
      this.#services(frontend.family).update(frontendKey(frontend), value);
    } catch (err) {
      if (!this.#services(frontend.family).lookup(frontendKey(frontend))) this.#filter.remove(frontend);
      throw err;
    }
  }

  deleteService(frontend: Frontend): void {
    this.#services(frontend.family).delete(frontendKey(frontend));
    this.#filter.remove(frontend);
  }

  putSlot(slot: SlotEntry): void {
    this.#maps[MapNames.slots].update(into(Layouts.slotKey, slot, slotKeyInto), into(Layouts.slot, slot, slotValueInto));
  }

  deleteSlot(serviceId: number, slot: number): void {
    this.#maps[MapNames.slots].delete(into(Layouts.slotKey, { serviceId, slot, backendId: 0 }, slotKeyInto));
  }

  putBackend(id: number, backend: Backend): void {
    this.#backends(backend.family).update(u32Bytes(id), backendValue(backend));
  }

  deleteBackend(id: number, family: Family): void {
    this.#backends(family).delete(u32Bytes(id));
  }

  putTable(serviceId: number, slots: Uint16Array): void {
    const elements = 1 + Math.ceil(slots.length / TABLE_SLOTS_PER_ELEM);
    // Element 0 the length, then the slots packed four to an element, all in host order.
    const values = Buffer.alloc(elements * TABLE_ELEM_SIZE);
    new Uint32Array(values.buffer, values.byteOffset, 1)[0] = slots.length;
    new Uint16Array(values.buffer, values.byteOffset + TABLE_ELEM_SIZE, slots.length).set(slots);
    const keys = Buffer.from(Uint32Array.from({ length: elements }, (_, i) => i).buffer);
    const table = BpfMap.create({
      type: 'array',
      keySize: 4,
      valueSize: TABLE_ELEM_SIZE,
      maxEntries: elements,
      flags: BPF_F_INNER_MAP,
      name: 'lb_table',
    });
    try {
      table.updateBatch(keys, values);
      // The swap: programs that looked up the old table finish with it; the next lookup finds this one.
      this.#maps[MapNames.tables].update(u32Bytes(serviceId), u32Bytes(table.fd));
    } finally {
      table.close();
    }
  }

  deleteTable(serviceId: number): void {
    this.#maps[MapNames.tables].delete(u32Bytes(serviceId));
  }

  resetServiceCounters(serviceId: number): void {
    if (this.#knownZero('services', [serviceId])) return;
    this.#maps[MapNames.serviceStats].update(u32Bytes(serviceId), Buffer.alloc(Layouts.serviceStats.size));
  }

  resetBackendCounters(backendId: number): void {
    if (this.#knownZero('backends', [backendId])) return;
    this.#maps[MapNames.backendStats].update(u32Bytes(backendId), Buffer.alloc(Layouts.backendStats.size));
  }

  /** Whether every one of these ids' counters is zero; they are handed out from here on, so the mark passes them. */
  #knownZero(counters: keyof CountersStartZero, ids: readonly number[]): boolean {
    const from = this.#zeroFrom[counters];
    let all = true;
    let highest = -1;
    for (const id of ids) {
      if (id < from) all = false;
      if (id > highest) highest = id;
    }
    this.#zeroFrom[counters] = Math.max(from, highest + 1);
    return all;
  }

  serviceCounters(serviceId: number): ServiceCounters {
    const raw = this.#maps[MapNames.serviceStats].lookup(u32Bytes(serviceId));
    if (!raw) return { connects: 0n, refused: 0n };
    const counters = decode(Layouts.serviceStats, raw);
    return { connects: BigInt(counters.connects!), refused: BigInt(counters.refused!) };
  }

  backendConnects(backendId: number): bigint {
    const raw = this.#maps[MapNames.backendStats].lookup(u32Bytes(backendId));
    return raw ? BigInt(decode(Layouts.backendStats, raw).connects!) : 0n;
  }

  putBackends(entries: readonly BackendEntry[]): number {
    return byFamily(
      entries,
      (e) => e.backend.family,
      (family, run) =>
        this.#write(
          run,
          (batch) =>
            this.#putBatch(this.#backends(family), batch, (e, keys, keyAt, values, valueAt) => {
              writeU32(keys, keyAt, e.id);
              backendValueInto(e.backend, values, valueAt);
            }),
          (e) => this.putBackend(e.id, e.backend),
        ),
    );
  }

  putSlots(slots: readonly SlotEntry[]): number {
    const map = this.#maps[MapNames.slots];
    return this.#write(
      slots,
      (batch) =>
        this.#putBatch(map, batch, (s, keys, keyAt, values, valueAt) => {
          slotKeyInto(s, keys, keyAt);
          slotValueInto(s, values, valueAt);
        }),
      (s) => this.putSlot(s),
    );
  }

  putServices(entries: readonly FrontendEntry[]): number {
    return byFamily(
      entries,
      (e) => e.frontend.family,
      (family, run) =>
        this.#write(
          run,
          (batch) => this.#putServiceBatch(family, batch),
          (e) => this.putService(e.frontend, e.entry),
        ),
    );
  }

  resetServiceCountersBatch(serviceIds: readonly number[]): number {
    if (this.#knownZero('services', serviceIds)) return serviceIds.length;
    return this.#resetBatch(this.#maps[MapNames.serviceStats], serviceIds, (id) => this.resetServiceCounters(id));
  }

  resetBackendCountersBatch(backendIds: readonly number[]): number {
    if (this.#knownZero('backends', backendIds)) return backendIds.length;
    return this.#resetBatch(this.#maps[MapNames.backendStats], backendIds, (id) => this.resetBackendCounters(id));
  }

  #resetBatch(counters: BpfMap, ids: readonly number[], one: (id: number) => void): number {
    // The values stay as #putBatch allocates them: zero.
    return this.#write(ids, (batch) => this.#putBatch(counters, batch, (id, keys, keyAt) => writeU32(keys, keyAt, id)), one);
  }

  /** Writes by `batch`, or one by one with `one` where the kernel has no batches; how many leading entries went in. */
  #write<T>(entries: readonly T[], batch: (entries: readonly T[]) => number, one: (e: T) => void): number {
    const done = this.#batches ? batch(entries) : 0;
    // A kernel without batches has written none of them (and turned batches off).
    return this.#batches ? done : eachUntilFailure(entries, one);
  }

  #putServiceBatch(family: Family, entries: readonly FrontendEntry[]): number {
    // As in putService: the filter holds a frontend before its entry is in, and only frontends whose entry is.
    this.#filter.addAll(entries.map((e) => e.frontend));
    const map = this.#services(family);
    const done = this.#putBatch(map, entries, (e, keys, keyAt, values, valueAt) => {
      frontendKeyInto(e.frontend, keys, keyAt);
      serviceValueInto(e.entry, values, valueAt);
    });
    for (const e of entries.slice(done)) if (!map.lookup(frontendKey(e.frontend))) this.#filter.remove(e.frontend);
    return done;
  }

  /**
   * bpf_map_update_batch of the entries; how many leading ones went in. A kernel without batches
   * (EINVAL, EOPNOTSUPP, ENOTSUPP before 5.6) turns them off for good, with nothing written.
   */
  #putBatch<T>(
    map: BpfMap,
    entries: readonly T[],
    encodeEntry: (e: T, keys: Buffer, keyAt: number, values: Buffer, valueAt: number) => void,
  ): number {
    if (!this.#batches || entries.length === 0) return 0;
    // Zeroed: padding, and the values of counter resets, go in as zero.
    const keys = Buffer.alloc(entries.length * map.keySize);
    const values = Buffer.alloc(entries.length * map.valueBufferSize);
    for (let i = 0; i < entries.length; i++) encodeEntry(entries[i]!, keys, i * map.keySize, values, i * map.valueBufferSize);
    const { done, error } = map.updateBatchSome(keys, values);
    if (error && done === 0 && UNSUPPORTED.has(error.code)) this.#batches = false;
    return done;
  }

  dump(): MapsDump {
    const dump: MapsDump = { services: [], slots: [], backends: [] };
    for (const family of [4, 6] as const) {
      const map = this.#services(family);
      for (const key of map.keys()) {
        const value = map.lookup(key);
        if (!value) continue;
        const v = decode(Layouts.service, value);
        const frontend = frontendOf(family, key);
        if (!frontend) continue;
        dump.services.push({
          frontend,
          entry: {
            serviceId: Number(v.service_id),
            backendCount: Number(v.backend_count),
            flags: Number(v.flags),
            affinityTimeout: Number(v.affinity_timeout),
            ...(Number(v.scheduler) === 0 ? {} : { scheduler: Number(v.scheduler) }),
          },
        });
      }
      const backendLayout = family === 4 ? Layouts.lb4Backend : Layouts.lb6Backend;
      const backends = this.#backends(family);
      for (const key of backends.keys()) {
        const value = backends.lookup(key);
        if (!value) continue;
        const b = decode(backendLayout, value);
        const protocol = PROTOCOL_BY_NUMBER[Number(b.proto)];
        if (!protocol) continue;
        const backend: Backend = { family, address: String(b.address), port: Number(b.port), protocol };
        if (Number(b.flags) & BackendFlags.local) backend.local = true;
        // All-zero is "no node known" (struct lb4_backend, lb6_backend).
        const node = String(b.node_address);
        if (node !== '0.0.0.0' && node !== '::') backend.node = node;
        dump.backends.push({ id: Number(decode(Layouts.backendId, key).backend_id), backend });
      }
    }
    const slots = this.#maps[MapNames.slots];
    for (const key of slots.keys()) {
      const value = slots.lookup(key);
      if (!value) continue;
      const k = decode(Layouts.slotKey, key);
      dump.slots.push({
        serviceId: Number(k.service_id),
        slot: Number(k.slot),
        backendId: Number(decode(Layouts.slot, value).backend_id),
      });
    }
    // Ids the maps already name may have counted: they are not known zero.
    for (const { entry } of dump.services) this.#knownZero('services', [entry.serviceId]);
    for (const { id } of dump.backends) this.#knownZero('backends', [id]);
    for (const { serviceId, backendId } of dump.slots) {
      this.#knownZero('services', [serviceId]);
      this.#knownZero('backends', [backendId]);
    }
    return dump;
  }
}
