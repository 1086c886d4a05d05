// What the debug endpoint and /metrics read, as one small interface: an adapter over the running
// Agent (real BPF maps), and one over MemoryMaps for tests that need no kernel.

import { existsSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { Agent, AgentStatus } from '../agent/agent.ts';
import { SOCK_PROGRAMS } from '../agent/datapath.ts';
import { cgroupId } from '../agent/host.ts';
import { BpfLink } from '../bpf/binding.ts';
import { MapNames, SOCK_REASONS, XDP_REASONS } from '../datapath/abi.ts';
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

const LITTLE = endianness() === 'LE';

/**
 * Sums each u64 field of a per-CPU counter array over CPUs, into one Float64Array per field indexed
 * by key, for keys below `size` (the view must page in index order, as the kernel pages an array):
 * a page of 4096 entries per read (one BPF_MAP_LOOKUP_BATCH where the kernel has it), not one
 * lookup per key, and read from the page's bytes, not an object per entry. Sums are Numbers, exact up to 2^53 (as Prometheus exposes
 * them anyway), read as two u32 halves into dense arrays: a BigInt or an object per entry costs
 * several times the read at 50,000 services.
 */
export function sumCounters(view: MapView, size: number): Record<string, Float64Array> {
  const fields = view.value.fields.filter((f) => f.type === 'u64');
  const offsets = fields.map((f) => f.offset);
  const sums = fields.map(() => new Float64Array(size));
  const stride = Math.ceil(view.value.size / 8) * 8;
  const [lo, hi] = LITTLE ? [0, 4] : [4, 0];
  let cursor: Buffer | undefined;
  // An array pages by index, so the read stops at the page that reaches size: an agent sized for
  // twice its services reads half the array.
  let last = -1;
  while (size > 0 && last < size - 1) {
    const { keys, values, count, next } = view.page(cursor, 4096);
    const ks = count && keys.length / count;
    const vs = count && values.length / count;
    for (let i = 0; i < count; i++) {
      const id = keys.readUInt32LE(i * ks);
      last = id;
      if (id >= size) continue;
      const end = (i + 1) * vs;
      for (let f = 0; f < offsets.length; f++) {
        let n = 0;
        for (let at = i * vs + offsets[f]!; at + 8 <= end; at += stride)
          n += values.readUInt32LE(at + lo) + values.readUInt32LE(at + hi) * 2 ** 32;
        sums[f]![id] = n;
      }
    }
    cursor = next;
    if (!cursor) break;
  }
  return Object.fromEntries(fields.map((f, i) => [f.name, sums[i]!]));
}

/** Sums sock_stats_v1 by reason name; zero for every reason when the map is not there. */
export function sockReasonCounts(source: DebugSource): Record<string, number> {
  return reasonCounts(source, MapNames.sockStats, SOCK_REASONS) ?? Object.fromEntries(SOCK_REASONS.map((r) => [r, 0]));
}

/** Sums xdp_stats_v1 by reason name; undefined when the XDP datapath is not loaded. */
export function xdpReasonCounts(source: DebugSource): Record<string, number> | undefined {
  return reasonCounts(source, MapNames.xdpStats, XDP_REASONS);
}

function reasonCounts(source: DebugSource, map: string, reasons: readonly string[]): Record<string, number> | undefined {
  const view = source.maps().find((m) => m.name === map);
  if (!view) return undefined;
  const { count } = sumCounters(view, reasons.length);
  return Object.fromEntries(reasons.map((reason, i) => [reason, count![i]!]));
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
  const readback = new KernelMaps(dp.maps, dp.options.capacity, dp.frontendFilter);
  // Socket-local storage has no entries to list: each lives on its socket.
  const views = [...Object.entries(dp.maps), ...Object.entries(dp.xdpMaps)]
    .filter(([name]) => name !== MapNames.sockConn)
    .map(([name, map]) => new BpfMapView(name, map));
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
