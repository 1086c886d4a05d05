// How the entries of a pinned map of an earlier layout become entries of the current one. The agent
// migrates on start (src/agent/datapath.ts) whenever a pinned map differs from MAP_DEFINITIONS: a
// map of another size is copied as it is, a map of an older layout (an older _vN name) through the
// conversion listed here. Pure: bytes in, bytes out.

import { encode, type Layout, Layouts, type MapName, MapNames, sumPerCpu } from './abi.ts';

/** One entry of a map: key and value bytes (a per-CPU value holds every CPU's copy). */
export interface MapEntry {
  key: Buffer;
  value: Buffer;
}

export interface Migration {
  /** The pinned map of the older layout. */
  from: string;
  /** The current map it becomes. */
  to: MapName;
  /** The entry in the new layout, or undefined to drop it (an all-zero counter, say). */
  convert(entry: MapEntry): MapEntry | undefined;
}

/** A value that gained fields at its end: the old bytes, then zeros (new fields start at 0). */
function widened(size: number): (e: MapEntry) => MapEntry {
  return ({ key, value }) => {
    const out = Buffer.alloc(size);
    value.copy(out, 0, 0, Math.min(size, value.length));
    return { key, value: out };
  };
}

/**
 * A per-CPU counter struct (one copy per CPU) summed into the single shared struct of the same
 * fields that replaced it; an all-zero one is dropped (an array map starts at zero).
 */
function summedPerCpu(layout: Layout): (e: MapEntry) => MapEntry | undefined {
  return ({ key, value }) => {
    const sums = sumPerCpu(layout, value);
    return Object.values(sums).some((n) => n !== 0n) ? { key, value: encode(layout, sums) } : undefined;
  };
}

/**
 * ABI 1 -> 2 (the frontend key's pad byte became the scope, 0 = internal as every v1 entry was;
 * services gained a scheduler, backends their node's address; the counters stopped being per-CPU).
 */
export const MIGRATIONS: readonly Migration[] = [
  { from: 'lb4_services_v1', to: MapNames.lb4Services, convert: widened(Layouts.service.size) },
  { from: 'lb6_services_v1', to: MapNames.lb6Services, convert: widened(Layouts.service.size) },
  { from: 'lb4_backends_v1', to: MapNames.lb4Backends, convert: widened(Layouts.lb4Backend.size) },
  { from: 'lb6_backends_v1', to: MapNames.lb6Backends, convert: widened(Layouts.lb6Backend.size) },
  { from: 'lb_svc_stats_v1', to: MapNames.serviceStats, convert: summedPerCpu(Layouts.serviceStats) },
  { from: 'lb_be_stats_v1', to: MapNames.backendStats, convert: summedPerCpu(Layouts.backendStats) },
];

/** The older map names whose pins the current layout replaces, newest first, for a map. */
export function migrationsInto(map: MapName): Migration[] {
  return MIGRATIONS.filter((m) => m.to === map);
}
