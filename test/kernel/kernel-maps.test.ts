import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SOCK_OBJECT } from '../../src/agent/datapath.ts';
import { planDatapath, probeFeatures } from '../../src/agent/features.ts';
import { BpfObject } from '../../src/bpf/binding.ts';
import { ABI_VERSION, encode, Layouts, MapNames, SOCK_MAPS, u32Bytes } from '../../src/datapath/abi.ts';
import { FrontendFilter, filterBit } from '../../src/datapath/frontend-filter.ts';
import { KernelMaps, type ServiceMapSet } from '../../src/datapath/kernel-maps.ts';
import type { DatapathMaps } from '../../src/datapath/maps.ts';
import { CONTRACT_CAPACITY, datapathMapsContract } from '../contract/datapath-maps.ts';

// The real sock.bpf.o maps, loaded but attached nowhere and pinned nowhere.
const REFUSE_ERRNO = planDatapath(probeFeatures()).refuseErrno;
const kernel = suite<{ maps: DatapathMaps; object?: BpfObject; set?: ServiceMapSet; filter?: FrontendFilter }>('KernelMaps contract');

kernel.before.each((ctx) => {
  const object = BpfObject.open(SOCK_OBJECT);
  const c = CONTRACT_CAPACITY;
  const sizes: Record<string, number> = {
    lb4_services_v2: c.services,
    lb6_services_v2: c.services,
    lb_slots_v1: c.slots,
    lb4_backends_v2: c.backends,
    lb6_backends_v2: c.backends,
    lb4_reverse_v1: 16,
    lb6_reverse_v1: 16,
    lb_svc_stats_v2: c.serviceIds,
    lb_be_stats_v2: c.backendIds,
    lb_affinity_v1: 16,
  };
  for (const [name, n] of Object.entries(sizes)) object.setMaxEntries(name, n);
  // As the agent loads it: no bpf_set_retval call where the kernel lacks the helper (< 5.18).
  object.setInitialValue('.rodata', encode(Layouts.config, { abi_version: ABI_VERSION, refuse_errno: REFUSE_ERRNO }));
  object.load();
  const set = {} as ServiceMapSet;
  for (const name of SOCK_MAPS) set[name] = object.map(name);
  ctx.object = object;
  ctx.set = set;
  ctx.filter = new FrontendFilter(set[MapNames.frontendFilter], 1);
  ctx.maps = new KernelMaps(set, CONTRACT_CAPACITY, ctx.filter);
});

kernel.after.each((ctx) => {
  for (const m of Object.values(ctx.set ?? {})) m.close();
  ctx.object?.close();
});

datapathMapsContract(kernel);

kernel('a batch of entries sets the filter bits of the frontends that went in, and only theirs', ({ maps, set, filter }) => {
  const entries = Array.from({ length: CONTRACT_CAPACITY.services + 2 }, (_, i) => ({
    frontend: { family: 4 as const, address: `10.96.1.${i + 1}`, port: 80, protocol: 'TCP' as const },
    entry: { serviceId: i + 1, backendCount: 0, flags: 0, affinityTimeout: 0 },
  }));
  assert.is(maps.putServices(entries), CONTRACT_CAPACITY.services);
  let want = 0n;
  for (const { frontend } of entries.slice(0, CONTRACT_CAPACITY.services)) want |= 1n << BigInt(filterBit(frontend, 1).bit);
  const word = set![MapNames.frontendFilter].lookup(Buffer.alloc(4))!;
  assert.is(word.readBigUInt64LE(0), want);
  assert.is(filter!.setBits, [...want.toString(2)].filter((b) => b === '1').length);
});
kernel('counters made empty at this start are reset only once an id was handed out or adopted', ({ maps, set, filter }) => {
  // What the datapath does to an id's counters once a slot names it: counts.
  const count = (kind: 'services' | 'backends', id: number, connects: bigint) =>
    kind === 'services'
      ? set![MapNames.serviceStats].update(u32Bytes(id), encode(Layouts.serviceStats, { connects, refused: 1n }))
      : set![MapNames.backendStats].update(u32Bytes(id), encode(Layouts.backendStats, { connects }));
  // An earlier agent's entries, adopted below: service 2 with backend 3 in its slot.
  maps.putBackend(3, { family: 4, address: '10.244.0.3', port: 80, protocol: 'TCP' });
  maps.putSlot({ serviceId: 2, slot: 1, backendId: 3 });
  maps.putService(
    { family: 4, address: '10.96.0.2', port: 80, protocol: 'TCP' },
    { serviceId: 2, backendCount: 1, flags: 0, affinityTimeout: 0 },
  );
  count('services', 2, 9n);
  count('backends', 3, 9n);
  const fresh = new KernelMaps(set!, CONTRACT_CAPACITY, filter!, { services: true, backends: true });
  fresh.dump();
  fresh.resetServiceCountersBatch([2, 5]);
  fresh.resetBackendCountersBatch([3, 6]);
  assert.equal(fresh.serviceCounters(2), { connects: 0n, refused: 0n }, 'an adopted service id is reset');
  assert.is(fresh.backendConnects(3), 0n, 'an adopted backend id is reset');
  // Ids handed out count, are freed, and are handed out again: reset, one by one and in batches.
  count('services', 5, 4n);
  count('backends', 6, 4n);
  fresh.resetServiceCounters(5);
  fresh.resetBackendCountersBatch([6, 7]);
  assert.equal(fresh.serviceCounters(5), { connects: 0n, refused: 0n });
  assert.is(fresh.backendConnects(6), 0n);
  // An id above every one handed out is known zero: nothing is written (seen by a count put there behind the agent's back).
  count('backends', 12, 1n);
  assert.is(fresh.resetBackendCountersBatch([12]), 1);
  assert.is(fresh.backendConnects(12), 1n);
  // Without that knowledge every reset writes.
  maps.resetBackendCounters(12);
  assert.is(maps.backendConnects(12), 0n);
});

kernel.run();
