// The connect hook's own cost, from the kernel's run-time stats (bpf_enable_stats): run_time_ns /
// run_cnt of the cgroup/connect4 program over a client's connects, once to a service (balanced)
// and once to an address that is no service (the miss every other connect on the node pays).
// Beside it, for the same connects, an empty connect4 program (test/fixtures/hook_floor.bpf.c):
// what calling and timing any program costs on this machine (on a CPU with the kernel's return
// thunks, e.g. AMD's SRSO "Safe RET", that floor is itself near 100 ns). Stats are on only while
// these clients run, so the other figures of the bench never pay for them.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeFeatures } from '../src/agent/features.ts';
import { BpfObject, cgroupPrograms, enableRunTimeStats, programStats } from '../src/bpf/binding.ts';
import type { ClientRun } from './types.ts';

const FLOOR_OBJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../bpf/out/hook_floor.bpf.o');
const FLOOR_PROGRAM = 'hook_floor';

export interface HookCostPoint {
  /** Services programmed besides the dialled one. */
  n: number;
  /** socklb's connect4 program: mean ns per run for connects to a service. */
  balancedNs: number;
  balancedRuns: number;
  /** The same for connects to an address that is no service. */
  missNs: number;
  missRuns: number;
  /** The empty program's mean ns per run over the same connects (both clients). */
  floorNs: number;
  /** The kernel features the datapath found (src/agent/features.ts), as `name` or `-name`. */
  features: string[];
}

/** What programs ran so far (their run-time stats summed): read before and after some work. */
export interface RunTotals {
  ns: number;
  runs: number;
}

export function runTotals(ids: readonly number[]): RunTotals {
  let ns = 0;
  let runs = 0;
  for (const id of ids) {
    const s = programStats({ id });
    ns += s.runTimeNs;
    runs += s.runCount;
  }
  return { ns, runs };
}

/** Mean ns per run between two readings. */
export const perRun = (before: RunTotals, after: RunTotals): number => (after.ns - before.ns) / (after.runs - before.runs);

export async function measureHookCost(
  n: number,
  cgroupPath: string,
  toService: () => Promise<ClientRun>,
  toNonService: () => Promise<ClientRun>,
): Promise<HookCostPoint> {
  const floor = BpfObject.open(FLOOR_OBJECT);
  try {
    floor.load();
    const floorId = programStats({ fd: floor.programFd(FLOOR_PROGRAM) }).id;
    const socklbIds = cgroupPrograms(cgroupPath, 'cgroup_inet4_connect').filter((id) => id !== floorId);
    if (socklbIds.length === 0) throw new Error(`no connect4 program is attached to ${cgroupPath}`);
    const link = floor.attachCgroup(FLOOR_PROGRAM, cgroupPath);
    const stats = enableRunTimeStats();
    try {
      const floor0 = runTotals([floorId]);
      const measure = async (client: () => Promise<ClientRun>) => {
        const before = runTotals(socklbIds);
        const run = await client();
        const after = runTotals(socklbIds);
        if (after.runs - before.runs < run.ok) throw new Error(`connect4 ran ${after.runs - before.runs} times for ${run.ok} connects`);
        return { ns: perRun(before, after), runs: after.runs - before.runs };
      };
      const balanced = await measure(toService);
      const miss = await measure(toNonService);
      const floorNs = perRun(floor0, runTotals([floorId]));
      const features = Object.entries(probeFeatures()).map(([name, f]) => (f.available ? name : `-${name}`));
      return { n, balancedNs: balanced.ns, balancedRuns: balanced.runs, missNs: miss.ns, missRuns: miss.runs, floorNs, features };
    } finally {
      stats.close();
      link.close();
    }
  } finally {
    floor.close();
  }
}
