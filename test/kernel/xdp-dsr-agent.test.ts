// Direct server return through real agents: node-a and node-b each run `socklb agent
// --nodeport-mode dsr` (XDP native on eth0) on the cluster lab, with Node documents in the
// manifest giving every node's address. A client outside dials a NodePort on either node, or a
// LoadBalancer ingress IP or an externalIP (which the client routes to node-a); a backend on the
// other node gets the packet encapsulated to its node, sees the client's address, and its node
// answers the client directly from the address and port the client dialled.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DSR_PORT } from '../../src/agent/xdp.ts';
import { type BpfLink, BpfMap, type BpfObject } from '../../src/bpf/binding.ts';
import { decode, Layouts, MapNames, NodeConfigFlags } from '../../src/datapath/abi.ts';
import {
  CLIENT_IPV4,
  CLIENT_IPV6,
  ClusterLab,
  type ClusterPod,
  hostPort,
  type ClusterLab as Lab,
  type NodeName,
} from '../../src/lab/cluster-lab.ts';
import type { ProcessHandle } from '../../src/lab/netns-base.ts';
import { manifest } from '../support/objects.ts';
import { pinnedXdpReasons } from '../support/pinned-xdp-stats.ts';
import type { StreamResult } from '../support/tcp-stream.ts';
import { scaled, TIME_SCALE } from '../support/time-scale.ts';
import { attachXdpPass, loadXdpPass } from '../support/xdp-peers.ts';

const NODE_PORT = 30080;
const UDP_NODE_PORT = 30053;
const STREAM_NODE_PORT = 30082;
/** A Service whose endpoint names a node without a Node document: SNAT for it. */
const ORPHAN_NODE_PORT = 30083;
const ORPHAN_PORT = 8081;
/** The stream service's target port: test/support/tcp-stream.ts serving in the pods. */
const STREAM_PORT = 9000;
const STREAM = fileURLToPath(new URL('../support/tcp-stream.ts', import.meta.url));
/** The edge service's addresses: in the lab's VIP_CIDR4/6, which the client routes to node-a. */
const LB_IP = { v4: '192.168.78.10', v6: 'fd00:78::10' };
const EXTERNAL_IP = { v4: '192.168.78.20', v6: 'fd00:78::20' };

interface Ctx {
  lab: Lab;
  agents: Partial<Record<NodeName, ProcessHandle>>;
  /** xdp_pass on the veth peers XDP sends into (PLATFORM.md: a veth delivers XDP frames only then). */
  peers: BpfLink[];
  passObject?: BpfObject;
  file: string;
  /** Pods the stream service balances over besides pod-b0. */
  streamExtra: ClusterPod[];
}

const ready = (pods: ClusterPod[], v6: boolean) =>
  pods.map((p) => ({ addresses: [v6 ? p.ipv6 : p.ipv4], conditions: { ready: true }, nodeName: p.node }));

/** Node documents (as `kubectl get node -o yaml` shows them), Services and EndpointSlices. */
function objects(ctx: Ctx): object[] {
  const { lab } = ctx;
  const [a0, b0] = [lab.podsOn('node-a')[0]!, lab.podsOn('node-b')[0]!];
  const node = (name: NodeName) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: {
      addresses: [
        { type: 'InternalIP', address: lab.node(name).ipv4 },
        { type: 'InternalIP', address: lab.node(name).ipv6 },
        { type: 'Hostname', address: name },
      ],
    },
  });
  const svc = (name: string, spec: object) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec });
  const slice = (service: string, ports: object[], endpoints: object[], v6 = false) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-${v6 ? 6 : 4}`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: v6 ? 'IPv6' : 'IPv4',
    ports,
    endpoints,
  });
  const webPorts = [
    { name: 'http', port: 8080, protocol: 'TCP' },
    { name: 'dns', port: 5353, protocol: 'UDP' },
  ];
  return [
    node('node-a'),
    node('node-b'),
    svc('web', {
      type: 'NodePort',
      clusterIP: '10.96.0.10',
      clusterIPs: ['10.96.0.10', 'fd00:10:96::10'],
      ipFamilies: ['IPv4', 'IPv6'],
      ipFamilyPolicy: 'RequireDualStack',
      ports: [
        { name: 'http', port: 80, targetPort: 8080, nodePort: NODE_PORT, protocol: 'TCP' },
        { name: 'dns', port: 53, targetPort: 5353, nodePort: UDP_NODE_PORT, protocol: 'UDP' },
      ],
    }),
    slice('web', webPorts, ready([a0, b0], false)),
    slice('web', webPorts, ready([a0, b0], true), true),
    {
      ...svc('edge', {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.16',
        clusterIPs: ['10.96.0.16', 'fd00:10:96::16'],
        ipFamilies: ['IPv4', 'IPv6'],
        ipFamilyPolicy: 'RequireDualStack',
        externalIPs: [EXTERNAL_IP.v4, EXTERNAL_IP.v6],
        ports: [
          { name: 'http', port: 80, targetPort: 8080, nodePort: 30084, protocol: 'TCP' },
          { name: 'dns', port: 53, targetPort: 5353, nodePort: 30085, protocol: 'UDP' },
        ],
      }),
      status: { loadBalancer: { ingress: [{ ip: LB_IP.v4 }, { ip: LB_IP.v6 }] } },
    },
    slice('edge', webPorts, ready([a0, b0], false)),
    slice('edge', webPorts, ready([a0, b0], true), true),
    svc('stream', {
      type: 'NodePort',
      clusterIP: '10.96.0.14',
      ports: [{ name: 'line', port: 80, targetPort: STREAM_PORT, nodePort: STREAM_NODE_PORT, protocol: 'TCP' }],
    }),
    slice('stream', [{ name: 'line', port: STREAM_PORT, protocol: 'TCP' }], ready([b0, ...ctx.streamExtra], false)),
    svc('orphan', {
      type: 'NodePort',
      clusterIP: '10.96.0.15',
      ports: [{ name: 'http', port: 80, targetPort: ORPHAN_PORT, nodePort: ORPHAN_NODE_PORT, protocol: 'TCP' }],
    }),
    slice(
      'orphan',
      [{ name: 'http', port: ORPHAN_PORT, protocol: 'TCP' }],
      [{ addresses: [b0.ipv4], conditions: { ready: true }, nodeName: 'node-x' }],
    ),
  ];
}

async function startAgent(ctx: Ctx, name: NodeName): Promise<void> {
  const n = ctx.lab.node(name);
  const agent = ctx.lab.startAgent(name, [
    '--manifests',
    ctx.file,
    '--devices',
    n.device,
    '--nodeport-mode',
    'dsr',
    '--nodeport-addresses',
    '192.168.77.0/24,fd00:77::/64',
  ]);
  ctx.agents[name] = agent;
  // Bounded: the agent loads and syncs within seconds.
  for (let i = 0; i < 60 * TIME_SCALE; i++) {
    const r = await ctx.lab
      .runProbe(['tcp', '--target', hostPort(n.ipv4, NODE_PORT), '--count', '1', '--timeout-ms', '500'])
      .catch(() => undefined);
    if (r?.ok === 1) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`${name}'s NodePort never answered; agent output:\n${agent.output().slice(-3000)}`);
}

function pinned<T>(lab: Lab, node: NodeName, name: string, read: (map: BpfMap) => T): T {
  const map = BpfMap.fromPin(join(lab.node(node).bpffs, 'maps', name));
  try {
    return read(map);
  } finally {
    map.close();
  }
}

/** node-a's connection table for the stream NodePort: each flow's client address and port -> its backend. */
function streamFlows(lab: Lab): Map<string, string> {
  return pinned(lab, 'node-a', MapNames.lb4Ct, (m) => {
    const flows = new Map<string, string>();
    for (const k of m.keys()) {
      const t = decode(Layouts.lb4Tuple, k);
      if (Number(t.dport) !== STREAM_NODE_PORT) continue;
      const ct = decode(Layouts.lb4Ct, m.lookup(k)!);
      flows.set(hostPort(String(t.saddr), Number(t.sport)), hostPort(String(ct.backend_address), Number(ct.backend_port)));
    }
    return flows;
  });
}

/** The stream service's backends as the agents program them: rewrite the manifest, wait until node-a balances over `want`. */
async function setStreamBackends(ctx: Ctx, extra: ClusterPod[]): Promise<void> {
  ctx.streamExtra = extra;
  writeFileSync(ctx.file, manifest(objects(ctx)));
  const want = ['pod-b0', ...extra.map((p) => p.name)].sort();
  let seen: string[] = [];
  for (let i = 0; i < 20 * TIME_SCALE; i++) {
    // New connections, each balanced afresh.
    const a = ctx.lab.node('node-a');
    const argv = [process.execPath, STREAM, 'spread', a.ipv4, String(STREAM_NODE_PORT), String(8 * want.length)];
    const r = JSON.parse((await ctx.lab.exec(ctx.lab.client.ns, argv, { timeoutMs: scaled(30_000) })).stdout) as StreamResult;
    seen = Object.keys(r.backends).sort();
    if (JSON.stringify(seen) === JSON.stringify(want)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the stream service never balanced over ${want.join(', ')} (last saw ${seen.join(', ')})`);
}

/** A TCP stream from the client through node-a's stream NodePort: COUNT lines on one connection. */
async function stream(lab: Lab, count: number, intervalMs: number): Promise<StreamResult> {
  const a = lab.node('node-a');
  const argv = [process.execPath, STREAM, 'stream', a.ipv4, String(STREAM_NODE_PORT), String(count), String(intervalMs)];
  const r = await lab.exec(lab.client.ns, argv, { timeoutMs: scaled(10_000) + count * (intervalMs + 5000) });
  return JSON.parse(r.stdout) as StreamResult;
}

/**
 * A TCP stream from the client through node-a's stream NodePort, about `ms` long, while `meanwhile`
 * runs: it must outlive `meanwhile`, have every line answered on its one connection, by pod-b0,
 * which saw the client.
 */
async function streamThrough(lab: Lab, ms: number, meanwhile: () => Promise<void>): Promise<void> {
  const lines = Math.round(scaled(ms) / 100);
  let finished = false;
  const running = stream(lab, lines, 100).finally(() => {
    finished = true;
  });
  await new Promise((r) => setTimeout(r, 300));
  await meanwhile();
  assert.not.ok(finished, 'the stream outlived the changes');
  const r = await running;
  assert.is(r.failed, 0, r.error);
  assert.is(r.ok, lines, 'every line answered on the one connection');
  assert.equal(r.backends, { 'pod-b0': lines }, 'by one backend throughout');
  assert.equal(r.sources, [CLIENT_IPV4], 'which saw the client');
}

/** The line server of the stream service in a pod; resolves once it listens. */
async function startLineServer(lab: Lab, pod: ClusterPod): Promise<void> {
  const h = lab.start(pod.ns, [process.execPath, STREAM, 'serve', pod.name, String(STREAM_PORT)]);
  for (let i = 0; i < 100 * TIME_SCALE && !h.output().includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
  if (!h.output().includes('ready')) throw new Error(`line server in ${pod.name} never listened: ${h.output()}`);
}

const dsr = suite<Ctx>('DSR through two agents');

dsr.before(async (ctx) => {
  ctx.peers = [];
  ctx.agents = {};
  ctx.streamExtra = [];
  ctx.lab = await ClusterLab.create({ prefix: ClusterLab.uniquePrefix('xdsr'), pods: { 'node-a': 1, 'node-b': 1 } });
  for (const p of ctx.lab.pods) {
    await ctx.lab.startServer(p.name, { tcp: [8080, ORPHAN_PORT], udp: [5353] });
    await startLineServer(ctx.lab, p);
  }
  // The switch ports XDP_TX sends the encapsulated packets out through, and the pods' veths.
  const { object, links } = await loadXdpPass(ctx.lab, [
    ...ctx.lab.nodes.map((n) => [n.peer.ns, n.peer.device] as const),
    ...ctx.lab.pods.map((p) => [p.ns, 'eth0'] as const),
  ]);
  ctx.passObject = object;
  ctx.peers.push(...links);
  ctx.file = join(mkdtempSync(join(tmpdir(), 'socklb-xdsr-')), 'services.yaml');
  writeFileSync(ctx.file, manifest(objects(ctx)));
  await startAgent(ctx, 'node-a');
  await startAgent(ctx, 'node-b');
});

dsr.after(async (ctx) => {
  for (const agent of Object.values(ctx.agents)) await agent?.stop();
  for (const l of ctx.peers) l.close();
  ctx.passObject?.close();
  await ctx.lab?.destroy();
  if (ctx.file) rmSync(dirname(ctx.file), { recursive: true, force: true });
});

dsr("each agent programs the DSR flag, the shared port, its own Node's address, and remote backends' nodes", ({ lab }) => {
  for (const name of ['node-a', 'node-b'] as const) {
    const other = name === 'node-a' ? 'node-b' : 'node-a';
    const config = pinned(lab, name, MapNames.nodeConfig, (m) => decode(Layouts.nodeConfig, m.lookup(Buffer.alloc(4))!));
    assert.is(Number(config.flags) & NodeConfigFlags.dsr, NodeConfigFlags.dsr, `${name}: DSR flag`);
    assert.is(Number(config.dsr_port), DSR_PORT);
    assert.is(config.snat_address4, lab.node(name).ipv4, `${name}: its Node's InternalIP`);
    assert.is(config.snat_address6, lab.node(name).ipv6);
    const remote = lab.podsOn(other)[0]!;
    const local = lab.podsOn(name)[0]!;
    const backends = pinned(lab, name, MapNames.lb4Backends, (m) => [...m.keys()].map((k) => decode(Layouts.lb4Backend, m.lookup(k)!)));
    const nodeOf = (address: string) => [
      ...new Set(backends.filter((b) => b.address === address && Number(b.port) === 8080).map((b) => String(b.node_address))),
    ];
    assert.equal(nodeOf(remote.ipv4), [lab.node(other).ipv4], `${name}: the remote pod's node`);
    assert.equal(nodeOf(local.ipv4), ['0.0.0.0'], `${name}: a local pod has no node address`);
  }
});

for (const name of ['node-a', 'node-b'] as const) {
  dsr(`TCP through a NodePort on ${name}: both pods see the client, replies come from the address dialled`, async ({ lab }) => {
    const n = lab.node(name);
    const r = await lab.runProbe(['tcp', '--target', hostPort(n.ipv4, NODE_PORT), '--count', '40']);
    assert.is(r.failed, 0, JSON.stringify(r.errors));
    assert.equal(Object.keys(r.byBackend).sort(), ['pod-a0', 'pod-b0']);
    assert.equal(Object.keys(r.peers), [hostPort(n.ipv4, NODE_PORT)]);
    for (const pod of ['pod-a0', 'pod-b0']) assert.equal(Object.keys(r.sources[pod] ?? {}), [CLIENT_IPV4], `${pod} sees the client`);
  });

  dsr(`UDP through a NodePort on ${name}: per-flow DSR, answered from the NodePort`, async ({ lab }) => {
    const n = lab.node(name);
    const r = await lab.runProbe(['udp', '--target', hostPort(n.ipv4, UDP_NODE_PORT), '--count', '30', '--new-socket']);
    assert.is(r.failed, 0, JSON.stringify(r.errors));
    assert.equal(Object.keys(r.byBackend).sort(), ['pod-a0', 'pod-b0']);
    assert.equal(Object.keys(r.peers), [hostPort(n.ipv4, UDP_NODE_PORT)]);
    for (const pod of ['pod-a0', 'pod-b0']) assert.equal(Object.keys(r.sources[pod] ?? {}), [CLIENT_IPV4]);
  });

  dsr(`IPv6 TCP and UDP through a NodePort on ${name}, DSR likewise`, async ({ lab }) => {
    const n = lab.node(name);
    const tcp = await lab.runProbe(['tcp', '--target', hostPort(n.ipv6!, NODE_PORT), '--count', '30']);
    assert.is(tcp.failed, 0, JSON.stringify(tcp.errors));
    assert.equal(Object.keys(tcp.byBackend).sort(), ['pod-a0', 'pod-b0']);
    assert.equal(Object.keys(tcp.peers), [hostPort(n.ipv6!, NODE_PORT)]);
    for (const pod of ['pod-a0', 'pod-b0']) assert.equal(Object.keys(tcp.sources[pod] ?? {}), [CLIENT_IPV6]);
    const udp = await lab.runProbe(['udp', '--target', hostPort(n.ipv6!, UDP_NODE_PORT), '--count', '20', '--new-socket']);
    assert.is(udp.failed, 0, JSON.stringify(udp.errors));
    assert.equal(Object.keys(udp.peers), [hostPort(n.ipv6!, UDP_NODE_PORT)]);
    assert.equal(Object.keys(udp.byBackend).sort(), ['pod-a0', 'pod-b0']);
  });
}

for (const [kind, address] of [
  ['a LoadBalancer ingress IP', LB_IP],
  ['an externalIP', EXTERNAL_IP],
] as const) {
  for (const v6 of [false, true]) {
    dsr(`${v6 ? 'IPv6' : 'IPv4'} TCP and UDP through ${kind}: both pods see the client, node-b answers it directly`, async ({ lab }) => {
      const vip = v6 ? address.v6 : address.v4;
      const client = v6 ? CLIENT_IPV6 : CLIENT_IPV4;
      const before = { a: pinnedXdpReasons(lab.node('node-a').bpffs), b: pinnedXdpReasons(lab.node('node-b').bpffs) };
      const tcp = await lab.runProbe(['tcp', '--target', hostPort(vip, 80), '--count', '30']);
      const udp = await lab.runProbe(['udp', '--target', hostPort(vip, 53), '--count', '30', '--new-socket']);
      for (const [r, port] of [
        [tcp, 80],
        [udp, 53],
      ] as const) {
        assert.is(r.failed, 0, JSON.stringify(r.errors));
        assert.equal(Object.keys(r.byBackend).sort(), ['pod-a0', 'pod-b0']);
        assert.equal(Object.keys(r.peers), [hostPort(vip, port)], 'replies come from the address dialled');
        for (const pod of ['pod-a0', 'pod-b0']) assert.equal(Object.keys(r.sources[pod] ?? {}), [client], `${pod} sees the client`);
      }
      const after = { a: pinnedXdpReasons(lab.node('node-a').bpffs), b: pinnedXdpReasons(lab.node('node-b').bpffs) };
      assert.is(after.a.reply, before.a.reply, 'no reply crossed node-a');
      assert.ok(after.b.dsr_decap! > before.b.dsr_decap!, 'node-b decapsulated the packets for pod-b0');
      assert.ok(after.b.tc_reversed! > before.b.tc_reversed!, "node-b's egress gave pod-b0's replies the dialled address");
    });
  }
}

dsr("no reply crossed the dialled node: each node decapsulated the other's packets and its tc egress answered", ({ lab }) => {
  for (const name of ['node-a', 'node-b'] as const) {
    const s = pinnedXdpReasons(lab.node(name).bpffs);
    assert.is(s.reply, 0n, `${name}: no SNAT reply`);
    assert.ok(s.dsr_decap! > 0n, `${name}: decapsulated ${s.dsr_decap}`);
    assert.ok(s.tc_reversed! > 0n, `${name}: reversed ${s.tc_reversed}`);
    assert.is(s.no_snat_address, 0n);
  }
});

dsr('a backend on a node without a Node document gets SNAT, and the agent counts it in its status and /metrics', async ({ lab }) => {
  const a = lab.node('node-a');
  const r = await lab.runProbe(['tcp', '--target', hostPort(a.ipv4, ORPHAN_NODE_PORT), '--count', '10']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.equal(r.byBackend, { 'pod-b0': 10 });
  assert.equal(Object.keys(r.peers), [hostPort(a.ipv4, ORPHAN_NODE_PORT)]);
  assert.equal(Object.keys(r.sources['pod-b0'] ?? {}), [a.ipv4], "the pod sees node-a's address");
  const fetchText = (path: string) => [
    process.execPath,
    '-e',
    `fetch('http://127.0.0.1:10257${path}').then((r) => r.text()).then((t) => process.stdout.write(t))`,
  ];
  const status = JSON.parse((await lab.exec(a.ns, fetchText('/v1/status'))).stdout) as { dsrFallbacks: number };
  assert.is(status.dsrFallbacks, 1);
  const metrics = (await lab.exec(a.ns, fetchText('/metrics'))).stdout;
  assert.match(metrics, /^socklb_dsr_fallback_backends 1$/m);
});

dsr('a long TCP stream through DSR keeps its backend and its connection while other backends come and go', async (ctx) => {
  const { lab } = ctx;
  await streamThrough(lab, 10_000, async () => {
    const added = await lab.addPod('node-b');
    ctx.peers.push(...(await attachXdpPass(lab, ctx.passObject!, [[added.ns, 'eth0']])));
    await startLineServer(lab, added);
    await setStreamBackends(ctx, [lab.podsOn('node-a')[0]!, added]);
    await setStreamBackends(ctx, []);
  });
});

dsr('a long TCP stream through DSR keeps its backend and its connection while both agents are killed and restarted', async (ctx) => {
  const { lab } = ctx;
  // node-a holds the flow's entry and encapsulates, node-b unwraps and turns the replies back:
  // their programs and pinned tables do that without an agent, and a new agent takes them over.
  // Other backends stand by throughout, so a flow whose entry were lost would move.
  await streamThrough(lab, 30_000, async () => {
    await setStreamBackends(
      ctx,
      lab.pods.filter((p) => p.name !== 'pod-b0'),
    );
    const flows = streamFlows(lab);
    for (const name of ['node-a', 'node-b'] as const) {
      process.kill(ctx.agents[name]!.pid, 'SIGKILL');
      await ctx.agents[name]!.exited;
    }
    await new Promise((r) => setTimeout(r, 500));
    await startAgent(ctx, 'node-a');
    await startAgent(ctx, 'node-b');
    const kept = streamFlows(lab);
    assert.ok(flows.size > 1, `${flows.size} flows`);
    for (const [client, backend] of flows) assert.is(kept.get(client), backend, `the flow of ${client} kept its entry`);
    await setStreamBackends(ctx, []);
  });
});

dsr.run();
