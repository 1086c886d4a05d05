// Ends UDP sockets still connected to backends that were removed: a connected UDP socket keeps the
// backend address connect() gave it, so without this a DNS client stays stuck on a dead backend.

import { readdirSync, statSync } from 'node:fs';
import { readIterator, type BpfLink, type BpfMap } from '../bpf/binding.ts';
import { encode, Layouts } from '../datapath/abi.ts';
import type { Backend } from '../model/types.ts';

const PRESENT = Buffer.from([1]);

export interface DestroyResult {
  destroyed: number;
  namespaces: number;
  /** Namespaces that could not be entered (the process left, or a sandbox forbids it), by path. */
  failures: Record<string, string>;
}

export class SocketDestroyer {
  readonly #iterator: BpfLink;
  readonly #v4: BpfMap;
  readonly #v6: BpfMap;

  constructor(iterator: BpfLink, v4: BpfMap, v6: BpfMap) {
    this.#iterator = iterator;
    this.#v4 = v4;
    this.#v6 = v6;
  }

  /**
   * Marks the backends in the destroy maps, walks the UDP sockets of every network namespace (a
   * socket iterator only sees the namespace it is created in), then clears the marks.
   */
  destroy(backends: readonly Backend[]): DestroyResult {
    const udp = backends.filter((b) => b.protocol === 'UDP');
    if (udp.length === 0) return { destroyed: 0, namespaces: 0, failures: {} };
    const marked: [BpfMap, Buffer][] = udp.map((b) => {
      const values = { address: b.address, port: b.port };
      return b.family === 4
        ? [this.#v4, encode(Layouts.lb4DestroyKey, values)]
        : [this.#v6, encode(Layouts.lb6DestroyKey, values)];
    });
    try {
      for (const [map, key] of marked) map.update(key, PRESENT);
      let destroyed = 0;
      const failures: Record<string, string> = {};
      const namespaces = networkNamespaces();
      for (const ns of namespaces) {
        try {
          const out = readIterator(this.#iterator, ns);
          destroyed += out.split('\n').filter((line) => line === 'destroyed').length;
        } catch (err) {
          failures[ns] = (err as Error).message;
        }
      }
      return { destroyed, namespaces: namespaces.length, failures };
    } finally {
      for (const [map, key] of marked) map.delete(key);
    }
  }

  close(): void {
    this.#iterator.close();
    this.#v4.close();
    this.#v6.close();
  }
}

/** One /proc/PID/ns/net path per distinct network namespace of the running processes. */
export function networkNamespaces(): string[] {
  const seen = new Set<number>();
  const paths: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const path = `/proc/${entry}/ns/net`;
    try {
      const { ino } = statSync(path);
      if (seen.has(ino)) continue;
      seen.add(ino);
      paths.push(path);
    } catch {
      // The process exited while we looked: its namespace, if still used, shows through another.
    }
  }
  return paths;
}
