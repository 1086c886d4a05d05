// Reads an agent's xdp_stats_v1 from its bpffs directory: per-CPU counters summed by reason.

import { join } from 'node:path';
import { BpfMap } from '../../src/bpf/binding.ts';
import { MapNames, XDP_REASONS } from '../../src/datapath/abi.ts';

export function pinnedXdpReasons(bpffs: string): Record<string, bigint> {
  const map = BpfMap.fromPin(join(bpffs, 'maps', MapNames.xdpStats));
  try {
    const out: Record<string, bigint> = {};
    XDP_REASONS.forEach((reason, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      const value = map.lookup(key)!;
      let sum = 0n;
      for (let at = 0; at < value.length; at += 8) sum += value.readBigUInt64LE(at);
      out[reason] = sum;
    });
    return out;
  } finally {
    map.close();
  }
}
