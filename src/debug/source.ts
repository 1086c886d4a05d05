// What the debug endpoint and /metrics read, as one small interface: an adapter over the running
// Agent (real BPF maps), and one over MemoryMaps for tests that need no kernel.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Agent, AgentStatus } from '../agent/agent.ts';
import { SOCK_PROGRAMS } from '../agent/datapath.ts';
import { cgroupId } from '../agent/host.ts';
import { BpfLink } from '../bpf/binding.ts';
import { MapNames, SOCK_REASONS, sumPerCpu } from '../datapath/abi.ts';
import { KernelMaps } from '../datapath/kernel-maps.ts';
import type { DatapathMaps } from '../datapath/maps.ts';
import type { DesiredTable } from '../model/types.ts';
import type { ProgrammedState } from '../reconcile/state.ts';
import { BpfMapView, type MapView } from './map-views.ts';

export interface HookState {
  /** The program, e.g. 'sock4_connect'. */
  program: string;
  /** The attach type as bpftool names it, e.g. 'cgroup_inet4_connect'. */
  attachType: string;
  /** Its pinned link exists and is attached to the agent's cgroup. */
  attached: boolean;
}

export interface DebugSource {
  /** The agent's own account: in sync, syncs, problems. */
  status(): AgentStatus;
  /** True while the datapath's maps are open (the BPF objects loaded). */
  loaded(): boolean;
  /** Each cgroup hook and whether it is attached where the agent wants it. */
  hooks(): HookState[];
  /** The desired table of the last reconcile: names the programmed frontends. */
  table(): DesiredTable;
  /** Reads what the service maps hold, and the per-CPU connect counters. */
  readback(): DatapathMaps;
  /**
   * The reconciler's picture of what it wrote (frontend -> service id, backends by id), kept in
   * memory: naming the counters from it reads no service, slot or backend map.
   */
  programmed(): ProgrammedState;
  /** Every map the agent holds, by name. */
  maps(): readonly MapView[];
  /** Settings worth showing an operator (no secrets). */
  config(): Record<string, unknown>;
}

/**
 * Sums a per-CPU counter map with u32 keys over CPUs, by key: a page of 4096 entries per read (one
 * BPF_MAP_LOOKUP_BATCH where the kernel has it), not one lookup per key. Keys `want` rejects are
 * skipped without decoding.
 */
export function sumCounters(view: MapView, want: (key: number) => boolean = () => true): Map<number, Record<string, bigint>> {
  const sums = new Map<number, Record<string, bigint>>();
  let cursor: Buffer | undefined;
  do {
    const page = view.page(cursor, 4096);
    for (const [key, value] of page.entries) {
      const id = key.readUInt32LE(0);
      if (want(id)) sums.set(id, sumPerCpu(view.value, value));
    }
    cursor = page.next;
  } while (cursor);
  return sums;
}

/** Sums sock_stats_v1 by reason name; zero for every reason when the map is not there. */
export function sockReasonCounts(source: DebugSource): Record<string, bigint> {
  const totals: Record<string, bigint> = Object.fromEntries(SOCK_REASONS.map((r) => [r, 0n]));
  const view = source.maps().find((m) => m.name === MapNames.sockStats);
  if (!view) return totals;
  for (const [key, sum] of sumCounters(view)) {
    const reason = SOCK_REASONS[key];
    if (reason) totals[reason] = sum.count!;
  }
  return totals;
}

export interface AgentSourceOptions {
  /** Settings the agent does not expose itself (node name, sync period, the debug address, ...). */
  config?: Record<string, unknown>;
}

/** What agentSource reads of an agent: the Agent itself, or a datapath and reconciler run without one (the bench). */
export type AgentParts = Pick<Agent, 'datapath' | 'reconciler' | 'table' | 'status'>;

/** The running agent, read through its pinned maps and links. */
export function agentSource(agent: AgentParts, options: AgentSourceOptions = {}): DebugSource {
  const dp = agent.datapath;
  const readback = new KernelMaps(dp.maps, dp.options.capacity);
  const views = Object.entries(dp.maps).map(([name, map]) => new BpfMapView(name, map));
  const wantCgroup = cgroupId(dp.options.cgroup);
  return {
    status: () => agent.status(),
    loaded: () => Object.values(dp.maps).every((m) => m.fd >= 0),
    hooks: () =>
      Object.entries(SOCK_PROGRAMS).map(([program, attachType]) => {
        const pin = join(dp.options.bpffs, 'links', program);
        let attached = false;
        if (existsSync(pin)) {
          try {
            const link = BpfLink.fromPin(pin);
            try {
              attached = link.info().cgroupId === wantCgroup;
            } finally {
              link.close();
            }
          } catch {
            attached = false;
          }
        }
        return { program, attachType, attached };
      }),
    table: () => agent.table,
    readback: () => readback,
    programmed: () => agent.reconciler.state,
    maps: () => views,
    config: () => ({
      bpffs: dp.options.bpffs,
      cgroup: dp.options.cgroup,
      capacity: { ...dp.options.capacity },
      reverseEntries: dp.options.reverseEntries,
      udpSocketDestroy: dp.destroyer ? 'available' : 'unavailable',
      ...options.config,
    }),
  };
}
