// How the entries of a pinned map of an earlier layout become entries of the current one. The agent
// migrates on start (src/agent/datapath.ts) whenever a pinned map differs from MAP_DEFINITIONS: a
// map of another size is copied as it is, a map of an older layout (an older _vN name) through the
// conversion listed here. Pure: bytes in, bytes out.

import { endianness } from 'node:os';
import { type MapName, MapNames } from './abi.ts';

const LITTLE = endianness() === 'LE';

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
  convert(entry: MapEntry, possibleCpus: number): MapEntry | undefined;
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
 * A per-CPU counter struct of u64 fields (one copy per CPU, each padded to 8 bytes) summed into the
 * single shared struct that replaced it; an all-zero one is dropped (an array map starts at zero).
 */
function summedPerCpu(size: number): (e: MapEntry, cpus: number) => MapEntry | undefined {
  return ({ key, value }, cpus) => {
    const stride = Math.ceil(size / 8) * 8;
    const out = Buffer.alloc(size);
    let any = false;
    for (let field = 0; field + 8 <= size; field += 8) {
      let sum = 0n;
      for (let cpu = 0; cpu < cpus && cpu * stride + field + 8 <= value.length; cpu++) {
        const at = cpu * stride + field;
        sum += LITTLE ? value.readBigUInt64LE(at) : value.readBigUInt64BE(at);
      }
      if (sum !== 0n) any = true;
      if (LITTLE) out.writeBigUInt64LE(sum, field);
      else out.writeBigUInt64BE(sum, field);
    }
    return any ? { key, value: out } : undefined;
  };
}

/**
 * ABI 1 -> 2 (the frontend key's pad byte became the scope, 0 = internal as every v1 entry was;
 * services gained a scheduler, backends their node's address; the counters stopped being per-CPU).
 */
export const MIGRATIONS: readonly Migration[] = [
  { from: 'lb4_services_v1', to: MapNames.lb4Services, convert: widened(16) },
  { from: 'lb6_services_v1', to: MapNames.lb6Services, convert: widened(16) },
  { from: 'lb4_backends_v1', to: MapNames.lb4Backends, convert: widened(12) },
  { from: 'lb6_backends_v1', to: MapNames.lb6Backends, convert: widened(36) },
  { from: 'lb_svc_stats_v1', to: MapNames.serviceStats, convert: summedPerCpu(16) },
  { from: 'lb_be_stats_v1', to: MapNames.backendStats, convert: summedPerCpu(8) },
];

/** The older map names whose pins the current layout replaces, newest first, for a map. */
export function migrationsInto(map: MapName): Migration[] {
  return MIGRATIONS.filter((m) => m.to === map);
}
