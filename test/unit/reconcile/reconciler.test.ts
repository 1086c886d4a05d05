import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Capacity, type DatapathMaps, MemoryMaps } from '../../../src/datapath/maps.ts';
import type { Backend, DesiredFrontend, Frontend } from '../../../src/model/types.ts';
import { plan } from '../../../src/reconcile/plan.ts';
import { Reconciler } from '../../../src/reconcile/reconciler.ts';

const CAPACITY: Capacity = { services: 64, slots: 256, backends: 64, serviceIds: 64, backendIds: 64 };
const VIP: Frontend = { family: 4, address: '10.96.0.10', port: 80, protocol: 'TCP' };

function pod(n: number, port = 8080): Backend {
  return { family: 4, address: `10.244.0.${n}`, port, protocol: 'TCP' };
}

function frontend(backends: Backend[], f: Frontend = VIP, name = 'web'): DesiredFrontend {
  return { frontend: f, service: { namespace: 'default', name }, portName: '', backends };
}

/** The backends the datapath may pick for a frontend, read back from the maps. */
function picks(maps: DatapathMaps, f: Frontend): string[] | undefined {
  const dump = maps.dump();
  const svc = dump.services.find(
    (s) => s.frontend.address === f.address && s.frontend.port === f.port && s.frontend.protocol === f.protocol,
  );
  if (!svc) return undefined;
  const out: string[] = [];
  for (let slot = 1; slot <= svc.entry.backendCount; slot++) {
    const s = dump.slots.find((x) => x.serviceId === svc.entry.serviceId && x.slot === slot);
    const b = s && dump.backends.find((x) => x.id === s.backendId);
    out.push(b ? `${b.backend.address}:${b.backend.port}` : `<missing slot ${slot}>`);
  }
  return out.sort();
}

test('a new service is written backends first, service entry last, and reads back', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  const p = plan([frontend([pod(11), pod(12), pod(13)])], r.state, CAPACITY);
  const kinds = p.changes[0]!.ops.map((o) => o.kind);
  assert.equal(kinds.lastIndexOf('put-backend') < kinds.indexOf('put-slot'), true);
  assert.is(kinds.at(-1), 'put-service');
  r.reconcile([frontend([pod(11), pod(12), pod(13)])]);
  assert.equal(picks(maps, VIP), ['10.244.0.11:8080', '10.244.0.12:8080', '10.244.0.13:8080']);
});

test('applying the same table twice writes nothing the second time', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  const table = [frontend([pod(11), pod(12)]), frontend([pod(21)], { ...VIP, protocol: 'UDP', port: 53 }, 'dns')];
  assert.ok(r.reconcile(table).writes > 0);
  assert.is(r.reconcile(table).writes, 0);
});

test('changing one backend among many writes only that backend and its slot', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  const before = Array.from({ length: 20 }, (_, i) => pod(10 + i));
  r.reconcile([frontend(before)]);
  const after = [...before.slice(0, 7), pod(99), ...before.slice(8)];
  const p = plan([frontend(after)], r.state, CAPACITY);
  const ops = [...p.changes.flatMap((c) => c.ops), ...p.backendDeletes].map((o) => o.kind);
  assert.equal(ops, ['reset-backend-counters', 'put-backend', 'put-slot', 'delete-backend']);
  const result = r.reconcile([frontend(after)]);
  assert.equal(result.removedBackends, [pod(17)]);
  assert.equal(picks(maps, VIP), after.map((b) => `${b.address}:${b.port}`).sort());
});

test('removing a backend moves the last slot into its place before shrinking the count', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(11), pod(12), pod(13)])]);
  const p = plan([frontend([pod(12), pod(13)])], r.state, CAPACITY);
  assert.equal(
    p.changes[0]!.ops.map((o) => o.kind),
    ['put-slot', 'put-service', 'delete-slot'],
  );
  assert.equal(
    p.backendDeletes.map((o) => o.kind),
    ['delete-backend'],
  );
});

test('a removed service loses its entry before its slots, and its backends last', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(11), pod(12)])]);
  const result = r.reconcile([]);
  assert.is(result.removedBackends.length, 2);
  assert.equal(maps.dump(), { services: [], slots: [], backends: [] });
});

test('a service whose endpoints all go away stays programmed with zero backends', () => {
  const maps = new MemoryMaps(CAPACITY);
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(11)])]);
  r.reconcile([frontend([])]);
  assert.equal(picks(maps, VIP), []);
});

/** Wraps maps so a check runs after every single write, as the datapath would see it. */
function observed(maps: MemoryMaps, check: () => void): DatapathMaps {
  return new Proxy(maps, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const out = value.apply(target, args);
        if (String(prop).startsWith('put') || String(prop).startsWith('delete')) check();
        return out;
      };
    },
  });
}

test('replacing every backend one by one never shows a missing, removed or empty slot', () => {
  const inner = new MemoryMaps(CAPACITY);
  let allowed = new Set<string>();
  const maps = observed(inner, () => {
    const seen = picks(inner, VIP);
    if (seen === undefined) return;
    assert.ok(seen.length > 0, 'service seen with zero backends');
    for (const b of seen) assert.ok(allowed.has(b), `datapath could pick ${b}`);
  });
  const r = new Reconciler(maps);
  let current = [pod(11), pod(12), pod(13)];
  allowed = new Set(current.map((b) => `${b.address}:${b.port}`));
  r.reconcile([frontend(current)]);
  for (let i = 0; i < 3; i++) {
    const next = [...current.slice(1), pod(50 + i)];
    // During the change either the old or the new set is fine; nothing else is.
    allowed = new Set([...current, ...next].map((b) => `${b.address}:${b.port}`));
    r.reconcile([frontend(next)]);
    current = next;
  }
  assert.equal(picks(inner, VIP), ['10.244.0.50:8080', '10.244.0.51:8080', '10.244.0.52:8080']);
});

test('a restarted reconciler adopts what the maps hold and writes nothing for the same table', () => {
  const maps = new MemoryMaps(CAPACITY);
  const table = [frontend([pod(11), pod(12)]), frontend([pod(11)], { ...VIP, port: 443 }, 'tls')];
  new Reconciler(maps).reconcile(table);
  const restarted = new Reconciler(maps);
  assert.is(restarted.reconcile(table).writes, 0);
});

test('a service that does not fit is reported; the others, and what it had, stay programmed', () => {
  const small: Capacity = { ...CAPACITY, slots: 4 };
  const maps = new MemoryMaps(small);
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(11), pod(12)])]);
  const big = frontend([pod(21), pod(22), pod(23)], { ...VIP, port: 81 }, 'big');
  const small2 = frontend([pod(31)], { ...VIP, port: 82 }, 'small');
  const result = r.reconcile([frontend([pod(11), pod(12)]), big, small2]);
  assert.is(result.problems.length, 1);
  assert.is(result.problems[0]!.code, 'SOCKLB_ERR_MAP_FULL');
  assert.equal(result.problems[0]!.service, { namespace: 'default', name: 'big' });
  assert.equal(picks(maps, VIP), ['10.244.0.11:8080', '10.244.0.12:8080']);
  assert.equal(picks(maps, { ...VIP, port: 82 }), ['10.244.0.31:8080']);
  assert.is(picks(maps, { ...VIP, port: 81 }), undefined);
});

test('a map write that fails midway leaves the service as it was and is retried next time', () => {
  const inner = new MemoryMaps(CAPACITY);
  let failNextSlot = false;
  const maps = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'putSlot') {
        return (...args: unknown[]) => {
          if (failNextSlot) {
            failNextSlot = false;
            throw Object.assign(new Error('boom'), { code: 'EIO' });
          }
          return value.apply(target, args);
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(11)])]);
  failNextSlot = true;
  const failed = r.reconcile([frontend([pod(11), pod(12)])]);
  assert.is(failed.problems[0]!.code, 'SOCKLB_ERR_BPF');
  assert.equal(picks(inner, VIP), ['10.244.0.11:8080']);
  r.reconcile([frontend([pod(11), pod(12)])]);
  assert.equal(picks(inner, VIP), ['10.244.0.11:8080', '10.244.0.12:8080']);
});

test('slots left without a service entry by an interrupted apply are cleaned up', () => {
  const maps = new MemoryMaps(CAPACITY);
  maps.putBackend(7, pod(70));
  maps.putSlot({ serviceId: 5, slot: 1, backendId: 7 });
  const r = new Reconciler(maps);
  r.reconcile([frontend([pod(11)])]);
  const dump = maps.dump();
  assert.is(dump.slots.filter((s) => s.serviceId === 5).length, 0);
  assert.is(
    dump.backends.find((b) => b.id === 7),
    undefined,
  );
});

test.run();
