// Network programming latency: the time from an EndpointSlice change at the API server to the new
// backend being in the BPF maps, with N services (a ClusterIP and a 3-endpoint slice each) watched
// through our fake API server on 127.0.0.1. The agent's hooks sit on a throwaway cgroup that holds
// no process, and nothing dials anything: only the control plane is measured.
//
//   node bench/k8s-latency.ts [--services 1000] [--rounds 20] [--min-sync-period 100]
//
// Each round changes one endpoint address of one slice (a pod replaced) and takes three times:
// watch (modify at the API server -> the source hands the agent a snapshot), program (snapshot ->
// the reconcile that wrote it has finished) and total. "In the maps" is confirmed by reading the
// service's slots and backends back from the kernel maps at that moment, not from the agent's
// mirror. Rounds are spaced by more than minSyncPeriod, so each measures one isolated change, as
// kube-proxy's network_programming_duration_seconds does for a quiet cluster.

import { mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Agent } from '../src/agent/agent.ts';
import { cleanup } from '../src/agent/datapath.ts';
import { cgroup2Mount } from '../src/agent/host.ts';
import { decode, encode, Layouts, MapNames } from '../src/datapath/abi.ts';
import { frontendKey } from '../src/datapath/kernel-maps.ts';
import { type BenchService, intToIpv4, MAX_OTHER_SERVICES, otherService, sliceOf, toKubernetes } from '../src/lab/services.ts';
import type { Frontend } from '../src/model/types.ts';
import { KubernetesSource } from '../src/sources/kubernetes.ts';
import { FakeApiServer, fixture, type KubeObject } from '../test/support/fake-apiserver.ts';

const NODE_NAME = 'bench-node';
/** New endpoint addresses: outside the range otherService() uses (10.64.0.0 + 3i). */
const NEW_ADDRESS_BASE = (100 << 24) >>> 0; // 100.0.0.0 (shared address space, never routed here)
const SYNC_TIMEOUT_MS = 120_000;
const ROUND_TIMEOUT_MS = 10_000;

function options(): { services: number; rounds: number; minSyncPeriodMs: number } {
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '1000' },
      rounds: { type: 'string', default: '20' },
      'min-sync-period': { type: 'string', default: '100' },
    },
    strict: true,
  });
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`--${name} must be an integer in ${min}..${max}, got ${text}`);
    return n;
  };
  return {
    services: int('services', values.services, 1, Math.min(MAX_OTHER_SERVICES, 100_000)),
    rounds: int('rounds', values.rounds, 1, 1000),
    minSyncPeriodMs: int('min-sync-period', values['min-sync-period'], 0, 60_000),
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  const f = (x: number) => x.toFixed(1).padStart(7);
  return `median ${f(percentile(s, 50))}  p90 ${f(percentile(s, 90))}  max ${f(s[s.length - 1]!)}`;
}

/** The backends a frontend has in the kernel maps, read back slot by slot. */
function kernelBackends(agent: Agent, frontend: Frontend): string[] {
  const maps = agent.datapath.maps;
  const raw = maps[MapNames.lb4Services].lookup(frontendKey(frontend));
  if (!raw) return [];
  const svc = decode(Layouts.service, raw);
  const out: string[] = [];
  for (let slot = 1; slot <= Number(svc.backend_count); slot++) {
    const s = maps[MapNames.slots].lookup(encode(Layouts.slotKey, { service_id: Number(svc.service_id), slot }));
    if (!s) continue;
    const id = Number(decode(Layouts.slot, s).backend_id);
    const b = maps[MapNames.lb4Backends].lookup(encode(Layouts.backendId, { backend_id: id }));
    if (b) {
      const v = decode(Layouts.lb4Backend, b);
      out.push(`${String(v.address)}:${Number(v.port)}`);
    }
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const o = options();
  const tag = `socklb-bench-${process.pid}`;
  const cgroup = join(cgroup2Mount(), tag);
  const bpffs = `/sys/fs/bpf/${tag}`;
  const dir = mkdtempSync(join(tmpdir(), `${tag}-`));
  const api = new FakeApiServer();
  let agent: Agent | undefined;
  let source: KubernetesSource | undefined;
  let cgroupMade = false;
  try {
    mkdirSync(cgroup);
    cgroupMade = true;
    await api.start();
    const node = fixture('node');
    node.metadata!.name = NODE_NAME;
    api.add(node);
    const cluster: BenchService[] = [];
    for (let i = 0; i < o.services; i++) cluster.push(otherService(i));
    const objects = toKubernetes(cluster);
    for (const s of objects.services) api.add(s as KubeObject);
    for (const s of objects.slices) api.add(s as KubeObject);

    const n = o.services;
    agent = await Agent.create({
      bpffs,
      cgroup,
      capacity: { services: 2 * n + 64, slots: 8 * n + 64, backends: 8 * n + 64, serviceIds: 4 * n + 129, backendIds: 16 * n + 129 },
      reverseEntries: 1024,
      affinityEntries: 1024,
      node: { name: NODE_NAME },
      log: pino({ level: process.env.SOCKLB_BENCH_LOG ?? 'warn' }),
      minSyncPeriodMs: o.minSyncPeriodMs,
    });
    const a = agent;
    let handedAt = 0;
    const t0 = performance.now();
    source = new KubernetesSource({
      nodeName: NODE_NAME,
      kubeconfigPath: api.writeKubeconfig(dir),
      backoff: { initialMs: 100, maxMs: 1000 },
      onChange: (snapshot) => {
        handedAt = performance.now();
        a.update(snapshot);
      },
      onError: (err) => process.stderr.write(`source: ${err.message}\n`),
    });
    let listTimer: NodeJS.Timeout | undefined;
    await Promise.race([source.start(), new Promise((r) => (listTimer = setTimeout(r, SYNC_TIMEOUT_MS)))]);
    clearTimeout(listTimer);
    if (!source.synced) throw new Error(`the source did not list within ${SYNC_TIMEOUT_MS} ms`);
    await agent.whenSynced();
    const frontends = agent.status().frontends;
    if (frontends !== n) throw new Error(`expected ${n} frontends in the maps, found ${frontends}`);
    console.log(`${n} services (${3 * n} endpoints) listed and programmed in ${(performance.now() - t0).toFixed(0)} ms`);

    // Each sync: where the round's frontend stands in the kernel maps right after the writes.
    let waiting: { frontend: Frontend; want: string; resolve: (at: number) => void } | undefined;
    agent.onSync(() => {
      if (!waiting) return;
      const at = performance.now();
      if (kernelBackends(a, waiting.frontend).includes(waiting.want)) {
        const w = waiting;
        waiting = undefined;
        w.resolve(at);
      }
    });

    const watch: number[] = [];
    const program: number[] = [];
    const total: number[] = [];
    for (let round = 0; round < o.rounds; round++) {
      // Spread over the services, so no round hits a slice the previous one just changed.
      const i = Math.floor((round * n) / o.rounds + n / (2 * o.rounds)) % n;
      const s = cluster[i]!;
      const newIp = intToIpv4(NEW_ADDRESS_BASE + round);
      const changed: BenchService = { ...s, endpoints: [...s.endpoints.slice(0, -1), { ip: newIp, port: s.endpoints[0]!.port }] };
      cluster[i] = changed;
      const frontend: Frontend = { family: 4, address: s.clusterIP, port: s.port, protocol: 'TCP' };
      const want = `${newIp}:${s.endpoints[0]!.port}`;
      await sleep(o.minSyncPeriodMs + 200);
      const programmed = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`round ${round}: ${want} not in the maps within ${ROUND_TIMEOUT_MS} ms`)),
          ROUND_TIMEOUT_MS,
        );
        waiting = {
          frontend,
          want,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        };
      });
      handedAt = 0;
      const start = performance.now();
      api.modify(sliceOf(changed) as KubeObject);
      const done = await programmed;
      total.push(done - start);
      if (handedAt > 0) {
        watch.push(handedAt - start);
        program.push(done - handedAt);
      }
    }

    const status = agent.status();
    console.log(`minSyncPeriod ${o.minSyncPeriodMs} ms, ${o.rounds} rounds, one EndpointSlice endpoint changed per round (ms):`);
    console.log(`  watch   (API server change -> snapshot to the agent) ${summary(watch)}`);
    console.log(`  program (snapshot -> maps written, read back)        ${summary(program)}`);
    console.log(`  total   (API server change -> new backend in maps)   ${summary(total)}`);
    console.log(
      `  syncs ${status.syncs}, object problems ${status.objectProblems.length}, program problems ${status.programProblems.length}`,
    );
  } finally {
    await source?.stop();
    await agent?.close();
    try {
      cleanup(bpffs);
    } catch (err) {
      process.stderr.write(`cleanup ${bpffs}: ${(err as Error).message}\n`);
    }
    await api.stop();
    // The links are gone with the pins; the cgroup holds no process, so it can go at once.
    if (cgroupMade) rmdirSync(cgroup);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`k8s-latency: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
