// IP address helpers for the model: strict parsing, the canonical text form, and byte order.

import * as net from 'node:net';
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
  if (net.isIPv4(text)) return { family: 4, address: canonical(text, 'ipv4') };
  // Node accepts a zone id; an address with one cannot be a ClusterIP or a pod address.
  if (net.isIPv6(text) && !text.includes('%')) return { family: 6, address: canonical(text, 'ipv6') };
  return undefined;
}

function canonical(text: string, family: 'ipv4' | 'ipv6'): string {
  return new net.SocketAddress({ address: text, family }).address;
}

/** The address as bytes (4 or 16), for ordering. The input must be a valid address. */
export function ipBytes(address: string): number[] {
  if (net.isIPv4(address)) return address.split('.').map(Number);
  let head = address;
  let v4Tail: number[] = [];
  const lastColon = address.lastIndexOf(':');
  if (address.slice(lastColon + 1).includes('.')) {
    v4Tail = address.slice(lastColon + 1).split('.').map(Number);
    head = address.slice(0, lastColon + 1) + '0:0';
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
  const x = ipBytes(a);
  const y = ipBytes(b);
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}
