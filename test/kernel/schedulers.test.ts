// The schedulers of socklb.io/scheduler on the socket path: real hooks on a lab cgroup, a client
// and three pods in network namespaces, the scheduler switched by rewriting the Service.

import { execFileSync } from 'node:child_process';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { V1Service } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RELEASE_ATTACH_TYPE } from '../../src/agent/datapath.ts';
import { probeFeatures } from '../../src/agent/features.ts';
import { BpfMap, cgroupPrograms } from '../../src/bpf/binding.ts';
import { MapNames } from '../../src/datapath/abi.ts';
import { hashAdd } from '../../src/datapath/frontend-filter.ts';
import type { ProbeHandle, ProbeResult } from '../../src/lab/netns-lab.ts';
import { maglevTable } from '../../src/model/maglev.ts';
import { tableName } from '../../src/reconcile/plan.ts';
import { service, slice } from '../support/objects.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled } from '../support/time-scale.ts';

const VIP = '10.96.0.10';
const VIP6 = 'fd00:10:96::10';
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

/** The IPv6 web Service with these annotations over the given pods. */
function objects6(sl: SockLab, annotations: Record<string, string>, pods: number[]): object[] {
  const s = service({ name: 'web', clusterIPs: [VIP6], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const endpoints = pods.map((i) => ({ address: sl.lab.pods[i]!.ipv6! }));
  return [{ ...s, metadata: { ...s.metadata, annotations } }, slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints })];
}

async function connects(sl: SockLab, count: number, target = `${VIP}:80`): Promise<ProbeResult> {
  // The probe stops at its duration: give it the whole count's time, as slow as an emulated guest is.
  const args = ['tcp', '--target', target, '--count', String(count), '--duration-ms', String(scaled(120_000))];
  const r = await sl.lab.runProbe(args, { timeoutMs: scaled(180_000) });
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.is(r.ok, count, 'every connect was made');
  return r;
}

const counts = (r: ProbeResult) => PODS.map((p) => r.byBackend[p] ?? 0);

/** The open connections the kernel counts on each pod's backend (lb_be_conns_v1, by backend id). */
function openConns(sl: SockLab, family: 4 | 6 = 4): number[] {
  const map = BpfMap.fromPin(join(sl.bpffs, 'maps', MapNames.backendConns));
  try {
    return sl.lab.pods.map((pod) => {
      const address = family === 4 ? pod.ipv4 : pod.ipv6;
      const id = [...sl.agent.reconciler.state.backends].find(([, b]) => b.address === address)?.[0];
      const raw = id === undefined ? undefined : map.lookup(Buffer.from(new Uint32Array([id]).buffer));
      return raw ? Number(new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + 8))[0]) : 0;
    });
  } finally {
    map.close();
  }
}

/** Waits (bounded) until the counts are `want`; the release hook runs as the client's sockets go. */
async function waitOpenConns(sl: SockLab, want: (counts: number[]) => boolean, what: string, family: 4 | 6 = 4): Promise<number[]> {
  const deadline = Date.now() + scaled(20_000);
  let seen = openConns(sl, family);
  while (!want(seen)) {
    if (Date.now() > deadline) throw new Error(`open connections never became ${what}: ${seen.join(' / ')}`);
    await new Promise((r) => setTimeout(r, 50));
    seen = openConns(sl, family);
  }
  return seen;
}

/** A client that connects `count` times and keeps every connection open until stopped or killed. */
function hold(sl: SockLab, count: number, target = `${VIP}:80`): ProbeHandle {
  return sl.lab.spawnProbe(['tcp', '--target', target, '--count', String(count), '--hold'], { timeoutMs: scaled(180_000) });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

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

/** Eight clients in the one client namespace, each bound to an address of its own. */
const SOURCES = Array.from({ length: 8 }, (_, i) => `10.244.0.${201 + i}`);

async function withSources(sl: SockLab, body: () => Promise<void>): Promise<void> {
  for (const a of SOURCES) execFileSync('ip', ['-n', sl.lab.nodeNs, 'addr', 'add', `${a}/32`, 'dev', 'br0']);
  try {
    await body();
  } finally {
    for (const a of SOURCES) execFileSync('ip', ['-n', sl.lab.nodeNs, 'addr', 'del', `${a}/32`, 'dev', 'br0']);
  }
}

/** The one pod a client bound to `source` reached over `count` connects. */
async function boundConnects(sl: SockLab, source: string, count: number, what: string): Promise<string> {
  const args = ['tcp', '--target', `${VIP}:80`, '--count', String(count), '--bind', source];
  const r = await sl.lab.runProbe(args, { timeoutMs: scaled(60_000) });
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  const pods = Object.keys(r.byBackend);
  assert.is(pods.length, 1, `${what}, ${source}: ${JSON.stringify(r.byBackend)}`);
  return pods[0]!;
}

/**
 * The pod a maglev table of `size` built from the programmed service puts a client bound to `source`
 * at: the hook hashes the bound address as the CPU loads it (sock_client_hash) into a table position.
 */
function maglevPod(sl: SockLab, source: string, size: number): string {
  const { state } = sl.agent.reconciler;
  const svc = [...state.services.values()].find((s) => s.frontend.address === VIP && s.frontend.scope === undefined)!;
  const backends = Array.from({ length: svc.backendCount }, (_, i) => state.backends.get(svc.slots.get(i + 1)!)!);
  const table = maglevTable(
    backends.map(tableName),
    backends.map(() => 1),
    size,
  );
  const bytes = Buffer.from(source.split('.').map(Number));
  const hash = hashAdd(0, endianness() === 'LE' ? bytes.readUInt32LE(0) : bytes.readUInt32BE(0));
  const address = backends[table[hash % size]!]!.address;
  return PODS[sl.lab.pods.findIndex((p) => p.ipv4 === address)]!;
}

sched('sh and maglev on the socket path hash a client bound to its own source address by that address', async ({ sl }) => {
  await withSources(sl, async () => {
    for (const scheduler of ['maglev', 'sh']) {
      await sl.apply(objects(sl, { 'socklb.io/scheduler': scheduler }));
      const chosen = new Set<string>();
      for (const source of SOURCES) chosen.add(await boundConnects(sl, source, 10, scheduler));
      // By namespace alone all eight would share one backend.
      assert.ok(chosen.size > 1, `${scheduler}: every bound client reached ${[...chosen].join()}`);
    }
  });
});

sched('maglev: each client reaches the pod its table position names and keeps it when an unrelated backend goes away', async ({ sl }) => {
  const annotations = { 'socklb.io/scheduler': 'maglev', 'socklb.io/maglev-table-size': '251' };
  await withSources(sl, async () => {
    await sl.apply(objects(sl, annotations));
    const before = new Map<string, string>();
    for (const source of SOURCES) {
      before.set(source, await boundConnects(sl, source, 5, 'maglev'));
      assert.is(before.get(source), maglevPod(sl, source, 251), `${source}: the pod its position names`);
    }
    await sl.apply(objects(sl, annotations, [1, 2]));
    let kept = 0;
    for (const source of SOURCES) {
      const now = await boundConnects(sl, source, 5, 'maglev without pod0');
      assert.is(now, maglevPod(sl, source, 251), `${source}: the pod its position names without pod0`);
      if (before.get(source) !== 'pod0') {
        // Maglev moves ~1% of the positions of backends that stay; these eight do not sit on one.
        assert.is(now, before.get(source), `${source} left ${before.get(source)} though only pod0 went`);
        kept++;
      }
    }
    assert.ok(kept > 0, 'some client was on a pod that stayed');
  });
});

sched(
  'lc: with 20 connections held open on one backend the next 10 all go elsewhere; closing them takes the count down',
  async ({ sl }) => {
    assert.ok(sl.agent.status().connsCounted, 'this kernel counts open connections');
    await sl.apply(objects(sl, { 'socklb.io/scheduler': 'lc' }, [0]));
    const holder = hold(sl, 20);
    try {
      await waitOpenConns(sl, (c) => c[0] === 20, '20 on pod0');
      await sl.apply(objects(sl, { 'socklb.io/scheduler': 'lc' }));
      // Closed after each reply: each of the 10 leaves pod1 and pod2 at 0 or 1, far below 20.
      const next = await connects(sl, 10);
      assert.is(counts(next)[0], 0, `pod0 still holds 20: ${JSON.stringify(next.byBackend)}`);
      await waitOpenConns(sl, (c) => c.join() === '20,0,0', '20 / 0 / 0 once the 10 closed');
    } finally {
      const held = await holder.stop();
      assert.equal(held.byBackend, { pod0: 20 });
    }
    await waitOpenConns(sl, (c) => c.join() === '0,0,0', '0 / 0 / 0 after the holder exited');
    // Nothing is held now: pod0 takes new connections again (all 30 missing it: (2/3)^30, 5e-6).
    const after = await connects(sl, 30);
    assert.ok(counts(after)[0]! > 0, JSON.stringify(after.byBackend));
  },
);

sched('lc over IPv6: 10 held on one backend send the next 10 elsewhere; the count falls as they close', async ({ sl }) => {
  const target = `[${VIP6}]:80`;
  await sl.apply(objects6(sl, { 'socklb.io/scheduler': 'lc' }, [0]));
  const holder = hold(sl, 10, target);
  try {
    await waitOpenConns(sl, (c) => c[0] === 10, '10 on pod0', 6);
    await sl.apply(objects6(sl, { 'socklb.io/scheduler': 'lc' }, [0, 1, 2]));
    const next = await connects(sl, 10, target);
    assert.is(counts(next)[0], 0, `pod0 still holds 10: ${JSON.stringify(next.byBackend)}`);
  } finally {
    await holder.stop();
  }
  await waitOpenConns(sl, (c) => c.join() === '0,0,0', '0 / 0 / 0 after the holder exited', 6);
  await sl.apply(objects(sl, {}));
});

sched('lc: kill -9 of the client takes its open connections off the count', async ({ sl }) => {
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'lc' }, [1, 2]));
  const holder = hold(sl, 30);
  await waitOpenConns(sl, (c) => sum(c) === 30, '30 in all');
  holder.kill();
  await waitOpenConns(sl, (c) => c.join() === '0,0,0', '0 / 0 / 0 after kill -9');
});

sched('wlc: weights 3:1:0 share 40 held connections 30 / 10 / none', async ({ sl }) => {
  const [a, b, c] = sl.lab.pods.map((p) => p.ipv4);
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'wlc', 'socklb.io/weights': `${a}=3,${b}=1,${c}=0` }));
  const holder = hold(sl, 40);
  try {
    const held = await waitOpenConns(sl, (n) => sum(n) === 40, '40 in all');
    // Connections per weight evened out: lc or random would give pod1 about 13-20.
    assert.ok(held[0]! >= 27 && held[1]! <= 13, held.join(' / '));
    assert.is(held[2], 0, 'weight 0 gets no new connection');
  } finally {
    await holder.stop();
  }
  await waitOpenConns(sl, (n) => sum(n) === 0, 'none');
});

sched('sed: an idle light backend still loses to a busy heavy one while (conns + 1) / weight says so', async ({ sl }) => {
  const [a, b] = sl.lab.pods.map((p) => p.ipv4);
  // pod0 weighs 10, pod1 1: with pod0 holding 4, sed costs pod0 (4+1)/10 and pod1 (0+1)/1, so
  // pod0 still wins; wlc's 4/10 against 0/1 would send the next connect to pod1.
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'sed', 'socklb.io/weights': `${a}=10,${b}=1` }, [0, 1]));
  const holder = hold(sl, 4);
  try {
    const held = await waitOpenConns(sl, (n) => sum(n) === 4, '4 in all');
    assert.equal(held, [4, 0, 0]);
    const next = await connects(sl, 10);
    assert.equal(next.byBackend, { pod0: 10 });
  } finally {
    await holder.stop();
  }
  await waitOpenConns(sl, (n) => sum(n) === 0, 'none');
});

sched('nq: an idle backend takes the next connection whatever its weight', async ({ sl }) => {
  const [a, b] = sl.lab.pods.map((p) => p.ipv4);
  // Same weights as the sed test: there pod0 took all 4; never queue gives idle pod1 one of them.
  await sl.apply(objects(sl, { 'socklb.io/scheduler': 'nq', 'socklb.io/weights': `${a}=10,${b}=1` }, [0, 1]));
  const holder = hold(sl, 4);
  try {
    const held = await waitOpenConns(sl, (n) => sum(n) === 4, '4 in all');
    assert.ok(held[1]! >= 1, `idle pod1 got none: ${held.join(' / ')}`);
  } finally {
    await holder.stop();
  }
  await waitOpenConns(sl, (n) => sum(n) === 0, 'none');
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
    { 'socklb.io/scheduler': 'lc' },
    { 'socklb.io/scheduler': 'wlc', 'socklb.io/weights': `${a}=5,${b}=2` },
    { 'socklb.io/scheduler': 'nq' },
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

const uncounted = suite<{ sl: SockLab }>('least connections on a kernel without cgroup/sock_release');

uncounted.before(async (ctx) => {
  ctx.sl = await SockLab.create('nolc', 3);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
  // This kernel has the hook; the probe's answer is what an older or stripped-down one would give.
  const features = { ...probeFeatures(), sock_release: { available: false, reason: 'BPF_CGROUP_INET_SOCK_RELEASE is not in BTF' } };
  await ctx.sl.startAgent(objects(ctx.sl, { 'socklb.io/scheduler': 'lc' }), undefined, features);
});

uncounted.after(async (ctx) => {
  await ctx.sl?.close();
});

uncounted('lc loads, attaches no release hook, counts nothing and picks at random; the status says so', async ({ sl }) => {
  assert.is(sl.agent.status().connsCounted, false);
  assert.match(sl.agent.datapath.connsUnavailable ?? '', /lc, wlc, sed and nq pick at random/);
  assert.is(cgroupPrograms(sl.lab.cgroupPath, RELEASE_ATTACH_TYPE).length, 0);
  const holder = hold(sl, 20);
  try {
    // The 20 are made (the connect counters say so) and held while the others connect.
    const connected = () =>
      [...sl.agent.reconciler.state.backends.keys()].reduce((n, id) => n + sl.agent.reconciler.maps.backendConnects(id), 0n);
    const deadline = Date.now() + scaled(20_000);
    while (connected() < 20n) {
      if (Date.now() > deadline) throw new Error(`the holder made ${connected()} of 20 connections`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await connects(sl, 60);
    // Random over three: each well represented (none below 5 of 60 but once in 10^4 runs).
    assert.ok(
      counts(r).every((n) => n >= 5),
      JSON.stringify(r.byBackend),
    );
    assert.equal(openConns(sl), [0, 0, 0], 'nothing counted without the hook that would uncount it');
  } finally {
    await holder.stop();
  }
});

uncounted.run();
