// The kernel memory the datapath's maps can take, from their definitions, sizes and the number of
// possible CPUs: what an operator sizes a node for. It follows the kernel's own accounting of hash
// and array maps (kernel/bpf/hashtab.c and arraymap.c, map_mem_usage) at full capacity, which is
// the most a map can hold; a hash map made with BPF_F_NO_PREALLOC takes only what is in use.

import { MAP_DEFINITIONS, type MapDefinition, type MapName, MapType, TABLE_ELEM_SIZE, TABLE_SLOTS_PER_ELEM } from './abi.ts';

/** The header of a hash map element before its key (struct htab_elem on 64-bit kernels). */
const HTAB_ELEM_HEADER = 48;
/** What a NO_PREALLOC element carries besides the element (the allocator's list node). */
const LLIST_NODE = 8;
/** One hash bucket: a list head and a lock. */
const BUCKET = 16;
/** Per possible CPU and hash map: the lock-depth counters that keep a program from deadlocking. */
const HASH_LOCK_COUNTERS = 8 * 4;
/** Elements the kernel's BPF allocator prefills per possible CPU for a NO_PREALLOC hash map. */
const PREFILL_PER_CPU = 4;
/** The header of an LPM trie node before its prefix bytes (struct lpm_trie_node). */
const LPM_NODE_HEADER = 40;

const roundUp8 = (n: number) => Math.ceil(n / 8) * 8;

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export interface MapMemory {
  map: MapName;
  maxEntries: number;
  /** Bytes that do not depend on the number of CPUs. */
  shared: number;
  /** Bytes per possible CPU. */
  perCpu: number;
}

/** The most one map can take: its shared bytes and its bytes per possible CPU. */
export function mapMemory(map: MapName, maxEntries: number, def: MapDefinition = MAP_DEFINITIONS[map]): MapMemory {
  const value = roundUp8(def.valueSize);
  switch (def.type) {
    case MapType.array:
      return { map, maxEntries, shared: maxEntries * value, perCpu: 0 };
    case MapType.skStorage:
      // Its elements hang off the sockets they describe and are charged to them, not to the map.
      return { map, maxEntries, shared: 0, perCpu: 0 };
    case MapType.arrayOfMaps:
      // A pointer per entry; the tables it points to are counted by tableMemory.
      return { map, maxEntries, shared: maxEntries * 8, perCpu: 0 };
    case MapType.percpuArray:
      return { map, maxEntries, shared: maxEntries * 8, perCpu: maxEntries * value };
    case MapType.lpmTrie:
      // A trie of n prefixes holds at most n - 1 intermediate nodes besides them.
      return { map, maxEntries, shared: 2 * maxEntries * (LPM_NODE_HEADER + (def.keySize - 4) + def.valueSize), perCpu: 0 };
    default: {
      const element = HTAB_ELEM_HEADER + roundUp8(def.keySize) + value;
      const buckets = pow2AtLeast(maxEntries) * BUCKET;
      const noPrealloc = def.type === MapType.hash;
      return {
        map,
        maxEntries,
        shared: buckets + maxEntries * (noPrealloc ? element + LLIST_NODE : element),
        perCpu: HASH_LOCK_COUNTERS + (noPrealloc ? PREFILL_PER_CPU * (element + LLIST_NODE) : 0),
      };
    }
  }
}

export interface DatapathMemory {
  cpus: number;
  maps: MapMemory[];
  /** Bytes on a host with `cpus` possible CPUs. */
  total: number;
}

/** The most the given maps can take together on a host with `cpus` possible CPUs. */
export function datapathMemory(sizes: Readonly<Partial<Record<MapName, number>>>, cpus: number): DatapathMemory {
  const maps = Object.entries(sizes).map(([name, n]) => mapMemory(name as MapName, n ?? 0));
  return { cpus, maps, total: maps.reduce((sum, m) => sum + m.shared + m.perCpu * cpus, 0) };
}

/** Kernel bytes of one array map besides its elements (struct bpf_array and its bpf_map), rounded up. */
const ARRAY_MAP_HEADER = 1024;

/**
 * The most the services' scheduler tables (lb_tables_v1's inner arrays) can take: at most `tables`
 * of them holding `positions` in all, four slots per 8-byte element, each with a length element
 * and a part-filled last one.
 */
export function tableMemory(tables: number, positions: number): number {
  return (positions / TABLE_SLOTS_PER_ELEM + 2 * tables) * TABLE_ELEM_SIZE + tables * ARRAY_MAP_HEADER;
}
