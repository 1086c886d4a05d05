// TCP state and lifetimes in the XDP connection and reverse NAT tables, packet by packet through
// BPF_PROG_TEST_RUN: what each direction's entry records (SYN, established, FIN, RST, last seen),
// when a SNAT port held by a flow that is over goes to a new flow (closed past its grace, or idle
// past its lifetime), that it never goes while the flow lives, and that a SYN on a closed tuple
// starts a new flow. A one-port NAT range makes "the port is free" and "the port is taken" visible
// as a forwarded or dropped SYN. Lifetimes come from the node config map: a long one where a test
// asserts that nothing expires, 1 ms and a short sleep where it asserts that something has.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CtState } from '../../src/datapath/abi.ts';
import { type Eth, PROTO, packet, TCP_FLAGS } from '../support/packets.ts';
import { XdpFixture as Fixture, hex, MAC, XDP, type XdpFixture, type XdpReason, xdpContextMissing } from '../support/xdp-fixture.ts';

/** Kernels before 5.15 cannot run these (see xdpContextMissing): every test is skipped, saying why. */
const missing = xdpContextMissing();
const it = missing ? test.skip : test;
if (missing) test(`skipped on this kernel: ${missing}`, () => {});

const CLIENT = '198.51.100.10';
const NODE = '192.0.2.1';
const SNAT = '10.1.0.1';
const NODE_B = '10.1.0.2';
const REMOTE = '10.244.1.5';
const CLIENT6 = '2001:db8:c::10';
const NODE6 = '2001:db8:1::1';
const SNAT6 = 'fd00:1::1';
const REMOTE6 = 'fd00:244:1::5';
/** The one SNAT port every test draws from. */
const PORT = 47000;
/** Long enough that nothing expires while a test runs, however slow the machine. */
const LONG_MS = 600_000;

const fromClient: Eth = { src: MAC.client, dst: MAC.ext0 };
const toClient: Eth = { src: MAC.ext0, dst: MAC.client };
const fromNodeB: Eth = { src: MAC.nodeB, dst: MAC.int0 };
const { SYN, ACK, FIN, RST } = TCP_FLAGS;

let fx: XdpFixture;

type Lifetimes = Partial<Record<'synMs' | 'establishedMs' | 'closedMs' | 'udpMs', number>>;

function configure(lifetimes: Lifetimes = {}): void {
  fx.config({
    snat4: SNAT,
    snat6: SNAT6,
    portMin: PORT,
    portMax: PORT,
    lifetimes: { synMs: LONG_MS, establishedMs: LONG_MS, closedMs: LONG_MS, udpMs: LONG_MS, ...lifetimes },
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A flow of the test: the client's port picks it; v6 selects the family. */
function flow(sport: number, o: { v6?: boolean; udp?: boolean } = {}) {
  const client = o.v6 ? CLIENT6 : CLIENT;
  const node = o.v6 ? NODE6 : NODE;
  const snat = o.v6 ? SNAT6 : SNAT;
  const remote = o.v6 ? REMOTE6 : REMOTE;
  const proto = o.udp ? PROTO.UDP : PROTO.TCP;
  const dport = o.udp ? 30053 : 30080;
  const bport = o.udp ? 5353 : 8080;
  const ip = (src: string, dst: string, hops = 64) =>
    o.v6 ? { v: 6 as const, src, dst, hopLimit: hops } : { v: 4 as const, src, dst, ttl: hops };
  const l4 = (sp: number, dp: number, flags: number) =>
    o.udp ? { udp: { sport: sp, dport: dp, payload: Buffer.from('q') } } : { tcp: { sport: sp, dport: dp, flags, seq: 1000, ack: 1 } };
  return {
    key: { saddr: client, daddr: node, sport, dport, proto },
    reverseKey: { saddr: remote, daddr: snat, sport: bport, dport: PORT, proto },
    /** The client's packet to the NodePort. */
    client: (flags: number) => fx.run(packet(fromClient, ip(client, node), l4(sport, dport, flags))),
    /** The backend's packet to the node's SNAT port. */
    backend: (flags: number) => fx.run(packet(fromNodeB, ip(remote, snat), l4(bport, PORT, flags)), 'int0'),
    /** The backend's packet as the client must get it. */
    translated: (flags: number) => packet(toClient, ip(node, client, 63), l4(dport, sport, flags)),
  };
}

/** Runs `f` and returns how much each named counter grew. */
function counted(names: XdpReason[], f: () => void): Record<string, number> {
  const before = fx.stats();
  f();
  const after = fx.stats();
  return Object.fromEntries(names.map((n) => [n, Number(after[n] - before[n])]));
}

/** A TCP flow through the handshake: the client's SYN, the backend's SYN-ACK, the client's ACK. */
function open(sport: number, o: { v6?: boolean } = {}) {
  const f = flow(sport, o);
  assert.is(f.client(SYN).retval, XDP.REDIRECT, `SYN from ${sport} forwarded`);
  assert.is(f.backend(SYN | ACK).retval, XDP.REDIRECT, 'SYN-ACK turned back');
  assert.is(f.client(ACK).retval, XDP.REDIRECT, 'ACK forwarded');
  return f;
}

/** Both FINs and the last ACK: a closed flow. */
function close(f: ReturnType<typeof flow>): void {
  assert.is(f.backend(FIN | ACK).retval, XDP.REDIRECT);
  assert.is(f.client(FIN | ACK).retval, XDP.REDIRECT);
  assert.is(f.backend(ACK).retval, XDP.REDIRECT);
}

test.before(() => {
  if (missing) return;
  fx = Fixture.create();
  configure();
  fx.backend({ id: 1, address: REMOTE, port: 8080, proto: PROTO.TCP, node: NODE_B });
  fx.backend({ id: 2, address: REMOTE, port: 5353, proto: PROTO.UDP, node: NODE_B });
  fx.backend({ id: 3, address: REMOTE6, port: 8080, proto: PROTO.TCP, node: 'fd00:1::2' });
  fx.frontend({ serviceId: 1, address: NODE, port: 30080, proto: PROTO.TCP, backends: [1] });
  fx.frontend({ serviceId: 2, address: NODE, port: 30053, proto: PROTO.UDP, backends: [2] });
  fx.frontend({ serviceId: 3, address: NODE6, port: 30080, proto: PROTO.TCP, backends: [3] });
});

test.after(() => fx?.close());

/** Forgets every flow, so that the one port is free again. */
function forget(): void {
  for (const name of ['lb4_ct_v1', 'lb4_rnat_v1', 'lb6_ct_v1', 'lb6_rnat_v1']) {
    const m = fx.map(name);
    for (const [key] of [...m.entries()]) m.delete(key);
  }
}

test.before.each(() => {
  if (missing) return;
  configure();
  forget();
});

it('each direction records what it sent: SYN, then established, FIN; and when it was last seen', async () => {
  const f = flow(50001);
  assert.is(f.client(SYN).retval, XDP.REDIRECT);
  const syn = fx.flow(f.key)!;
  assert.is(syn.state, 0, 'a SYN alone: not established');
  assert.ok((syn.last_seen_ns as bigint) > 0n, 'the connection entry has its time');
  assert.is(fx.reverse(f.reverseKey)!.state, 0, 'nothing from the backend yet');
  await sleep(30);
  const r = f.backend(SYN | ACK);
  assert.is(hex(r.data), hex(f.translated(SYN | ACK)), 'the SYN-ACK reaches the client from the NodePort');
  assert.is(fx.reverse(f.reverseKey)!.state, 0, "the backend's SYN-ACK: still a SYN");
  assert.ok((fx.reverse(f.reverseKey)!.last_seen_ns as bigint) > (syn.last_seen_ns as bigint), 'the reply moved the reverse entry on');
  f.client(ACK);
  assert.is(fx.flow(f.key)!.state, CtState.established);
  f.client(FIN | ACK);
  assert.is(fx.flow(f.key)!.state, CtState.established | CtState.fin, "the client's FIN");
  assert.is(fx.reverse(f.reverseKey)!.state, 0, "the client's FIN is not the backend's");
  f.backend(FIN | ACK);
  assert.is(fx.reverse(f.reverseKey)!.state, CtState.established | CtState.fin, "the backend's FIN");
});

it('a closed flow keeps its port through the grace (late FINs still turned back), then a new flow takes it', async () => {
  const a = open(50010);
  close(a);
  const held = counted(['nat_exhausted', 'nat_reclaimed'], () => {
    assert.is(flow(50011).client(SYN).retval, XDP.DROP, 'within the grace: no port for a new flow');
  });
  assert.equal(held, { nat_exhausted: 1, nat_reclaimed: 0 });
  const late = a.backend(FIN | ACK);
  assert.is(late.retval, XDP.REDIRECT, "a retransmitted FIN of the backend is still the closed flow's");
  assert.is(hex(late.data), hex(a.translated(FIN | ACK)));

  configure({ closedMs: 1 });
  await sleep(50);
  const b = flow(50012);
  const taken = counted(['nat_exhausted', 'nat_reclaimed', 'balanced'], () => {
    assert.is(b.client(SYN).retval, XDP.REDIRECT, 'past the grace: the new flow gets the port');
  });
  assert.equal(taken, { nat_exhausted: 0, nat_reclaimed: 1, balanced: 1 });
  assert.is(Number(fx.flow(b.key)!.nat_port), PORT);
  assert.is(fx.reverse(b.reverseKey)!.client_port, 50012, 'replies on the port now go to the new client');
  assert.is(fx.flow(a.key), undefined, "the closed flow's entry is gone: its client cannot send through the port");
});

it('a reset closes a flow as both FINs do', async () => {
  const a = open(50020);
  assert.is(a.backend(RST).retval, XDP.REDIRECT, "the backend's RST reaches the client");
  assert.is(Number(fx.reverse(a.reverseKey)!.state) & CtState.rst, CtState.rst);
  configure({ closedMs: 1 });
  await sleep(50);
  const taken = counted(['nat_reclaimed'], () => assert.is(flow(50021).client(SYN).retval, XDP.REDIRECT));
  assert.equal(taken, { nat_reclaimed: 1 });
});

it('an open flow is never taken over: established, half closed, or one the client keeps sending on', async () => {
  const a = open(50030);
  // Every lifetime but the established one is short: only a living flow's own lifetime protects it.
  configure({ synMs: 1, closedMs: 1, udpMs: 1 });
  await sleep(50);
  const held = counted(['nat_exhausted', 'nat_reclaimed', 'ct_expired'], () => {
    assert.is(flow(50031).client(SYN).retval, XDP.DROP);
  });
  assert.equal(held, { nat_exhausted: 1, nat_reclaimed: 0, ct_expired: 0 }, 'established');
  assert.is(a.client(FIN | ACK).retval, XDP.REDIRECT);
  await sleep(50);
  assert.is(flow(50032).client(SYN).retval, XDP.DROP, 'half closed (only the client sent FIN)');
  assert.is(fx.flow(a.key)!.backend_id, 1, 'the flow and its backend stay');
  assert.is(hex(a.backend(ACK).data), hex(a.translated(ACK)), "the backend's data still reaches the client");

  // Idle is judged on both sides: a backend that went quiet does not make the client's flow idle.
  configure({ establishedMs: 300 });
  const b = flow(50030);
  for (let i = 0; i < 8; i++) {
    b.client(ACK);
    await sleep(50);
  }
  assert.is(flow(50033).client(SYN).retval, XDP.DROP, 'the client sent within the lifetime');
});

it('past its lifetime an idle flow gives its port up: SYN only, established, UDP', async () => {
  for (const [name, lifetimes, start] of [
    ['a SYN never answered', { synMs: 1 }, (sport: number) => flow(sport).client(SYN)],
    ['an established flow gone quiet', { establishedMs: 1 }, (sport: number) => open(sport)],
  ] as const) {
    start(50040);
    configure(lifetimes);
    await sleep(50);
    const taken = counted(['ct_expired', 'nat_reclaimed'], () => assert.is(flow(50041).client(SYN).retval, XDP.REDIRECT, name));
    assert.equal(taken, { ct_expired: 1, nat_reclaimed: 0 }, name);
    assert.is(fx.flow(flow(50040).key), undefined, `${name}: the idle flow is forgotten`);
    configure();
    forget();
  }
  const u = flow(50042, { udp: true });
  assert.is(u.client(0).retval, XDP.REDIRECT);
  assert.is(flow(50043, { udp: true }).client(0).retval, XDP.DROP, 'a UDP flow within its lifetime holds the port');
  configure({ udpMs: 1 });
  await sleep(50);
  const taken = counted(['ct_expired'], () => assert.is(flow(50043, { udp: true }).client(0).retval, XDP.REDIRECT));
  assert.equal(taken, { ct_expired: 1 }, 'UDP');
});

it('a SYN on the tuple of a closed flow is balanced as a new flow, on the same SNAT port; a retransmitted SYN is not', () => {
  const a = flow(50050);
  assert.is(a.client(SYN).retval, XDP.REDIRECT);
  const retransmitted = counted(['ct_reopened', 'established'], () => assert.is(a.client(SYN).retval, XDP.REDIRECT));
  assert.equal(retransmitted, { ct_reopened: 0, established: 1 }, 'a SYN on a flow not yet closed is the same flow');
  a.backend(SYN | ACK);
  a.client(ACK);
  close(a);
  const reopened = counted(['ct_reopened', 'balanced', 'nat_exhausted'], () => {
    assert.is(a.client(SYN).retval, XDP.REDIRECT);
  });
  assert.equal(reopened, { ct_reopened: 1, balanced: 1, nat_exhausted: 0 });
  assert.is(fx.flow(a.key)!.nat_port, PORT, "to the same backend, the new flow takes the old one's port again");
  assert.is(fx.flow(a.key)!.state, 0, 'a new flow: only a SYN so far');
  assert.is(fx.reverse(a.reverseKey)!.state, 0);
});

it('IPv6: the same states, reclaim and reopen', async () => {
  const a = open(50060, { v6: true });
  assert.is(fx.flow(a.key)!.state, CtState.established);
  close(a);
  assert.is(flow(50061, { v6: true }).client(SYN).retval, XDP.DROP, 'within the grace');
  configure({ closedMs: 1 });
  await sleep(50);
  const taken = counted(['nat_reclaimed'], () => assert.is(flow(50061, { v6: true }).client(SYN).retval, XDP.REDIRECT));
  assert.equal(taken, { nat_reclaimed: 1 });
  assert.is(fx.flow(a.key), undefined);
  const b = flow(50061, { v6: true });
  b.backend(SYN | ACK);
  b.client(ACK);
  assert.is(b.client(RST).retval, XDP.REDIRECT);
  const reopened = counted(['ct_reopened', 'balanced'], () => assert.is(b.client(SYN).retval, XDP.REDIRECT));
  assert.equal(reopened, { ct_reopened: 1, balanced: 1 });
});

test.run();
