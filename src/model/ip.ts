// IP address helpers for the model: strict parsing, the canonical text form, and byte order.

import * as net from 'node:net';
import { show } from './problem.ts';
import type { Family } from './types.ts';

export interface ParsedIp {
  family: Family;
  /** Canonical text: IPv4 dotted quad, IPv6 compressed lower case (as `net` prints it). */
  address: string;
}

/**
 * Parses an IP address strictly: no leading zeros ('010.1.1.1'), no short forms ('1.2.3'), no zone
 * ('fe80::1%eth0', which means nothing for a service address), no surrounding spaces or brackets.
 * Returns undefined when the text is not an address.
 */
export function parseIp(text: unknown): ParsedIp | undefined {
  if (typeof text !== 'string') return undefined;
  // net.isIPv4 accepts only the dotted quad without leading zeros, which is already canonical: the
  // text is its own canonical form, so only IPv6 addresses go through the cache.
  if (net.isIPv4(text)) return { family: 4, address: text };
  let canonical = canonicalV6Cache.get(text);
  if (canonical === undefined) {
    canonical = canonicalV6Of(text);
    // Bounded: a flood of distinct addresses costs a refill, never unbounded memory.
    if (canonicalV6Cache.size >= CANONICAL_CACHE_SIZE) canonicalV6Cache.clear();
    canonicalV6Cache.set(text, canonical);
  }
  return canonical === null ? undefined : { family: 6, address: canonical };
}

/** Text that is not an IPv4 address -> its canonical IPv6 form (null: not an address). */
const canonicalV6Cache = new Map<string, string | null>();
const CANONICAL_CACHE_SIZE = 1 << 16;

function canonicalV6Of(text: string): string | null {
  // Node accepts a zone id; an address with one cannot be a ClusterIP or a pod address.
  if (!net.isIPv6(text) || text.includes('%')) return null;
  // SocketAddress (a native object, hence the cache) prints every spelling of an address the same way.
  const address = new net.SocketAddress({ address: text, family: 'ipv6' }).address;
  // An IPv4-mapped address (::ffff:10.96.0.10) aliases an IPv4 one: as a frontend it would shadow or
  // double that address, as a backend an IPv6 socket cannot reach it. Kubernetes refuses them (1.33).
  return V4_MAPPED.test(address) ? null : address;
}

/** The canonical form of an IPv4-mapped IPv6 address, as SocketAddress prints every spelling of one. */
const V4_MAPPED = /^::ffff:\d+\.\d+\.\d+\.\d+$/;

/** Why parseIp refused the text, for a message: `"x" is not an IP address`. */
export function notAnIp(text: unknown): string {
  const why =
    typeof text === 'string' && net.isIPv6(text) && !text.includes('%') ? 'is an IPv4-mapped IPv6 address' : 'is not an IP address';
  return `${show(text)} ${why}`;
}

/** The address as bytes (4 or 16), for ordering. The input must be a valid address. */
export function ipBytes(address: string): number[] {
  if (net.isIPv4(address)) return address.split('.').map(Number);
  let head = address;
  let v4Tail: number[] = [];
  const lastColon = address.lastIndexOf(':');
  if (address.slice(lastColon + 1).includes('.')) {
    v4Tail = address
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    head = `${address.slice(0, lastColon + 1)}0:0`;
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const groups = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const l = groups(left);
  const r = groups(right);
  const all = right === undefined ? l : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (v4Tail.length === 4) bytes.splice(12, 4, ...v4Tail);
  return bytes;
}

/** Orders addresses: IPv4 before IPv6, then numerically (so 10.0.0.9 sorts before 10.0.0.10). */
export function compareIp(a: string, b: string): number {
  // Backends are sorted per service at every compute: IPv4 ones compare without arrays.
  const v4a = ipv4Value(a);
  const v4b = ipv4Value(b);
  if (v4a >= 0 || v4b >= 0) return v4a < 0 ? 1 : v4b < 0 ? -1 : v4a - v4b;
  const x = ipBytes(a);
  const y = ipBytes(b);
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

/** A valid IPv4 address as a number; -1 for an IPv6 one. */
function ipv4Value(address: string): number {
  let value = 0;
  let octet = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 0x2e) {
      value = value * 256 + octet;
      octet = 0;
    } else if (c >= 0x30 && c <= 0x39) octet = octet * 10 + c - 0x30;
    else return -1;
  }
  return value * 256 + octet;
}

export interface ParsedCidr {
  family: Family;
  /** The address as written, canonical (host bits are kept: kube-proxy masks them). */
  address: string;
  prefix: number;
}

/** Parses `address/prefix` strictly (the address as parseIp takes it); undefined when it is not one. */
export function parseCidr(text: unknown): ParsedCidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!ip || !/^\d{1,3}$/.test(prefixText) || prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return { family: ip.family, address: ip.address, prefix };
}

/** Whether the address lies in the CIDR (never across families). */
export function inCidr(address: string, cidr: ParsedCidr): boolean {
  const ip = parseIp(address);
  if (ip?.family !== cidr.family) return false;
  const a = ipBytes(ip.address);
  const c = ipBytes(cidr.address);
  for (let bit = 0; bit < cidr.prefix; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((a[bit >> 3]! & mask) !== (c[bit >> 3]! & mask)) return false;
  }
  return true;
}
