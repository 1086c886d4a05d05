// Keeps the loadBalancerSourceRanges tries equal to the external entries that have ranges: one
// trie entry per (service id, prefix), matched by the XDP program when the entry's flags say so.
// New prefixes are written before old ones go, so a change of ranges never denies a source that
// both the old and the new ranges allow.

import type { BpfMap } from '../bpf/binding.ts';
import { encode, Layouts } from '../datapath/abi.ts';
import { parseCidr } from '../model/ip.ts';
import type { DesiredFrontend } from '../model/types.ts';

const ALLOWED = Buffer.from([1]);

export class SourceRanges {
  readonly #v4: BpfMap;
  readonly #v6: BpfMap;
  /** What the tries hold, by hex key, with the map it is in; read back at start. */
  #held = new Map<string, { map: BpfMap; key: Buffer }>();

  constructor(v4: BpfMap, v6: BpfMap) {
    this.#v4 = v4;
    this.#v6 = v6;
    for (const map of [v4, v6]) for (const key of map.keys()) this.#held.set(key.toString('hex'), { map, key });
  }

  /**
   * Writes the prefixes of every external entry with ranges under its service id (`idOf`: the id
   * the reconciler gave the entry; undefined when it is not programmed) and deletes the rest.
   * Returns how many writes and deletes it made.
   */
  sync(entries: readonly DesiredFrontend[], idOf: (d: DesiredFrontend) => number | undefined): number {
    const wanted = new Map<string, { map: BpfMap; key: Buffer }>();
    for (const d of entries) {
      if (d.frontend.scope !== 'external' || !d.sourceRanges?.length) continue;
      const serviceId = idOf(d);
      if (serviceId === undefined) continue;
      for (const text of d.sourceRanges) {
        const cidr = parseCidr(text);
        // A range of the other family can never match this frontend's clients.
        if (!cidr || cidr.family !== d.frontend.family) continue;
        const v4 = cidr.family === 4;
        const key = encode(v4 ? Layouts.lb4SrcRangeKey : Layouts.lb6SrcRangeKey, {
          prefixlen: 32 + cidr.prefix,
          service_id: serviceId,
          address: cidr.address,
        });
        wanted.set(key.toString('hex'), { map: v4 ? this.#v4 : this.#v6, key });
      }
    }
    let writes = 0;
    for (const [hex, entry] of wanted) {
      if (this.#held.has(hex)) continue;
      entry.map.update(entry.key, ALLOWED);
      this.#held.set(hex, entry);
      writes++;
    }
    for (const [hex, entry] of this.#held) {
      if (wanted.has(hex)) continue;
      entry.map.delete(entry.key);
      this.#held.delete(hex);
      writes++;
    }
    return writes;
  }
}
