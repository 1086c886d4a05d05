// The end-to-end fixture of the Kubernetes agent: a NetnsLab (client namespace, pods, cgroup), our
// fake API server on 127.0.0.1, and an in-process Agent fed by a KubernetesSource and reporting to a
// HealthServer on 127.0.0.1:0, wired as `src/daemon/main.ts` wires them. Everything it makes is
// removed by close(), also after a failure half-way through create().

import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { cleanup } from '../../src/agent/datapath.ts';
import { kubernetesSourceFor, wireHealth } from '../../src/daemon/main.ts';
import { HealthServer } from '../../src/health/health-server.ts';
import { NetnsLab, NODE_IPV4, type ProbeResult } from '../../src/lab/netns-lab.ts';
import { type DesiredFrontend, endpointKey } from '../../src/model/types.ts';
import type { KubernetesSource } from '../../src/sources/kubernetes.ts';
import { FakeApiServer, fixture, type KubeObject } from './fake-apiserver.ts';
import { SMALL_CAPACITY } from './sock-lab.ts';
import { scaled } from './time-scale.ts';

export const NODE_NAME = 'node-a';
export const OTHER_NODE = 'node-b';

export interface K8sLabOptions {
  /** Pod namespaces (default 3). */
  pods?: number;
  /** TCP ports every pod's server listens on (default 8080). */
  tcpPorts?: number[];
  /** The agent's minSyncPeriod (default 20 ms). */
  minSyncPeriodMs?: number;
  /** Objects the API server holds before the agent starts (the Node is always there). */
  seed?: KubeObject[];
  /** Watch every Node, as `--nodeport-mode dsr` makes the agent do (default: this node only). */
  allNodes?: boolean;
}

/** The fake Node for this agent: the lab bridge address is its InternalIP, so NodePorts live there. */
export function labNode(): KubeObject {
  const node = fixture('node');
  node.metadata!.name = NODE_NAME;
  node.metadata!.labels['kubernetes.io/hostname'] = NODE_NAME;
  node.status.addresses = [
    { address: NODE_IPV4, type: 'InternalIP' },
    { address: NODE_NAME, type: 'Hostname' },
  ];
  return node;
}

/** A free TCP port on 127.0.0.1 (for a healthCheckNodePort the service health server can bind). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class K8sLab {
  readonly lab: NetnsLab;
  readonly api: FakeApiServer;
  readonly bpffs: string;
  readonly log: Logger;
  /** KubernetesSource errors (lists and watches that failed and are retried). */
  readonly sourceErrors: Error[] = [];
  #dir: string;
  #agent: Agent | undefined;
  #source: KubernetesSource | undefined;
  #health: HealthServer | undefined;
  #healthUrl = '';
  #closed = false;
  /** Per informer, the resourceVersion of the latest snapshot handed to the agent, and of the latest programmed. */
  #handed = { services: 0, endpointslices: 0, node: 0 };
  #programmed = { services: 0, endpointslices: 0, node: 0 };

  private constructor(lab: NetnsLab, api: FakeApiServer, dir: string) {
    this.lab = lab;
    this.api = api;
    this.#dir = dir;
    this.bpffs = `/sys/fs/bpf/${lab.prefix}`;
    this.log = pino({ level: process.env.SOCKLB_TEST_LOG ?? 'silent' });
  }

  /** Makes the lab, starts pods' servers, the API server and the agent; resolves once in sync. */
  static async create(tag: string, options: K8sLabOptions = {}): Promise<K8sLab> {
    const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix(tag), backends: options.pods ?? 3 });
    const api = new FakeApiServer();
    const k = new K8sLab(lab, api, mkdtempSync(join(tmpdir(), `socklb-${tag}-`)));
    try {
      for (const pod of lab.pods) await lab.startServer(pod.index, { tcp: options.tcpPorts ?? [8080] });
      await api.start();
      api.add(labNode());
      for (const o of options.seed ?? []) api.add(o);
      await k.#start(options.minSyncPeriodMs ?? 20, options.allNodes ?? false);
    } catch (err) {
      await k.close().catch(() => {});
      throw err;
    }
    return k;
  }

  // As runAgent() in src/daemon/main.ts (the Kubernetes branch): health first, then the agent's
  // sync listener feeding the health server, then the source feeding both.
  async #start(minSyncPeriodMs: number, allNodes: boolean): Promise<void> {
    const log = this.log;
    const health = new HealthServer({ address: '127.0.0.1:0', serviceHealthHost: '127.0.0.1', healthTimeoutMs: 60_000, log });
    this.#health = health;
    const bound = await health.listen();
    this.#healthUrl = `http://127.0.0.1:${bound.port}`;
    const agent = await Agent.create({
      bpffs: this.bpffs,
      cgroup: this.lab.cgroupPath,
      capacity: SMALL_CAPACITY,
      reverseEntries: 4096,
      node: { name: NODE_NAME },
      log,
      minSyncPeriodMs,
    });
    this.#agent = agent;
    agent.onSync(() => {
      this.#programmed = { ...this.#handed };
    });
    wireHealth(agent, health, log);
    const source = await kubernetesSourceFor(agent, health, {
      nodeName: NODE_NAME,
      kubeconfig: this.api.writeKubeconfig(this.#dir),
      log,
      backoff: { initialMs: 50, maxMs: 400 },
      allNodes,
      onHandOver: () => {
        const informers = source.status().informers;
        for (const k of ['services', 'endpointslices', 'node'] as const) this.#handed[k] = Number(informers[k].resourceVersion || 0);
      },
      onError: (err) => this.sourceErrors.push(err),
    });
    this.#source = source;
    await withTimeout(source.start(), scaled(15_000), `the Kubernetes source did not list within ${scaled(15)} s`);
    await withTimeout(agent.whenSynced(), scaled(5_000), `the agent did not sync within ${scaled(5)} s`);
  }

  get agent(): Agent {
    if (!this.#agent) throw new Error('agent not started');
    return this.#agent;
  }

  get source(): KubernetesSource {
    if (!this.#source) throw new Error('source not started');
    return this.#source;
  }

  get health(): HealthServer {
    if (!this.#health) throw new Error('health server not started');
    return this.#health;
  }

  /** The table entry for a frontend key such as `TCP/10.96.0.10:80`, or undefined. */
  frontend(key: string): DesiredFrontend | undefined {
    return this.agent.table.frontends.find((f) => endpointKey(f.frontend) === key);
  }

  /** Backend `address:port`s of a frontend as the table holds them ([] when absent). */
  backendsOf(key: string, external = false): string[] {
    const f = this.frontend(key);
    const list = external ? f?.externalBackends : f?.backends;
    return (list ?? []).map((b) => `${b.address}:${b.port}`);
  }

  /** Backend `address:port`s the maps hold for a frontend key (undefined when no service entry). */
  programmed(key: string): string[] | undefined {
    const state = this.agent.reconciler.state;
    const svc = state.services.get(key);
    if (!svc) return undefined;
    const out: string[] = [];
    for (let slot = 1; slot <= svc.backendCount; slot++) {
      const b = state.backends.get(svc.slots.get(slot) ?? -1);
      if (b) out.push(`${b.address}:${b.port}`);
    }
    return out.sort();
  }

  /** Polls until check() holds, the agent has no change queued, and returns; throws after ms. */
  async until(what: string, check: () => boolean, ms = 5000): Promise<void> {
    ms = scaled(ms);
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.agent.status().inSync && check()) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await sleep(10);
    }
  }

  /**
   * Waits until the agent has programmed changes made at the API server: for each object (as
   * api.add/modify or remove() return it), its informer has seen its resourceVersion and a
   * reconcile ran after that.
   */
  async settle(stored: KubeObject | KubeObject[], ms = 5000): Promise<void> {
    const want = { services: 0, endpointslices: 0, node: 0 };
    for (const o of Array.isArray(stored) ? stored : [stored]) {
      const which = informerOf(o.kind);
      want[which] = Math.max(want[which], Number(o.metadata?.resourceVersion));
    }
    await this.until(
      `the agent to program resourceVersions ${JSON.stringify(want)}`,
      () => (['services', 'endpointslices', 'node'] as const).every((w) => this.#programmed[w] >= want[w]),
      ms,
    );
  }

  /** Deletes an object at the API server; returns what settle() needs to wait for the deletion. */
  remove(o: KubeObject): KubeObject {
    this.api.remove(o);
    return { kind: o.kind, metadata: { name: o.metadata?.name, resourceVersion: String(this.api.resourceVersion) } };
  }

  /** A probe from the client namespace (the lab cgroup, so the agent's hooks see it). */
  probe(target: string, count = 10, extra: string[] = []): Promise<ProbeResult> {
    return this.lab.runProbe(['tcp', '--target', target, '--count', String(count), ...extra]);
  }

  /** GET on the kube-proxy compatible health server (/healthz, /livez). */
  async healthz(path: '/healthz' | '/livez'): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.#healthUrl}${path}`, { signal: AbortSignal.timeout(scaled(2000)) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** GET on a service health-check listener (healthCheckNodePort on 127.0.0.1). */
  async serviceHealth(port: number): Promise<{ status: number; weight: string | null; body: Record<string, unknown> }> {
    const res = await fetch(`http://127.0.0.1:${port}/any/path`, { signal: AbortSignal.timeout(scaled(2000)) });
    return {
      status: res.status,
      weight: res.headers.get('x-load-balancing-endpoint-weight'),
      body: (await res.json()) as Record<string, unknown>,
    };
  }

  /** Removes everything: source, health, agent fds, pins, lab, API server, temp dir. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const steps: (() => Promise<unknown> | unknown)[] = [
      () => this.#source?.stop(),
      () => this.#health?.close(),
      () => this.#agent?.close(),
      () => cleanup(this.bpffs),
      () => this.lab.destroy(),
      () => this.api.stop(),
      () => rmSync(this.#dir, { recursive: true, force: true }),
    ];
    const errors: unknown[] = [];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `K8sLab.close: ${errors.length} step(s) failed`);
  }
}

function informerOf(kind: string | undefined): 'services' | 'endpointslices' | 'node' {
  if (kind === 'Service') return 'services';
  if (kind === 'EndpointSlice') return 'endpointslices';
  if (kind === 'Node') return 'node';
  throw new TypeError(`no informer for kind ${String(kind)}`);
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
