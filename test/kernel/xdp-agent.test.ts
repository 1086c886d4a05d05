// NodePort, LoadBalancer and externalTrafficPolicy: Local from outside the node, through a real
// socklb agent (bin/socklb in node-a's network namespace, XDP native on its device) on the cluster
// lab: an outside client, two nodes on a switch, pods behind each node.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BpfLink, BpfObject } from '../../src/bpf/binding.ts';
import { CLIENT_IPV4, CLIENT_IPV6, ClusterLab, hostPort } from '../../src/lab/cluster-lab.ts';
import type { ProcessHandle } from '../../src/lab/netns-base.ts';
import { manifest } from '../support/objects.ts';
import { pinnedXdpReasons } from '../support/pinned-xdp-stats.ts';
import { scaled, TIME_SCALE } from '../support/time-scale.ts';
import { loadXdpPass } from '../support/xdp-peers.ts';

const NODE_PORT = 30080;
const UDP_NODE_PORT = 30053;
const LOCAL_NODE_PORT = 30081;
const LB_ALLOWED = '192.168.78.10';
const LB_DENIED = '192.168.78.11';

interface Ctx {
  lab: ClusterLab;
  agent?: ProcessHandle;
  /** xdp_pass on the veth peers XDP redirects into (PLATFORM.md: a veth delivers XDP frames only then). */
  peers: BpfLink[];
  passObject?: BpfObject;
  file: string;
}

/** The Services and EndpointSlices of the test, as a cluster would hold them. */
function objects(lab: ClusterLab): object[] {
  const [a0, b0] = [lab.podsOn('node-a')[0]!, lab.podsOn('node-b')[0]!];
  const endpoints = [
    { addresses: [a0.ipv4], conditions: { ready: true }, nodeName: 'node-a' },
    { addresses: [b0.ipv4], conditions: { ready: true }, nodeName: 'node-b' },
  ];
  const svc = (name: string, spec: object, status: object = {}) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec,
    status,
  });
  const slice = (service: string, ports: object[], v6 = false) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-${v6 ? 6 : 4}`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: v6 ? 'IPv6' : 'IPv4',
    ports,
    endpoints: v6
      ? [
          { addresses: [a0.ipv6], conditions: { ready: true }, nodeName: 'node-a' },
          { addresses: [b0.ipv6], conditions: { ready: true }, nodeName: 'node-b' },
        ]
      : endpoints,
  });
  return [
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
    slice('web', [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'dns', port: 5353, protocol: 'UDP' },
    ]),
    slice('web', [{ name: 'http', port: 8080, protocol: 'TCP' }], true),
    svc('local', {
      type: 'NodePort',
      clusterIP: '10.96.0.11',
      externalTrafficPolicy: 'Local',
      ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: LOCAL_NODE_PORT, protocol: 'TCP' }],
    }),
    slice('local', [{ name: 'http', port: 8080, protocol: 'TCP' }]),
    svc(
      'lb',
      {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.12',
        loadBalancerSourceRanges: [`${CLIENT_IPV4}/32`],
        ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30090, protocol: 'TCP' }],
      },
      { loadBalancer: { ingress: [{ ip: LB_ALLOWED }] } },
    ),
    slice('lb', [{ name: 'http', port: 8080, protocol: 'TCP' }]),
    svc(
      'lb-closed',
      {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.13',
        loadBalancerSourceRanges: ['198.51.100.0/24'],
        ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30091, protocol: 'TCP' }],
      },
      { loadBalancer: { ingress: [{ ip: LB_DENIED }] } },
    ),
    slice('lb-closed', [{ name: 'http', port: 8080, protocol: 'TCP' }]),
  ];
}

/** Starts node-a's agent with XDP on its device; resolves once its NodePort answers. */
async function startAgent(ctx: Ctx): Promise<ProcessHandle> {
  const a = ctx.lab.node('node-a');
  const agent = ctx.lab.startAgent('node-a', [
    '--manifests',
    ctx.file,
    '--devices',
    a.device,
    '--nodeport-addresses',
    '192.168.77.0/24,fd00:77::/64',
  ]);
  ctx.agent = agent;
  // Bounded: the agent loads and syncs within seconds.
  for (let i = 0; i < 60 * TIME_SCALE; i++) {
    const r = await ctx.lab
      .runProbe(['tcp', '--target', hostPort(a.ipv4, NODE_PORT), '--count', '1', '--timeout-ms', '500'])
      .catch(() => undefined);
    if (r?.ok === 1) return agent;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`node-a's NodePort never answered; agent output:\n${agent.output().slice(-3000)}`);
}

function xdpReasons(lab: ClusterLab): Record<string, bigint> {
  return pinnedXdpReasons(lab.node('node-a').bpffs);
}

const xdp = suite<Ctx>('XDP through the agent');

xdp.before(async (ctx) => {
  ctx.peers = [];
  ctx.lab = await ClusterLab.create({ prefix: ClusterLab.uniquePrefix('xagent'), pods: { 'node-a': 1, 'node-b': 1 } });
  for (const p of ctx.lab.pods) await ctx.lab.startServer(p.name, { tcp: [8080], udp: [5353] });
  const a = ctx.lab.node('node-a');
  // The switch port XDP_TX answers through, and the pod veth a local backend is redirected into.
  const pod = ctx.lab.podsOn('node-a')[0]!;
  const { object, links } = await loadXdpPass(ctx.lab, [
    [a.peer.ns, a.peer.device],
    [pod.ns, 'eth0'],
  ]);
  ctx.passObject = object;
  ctx.peers.push(...links);
  ctx.file = join(mkdtempSync(join(tmpdir(), 'socklb-xagent-')), 'services.yaml');
  writeFileSync(ctx.file, manifest(objects(ctx.lab)));
  await startAgent(ctx);
});

xdp.after(async (ctx) => {
  await ctx.agent?.stop();
  for (const l of ctx.peers) l.close();
  ctx.passObject?.close();
  await ctx.lab?.destroy();
  if (ctx.file) rmSync(dirname(ctx.file), { recursive: true, force: true });
});

xdp('a NodePort reaches pods on both nodes: the remote one sees the node (SNAT), the local one the client', async ({ lab }) => {
  const a = lab.node('node-a');
  const [a0, b0] = [lab.podsOn('node-a')[0]!, lab.podsOn('node-b')[0]!];
  const r = await lab.runProbe(['tcp', '--target', hostPort(a.ipv4, NODE_PORT), '--count', '60']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.equal(Object.keys(r.byBackend).sort(), [a0.name, b0.name].sort());
  assert.equal(Object.keys(r.peers), [hostPort(a.ipv4, NODE_PORT)], 'replies come from the address dialled');
  assert.equal(Object.keys(r.sources[b0.name] ?? {}), [a.ipv4]);
  assert.equal(Object.keys(r.sources[a0.name] ?? {}), [CLIENT_IPV4]);
  const reasons = xdpReasons(lab);
  assert.ok(reasons.balanced! >= 60n, `balanced ${reasons.balanced}`);
});

xdp('an IPv6 NodePort likewise: SNAT to the remote pod, the client kept for the local one', async ({ lab }) => {
  const a = lab.node('node-a');
  const [a0, b0] = [lab.podsOn('node-a')[0]!, lab.podsOn('node-b')[0]!];
  const r = await lab.runProbe(['tcp', '--target', hostPort(a.ipv6!, NODE_PORT), '--count', '40']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.equal(Object.keys(r.byBackend).sort(), [a0.name, b0.name].sort());
  assert.equal(Object.keys(r.peers), [hostPort(a.ipv6!, NODE_PORT)]);
  assert.equal(Object.keys(r.sources[b0.name] ?? {}), [a.ipv6]);
  assert.equal(Object.keys(r.sources[a0.name] ?? {}), [CLIENT_IPV6]);
});

xdp('UDP to a NodePort is balanced per flow and answered from the NodePort', async ({ lab }) => {
  const a = lab.node('node-a');
  const r = await lab.runProbe(['udp', '--target', hostPort(a.ipv4, UDP_NODE_PORT), '--count', '40', '--new-socket']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.is(Object.keys(r.byBackend).length, 2, JSON.stringify(r.byBackend));
  assert.equal(Object.keys(r.peers), [hostPort(a.ipv4, UDP_NODE_PORT)]);
});

xdp("externalTrafficPolicy: Local answers from node-a's pod only, which sees the client", async ({ lab }) => {
  const a = lab.node('node-a');
  const a0 = lab.podsOn('node-a')[0]!;
  const r = await lab.runProbe(['tcp', '--target', hostPort(a.ipv4, LOCAL_NODE_PORT), '--count', '30']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.equal(r.byBackend, { [a0.name]: 30 });
  assert.equal(Object.keys(r.sources[a0.name] ?? {}), [CLIENT_IPV4]);
});

xdp('loadBalancerSourceRanges: the allowed LoadBalancer IP answers, the closed one drops the client', async ({ lab }) => {
  const open = await lab.runProbe(['tcp', '--target', hostPort(LB_ALLOWED, 80), '--count', '10']);
  assert.is(open.ok, 10, JSON.stringify(open.errors));
  const closed = await lab.runProbe(['tcp', '--target', hostPort(LB_DENIED, 80), '--count', '2', '--timeout-ms', '500']);
  assert.is(closed.ok, 0);
  assert.ok(xdpReasons(lab).source_denied! > 0n);
});

xdp('a connect loop through the NodePort fails nothing while the agent is killed and restarted', async (ctx) => {
  const a = ctx.lab.node('node-a');
  const loop = ctx.lab.spawnProbe(
    [
      'tcp',
      '--target',
      hostPort(a.ipv4, NODE_PORT),
      '--count',
      '100000',
      '--duration-ms',
      String(scaled(20_000)),
      '--timeout-ms',
      String(scaled(5000)),
    ],
    { timeoutMs: scaled(60_000) },
  );
  await loop.started;
  await new Promise((r) => setTimeout(r, 300));
  process.kill(ctx.agent!.pid, 'SIGKILL');
  await ctx.agent!.exited;
  await startAgent(ctx);
  const r = await loop.stop();
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.ok(r.ok > 20, `only ${r.ok} connects`);
});

xdp.run();
