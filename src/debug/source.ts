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
  /** Every map the agent holds, by name. */
  maps(): readonly MapView[];
  /** Settings worth showing an operator (no secrets). */
  config(): Record<string, unknown>;
}

/** Sums sock_stats_v1 by reason name; zero for every reason when the map is not there. */
export function sockReasonCounts(source: DebugSource): Record<string, bigint> {
  const totals: Record<string, bigint> = Object.fromEntries(SOCK_REASONS.map((r) => [r, 0n]));
  const view = source.maps().find((m) => m.name === MapNames.sockStats);
  if (!view) return totals;
  let cursor: Buffer | undefined;
  do {
    const page = view.page(cursor, 64);
    for (const [key, value] of page.entries) {
      const reason = SOCK_REASONS[key.readUInt32LE(0)];
      if (reason) totals[reason] = sumPerCpu(view.value, value).count!;
    }
    cursor = page.next;
  } while (cursor);
  return totals;
}

export interface AgentSourceOptions {
  /** Settings the agent does not expose itself (node name, sync period, the debug address, ...). */
  config?: Record<string, unknown>;
}

/** The running agent, read through its pinned maps and links. */
export function agentSource(agent: Agent, options: AgentSourceOptions = {}): DebugSource {
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
