// The TypeScript mirror of bpf/lib/abi.h: map names, struct layouts, and their encoding.
// test/kernel/abi.test.ts checks every layout here against the BTF of the compiled objects.

import { endianness } from 'node:os';
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes } from '../bpf/ip-bytes.ts';

export const ABI_VERSION = 1;

export const MapNames = {
  lb4Services: 'lb4_services_v1',
  lb6Services: 'lb6_services_v1',
  slots: 'lb_slots_v1',
  lb4Backends: 'lb4_backends_v1',
  lb6Backends: 'lb6_backends_v1',
  lb4Reverse: 'lb4_reverse_v1',
  lb6Reverse: 'lb6_reverse_v1',
  serviceStats: 'lb_svc_stats_v1',
  backendStats: 'lb_be_stats_v1',
  sockStats: 'sock_stats_v1',
  affinity: 'lb_affinity_v1',
  lb4Destroy: 'lb4_destroy_v1',
  lb6Destroy: 'lb6_destroy_v1',
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
] as const;

export type SockMapName = (typeof SOCK_MAPS)[number];

/** The maps of bpf/sock_destroy.bpf.c. */
export const DESTROY_MAPS = [MapNames.lb4Destroy, MapNames.lb6Destroy] as const;

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
] as const;

/** struct lb_service.flags */
export const ServiceFlags = { affinity: 1 } as const;

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
    { name: 'pad', type: 'pad', offset: 7, size: 1 },
  ]),
  lb6Key: layout('lb6_key', 20, [
    { name: 'address', type: 'ip6', offset: 0 },
    { name: 'dport', type: 'be16', offset: 16 },
    { name: 'proto', type: 'u8', offset: 18 },
    { name: 'pad', type: 'pad', offset: 19, size: 1 },
  ]),
  service: layout('lb_service', 12, [
    { name: 'service_id', type: 'u32', offset: 0 },
    { name: 'backend_count', type: 'u16', offset: 4 },
    { name: 'flags', type: 'u16', offset: 6 },
    { name: 'affinity_timeout', type: 'u32', offset: 8 },
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
  lb4Backend: layout('lb4_backend', 8, [
    { name: 'address', type: 'be32ip', offset: 0 },
    { name: 'port', type: 'be16', offset: 4 },
    { name: 'proto', type: 'u8', offset: 6 },
    { name: 'flags', type: 'u8', offset: 7 },
  ]),
  lb6Backend: layout('lb6_backend', 20, [
    { name: 'address', type: 'ip6', offset: 0 },
    { name: 'port', type: 'be16', offset: 16 },
    { name: 'proto', type: 'u8', offset: 18 },
    { name: 'flags', type: 'u8', offset: 19 },
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
  config: layout('socklb_config', 8, [
    { name: 'abi_version', type: 'u32', offset: 0 },
    { name: 'refuse_errno', type: 'u32', offset: 4 },
  ]),
} as const;

export type FieldValue = number | bigint | string;
export type Decoded = Record<string, FieldValue>;

const LITTLE = endianness() === 'LE';

/** Encodes an object into a struct; fields it lacks (and padding) are zero. */
export function encode(l: Layout, values: Readonly<Record<string, FieldValue>>): Buffer {
  const buf = Buffer.alloc(l.size);
  for (const f of l.fields) {
    const v = values[f.name];
    if (v === undefined || f.type === 'pad') continue;
    writeField(buf, f, v);
  }
  return buf;
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

function writeField(buf: Buffer, f: Field, v: FieldValue): void {
  const o = f.offset;
  switch (f.type) {
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
      ipv4ToBytes(String(v)).copy(buf, o);
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
