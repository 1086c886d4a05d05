import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Schedulers } from '../../../src/datapath/abi.ts';
import { type Capacity, MemoryMaps } from '../../../src/datapath/maps.ts';
import { serviceViews } from '../../../src/debug/service-view.ts';
import type { Scheduling } from '../../../src/model/scheduler.ts';
import type { Backend, DesiredFrontend, Frontend } from '../../../src/model/types.ts';
import { plan } from '../../../src/reconcile/plan.ts';
import { Reconciler } from '../../../src/reconcile/reconciler.ts';
import { ProgrammedState } from '../../../src/reconcile/state.ts';

const CAPACITY: Capacity = { services: 64, slots: 256, backends: 64, serviceIds: 64, backendIds: 64 };
const VIP: Frontend = { family: 4, address: '10.96.0.10', port: 80, protocol: 'TCP' };

const pod = (n: number): Backend => ({ family: 4, address: `10.244.0.${n}`, port: 8080, protocol: 'TCP' });

function frontend(backends: Backend[], scheduling?: Scheduling, f: Frontend = VIP, name = 'web'): DesiredFrontend {
  return { frontend: f, service: { namespace: 'default', name }, portName: '', backends, ...(scheduling ? { scheduling } : {}) };
}

/** The backend address at each position of a service's table, through its slots. */
function tableBackends(maps: MemoryMaps, f: Frontend = VIP): string[] | undefined {
  const dump = maps.dump();
  const svc = dump.services.find((s) => s.frontend.address === f.address && s.frontend.port === f.port)!;
  const table = maps.table(svc.entry.serviceId);
  if (!table) return undefined;
  return [...table].map((slot) => {
    const id = dump.slots.find((s) => s.serviceId === svc.entry.serviceId && s.slot === slot)!.backendId;
    return dump.backends.find((b) => b.id === id)!.backend.address;
  });
}

test('a wrr service gets its table after its slots and before its entry, weighted by address', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  const d = frontend([pod(1), pod(2)], { scheduler: 'wrr', weights: { '10.244.0.1': 3 } });
  const kinds = plan([d], r.state, CAPACITY).changes[0]!.ops.map((o) => o.kind);
  assert.ok(
    kinds.lastIndexOf('put-slot') < kinds.indexOf('put-table') && kinds.indexOf('put-table') < kinds.indexOf('put-service'),
    kinds.join(),
  );
  r.reconcile([d]);
  assert.equal(tableBackends(maps), ['10.244.0.1', '10.244.0.1', '10.244.0.2', '10.244.0.1']);
  assert.is(maps.dump().services[0]!.entry.scheduler, Schedulers.wrr);
  assert.is(serviceViews(maps, { frontends: [d], problems: [] })[0]!.frontends[0]!.scheduler, 'wrr', 'socklb services shows it');
  assert.is(r.reconcile([d]).writes, 0, 'the same table again writes nothing');
});

test('a wlc service’s table gives each slot’s weight by address, then the weighted sequence; lc has none', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  const wlc = (weights: Record<string, number>) => frontend([pod(1), pod(2)], { scheduler: 'wlc', weights });
  r.reconcile([wlc({ '10.244.0.2': 3 })]);
  const serviceId = maps.dump().services[0]!.entry.serviceId;
  const slotOf = (address: string) =>
    maps.dump().slots.find((s) => maps.dump().backends.find((b) => b.id === s.backendId)!.backend.address === address)!.slot;
  const table = [...maps.table(serviceId)!];
  // Positions 0 and 1: weight + 1 of slots 1 and 2; then the 3:1 sequence, in slot numbers.
  assert.is(table[slotOf('10.244.0.2') - 1], 4);
  assert.is(table[slotOf('10.244.0.1') - 1], 2);
  const sequence = table.slice(2);
  assert.equal([sequence.filter((slot) => slot === slotOf('10.244.0.2')).length, sequence.length], [3, 4]);
  assert.is(maps.dump().services[0]!.entry.scheduler, Schedulers.wlc);
  assert.is(r.reconcile([wlc({ '10.244.0.2': 3 })]).writes, 0, 'the same weights again write nothing');
  r.reconcile([wlc({ '10.244.0.2': 1 })]);
  assert.equal([...maps.table(serviceId)!].slice(0, 2), [2, 2], 'a weight change rewrites the table');
  r.reconcile([frontend([pod(1), pod(2)], { scheduler: 'lc' })]);
  assert.is(maps.table(serviceId), undefined);
  assert.is(maps.dump().services[0]!.entry.scheduler, Schedulers.lc);
});

test('maglev tables follow the backends by name whatever their slots, and the node default applies', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps, { defaults: { scheduler: 'maglev', maglevTableSize: 251 } });
  r.reconcile([frontend([pod(1), pod(2), pod(3)])]);
  const before = tableBackends(maps)!;
  assert.is(before.length, 251);
  // pod 2 goes: pod 3 moves into its slot; positions that named pods 1 and 3 keep naming them.
  r.reconcile([frontend([pod(1), pod(3)])]);
  const after = tableBackends(maps)!;
  const kept = before.filter((x, i) => x !== '10.244.0.2' && after[i] === x).length;
  const stayed = before.filter((x) => x !== '10.244.0.2').length;
  assert.ok(kept >= stayed * 0.9, `${kept} of ${stayed}`);
  assert.ok(!after.includes('10.244.0.2'));
});

test('switching to random deletes the table after the entry stops asking for it; removal deletes it too', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(1), pod(2)], { scheduler: 'maglev', maglevTableSize: 251 })]);
  const kinds = plan([frontend([pod(1), pod(2)])], r.state, CAPACITY).changes[0]!.ops.map((o) => o.kind);
  assert.equal(kinds, ['put-service', 'delete-table']);
  r.reconcile([frontend([pod(1), pod(2)])]);
  assert.is(tableBackends(maps), undefined);
  r.reconcile([frontend([pod(1), pod(2)], { scheduler: 'wrr' })]);
  assert.ok(tableBackends(maps));
  r.reconcile([]);
  assert.equal(r.state.tables.size, 0);
  assert.is(maps.table(1), undefined);
});

test('beyond the table capacity a service is programmed without a table, with a problem naming it', () => {
  const capacity = { ...CAPACITY, tables: 1, tablePositions: 300 };
  const maps = new MemoryMaps(capacity);
  const r = new Reconciler(maps);
  const maglev: Scheduling = { scheduler: 'maglev', maglevTableSize: 251 };
  const other: Frontend = { ...VIP, address: '10.96.0.11' };
  const result = r.reconcile([frontend([pod(1)], maglev), frontend([pod(2)], maglev, other, 'other')]);
  assert.equal(
    result.problems.map((p) => [p.service.name, p.code]),
    [['other', 'SOCKLB_ERR_MAP_FULL']],
  );
  assert.match(result.problems[0]!.message, /no room for a maglev table of 251 positions/);
  assert.is(tableBackends(maps, other), undefined, 'the kernel balances it over its slots');
  assert.is(maps.dump().services.find((s) => s.frontend.address === other.address)!.entry.scheduler, Schedulers.maglev);
  // A bigger table than the positions left is refused the same way.
  const big = r.reconcile([frontend([pod(1)], { scheduler: 'maglev', maglevTableSize: 509 })]);
  assert.is(big.problems.length, 1);
});

test('a restarted agent rewrites tables it cannot read back, and then writes nothing', () => {
  const maps = new MemoryMaps(CAPACITY);
  const d = [frontend([pod(1), pod(2)], { scheduler: 'wrr', weights: { '10.244.0.2': 2 } })];
  new Reconciler(maps).reconcile(d);
  const restarted = new Reconciler(maps);
  assert.equal([...restarted.state.tables.values()], ['?']);
  const kinds = plan(d, restarted.state, CAPACITY).changes.flatMap((c) => c.ops.map((o) => o.kind));
  assert.equal(kinds, ['put-table']);
  restarted.reconcile(d);
  assert.is(restarted.reconcile(d).writes, 0);
  assert.ok(ProgrammedState.fromDump(maps.dump()).tables.has(1));
});

test.run();
