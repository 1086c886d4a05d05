// Keeps the loadBalancerSourceRanges tries equal to the external entries that have ranges: one
// trie entry per (service id, prefix), matched by the XDP program when the entry's flags say so.
// New prefixes are written before old ones go, so a change of ranges never denies a source that
// both the old and the new ranges allow.

import type { BpfMap } from '../bpf/binding.ts';
import { encode, Layouts } from '../datapath/abi.ts';
import { parseCidr } from '../model/ip.ts';
import { type DesiredFrontend, endpointKey } from '../model/types.ts';

const ALLOWED = Buffer.from([1]);

type Held = Map<string, { map: BpfMap; key: Buffer }>;

export class SourceRanges {
  readonly #v4: BpfMap;
  readonly #v6: BpfMap;
  /** What the tries hold, by frontend key and hex key; what was there at start waits under '' for the first sync. */
  #held = new Map<string, Held>();
  /** hex key -> the frontend key it is held under: a prefix can pass from one frontend to another (an id reused) without a gap. */
  #owners = new Map<string, string>();

  constructor(v4: BpfMap, v6: BpfMap) {
    this.#v4 = v4;
    this.#v6 = v6;
    const adopted: Held = new Map();
    for (const map of [v4, v6]) for (const key of map.keys()) adopted.set(key.toString('hex'), { map, key });
    if (adopted.size > 0) this.#held.set('', adopted);
    for (const hex of adopted.keys()) this.#owners.set(hex, '');
  }

  /**
   * Writes the prefixes of every external entry with ranges under its service id (`idOf`: the id
   * the reconciler gave the entry; undefined when it is not programmed) and deletes the rest.
   * Returns how many writes and deletes it made.
   */
  sync(entries: readonly DesiredFrontend[], idOf: (d: DesiredFrontend) => number | undefined): number {
    const changes = new Map<string, DesiredFrontend | undefined>();
    for (const key of this.#held.keys()) changes.set(key, undefined);
    for (const d of entries) changes.set(endpointKey(d.frontend), d);
    return this.syncChanges(changes, idOf).writes;
  }

  /**
   * sync() for the frontends named in `changes` only (key -> entry, or undefined when gone); the
   * others keep what they have. Returns the writes made and the keys of entries with ranges that
   * have no service id yet, to name again next time.
   */
  syncChanges(
    changes: ReadonlyMap<string, DesiredFrontend | undefined>,
    idOf: (d: DesiredFrontend) => number | undefined,
  ): { writes: number; unprogrammed: string[] } {
    let writes = 0;
    const unprogrammed: string[] = [];
    for (const [frontendKey, d] of changes) {
      const wanted: Held = new Map();
      if (d && d.frontend.scope === 'external' && d.sourceRanges?.length) {
        const serviceId = idOf(d);
        if (serviceId === undefined) unprogrammed.push(frontendKey);
        else this.#prefixes(d, serviceId, wanted);
      }
      const held = this.#held.get(frontendKey) ?? new Map();
      for (const [hex, entry] of wanted) {
        const owner = this.#owners.get(hex);
        if (owner === frontendKey) continue;
        if (owner === undefined) {
          entry.map.update(entry.key, ALLOWED);
          writes++;
        } else this.#release(owner, hex);
        held.set(hex, entry);
        this.#owners.set(hex, frontendKey);
      }
      for (const [hex, entry] of held) {
        if (wanted.has(hex)) continue;
        entry.map.delete(entry.key);
        held.delete(hex);
        this.#owners.delete(hex);
        writes++;
      }
      if (held.size > 0) this.#held.set(frontendKey, held);
      else this.#held.delete(frontendKey);
    }
    return { writes, unprogrammed };
  }

  #release(owner: string, hex: string): void {
    const held = this.#held.get(owner);
    held?.delete(hex);
    if (held?.size === 0) this.#held.delete(owner);
  }

  #prefixes(d: DesiredFrontend, serviceId: number, into: Held): void {
    for (const text of d.sourceRanges ?? []) {
      const cidr = parseCidr(text);
      // A range of the other family can never match this frontend's clients.
      if (!cidr || cidr.family !== d.frontend.family) continue;
      const v4 = cidr.family === 4;
      const key = encode(v4 ? Layouts.lb4SrcRangeKey : Layouts.lb6SrcRangeKey, {
        prefixlen: 32 + cidr.prefix,
        service_id: serviceId,
        address: cidr.address,
      });
      into.set(key.toString('hex'), { map: v4 ? this.#v4 : this.#v6, key });
    }
  }
}
