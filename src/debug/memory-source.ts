// A DebugSource over MemoryMaps and a Reconciler: the agent's pipeline without a kernel, for tests
// of the endpoint, /metrics and the CLI.

import type { AgentStatus } from '../agent/agent.ts';
import { SOCK_PROGRAMS } from '../agent/datapath.ts';
import { encode, Layouts, MapNames, SOCK_REASONS } from '../datapath/abi.ts';
import type { MemoryMaps } from '../datapath/maps.ts';
import type { DesiredTable } from '../model/types.ts';
import type { PlanProblem } from '../reconcile/plan.ts';
import { Reconciler } from '../reconcile/reconciler.ts';
import { type MapView, MemoryMapView, memoryMapViews } from './map-views.ts';
import type { DebugSource } from './source.ts';

export interface MemorySource extends DebugSource {
  /** Reconciles the maps to this table, as Agent.syncNow does. */
  sync(table: DesiredTable): PlanProblem[];
  /** Sets the sock_stats counters. */
  setSockStats(counts: Partial<Record<(typeof SOCK_REASONS)[number], bigint>>): void;
  /** Marks every hook attached or not. */
  setAttached(attached: boolean): void;
}

export function memorySource(maps: MemoryMaps, config: Record<string, unknown> = {}): MemorySource {
  const reconciler = new Reconciler(maps);
  const serviceMaps = memoryMapViews(maps);
  const sockStats = new MemoryMapView({ name: MapNames.sockStats, type: 'percpu_array', maxEntries: SOCK_REASONS.length, perCpu: true });
  const setSockStats = (counts: Partial<Record<string, bigint>>) => {
    SOCK_REASONS.forEach((reason, i) => {
      sockStats.set(encode(Layouts.backendId, { backend_id: i }), encode(Layouts.backendStats, { connects: counts[reason] ?? 0n }));
    });
  };
  setSockStats({});
  let table: DesiredTable = { frontends: [], problems: [] };
  let programProblems: PlanProblem[] = [];
  let syncs = 0;
  let lastSync: Date | undefined;
  let attached = true;
  return {
    status: (): AgentStatus => ({
      inSync: syncs > 0,
      adopted: false,
      lastSync,
      syncs,
      frontends: reconciler.state.services.size,
      objectProblems: table.problems,
      programProblems,
      destroyMethod: 'bpf_sock_destroy',
      refuseErrno: 111,
      connsCounted: true,
      committed: syncs > 0,
      migration: { created: [], copied: [], removed: [] },
      syncErrors: [],
      pendingDestroy: 0,
      xdp: [],
      dsrFallbacks: 0,
    }),
    loaded: () => true,
    hooks: () => Object.entries(SOCK_PROGRAMS).map(([program, attachType]) => ({ program, attachType, attached })),
    table: () => table,
    readback: () => maps,
    programmed: () => reconciler.state,
    maps: (): MapView[] => {
      serviceMaps.refresh();
      return [...serviceMaps.views, sockStats];
    },
    config: () => ({ bpffs: '(memory)', capacity: { ...maps.capacity }, ...config }),
    sync(next: DesiredTable): PlanProblem[] {
      table = next;
      programProblems = reconciler.reconcile(next.frontends).problems;
      syncs++;
      lastSync = new Date();
      return programProblems;
    },
    setSockStats,
    setAttached(a: boolean) {
      attached = a;
    },
  };
}
