// lc in XDP through a real agent on the cluster lab: the outside client holds connections open
// through node-a's NodePort to one pod, and new connections all go to the others (node-b's by SNAT,
// node-a's own by DNAT, its replies through tc egress); the open flows per backend the kernel
// counts (lb_be_flows_v1, read from the agent's pins) follow, back to 0 once everything closed.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type BpfLink, BpfMap, type BpfObject } from '../../src/bpf/binding.ts';
import { decode, Layouts, MapNames, Scope } from '../../src/datapath/abi.ts';
import { ClusterLab, hostPort } from '../../src/lab/cluster-lab.ts';
import type { ProcessHandle } from '../../src/lab/netns-base.ts';
import { manifest } from '../support/objects.ts';
import { scaled, TIME_SCALE } from '../support/time-scale.ts';
import { loadXdpPass } from '../support/xdp-peers.ts';

const NODE_PORT = 30080;
const HELD = 10;

interface Ctx {
  lab: ClusterLab;
  agent?: ProcessHandle;
  peers: BpfLink[];
  passObject?: BpfObject;
  file: string;
}

/** The lc NodePort Service over the given pods. */
function objects(lab: ClusterLab, pods: string[]): object[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'default', annotations: { 'socklb.io/scheduler': 'lc' } },
      spec: {
        type: 'NodePort',
        clusterIP: '10.96.0.20',
        ports: [{ name: 'sql', port: 80, targetPort: 8080, nodePort: NODE_PORT, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'db-4', namespace: 'default', labels: { 'kubernetes.io/service-name': 'db' } },
      addressType: 'IPv4',
      ports: [{ name: 'sql', port: 8080, protocol: 'TCP' }],
      endpoints: pods.map((name) => {
        const pod = lab.pod(name);
        return { addresses: [pod.ipv4], conditions: { ready: true }, nodeName: pod.node };
      }),
    },
  ];
}

function withPin<T>(lab: ClusterLab, name: string, f: (m: BpfMap) => T): T {
  const map = BpfMap.fromPin(join(lab.node('node-a').bpffs, 'maps', name));
  try {
    return f(map);
  } finally {
    map.close();
  }
}

/** The open XDP flows the kernel counts per pod, by the backend ids in the agent's pinned maps. */
function openFlows(lab: ClusterLab): Record<string, number> {
  const ids = withPin(lab, MapNames.lb4Backends, (m) =>
    [...m.entries()].map(([k, v]) => [k.readUInt32LE(0), String(decode(Layouts.lb4Backend, v).address)] as const),
  );
  return withPin(lab, MapNames.backendFlows, (m) =>
    Object.fromEntries(
      lab.pods.map((pod) => {
        const id = ids.find(([, address]) => address === pod.ipv4)?.[0];
        const raw = id === undefined ? undefined : m.lookup(Buffer.from(new Uint32Array([id]).buffer));
        return [pod.name, raw ? Number(raw.readBigInt64LE(0)) : 0];
      }),
    ),
  );
}

/** Waits (bounded) until the counts satisfy `want`. */
async function waitFlows(lab: ClusterLab, want: (c: Record<string, number>) => boolean, what: string): Promise<Record<string, number>> {
  const deadline = Date.now() + scaled(20_000);
  let seen = openFlows(lab);
  while (!want(seen)) {
    if (Date.now() > deadline) throw new Error(`open flows never became ${what}: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 50));
    seen = openFlows(lab);
  }
  return seen;
}

/** Waits (bounded) until node-a's external NodePort entry has `n` backends. */
async function waitBackends(lab: ClusterLab, n: number): Promise<void> {
  const deadline = Date.now() + scaled(20_000);
  const count = () =>
    withPin(lab, MapNames.lb4Services, (m) =>
      Math.max(
        0,
        ...[...m.entries()]
          .filter(([k]) => decode(Layouts.lb4Key, k).scope === Scope.external && decode(Layouts.lb4Key, k).dport === NODE_PORT)
          .map(([, v]) => Number(decode(Layouts.service, v).backend_count)),
      ),
    );
  while (count() !== n) {
    if (Date.now() > deadline) throw new Error(`the NodePort never had ${n} backends`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const lc = suite<Ctx>('lc in XDP through the agent');

lc.before(async (ctx) => {
  ctx.peers = [];
  ctx.lab = await ClusterLab.create({ prefix: ClusterLab.uniquePrefix('xlc'), pods: { 'node-a': 1, 'node-b': 2 }, ipv6: false });
  for (const p of ctx.lab.pods) await ctx.lab.startServer(p.name, { tcp: [8080] });
  const a = ctx.lab.node('node-a');
  const pod = ctx.lab.podsOn('node-a')[0]!;
  const { object, links } = await loadXdpPass(ctx.lab, [
    [a.peer.ns, a.peer.device],
    [pod.ns, 'eth0'],
  ]);
  ctx.passObject = object;
  ctx.peers.push(...links);
  ctx.file = join(mkdtempSync(join(tmpdir(), 'socklb-xlc-')), 'services.yaml');
  writeFileSync(ctx.file, manifest(objects(ctx.lab, [ctx.lab.podsOn('node-b')[0]!.name])));
  ctx.agent = ctx.lab.startAgent('node-a', ['--manifests', ctx.file, '--devices', a.device, '--nodeport-addresses', '192.168.77.0/24']);
  for (let i = 0; ; i++) {
    const r = await ctx.lab
      .runProbe(['tcp', '--target', hostPort(a.ipv4, NODE_PORT), '--count', '1', '--timeout-ms', '500'])
      .catch(() => undefined);
    if (r?.ok === 1) break;
    if (i >= 60 * TIME_SCALE) throw new Error(`node-a's NodePort never answered; agent output:\n${ctx.agent.output().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
});

lc.after(async (ctx) => {
  await ctx.agent?.stop();
  for (const l of ctx.peers) l.close();
  ctx.passObject?.close();
  await ctx.lab?.destroy();
  if (ctx.file) rmSync(dirname(ctx.file), { recursive: true, force: true });
});

lc('connections held on one pod send every new one to the others; all closed, every count is 0', async ({ lab, file }) => {
  const a = lab.node('node-a');
  const [busy, other] = lab.podsOn('node-b').map((p) => p.name) as [string, string];
  const local = lab.podsOn('node-a')[0]!.name;
  const target = hostPort(a.ipv4, NODE_PORT);
  await waitFlows(lab, (c) => Object.values(c).every((n) => n === 0), 'all 0 after the start-up probes');
  // connect-only: no request, so neither side closes until the holder goes.
  const holder = lab.spawnProbe(['connect-only', '--target', target, '--count', String(HELD), '--hold'], { timeoutMs: scaled(180_000) });
  try {
    await waitFlows(lab, (c) => c[busy] === HELD, `${HELD} on ${busy}`);
    writeFileSync(file, manifest(objects(lab, [busy, other, local])));
    await waitBackends(lab, 3);
    // Each closes after its reply: the others stay at 0 or 1, far below the held ones.
    const next = await lab.runProbe(['tcp', '--target', target, '--count', '12', '--duration-ms', String(scaled(60_000))], {
      timeoutMs: scaled(120_000),
    });
    assert.is(next.failed, 0, JSON.stringify(next.errors));
    assert.is(next.byBackend[busy], undefined, `${busy} still holds ${HELD}: ${JSON.stringify(next.byBackend)}`);
    assert.ok((next.byBackend[other] ?? 0) > 0 && (next.byBackend[local] ?? 0) > 0, JSON.stringify(next.byBackend));
    await waitFlows(lab, (c) => c[busy] === HELD && c[other] === 0 && c[local] === 0, `${HELD} / 0 / 0 once the 12 closed`);
  } finally {
    await holder.stop();
  }
  await waitFlows(lab, (c) => Object.values(c).every((n) => n === 0), 'all 0 after the holder exited');
});

lc.run();
