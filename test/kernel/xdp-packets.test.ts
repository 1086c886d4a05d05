// The XDP datapath packet by packet, Katran-style: each case is an input frame, the verdict, the
// exact frame the program leaves (every rewritten byte and checksum, built independently by
// test/support/packets.ts) and the reason counter it bumps. BPF_PROG_TEST_RUN runs in a "node"
// namespace with devices, routes and neighbours (test/support/xdp-fixture.ts), so forwarding
// (redirect, XDP_TX, MAC addresses, TTL) is checked together with the translation.
//
// Cases run in order and later ones rely on the flows earlier ones made (a reply needs its flow).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BackendFlags, CtFlags, encode, Layouts, NodeConfigFlags, ServiceFlags } from '../../src/datapath/abi.ts';
import { type Eth, PROTO, packet, TCP_FLAGS } from '../support/packets.ts';
import { type Case, checkCase, XdpFixture as Fixture, hex, MAC, XDP, type XdpFixture, xdpContextMissing } from '../support/xdp-fixture.ts';

/** Kernels before 5.15 cannot run these (see xdpContextMissing): every test is skipped, saying why. */
const missing = xdpContextMissing();
const it = missing ? test.skip : test;
if (missing) test(`skipped on this kernel: ${missing}`, () => {});

const CLIENT = '198.51.100.10';
const NODE = '192.0.2.1';
const SNAT = '10.1.0.1';
const NODE_B = '10.1.0.2';
const REMOTE = '10.244.1.5';
const LOCAL = '10.244.0.7';
const VIA_EXT = '10.244.2.8';
const NO_NEIGH = '10.244.3.4';
const BLACKHOLE = '10.244.9.9';
const LB_IP = '203.0.113.5';
const ROUTER = '198.51.100.254';
const NAT_MIN = 40000;
const NAT_MAX = 40999;

const fromClient: Eth = { src: MAC.client, dst: MAC.ext0 };
const toClient: Eth = { src: MAC.ext0, dst: MAC.client };
const fromNodeB: Eth = { src: MAC.nodeB, dst: MAC.int0 };
const toNodeB: Eth = { src: MAC.int0, dst: MAC.nodeB };
const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;
const PSH_ACK = TCP_FLAGS.PSH | TCP_FLAGS.ACK;
const DATA = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

let fx: XdpFixture;

function tcp4(
  eth: Eth,
  src: string,
  sport: number,
  dst: string,
  dport: number,
  o: Partial<{ flags: number; seq: number; ack: number; ttl: number; payload: Buffer }> = {},
): Buffer {
  return packet(
    eth,
    { v: 4, src, dst, ttl: o.ttl ?? 64 },
    { tcp: { sport, dport, flags: o.flags ?? SYN, seq: o.seq ?? 1000, ack: o.ack ?? 0, payload: o.payload } },
  );
}

function udp4(
  eth: Eth,
  src: string,
  sport: number,
  dst: string,
  dport: number,
  o: Partial<{ ttl: number; payload: Buffer; zeroChecksum: boolean }> = {},
): Buffer {
  return packet(
    eth,
    { v: 4, src, dst, ttl: o.ttl ?? 64 },
    { udp: { sport, dport, payload: o.payload ?? DATA, zeroChecksum: o.zeroChecksum } },
  );
}

/** The SNAT port the program gave a client's flow (read from its connection table entry). */
function natPort(saddr: string, sport: number, daddr: string, dport: number, proto: number): number {
  const ct = fx.flow({ saddr, daddr, sport, dport, proto });
  assert.ok(ct, `a flow ${saddr}:${sport} -> ${daddr}:${dport} is in the connection table`);
  const port = Number(ct!.nat_port);
  assert.ok(port >= NAT_MIN && port <= NAT_MAX, `SNAT port ${port} is in ${NAT_MIN}-${NAT_MAX}`);
  return port;
}

function cases(list: Case[]): void {
  for (const c of list) it(c.name, () => checkCase(fx, c));
}

test.before(() => {
  if (missing) return;
  fx = Fixture.create();
  fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  const be = (id: number, address: string, port: number, proto: number, flags = 0) =>
    fx.backend({ id, address, port, proto, flags, node: NODE_B });
  be(1, REMOTE, 8080, PROTO.TCP);
  be(2, REMOTE, 5353, PROTO.UDP);
  be(3, LOCAL, 8080, PROTO.TCP, BackendFlags.local);
  be(4, VIA_EXT, 8080, PROTO.TCP);
  be(5, NO_NEIGH, 8080, PROTO.TCP);
  be(6, BLACKHOLE, 8080, PROTO.TCP);
  be(7, LOCAL, 5353, PROTO.UDP, BackendFlags.local);
  const fe = (serviceId: number, address: string, port: number, proto: number, backends: number[], flags = 0) =>
    fx.frontend({ serviceId, address, port, proto, backends, flags });
  fe(1, NODE, 30080, PROTO.TCP, [1]);
  fe(2, NODE, 30053, PROTO.UDP, [2]);
  fe(3, NODE, 30081, PROTO.TCP, [3]);
  fe(4, NODE, 30090, PROTO.TCP, []);
  fe(5, NODE, 30091, PROTO.UDP, []);
  fe(6, NODE, 30092, PROTO.TCP, [], ServiceFlags.local);
  fe(7, LB_IP, 80, PROTO.TCP, [1], ServiceFlags.sourceRanges);
  fe(8, NODE, 30082, PROTO.TCP, [4]);
  fe(9, NODE, 30083, PROTO.TCP, [5]);
  fe(10, NODE, 30084, PROTO.TCP, [6]);
  fe(12, NODE, 30054, PROTO.UDP, [7]);
  fx.sourceRange(7, '198.51.100.0/24');
});

test.after(() => fx?.close());

cases([
  {
    name: 'IPv4 TCP SYN to a NodePort with a remote backend: SNAT to the node, redirected to node B, TTL 63',
    input: () => tcp4(fromClient, CLIENT, 40001, NODE, 30080),
    verdict: 'REDIRECT',
    output: () => tcp4(toNodeB, SNAT, natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP), REMOTE, 8080, { ttl: 63 }),
    reason: 'balanced',
  },
  {
    name: 'a later segment of that flow (with payload) goes the same way, with the same SNAT port',
    input: () => tcp4(fromClient, CLIENT, 40001, NODE, 30080, { flags: PSH_ACK, seq: 1001, ack: 7, payload: DATA }),
    verdict: 'REDIRECT',
    output: () =>
      tcp4(toNodeB, SNAT, natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP), REMOTE, 8080, {
        ttl: 63,
        flags: PSH_ACK,
        seq: 1001,
        ack: 7,
        payload: DATA,
      }),
    reason: 'established',
  },
  {
    name: "the backend's reply to the SNAT port is turned back: from the NodePort to the client, out of ext0",
    dev: 'int0',
    input: () =>
      tcp4(fromNodeB, REMOTE, 8080, SNAT, natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP), { flags: SYN | ACK, seq: 6, ack: 1001 }),
    verdict: 'REDIRECT',
    output: () => tcp4(toClient, NODE, 30080, CLIENT, 40001, { ttl: 63, flags: SYN | ACK, seq: 6, ack: 1001 }),
    reason: 'reply',
  },
  {
    name: 'IPv4 UDP to a NodePort with a remote backend: SNAT, UDP checksum updated',
    input: () => udp4(fromClient, CLIENT, 40002, NODE, 30053),
    verdict: 'REDIRECT',
    output: () => udp4(toNodeB, SNAT, natPort(CLIENT, 40002, NODE, 30053, PROTO.UDP), REMOTE, 5353, { ttl: 63 }),
    reason: 'balanced',
  },
  {
    name: "the UDP backend's reply is turned back",
    dev: 'int0',
    input: () => udp4(fromNodeB, REMOTE, 5353, SNAT, natPort(CLIENT, 40002, NODE, 30053, PROTO.UDP), { payload: Buffer.from('answer') }),
    verdict: 'REDIRECT',
    output: () => udp4(toClient, NODE, 30053, CLIENT, 40002, { ttl: 63, payload: Buffer.from('answer') }),
    reason: 'reply',
  },
  {
    name: 'a UDP datagram without checksum (0) keeps none',
    input: () => udp4(fromClient, CLIENT, 40004, NODE, 30053, { zeroChecksum: true }),
    verdict: 'REDIRECT',
    output: () => udp4(toNodeB, SNAT, natPort(CLIENT, 40004, NODE, 30053, PROTO.UDP), REMOTE, 5353, { ttl: 63, zeroChecksum: true }),
    reason: 'balanced',
  },
  {
    name: 'a local backend: DNAT only, the client source kept, passed to the stack as it is otherwise',
    input: () => tcp4(fromClient, CLIENT, 40003, NODE, 30081),
    verdict: 'PASS',
    output: () => tcp4(fromClient, CLIENT, 40003, LOCAL, 8080),
    reason: 'balanced',
  },
  {
    name: 'a backend behind the ingress device itself: XDP_TX to node C',
    input: () => tcp4(fromClient, CLIENT, 40005, NODE, 30082),
    verdict: 'TX',
    output: () => tcp4({ src: MAC.ext0, dst: MAC.nodeC }, SNAT, natPort(CLIENT, 40005, NODE, 30082, PROTO.TCP), VIA_EXT, 8080, { ttl: 63 }),
    reason: 'balanced',
  },
  {
    name: 'a next hop without a neighbour entry: translated and passed, the stack resolves it',
    input: () => tcp4(fromClient, CLIENT, 40006, NODE, 30083),
    verdict: 'PASS',
    output: () => tcp4(fromClient, SNAT, natPort(CLIENT, 40006, NODE, 30083, PROTO.TCP), NO_NEIGH, 8080),
    reason: 'stack_forward',
  },
  {
    name: 'a backend the FIB blackholes: dropped',
    input: () => tcp4(fromClient, CLIENT, 40007, NODE, 30084),
    verdict: 'DROP',
    output: () => tcp4(fromClient, SNAT, natPort(CLIENT, 40007, NODE, 30084, PROTO.TCP), BLACKHOLE, 8080),
    reason: 'fib_drop',
  },
  {
    name: 'no endpoints, TCP SYN: a RST|ACK from the NodePort acknowledging the SYN, sent back (XDP_TX)',
    input: () => tcp4(fromClient, CLIENT, 40010, NODE, 30090, { seq: 5000 }),
    verdict: 'TX',
    output: () =>
      packet(
        toClient,
        { v: 4, src: NODE, dst: CLIENT, id: 0, df: true },
        { tcp: { sport: 30090, dport: 40010, seq: 0, ack: 5001, flags: TCP_FLAGS.RST | ACK, window: 0 } },
      ),
    reason: 'rejected',
  },
  {
    name: 'no endpoints, TCP segment with ACK and payload: a RST whose sequence is the ACK',
    input: () => tcp4(fromClient, CLIENT, 40011, NODE, 30090, { flags: PSH_ACK, seq: 5000, ack: 777, payload: DATA }),
    verdict: 'TX',
    output: () =>
      packet(
        toClient,
        { v: 4, src: NODE, dst: CLIENT, id: 0, df: true },
        { tcp: { sport: 30090, dport: 40011, seq: 777, ack: 0, flags: TCP_FLAGS.RST, window: 0 } },
      ),
    reason: 'rejected',
  },
  {
    name: 'no endpoints, UDP: ICMP port unreachable quoting the IP header and 8 bytes',
    input: () => udp4(fromClient, CLIENT, 40012, NODE, 30091),
    verdict: 'TX',
    output: () => {
      const quote = udp4(fromClient, CLIENT, 40012, NODE, 30091).subarray(14, 14 + 28);
      return packet(toClient, { v: 4, src: NODE, dst: CLIENT, id: 0, df: true }, { icmp: { type: 3, code: 3, payload: quote } });
    },
    reason: 'rejected',
  },
  {
    name: 'externalTrafficPolicy: Local without a local endpoint: dropped, not rejected',
    input: () => tcp4(fromClient, CLIENT, 40013, NODE, 30092),
    verdict: 'DROP',
    output: 'unchanged',
    reason: 'no_local_backend',
  },
  {
    name: 'loadBalancerSourceRanges: a source inside a range gets in',
    input: () => tcp4(fromClient, CLIENT, 40014, LB_IP, 80),
    verdict: 'REDIRECT',
    output: () => tcp4(toNodeB, SNAT, natPort(CLIENT, 40014, LB_IP, 80, PROTO.TCP), REMOTE, 8080, { ttl: 63 }),
    reason: 'balanced',
  },
  {
    name: 'loadBalancerSourceRanges: a source outside every range is dropped',
    input: () => tcp4(fromClient, '100.64.0.9', 40015, LB_IP, 80),
    verdict: 'DROP',
    output: 'unchanged',
    reason: 'source_denied',
  },
  {
    name: 'a VLAN-tagged frame is translated with its tag kept, and left to the stack to forward',
    input: () => tcp4({ ...fromClient, vlan: 7 }, CLIENT, 40016, NODE, 30080),
    verdict: 'PASS',
    output: () => tcp4({ ...fromClient, vlan: 7 }, SNAT, natPort(CLIENT, 40016, NODE, 30080, PROTO.TCP), REMOTE, 8080),
    reason: 'stack_forward',
  },
  {
    name: 'IPv4 with options (IHL 7): translated, options kept, header checksum over them right',
    input: () => packet(fromClient, { v: 4, src: CLIENT, dst: NODE, options: OPTIONS }, { tcp: { sport: 40017, dport: 30080 } }),
    verdict: 'REDIRECT',
    output: () =>
      packet(
        toNodeB,
        { v: 4, src: SNAT, dst: REMOTE, ttl: 63, options: OPTIONS },
        { tcp: { sport: natPort(CLIENT, 40017, NODE, 30080, PROTO.TCP), dport: 8080 } },
      ),
    reason: 'balanced',
  },
  {
    name: 'a first fragment (MF) to a NodePort is passed untouched',
    input: () => packet(fromClient, { v: 4, src: CLIENT, dst: NODE, mf: true }, { udp: { sport: 40018, dport: 30053, payload: DATA } }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'fragment',
  },
  {
    name: 'a later fragment (offset > 0) is passed untouched',
    input: () => packet(fromClient, { v: 4, src: CLIENT, dst: NODE, fragOffset: 185 }, { raw: { proto: PROTO.UDP, bytes: DATA } }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'fragment',
  },
  {
    name: 'TCP to a port of the node that is no service: passed untouched',
    input: () => tcp4(fromClient, CLIENT, 40019, NODE, 22),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'not_service',
  },
  {
    name: 'ICMP echo to the node: passed untouched',
    input: () => packet(fromClient, { v: 4, src: CLIENT, dst: NODE }, { icmp: { type: 8, code: 0, payload: DATA } }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'not_service',
  },
  {
    name: 'another IP protocol (GRE) to the node: passed untouched',
    input: () => packet(fromClient, { v: 4, src: CLIENT, dst: NODE }, { raw: { proto: 47, bytes: Buffer.alloc(8) } }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'other_proto',
  },
  {
    name: 'an ARP frame: passed untouched',
    input: () =>
      Buffer.concat([
        Buffer.from('ffffffffffff', 'hex'),
        Buffer.from(MAC.client.replaceAll(':', ''), 'hex'),
        Buffer.from('0806', 'hex'),
        Buffer.alloc(28),
      ]),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'other_proto',
  },
]);

/** NOP, NOP, a 4-byte record route with no room, and EOL padding: 8 bytes, IHL 7. */
const OPTIONS = Buffer.from([1, 1, 7, 3, 4, 0, 0, 0]);

// Truncated frames: every layer cut short must be passed, never read past its end. (A frame
// shorter than an Ethernet header cannot be fed: BPF_PROG_TEST_RUN refuses it with EINVAL.)
const full = tcp4(fromClient, CLIENT, 40020, NODE, 30080);
const fullUdp = udp4(fromClient, CLIENT, 40020, NODE, 30053);
const vlanFull = tcp4({ ...fromClient, vlan: 7 }, CLIENT, 40020, NODE, 30080);
const longIhl = Buffer.from(full);
longIhl[14] = 0x4f; // IHL 15: 60 bytes of header, beyond the frame's end for TCP
cases(
  [
    ['a VLAN tag cut short', vlanFull.subarray(0, 16)],
    ['an IPv4 header cut short', full.subarray(0, 14 + 12)],
    ['a TCP header cut short', full.subarray(0, 14 + 20 + 12)],
    ['a UDP header cut short', fullUdp.subarray(0, 14 + 20 + 4)],
    ['an IHL pointing past the end', longIhl],
    ['an IHL below 5', Buffer.from(full).fill(0x44, 14, 15)],
  ].map(([what, frame]) => ({
    name: `truncated or malformed: ${what as string} -> passed untouched`,
    input: () => frame as Buffer,
    verdict: 'PASS' as const,
    output: 'unchanged' as const,
    reason: 'malformed' as const,
  })),
);

// ICMP errors about translated flows: an error from `src` to `dst` quoting the first 28 bytes
// (IP header and 8 bytes) of `quoted`, a frame.
const UNREACH = { type: 3, code: 3 } as const;
const FRAG_NEEDED = { type: 3, code: 4 } as const;

/** A router towards the client tells the node (the source of `reply`) that the path is narrower. */
function pathMtuFromClientSide(reply: Buffer): Buffer {
  return icmpError(fromClient, ROUTER, NODE, 64, FRAG_NEEDED, reply);
}

function icmpError(eth: Eth, src: string, dst: string, ttl: number, kind: { type: number; code: number }, quoted: Buffer): Buffer {
  const rest = kind === FRAG_NEEDED ? MTU_1400 : Buffer.alloc(4);
  return packet(eth, { v: 4, src, dst, ttl }, { icmp: { ...kind, rest, payload: quoted.subarray(14, 42) } });
}
const MTU_1400 = Buffer.from([0, 0, 0x05, 0x78]);

cases([
  {
    name: 'fragmentation needed from a router about a SNAT flow: outer to the client, quoted packet back to client -> NodePort',
    dev: 'int0',
    input: () => {
      const natted = natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP);
      return icmpError(
        fromNodeB,
        '10.1.0.254',
        SNAT,
        64,
        FRAG_NEEDED,
        tcp4(toNodeB, SNAT, natted, REMOTE, 8080, { ttl: 63, flags: PSH_ACK, payload: DATA }),
      );
    },
    verdict: 'REDIRECT',
    output: () =>
      icmpError(
        toClient,
        '10.1.0.254',
        CLIENT,
        63,
        FRAG_NEEDED,
        tcp4(toNodeB, CLIENT, 40001, NODE, 30080, { ttl: 63, flags: PSH_ACK, payload: DATA }),
      ),
    reason: 'icmp_error',
  },
  {
    name: 'port unreachable from the UDP backend itself: sent from the NodePort, quoted UDP checksum updated',
    dev: 'int0',
    input: () => {
      const natted = natPort(CLIENT, 40002, NODE, 30053, PROTO.UDP);
      return icmpError(fromNodeB, REMOTE, SNAT, 64, UNREACH, udp4(toNodeB, SNAT, natted, REMOTE, 5353, { ttl: 63 }));
    },
    verdict: 'REDIRECT',
    output: () => icmpError(toClient, NODE, CLIENT, 63, UNREACH, udp4(toNodeB, CLIENT, 40002, NODE, 30053, { ttl: 63 })),
    reason: 'icmp_error',
  },
  {
    name: "fragmentation needed from a router on the client's side about a reply: on to the backend, quoted as the backend sent it",
    input: () => pathMtuFromClientSide(tcp4(toClient, NODE, 30080, CLIENT, 40001, { ttl: 63, flags: ACK, payload: DATA })),
    verdict: 'REDIRECT',
    output: () => {
      const natted = natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP);
      return icmpError(
        toNodeB,
        ROUTER,
        REMOTE,
        63,
        FRAG_NEEDED,
        tcp4(toClient, REMOTE, 8080, SNAT, natted, { ttl: 63, flags: ACK, payload: DATA }),
      );
    },
    reason: 'icmp_error',
  },
  {
    name: 'the same about a reply of a local backend: to the pod, passed to the stack',
    input: () => pathMtuFromClientSide(tcp4(toClient, NODE, 30081, CLIENT, 40003, { ttl: 63, flags: ACK, payload: DATA })),
    verdict: 'PASS',
    output: () =>
      icmpError(
        fromClient,
        ROUTER,
        LOCAL,
        64,
        FRAG_NEEDED,
        tcp4(toClient, LOCAL, 8080, CLIENT, 40003, { ttl: 63, flags: ACK, payload: DATA }),
      ),
    reason: 'icmp_error',
  },
]);

it('tc egress: the reply of a local backend leaves from the NodePort the client dialled', () => {
  const before = fx.stats();
  const r = fx.runTc(tcp4({ src: MAC.ext0, dst: MAC.client }, LOCAL, 8080, CLIENT, 40003, { flags: SYN | ACK, seq: 9, ack: 1001 }));
  assert.is(r.retval, 0, 'TC_ACT_OK');
  assert.is(
    hex(r.data),
    hex(tcp4({ src: MAC.ext0, dst: MAC.client }, NODE, 30081, CLIENT, 40003, { flags: SYN | ACK, seq: 9, ack: 1001 })),
  );
  assert.is(fx.stats().tc_reversed - before.tc_reversed, 1n);
  const ct = fx.flow({ saddr: CLIENT, daddr: NODE, sport: 40003, dport: 30081, proto: PROTO.TCP });
  assert.is(ct?.flags, CtFlags.local);
});

it('tc egress: a UDP reply of a local backend too; other traffic leaves untouched', () => {
  const r0 = fx.run(udp4(fromClient, CLIENT, 40030, NODE, 30054));
  assert.is(r0.retval, XDP.PASS);
  const r = fx.runTc(udp4(toClient, LOCAL, 5353, CLIENT, 40030, { payload: Buffer.from('answer') }));
  assert.is(hex(r.data), hex(udp4(toClient, NODE, 30054, CLIENT, 40030, { payload: Buffer.from('answer') })));
  const other = udp4(toClient, LOCAL, 5353, CLIENT, 40031);
  assert.is(hex(fx.runTc(other).data), hex(other));
});

it('a flow keeps its backend while the other backends of its service change', () => {
  for (const id of [20, 21, 22, 23]) fx.backend({ id, address: `10.244.1.${id}`, port: 8080, proto: PROTO.TCP, node: NODE_B });
  fx.frontend({ serviceId: 20, address: NODE, port: 30100, proto: PROTO.TCP, backends: [20, 21] });
  const chosen = new Map<number, number>();
  for (let port = 41000; port < 41016; port++) {
    assert.is(fx.run(tcp4(fromClient, CLIENT, port, NODE, 30100)).retval, XDP.REDIRECT);
    chosen.set(port, Number(fx.flow({ saddr: CLIENT, daddr: NODE, sport: port, dport: 30100, proto: PROTO.TCP })!.backend_id));
  }
  assert.equal(new Set(chosen.values()), new Set([20, 21]), 'both backends were picked');
  // Rewrite the service: backend 21 moves to slot 3, two new ones come in front of it.
  fx.frontend({ serviceId: 20, address: NODE, port: 30100, proto: PROTO.TCP, backends: [22, 23, 21, 20] });
  for (const [port, id] of chosen) {
    const r = fx.run(tcp4(fromClient, CLIENT, port, NODE, 30100, { flags: ACK, seq: 1001, ack: 1 }));
    assert.is(r.retval, XDP.REDIRECT);
    const nat = Number(fx.flow({ saddr: CLIENT, daddr: NODE, sport: port, dport: 30100, proto: PROTO.TCP })!.nat_port);
    assert.is(
      hex(r.data),
      hex(tcp4(toNodeB, SNAT, nat, `10.244.1.${id}`, 8080, { ttl: 63, flags: ACK, seq: 1001, ack: 1 })),
      `port ${port}`,
    );
  }
});

it('a flow whose backend was removed ends: TCP gets a RST from the NodePort, a new SYN is balanced afresh', () => {
  const flow = { saddr: CLIENT, daddr: NODE, sport: 41000, dport: 30100, proto: PROTO.TCP };
  const gone = Number(fx.flow(flow)!.backend_id);
  fx.removeBackend(gone);
  fx.frontend({ serviceId: 20, address: NODE, port: 30100, proto: PROTO.TCP, backends: [20, 21, 22, 23].filter((id) => id !== gone) });
  const before = fx.stats();
  const r = fx.run(tcp4(fromClient, CLIENT, 41000, NODE, 30100, { flags: ACK, seq: 1001, ack: 55 }));
  assert.is(r.retval, XDP.TX);
  assert.is(
    hex(r.data),
    hex(
      packet(
        toClient,
        { v: 4, src: NODE, dst: CLIENT, id: 0, df: true },
        { tcp: { sport: 30100, dport: 41000, seq: 55, ack: 0, flags: TCP_FLAGS.RST, window: 0 } },
      ),
    ),
  );
  assert.is(fx.stats().backend_gone - before.backend_gone, 1n);
  assert.is(fx.flow(flow), undefined, 'the flow is forgotten');
  assert.is(fx.run(tcp4(fromClient, CLIENT, 41000, NODE, 30100)).retval, XDP.REDIRECT);
  assert.is.not(Number(fx.flow(flow)!.backend_id), gone);
});

it('a UDP flow whose backend was removed is balanced afresh', () => {
  fx.backend({ id: 30, address: '10.244.1.30', port: 5353, proto: PROTO.UDP, node: NODE_B });
  fx.backend({ id: 31, address: '10.244.1.31', port: 5353, proto: PROTO.UDP, node: NODE_B });
  fx.frontend({ serviceId: 30, address: NODE, port: 30110, proto: PROTO.UDP, backends: [30] });
  const flow = { saddr: CLIENT, daddr: NODE, sport: 41100, dport: 30110, proto: PROTO.UDP };
  assert.is(fx.run(udp4(fromClient, CLIENT, 41100, NODE, 30110)).retval, XDP.REDIRECT);
  assert.is(fx.flow(flow)!.backend_id, 30);
  fx.removeBackend(30);
  fx.frontend({ serviceId: 30, address: NODE, port: 30110, proto: PROTO.UDP, backends: [31] });
  const r = fx.run(udp4(fromClient, CLIENT, 41100, NODE, 30110));
  assert.is(r.retval, XDP.REDIRECT);
  assert.is(fx.flow(flow)!.backend_id, 31);
  assert.is(hex(r.data), hex(udp4(toNodeB, SNAT, Number(fx.flow(flow)!.nat_port), '10.244.1.31', 5353, { ttl: 63 })));
});

it('without a SNAT address a remote backend cannot be reached: dropped and counted', () => {
  fx.config({ portMin: NAT_MIN, portMax: NAT_MAX });
  try {
    const before = fx.stats();
    assert.is(fx.run(tcp4(fromClient, CLIENT, 41200, NODE, 30080)).retval, XDP.DROP);
    assert.is(fx.stats().no_snat_address - before.no_snat_address, 1n);
  } finally {
    fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  }
});

it('with a one-port NAT range, a second flow to the same backend finds no port: dropped and counted', () => {
  fx.config({ snat4: SNAT, portMin: 45000, portMax: 45000 });
  try {
    assert.is(fx.run(tcp4(fromClient, CLIENT, 41300, NODE, 30080)).retval, XDP.REDIRECT);
    const before = fx.stats();
    assert.is(fx.run(tcp4(fromClient, CLIENT, 41301, NODE, 30080)).retval, XDP.DROP);
    assert.is(fx.stats().nat_exhausted - before.nat_exhausted, 1n);
  } finally {
    fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  }
});

it('sessionAffinity: ClientIP sends every new flow of a client to the same backend', () => {
  for (const id of [40, 41, 42, 43]) fx.backend({ id, address: `10.244.1.${id}`, port: 8080, proto: PROTO.TCP, node: NODE_B });
  fx.frontend({
    serviceId: 40,
    address: NODE,
    port: 30120,
    proto: PROTO.TCP,
    backends: [40, 41, 42, 43],
    flags: ServiceFlags.affinity,
    affinityTimeout: 10800,
  });
  const picked = new Set<number>();
  for (let port = 42000; port < 42012; port++) {
    assert.is(fx.run(tcp4(fromClient, CLIENT, port, NODE, 30120)).retval, XDP.REDIRECT);
    picked.add(Number(fx.flow({ saddr: CLIENT, daddr: NODE, sport: port, dport: 30120, proto: PROTO.TCP })!.backend_id));
  }
  assert.is(picked.size, 1, `one backend for the client, got ${[...picked]}`);
});

it('externalTrafficPolicy: Local with a local endpoint: DNAT only, the client source kept', () => {
  fx.frontend({ serviceId: 44, address: NODE, port: 30121, proto: PROTO.TCP, backends: [3], flags: ServiceFlags.local });
  const r = fx.run(tcp4(fromClient, CLIENT, 42100, NODE, 30121));
  assert.is(r.retval, XDP.PASS);
  assert.is(hex(r.data), hex(tcp4(fromClient, CLIENT, 42100, LOCAL, 8080)));
  assert.is(fx.flow({ saddr: CLIENT, daddr: NODE, sport: 42100, dport: 30121, proto: PROTO.TCP })!.flags, CtFlags.local);
});

// DSR: this node encapsulates to the backend's node; as the backend's node it decapsulates.
const DSR_PORT = 8900;

function dsrHeader(frontend: string, port: number): Buffer {
  return encode(Layouts.lb4DsrHdr, { version: 1, proto: 4, frontend_port: port, frontend_address: frontend });
}

function dsrFrame(eth: Eth, outerSrc: string, outerDst: string, sport: number, ttl: number, inner: Buffer): Buffer {
  return packet(
    eth,
    { v: 4, src: outerSrc, dst: outerDst, ttl, id: 0, df: true },
    { udp: { sport, dport: DSR_PORT, payload: inner, zeroChecksum: true } },
  );
}

it('DSR: a new flow to a remote backend is encapsulated to its node, the client source kept, the frontend carried', () => {
  fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX, flags: NodeConfigFlags.dsr, dsrPort: DSR_PORT });
  try {
    for (const [flags, reason] of [
      [SYN, 'balanced'],
      [PSH_ACK, 'established'],
    ] as const) {
      const before = fx.stats();
      const r = fx.run(tcp4(fromClient, CLIENT, 41500, NODE, 30080, { flags }));
      assert.is(r.retval, XDP.REDIRECT);
      const ct = fx.flow({ saddr: CLIENT, daddr: NODE, sport: 41500, dport: 30080, proto: PROTO.TCP })!;
      assert.equal([ct.flags, ct.nat_address], [CtFlags.dsr, NODE_B], 'a DSR flow to node B');
      const entropy = Number(ct.nat_port);
      assert.ok(entropy >= 0xc000, `outer source port ${entropy}`);
      const inner = Buffer.concat([dsrHeader(NODE, 30080), tcp4(fromClient, CLIENT, 41500, REMOTE, 8080, { flags }).subarray(14)]);
      assert.is(hex(r.data), hex(dsrFrame(toNodeB, SNAT, NODE_B, entropy, 63, inner)));
      assert.is(fx.stats()[reason] - before[reason], 1n, reason);
    }
  } finally {
    fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  }
});

it("DSR, on the backend's node: decapsulated for the stack to deliver, the reply leaves from the frontend", () => {
  // Any node decapsulates, whatever its own mode: only the port must be set.
  fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX, dsrPort: DSR_PORT });
  try {
    const inner = tcp4(fromNodeB, CLIENT, 41600, LOCAL, 8080, { flags: PSH_ACK, payload: DATA });
    const before = fx.stats();
    const r = fx.run(dsrFrame(fromNodeB, NODE_B, SNAT, 0xc123, 63, Buffer.concat([dsrHeader(NODE, 30080), inner.subarray(14)])), 'int0');
    assert.is(r.retval, XDP.PASS);
    assert.is(hex(r.data), hex(inner), 'the client packet as node A sent it');
    assert.is(fx.stats().dsr_decap - before.dsr_decap, 1n);
    const reply = fx.runTc(tcp4(toClient, LOCAL, 8080, CLIENT, 41600, { flags: ACK, seq: 9, ack: 1001 }));
    assert.is(hex(reply.data), hex(tcp4(toClient, NODE, 30080, CLIENT, 41600, { flags: ACK, seq: 9, ack: 1001 })));

    const bad = dsrHeader(NODE, 30080);
    bad[0] = 9;
    assert.is(
      fx.run(dsrFrame(fromNodeB, NODE_B, SNAT, 0xc123, 63, Buffer.concat([bad, inner.subarray(14)])), 'int0').retval,
      XDP.DROP,
      'an unknown version',
    );
  } finally {
    fx.config({ snat4: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  }
});

test.run();
