// A throwaway cluster node in network namespaces: a client/"node" netns with a bridge, N pod
// namespaces on it running lab backend servers, and a cgroup the agent attaches its hooks to.
// Kernel tests, the demo and benchmarks dial ClusterIPs only from inside these namespaces.
//
//   <prefix>-node   lo, br0 10.244.0.1/24 fd00:10:244::1/64, veth<i> (bridge ports)
//   <prefix>-pod<i> lo, eth0 10.244.0.(11+i)/24 fd00:10:244::(11+i)/64, default via br0
//   <cgroup2>/<prefix>      the clients (probes); attach the agent here
//   <cgroup2>/<prefix>-srv  the backend servers, so a kill of the cgroup reaps them all
//
// The owner record, processes, teardown and the sweep of dead runs are netns-base.ts's.

import * as path from 'node:path';
import { cgroup2Mount } from '../agent/host.ts';
import { type ServerHandle as BaseServerHandle, ip, LabBase, type ServerOptions } from './netns-base.ts';

export type { ExecResult, ProbeHandle, ProbeResult, ServerOptions, SpawnOptions, SweepResult } from './netns-base.ts';

export interface LabOptions {
  /** Names every namespace and cgroup of the lab: [a-z0-9-], at most 20 chars, unique per run. */
  prefix: string;
  /** Pod namespaces to create at once (0..100; more with addPod). */
  backends: number;
  /** Give the bridge and the pods IPv6 addresses too (default true). */
  ipv6?: boolean;
}

export interface LabPod {
  /** Stable for the pod's life; its address is derived from it and never reused in a lab. */
  index: number;
  /** `pod<index>`: the name its servers answer with unless told otherwise. */
  name: string;
  ns: string;
  ipv4: string;
  /** Undefined when the lab was made with `ipv6: false`. */
  ipv6?: string;
  /** The bridge port in the node namespace (the pod side is always `eth0`). */
  veth: string;
}

export type ServerHandle = BaseServerHandle<LabPod>;

/** Addresses of the node side of the pod network. */
export const NODE_IPV4 = '10.244.0.1';
export const NODE_IPV6 = 'fd00:10:244::1';
const FIRST_POD_HOST = 11;
const MAX_POD_INDEX = 254 - FIRST_POD_HOST;

export class NetnsLab extends LabBase {
  readonly nodeNs: string;
  /** The client cgroup: attach the agent's cgroup programs here. */
  readonly cgroupPath: string;
  /** The backend servers' cgroup (a sibling, so client hooks never touch server sockets). */
  readonly serverCgroupPath: string;
  readonly ipv6: boolean;
  readonly nodeAddress: { ipv4: string; ipv6?: string };

  #pods = new Map<number, LabPod>();
  #nextIndex = 0;

  private constructor(prefix: string, ipv6: boolean) {
    super(prefix);
    this.ipv6 = ipv6;
    this.nodeNs = `${prefix}-node`;
    const root = cgroup2Mount();
    this.cgroupPath = path.join(root, prefix);
    this.serverCgroupPath = path.join(root, `${prefix}-srv`);
    this.nodeAddress = ipv6 ? { ipv4: NODE_IPV4, ipv6: NODE_IPV6 } : { ipv4: NODE_IPV4 };
  }

  static async create(opts: LabOptions): Promise<NetnsLab> {
    if (!Number.isInteger(opts.backends) || opts.backends < 0 || opts.backends > 100) {
      throw new RangeError(`backends must be an integer in 0..100, got ${opts.backends}`);
    }
    const lab = new NetnsLab(opts.prefix, opts.ipv6 ?? true);
    await lab.#setup(opts.backends).catch(async (err: unknown) => {
      await lab.destroy().catch(() => {});
      throw err;
    });
    return lab;
  }

  protected defaultNs(): string {
    return this.nodeNs;
  }

  protected clientCgroup(): string {
    return this.cgroupPath;
  }

  // Pods before the node, so the node netns never outlives a pod's veth peer by much.
  protected override deletionOrder(names: string[]): string[] {
    return names.sort((a, b) => Number(a === this.nodeNs) - Number(b === this.nodeNs));
  }

  /** Live pods, by index. */
  get pods(): LabPod[] {
    return [...this.#pods.values()].sort((a, b) => a.index - b.index);
  }

  /** The pod with this index; throws if it was removed or never existed. */
  pod(index: number): LabPod {
    const p = this.#pods.get(index);
    if (!p) throw new RangeError(`lab ${this.prefix} has no pod ${index}`);
    return p;
  }

  async #setup(backends: number): Promise<void> {
    this.claim();
    for (const dir of [this.cgroupPath, this.serverCgroupPath]) this.addCgroup(dir);
    await this.addNetns(this.nodeNs);
    const v6 = this.ipv6 ? [`addr add ${NODE_IPV6}/64 dev br0 nodad`] : [];
    await ip(
      ['-n', this.nodeNs, '-batch', '-'],
      [
        'link set lo up',
        // No STP (ports forward at once) and no snooping (IPv6 neighbour discovery must just work).
        'link add br0 type bridge stp_state 0 mcast_snooping 0',
        `addr add ${NODE_IPV4}/24 dev br0`,
        ...v6,
        'link set br0 up',
        '',
      ].join('\n'),
    );
    const made: Promise<LabPod>[] = [];
    for (let i = 0; i < backends; i++) made.push(this.addPod());
    const results = await Promise.allSettled(made);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** A new pod namespace on the bridge, with the next unused index (so a fresh address). */
  async addPod(): Promise<LabPod> {
    this.assertLive();
    const index = this.#nextIndex;
    if (index > MAX_POD_INDEX) throw new RangeError(`lab ${this.prefix}: no pod addresses left`);
    this.#nextIndex++;
    const host = FIRST_POD_HOST + index;
    const pod: LabPod = {
      index,
      name: `pod${index}`,
      ns: `${this.prefix}-pod${index}`,
      ipv4: `10.244.0.${host}`,
      veth: `veth${index}`,
    };
    if (this.ipv6) pod.ipv6 = `fd00:10:244::${host}`;
    await this.addNetns(pod.ns);
    await ip(
      ['-n', this.nodeNs, '-batch', '-'],
      [`link add ${pod.veth} type veth peer name eth0 netns ${pod.ns}`, `link set ${pod.veth} master br0 up`, ''].join('\n'),
    );
    const v6 = pod.ipv6 ? [`addr add ${pod.ipv6}/64 dev eth0 nodad`] : [];
    const v6route = pod.ipv6 ? [`route add default via ${NODE_IPV6}`] : [];
    await ip(
      ['-n', pod.ns, '-batch', '-'],
      [
        'link set lo up',
        `addr add ${pod.ipv4}/24 dev eth0`,
        ...v6,
        'link set eth0 up',
        `route add default via ${NODE_IPV4}`,
        ...v6route,
        '',
      ].join('\n'),
    );
    this.#pods.set(index, pod);
    return pod;
  }

  /** Kills the pod's processes and deletes its namespace: its addresses stop answering at once. */
  async removePod(index: number): Promise<void> {
    this.assertLive();
    const pod = this.pod(index);
    this.#pods.delete(index);
    // Unplug first: netns teardown is asynchronous in the kernel, the link deletion is not.
    await ip(['-n', this.nodeNs, 'link', 'del', pod.veth]).catch(() => {});
    await this.deleteNetns(pod.ns);
  }

  /** Starts a backend server in pod `index`; resolves once every socket listens. */
  startServer(index: number, opts: ServerOptions): Promise<ServerHandle> {
    const pod = this.pod(index);
    return this.startServerIn(pod, pod.ns, opts.name ?? pod.name, opts, this.serverCgroupPath);
  }
}
