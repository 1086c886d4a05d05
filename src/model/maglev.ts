// Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): the lookup table a Service
// with `socklb.io/scheduler: maglev` hashes into. Pure; every node builds the same table from the
// same backends, which is what lets them pick the same backend for a flow.

/**
 * Table sizes an operator may choose: primes (the permutation needs M prime so that every skip is
 * coprime with it), each roughly twice the last, up to the paper's 65,537. M should be well above
 * 100 times the backend count for the paper's balance; 16,381 suits services of up to ~160 backends.
 */
export const MAGLEV_TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 65537] as const;
export const DEFAULT_MAGLEV_TABLE_SIZE = 16381;

/**
 * 32-bit FNV-1a over the name's UTF-16 code units, then murmur3's finaliser so that names which
 * differ in one character (10.244.1.5 and 10.244.1.6) land far apart. `seed` gives independent hashes.
 */
function hash32(name: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Fills a table of `size` positions with backend indexes (into `names`): each backend walks its own
 * permutation of the positions (offset and skip from two hashes of its name) and takes the next free
 * one when its turn comes. Turns follow weight: every round a backend earns its weight in credit and
 * takes a position per `max weight` of credit, so shares are proportional and, with equal weights,
 * each backend holds ⌊M/N⌋ or ⌈M/N⌉ positions. A backend of weight 0 takes none. Returns an empty
 * table when no backend has weight.
 */
export function maglevTable(names: readonly string[], weights: readonly number[], size: number): Uint16Array {
  if (!MAGLEV_TABLE_SIZES.includes(size as (typeof MAGLEV_TABLE_SIZES)[number])) {
    throw new RangeError(`Maglev table size must be one of ${MAGLEV_TABLE_SIZES.join(', ')}, got ${size}`);
  }
  const n = names.length;
  if (n > 0xffff) throw new RangeError(`at most 65,535 backends fit a Maglev table, got ${n}`);
  if (weights.length !== n) throw new RangeError(`${n} names but ${weights.length} weights`);
  let maxWeight = 0;
  for (const w of weights) {
    if (!Number.isInteger(w) || w < 0) throw new RangeError(`weights must be integers >= 0, got ${w}`);
    maxWeight = Math.max(maxWeight, w);
  }
  if (maxWeight === 0) return new Uint16Array(0);
  // Turns are taken in name order, so two nodes listing the same backends differently agree.
  const order = Array.from(names.keys()).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
  // Where each backend's permutation (offset + j * skip mod size, j = 0, 1, ...) stands.
  const cursor = new Uint32Array(n);
  const skip = new Uint32Array(n);
  const credit = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const name = names[order[i]!]!;
    cursor[i] = hash32(name, 0) % size;
    skip[i] = (hash32(name, 0x9e3779b9) % (size - 1)) + 1;
  }
  // Position -> backend index + 1 (0: free), so a Uint16Array can hold "free" beside 65,535 backends.
  const entry = new Uint16Array(size);
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      credit[i]! += weights[order[i]!]!;
      while (credit[i]! >= maxWeight && filled < size) {
        credit[i]! -= maxWeight;
        let position = cursor[i]!;
        while (entry[position] !== 0) {
          position += skip[i]!;
          if (position >= size) position -= size;
        }
        entry[position] = order[i]! + 1;
        position += skip[i]!;
        cursor[i] = position >= size ? position - size : position;
        filled++;
      }
    }
  }
  for (let p = 0; p < size; p++) entry[p]!--;
  return entry;
}
