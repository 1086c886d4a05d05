// A network-namespace lab with a socklb agent attached to its client cgroup, fed from a manifest
// file: the fixture of the datapath tests. Everything it makes is removed by close(), also after a
// failure (the lab's own exit hooks cover a crash).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { cleanup } from '../../src/agent/datapath.ts';
import type { Features } from '../../src/agent/features.ts';
import type { Capacity } from '../../src/datapath/maps.ts';
import { NetnsLab } from '../../src/lab/netns-lab.ts';
import { type Backend, endpointKey } from '../../src/model/types.ts';
import { ManifestSource } from '../../src/sources/manifest.ts';
import { manifest } from './objects.ts';
import { scaled } from './time-scale.ts';

export const SMALL_CAPACITY: Capacity = { services: 256, slots: 1024, backends: 256, serviceIds: 513, backendIds: 513 };

export class SockLab {
  readonly lab: NetnsLab;
  readonly bpffs: string;
  readonly manifestPath: string;
  readonly #dir: string;
  #agent: Agent | undefined;
  #source: ManifestSource | undefined;

  private constructor(lab: NetnsLab, dir: string) {
    this.lab = lab;
    this.#dir = dir;
    this.bpffs = `/sys/fs/bpf/${lab.prefix}`;
    this.manifestPath = join(dir, 'services.yaml');
  }

  static async create(tag: string, pods: number): Promise<SockLab> {
    const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix(tag), backends: pods });
    return new SockLab(lab, mkdtempSync(join(tmpdir(), `socklb-${tag}-`)));
  }

  get agent(): Agent {
    if (!this.#agent) throw new Error('agent not started');
    return this.#agent;
  }

  /** Writes the manifest and starts an in-process agent on it; resolves once it is in sync. */
  async startAgent(docs: (object | string)[], capacity: Capacity = SMALL_CAPACITY, features?: Features): Promise<Agent> {
    writeFileSync(this.manifestPath, manifest(docs));
    const agent = await Agent.create({
      bpffs: this.bpffs,
      cgroup: this.lab.cgroupPath,
      capacity,
      reverseEntries: 4096,
      node: { name: 'node-a' },
      log: pino({ level: process.env.SOCKLB_TEST_LOG ?? 'silent' }),
      minSyncPeriodMs: 0,
      ...(features ? { features } : {}),
    });
    this.#agent = agent;
    this.#source = new ManifestSource(this.manifestPath, { onChange: (s) => agent.update(s), pollIntervalMs: 200 });
    await this.#source.start();
    await agent.whenSynced();
    return agent;
  }

  /** Rewrites the manifest and waits until the agent has programmed it. */
  async apply(docs: (object | string)[], timeoutMs = 5000): Promise<void> {
    const before = this.agent.status().syncs;
    writeFileSync(this.manifestPath, manifest(docs));
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const s = this.agent.status();
      if (s.syncs > before && s.inSync) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`agent did not sync the new manifest within ${timeoutMs} ms`);
  }

  /** Waits until the datapath has sent a connect or datagram to this backend (a client is up). */
  async waitForBackendUse(backend: Backend, timeoutMs = 15_000): Promise<void> {
    const key = endpointKey(backend);
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const id = [...this.agent.reconciler.state.backends].find(([, b]) => endpointKey(b) === key)?.[0];
      if (id !== undefined && this.agent.reconciler.maps.backendConnects(id) > 0n) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no client reached ${key} within ${timeoutMs} ms`);
  }

  async stopAgent(): Promise<void> {
    await this.#source?.stop();
    this.#source = undefined;
    await this.#agent?.close();
    this.#agent = undefined;
  }

  async close(): Promise<void> {
    try {
      await this.stopAgent();
    } finally {
      cleanup(this.bpffs);
      await this.lab.destroy();
      rmSync(this.#dir, { recursive: true, force: true });
    }
  }
}

/** Pearson's chi-square statistic of observed counts against a uniform spread. */
export function chiSquareUniform(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}
