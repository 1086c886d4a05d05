// The XDP program loaded on its own with small maps, and a "node" network namespace that gives
// BPF_PROG_TEST_RUN a FIB: devices, routes and permanent neighbours, so forwarding decisions
// (redirect, XDP_TX, pass for an unresolved neighbour, drop for a blackhole) and the MAC
// addresses they write are checked as well as the translation. close() removes the namespace;
// an exit hook does it too if a test dies first.
//
//   ext0 02:00:00:00:0e:01  192.0.2.1/24 (node address), 198.51.100.1/24 (clients on-link),
//                           2001:db8:1::1/64, 2001:db8:c::1/64
//   int0 02:00:00:00:0a:01  10.1.0.1/24, fd00:1::1/64 (towards the other nodes)
//   10.244.1.0/24   via 10.1.0.2 (node B, 02:00:00:00:0b:02) dev int0
//   10.244.2.0/24   via 192.0.2.3 (node C, 02:00:00:00:0c:03) dev ext0   (same device: XDP_TX)
//   10.244.3.0/24   via 10.1.0.3 dev int0, no neighbour                   (the stack resolves it)
//   10.244.9.0/24   blackhole
//   fd00:244:1::/64 via fd00:1::2 (node B) dev int0

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as assert from 'uvu/assert';
import { XDP_OBJECT } from '../../src/agent/datapath.ts';
import { type BpfMap, BpfObject, type TestRunResult, xdpContext } from '../../src/bpf/binding.ts';
import { type Decoded, decode, encode, Layouts, type MapName, MapNames, Scope, sumPerCpu, XDP_REASONS } from '../../src/datapath/abi.ts';

export const MAC = {
  ext0: '02:00:00:00:0e:01',
  int0: '02:00:00:00:0a:01',
  nodeB: '02:00:00:00:0b:02',
  nodeC: '02:00:00:00:0c:03',
  client: '02:00:00:00:cc:10',
  router: '02:00:00:00:ee:fe',
} as const;

/** XDP verdicts by name. */
export const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
export type Verdict = keyof typeof XDP;

export type XdpReason = (typeof XDP_REASONS)[number];

export interface Backend {
  id: number;
  address: string;
  port: number;
  proto: number;
  flags?: number;
  node?: string;
}

export interface Frontend {
  address: string;
  port: number;
  proto: number;
  serviceId: number;
  flags?: number;
  /** Seconds, with ServiceFlags.affinity. */
  affinityTimeout?: number;
  /** A Schedulers value; random when left out. */
  scheduler?: number;
  backends: number[];
}

const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {}
  }
});

const SETUP = (ns: string): string[][] =>
  [
    ['link', 'add', 'ext0', 'address', MAC.ext0, 'type', 'veth', 'peer', 'name', 'ext0p'],
    ['link', 'add', 'int0', 'address', MAC.int0, 'type', 'veth', 'peer', 'name', 'int0p'],
    ...['lo', 'ext0', 'ext0p', 'int0', 'int0p'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', '192.0.2.1/24', 'dev', 'ext0'],
    ['addr', 'add', '198.51.100.1/24', 'dev', 'ext0'],
    ['addr', 'add', '10.1.0.1/24', 'dev', 'int0'],
    ['addr', 'add', '2001:db8:1::1/64', 'dev', 'ext0', 'nodad'],
    ['addr', 'add', '2001:db8:c::1/64', 'dev', 'ext0', 'nodad'],
    ['addr', 'add', 'fd00:1::1/64', 'dev', 'int0', 'nodad'],
    ['route', 'add', '10.244.1.0/24', 'via', '10.1.0.2', 'dev', 'int0'],
    ['route', 'add', '10.244.2.0/24', 'via', '192.0.2.3', 'dev', 'ext0'],
    ['route', 'add', '10.244.3.0/24', 'via', '10.1.0.3', 'dev', 'int0'],
    ['route', 'add', 'blackhole', '10.244.9.0/24'],
    ['-6', 'route', 'add', 'fd00:244:1::/64', 'via', 'fd00:1::2', 'dev', 'int0'],
    ['neigh', 'add', '10.1.0.2', 'lladdr', MAC.nodeB, 'dev', 'int0', 'nud', 'permanent'],
    ['neigh', 'add', '192.0.2.3', 'lladdr', MAC.nodeC, 'dev', 'ext0', 'nud', 'permanent'],
    ['neigh', 'add', '198.51.100.10', 'lladdr', MAC.client, 'dev', 'ext0', 'nud', 'permanent'],
    ['neigh', 'add', 'fd00:1::2', 'lladdr', MAC.nodeB, 'dev', 'int0', 'nud', 'permanent'],
    ['neigh', 'add', '2001:db8:c::10', 'lladdr', MAC.client, 'dev', 'ext0', 'nud', 'permanent'],
    ['neigh', 'add', '2001:db8:1::fe', 'lladdr', MAC.router, 'dev', 'ext0', 'nud', 'permanent'],
  ].map((args) => ['-n', ns, ...args]);

/** Sizes for the test: small, but the array maps must cover the ids the tests use. */
const SIZES: Partial<Record<MapName, number>> = {
  [MapNames.lb4Services]: 64,
  [MapNames.lb6Services]: 64,
  [MapNames.slots]: 256,
  [MapNames.lb4Backends]: 64,
  [MapNames.lb6Backends]: 64,
  [MapNames.affinity]: 64,
  [MapNames.serviceStats]: 64,
  [MapNames.backendStats]: 64,
  [MapNames.backendFlows]: 64,
  [MapNames.lb4Ct]: 4096,
  [MapNames.lb6Ct]: 4096,
  [MapNames.lb4Rnat]: 4096,
  [MapNames.lb6Rnat]: 4096,
  [MapNames.lb4SrcRanges]: 64,
  [MapNames.lb6SrcRanges]: 64,
  [MapNames.nodeConfig]: 1,
  [MapNames.xdpStats]: XDP_REASONS.length,
};

/**
 * Writes what the agent would into a loaded XDP object's maps (node config, backends, external
 * frontends, source ranges) and reads back flows and counters; map fds are opened once and kept.
 */
let contextProbe: string | null | undefined;

/**
 * Why this kernel cannot run the packet tables, or undefined when it can: BPF_PROG_TEST_RUN takes
 * an xdp_md context (the ingress device, which bpf_fib_lookup needs) from Linux 5.15 only.
 * Probed once, with xdp_pass on lo.
 */
export function xdpContextMissing(): string | undefined {
  if (contextProbe === undefined) {
    const obj = BpfObject.open(XDP_OBJECT);
    try {
      for (const [name, n] of Object.entries(SIZES)) if (n) obj.setMaxEntries(name, n);
      obj.load();
      obj.testRun('xdp_pass', { data: Buffer.alloc(64), ctxIn: xdpContext(1, 64) });
      contextProbe = null;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EINVAL') throw err;
      contextProbe = 'BPF_PROG_TEST_RUN takes no xdp_md context (ingress device) before Linux 5.15';
    } finally {
      obj.close();
    }
  }
  return contextProbe ?? undefined;
}

export class XdpMaps {
  readonly obj: BpfObject;
  readonly #maps = new Map<string, BpfMap>();

  constructor(obj: BpfObject) {
    this.obj = obj;
  }

  map(name: MapName | (string & {})): BpfMap {
    let m = this.#maps.get(name);
    if (!m) {
      m = this.obj.map(name);
      this.#maps.set(name, m);
    }
    return m;
  }

  /** The node's config; lifetimes in ms, 0 or left out for the program's defaults. */
  config(c: {
    snat4?: string;
    snat6?: string;
    portMin?: number;
    portMax?: number;
    flags?: number;
    dsrPort?: number;
    lifetimes?: Partial<Record<'synMs' | 'establishedMs' | 'closedMs' | 'udpMs', number>>;
  }): void {
    const value = encode(Layouts.nodeConfig, {
      snat_address4: c.snat4 ?? '0.0.0.0',
      nat_port_min: c.portMin ?? 0,
      nat_port_max: c.portMax ?? 0,
      snat_address6: c.snat6 ?? '::',
      flags: c.flags ?? 0,
      dsr_port: c.dsrPort ?? 0,
      tcp_syn_lifetime_ms: c.lifetimes?.synMs ?? 0,
      tcp_established_lifetime_ms: c.lifetimes?.establishedMs ?? 0,
      tcp_closed_lifetime_ms: c.lifetimes?.closedMs ?? 0,
      udp_lifetime_ms: c.lifetimes?.udpMs ?? 0,
    });
    this.map(MapNames.nodeConfig).update(Buffer.alloc(4), value);
  }

  backend(b: Backend): void {
    const v6 = b.address.includes(':');
    const value = encode(v6 ? Layouts.lb6Backend : Layouts.lb4Backend, {
      address: b.address,
      port: b.port,
      proto: b.proto,
      flags: b.flags ?? 0,
      node_address: b.node ?? (v6 ? '::' : '0.0.0.0'),
    });
    this.map(v6 ? MapNames.lb6Backends : MapNames.lb4Backends).update(u32(b.id), value);
  }

  removeBackend(id: number, family: 4 | 6 = 4): void {
    this.map(family === 4 ? MapNames.lb4Backends : MapNames.lb6Backends).delete(u32(id));
  }

  /** Writes an external-scope frontend and its slots, as the agent would. */
  frontend(f: Frontend): void {
    const v6 = f.address.includes(':');
    f.backends.forEach((id, i) => {
      this.map(MapNames.slots).update(encode(Layouts.slotKey, { service_id: f.serviceId, slot: i + 1 }), u32(id));
    });
    const key = encode(v6 ? Layouts.lb6Key : Layouts.lb4Key, { address: f.address, dport: f.port, proto: f.proto, scope: Scope.external });
    const value = encode(Layouts.service, {
      service_id: f.serviceId,
      backend_count: f.backends.length,
      flags: f.flags ?? 0,
      affinity_timeout: f.affinityTimeout ?? 0,
      scheduler: f.scheduler ?? 0,
    });
    this.map(v6 ? MapNames.lb6Services : MapNames.lb4Services).update(key, value);
  }

  /** Allows a source prefix ("198.51.100.0/24") into the service. */
  sourceRange(serviceId: number, cidr: string): void {
    const [address, bits] = cidr.split('/') as [string, string];
    const v6 = address.includes(':');
    const key = encode(v6 ? Layouts.lb6SrcRangeKey : Layouts.lb4SrcRangeKey, {
      prefixlen: 32 + Number(bits),
      service_id: serviceId,
      address,
    });
    this.map(v6 ? MapNames.lb6SrcRanges : MapNames.lb4SrcRanges).update(key, Buffer.from([1]));
  }

  /** The connection table entry of a client's flow to a frontend, decoded; undefined if none. */
  flow(t: { saddr: string; daddr: string; sport: number; dport: number; proto: number }): Decoded | undefined {
    const v6 = t.saddr.includes(':');
    const value = this.map(v6 ? MapNames.lb6Ct : MapNames.lb4Ct).lookup(encode(v6 ? Layouts.lb6Tuple : Layouts.lb4Tuple, t));
    return value && decode(v6 ? Layouts.lb6Ct : Layouts.lb4Ct, value);
  }

  /** The reverse NAT entry of a reply tuple (backend to node or client), decoded; undefined if none. */
  reverse(t: { saddr: string; daddr: string; sport: number; dport: number; proto: number }): Decoded | undefined {
    const v6 = t.saddr.includes(':');
    const value = this.map(v6 ? MapNames.lb6Rnat : MapNames.lb4Rnat).lookup(encode(v6 ? Layouts.lb6Tuple : Layouts.lb4Tuple, t));
    return value && decode(v6 ? Layouts.lb6Rnat : Layouts.lb4Rnat, value);
  }

  /** A backend's open XDP flows (lb_be_flows_v1), as the least-connection schedulers read it. */
  openFlows(backendId: number): number {
    return Number(this.map(MapNames.backendFlows).lookup(u32(backendId))!.readBigInt64LE(0));
  }

  /** The per-reason counters, summed over CPUs. */
  stats(): Record<XdpReason, bigint> {
    const m = this.map(MapNames.xdpStats);
    const counter = { name: 'count', size: 8, fields: [{ name: 'n', type: 'u64', offset: 0 }] } as const;
    return Object.fromEntries(XDP_REASONS.map((name, i) => [name, sumPerCpu(counter, m.lookup(u32(i))!).n!])) as Record<XdpReason, bigint>;
  }

  /** Closes the map fds this object opened. */
  closeMaps(): void {
    for (const m of this.#maps.values()) m.close();
    this.#maps.clear();
  }
}

export class XdpFixture extends XdpMaps {
  readonly ns: string;
  readonly netns: string;
  readonly ifindex: { ext0: number; int0: number };

  private constructor(ns: string, obj: BpfObject, ifindex: { ext0: number; int0: number }) {
    super(obj);
    this.ns = ns;
    this.netns = `/run/netns/${ns}`;
    this.ifindex = ifindex;
  }

  /** The node namespace and the object (default bpf/out/xdp.bpf.o) loaded with small maps, or with `sizes`. */
  static create(o: { object?: string; sizes?: Partial<Record<string, number>> } = {}): XdpFixture {
    const ns = `socklb-xdp-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', ns]);
    live.add(ns);
    let obj: BpfObject | undefined;
    try {
      for (const args of SETUP(ns)) execFileSync('ip', args);
      execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      const links = JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' })) as {
        ifname: string;
        ifindex: number;
      }[];
      const index = (name: string): number => links.find((l) => l.ifname === name)!.ifindex;
      obj = BpfObject.open(o.object ?? XDP_OBJECT);
      for (const [name, n] of Object.entries({ ...SIZES, ...o.sizes })) if (n) obj.setMaxEntries(name, n);
      obj.load();
      return new XdpFixture(ns, obj, { ext0: index('ext0'), int0: index('int0') });
    } catch (err) {
      obj?.close();
      execFileSync('ip', ['netns', 'del', ns]);
      live.delete(ns);
      throw err;
    }
  }

  /** Runs an XDP program (default xdp_lb) on the packet as if it arrived on `dev` in the node namespace. */
  run(input: Buffer, dev: 'ext0' | 'int0' = 'ext0', repeat = 1, program = 'xdp_lb'): TestRunResult {
    return this.obj.testRun(program, {
      data: input,
      repeat,
      ctxIn: xdpContext(this.ifindex[dev], input.length),
      netns: this.netns,
    });
  }

  /** Runs the tc egress program once on the packet. */
  runTc(input: Buffer): TestRunResult {
    return this.obj.testRun('tc_lb_egress', { data: input, netns: this.netns });
  }

  close(): void {
    this.closeMaps();
    this.obj.close();
    try {
      execFileSync('ip', ['netns', 'del', this.ns]);
    } finally {
      live.delete(this.ns);
    }
  }
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** One row of a packet table: input frame, verdict, the exact frame left, the counter bumped. */
export interface Case {
  name: string;
  dev?: 'ext0' | 'int0';
  input: () => Buffer;
  verdict: Verdict;
  /** The frame the program leaves; 'unchanged' for the input as it came. */
  output: 'unchanged' | (() => Buffer);
  reason: XdpReason;
}

/** Hex, 16 bytes a line, so a failed comparison shows where the frames differ. */
export function hex(b: Buffer): string {
  return b.toString('hex').replace(/(.{32})/g, '$1\n');
}

export function checkCase(fx: XdpFixture, c: Case): void {
  const before = fx.stats();
  const input = c.input();
  const r = fx.run(input, c.dev ?? 'ext0');
  const verdict = Object.entries(XDP).find(([, v]) => v === r.retval)?.[0] ?? String(r.retval);
  assert.is(verdict, c.verdict, 'verdict');
  const want = c.output === 'unchanged' ? input : c.output();
  assert.is(hex(r.data), hex(want), 'output frame');
  assert.is(fx.stats()[c.reason] - before[c.reason], 1n, `counter ${c.reason}`);
}
