// The agent's side of lb_frontend_filter_v1 (bpf/lib/sock.h): a bit per hash of each in-cluster
// frontend, so the connect hook tells "no service" from one array read. The agent counts the
// frontends behind each bit, sets a bit before its first frontend is written and clears it after
// its last one is deleted, so a frontend in the service map always has its bit.

import { endianness } from 'node:os';
import type { BpfMap } from '../bpf/binding.ts';
import type { Frontend } from '../model/types.ts';
import { readU32, writeU32 } from './abi.ts';
import { frontendKey } from './kernel-maps.ts';

const LITTLE = endianness() === 'LE';

/** Words (64 bits each) for a capacity of `frontends` per family: 32 bits per frontend of both families, a power of two. */
export function filterWords(frontends: number): number {
  let words = 1;
  while (words * 64 < 2 * frontends * 32) words *= 2;
  return words;
}

/** lb_mix32 (bpf/lib/lb.h). */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** lb_hash_add (bpf/lib/lb.h): folds a word into the hash, in 32-bit arithmetic. */
export function hashAdd(h: number, word: number): number {
  return mix((h ^ ((word + 0x9e3779b9 + ((h << 6) >>> 0) + (h >>> 2)) >>> 0)) >>> 0);
}

/** The hash the connect hook computes for a frontend: over its key's bytes as the CPU loads them. */
export function frontendHash(frontend: Frontend): number {
  return keyHash(frontend.family, frontendKey(frontend));
}

/** frontendHash over the frontend's encoded key (struct lb4_key or lb6_key). */
function keyHash(family: Frontend['family'], key: Buffer): number {
  const u32 = (offset: number) => (LITTLE ? key.readUInt32LE(offset) : key.readUInt32BE(offset));
  const port = LITTLE ? key.readUInt16LE(family === 4 ? 4 : 16) : key.readUInt16BE(family === 4 ? 4 : 16);
  const proto = key[family === 4 ? 6 : 18]!;
  let h = mix((port << 8) | proto);
  if (family === 4) return hashAdd(h, u32(0));
  for (let word = 0; word < 4; word++) h = hashAdd(h, u32(4 * word));
  return h;
}

/** The filter's bit for a frontend: word and bit within it. */
export function filterBit(frontend: Frontend, words: number): { word: number; bit: number } {
  return bitOf(frontendHash(frontend), words);
}

function bitOf(h: number, words: number): { word: number; bit: number } {
  return { word: (h >>> 6) & (words - 1), bit: h & 63 };
}

/** Only in-cluster frontends are looked up by the connect hook; external ones are XDP's. */
const filtered = (f: Frontend): boolean => f.scope !== 'external';

export class FrontendFilter {
  readonly words: number;
  readonly #map: BpfMap;
  /** The frontends counted, by their map key: a rewrite of a frontend's entry does not count it twice. */
  readonly #members = new Set<string>();
  /** Frontends behind each set bit, by `word * 64 + bit`. */
  readonly #counts = new Map<number, number>();
  /** The words as written to the map, by word index (absent: zero). */
  readonly #bits = new Map<number, bigint>();

  constructor(map: BpfMap, words: number) {
    this.#map = map;
    this.words = words;
  }

  /**
   * Makes the map hold exactly the bits of `frontends` (those already in the service maps), writing
   * only the words that differ from what it holds: on start, over a pinned filter or a new one.
   */
  rebuild(frontends: Iterable<Frontend>): void {
    this.#members.clear();
    this.#counts.clear();
    this.#bits.clear();
    for (const f of frontends) this.#count(f, 1);
    const differ: number[] = [];
    for (const [key, value] of this.#map.entries(4096)) {
      const word = readU32(key);
      if (readU64(value) !== (this.#bits.get(word) ?? 0n)) differ.push(word);
    }
    this.#writeWords(differ);
  }

  /** Before the frontend's entry is written (again or for the first time). */
  add(frontend: Frontend): void {
    const word = this.#count(frontend, 1);
    if (word !== undefined) this.#write(word, this.#bits.get(word) ?? 0n);
  }

  /** add() for many frontends before their entries are written, with the words that change written in one batch. */
  addAll(frontends: readonly Frontend[]): void {
    const changed = new Set<number>();
    for (const f of frontends) {
      const word = this.#count(f, 1);
      if (word !== undefined) changed.add(word);
    }
    this.#writeWords([...changed]);
  }

  /** After the frontend's entry is deleted (or its first write failed). */
  remove(frontend: Frontend): void {
    const word = this.#count(frontend, -1);
    if (word !== undefined) this.#write(word, this.#bits.get(word) ?? 0n);
  }

  /** How many bits are set: the share of non-service connects that still pay the lookup is this / (words * 64). */
  get setBits(): number {
    return this.#counts.size;
  }

  /** Counts a frontend in or out of its bit; returns the word when the bit flipped. */
  #count(frontend: Frontend, delta: 1 | -1): number | undefined {
    if (!filtered(frontend)) return undefined;
    const key = frontendKey(frontend);
    const member = key.toString('latin1');
    if (this.#members.has(member) === (delta === 1)) return undefined;
    if (delta === 1) this.#members.add(member);
    else this.#members.delete(member);
    const { word, bit } = bitOf(keyHash(frontend.family, key), this.words);
    const index = word * 64 + bit;
    const before = this.#counts.get(index) ?? 0;
    const after = before + delta;
    if (after) this.#counts.set(index, after);
    else this.#counts.delete(index);
    if ((before === 0) === (after === 0)) return undefined;
    const mask = 1n << BigInt(bit);
    const bits = this.#bits.get(word) ?? 0n;
    const next = after ? bits | mask : bits & ~mask;
    if (next) this.#bits.set(word, next);
    else this.#bits.delete(word);
    return word;
  }

  /** Writes these words as counted, in one batch where the kernel has batches (else, or for what a batch left, one by one). */
  #writeWords(words: readonly number[]): void {
    if (words.length === 0) return;
    const keyBuf = Buffer.alloc(4 * words.length);
    const valueBuf = Buffer.alloc(8 * words.length);
    words.forEach((word, i) => {
      writeU32(keyBuf, 4 * i, word);
      writeU64(valueBuf, this.#bits.get(word) ?? 0n, 8 * i);
    });
    const { done } = this.#map.updateBatchSome(keyBuf, valueBuf);
    for (const word of words.slice(done)) this.#write(word, this.#bits.get(word) ?? 0n);
  }

  #write(word: number, bits: bigint): void {
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(8);
    writeU32(key, 0, word);
    writeU64(value, bits, 0);
    this.#map.update(key, value);
  }
}

// The map's value is a host-order __u64.
const readU64 = (b: Buffer): bigint => (LITTLE ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0));
const writeU64 = (b: Buffer, v: bigint, at: number): void => {
  if (LITTLE) b.writeBigUInt64LE(v, at);
  else b.writeBigUInt64BE(v, at);
};
