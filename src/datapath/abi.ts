// The TypeScript mirror of bpf/lib/abi.h: map names, struct layouts, and their encoding.
// test/kernel/abi.test.ts checks every layout here against the BTF of the compiled objects.

import { endianness } from 'node:os';
import { bytesToIpv4, bytesToIpv6, ipv6ToBytes, writeIpv4 } from '../bpf/ip-bytes.ts';

export const ABI_VERSION = 2;

export const MapNames = {
  lb4Services: 'lb4_services_v2',
  lb6Services: 'lb6_services_v2',
  slots: 'lb_slots_v1',
  lb4Backends: 'lb4_backends_v2',
  lb6Backends: 'lb6_backends_v2',
  lb4Reverse: 'lb4_reverse_v1',
  lb6Reverse: 'lb6_reverse_v1',
  serviceStats: 'lb_svc_stats_v2',
  backendStats: 'lb_be_stats_v2',
  sockStats: 'sock_stats_v1',
  affinity: 'lb_affinity_v1',
  tables: 'lb_tables_v1',
  lb4Destroy: 'lb4_destroy_v1',
  lb6Destroy: 'lb6_destroy_v1',
  lb4Ct: 'lb4_ct_v1',
  lb6Ct: 'lb6_ct_v1',
  lb4Rnat: 'lb4_rnat_v1',
  lb6Rnat: 'lb6_rnat_v1',
  lb4SrcRanges: 'lb4_src_ranges_v1',
  lb6SrcRanges: 'lb6_src_ranges_v1',
  nodeConfig: 'lb_node_config_v1',
  xdpStats: 'xdp_stats_v1',
  frontendFilter: 'lb_frontend_filter_v1',
  backendConns: 'lb_be_conns_v1',
  sockConn: 'lb_sock_conn_v1',
  backendFlows: 'lb_be_flows_v1',
} as const;

export type MapName = (typeof MapNames)[keyof typeof MapNames];

/** The maps of bpf/sock.bpf.c. */
export const SOCK_MAPS = [
  MapNames.lb4Services,
  MapNames.lb6Services,
  MapNames.slots,
  MapNames.lb4Backends,
  MapNames.lb6Backends,
  MapNames.lb4Reverse,
  MapNames.lb6Reverse,
  MapNames.serviceStats,
  MapNames.backendStats,
  MapNames.sockStats,
  MapNames.affinity,
  MapNames.tables,
  MapNames.frontendFilter,
  MapNames.backendConns,
  MapNames.sockConn,
] as const;

export type SockMapName = (typeof SOCK_MAPS)[number];

/** The maps of bpf/sock_destroy.bpf.c. */
export const DESTROY_MAPS = [MapNames.lb4Destroy, MapNames.lb6Destroy] as const;

/**
 * The maps bpf/xdp.bpf.c adds to the service maps it shares with the socket hooks (the agent pins
 * them next to those): connection and reverse NAT tables (LRU, sized by the agent), source ranges,
 * the node's configuration (one entry, the agent writes it), the per-reason counters and the open
 * flows per backend of the least-connection schedulers (the agent recounts them, see flow-counts.ts).
 */
export const XDP_MAPS = [
  MapNames.lb4Ct,
  MapNames.lb6Ct,
  MapNames.lb4Rnat,
  MapNames.lb6Rnat,
  MapNames.lb4SrcRanges,
  MapNames.lb6SrcRanges,
  MapNames.nodeConfig,
  MapNames.xdpStats,
  MapNames.backendFlows,
] as const;

export type XdpMapName = (typeof XDP_MAPS)[number];

/** enum bpf_map_type values of the map types socklb uses. */
export const MapType = { hash: 1, array: 2, percpuArray: 6, lruHash: 9, lpmTrie: 11, arrayOfMaps: 12, skStorage: 24 } as const;

/** BPF_F_NO_PREALLOC: a hash map allocates an entry when it is written, not all at creation. */
export const BPF_F_NO_PREALLOC = 1;
/** BPF_F_INNER_MAP: an array that may sit in an array of maps whatever its length. */
export const BPF_F_INNER_MAP = 1 << 12;

/** How a map is declared in bpf/ (its max_entries aside, which the agent sets). */
export interface MapDefinition {
  type: (typeof MapType)[keyof typeof MapType];
  keySize: number;
  /** Per element; per CPU for a per-CPU map. */
  valueSize: number;
  flags: number;
}

/**
 * Every pinned map as bpf/ declares it. The agent compares a pinned map against this before it
 * reuses the pin: one that differs is migrated into a new map (src/datapath/migrations.ts).
 * test/kernel/abi.test.ts checks this table against the loaded objects.
 */
export const MAP_DEFINITIONS: Readonly<Record<MapName, MapDefinition>> = {
  [MapNames.lb4Services]: { type: MapType.hash, keySize: 8, valueSize: 16, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb6Services]: { type: MapType.hash, keySize: 20, valueSize: 16, flags: BPF_F_NO_PREALLOC },
  [MapNames.slots]: { type: MapType.hash, keySize: 8, valueSize: 4, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb4Backends]: { type: MapType.hash, keySize: 4, valueSize: 12, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb6Backends]: { type: MapType.hash, keySize: 4, valueSize: 36, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb4Reverse]: { type: MapType.lruHash, keySize: 16, valueSize: 8, flags: 0 },
  [MapNames.lb6Reverse]: { type: MapType.lruHash, keySize: 32, valueSize: 20, flags: 0 },
  [MapNames.serviceStats]: { type: MapType.array, keySize: 4, valueSize: 16, flags: 0 },
  [MapNames.backendStats]: { type: MapType.array, keySize: 4, valueSize: 8, flags: 0 },
  [MapNames.sockStats]: { type: MapType.percpuArray, keySize: 4, valueSize: 8, flags: 0 },
  [MapNames.affinity]: { type: MapType.lruHash, keySize: 16, valueSize: 16, flags: 0 },
  [MapNames.tables]: { type: MapType.arrayOfMaps, keySize: 4, valueSize: 4, flags: 0 },
  [MapNames.lb4Destroy]: { type: MapType.hash, keySize: 8, valueSize: 1, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb6Destroy]: { type: MapType.hash, keySize: 20, valueSize: 1, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb4Ct]: { type: MapType.lruHash, keySize: 16, valueSize: 32, flags: 0 },
  [MapNames.lb6Ct]: { type: MapType.lruHash, keySize: 40, valueSize: 56, flags: 0 },
  [MapNames.lb4Rnat]: { type: MapType.lruHash, keySize: 16, valueSize: 24, flags: 0 },
  [MapNames.lb6Rnat]: { type: MapType.lruHash, keySize: 40, valueSize: 48, flags: 0 },
  [MapNames.lb4SrcRanges]: { type: MapType.lpmTrie, keySize: 12, valueSize: 1, flags: BPF_F_NO_PREALLOC },
  [MapNames.lb6SrcRanges]: { type: MapType.lpmTrie, keySize: 24, valueSize: 1, flags: BPF_F_NO_PREALLOC },
  [MapNames.nodeConfig]: { type: MapType.array, keySize: 4, valueSize: 48, flags: 0 },
  [MapNames.xdpStats]: { type: MapType.percpuArray, keySize: 4, valueSize: 8, flags: 0 },
  [MapNames.frontendFilter]: { type: MapType.array, keySize: 4, valueSize: 8, flags: 0 },
  [MapNames.backendConns]: { type: MapType.array, keySize: 4, valueSize: 8, flags: 0 },
  [MapNames.sockConn]: { type: MapType.skStorage, keySize: 4, valueSize: 4, flags: BPF_F_NO_PREALLOC },
  [MapNames.backendFlows]: { type: MapType.array, keySize: 4, valueSize: 8, flags: 0 },
};

/** enum sock_reason, by index. */
export const SOCK_REASONS = [
  'balanced',
  'not_service',
  'no_backend',
  'slot_missing',
  'backend_missing',
  'reverse_full',
  'reversed',
  'affinity_hit',
  'pick_retried',
] as const;

/** enum xdp_reason, by index: why the XDP program (or its tc egress partner) did what it did. */
export const XDP_REASONS = [
  'balanced',
  'established',
  'reply',
  'not_service',
  'fragment',
  'other_proto',
  'malformed',
  'rejected',
  'no_local_backend',
  'source_denied',
  'backend_gone',
  'nat_exhausted',
  'ct_failed',
  'stack_forward',
  'fib_drop',
  'icmp_error',
  'no_snat_address',
  'pick_miss',
  'tc_reversed',
  'dsr_decap',
  'nat_reclaimed',
  'ct_expired',
  'ct_reopened',
] as const;

/** enum lb_scheduler: struct lb_service.scheduler. */
export const Schedulers = { random: 0, rr: 1, wrr: 2, sh: 3, maglev: 4, lc: 5, wlc: 6, sed: 7, nq: 8 } as const;

/** union lb_table_elem: a service table's element (element 0 its length, then four u16 slots each). */
export const TABLE_ELEM_SIZE = 8;
export const TABLE_SLOTS_PER_ELEM = 4;

/** struct lb_service.flags; local and sourceRanges only on external-scope frontends. */
export const ServiceFlags = { affinity: 1, local: 2, sourceRanges: 4 } as const;

/** struct lb4_ct.flags and struct lb4_rnat.flags. */
export const CtFlags = { snat: 1, local: 2, dsr: 4, counted: 8 } as const;

/** struct lb4_ct.state (what the client sent) and struct lb4_rnat.state (what the backend sent), TCP. */
export const CtState = { established: 1, fin: 2, rst: 4 } as const;

/** struct lb_node_config.flags */
export const NodeConfigFlags = { stackForward: 1, dsr: 2 } as const;

/** enum lb_scope: who a frontend entry serves (struct lb4_key.scope). */
export const Scope = { internal: 0, external: 1 } as const;

/** struct lb4_backend.flags */
export const BackendFlags = { local: 1 } as const;

export const IPPROTO = { TCP: 6, UDP: 17 } as const;

type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32ip' | 'ip6' | 'pad';

export interface Field {
  name: string;
  type: FieldType;
  offset: number;
  /** Bytes, for 'pad'. */
  size?: number;
}

export interface Layout {
  /** The C struct name (or a scalar name for plain keys). */
  name: string;
  size: number;
  fields: readonly Field[];
}

const FIELD_SIZE: Record<Exclude<FieldType, 'pad'>, number> = {
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  be16: 2,
  be32ip: 4,
  ip6: 16,
};

export function fieldSize(f: Field): number {
  return f.type === 'pad' ? (f.size ?? 0) : FIELD_SIZE[f.type];
}

function layout(name: string, size: number, fields: Field[]): Layout {
  return { name, size, fields };
}

export const Layouts = {
  lb4Key: layout('lb4_key', 8, [
    { name: 'address', type: 'be32ip', offset: 0 },
    { name: 'dport', type: 'be16', offset: 4 },
    { name: 'proto', type: 'u8', offset: 6 },
    { name: 'scope', type: 'u8', offset: 7 },
  ]),
  lb6Key: layout('lb6_key', 20, [
    { name: 'address', type: 'ip6', offset: 0 },
    { name: 'dport', type: 'be16', offset: 16 },
    { name: 'proto', type: 'u8', offset: 18 },
    { name: 'scope', type: 'u8', offset: 19 },
  ]),
  service: layout('lb_service', 16, [
    { name: 'service_id', type: 'u32', offset: 0 },
    { name: 'backend_count', type: 'u16', offset: 4 },
    { name: 'flags', type: 'u16', offset: 6 },
    { name: 'affinity_timeout', type: 'u32', offset: 8 },
    { name: 'scheduler', type: 'u8', offset: 12 },
    { name: 'pad', type: 'pad', offset: 13, size: 3 },
  ]),
  affinityKey: layout('lb_affinity_key', 16, [
    { name: 'client', type: 'u64', offset: 0 },
    { name: 'service_id', type: 'u32', offset: 8 },
    { name: 'pad', type: 'pad', offset: 12, size: 4 },
  ]),
  affinity: layout('lb_affinity', 16, [
    { name: 'last_used_ns', type: 'u64', offset: 0 },
    { name: 'backend_id', type: 'u32', offset: 8 },
    { name: 'slot', type: 'u32', offset: 12 },
  ]),
  slotKey: layout('lb_slot_key', 8, [
    { name: 'service_id', type: 'u32', offset: 0 },
    { name: 'slot', type: 'u32', offset: 4 },
  ]),
  slot: layout('lb_slot', 4, [{ name: 'backend_id', type: 'u32', offset: 0 }]),
  backendId: layout('backend_id', 4, [{ name: 'backend_id', type: 'u32', offset: 0 }]),
  lb4Backend: layout('lb4_backend', 12, [
    { name: 'address', type: 'be32ip', offset: 0 },
    { name: 'port', type: 'be16', offset: 4 },
    { name: 'proto', type: 'u8', offset: 6 },
    { name: 'flags', type: 'u8', offset: 7 },
    { name: 'node_address', type: 'be32ip', offset: 8 },
  ]),
  lb6Backend: layout('lb6_backend', 36, [
    { name: 'address', type: 'ip6', offset: 0 },
    { name: 'port', type: 'be16', offset: 16 },
    { name: 'proto', type: 'u8', offset: 18 },
    { name: 'flags', type: 'u8', offset: 19 },
    { name: 'node_address', type: 'ip6', offset: 20 },
  ]),
  lb4ReverseKey: layout('lb4_reverse_key', 16, [
    { name: 'cookie', type: 'u64', offset: 0 },
    { name: 'address', type: 'be32ip', offset: 8 },
    { name: 'port', type: 'be16', offset: 12 },
    { name: 'pad', type: 'pad', offset: 14, size: 2 },
  ]),
  lb4Reverse: layout('lb4_reverse', 8, [
    { name: 'address', type: 'be32ip', offset: 0 },
    { name: 'port', type: 'be16', offset: 4 },
    { name: 'pad', type: 'pad', offset: 6, size: 2 },
  ]),
  lb6ReverseKey: layout('lb6_reverse_key', 32, [
    { name: 'cookie', type: 'u64', offset: 0 },
    { name: 'address', type: 'ip6', offset: 8 },
    { name: 'port', type: 'be16', offset: 24 },
    { name: 'pad', type: 'pad', offset: 26, size: 6 },
  ]),
  lb6Reverse: layout('lb6_reverse', 20, [
    { name: 'address', type: 'ip6', offset: 0 },
    { name: 'port', type: 'be16', offset: 16 },
    { name: 'pad', type: 'pad', offset: 18, size: 2 },
  ]),
  serviceStats: layout('lb_service_stats', 16, [
    { name: 'connects', type: 'u64', offset: 0 },
    { name: 'refused', type: 'u64', offset: 8 },
  ]),
  backendStats: layout('lb_backend_stats', 8, [{ name: 'connects', type: 'u64', offset: 0 }]),
  sockConn: layout('lb_sock_conn', 4, [{ name: 'backend_id', type: 'u32', offset: 0 }]),
  lb4DestroyKey: layout('lb4_destroy_key', 8, [
    { name: 'address', type: 'be32ip', offset: 0 },
    { name: 'port', type: 'be16', offset: 4 },
    { name: 'pad', type: 'pad', offset: 6, size: 2 },
  ]),
  lb6DestroyKey: layout('lb6_destroy_key', 20, [
    { name: 'address', type: 'ip6', offset: 0 },
    { name: 'port', type: 'be16', offset: 16 },
    { name: 'pad', type: 'pad', offset: 18, size: 2 },
  ]),
  nodeConfig: layout('lb_node_config', 48, [
    { name: 'snat_address4', type: 'be32ip', offset: 0 },
    { name: 'nat_port_min', type: 'u16', offset: 4 },
    { name: 'nat_port_max', type: 'u16', offset: 6 },
    { name: 'snat_address6', type: 'ip6', offset: 8 },
    { name: 'flags', type: 'u32', offset: 24 },
    { name: 'dsr_port', type: 'be16', offset: 28 },
    { name: 'pad', type: 'pad', offset: 30, size: 2 },
    { name: 'tcp_syn_lifetime_ms', type: 'u32', offset: 32 },
    { name: 'tcp_established_lifetime_ms', type: 'u32', offset: 36 },
    { name: 'tcp_closed_lifetime_ms', type: 'u32', offset: 40 },
    { name: 'udp_lifetime_ms', type: 'u32', offset: 44 },
  ]),
  lb4Tuple: layout('lb4_tuple', 16, [
    { name: 'saddr', type: 'be32ip', offset: 0 },
    { name: 'daddr', type: 'be32ip', offset: 4 },
    { name: 'sport', type: 'be16', offset: 8 },
    { name: 'dport', type: 'be16', offset: 10 },
    { name: 'proto', type: 'u8', offset: 12 },
    { name: 'pad', type: 'pad', offset: 13, size: 3 },
  ]),
  lb6Tuple: layout('lb6_tuple', 40, [
    { name: 'saddr', type: 'ip6', offset: 0 },
    { name: 'daddr', type: 'ip6', offset: 16 },
    { name: 'sport', type: 'be16', offset: 32 },
    { name: 'dport', type: 'be16', offset: 34 },
    { name: 'proto', type: 'u8', offset: 36 },
    { name: 'pad', type: 'pad', offset: 37, size: 3 },
  ]),
  lb4Ct: layout('lb4_ct', 32, [
    { name: 'last_seen_ns', type: 'u64', offset: 0 },
    { name: 'backend_id', type: 'u32', offset: 8 },
    { name: 'service_id', type: 'u32', offset: 12 },
    { name: 'backend_address', type: 'be32ip', offset: 16 },
    { name: 'backend_port', type: 'be16', offset: 20 },
    { name: 'nat_port', type: 'be16', offset: 22 },
    { name: 'nat_address', type: 'be32ip', offset: 24 },
    { name: 'flags', type: 'u8', offset: 28 },
    { name: 'state', type: 'u8', offset: 29 },
    { name: 'pad', type: 'pad', offset: 30, size: 2 },
  ]),
  lb6Ct: layout('lb6_ct', 56, [
    { name: 'last_seen_ns', type: 'u64', offset: 0 },
    { name: 'backend_id', type: 'u32', offset: 8 },
    { name: 'service_id', type: 'u32', offset: 12 },
    { name: 'backend_address', type: 'ip6', offset: 16 },
    { name: 'backend_port', type: 'be16', offset: 32 },
    { name: 'nat_port', type: 'be16', offset: 34 },
    { name: 'nat_address', type: 'ip6', offset: 36 },
    { name: 'flags', type: 'u8', offset: 52 },
    { name: 'state', type: 'u8', offset: 53 },
    { name: 'pad', type: 'pad', offset: 54, size: 2 },
  ]),
  lb4Rnat: layout('lb4_rnat', 24, [
    { name: 'last_seen_ns', type: 'u64', offset: 0 },
    { name: 'address', type: 'be32ip', offset: 8 },
    { name: 'client', type: 'be32ip', offset: 12 },
    { name: 'port', type: 'be16', offset: 16 },
    { name: 'client_port', type: 'be16', offset: 18 },
    { name: 'flags', type: 'u8', offset: 20 },
    { name: 'state', type: 'u8', offset: 21 },
    { name: 'pad', type: 'pad', offset: 22, size: 2 },
  ]),
  lb6Rnat: layout('lb6_rnat', 48, [
    { name: 'last_seen_ns', type: 'u64', offset: 0 },
    { name: 'address', type: 'ip6', offset: 8 },
    { name: 'client', type: 'ip6', offset: 24 },
    { name: 'port', type: 'be16', offset: 40 },
    { name: 'client_port', type: 'be16', offset: 42 },
    { name: 'flags', type: 'u8', offset: 44 },
    { name: 'state', type: 'u8', offset: 45 },
    { name: 'pad', type: 'pad', offset: 46, size: 2 },
  ]),
  /** Not a map struct: the DSR encapsulation header on the wire, between outer UDP and the packet. */
  lb4DsrHdr: layout('lb4_dsr_hdr', 8, [
    { name: 'version', type: 'u8', offset: 0 },
    { name: 'proto', type: 'u8', offset: 1 },
    { name: 'frontend_port', type: 'be16', offset: 2 },
    { name: 'frontend_address', type: 'be32ip', offset: 4 },
  ]),
  lb6DsrHdr: layout('lb6_dsr_hdr', 20, [
    { name: 'version', type: 'u8', offset: 0 },
    { name: 'proto', type: 'u8', offset: 1 },
    { name: 'frontend_port', type: 'be16', offset: 2 },
    { name: 'frontend_address', type: 'ip6', offset: 4 },
  ]),
  lb4SrcRangeKey: layout('lb4_src_range_key', 12, [
    { name: 'prefixlen', type: 'u32', offset: 0 },
    { name: 'service_id', type: 'u32', offset: 4 },
    { name: 'address', type: 'be32ip', offset: 8 },
  ]),
  lb6SrcRangeKey: layout('lb6_src_range_key', 24, [
    { name: 'prefixlen', type: 'u32', offset: 0 },
    { name: 'service_id', type: 'u32', offset: 4 },
    { name: 'address', type: 'ip6', offset: 8 },
  ]),
  config: layout('socklb_config', 12, [
    { name: 'abi_version', type: 'u32', offset: 0 },
    { name: 'refuse_errno', type: 'u32', offset: 4 },
    { name: 'filter_word_mask', type: 'u32', offset: 8 },
  ]),
} as const;

export type FieldValue = number | bigint | string;
export type Decoded = Record<string, FieldValue>;

const LITTLE = endianness() === 'LE';

/** A u32 key or value (a backend or service id) in the CPU's byte order, as the kernel reads it. */
export function u32Bytes(n: number): Buffer {
  const buf = Buffer.alloc(4);
  writeU32(buf, 0, n);
  return buf;
}

export function readU32(buf: Buffer): number {
  return LITTLE ? buf.readUInt32LE(0) : buf.readUInt32BE(0);
}

/** An __s64 count (lb_be_conns_v1, lb_be_flows_v1) in the CPU's byte order. */
export function s64Bytes(n: bigint): Buffer {
  const buf = Buffer.alloc(8);
  if (LITTLE) buf.writeBigInt64LE(n);
  else buf.writeBigInt64BE(n);
  return buf;
}

export function readS64(buf: Buffer): bigint {
  return LITTLE ? buf.readBigInt64LE(0) : buf.readBigInt64BE(0);
}

/** Encodes an object into a struct; fields it lacks (and padding) are zero. */
export function encode(l: Layout, values: Readonly<Record<string, FieldValue>>): Buffer {
  const buf = Buffer.alloc(l.size);
  encodeInto(l, values, buf, 0);
  return buf;
}

/** encode() into `buf` at `offset` (a batch's keys or values), without a Buffer per struct. */
export function encodeInto(l: Layout, values: Readonly<Record<string, FieldValue>>, buf: Buffer, offset: number): void {
  buf.fill(0, offset, offset + l.size);
  for (const f of l.fields) {
    const v = values[f.name];
    if (v === undefined || f.type === 'pad') continue;
    writeField(buf, offset + f.offset, f.type, v);
  }
}

/** A u32 (a backend or service id) at `offset`, in the CPU's byte order. */
export function writeU32(buf: Buffer, offset: number, n: number): void {
  if (LITTLE) buf.writeUInt32LE(n, offset);
  else buf.writeUInt32BE(n, offset);
}

/** Decodes a struct into an object keyed by field name (padding left out). */
export function decode(l: Layout, buf: Buffer): Decoded {
  if (buf.length < l.size) throw new RangeError(`${l.name}: ${buf.length} bytes, want ${l.size}`);
  const out: Decoded = {};
  for (const f of l.fields) {
    if (f.type !== 'pad') out[f.name] = readField(buf, f);
  }
  return out;
}

function writeField(buf: Buffer, o: number, type: Field['type'], v: FieldValue): void {
  switch (type) {
    case 'u8':
      buf.writeUInt8(Number(v), o);
      break;
    case 'u16':
      if (LITTLE) buf.writeUInt16LE(Number(v), o);
      else buf.writeUInt16BE(Number(v), o);
      break;
    case 'u32':
      if (LITTLE) buf.writeUInt32LE(Number(v), o);
      else buf.writeUInt32BE(Number(v), o);
      break;
    case 'u64':
      if (LITTLE) buf.writeBigUInt64LE(BigInt(v), o);
      else buf.writeBigUInt64BE(BigInt(v), o);
      break;
    case 'be16':
      buf.writeUInt16BE(Number(v), o);
      break;
    case 'be32ip':
      writeIpv4(buf, o, String(v));
      break;
    case 'ip6':
      ipv6ToBytes(String(v)).copy(buf, o);
      break;
    case 'pad':
      break;
  }
}

function readField(buf: Buffer, f: Field): FieldValue {
  const o = f.offset;
  switch (f.type) {
    case 'u8':
      return buf.readUInt8(o);
    case 'u16':
      return LITTLE ? buf.readUInt16LE(o) : buf.readUInt16BE(o);
    case 'u32':
      return LITTLE ? buf.readUInt32LE(o) : buf.readUInt32BE(o);
    case 'u64':
      return LITTLE ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o);
    case 'be16':
      return buf.readUInt16BE(o);
    case 'be32ip':
      return bytesToIpv4(buf.subarray(o, o + 4));
    case 'ip6':
      return bytesToIpv6(buf.subarray(o, o + 16));
    case 'pad':
      return 0;
  }
}

/** Per-CPU values come back as one value per possible CPU, each rounded up to 8 bytes. */
export function sumPerCpu(l: Layout, buf: Buffer): Record<string, bigint> {
  const stride = Math.ceil(l.size / 8) * 8;
  const totals: Record<string, bigint> = {};
  for (const f of l.fields) if (f.type === 'u64') totals[f.name] = 0n;
  for (let at = 0; at + l.size <= buf.length; at += stride) {
    const one = decode(l, buf.subarray(at, at + l.size));
    for (const name of Object.keys(totals)) totals[name]! += BigInt(one[name]!);
  }
  return totals;
}
