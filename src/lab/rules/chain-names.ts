// Chain names as kube-proxy derives them: SHA-256 of the service port (and endpoint), base32
// (RFC 4648 alphabet, as Go's base32.StdEncoding), truncated. Same inputs, same names on every node.

import { createHash } from 'node:crypto';
import type { BenchEndpoint, BenchService } from '../services.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

function hash(text: string, length: number): string {
  return base32(createHash('sha256').update(text).digest()).slice(0, length);
}

/** `ns/name:port`: kube-proxy's ServicePortName.String(). */
export function servicePortName(s: BenchService): string {
  return `${s.namespace}/${s.name}:${s.portName}`;
}

/** `ip:port`, `[ip6]:port`: Go's net.JoinHostPort, as kube-proxy hashes and DNATs it. */
export function endpointText(e: BenchEndpoint): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

// iptables mode (pkg/proxy/iptables): 16 characters of hash after the prefix.
export function iptSvcChain(s: BenchService): string {
  return `KUBE-SVC-${hash(servicePortName(s) + s.protocol.toLowerCase(), 16)}`;
}

export function iptSepChain(s: BenchService, e: BenchEndpoint): string {
  return `KUBE-SEP-${hash(servicePortName(s) + s.protocol.toLowerCase() + endpointText(e), 16)}`;
}

// nftables mode (pkg/proxy/nftables): 8 characters of hash, then the readable name.
export function nftServiceChain(s: BenchService): string {
  const base = `${s.namespace}/${s.name}/${s.protocol.toLowerCase()}/${s.portName}`;
  return `service-${hash(servicePortName(s) + s.protocol.toLowerCase(), 8)}-${base}`;
}

export function nftEndpointChain(s: BenchService, e: BenchEndpoint): string {
  // nft chain names cannot hold ':': an IPv6 address is written with '.' instead, as kube-proxy does.
  const base = `${s.namespace}/${s.name}/${s.protocol.toLowerCase()}/${s.portName}__${e.ip.replaceAll(':', '.')}/${e.port}`;
  return `endpoint-${hash(servicePortName(s) + s.protocol.toLowerCase() + endpointText(e), 8)}-${base}`;
}
