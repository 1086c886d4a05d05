// The datapath's kernel memory: the formula of src/datapath/memory.ts against what the kernel
// charges to real maps (fdinfo memlock), and the default capacity against the budget an operator
// can plan a big host for.

import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_CAPACITY, DEFAULT_REVERSE_ENTRIES, mapSizes } from '../../src/agent/datapath.ts';
import { BpfMap, type MapType as MapTypeName } from '../../src/bpf/binding.ts';
import { BPF_F_INNER_MAP, MAP_DEFINITIONS, type MapName, MapNames, MapType } from '../../src/datapath/abi.ts';
import { DEFAULT_TABLE_POSITIONS, DEFAULT_TABLES } from '../../src/datapath/maps.ts';
import { datapathMemory, mapMemory, tableMemory } from '../../src/datapath/memory.ts';

const MiB = 2 ** 20;

/** /sys/devices/system/cpu/possible: "0-127", "0", "0-3,8-11". */
function possibleCpus(): number {
  return readFileSync('/sys/devices/system/cpu/possible', 'utf8')
    .trim()
    .split(',')
    .reduce((n, range) => {
      const [a, b] = range.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a! + 1);
    }, 0);
}

const TYPE_NAMES: Record<number, MapTypeName> = {
  [MapType.hash]: 'hash',
  [MapType.array]: 'array',
  [MapType.percpuArray]: 'percpu_array',
  [MapType.lruHash]: 'lru_hash',
};

test('at default capacity the datapath takes at most 64 MiB on a host of 128 possible CPUs', () => {
  const sizes = mapSizes({ bpffs: '', cgroup: '', capacity: DEFAULT_CAPACITY, reverseEntries: DEFAULT_REVERSE_ENTRIES });
  const here = datapathMemory(sizes, possibleCpus());
  const big = datapathMemory(sizes, 128);
  // The scheduler tables (wrr, maglev) are arrays the agent makes, within their own capacity.
  const tables = tableMemory(DEFAULT_TABLES, DEFAULT_TABLE_POSITIONS);
  assert.ok(big.total + tables <= 64 * MiB, `${((big.total + tables) / MiB).toFixed(1)} MiB on 128 CPUs`);
  // What grows with the CPUs is a rounding error next to what grows with the services.
  const perCpu = big.maps.reduce((n, m) => n + m.perCpu, 0);
  assert.ok(perCpu * 128 < MiB, `${perCpu} bytes per CPU`);
  assert.ok(big.total - here.total < MiB);
});

/**
 * Each kind of map the datapath uses, made with its real definition, filled, and the kernel's charge
 * compared with the formula (the kernel adds a header of a few hundred bytes per map).
 */
for (const name of [MapNames.lb4Services, MapNames.slots, MapNames.lb4Reverse, MapNames.serviceStats, MapNames.sockStats] as MapName[]) {
  test(`the formula matches the kernel's charge for a full ${name}`, () => {
    const def = MAP_DEFINITIONS[name];
    const maxEntries = def.type === MapType.percpuArray ? 64 : 4096;
    const map = BpfMap.create({
      type: TYPE_NAMES[def.type]!,
      keySize: def.keySize,
      valueSize: def.valueSize,
      maxEntries,
      flags: def.flags,
      name: 'slb_mem_test',
    });
    try {
      if (def.type === MapType.hash || def.type === MapType.lruHash) {
        const value = Buffer.alloc(map.valueBufferSize);
        for (let i = 0; i < maxEntries; i++) {
          const key = Buffer.alloc(def.keySize);
          key.writeUInt32LE(i);
          map.update(key, value);
        }
      }
      const charged = map.info().memlock;
      assert.ok(charged !== undefined, 'the kernel reports memlock');
      const formula = mapMemory(name, maxEntries, def);
      const expected = formula.shared + formula.perCpu * possibleCpus();
      const slack = 4096 + expected * 0.02;
      assert.ok(Math.abs(charged! - expected) <= slack, `${name}: kernel ${charged} bytes, formula ${expected}`);
    } finally {
      map.close();
    }
  });
}

test("the table formula covers the kernel's charge for a service's scheduler tables", () => {
  // A 16,381-position table (the default Maglev size) and a 4-position wrr table.
  const charged = [16381, 4].map((positions) => {
    const map = BpfMap.create({
      type: 'array',
      keySize: 4,
      valueSize: 8,
      maxEntries: 1 + Math.ceil(positions / 4),
      flags: BPF_F_INNER_MAP,
      name: 'slb_mem_table',
    });
    try {
      return map.info().memlock!;
    } finally {
      map.close();
    }
  });
  const formula = tableMemory(2, 16381 + 4);
  const sum = charged[0]! + charged[1]!;
  assert.ok(sum <= formula && formula - sum < 4096, `kernel ${charged.join(' + ')} bytes, formula ${formula}`);
});

test.run();
