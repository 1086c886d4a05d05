// Maglev in XDP across nodes: two XDP programs with their own maps (two "nodes"), programmed by the
// real reconciler with the same LoadBalancer Service but different backend ids and slot orders, pick
// the same backend for every flow: the 5-tuple hash and the Maglev table agree by backend name.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../src/bpf/binding.ts';
import { MapNames } from '../../src/datapath/abi.ts';
import { FrontendFilter } from '../../src/datapath/frontend-filter.ts';
import { KernelMaps, type ServiceMapSet } from '../../src/datapath/kernel-maps.ts';
import type { Scheduling } from '../../src/model/scheduler.ts';
import type { Backend, DesiredFrontend } from '../../src/model/types.ts';
import { Reconciler } from '../../src/reconcile/reconciler.ts';
import { packet, TCP_FLAGS } from '../support/packets.ts';
import { MAC, XDP, XdpFixture, xdpContextMissing } from '../support/xdp-fixture.ts';

/** Kernels before 5.15 cannot run packet tests (see xdpContextMissing): skipped, saying why. */
const missing = xdpContextMissing();
const it = missing ? test.skip : test;
if (missing) console.log(`xdp-maglev: skipped: ${missing}`);

const LB_IP = '203.0.113.5';
const CAPACITY = { services: 32, slots: 256, backends: 32, serviceIds: 64, backendIds: 64 };
// Pods on node B's range (10.244.1.0/24 routes to node B on int0): every pick is redirected there.
const PODS = ['10.244.1.11', '10.244.1.12', '10.244.1.13', '10.244.1.14', '10.244.1.15'];
const FLOWS = 300;

const backend = (address: string): Backend => ({ family: 4, address, port: 8080, protocol: 'TCP' });

function frontend(addresses: string[], scheduling: Scheduling): DesiredFrontend {
  return {
    frontend: { family: 4, address: LB_IP, port: 80, protocol: 'TCP', scope: 'external' },
    service: { namespace: 'default', name: 'lb' },
    portName: '',
    kind: 'LoadBalancer',
    backends: addresses.map(backend),
    scheduling,
  };
}

/**
 * A node: the XDP object in its namespace, programmed through the reconciler like the agent's maps
 * (the socket hooks' frontend filter, which XDP does not read, is a scratch array).
 */
function node(): { fx: XdpFixture; reconciler: Reconciler; filter: BpfMap } {
  const fx = XdpFixture.create({ sizes: { [MapNames.tables]: CAPACITY.serviceIds } });
  fx.config({ snat4: '10.1.0.1', portMin: 40000, portMax: 40999 });
  const maps = new Proxy({} as ServiceMapSet, { get: (_, name: string) => fx.map(name) });
  const filter = BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, name: 'slb_test_filter' });
  return { fx, filter, reconciler: new Reconciler(new KernelMaps(maps, CAPACITY, new FrontendFilter(filter, 1))) };
}

/** The backend address each of FLOWS SYNs from distinct clients and ports was sent to. */
function picks(fx: XdpFixture, round: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < FLOWS; i++) {
    const client = `198.51.100.${10 + (i % 40)}`;
    const frame = packet(
      { src: MAC.client, dst: MAC.ext0 },
      { v: 4, src: client, dst: LB_IP, ttl: 64 },
      { tcp: { sport: 20000 + round * 1000 + i, dport: 80, flags: TCP_FLAGS.SYN, seq: 1, ack: 0 } },
    );
    const r = fx.run(frame);
    assert.is(r.retval, XDP.REDIRECT, `flow ${i}`);
    out.push(r.data.subarray(30, 34).join('.'));
  }
  return out;
}

/** The LoadBalancer frontend's slots as `slot=backend id:address`. */
function slotOrder(r: Reconciler): string {
  const svc = [...r.state.services.values()].find((x) => x.frontend.port === 80)!;
  return [...svc.slots]
    .sort(([x], [y]) => x - y)
    .map(([slot, id]) => `${slot}=${id}:${r.state.backends.get(id)?.address}`)
    .join(',');
}

let a: ReturnType<typeof node>;
let b: ReturnType<typeof node>;

test.before(() => {
  if (missing) return;
  a = node();
  b = node();
});

test.after(() => {
  for (const n of [a, b]) {
    n?.fx.close();
    n?.filter.close();
  }
});

it('maglev: two nodes with different backend ids and slots pick the same backend for every flow', () => {
  const maglev: Scheduling = { scheduler: 'maglev', maglevTableSize: 251 };
  a.reconciler.reconcile([frontend(PODS, maglev)]);
  // Node B learned the backends in another order (other ids, other slots) and once served another
  // service: nothing about its maps matches node A's but the backends themselves.
  b.reconciler.reconcile([{ ...frontend(['10.244.1.99'], maglev), frontend: { ...frontend([], maglev).frontend, port: 81 } }]);
  b.reconciler.reconcile([frontend([...PODS].reverse().slice(0, 2), maglev)]);
  b.reconciler.reconcile([frontend([...PODS].reverse(), maglev)]);
  assert.is.not(slotOrder(a.reconciler), slotOrder(b.reconciler));

  const onA = picks(a.fx, 0);
  const onB = picks(b.fx, 0);
  assert.equal(onA, onB);
  const used = new Set(onA);
  assert.ok(used.size === PODS.length, `flows reached ${[...used].join(', ')}`);
});

it('random, as a control: the same two nodes disagree on many flows', () => {
  a.reconciler.reconcile([frontend(PODS, { scheduler: 'random' })]);
  b.reconciler.reconcile([frontend([...PODS].reverse(), { scheduler: 'random' })]);
  const onA = picks(a.fx, 1);
  const onB = picks(b.fx, 1);
  const differ = onA.filter((x, i) => x !== onB[i]).length;
  assert.ok(differ > FLOWS / 2, `${differ} of ${FLOWS} flows differ`);
});

it('maglev: without one backend the other node sends a flow elsewhere only if it was on that backend', () => {
  const maglev: Scheduling = { scheduler: 'maglev', maglevTableSize: 4093 };
  a.reconciler.reconcile([frontend(PODS, maglev)]);
  b.reconciler.reconcile([
    frontend(
      PODS.filter((p) => p !== PODS[2]),
      maglev,
    ),
  ]);
  // The same new flows through both: node B's table lacks PODS[2].
  const full = picks(a.fx, 2);
  const less = picks(b.fx, 2);
  assert.ok(!less.includes(PODS[2]!));
  const stayed = full.filter((x) => x !== PODS[2]).length;
  const kept = full.filter((x, i) => x !== PODS[2] && less[i] === x).length;
  assert.ok(kept >= stayed * 0.95, `${kept} of ${stayed} flows kept their backend`);
});

test.run();
