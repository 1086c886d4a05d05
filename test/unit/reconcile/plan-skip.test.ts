import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Capacity, type MapsDump, MemoryMaps } from '../../../src/datapath/maps.ts';
import { type Backend, type DesiredFrontend, endpointKey, type Frontend } from '../../../src/model/types.ts';
import { applyOp } from '../../../src/reconcile/apply.ts';
import { type Plan, plan } from '../../../src/reconcile/plan.ts';
import { Reconciler } from '../../../src/reconcile/reconciler.ts';
import { ProgrammedState } from '../../../src/reconcile/state.ts';
import { rng } from '../../support/rng.ts';

function pod(n: number): Backend {
  return n % 5 === 0
    ? { family: 6, address: `fd00::${n.toString(16)}`, port: 8080, protocol: 'TCP' }
    : { family: 4, address: `10.244.0.${n}`, port: 8080, protocol: 'TCP' };
}

function vip(i: number): Frontend {
  return i % 7 === 0
    ? { family: 6, address: `fd00:96::${i.toString(16)}`, port: 80, protocol: 'TCP' }
    : { family: 4, address: `10.96.0.${i}`, port: 80, protocol: 'TCP' };
}

/** A random table: some frontends, each with a few (sometimes many, sometimes repeated) backends. */
function randomTable(r: () => number): DesiredFrontend[] {
  const out: DesiredFrontend[] = [];
  for (let i = 0; i < 30; i++) {
    if (r() < 0.3) continue;
    const count = r() < 0.1 ? 20 : Math.floor(r() * 5);
    const backends = Array.from({ length: count }, () => pod(1 + Math.floor(r() * 40)));
    if (r() < 0.05 && backends.length > 0) backends.push(backends[0]!);
    out.push({
      frontend: vip(i),
      service: { namespace: 'default', name: `s${i}` },
      portName: '',
      backends,
      ...(r() < 0.2 ? { affinityTimeoutSeconds: 30 } : {}),
    });
  }
  return out;
}

/** Map writes that sometimes fail, leaving orphans and half-applied changes as a real failure would. */
class FlakyMaps extends MemoryMaps {
  fail = () => false;
  override putSlot(...a: Parameters<MemoryMaps['putSlot']>): void {
    if (this.fail()) throw Object.assign(new Error('injected'), { code: 'EIO' });
    super.putSlot(...a);
  }
  override putService(...a: Parameters<MemoryMaps['putService']>): void {
    if (this.fail()) throw Object.assign(new Error('injected'), { code: 'EIO' });
    super.putService(...a);
  }
  override deleteSlot(...a: Parameters<MemoryMaps['deleteSlot']>): void {
    if (this.fail()) throw Object.assign(new Error('injected'), { code: 'EIO' });
    super.deleteSlot(...a);
  }
}

/** The state's indexes agree with what they index. */
function checkIndexes(state: ProgrammedState): void {
  const refs = new Set<number>();
  for (const svc of state.services.values()) for (const id of svc.slots.values()) refs.add(id);
  for (const slots of state.orphanSlots.values()) for (const id of slots.values()) refs.add(id);
  for (let id = 1; id < 400; id++) assert.is(state.isReferenced(id), refs.has(id), `isReferenced(${id})`);
  const last = new Map<string, number>();
  for (const [id, b] of state.backends) last.set(endpointKey(b), id);
  for (const [key, id] of last) assert.is(state.backendIdOf(key), id, key);
}

/**
 * The backends a plan must delete, found the plain way: apply its changes to a copy of the state,
 * then every backend no live slot (1..backendCount) names, in the order the state lists them.
 */
function expectedDeletes(maps: MemoryMaps, p: Plan): number[] {
  const copy = ProgrammedState.fromDump(maps.dump());
  const none = (): void => {};
  const sink = new Proxy({}, { get: () => none }) as never;
  for (const c of p.changes) for (const op of c.ops) applyOp(sink, copy, op);
  const named = new Set<number>();
  for (const svc of copy.services.values()) for (let slot = 1; slot <= svc.backendCount; slot++) named.add(svc.slots.get(slot)!);
  return [...copy.backends.keys()].filter((id) => !named.has(id));
}

test('skipping programmed frontends gives the same plan as checking each, through failures and tight maps', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = rng(seed);
    const capacity: Capacity =
      seed % 2
        ? { services: 64, slots: 512, backends: 128, serviceIds: 128, backendIds: 256 }
        : { services: 12, slots: 40, backends: 24, serviceIds: 24, backendIds: 48 };
    const maps = new FlakyMaps(capacity);
    const rec = new Reconciler(maps);
    let table = randomTable(r);
    for (let round = 0; round < 40; round++) {
      if (r() < 0.5) table = randomTable(r);
      else if (table.length > 0) {
        // One frontend changes; the rest stay the same objects.
        const i = Math.floor(r() * table.length);
        table = table.map((d, k) => (k === i ? { ...d, backends: [...d.backends.slice(1), pod(1 + Math.floor(r() * 40))] } : d));
      }
      const p = plan(table, rec.state, capacity);
      assert.equal(p, plan(table, rec.state, capacity, { skipProgrammed: false }), `seed ${seed} round ${round}`);
      assert.equal(
        p.backendDeletes.map((op) => (op.kind === 'delete-backend' ? op.id : -1)),
        expectedDeletes(maps, p),
      );
      maps.fail = () => r() < 0.05;
      rec.reconcile(table);
      maps.fail = () => false;
      checkIndexes(rec.state);
      // A restarted agent adopts the same maps and plans the same.
      const adopted = ProgrammedState.fromDump(maps.dump());
      assert.equal(plan(table, adopted, capacity), plan(table, adopted, capacity, { skipProgrammed: false }));
    }
  }
});

test('a backend held twice in adopted maps is still resolved to the id a full scan would pick', () => {
  const f = vip(1);
  const b = pod(11);
  const dump: MapsDump = {
    services: [{ frontend: f, entry: { serviceId: 1, backendCount: 1, flags: 0, affinityTimeout: 0 } }],
    slots: [{ serviceId: 1, slot: 1, backendId: 3 }],
    backends: [
      { id: 3, backend: b },
      { id: 7, backend: b },
    ],
  };
  const state = ProgrammedState.fromDump(dump);
  assert.is(state.backendIdOf(endpointKey(b)), 7);
  const capacity: Capacity = { services: 8, slots: 8, backends: 8, serviceIds: 8, backendIds: 16 };
  const d: DesiredFrontend[] = [{ frontend: f, service: { namespace: 'default', name: 'web' }, portName: '', backends: [b] }];
  const p = plan(d, state, capacity);
  assert.equal(p, plan(d, state, capacity, { skipProgrammed: false }));
  assert.equal(
    p.changes.flatMap((c) => c.ops),
    [{ kind: 'put-slot', serviceId: 1, slot: 1, backendId: 7 }],
  );
  assert.equal(p.backendDeletes, [{ kind: 'delete-backend', id: 3, backend: b }]);
});

test('an unchanged table plans nothing and keeps every backend', () => {
  const capacity: Capacity = { services: 64, slots: 256, backends: 64, serviceIds: 64, backendIds: 64 };
  const rec = new Reconciler(new MemoryMaps(capacity));
  const table = randomTable(rng(9)).map((d) => ({ ...d, backends: [...new Map(d.backends.map((b) => [endpointKey(b), b])).values()] }));
  rec.reconcile(table);
  const p = plan(table, rec.state, capacity);
  assert.equal(p, { changes: [], backendDeletes: [], problems: [] });
});

test.run();
