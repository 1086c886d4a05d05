// One contract for every DatapathMaps: the in-memory maps the unit tests use must behave as the
// kernel maps do, so what the unit tests prove holds for the real datapath.

import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Capacity, DatapathMaps } from '../../src/datapath/maps.ts';
import type { Backend, Frontend } from '../../src/model/types.ts';

export const CONTRACT_CAPACITY: Capacity = { services: 4, slots: 8, backends: 4, serviceIds: 16, backendIds: 16 };

const V4: Frontend = { family: 4, address: '10.96.0.10', port: 80, protocol: 'TCP' };
const V6: Frontend = { family: 6, address: 'fd00:10:96::a', port: 53, protocol: 'UDP' };
const B4: Backend = { family: 4, address: '10.244.0.11', port: 8080, protocol: 'TCP' };
const B6: Backend = { family: 6, address: 'fd00:10:244::b', port: 5353, protocol: 'UDP' };

export function datapathMapsContract(t: Test<{ maps: DatapathMaps }>): void {
  t('service entries of both families read back as written', ({ maps }) => {
    maps.putService(V4, { serviceId: 3, backendCount: 2, flags: 0, affinityTimeout: 0 });
    maps.putService(V6, { serviceId: 4, backendCount: 0, flags: 1, affinityTimeout: 10800 });
    const services = maps.dump().services.sort((a, b) => a.entry.serviceId - b.entry.serviceId);
    assert.equal(services, [
      { frontend: V4, entry: { serviceId: 3, backendCount: 2, flags: 0, affinityTimeout: 0 } },
      { frontend: V6, entry: { serviceId: 4, backendCount: 0, flags: 1, affinityTimeout: 10800 } },
    ]);
    maps.putService(V4, { serviceId: 3, backendCount: 1, flags: 0, affinityTimeout: 0 });
    assert.is(maps.dump().services.find((s) => s.frontend.family === 4)!.entry.backendCount, 1);
    maps.deleteService(V4);
    maps.deleteService(V6);
    assert.equal(maps.dump().services, []);
  });

  t('TCP and UDP on one address and port are distinct frontends', ({ maps }) => {
    maps.putService(V4, { serviceId: 1, backendCount: 1, flags: 0, affinityTimeout: 0 });
    maps.putService({ ...V4, protocol: 'UDP' }, { serviceId: 2, backendCount: 1, flags: 0, affinityTimeout: 0 });
    assert.is(maps.dump().services.length, 2);
    maps.deleteService(V4);
    assert.equal(
      maps.dump().services.map((s) => s.frontend.protocol),
      ['UDP'],
    );
    maps.deleteService({ ...V4, protocol: 'UDP' });
  });

  t('the entry for outside traffic is a frontend of its own; a local backend reads back local', ({ maps }) => {
    const external: Frontend = { ...V4, scope: 'external' };
    maps.putService(V4, { serviceId: 1, backendCount: 2, flags: 0, affinityTimeout: 0 });
    maps.putService(external, { serviceId: 2, backendCount: 1, flags: 0, affinityTimeout: 0 });
    maps.putBackend(1, { ...B4, local: true });
    const dump = maps.dump();
    assert.equal(
      dump.services.sort((a, b) => a.entry.serviceId - b.entry.serviceId).map((s) => s.frontend),
      [V4, external],
    );
    assert.equal(dump.backends, [{ id: 1, backend: { ...B4, local: true } }]);
    maps.deleteService(external);
    assert.equal(
      maps.dump().services.map((s) => s.frontend),
      [V4],
    );
    maps.deleteService(V4);
    maps.deleteBackend(1, 4);
  });

  t('slots and backends of both families read back as written and delete cleanly', ({ maps }) => {
    maps.putBackend(1, B4);
    maps.putBackend(2, B6);
    maps.putSlot({ serviceId: 3, slot: 1, backendId: 1 });
    maps.putSlot({ serviceId: 3, slot: 2, backendId: 2 });
    const dump = maps.dump();
    assert.equal(
      dump.backends.sort((a, b) => a.id - b.id),
      [
        { id: 1, backend: B4 },
        { id: 2, backend: B6 },
      ],
    );
    assert.equal(
      dump.slots.sort((a, b) => a.slot - b.slot),
      [
        { serviceId: 3, slot: 1, backendId: 1 },
        { serviceId: 3, slot: 2, backendId: 2 },
      ],
    );
    maps.deleteSlot(3, 1);
    maps.deleteSlot(3, 2);
    maps.deleteBackend(1, 4);
    maps.deleteBackend(2, 6);
    assert.equal(maps.dump(), { services: [], slots: [], backends: [] });
  });

  t('deleting what is not there is not an error', ({ maps }) => {
    maps.deleteService(V4);
    maps.deleteSlot(9, 9);
    maps.deleteBackend(9, 4);
  });

  t('a full map refuses a new entry with E2BIG and keeps what it holds', ({ maps }) => {
    for (let i = 1; i <= CONTRACT_CAPACITY.services; i++) {
      maps.putService({ ...V4, port: i }, { serviceId: i, backendCount: 0, flags: 0, affinityTimeout: 0 });
    }
    try {
      maps.putService({ ...V4, port: 999 }, { serviceId: 9, backendCount: 0, flags: 0, affinityTimeout: 0 });
      assert.unreachable('a full map took another entry');
    } catch (err) {
      assert.instance(err, Error);
      assert.is((err as { code?: string }).code, 'E2BIG');
    }
    // Overwriting an existing entry still works when the map is full.
    maps.putService({ ...V4, port: 1 }, { serviceId: 1, backendCount: 0, flags: 0, affinityTimeout: 0 });
    assert.is(maps.dump().services.length, CONTRACT_CAPACITY.services);
    for (let i = 1; i <= CONTRACT_CAPACITY.services; i++) maps.deleteService({ ...V4, port: i });
  });

  t('counters of a reset id read zero', ({ maps }) => {
    maps.resetServiceCounters(5);
    maps.resetBackendCounters(5);
    assert.equal(maps.serviceCounters(5), { connects: 0n, refused: 0n });
    assert.is(maps.backendConnects(5), 0n);
  });

  t('batches write what single writes do, and a full map stops a batch at the entry that does not fit', ({ maps }) => {
    assert.is(
      maps.putBackends([
        { id: 1, backend: B4 },
        { id: 2, backend: B6 },
        { id: 3, backend: { ...B4, port: 9090 } },
      ]),
      3,
    );
    const slots = Array.from({ length: CONTRACT_CAPACITY.slots + 2 }, (_, i) => ({ serviceId: 3, slot: i + 1, backendId: 1 + (i % 3) }));
    assert.is(maps.putSlots(slots), CONTRACT_CAPACITY.slots);
    const entries = Array.from({ length: CONTRACT_CAPACITY.services + 1 }, (_, i) => ({
      frontend: { ...V4, port: i + 1 },
      entry: { serviceId: i + 1, backendCount: 2, flags: 0, affinityTimeout: 0 },
    }));
    assert.is(
      maps.putServices([{ frontend: V6, entry: { serviceId: 9, backendCount: 1, flags: 0, affinityTimeout: 0 } }, ...entries]),
      CONTRACT_CAPACITY.services + 1,
    );
    assert.is(maps.resetServiceCountersBatch([1, 2, 3]), 3);
    assert.is(maps.resetBackendCountersBatch([1, 2, 3]), 3);
    const dump = maps.dump();
    const byJson = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();
    assert.equal(byJson(dump.slots), byJson(slots.slice(0, CONTRACT_CAPACITY.slots)));
    assert.equal(
      byJson(dump.services),
      byJson([
        { frontend: V6, entry: { serviceId: 9, backendCount: 1, flags: 0, affinityTimeout: 0 } },
        ...entries.slice(0, CONTRACT_CAPACITY.services),
      ]),
    );
    assert.equal(
      byJson(dump.backends),
      byJson([
        { id: 1, backend: B4 },
        { id: 2, backend: B6 },
        { id: 3, backend: { ...B4, port: 9090 } },
      ]),
    );
    assert.equal(maps.serviceCounters(2), { connects: 0n, refused: 0n });
    for (const { frontend } of dump.services) maps.deleteService(frontend);
    for (const s of dump.slots) maps.deleteSlot(s.serviceId, s.slot);
    for (const b of dump.backends) maps.deleteBackend(b.id, b.backend.family);
  });
}
