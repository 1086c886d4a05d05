import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Capacity, type MapsDump, MemoryMaps } from '../../../src/datapath/maps.ts';
import type { Backend, DesiredFrontend, Frontend } from '../../../src/model/types.ts';
import { Reconciler } from '../../../src/reconcile/reconciler.ts';
import { rng } from '../../support/rng.ts';

function pod(n: number): Backend {
  return n % 5 === 0
    ? { family: 6, address: `fd00::${n.toString(16)}`, port: 8080, protocol: 'TCP' }
    : { family: 4, address: `10.244.${n >> 8}.${n & 255}`, port: 8080, protocol: 'TCP' };
}

function vip(i: number): Frontend {
  return i % 7 === 0
    ? { family: 6, address: `fd00:96::${i.toString(16)}`, port: 80, protocol: 'TCP' }
    : { family: 4, address: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'TCP' };
}

/** Enough frontends that a first sync and a big change are written in batches; each backend once. */
function randomTable(r: () => number): DesiredFrontend[] {
  const out: DesiredFrontend[] = [];
  for (let i = 0; i < 120; i++) {
    if (r() < 0.2) continue;
    const count = r() < 0.1 ? 12 : Math.floor(r() * 5);
    const backends = [...new Set(Array.from({ length: count }, () => 1 + Math.floor(r() * 150)))].map(pod);
    out.push({
      frontend: vip(i),
      service: { namespace: 'default', name: `s${i}` },
      portName: '',
      backends,
      ...(r() < 0.2 ? { affinityTimeoutSeconds: 30 } : {}),
      ...(r() < 0.1 ? { scheduling: { scheduler: 'wrr' as const } } : {}),
    });
  }
  return out;
}

/** Writes that fail for some entries, the same ones whatever the order (as a bad entry would). */
class PickyMaps extends MemoryMaps {
  override putSlot(...a: Parameters<MemoryMaps['putSlot']>): void {
    if ((a[0].serviceId * 7 + a[0].slot) % 23 === 5) throw Object.assign(new Error('injected'), { code: 'EIO' });
    super.putSlot(...a);
  }
  override putService(...a: Parameters<MemoryMaps['putService']>): void {
    if (a[1].serviceId % 19 === 4) throw Object.assign(new Error('injected'), { code: 'EIO' });
    super.putService(...a);
  }
  override putBackend(...a: Parameters<MemoryMaps['putBackend']>): void {
    if (a[0] % 29 === 11) throw Object.assign(new Error('injected'), { code: 'EIO' });
    super.putBackend(...a);
  }
}

function sorted(dump: MapsDump): string[] {
  return [...dump.services, ...dump.slots, ...dump.backends].map((e) => JSON.stringify(e)).sort();
}

for (const [name, Maps] of [
  ['', MemoryMaps],
  [', through writes failing in the middle of batches', PickyMaps],
] as const) {
  test(`batched and op-by-op reconciles write the same maps and report the same problems${name}`, () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const r = rng(seed);
      // Tight enough that some frontends are refused for room.
      const capacity: Capacity = { services: 100, slots: 280, backends: 120, serviceIds: 256, backendIds: 512 };
      const oneByOne = new Maps(capacity);
      const batched = new Maps(capacity);
      const a = new Reconciler(oneByOne, { batch: false });
      const b = new Reconciler(batched);
      for (let round = 0; round < 6; round++) {
        const table = randomTable(r);
        const ra = a.reconcile(table);
        const rb = b.reconcile(table);
        assert.equal(sorted(batched.dump()), sorted(oneByOne.dump()), `seed ${seed} round ${round}: maps`);
        assert.equal(rb.problems, ra.problems, `seed ${seed} round ${round}: problems`);
        // (Through failures a batch has also zeroed the counters of backends whose put then failed.)
        if (Maps === MemoryMaps) assert.equal(rb.writes, ra.writes, `seed ${seed} round ${round}: writes`);
        assert.equal([...b.state.services.keys()].sort(), [...a.state.services.keys()].sort());
        assert.equal(b.state.backends, a.state.backends);
      }
    }
  });
}

test.run();
