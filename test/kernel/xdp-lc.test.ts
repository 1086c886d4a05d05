// The least-connection schedulers in XDP, packet by packet through BPF_PROG_TEST_RUN: a flow of an
// lc service counts on its backend (lb_be_flows_v1) from the SYN that picks it until the first FIN
// or RST of either side (the client's seen in XDP, the backend's in XDP's reply path or, for a
// local backend, in tc egress), exactly once whatever follows; an entry deleted while counted
// (reopened, backend gone) takes its count along; lc sends new flows away from a backend that
// holds many; and the agent's recount puts right what LRU eviction took unseen.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { recountFlows } from '../../src/agent/flow-counts.ts';
import { BackendFlags, CtFlags, MapNames, Schedulers } from '../../src/datapath/abi.ts';
import { type Eth, PROTO, packet, TCP_FLAGS } from '../support/packets.ts';
import { XdpFixture as Fixture, MAC, XDP, type XdpFixture, xdpContextMissing } from '../support/xdp-fixture.ts';

const missing = xdpContextMissing();
const it = missing ? test.skip : test;
if (missing) test(`skipped on this kernel: ${missing}`, () => {});

const CLIENT = '198.51.100.10';
const NODE = '192.0.2.1';
const SNAT = '10.1.0.1';
const NODE_B = '10.1.0.2';
const REMOTES = ['10.244.1.5', '10.244.1.6', '10.244.1.7'];
const LOCAL = '10.244.0.9';
const CLIENT6 = '2001:db8:c::10';
const NODE6 = '2001:db8:1::1';
const SNAT6 = 'fd00:1::1';
const REMOTE6 = 'fd00:244:1::5';
const LC_PORT = 30080;
const RANDOM_PORT = 30081;
const LOCAL_PORT = 30082;
const UDP_PORT = 30053;
const BPORT = 8080;

const fromClient: Eth = { src: MAC.client, dst: MAC.ext0 };
const fromNodeB: Eth = { src: MAC.nodeB, dst: MAC.int0 };
const { SYN, ACK, FIN, RST } = TCP_FLAGS;

let fx: XdpFixture;

/** A TCP flow from the client's port `sport` to `dport`; the backend side is read from its entry. */
function flow(sport: number, dport = LC_PORT, v6 = false) {
  const client = v6 ? CLIENT6 : CLIENT;
  const node = v6 ? NODE6 : NODE;
  const ip = (src: string, dst: string) => (v6 ? { v: 6 as const, src, dst, hopLimit: 64 } : { v: 4 as const, src, dst, ttl: 64 });
  const key = { saddr: client, daddr: node, sport, dport, proto: PROTO.TCP };
  const entry = () => fx.flow(key);
  return {
    key,
    entry,
    backendId: () => Number(entry()!.backend_id),
    client: (flags: number) => fx.run(packet(fromClient, ip(client, node), { tcp: { sport, dport, flags, seq: 1000, ack: 1 } })),
    /** The backend's packet to the node's SNAT address and port (XDP's reply path). */
    backend: (flags: number) => {
      const ct = entry()!;
      const src = String(ct.backend_address);
      const to = { sport: BPORT, dport: Number(ct.nat_port), flags, seq: 5000, ack: 1 };
      return fx.run(packet(fromNodeB, ip(src, v6 ? SNAT6 : SNAT), { tcp: to }), 'int0');
    },
    /** A local backend's packet to the client, as it leaves the node (tc egress). */
    localBackend: (flags: number) =>
      fx.runTc(
        packet({ src: MAC.int0, dst: MAC.client }, ip(LOCAL, client), { tcp: { sport: BPORT, dport: sport, flags, seq: 5000, ack: 1 } }),
      ),
  };
}

const openFlows = (ids = [1, 2, 3]) => ids.map((id) => fx.openFlows(id));

function lcFrontend(backends: number[]): void {
  fx.frontend({ serviceId: 1, address: NODE, port: LC_PORT, proto: PROTO.TCP, scheduler: Schedulers.lc, backends });
}

test.before(() => {
  if (missing) return;
  fx = Fixture.create();
  fx.config({ snat4: SNAT, snat6: SNAT6, portMin: 40000, portMax: 60000 });
  for (const [i, address] of REMOTES.entries()) fx.backend({ id: i + 1, address, port: BPORT, proto: PROTO.TCP, node: NODE_B });
  fx.backend({ id: 4, address: LOCAL, port: BPORT, proto: PROTO.TCP, flags: BackendFlags.local });
  fx.backend({ id: 5, address: REMOTES[0]!, port: 5353, proto: PROTO.UDP, node: NODE_B });
  fx.backend({ id: 6, address: REMOTE6, port: BPORT, proto: PROTO.TCP, node: 'fd00:1::2' });
  fx.frontend({ serviceId: 2, address: NODE, port: RANDOM_PORT, proto: PROTO.TCP, backends: [1] });
  fx.frontend({ serviceId: 3, address: NODE, port: LOCAL_PORT, proto: PROTO.TCP, scheduler: Schedulers.lc, backends: [4] });
  fx.frontend({ serviceId: 4, address: NODE, port: UDP_PORT, proto: PROTO.UDP, scheduler: Schedulers.lc, backends: [5] });
  fx.frontend({ serviceId: 5, address: NODE6, port: LC_PORT, proto: PROTO.TCP, scheduler: Schedulers.lc, backends: [6] });
});

test.after(() => fx?.close());

test.before.each(() => {
  if (missing) return;
  lcFrontend([1]);
  for (const name of [MapNames.lb4Ct, MapNames.lb4Rnat, MapNames.lb6Ct, MapNames.lb6Rnat]) {
    const m = fx.map(name);
    for (const [key] of [...m.entries()]) m.delete(key);
  }
  const flows = fx.map(MapNames.backendFlows);
  for (let id = 1; id <= 6; id++) flows.update(Buffer.from([id, 0, 0, 0]), Buffer.alloc(8));
});

it("a SYN counts its flow once; a retransmitted SYN and the handshake do not; the client's FIN takes it off once", () => {
  const f = flow(41001);
  assert.is(f.client(SYN).retval, XDP.REDIRECT);
  assert.equal(openFlows(), [1, 0, 0], 'the SYN counts');
  assert.is(Number(f.entry()!.flags) & CtFlags.counted, CtFlags.counted);
  assert.is(f.client(SYN).retval, XDP.REDIRECT, 'a retransmitted SYN is the same flow');
  f.backend(SYN | ACK);
  f.client(ACK);
  f.client(ACK);
  assert.equal(openFlows(), [1, 0, 0], 'still one');
  f.client(FIN | ACK);
  assert.equal(openFlows(), [0, 0, 0], "the client's FIN ends it");
  f.client(FIN | ACK);
  f.backend(FIN | ACK);
  f.client(ACK);
  f.client(RST);
  assert.equal(openFlows(), [0, 0, 0], 'a retransmitted FIN, the backend FIN and a late RST take nothing more');
});

it("the backend's FIN or RST, turned back in XDP, takes the flow off once", () => {
  const a = flow(41010);
  const b = flow(41011);
  a.client(SYN);
  b.client(SYN);
  a.backend(SYN | ACK);
  b.backend(SYN | ACK);
  assert.equal(openFlows(), [2, 0, 0]);
  assert.is(a.backend(FIN | ACK).retval, XDP.REDIRECT);
  assert.equal(openFlows(), [1, 0, 0], "the backend's FIN");
  a.client(FIN | ACK);
  a.backend(FIN | ACK);
  assert.equal(openFlows(), [1, 0, 0], "the client's FIN after it takes nothing more");
  assert.is(b.backend(RST).retval, XDP.REDIRECT);
  b.backend(RST);
  assert.equal(openFlows(), [0, 0, 0], "the backend's RST, once");
});

it("a local backend's RST, seen by tc egress, takes the flow off", () => {
  const f = flow(41020, LOCAL_PORT);
  assert.is(f.client(SYN).retval, XDP.PASS, 'a local backend: DNAT and the stack');
  assert.is(fx.openFlows(4), 1);
  f.localBackend(SYN | ACK);
  assert.is(fx.openFlows(4), 1, 'the SYN-ACK takes nothing');
  f.localBackend(RST);
  f.localBackend(RST);
  assert.is(fx.openFlows(4), 0);
});

it('a counted entry deleted by the program takes its count: a reopened tuple, a backend gone', () => {
  const f = flow(41030);
  f.client(SYN);
  f.backend(SYN | ACK);
  f.client(ACK);
  f.backend(RST);
  assert.equal(openFlows(), [0, 0, 0]);
  assert.is(f.client(SYN).retval, XDP.REDIRECT, 'a new connection on the closed tuple');
  assert.equal(openFlows(), [1, 0, 0], 'counts once, as the new flow');

  const g = flow(41031);
  g.client(SYN);
  assert.equal(openFlows(), [2, 0, 0]);
  fx.removeBackend(1);
  fx.backend({ id: 2, address: REMOTES[1]!, port: BPORT, proto: PROTO.TCP, node: NODE_B });
  lcFrontend([2]);
  assert.is(g.client(ACK).retval, XDP.TX, 'its backend gone: the client gets a reset');
  assert.equal(openFlows(), [1, 0, 0], 'the deleted entry took its count');
  assert.is(f.client(SYN).retval, XDP.REDIRECT, 'a SYN on a flow whose backend is gone: balanced afresh');
  assert.equal(openFlows(), [0, 1, 0], 'the old count off, the new one on');
  fx.backend({ id: 1, address: REMOTES[0]!, port: BPORT, proto: PROTO.TCP, node: NODE_B });
});

it('only TCP flows of least-connection services count', () => {
  flow(41040, RANDOM_PORT).client(SYN);
  assert.is(fx.flow({ saddr: CLIENT, daddr: NODE, sport: 41040, dport: RANDOM_PORT, proto: PROTO.TCP })!.flags, CtFlags.snat);
  fx.run(
    packet(fromClient, { v: 4, src: CLIENT, dst: NODE, ttl: 64 }, { udp: { sport: 41041, dport: UDP_PORT, payload: Buffer.from('q') } }),
  );
  assert.equal([...openFlows(), fx.openFlows(5)], [0, 0, 0, 0]);
  flow(41042).client(RST);
  assert.equal(openFlows(), [0, 0, 0], "a stray RST's entry does not count");
});

it('lc sends new flows away from the backend that holds many, and closing them brings every count to 0', () => {
  const held = Array.from({ length: 20 }, (_, i) => flow(42000 + i));
  for (const f of held) f.client(SYN);
  assert.equal(openFlows(), [20, 0, 0], 'twenty on the only backend');
  lcFrontend([1, 2, 3]);
  // Ten: even all on one of the others leaves it below twenty (a tie would go to the first drawn).
  const fresh = Array.from({ length: 10 }, (_, i) => flow(43000 + i));
  for (const f of fresh) f.client(SYN);
  const to = fresh.map((f) => f.backendId());
  assert.ok(!to.includes(1), `none of the 10 goes to the busy backend: ${to.join(',')}`);
  const [busy, two, three] = openFlows();
  assert.equal([busy, two! + three!], [20, 10], `counted where they went: ${two} and ${three}`);
  for (const f of held) f.client(FIN | ACK);
  for (const f of fresh) f.backend(RST);
  assert.equal(openFlows(), [0, 0, 0]);
});

it('IPv6: the SYN counts, the backend FIN in XDP and the client RST take off, once each', () => {
  const a = flow(44001, LC_PORT, true);
  const b = flow(44002, LC_PORT, true);
  a.client(SYN);
  b.client(SYN);
  a.client(SYN);
  assert.is(fx.openFlows(6), 2);
  a.backend(FIN | ACK);
  a.client(FIN | ACK);
  assert.is(fx.openFlows(6), 1);
  b.client(RST);
  b.backend(RST);
  assert.is(fx.openFlows(6), 0);
});

it('an open entry the LRU evicts leaves a count no packet takes off; the recount puts it right', () => {
  const small = Fixture.create({ sizes: { [MapNames.lb4Ct]: 64 } });
  const prev = fx;
  try {
    fx = small;
    fx.config({ snat4: SNAT, portMin: 40000, portMax: 60000 });
    fx.backend({ id: 1, address: REMOTES[0]!, port: BPORT, proto: PROTO.TCP, node: NODE_B });
    lcFrontend([1]);
    const flows = Array.from({ length: 300 }, (_, i) => flow(45000 + i));
    for (const f of flows) f.client(SYN);
    const left = flows.filter((f) => f.entry());
    assert.ok(left.length < 300, `the 64-entry table evicted flows (${left.length} left)`);
    assert.is(fx.openFlows(1), 300, 'the count kept the evicted ones');
    const r = recountFlows({ ct4: fx.map(MapNames.lb4Ct), ct6: fx.map(MapNames.lb6Ct), flows: fx.map(MapNames.backendFlows) });
    assert.equal(r, { flows: left.length, corrected: 1 });
    assert.is(fx.openFlows(1), left.length, 'the count is the open entries');
    for (const f of left) f.client(RST);
    assert.is(fx.openFlows(1), 0, 'closing those left brings it to 0');
    assert.equal(recountFlows({ ct4: fx.map(MapNames.lb4Ct), ct6: fx.map(MapNames.lb6Ct), flows: fx.map(MapNames.backendFlows) }), {
      flows: 0,
      corrected: 0,
    });
  } finally {
    fx = prev;
    small.close();
  }
});

test.run();
