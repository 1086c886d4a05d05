import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Capacity, type MapsDump, MemoryMaps } from '../../../src/datapath/maps.ts';
import { type Backend, type DesiredFrontend, endpointKey, type Frontend } from '../../../src/model/types.ts';
import { applyOp } from '../../../src/reconcile/apply.ts';
import { type Plan, plan, planChanges } from '../../../src/reconcile/plan.ts';
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

/** What the maps program, ids resolved: frontend -> entry fields and its backends (slot order is history). */
function programmed(maps: MemoryMaps): Record<string, string> {
  const dump = maps.dump();
  const backends = new Map(dump.backends.map((b) => [b.id, endpointKey(b.backend)]));
  const slots = new Map(dump.slots.map((s) => [`${s.serviceId}/${s.slot}`, s.backendId]));
  const out: Record<string, string> = {};
  for (const { frontend, entry } of dump.services) {
    const named = Array.from({ length: entry.backendCount }, (_, i) => backends.get(slots.get(`${entry.serviceId}/${i + 1}`) ?? -1));
    out[endpointKey(frontend)] = `${entry.flags}/${entry.affinityTimeout}: ${named.sort().join(' ')}`;
  }
  return out;
}

/** The changes from one table to the next, removals in the state's order, then the table's entries in its order. */
function changesBetween(state: ProgrammedState, table: readonly DesiredFrontend[]): Map<string, DesiredFrontend | undefined> {
  const wanted = new Map(table.map((d) => [endpointKey(d.frontend), d]));
  const changes = new Map<string, DesiredFrontend | undefined>();
  for (const key of state.services.keys()) if (!wanted.has(key)) changes.set(key, undefined);
  for (const [key, d] of wanted) changes.set(key, d);
  return changes;
}

test('planning the changed frontends only gives the plan of the whole table', () => {
  for (const seed of [11, 12, 13, 14]) {
    const r = rng(seed);
    const capacity: Capacity = { services: 64, slots: 512, backends: 128, serviceIds: 128, backendIds: 256 };
    const rec = new Reconciler(new MemoryMaps(capacity));
    for (let round = 0; round < 30; round++) {
      const table = randomTable(r);
      assert.equal(planChanges(changesBetween(rec.state, table), rec.state, capacity), plan(table, rec.state, capacity), `seed ${seed}`);
      rec.reconcile(table);
    }
  }
});

test('reconciling changes converges on what whole reconciles program, through failed writes', () => {
  // (In maps too small for the table, which frontends get in depends on the order they came in.)
  for (const seed of [21, 22, 23, 24, 25, 26, 27]) {
    const r = rng(seed);
    const capacity: Capacity = { services: 64, slots: 512, backends: 128, serviceIds: 128, backendIds: 256 };
    const whole = new FlakyMaps(capacity);
    const changed = new FlakyMaps(capacity);
    const byWhole = new Reconciler(whole);
    const byChanges = new Reconciler(changed);
    let table: DesiredFrontend[] = [];
    // As desired() gives them: each backend once.
    const unique = (t: DesiredFrontend[]) =>
      t.map((d) => ({ ...d, backends: [...new Map(d.backends.map((b) => [endpointKey(b), b])).values()] }));
    for (let round = 0; round < 40; round++) {
      const previous = new Map(table.map((d) => [endpointKey(d.frontend), d]));
      if (r() < 0.3) table = unique(randomTable(r));
      else if (table.length > 0) {
        const i = Math.floor(r() * table.length);
        table = unique(table.map((d, k) => (k === i ? { ...d, backends: [...d.backends.slice(1), pod(1 + Math.floor(r() * 40))] } : d)));
      }
      const changes = new Map<string, DesiredFrontend | undefined>();
      for (const key of previous.keys()) changes.set(key, undefined);
      for (const d of table) {
        const key = endpointKey(d.frontend);
        if (previous.get(key) === d) changes.delete(key);
        else changes.set(key, d);
      }
      whole.fail = () => r() < 0.05;
      changed.fail = () => r() < 0.05;
      byWhole.reconcile(table);
      byChanges.reconcileChanges(changes);
      checkIndexes(byChanges.state);
    }
    whole.fail = () => false;
    changed.fail = () => false;
    const last = byWhole.reconcile(table);
    // The frontends left undone are retried without being named again.
    const retried = byChanges.reconcileChanges(new Map());
    assert.equal(programmed(changed), programmed(whole), `seed ${seed}`);
    assert.equal(
      retried.problems.map((p) => p.key),
      last.problems.map((p) => p.key),
    );
  }
});

test('one endpoint change among 50,000 services plans a handful of writes', () => {
  const n = 50_000;
  const dump: MapsDump = { services: [], slots: [], backends: [] };
  const table: DesiredFrontend[] = [];
  for (let i = 0; i < n; i++) {
    const frontend: Frontend = { family: 4, address: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, port: 80, protocol: 'TCP' };
    const backends: Backend[] = [0, 1, 2].map((k) => ({
      family: 4,
      address: `10.${64 + (i >> 14)}.${(i >> 6) & 255}.${((i & 63) << 2) | k}`,
      port: 8080,
      protocol: 'TCP',
    }));
    dump.services.push({ frontend, entry: { serviceId: i + 1, backendCount: 3, flags: 0, affinityTimeout: 0 } });
    backends.forEach((backend, k) => {
      dump.backends.push({ id: 3 * i + k + 1, backend });
      dump.slots.push({ serviceId: i + 1, slot: k + 1, backendId: 3 * i + k + 1 });
    });
    table.push({ frontend, service: { namespace: 'bench', name: `svc-${i}` }, portName: 'http', backends });
  }
  const state = ProgrammedState.fromDump(dump);
  const capacity: Capacity = { services: 65536, slots: 262144, backends: 262144, serviceIds: 65536, backendIds: 262144 };
  const before = table[n >> 1]!;
  const after = {
    ...before,
    backends: [...before.backends.slice(0, 2), { family: 4, address: '10.127.255.254', port: 8080, protocol: 'TCP' } as Backend],
  };
  const p = planChanges(new Map([[endpointKey(after.frontend), after]]), state, capacity);
  const ops = [...p.changes.flatMap((c) => c.ops), ...p.backendDeletes].map((op) => op.kind);
  // The new backend (its counters zeroed), its slot, and the replaced backend's delete: nothing else.
  assert.equal(ops, ['reset-backend-counters', 'put-backend', 'put-slot', 'delete-backend']);
  // The id it takes is the lowest free one, as a whole plan would pick.
  table[n >> 1] = after;
  assert.equal(p, plan(table, state, capacity));
});

test.run();
