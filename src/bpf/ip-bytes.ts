// Conversions between textual IP addresses and the net-order bytes the maps hold. They live in the
// bpf layer, the lowest, because the binding hands the kernel such bytes; datapath/abi.ts uses them too.

import { isIPv6 } from 'node:net';

export function ipv4ToBytes(address: string): Buffer {
  const out = Buffer.allocUnsafe(4);
  writeIpv4(out, 0, address);
  return out;
}

/**
 * Writes a dotted quad's 4 bytes at `offset`, strict as net.isIPv4 (no leading zeros, no short
 * forms). By char codes: the batch writes of a first sync encode hundreds of thousands of addresses.
 */
export function writeIpv4(buf: Buffer, offset: number, address: string): void {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= address.length; i++) {
    const c = i < address.length ? address.charCodeAt(i) : DOT;
    if (c >= ZERO && c <= ZERO + 9 && digits < 3 && !(digits === 1 && value === 0)) {
      value = value * 10 + (c - ZERO);
      digits++;
    } else if (c === DOT && digits > 0 && value <= 255 && part < 4) {
      buf[offset + part++] = value;
      value = 0;
      digits = 0;
    } else {
      part = -1;
      break;
    }
  }
  if (part !== 4) throw new TypeError(`not an IPv4 address: ${JSON.stringify(address)}`);
}

const ZERO = 0x30;
const DOT = 0x2e;

export function ipv6ToBytes(address: string): Buffer {
  if (!isIPv6(address)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(address)}`);
  let text = address;
  const words: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4ToBytes(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const headWords = parse(head);
  const tailWords = tail === undefined ? [] : parse(tail);
  words.push(...headWords, ...new Array(8 - headWords.length - tailWords.length).fill(0), ...tailWords);
  const out = Buffer.alloc(16);
  for (const [i, w] of words.entries()) out.writeUInt16BE(w, i * 2);
  return out;
}

export function bytesToIpv4(bytes: Buffer): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** Canonical RFC 5952 text: lower case, the longest run of two or more zero words as `::`. */
export function bytesToIpv6(bytes: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
