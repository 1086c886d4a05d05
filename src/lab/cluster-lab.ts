// A throwaway two-node cluster in network namespaces: the stage for traffic from outside a node
// (NodePort, LoadBalancer IPs, externalIPs) through XDP, and for kube-proxy's rules on the same
// topology as the baseline. Nothing touches the root namespace's network.
//
//   <prefix>-sw       the "switch": br0, with ports client, node-a, node-b (veth peers)
//   <prefix>-client   eth0 192.168.77.100/24 fd00:77::100/64 (an outside client)
//                     routes: 10.244.1.0/24, fd00:10:244:1::/64 and the external VIPs
//                     192.168.78.0/24, fd00:78::/64 via node-a; 10.244.2.0/24, fd00:10:244:2::/64 via node-b
//   <prefix>-node-a   eth0 192.168.77.11/24 fd00:77::11/64 ("physical", into the switch)
//                     lxc-<pod> one routed veth per pod: 10.244.1.1/32 and fe80::1 on each, a /32
//                     (/128) route to the pod; 10.244.2.0/24 fd00:10:244:2::/64 via node-b; forwarding on
//   <prefix>-node-b   the same with .12 / ::12 and 10.244.2.0/24, fd00:10:244:2::/64
//   <prefix>-pod-a<i> eth0 10.244.1.(11+i)/32 fd00:10:244:1::(11+i)/128, default via 10.244.1.1 / fe80::1
//   <prefix>-pod-b<i> the same on node-b (10.244.2.x)
//   <cgroup2>/<prefix>-client           the client's probes
//   <cgroup2>/<prefix>-node-a[-srv]     node-a's cgroup (an agent attaches here; probes run from the
//                                       node or its pods run here) and its pods' servers
//   /sys/fs/bpf/<prefix>-node-a         node-a's agent's bpffs directory (made by the agent, removed here)
//
// The cluster CIDR is 10.244.0.0/16 and fd00:10:244::/56, the service CIDR 10.96.0.0/12 and
// fd00:10:96::/112; 192.168.77.0/24 and fd00:77::/64 exist only on the switch, 192.168.78.0/24 and
// fd00:78::/64 (LoadBalancer IPs and externalIPs) only as the client's routes towards node-a.
//
// Pods sit on routed veths (no bridge inside a node) so that bpf_fib_lookup on a node resolves a pod
// to its own lxc device, which XDP can redirect into. Two veth facts the XDP tests must honour: a
// frame sent with XDP_TX or redirected into a veth is delivered only when the peer has an XDP
// program (XDP_PASS will do) - `node.peer` and `pod` name those peers (the switch port for a node's
// device, the pod's eth0 for an lxc device); and locally made TCP/UDP leaves a veth with a partial
// checksum, so tx offload is turned off on every veth of the lab (txOffload: true keeps it).
//
// An agent per node runs in the node's namespace through nsenter, which keeps the host's /sys
// (cgroup2 and bpffs): startAgent(node) runs
//   nsenter --net=/run/netns/<prefix>-node-a bin/socklb agent --cgroup <cgroup2>/<prefix>-node-a \
//     --bpffs /sys/fs/bpf/<prefix>-node-a --node-name node-a --health-address 127.0.0.1:10256 \
//     --debug-address 127.0.0.1:10257 [the test's flags: --manifests FILE, --devices eth0, ...]

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount } from '../agent/host.ts';
import { type ServerHandle as BaseServerHandle, BPFFS_ROOT, ip, LabBase, type ProcessHandle, type ServerOptions } from './netns-base.ts';
import { iptablesRestore } from './rules/iptables.ts';
import { nftablesRuleset } from './rules/nftables.ts';
import type { BenchService } from './services.ts';

export type { ExecResult, ProbeHandle, ProbeResult, ProcessHandle, SpawnOptions, SweepResult } from './netns-base.ts';

export const NODE_NAMES = ['node-a', 'node-b'] as const;
export type NodeName = (typeof NODE_NAMES)[number];

export const LAN_CIDR4 = '192.168.77.0/24';
export const LAN_CIDR6 = 'fd00:77::/64';
export const CLIENT_IPV4 = '192.168.77.100';
export const CLIENT_IPV6 = 'fd00:77::100';
/** LoadBalancer IPs and externalIPs: routed by the client towards node-a (vipNode). */
export const VIP_CIDR4 = '192.168.78.0/24';
export const VIP_CIDR6 = 'fd00:78::/64';
export const CLUSTER_CIDR4 = '10.244.0.0/16';
export const CLUSTER_CIDR6 = 'fd00:10:244::/56';
export const SERVICE_CIDR4 = '10.96.0.0/12';
export const SERVICE_CIDR6 = 'fd00:10:96::/112';

const NODE_PLAN: Record<NodeName, { host: number; podNet: number; letter: string }> = {
  'node-a': { host: 11, podNet: 1, letter: 'a' },
  'node-b': { host: 12, podNet: 2, letter: 'b' },
};
const FIRST_POD_HOST = 11;
const MAX_PODS_PER_NODE = 100;
const DEVICE_RE = /^[a-z][a-z0-9-]{0,14}$/;
const SOCKLB = fileURLToPath(new URL('../../bin/socklb', import.meta.url));

export interface ClusterLabOptions {
  /** Names every namespace, cgroup and bpffs directory: [a-z0-9-], at most 20 chars, unique per run. */
  prefix: string;
  /** Pods made at once on each node (0..100 each; more with addPod). Default 2 and 2. */
  pods?: Partial<Record<NodeName, number>>;
  /** IPv6 addresses and routes too (default true). */
  ipv6?: boolean;
  /** The nodes' "physical" device (default eth0). */
  device?: string;
  /** Keep tx checksum offload on the veths (default false: off, see the header). */
  txOffload?: boolean;
  /** The node the client routes the external VIPs (VIP_CIDR4/6) to (default node-a). */
  vipNode?: NodeName;
}

export interface ClusterNode {
  name: NodeName;
  ns: string;
  /** The "physical" device into the switch. */
  device: string;
  ipv4: string;
  ipv6?: string;
  podCidr4: string;
  podCidr6?: string;
  /** The pods' gateway on this node (on every lxc device). */
  gateway4: string;
  /** Attach this node's agent here; probes started in the node or its pods run in it. */
  cgroupPath: string;
  serverCgroupPath: string;
  /** The agent's bpffs directory (--bpffs): not made by the lab, removed by it. */
  bpffs: string;
  /** The other end of `device`: the switch port, which needs an XDP program for XDP_TX to deliver. */
  peer: { ns: string; device: string };
}

export interface ClusterPod {
  /** `pod-a0`, `pod-b3`: unique in the lab, never reused; the name its servers answer with. */
  name: string;
  node: NodeName;
  ns: string;
  ipv4: string;
  ipv6?: string;
  /** The host side in the node namespace (the pod side is `eth0`). */
  veth: string;
}

export type ServerHandle = BaseServerHandle<ClusterPod>;

export type RulesMode = 'iptables' | 'nftables';

export interface HttpLoadOptions {
  /** Bounded: 1..60 s (default 3). */
  seconds?: number;
  /** Open connections (default 16). */
  connections?: number;
  /** wrk threads (default 1: the machine has two cores and the servers need one). */
  threads?: number;
}

export interface HttpLoadResult {
  command: string;
  requestsPerSec: number;
  /** Response bytes per second, as wrk counts them (headers and body). */
  bytesPerSec: number;
  requests: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx responses. */
  errors: number;
  latencyAvgMs: number;
}

export interface ThroughputOptions {
  /** Bounded: 1..60 s (default 3). */
  seconds?: number;
  /** Parallel streams (default 1). */
  streams?: number;
}

export interface ThroughputResult {
  command: string;
  /** What the receiver got, bits per second. */
  bitsPerSec: number;
  retransmits: number;
}

function nodeAddr(name: NodeName, v6: boolean): string {
  return v6 ? `fd00:77::${NODE_PLAN[name].host}` : `192.168.77.${NODE_PLAN[name].host}`;
}

/** `host:port` or `[v6]:port`. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export class ClusterLab extends LabBase {
  readonly ipv6: boolean;
  readonly switchNs: string;
  readonly client: { ns: string; device: string; ipv4: string; ipv6?: string; cgroupPath: string };
  readonly #nodes: Record<NodeName, ClusterNode>;
  readonly #txOffload: boolean;
  readonly #vipNode: NodeName;
  #pods = new Map<string, ClusterPod>();
  #nextPod: Record<NodeName, number> = { 'node-a': 0, 'node-b': 0 };
  #rules = new Map<NodeName, RulesMode>();
  #tempDirs: string[] = [];

  private constructor(opts: ClusterLabOptions) {
    super(opts.prefix);
    const prefix = opts.prefix;
    this.ipv6 = opts.ipv6 ?? true;
    this.#txOffload = opts.txOffload ?? false;
    this.#vipNode = opts.vipNode ?? 'node-a';
    const device = opts.device ?? 'eth0';
    if (!DEVICE_RE.test(device)) throw new TypeError(`device must match ${DEVICE_RE}, got "${device}"`);
    const root = cgroup2Mount();
    this.switchNs = `${prefix}-sw`;
    this.client = { ns: `${prefix}-client`, device: 'eth0', ipv4: CLIENT_IPV4, cgroupPath: path.join(root, `${prefix}-client`) };
    if (this.ipv6) this.client.ipv6 = CLIENT_IPV6;
    const node = (name: NodeName): ClusterNode => {
      const n = NODE_PLAN[name].podNet;
      const out: ClusterNode = {
        name,
        ns: `${prefix}-${name}`,
        device,
        ipv4: nodeAddr(name, false),
        podCidr4: `10.244.${n}.0/24`,
        gateway4: `10.244.${n}.1`,
        cgroupPath: path.join(root, `${prefix}-${name}`),
        serverCgroupPath: path.join(root, `${prefix}-${name}-srv`),
        bpffs: path.join(BPFFS_ROOT, `${prefix}-${name}`),
        peer: { ns: this.switchNs, device: name },
      };
      if (this.ipv6) {
        out.ipv6 = nodeAddr(name, true);
        out.podCidr6 = `fd00:10:244:${n}::/64`;
      }
      return out;
    };
    this.#nodes = { 'node-a': node('node-a'), 'node-b': node('node-b') };
  }

  static async create(opts: ClusterLabOptions): Promise<ClusterLab> {
    for (const name of NODE_NAMES) {
      const n = opts.pods?.[name] ?? 2;
      if (!Number.isInteger(n) || n < 0 || n > MAX_PODS_PER_NODE) {
        throw new RangeError(`pods.${name} must be an integer in 0..${MAX_PODS_PER_NODE}, got ${n}`);
      }
    }
    if (opts.vipNode !== undefined && !NODE_NAMES.includes(opts.vipNode)) {
      throw new TypeError(`vipNode must be one of ${NODE_NAMES.join(', ')}, got "${opts.vipNode}"`);
    }
    const lab = new ClusterLab(opts);
    await lab.#setup(opts).catch(async (err: unknown) => {
      await lab.destroy().catch(() => {});
      throw err;
    });
    return lab;
  }

  protected defaultNs(): string {
    return this.client.ns;
  }

  /** The client's cgroup in its namespace; a node's cgroup in the node and in its pods. */
  protected clientCgroup(ns: string): string | undefined {
    if (ns === this.client.ns) return this.client.cgroupPath;
    for (const n of NODE_NAMES) if (ns === this.#nodes[n].ns) return this.#nodes[n].cgroupPath;
    const pod = [...this.#pods.values()].find((p) => p.ns === ns);
    return pod ? this.#nodes[pod.node].cgroupPath : undefined;
  }

  // Pods, then nodes and the client, the switch last: no namespace outlives a veth peer by much.
  protected override deletionOrder(names: string[]): string[] {
    const rank = (ns: string): number => {
      if (ns === this.switchNs) return 3;
      if (ns === this.client.ns || NODE_NAMES.some((n) => this.#nodes[n].ns === ns)) return 2;
      return 1;
    };
    return names.sort((a, b) => rank(a) - rank(b));
  }

  get nodes(): ClusterNode[] {
    return NODE_NAMES.map((n) => this.#nodes[n]);
  }

  node(name: NodeName): ClusterNode {
    const n = this.#nodes[name];
    if (!n) throw new RangeError(`lab ${this.prefix} has no node "${name}"`);
    return n;
  }

  /** Live pods, node-a's first, each node's in creation order. */
  get pods(): ClusterPod[] {
    return [...this.#pods.values()];
  }

  podsOn(node: NodeName): ClusterPod[] {
    return this.pods.filter((p) => p.node === node);
  }

  pod(name: string): ClusterPod {
    const p = this.#pods.get(name);
    if (!p) throw new RangeError(`lab ${this.prefix} has no pod "${name}"`);
    return p;
  }

  /** Runs `ip -batch -` in a namespace of the lab. */
  async #ipBatch(ns: string, lines: string[]): Promise<void> {
    await ip(['-n', ns, '-batch', '-'], `${lines.join('\n')}\n`);
  }

  /** sysctls and tx offload go through one shell per namespace (both need to run inside it). */
  async #sh(ns: string, script: string): Promise<void> {
    await this.exec(ns, ['sh', '-ec', script]);
  }

  #txOff(devices: string[]): string {
    return this.#txOffload ? '' : devices.map((d) => `ethtool -K ${d} tx off >/dev/null\n`).join('');
  }

  async #setup(opts: ClusterLabOptions): Promise<void> {
    this.claim();
    this.addCgroup(this.client.cgroupPath);
    for (const n of this.nodes) {
      this.addCgroup(n.cgroupPath);
      this.addCgroup(n.serverCgroupPath);
      this.addBpffsDir(n.bpffs);
    }
    for (const ns of [this.switchNs, this.client.ns, ...this.nodes.map((n) => n.ns)]) await this.addNetns(ns);
    // Before any device exists: new devices take `default`. No DAD (addresses usable at once),
    // no reverse-path filter (DSR replies leave by another node than the request came in).
    const base =
      'sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 ' +
      'net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0\n';
    const forwarding = 'sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1\n';
    await Promise.all([
      this.#sh(this.switchNs, base),
      this.#sh(this.client.ns, base),
      ...this.nodes.map((n) => this.#sh(n.ns, base + forwarding)),
    ]);
    const client = this.client;
    await this.#ipBatch(this.switchNs, [
      'link set lo up',
      // No STP (ports forward at once) and no snooping (IPv6 neighbour discovery must just work).
      'link add br0 type bridge stp_state 0 mcast_snooping 0',
      'link set br0 up',
      `link add client type veth peer name ${client.device} netns ${client.ns}`,
      ...this.nodes.map((n) => `link add ${n.peer.device} type veth peer name ${n.device} netns ${n.ns}`),
      'link set client master br0 up',
      ...this.nodes.map((n) => `link set ${n.peer.device} master br0 up`),
    ]);
    const v6 = (lines: string[]): string[] => (this.ipv6 ? lines : []);
    const a = this.#nodes['node-a'];
    const b = this.#nodes['node-b'];
    const vip = this.#nodes[this.#vipNode];
    await this.#ipBatch(client.ns, [
      'link set lo up',
      `addr add ${client.ipv4}/24 dev ${client.device}`,
      ...v6([`addr add ${client.ipv6}/64 dev ${client.device} nodad`]),
      `link set ${client.device} up`,
      `route add ${a.podCidr4} via ${a.ipv4}`,
      `route add ${b.podCidr4} via ${b.ipv4}`,
      `route add ${VIP_CIDR4} via ${vip.ipv4}`,
      ...v6([`route add ${a.podCidr6} via ${a.ipv6}`, `route add ${b.podCidr6} via ${b.ipv6}`, `route add ${VIP_CIDR6} via ${vip.ipv6}`]),
    ]);
    for (const n of this.nodes) {
      const other = n === a ? b : a;
      await this.#ipBatch(n.ns, [
        'link set lo up',
        `addr add ${n.ipv4}/24 dev ${n.device}`,
        ...v6([`addr add ${n.ipv6}/64 dev ${n.device} nodad`]),
        `link set ${n.device} up`,
        `route add ${other.podCidr4} via ${other.ipv4}`,
        ...v6([`route add ${other.podCidr6} via ${other.ipv6}`]),
      ]);
    }
    await Promise.all([
      this.#sh(this.switchNs, this.#txOff(['client', ...this.nodes.map((n) => n.peer.device)]) || 'true'),
      this.#sh(client.ns, this.#txOff([client.device]) || 'true'),
      ...this.nodes.map((n) => this.#sh(n.ns, this.#txOff([n.device]) || 'true')),
    ]);
    for (const name of NODE_NAMES) {
      for (let i = 0; i < (opts.pods?.[name] ?? 2); i++) await this.addPod(name);
    }
  }

  /** A new pod namespace behind `node`, with the next unused name and address. */
  async addPod(node: NodeName): Promise<ClusterPod> {
    this.assertLive();
    const n = this.node(node);
    const i = this.#nextPod[node];
    if (i >= MAX_PODS_PER_NODE) throw new RangeError(`lab ${this.prefix}: no pod addresses left on ${node}`);
    this.#nextPod[node]++;
    const plan = NODE_PLAN[node];
    const name = `pod-${plan.letter}${i}`;
    const host = FIRST_POD_HOST + i;
    const pod: ClusterPod = {
      name,
      node,
      ns: `${this.prefix}-${name}`,
      ipv4: `10.244.${plan.podNet}.${host}`,
      veth: `lxc-${plan.letter}${i}`,
    };
    if (this.ipv6) pod.ipv6 = `fd00:10:244:${plan.podNet}::${host}`;
    await this.addNetns(pod.ns);
    this.#pods.set(name, pod);
    await this.#sh(pod.ns, 'sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0');
    const v6 = (lines: string[]): string[] => (pod.ipv6 ? lines : []);
    await this.#ipBatch(n.ns, [
      `link add ${pod.veth} type veth peer name eth0 netns ${pod.ns}`,
      `addr add ${n.gateway4}/32 dev ${pod.veth}`,
      ...v6([`addr add fe80::1/64 dev ${pod.veth} nodad`]),
      `link set ${pod.veth} up`,
      `route add ${pod.ipv4}/32 dev ${pod.veth} src ${n.gateway4}`,
      ...v6([`route add ${pod.ipv6}/128 dev ${pod.veth}`]),
    ]);
    await this.#ipBatch(pod.ns, [
      'link set lo up',
      `addr add ${pod.ipv4}/32 dev eth0`,
      ...v6([`addr add ${pod.ipv6}/128 dev eth0 nodad`]),
      'link set eth0 up',
      `route add ${n.gateway4} dev eth0 scope link`,
      `route add default via ${n.gateway4} dev eth0`,
      ...v6(['route add default via fe80::1 dev eth0']),
    ]);
    const off = this.#txOff([pod.veth]);
    if (off) await Promise.all([this.#sh(n.ns, off), this.#sh(pod.ns, this.#txOff(['eth0']))]);
    return pod;
  }

  /** Kills the pod's processes, unplugs it and deletes its namespace. */
  async removePod(name: string): Promise<void> {
    this.assertLive();
    const pod = this.pod(name);
    this.#pods.delete(name);
    // Unplug first: netns teardown is asynchronous in the kernel, the link deletion is not.
    await ip(['-n', this.node(pod.node).ns, 'link', 'del', pod.veth]).catch(() => {});
    await this.deleteNetns(pod.ns);
  }

  /**
   * Starts a backend server (HTTP over TCP, UDP echo, answering with the pod's name) in a pod, in
   * its node's server cgroup. UDP replies report the client address the server saw unless
   * `reportPeer: false`; HTTP replies always do.
   */
  startServer(podName: string, opts: ServerOptions): Promise<ServerHandle> {
    const pod = this.pod(podName);
    const o = { reportPeer: true, ...opts };
    return this.startServerIn(pod, pod.ns, opts.name ?? pod.name, o, this.node(pod.node).serverCgroupPath);
  }

  /** The argv of a socklb agent for `node` (the command the XDP agent tests use; see the header). */
  agentArgv(node: NodeName, extra: string[] = []): string[] {
    const n = this.node(node);
    const debugPort = node === 'node-a' ? 10257 : 10258;
    return [
      SOCKLB,
      'agent',
      '--cgroup',
      n.cgroupPath,
      '--bpffs',
      n.bpffs,
      '--node-name',
      node,
      '--health-address',
      '127.0.0.1:10256',
      '--debug-address',
      `127.0.0.1:${debugPort}`,
      ...extra,
    ];
  }

  /** Runs a socklb agent in the node's namespace with the host's /sys; it dies with the lab. */
  startAgent(node: NodeName, extra: string[] = []): ProcessHandle {
    return this.start(this.node(node).ns, this.agentArgv(node, extra), { keepSys: true });
  }

  /**
   * Installs kube-proxy's rules for `services` in a node's namespace, as kube-proxy on that node
   * would (Local endpoints are those whose nodeName is this node): iptables-nft-restore and
   * ip6tables-nft-restore, or one `ip` and one `ip6 kube-proxy` nftables table. Replaces
   * whatever rules the lab installed there before.
   */
  async installKubeProxyRules(node: NodeName, services: BenchService[], mode: RulesMode): Promise<void> {
    const n = this.node(node);
    await this.removeKubeProxyRules(node);
    const families = [
      { v6: false, services: services.filter((s) => !s.clusterIP.includes(':')), cluster: CLUSTER_CIDR4, svc: SERVICE_CIDR4 },
      { v6: true, services: services.filter((s) => s.clusterIP.includes(':')), cluster: CLUSTER_CIDR6, svc: SERVICE_CIDR6 },
    ];
    this.#rules.set(node, mode);
    for (const f of families) {
      if (f.services.length === 0) continue;
      if (f.v6 && !n.ipv6) throw new Error(`lab ${this.prefix} has no IPv6: cannot install IPv6 services`);
      if (mode === 'iptables') {
        const text = iptablesRestore(f.services, { full: true, nodeName: node, clusterCidr: f.cluster });
        await this.#restore(n.ns, f.v6 ? 'ip6tables-nft-restore' : 'iptables-nft-restore', text);
      } else {
        const text = nftablesRuleset(f.services, {
          family: f.v6 ? 6 : 4,
          nodeName: node,
          nodePortAddresses: [(f.v6 ? n.ipv6 : n.ipv4)!],
          clusterCidr: f.cluster,
          serviceCidr: f.svc,
        });
        await this.#restore(n.ns, 'nft', text, ['-f', '-']);
      }
    }
  }

  /** Removes what installKubeProxyRules put in the node's namespace (conntrack entries stay). */
  async removeKubeProxyRules(node: NodeName): Promise<void> {
    if (!this.#rules.has(node)) return;
    // iptables' nft back end keeps its tables in nftables too: one flush empties every family's.
    await this.exec(this.node(node).ns, ['nft', 'flush', 'ruleset']);
    this.#rules.delete(node);
  }

  async #restore(ns: string, tool: string, text: string, args: string[] = []): Promise<void> {
    // The text goes through a file: exec has no stdin. The name is unique per call.
    const file = path.join(fs.mkdtempSync('/tmp/socklb-rules-'), `${randomBytes(4).toString('hex')}.txt`);
    try {
      fs.writeFileSync(file, text);
      const argv = args.length ? [tool, ...args.map((a) => (a === '-' ? file : a))] : [tool, file];
      await this.exec(ns, argv, { timeoutMs: 30_000 });
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  }

  /**
   * Bounded HTTP load from the client with wrk: the request rate and response bytes per second a
   * NodePort (or any address the client reaches) sustains. The lab's servers close every
   * connection after one reply, so every request is a new connection through the NAT.
   */
  async measureHttp(address: string, port: number, opts: HttpLoadOptions = {}): Promise<HttpLoadResult> {
    const seconds = bounded('seconds', opts.seconds ?? 3, 1, 60);
    const connections = bounded('connections', opts.connections ?? 16, 1, 1000);
    const threads = bounded('threads', opts.threads ?? 1, 1, 8);
    const url = `http://${hostPort(address, port)}/`;
    const argv = ['wrk', `-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '2s', url];
    const { stdout } = await this.exec(this.client.ns, argv, { timeoutMs: (seconds + 15) * 1000 });
    return { command: argv.join(' '), ...parseWrk(stdout) };
  }

  /**
   * Bounded TCP throughput from the client with iperf3 (needs an iperf3 server in a pod, see
   * startIperfServer, behind a service with that one endpoint: iperf3's control and data
   * connections must reach the same server).
   */
  async measureThroughput(address: string, port: number, opts: ThroughputOptions = {}): Promise<ThroughputResult> {
    const seconds = bounded('seconds', opts.seconds ?? 3, 1, 60);
    const streams = bounded('streams', opts.streams ?? 1, 1, 16);
    const argv = [
      'iperf3',
      '-c',
      address,
      '-p',
      String(port),
      '-t',
      String(seconds),
      '-P',
      String(streams),
      '-J',
      '--connect-timeout',
      '2000',
    ];
    const { stdout } = await this.exec(this.client.ns, argv, { timeoutMs: (seconds + 15) * 1000 });
    const j = JSON.parse(stdout) as {
      end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
      error?: string;
    };
    if (j.error || !j.end?.sum_received) throw new Error(`iperf3 to ${hostPort(address, port)}: ${j.error ?? 'no result'}`);
    return { command: argv.join(' '), bitsPerSec: j.end.sum_received.bits_per_second ?? 0, retransmits: j.end.sum_sent?.retransmits ?? 0 };
  }

  /** An iperf3 server in a pod (in its node's server cgroup); it dies with the lab. */
  async startIperfServer(podName: string, port: number): Promise<ProcessHandle> {
    const pod = this.pod(podName);
    const h = this.start(pod.ns, ['iperf3', '-s', '-p', String(port)], { cgroup: this.node(pod.node).serverCgroupPath });
    await this.#listening(pod.ns, port, h, 'iperf3');
    return h;
  }

  /**
   * nginx (Debian's nginx-light) in a pod: one process, one reply per connection (keep-alive off),
   * the body the pod's name, x-client the address it saw: what the lab's Node server answers, at a
   * rate a NAT's cost shows through (the Node server tops out first). For the load helpers. The
   * pod keeps no TIME_WAIT sockets (tcp_max_tw_buckets=0, see below).
   */
  async startNginx(podName: string, port: number): Promise<ProcessHandle> {
    const pod = this.pod(podName);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `socklb-${this.prefix}-nginx-`));
    this.#tempDirs.push(dir);
    const listen = [`listen ${pod.ipv4}:${port};`, ...(pod.ipv6 ? [`listen [::]:${port} ipv6only=on;`] : [])];
    const conf = [
      'daemon off;',
      // One process: the pid the lab holds is the server, and a kill ends it.
      'master_process off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      'error_log stderr warn;',
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      '  keepalive_timeout 0;',
      '  default_type text/plain;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`),
      '  server {',
      ...listen.map((l) => `    ${l}`),
      '    location / {',
      `      add_header x-backend ${pod.name};`,
      '      add_header x-client $remote_addr;',
      `      return 200 "${pod.name}";`,
      '    }',
      '  }',
      '}',
      '',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
    // No TIME_WAIT in this pod: with a new connection per request, SYNs from reused (NAT) source
    // ports would meet the pod's TIME_WAIT sockets, be dropped (PAWS) and retried after 1 s, and a
    // run's rate would depend on what ran before it.
    await this.exec(pod.ns, ['sysctl', '-qw', 'net.ipv4.tcp_max_tw_buckets=0']);
    const h = this.start(pod.ns, ['nginx', '-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf')], {
      cgroup: this.node(pod.node).serverCgroupPath,
    });
    await this.#listening(pod.ns, port, h, 'nginx');
    return h;
  }

  /** Bounded wait (5 s) for a TCP listener on `port` in `ns`; stops `h` and throws if none comes. */
  async #listening(ns: string, port: number, h: ProcessHandle, what: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const { stdout } = await this.exec(ns, ['ss', '-Hltn', `sport = :${port}`]);
      if (stdout.trim()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    await h.stop();
    throw new Error(`${what} in ${ns} not listening on ${port} after 5 s: ${h.output()}`);
  }

  override async destroy(): Promise<void> {
    try {
      await super.destroy();
    } finally {
      this.#removeTempDirs();
    }
  }

  override destroySync(): void {
    super.destroySync();
    this.#removeTempDirs();
  }

  #removeTempDirs(): void {
    for (const d of this.#tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }
}

function bounded(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  return v;
}

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** wrk's text report: Requests/sec, Transfer/sec, totals, errors, the mean latency. */
export function parseWrk(text: string): Omit<HttpLoadResult, 'command'> {
  const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? Number.NaN);
  const transfer = /Transfer\/sec:\s+([\d.]+)([KMG]?)B/.exec(text);
  const lat = /Latency\s+([\d.]+)(us|ms|s)\b/.exec(text);
  const latencyMs = lat ? Number(lat[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[lat[2]!]! : Number.NaN;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const requestsPerSec = num(/Requests\/sec:\s+([\d.]+)/);
  if (Number.isNaN(requestsPerSec)) throw new Error(`no Requests/sec in wrk's output: ${text.slice(0, 400)}`);
  return {
    requestsPerSec,
    bytesPerSec: transfer ? Number(transfer[1]) * UNITS[transfer[2]!]! : Number.NaN,
    requests: num(/(\d+) requests in/),
    errors: socketErrors + non2xx,
    latencyAvgMs: latencyMs,
  };
}
