// `node bench/schedulers.ts [--rounds N] [--connects N] [--services N]`: what each scheduler of
// socklb.io/scheduler costs and how Maglev balances.
//
// - The connect hook's own time per connect (the kernel's run-time stats of cgroup/connect4, so the
//   connect syscall's noise stays out) for each scheduler, as a ratio to `random` measured in the
//   same rounds, with 1 service and with --services services programmed: a client namespace dials
//   a ClusterIP with 3 pods behind it in a lab the run makes and removes. The least-connection
//   schedulers (lc, wlc, sed, nq) also pay at close, in cgroup/sock_release: shown per release.
// - Maglev table build time for N = 10, 100, 1,000 backends at the default and largest sizes.
// - Maglev balance (most over fewest positions held) and disruption (positions that move to another
//   surviving backend when one backend goes, in % of M) for N = 10 and 100.

import { performance } from 'node:perf_hooks';
import { RELEASE_ATTACH_TYPE } from '../src/agent/datapath.ts';
import { cgroupPrograms, enableRunTimeStats } from '../src/bpf/binding.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE, maglevTable } from '../src/model/maglev.ts';
import type { SchedulerName } from '../src/model/scheduler.ts';
import { service, slice } from '../test/support/objects.ts';
import { SockLab } from '../test/support/sock-lab.ts';
import { perRun, runTotals } from './hook-cost.ts';

const VIP = '10.96.0.10';
const SCHEDULERS: SchedulerName[] = ['random', 'rr', 'wrr', 'sh', 'maglev', 'lc', 'wlc', 'sed', 'nq'];

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `TCP/10.244.${i >> 8}.${i & 255}:8080`);

function maglevFigures(): void {
  // A first build outside the timing, so the JIT's warm-up is not charged to N = 10.
  maglevTable(names(1000), new Array(1000).fill(1), 65537);
  console.log('\nMaglev table build (median of 5, ms)');
  console.log('| N | M = 16,381 | M = 65,537 |\n| ---: | ---: | ---: |');
  for (const n of [10, 100, 1000]) {
    const time = (m: number) =>
      median(
        Array.from({ length: 5 }, () => {
          const t = performance.now();
          maglevTable(names(n), new Array(n).fill(1), m);
          return performance.now() - t;
        }),
      );
    console.log(`| ${n} | ${time(DEFAULT_MAGLEV_TABLE_SIZE).toFixed(2)} | ${time(65537).toFixed(2)} |`);
  }
  console.log('\nMaglev balance and disruption (one backend removed)');
  console.log('| N | M | max/min positions | moved beyond the removed backend |\n| ---: | ---: | ---: | ---: |');
  for (const n of [10, 100]) {
    for (const m of [DEFAULT_MAGLEV_TABLE_SIZE, 65537]) {
      const before = maglevTable(names(n), new Array(n).fill(1), m);
      const count = new Array<number>(n).fill(0);
      for (const i of before) count[i]!++;
      const removed = Math.floor(n / 2);
      const after = maglevTable(
        names(n).filter((_, i) => i !== removed),
        new Array(n - 1).fill(1),
        m,
      );
      let moved = 0;
      for (let p = 0; p < m; p++) {
        if (before[p] === removed) continue;
        const now = after[p]! >= removed ? after[p]! + 1 : after[p]!;
        if (now !== before[p]) moved++;
      }
      console.log(`| ${n} | ${m} | ${(Math.max(...count) / Math.min(...count)).toFixed(3)} | ${((100 * moved) / m).toFixed(2)}% |`);
    }
  }
}

function objects(sl: SockLab, scheduler: SchedulerName, others: number): object[] {
  const [a, b] = sl.lab.pods.map((p) => p.ipv4);
  const annotations: Record<string, string> = { 'socklb.io/scheduler': scheduler };
  if (['wrr', 'wlc', 'sed', 'nq'].includes(scheduler)) annotations['socklb.io/weights'] = `${a}=3,${b}=2`;
  const web = service({ name: 'web', clusterIPs: [VIP], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const endpoints = sl.lab.pods.map((p) => ({ address: p.ipv4 }));
  const docs: object[] = [
    { ...web, metadata: { ...web.metadata, annotations } },
    slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints }),
  ];
  for (let i = 0; i < others; i++) {
    const ip = `10.97.${i >> 8}.${i & 255}`;
    docs.push(service({ name: `s${i}`, clusterIPs: [ip], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }));
    docs.push(slice({ service: `s${i}`, ports: [{ name: 'http', port: 8080 }], endpoints }));
  }
  return docs;
}

async function connectCost(services: number, rounds: number, connects: number): Promise<void> {
  const others = services - 1;
  const sl = await SockLab.create('bsched', 3);
  const stats = enableRunTimeStats();
  try {
    for (const pod of sl.lab.pods) await sl.lab.startServer(pod.index, { tcp: [8080] });
    const capacity = {
      services: 2 * services + 64,
      slots: 8 * services + 256,
      backends: 256,
      serviceIds: 4 * services + 129,
      backendIds: 513,
    };
    // Not the first scheduler measured: each apply must change the manifest, or no sync follows.
    await sl.startAgent(objects(sl, 'sh', others), capacity);
    const [progId] = cgroupPrograms(sl.lab.cgroupPath, 'cgroup_inet4_connect');
    if (progId === undefined) throw new Error('no connect4 program on the lab cgroup');
    const [releaseId] = cgroupPrograms(sl.lab.cgroupPath, RELEASE_ATTACH_TYPE);
    const ns: Record<string, number[]> = Object.fromEntries(SCHEDULERS.map((s) => [s, []]));
    const releaseNs: Record<string, number[]> = Object.fromEntries(SCHEDULERS.map((s) => [s, []]));
    for (let round = 0; round < rounds; round++) {
      for (const scheduler of SCHEDULERS) {
        await sl.apply(objects(sl, scheduler, others), 120_000);
        const before = runTotals([progId]);
        const releaseBefore = releaseId === undefined ? undefined : runTotals([releaseId]);
        const r = await sl.lab.runProbe(['connect-only', '--target', `${VIP}:80`, '--count', String(connects)], { timeoutMs: 300_000 });
        if (r.failed > 0) throw new Error(`${scheduler}: ${r.failed} connects failed: ${JSON.stringify(r.errors)}`);
        ns[scheduler]!.push(perRun(before, runTotals([progId])));
        if (releaseId !== undefined && releaseBefore) {
          const releaseAfter = runTotals([releaseId]);
          if (releaseAfter.runs > releaseBefore.runs) releaseNs[scheduler]!.push(perRun(releaseBefore, releaseAfter));
        }
      }
    }
    const base = median(ns.random!);
    console.log(`\nconnect4 hook, ns per connect (median of ${rounds} rounds of ${connects}), ${services} service(s)`);
    console.log('| scheduler | ns | vs random | sock_release ns per release |\n| --- | ---: | ---: | ---: |');
    for (const s of SCHEDULERS) {
      const release = releaseNs[s]!.length ? median(releaseNs[s]!).toFixed(0) : '-';
      console.log(`| ${s} | ${median(ns[s]!).toFixed(0)} | ${(median(ns[s]!) / base).toFixed(2)}x | ${release} |`);
    }
  } finally {
    stats.close();
    await sl.close();
  }
}

maglevFigures();
const rounds = flag('rounds', 3);
const connects = flag('connects', 2000);
// --connects 0: the Maglev figures alone (no lab, no root needed).
if (connects > 0) for (const services of [1, flag('services', 10000)]) await connectCost(services, rounds, connects);
