// A small packet builder for the XDP tests: Ethernet (with an optional 802.1Q tag), IPv4 (with
// options and fragment fields), IPv6 (with extension headers), TCP, UDP and ICMP/ICMPv6. Every
// checksum is computed here from scratch over the whole header and payload, never incrementally,
// so an expected packet is an independent check of the program's incremental updates.

import { ipv4ToBytes, ipv6ToBytes } from '../../src/bpf/ip-bytes.ts';

export const PROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;
export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export interface Eth {
  src: string;
  dst: string;
  /** An 802.1Q VLAN id: the frame carries one tag. */
  vlan?: number;
}

export interface Ip4 {
  v: 4;
  src: string;
  dst: string;
  ttl?: number;
  id?: number;
  tos?: number;
  /** IP options, padded to a multiple of 4 bytes. */
  options?: Buffer;
  /** Fragment offset in 8-byte units, and the more-fragments bit. */
  fragOffset?: number;
  mf?: boolean;
  df?: boolean;
}

/** An IPv6 extension header: hop-by-hop (0), routing (43), destination options (60), fragment (44). */
export interface Ext6 {
  type: 0 | 43 | 44 | 60;
  /** Total length in bytes (a multiple of 8; the fragment header is always 8). */
  length?: number;
}

export interface Ip6 {
  v: 6;
  src: string;
  dst: string;
  hopLimit?: number;
  ext?: Ext6[];
}

export type Ip = Ip4 | Ip6;

export interface Tcp {
  tcp: { sport: number; dport: number; seq?: number; ack?: number; flags?: number; window?: number; payload?: Buffer };
}
export interface Udp {
  /** zeroChecksum: IPv4's "no checksum". */
  udp: { sport: number; dport: number; payload?: Buffer; zeroChecksum?: boolean };
}
export interface Icmp {
  /** rest: the 4 bytes after the checksum (e.g. the next-hop MTU of "fragmentation needed"). */
  icmp: { type: number; code: number; rest?: Buffer; payload?: Buffer };
}
export interface Raw {
  raw: { proto: number; bytes: Buffer };
}
export type L4 = Tcp | Udp | Icmp | Raw;

/** One's-complement sum of a buffer as 16-bit big-endian words, odd byte padded. */
export function onesSum(buf: Buffer, sum = 0): number {
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (buf[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function checksum(...parts: Buffer[]): number {
  let sum = 0;
  for (const p of parts) sum = onesSum(p, sum);
  return ~sum & 0xffff;
}

function addrBytes(ip: Ip, which: 'src' | 'dst'): Buffer {
  return ip.v === 4 ? ipv4ToBytes(ip[which]) : ipv6ToBytes(ip[which]);
}

function pseudo(ip: Ip, proto: number, length: number): Buffer {
  const src = addrBytes(ip, 'src');
  const dst = addrBytes(ip, 'dst');
  if (ip.v === 4) {
    const b = Buffer.alloc(12);
    src.copy(b, 0);
    dst.copy(b, 4);
    b[9] = proto;
    b.writeUInt16BE(length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  src.copy(b, 0);
  dst.copy(b, 16);
  b.writeUInt32BE(length, 32);
  b[39] = proto;
  return b;
}

function l4Proto(l4: L4, ip: Ip): number {
  if ('tcp' in l4) return PROTO.TCP;
  if ('udp' in l4) return PROTO.UDP;
  if ('icmp' in l4) return ip.v === 4 ? PROTO.ICMP : PROTO.ICMPV6;
  return l4.raw.proto;
}

function transport(l4: L4, ip: Ip): Buffer {
  const proto = l4Proto(l4, ip);
  if ('raw' in l4) return l4.raw.bytes;
  if ('tcp' in l4) {
    const t = l4.tcp;
    const payload = t.payload ?? Buffer.alloc(0);
    const h = Buffer.alloc(20);
    h.writeUInt16BE(t.sport, 0);
    h.writeUInt16BE(t.dport, 2);
    h.writeUInt32BE((t.seq ?? 1000) >>> 0, 4);
    h.writeUInt32BE((t.ack ?? 0) >>> 0, 8);
    h[12] = 5 << 4;
    h[13] = t.flags ?? TCP_FLAGS.SYN;
    h.writeUInt16BE(t.window ?? 64240, 14);
    const seg = Buffer.concat([h, payload]);
    seg.writeUInt16BE(checksum(pseudo(ip, proto, seg.length), seg), 16);
    return seg;
  }
  if ('udp' in l4) {
    const u = l4.udp;
    const payload = u.payload ?? Buffer.alloc(0);
    const h = Buffer.alloc(8);
    h.writeUInt16BE(u.sport, 0);
    h.writeUInt16BE(u.dport, 2);
    h.writeUInt16BE(8 + payload.length, 4);
    const dgram = Buffer.concat([h, payload]);
    if (!u.zeroChecksum) dgram.writeUInt16BE(checksum(pseudo(ip, proto, dgram.length), dgram) || 0xffff, 6);
    return dgram;
  }
  const c = l4.icmp;
  const h = Buffer.alloc(8);
  h[0] = c.type;
  h[1] = c.code;
  (c.rest ?? Buffer.alloc(4)).copy(h, 4);
  const msg = Buffer.concat([h, c.payload ?? Buffer.alloc(0)]);
  const sum = ip.v === 4 ? checksum(msg) : checksum(pseudo(ip, proto, msg.length), msg);
  msg.writeUInt16BE(sum, 2);
  return msg;
}

function ipv4Header(ip: Ip4, proto: number, payloadLength: number): Buffer {
  const options = ip.options ?? Buffer.alloc(0);
  if (options.length % 4) throw new RangeError('IPv4 options must be padded to 4 bytes');
  const h = Buffer.alloc(20 + options.length);
  h[0] = 0x40 | (h.length / 4);
  h[1] = ip.tos ?? 0;
  h.writeUInt16BE(h.length + payloadLength, 2);
  h.writeUInt16BE(ip.id ?? 0x1234, 4);
  h.writeUInt16BE((ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | (ip.fragOffset ?? 0), 6);
  h[8] = ip.ttl ?? 64;
  h[9] = proto;
  ipv4ToBytes(ip.src).copy(h, 12);
  ipv4ToBytes(ip.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(checksum(h), 10);
  return h;
}

/** IPv6 extension headers chained to `last`; returns the first next-header value and the bytes. */
function extHeaders(ext: Ext6[], last: number): [number, Buffer] {
  const parts: Buffer[] = [];
  for (let i = 0; i < ext.length; i++) {
    const e = ext[i]!;
    const next = i + 1 < ext.length ? ext[i + 1]!.type : last;
    const length = e.type === 44 ? 8 : (e.length ?? 8);
    const b = Buffer.alloc(length);
    b[0] = next;
    if (e.type === 44) {
      b.writeUInt32BE(0xabcd, 4); // identification; offset 0, more fragments set
      b.writeUInt16BE(1, 2);
    } else {
      b[1] = length / 8 - 1;
      if (e.type === 43)
        b[2] = 0; // routing type 0, segments left 0
      else {
        b[2] = 1; // PadN option filling the rest
        b[3] = length - 4;
      }
    }
    parts.push(b);
  }
  return [ext.length ? ext[0]!.type : last, Buffer.concat(parts)];
}

/** An IP packet (no Ethernet): header, extension headers or options, transport. */
export function ipPacket(ip: Ip, l4: L4): Buffer {
  const proto = l4Proto(l4, ip);
  const body = transport(l4, ip);
  if (ip.v === 4) return Buffer.concat([ipv4Header(ip, proto, body.length), body]);
  const [first, exts] = extHeaders(ip.ext ?? [], proto);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(exts.length + body.length, 4);
  h[6] = first;
  h[7] = ip.hopLimit ?? 64;
  ipv6ToBytes(ip.src).copy(h, 8);
  ipv6ToBytes(ip.dst).copy(h, 24);
  return Buffer.concat([h, exts, body]);
}

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
}

/** An Ethernet frame around an IP packet. */
export function frame(eth: Eth, ipv: 4 | 6, l3: Buffer): Buffer {
  const type = Buffer.alloc(2);
  type.writeUInt16BE(ipv === 4 ? 0x0800 : 0x86dd);
  const parts = [macBytes(eth.dst), macBytes(eth.src)];
  if (eth.vlan !== undefined) {
    const tag = Buffer.alloc(4);
    tag.writeUInt16BE(0x8100, 0);
    tag.writeUInt16BE(eth.vlan, 2);
    parts.push(tag);
  }
  return Buffer.concat([...parts, type, l3]);
}

/** A whole frame: Ethernet, IP, transport. */
export function packet(eth: Eth, ip: Ip, l4: L4): Buffer {
  return frame(eth, ip.v, ipPacket(ip, l4));
}
