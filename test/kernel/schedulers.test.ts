// The schedulers of socklb.io/scheduler on the socket path: real hooks on a lab cgroup, a client
// and three pods in network namespaces, the scheduler switched by rewriting the Service.

import { execFileSync } from 'node:child_process';
import type { V1Service } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProbeResult } from '../../src/lab/netns-lab.ts';
import { service, slice } from '../support/objects.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled } from '../support/time-scale.ts';

const VIP = '10.96.0.10';
const PODS = ['pod0', 'pod1', 'pod2'];

const sched = suite<{ sl: SockLab }>('schedulers');

function web(annotations: Record<string, string>): V1Service {
  const s = service({ name: 'web', clusterIPs: [VIP], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  return { ...s, metadata: { ...s.metadata, annotations } };
}

/** The web Service with these annotations over the given pods (all three by default). */
function objects(sl: SockLab, annotations: Record<string, string>, pods = [0, 1, 2]): object[] {
  const endpoints = pods.map((i) => ({ address: sl.lab.pods[i]!.ipv4 }));
  return [web(annotations), slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints })];
}

async function connects(sl: SockLab, count: number): Promise<ProbeResult> {
  // The probe stops at its duration: give it the whole count's time, as slow as an emulated guest is.
  const args = ['tcp', '--target', `${VIP}:80`, '--count', String(count), '--duration-ms', String(scaled(120_000))];
  const r = await sl.lab.runProbe(args, { timeoutMs: scaled(180_000) });
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.is(r.ok, count, 'every connect was made');
  return r;
}

const counts = (r: ProbeResult) => PODS.map((p) => r.byBackend[p] ?? 0);

sched.before(async (ctx) => {
  ctx.sl = await SockLab.create('sched', 3);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
  await ctx.sl.startAgent(objects(ctx.sl, {}));
});

sched.after(async (ctx) => {
  await ctx.sl?.close();
});

sched('rr: one client connecting in turn reaches each backend once per round, whichever round it starts in', async ({ sl }) => {
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'rr' }));
  // Global round robin (the service's connect count is the position): consecutive connects from one
  // client go to consecutive slots, so 30 give exactly 10 each; random would do so once in 190 runs.
  const first = await connects(sl, 30);
  assert.equal(counts(first), [10, 10, 10]);
  const odd = await connects(sl, 31);
  assert.equal(
    counts(odd)
      .sort((a, b) => a - b)
      .join(),
    '10,10,11',
  );
});

sched('wrr: weights 3:1:0 send 4,000 connects 3,000 / 1,000 / none', async ({ sl }) => {
  const [a, b, c] = sl.lab.pods.map((p) => p.ipv4);
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'wrr', 'socklb.io/weights': `${a}=3,${b}=1,${c}=0` }));
  const r = await connects(sl, 4000);
  const [n0, n1, n2] = counts(r);
  // Sequential connects walk the weighted sequence exactly; the bound leaves room only for the
  // turns two CPUs may share, far below what a random or unweighted pick gives (2,000 / 1,333).
  assert.ok(Math.abs(n0! - 3000) <= 20 && Math.abs(n1! - 1000) <= 20, `${n0} / ${n1}`);
  assert.is(n2, 0, 'weight 0 gets no new connection');
});

sched('sh: a client keeps reaching one backend', async ({ sl }) => {
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'sh' }));
  const r = await connects(sl, 60);
  assert.is(Object.keys(r.byBackend).length, 1, JSON.stringify(r.byBackend));
  const again = await connects(sl, 20);
  assert.equal(Object.keys(again.byBackend), Object.keys(r.byBackend));
});

sched('sh and maglev on the socket path hash a client bound to its own source address by that address', async ({ sl }) => {
  // Eight clients in the one client namespace, each bound to an address of its own.
  const sources = Array.from({ length: 8 }, (_, i) => `10.244.0.${201 + i}`);
  for (const a of sources) execFileSync('ip', ['-n', sl.lab.nodeNs, 'addr', 'add', `${a}/32`, 'dev', 'br0']);
  try {
    for (const scheduler of ['maglev', 'sh']) {
      await sl.apply(objects(sl, { 'socklb.io/scheduler': scheduler }));
      const chosen = new Set<string>();
      for (const source of sources) {
        const args = ['tcp', '--target', `${VIP}:80`, '--count', '10', '--bind', source];
        const r = await sl.lab.runProbe(args, { timeoutMs: scaled(60_000) });
        assert.is(r.failed, 0, JSON.stringify(r.errors));
        const backends = Object.keys(r.byBackend);
        assert.is(backends.length, 1, `${scheduler}, ${source}: ${JSON.stringify(r.byBackend)}`);
        chosen.add(backends[0]!);
      }
      // By namespace alone all eight would share one backend.
      assert.ok(chosen.size > 1, `${scheduler}: every bound client reached ${[...chosen].join()}`);
    }
  } finally {
    for (const a of sources) execFileSync('ip', ['-n', sl.lab.nodeNs, 'addr', 'del', `${a}/32`, 'dev', 'br0']);
  }
});

sched('maglev: a client keeps its backend, also when an unrelated backend goes away', async ({ sl }) => {
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'maglev', 'socklb.io/maglev-table-size': '251' }));
  const r = await connects(sl, 40);
  const chosen = Object.keys(r.byBackend);
  assert.is(chosen.length, 1, JSON.stringify(r.byBackend));
  const kept = PODS.indexOf(chosen[0]!);
  const unrelated = [0, 1, 2].find((i) => i !== kept)!;
  await sl.apply(
    objects(
      sl,
      { 'socklb.io/scheduler': 'maglev', 'socklb.io/maglev-table-size': '251' },
      [0, 1, 2].filter((i) => i !== unrelated),
    ),
  );
  const after = await connects(sl, 40);
  assert.equal(after.byBackend, { [chosen[0]!]: 40 });
});

sched('changing the scheduler under a connect loop fails no connect', async ({ sl }) => {
  const [a, b] = sl.lab.pods.map((p) => p.ipv4);
  await sl.apply(objects(sl, {}));
  const loop = sl.lab.spawnProbe(
    [
      'tcp',
      '--target',
      `${VIP}:80`,
      '--count',
      '1000000',
      '--duration-ms',
      String(scaled(30_000)),
      '--timeout-ms',
      String(Math.min(scaled(10_000), 60_000)),
    ],
    { timeoutMs: scaled(60_000) },
  );
  await loop.started;
  const steps: Record<string, string>[] = [
    { 'socklb.io/scheduler': 'rr' },
    { 'socklb.io/scheduler': 'wrr', 'socklb.io/weights': `${a}=5,${b}=2` },
    { 'socklb.io/scheduler': 'maglev' },
    { 'socklb.io/scheduler': 'maglev', 'socklb.io/maglev-table-size': '65537' },
    { 'socklb.io/scheduler': 'sh' },
    { 'socklb.io/scheduler': 'wrr' },
    {},
  ];
  for (const annotations of steps) {
    await sl.apply(objects(sl, annotations));
    await new Promise((r) => setTimeout(r, 150));
  }
  const r = await loop.stop();
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.ok(r.ok > steps.length, `${r.ok} connects`);
});

sched('a bad annotation keeps the last good scheduler and names the Service and annotation', async ({ sl }) => {
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'sh' }));
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'least-busy' }));
  const problems = sl.agent.status().objectProblems;
  assert.ok(
    problems.some((p) => p.name === 'web' && p.field === 'metadata.annotations["socklb.io/scheduler"]'),
    JSON.stringify(problems),
  );
  const r = await connects(sl, 30);
  assert.is(Object.keys(r.byBackend).length, 1, `still sh: ${JSON.stringify(r.byBackend)}`);
});

sched.run();
