// Ends UDP sockets still connected to backends that were removed: a connected UDP socket keeps the
// backend address connect() gave it, so without this a DNS client stays stuck on a dead backend.
// Two ways, the same result: a BPF socket iterator calling bpf_sock_destroy (Linux 6.5+, the
// filtering done in the kernel), or sock_diag's SOCK_DESTROY (any kernel with INET_DIAG_DESTROY).

import { readdirSync, statSync } from 'node:fs';
import { type BpfLink, type BpfMap, destroyUdpSocketsAsync, readIteratorAsync } from '../bpf/binding.ts';
import { encode, Layouts } from '../datapath/abi.ts';
import type { Backend } from '../model/types.ts';

export interface DestroyResult {
  destroyed: number;
  namespaces: number;
  /** Namespaces that could not be searched (the process left, or a sandbox forbids it), by path. */
  failures: Record<string, string>;
}

export interface UdpSocketDestroyer {
  readonly method: 'bpf_sock_destroy' | 'sock_diag';
  /**
   * Ends the UDP sockets connected to any of these backends, in every network namespace, whatever
   * their number. The work in each namespace runs on a worker thread, so health and debug keep
   * answering meanwhile.
   * Throws (rejects) only when the whole run failed, e.g. a map write: the caller retries it.
   */
  destroy(backends: readonly Backend[]): Promise<DestroyResult>;
  close(): void;
}

/**
 * Runs `destroyIn` in every network namespace of the running processes: sockets belong to a
 * namespace, and both ways only see the namespace they run in.
 */
async function inEveryNamespace(destroyIn: (ns: string) => Promise<number>): Promise<DestroyResult> {
  let destroyed = 0;
  const failures: Record<string, string> = {};
  const namespaces = networkNamespaces();
  for (const ns of namespaces) {
    try {
      destroyed += await destroyIn(ns);
    } catch (err) {
      failures[ns] = (err as Error).message;
    }
  }
  return { destroyed, namespaces: namespaces.length, failures };
}

function udpOnly(backends: readonly Backend[]): Backend[] {
  return backends.filter((b) => b.protocol === 'UDP');
}

const PRESENT = Buffer.from([1]);

/**
 * The BPF way: mark the backends in the destroy maps, run the iterator, clear the marks. The maps
 * hold `chunk` marks, so more backends than that are destroyed in several runs.
 */
export class SocketDestroyer implements UdpSocketDestroyer {
  readonly method = 'bpf_sock_destroy';
  readonly #iterator: BpfLink;
  readonly #v4: BpfMap;
  readonly #v6: BpfMap;
  readonly #chunk: number;

  constructor(iterator: BpfLink, v4: BpfMap, v6: BpfMap, chunk: number) {
    this.#iterator = iterator;
    this.#v4 = v4;
    this.#v6 = v6;
    this.#chunk = chunk;
  }

  async destroy(backends: readonly Backend[]): Promise<DestroyResult> {
    const udp = udpOnly(backends);
    const total: DestroyResult = { destroyed: 0, namespaces: 0, failures: {} };
    for (let at = 0; at < udp.length; at += this.#chunk) {
      const one = await this.#destroyChunk(udp.slice(at, at + this.#chunk));
      total.destroyed += one.destroyed;
      total.namespaces = one.namespaces;
      Object.assign(total.failures, one.failures);
    }
    return total;
  }

  async #destroyChunk(udp: readonly Backend[]): Promise<DestroyResult> {
    const marked: [BpfMap, Buffer][] = udp.map((b) => {
      const values = { address: b.address, port: b.port };
      return b.family === 4 ? [this.#v4, encode(Layouts.lb4DestroyKey, values)] : [this.#v6, encode(Layouts.lb6DestroyKey, values)];
    });
    try {
      for (const [map, key] of marked) map.update(key, PRESENT);
      return await inEveryNamespace(
        async (ns) => (await readIteratorAsync(this.#iterator, ns)).split('\n').filter((line) => line === 'destroyed').length,
      );
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

/** The sock_diag way, for kernels without the bpf_sock_destroy kfunc. */
export class SockDiagDestroyer implements UdpSocketDestroyer {
  readonly method = 'sock_diag';

  async destroy(backends: readonly Backend[]): Promise<DestroyResult> {
    const targets = udpOnly(backends).map((b) => ({ family: b.family, address: b.address, port: b.port }));
    if (targets.length === 0) return { destroyed: 0, namespaces: 0, failures: {} };
    return inEveryNamespace(async (ns) => (await destroyUdpSocketsAsync(targets, ns)).destroyed);
  }

  close(): void {}
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
