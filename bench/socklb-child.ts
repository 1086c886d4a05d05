// Programs socklb for one benchmark point in a process of its own, so its RSS is the agent's at
// that N: loads and attaches the datapath (pinned under --bpffs, attached to --cgroup), programs
// the cluster as the agent does (DesiredState + Reconciler over KernelMaps), applies endpoint
// changes one at a time as EndpointSlice events, and prints ONE JSON line. The pins stay: the parent measures connects, then removes them.
//   node bench/socklb-child.ts '{"bpffs":"/sys/fs/bpf/x","cgroup":"/sys/fs/cgroup/...","others":1000,"dialled":[...]}'

import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Datapath, DEFAULT_REVERSE_ENTRIES } from '../src/agent/datapath.ts';
import { KernelMaps } from '../src/datapath/kernel-maps.ts';
import type { Capacity } from '../src/datapath/maps.ts';
import { startDebugServer } from '../src/debug/server.ts';
import { agentSource } from '../src/debug/source.ts';
import { type BenchService, clusterOf, sliceOf, TARGET_PORT, toKubernetes, withOneEndpointChanged } from '../src/lab/services.ts';
import { SocklbMetrics } from '../src/metrics/metrics.ts';
import { DesiredState } from '../src/model/desired-state.ts';
import { runSteps } from '../src/model/steps.ts';
import type { DesiredTable } from '../src/model/types.ts';
import { Reconciler } from '../src/reconcile/reconciler.ts';
import type { ScrapePoint } from './types.ts';

export interface SocklbChildInput {
  bpffs: string;
  cgroup: string;
  others: number;
  dialled: BenchService[];
  /** Also time one endpoint change (needs at least one other service to change). */
  change: boolean;
}

export interface SocklbChildResult {
  frontends: number;
  capacity: Capacity;
  program: { desiredMs: number; reconcileMs: number; writes: number };
  /**
   * CHANGES endpoint changes, one after another, each an EndpointSlice event through to the map
   * write: the first change's split (model, reconcile) and writes, and every change's total ms.
   */
  change: { desiredMs: number; reconcileMs: number; writes: number; totalMs: number[] } | null;
  /** GET /metrics over the programmed maps, and with --metrics-per-backend (see ScrapePoint). */
  scrape: Omit<ScrapePoint, 'n' | 'frontends'>;
  /** Bytes the kernel charges for each map (memlock in /proc/PID/fdinfo, as bpftool shows it). */
  memlock: Record<string, number>;
  memlockTotal: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapUsedBytes: number;
}

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Maps sized for the point, as an operator would size them: the services fit with room to spare. */
export function capacityFor(services: number, backends: number): Capacity {
  const s = Math.max(1024, pow2AtLeast(services + 16));
  const b = Math.max(4096, pow2AtLeast(backends + 64));
  return { services: s, slots: b, backends: b, serviceIds: s, backendIds: b };
}

const ms = (from: bigint): number => Number(process.hrtime.bigint() - from) / 1e6;

const SCRAPES = 5;
/** Endpoint changes timed one after another (each moves a service's last endpoint to a new address). */
const CHANGES = 100;

function changedIp(i: number): string {
  return `10.126.${(i >> 8) & 255}.${i & 255}`;
}
const HERE = dirname(fileURLToPath(import.meta.url));
const execFileAsync = promisify(execFile);

/**
 * Times GET /metrics on the debug endpoint, listening on 127.0.0.1 as the agent does, from a client
 * in another process (bench/scrape-client.ts: request to last byte, median of SCRAPES after one
 * untimed), and the CPU this process spent serving them, per scrape.
 */
async function timeScrape(datapath: Datapath, reconciler: Reconciler, table: DesiredTable, perBackend: boolean) {
  const source = agentSource({
    datapath,
    reconciler,
    table,
    status: () => ({
      inSync: true,
      adopted: false,
      lastSync: new Date(),
      syncs: 1,
      frontends: reconciler.state.services.size,
      objectProblems: [],
      programProblems: [],
      destroyMethod: datapath.destroyer.method,
      refuseErrno: datapath.refuseErrno,
      connsCounted: datapath.connsUnavailable === undefined,
      committed: datapath.committed,
      migration: datapath.migration,
      syncErrors: [],
      pendingDestroy: 0,
      xdp: [],
      dsrFallbacks: 0,
    }),
  });
  const { server, url } = await startDebugServer(source, { address: '127.0.0.1:0', metrics: new SocklbMetrics(source, { perBackend }) });
  try {
    const cpu = process.cpuUsage();
    const { stdout } = await execFileAsync(process.execPath, [join(HERE, 'scrape-client.ts'), `${url}/metrics`, String(SCRAPES)], {
      timeout: 120_000,
    });
    const used = process.cpuUsage(cpu);
    const client = JSON.parse(stdout) as { ms: number[]; bytes: number };
    const median = [...client.ms].sort((a, b) => a - b)[Math.floor(SCRAPES / 2)]!;
    return { ms: median, cpuMs: (used.user + used.system) / 1000 / (SCRAPES + 1), bytes: client.bytes };
  } finally {
    await server.close();
  }
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '') as SocklbChildInput;
  const rssBeforeBytes = process.memoryUsage().rss;
  const cluster = clusterOf(input.others, input.dialled);
  const backends = cluster.reduce((n, s) => n + s.endpoints.length, 0);
  const capacity = capacityFor(cluster.length, backends + 1);
  const datapath = await Datapath.open({ bpffs: input.bpffs, cgroup: input.cgroup, capacity, reverseEntries: DEFAULT_REVERSE_ENTRIES });
  try {
    const reconciler = new Reconciler(new KernelMaps(datapath.maps, capacity, datapath.frontendFilter, datapath.countersStartZero));
    const objects = toKubernetes(cluster);
    const node = { name: 'bench-node' };

    let t = process.hrtime.bigint();
    const state = new DesiredState(node);
    state.replaceAll(objects.services, objects.slices);
    runSteps(state.flush());
    const desiredMs = ms(t);
    t = process.hrtime.bigint();
    const programmed = reconciler.reconcile(state.frontends());
    const reconcileMs = ms(t);
    // The hooks go live once the maps hold the table, as the agent does it.
    datapath.commit();
    const table = state.table();
    const problems = [...table.problems.map((p) => JSON.stringify(p)), ...programmed.problems.map((p) => p.message)];
    if (problems.length > 0) throw new Error(`programming failed: ${problems.slice(0, 3).join('; ')}`);

    let change: SocklbChildResult['change'] = null;
    if (input.change) {
      // The dialled services come last, so the changed ones are never one the client dials.
      if (input.others < 1) throw new RangeError('an endpoint change needs at least one other service');
      const first = withOneEndpointChanged(cluster).changed;
      const totalMs: number[] = [];
      let split = { desiredMs: 0, reconcileMs: 0, writes: 0 };
      for (let i = 0; i < CHANGES; i++) {
        const before = i === 0 ? cluster[0]! : cluster[i % input.others]!;
        const changed =
          i === 0 ? first : { ...before, endpoints: [...before.endpoints.slice(0, -1), { ip: changedIp(i), port: TARGET_PORT }] };
        const slice = sliceOf(changed);
        t = process.hrtime.bigint();
        state.putSlice(slice);
        const changes = runSteps(state.flush());
        const modelMs = ms(t);
        const applied = reconciler.reconcileChanges(changes);
        totalMs.push(ms(t));
        if (applied.problems.length > 0) throw new Error(`endpoint change failed: ${applied.problems[0]!.message}`);
        if (applied.writes === 0) throw new Error(`endpoint change ${i} wrote nothing`);
        if (i === 0) split = { desiredMs: modelMs, reconcileMs: totalMs[0]! - modelMs, writes: applied.writes };
      }
      change = { ...split, totalMs };
    }

    const memlock: Record<string, number> = {};
    for (const [name, map] of Object.entries(datapath.maps)) memlock[name] = map.info().memlock ?? 0;
    const mem = process.memoryUsage();

    // After the memory figures, which are the programming's.
    const plain = await timeScrape(datapath, reconciler, table, false);
    const perBackend = await timeScrape(datapath, reconciler, table, true);
    const scrape = {
      ms: plain.ms,
      cpuMs: plain.cpuMs,
      bytes: plain.bytes,
      perBackendMs: perBackend.ms,
      perBackendCpuMs: perBackend.cpuMs,
      perBackendBytes: perBackend.bytes,
      scrapes: SCRAPES,
    };
    const result: SocklbChildResult = {
      frontends: table.frontends.length,
      capacity,
      program: { desiredMs, reconcileMs, writes: programmed.writes },
      change,
      scrape,
      memlock,
      memlockTotal: Object.values(memlock).reduce((a, b) => a + b, 0),
      rssBeforeBytes,
      rssAfterBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    datapath.close();
  }
}

await main();
