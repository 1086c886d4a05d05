// The XDP datapath for IPv6, packet by packet (see xdp-packets.test.ts for the table's form):
// SNAT and DNAT, replies, extension headers, fragments, truncation, RST and ICMPv6 for no
// endpoints, source ranges, ICMPv6 errors about a SNAT flow and the tc egress reverse translation.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BackendFlags, CtFlags, encode, Layouts, NodeConfigFlags, ServiceFlags } from '../../src/datapath/abi.ts';
import { type Eth, type Ext6, type Ip6, PROTO, packet, TCP_FLAGS } from '../support/packets.ts';
import { type Case, checkCase, XdpFixture as Fixture, hex, MAC, XDP, type XdpFixture, xdpContextMissing } from '../support/xdp-fixture.ts';

/** Kernels before 5.15 cannot run these (see xdpContextMissing): every test is skipped, saying why. */
const missing = xdpContextMissing();
const it = missing ? test.skip : test;
if (missing) test(`skipped on this kernel: ${missing}`, () => {});

const CLIENT = '2001:db8:c::10';
const NODE = '2001:db8:1::1';
const LB_IP = '2001:db8:1::100';
const SNAT = 'fd00:1::1';
const REMOTE = 'fd00:244:1::5';
const LOCAL = 'fd00:244::7';
const NAT_MIN = 50000;
const NAT_MAX = 50999;

const fromClient: Eth = { src: MAC.client, dst: MAC.ext0 };
const toClient: Eth = { src: MAC.ext0, dst: MAC.client };
const fromNodeB: Eth = { src: MAC.nodeB, dst: MAC.int0 };
const toNodeB: Eth = { src: MAC.int0, dst: MAC.nodeB };
const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;
const DATA = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

let fx: XdpFixture;

type Opts = Partial<{ flags: number; seq: number; ack: number; hop: number; payload: Buffer; ext: Ext6[] }>;

function ip6(src: string, dst: string, o: Opts): Ip6 {
  return { v: 6, src, dst, hopLimit: o.hop ?? 64, ext: o.ext };
}

function tcp6(eth: Eth, src: string, sport: number, dst: string, dport: number, o: Opts = {}): Buffer {
  return packet(eth, ip6(src, dst, o), {
    tcp: { sport, dport, flags: o.flags ?? SYN, seq: o.seq ?? 1000, ack: o.ack ?? 0, payload: o.payload },
  });
}

function udp6(eth: Eth, src: string, sport: number, dst: string, dport: number, o: Opts = {}): Buffer {
  return packet(eth, ip6(src, dst, o), { udp: { sport, dport, payload: o.payload ?? DATA } });
}

function natPort(saddr: string, sport: number, daddr: string, dport: number, proto: number): number {
  const ct = fx.flow({ saddr, daddr, sport, dport, proto });
  assert.ok(ct, `a flow [${saddr}]:${sport} -> [${daddr}]:${dport} is in the connection table`);
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
  fx.config({ snat6: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  fx.backend({ id: 1, address: REMOTE, port: 8080, proto: PROTO.TCP });
  fx.backend({ id: 2, address: REMOTE, port: 5353, proto: PROTO.UDP });
  fx.backend({ id: 3, address: LOCAL, port: 8080, proto: PROTO.TCP, flags: BackendFlags.local });
  fx.frontend({ serviceId: 1, address: NODE, port: 30080, proto: PROTO.TCP, backends: [1] });
  fx.frontend({ serviceId: 2, address: NODE, port: 30053, proto: PROTO.UDP, backends: [2] });
  fx.frontend({ serviceId: 3, address: NODE, port: 30081, proto: PROTO.TCP, backends: [3] });
  fx.frontend({ serviceId: 4, address: NODE, port: 30090, proto: PROTO.TCP, backends: [] });
  fx.frontend({ serviceId: 5, address: NODE, port: 30091, proto: PROTO.UDP, backends: [] });
  fx.frontend({ serviceId: 6, address: LB_IP, port: 80, proto: PROTO.TCP, backends: [1], flags: ServiceFlags.sourceRanges });
  fx.sourceRange(6, '2001:db8:c::/64');
});

test.after(() => fx?.close());

const EXT: Ext6[] = [{ type: 0 }, { type: 43, length: 16 }, { type: 60, length: 8 }];

cases([
  {
    name: 'IPv6 TCP SYN to a NodePort with a remote backend: SNAT to the node, redirected to node B, hop limit 63',
    input: () => tcp6(fromClient, CLIENT, 40001, NODE, 30080),
    verdict: 'REDIRECT',
    output: () => tcp6(toNodeB, SNAT, natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP), REMOTE, 8080, { hop: 63 }),
    reason: 'balanced',
  },
  {
    name: "the backend's IPv6 reply is turned back: from the NodePort to the client, out of ext0",
    dev: 'int0',
    input: () =>
      tcp6(fromNodeB, REMOTE, 8080, SNAT, natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP), { flags: SYN | ACK, seq: 6, ack: 1001 }),
    verdict: 'REDIRECT',
    output: () => tcp6(toClient, NODE, 30080, CLIENT, 40001, { hop: 63, flags: SYN | ACK, seq: 6, ack: 1001 }),
    reason: 'reply',
  },
  {
    name: 'IPv6 UDP to a NodePort with a remote backend: SNAT, UDP checksum updated',
    input: () => udp6(fromClient, CLIENT, 40002, NODE, 30053),
    verdict: 'REDIRECT',
    output: () => udp6(toNodeB, SNAT, natPort(CLIENT, 40002, NODE, 30053, PROTO.UDP), REMOTE, 5353, { hop: 63 }),
    reason: 'balanced',
  },
  {
    name: 'an IPv6 local backend: DNAT only, client source kept, passed to the stack',
    input: () => tcp6(fromClient, CLIENT, 40003, NODE, 30081),
    verdict: 'PASS',
    output: () => tcp6(fromClient, CLIENT, 40003, LOCAL, 8080),
    reason: 'balanced',
  },
  {
    name: 'hop-by-hop, routing and destination options headers are skipped and kept',
    input: () => tcp6(fromClient, CLIENT, 40004, NODE, 30080, { ext: EXT, flags: TCP_FLAGS.PSH | ACK, payload: DATA }),
    verdict: 'REDIRECT',
    output: () =>
      tcp6(toNodeB, SNAT, natPort(CLIENT, 40004, NODE, 30080, PROTO.TCP), REMOTE, 8080, {
        hop: 63,
        ext: EXT,
        flags: TCP_FLAGS.PSH | ACK,
        payload: DATA,
      }),
    reason: 'balanced',
  },
  {
    name: 'a fragment header: passed untouched',
    input: () => udp6(fromClient, CLIENT, 40005, NODE, 30053, { ext: [{ type: 0 }, { type: 44 }] }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'fragment',
  },
  {
    name: 'more extension headers than are skipped (5): passed untouched',
    input: () =>
      tcp6(fromClient, CLIENT, 40006, NODE, 30080, { ext: [{ type: 0 }, { type: 60 }, { type: 60 }, { type: 60 }, { type: 60 }] }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'other_proto',
  },
  {
    name: 'no endpoints, IPv6 TCP SYN: RST|ACK from the NodePort (XDP_TX)',
    input: () => tcp6(fromClient, CLIENT, 40010, NODE, 30090, { seq: 5000 }),
    verdict: 'TX',
    output: () =>
      packet(
        toClient,
        { v: 6, src: NODE, dst: CLIENT },
        { tcp: { sport: 30090, dport: 40010, seq: 0, ack: 5001, flags: TCP_FLAGS.RST | ACK, window: 0 } },
      ),
    reason: 'rejected',
  },
  {
    name: 'no endpoints, IPv6 TCP behind extension headers: the RST carries none',
    input: () => tcp6(fromClient, CLIENT, 40011, NODE, 30090, { ext: EXT, flags: ACK, ack: 99, payload: DATA }),
    verdict: 'TX',
    output: () =>
      packet(
        toClient,
        { v: 6, src: NODE, dst: CLIENT },
        { tcp: { sport: 30090, dport: 40011, seq: 99, ack: 0, flags: TCP_FLAGS.RST, window: 0 } },
      ),
    reason: 'rejected',
  },
  {
    name: 'no endpoints, IPv6 UDP: ICMPv6 port unreachable quoting the headers and 8 bytes',
    input: () => udp6(fromClient, CLIENT, 40012, NODE, 30091),
    verdict: 'TX',
    output: () => {
      const quote = udp6(fromClient, CLIENT, 40012, NODE, 30091).subarray(14, 14 + 48);
      return packet(toClient, { v: 6, src: NODE, dst: CLIENT }, { icmp: { type: 1, code: 4, payload: quote } });
    },
    reason: 'rejected',
  },
  {
    name: 'IPv6 loadBalancerSourceRanges: a source in the range gets in',
    input: () => tcp6(fromClient, CLIENT, 40013, LB_IP, 80),
    verdict: 'REDIRECT',
    output: () => tcp6(toNodeB, SNAT, natPort(CLIENT, 40013, LB_IP, 80, PROTO.TCP), REMOTE, 8080, { hop: 63 }),
    reason: 'balanced',
  },
  {
    name: 'IPv6 loadBalancerSourceRanges: a source outside is dropped',
    input: () => tcp6(fromClient, '2001:db8:d::10', 40014, LB_IP, 80),
    verdict: 'DROP',
    output: 'unchanged',
    reason: 'source_denied',
  },
  {
    name: 'packet too big from a router about a SNAT flow: to the client, the quoted packet turned back',
    dev: 'int0',
    input: () => {
      const natted = natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP);
      return tooBig(fromNodeB, 'fd00:1::fe', SNAT, 64, tcp6(toNodeB, SNAT, natted, REMOTE, 8080, { hop: 63, flags: ACK, payload: DATA }));
    },
    verdict: 'REDIRECT',
    output: () =>
      tooBig(toClient, 'fd00:1::fe', CLIENT, 63, tcp6(toNodeB, CLIENT, 40001, NODE, 30080, { hop: 63, flags: ACK, payload: DATA })),
    reason: 'icmp_error',
  },
  {
    name: 'port unreachable from the UDP backend itself: sent from the NodePort',
    dev: 'int0',
    input: () => {
      const sent = udp6(toNodeB, SNAT, natPort(CLIENT, 40002, NODE, 30053, PROTO.UDP), REMOTE, 5353, { hop: 63 });
      return packet(fromNodeB, { v: 6, src: REMOTE, dst: SNAT }, { icmp: { type: 1, code: 4, payload: sent.subarray(14) } });
    },
    verdict: 'REDIRECT',
    output: () => {
      const original = udp6(toNodeB, CLIENT, 40002, NODE, 30053, { hop: 63 });
      return packet(
        toClient,
        { v: 6, src: NODE, dst: CLIENT, hopLimit: 63 },
        { icmp: { type: 1, code: 4, payload: original.subarray(14) } },
      );
    },
    reason: 'icmp_error',
  },
  {
    name: "packet too big from a router on the client's side about a reply: on to the backend, quoted as the backend sent it",
    input: () =>
      tooBig(fromClient, CLIENT_ROUTER, NODE, 64, tcp6(toClient, NODE, 30080, CLIENT, 40001, { hop: 63, flags: ACK, payload: DATA })),
    verdict: 'REDIRECT',
    output: () => {
      const natted = natPort(CLIENT, 40001, NODE, 30080, PROTO.TCP);
      return tooBig(toNodeB, CLIENT_ROUTER, REMOTE, 63, tcp6(toClient, REMOTE, 8080, SNAT, natted, { hop: 63, flags: ACK, payload: DATA }));
    },
    reason: 'icmp_error',
  },
  {
    name: 'the same about a reply of a local backend: to the pod, passed to the stack',
    input: () =>
      tooBig(fromClient, CLIENT_ROUTER, NODE, 64, tcp6(toClient, NODE, 30081, CLIENT, 40003, { hop: 63, flags: ACK, payload: DATA })),
    verdict: 'PASS',
    output: () =>
      tooBig(fromClient, CLIENT_ROUTER, LOCAL, 64, tcp6(toClient, LOCAL, 8080, CLIENT, 40003, { hop: 63, flags: ACK, payload: DATA })),
    reason: 'icmp_error',
  },
  {
    name: 'an ICMPv6 echo request to the node: passed untouched',
    input: () => packet(fromClient, { v: 6, src: CLIENT, dst: NODE }, { icmp: { type: 128, code: 0, payload: DATA } }),
    verdict: 'PASS',
    output: 'unchanged',
    reason: 'not_service',
  },
]);

const MTU_1280 = Buffer.from([0, 0, 0x05, 0x00]);
const CLIENT_ROUTER = '2001:db8:c::fe';

/** ICMPv6 packet too big from src to dst quoting the whole of `quoted`, a frame. */
function tooBig(eth: Eth, src: string, dst: string, hopLimit: number, quoted: Buffer): Buffer {
  return packet(eth, { v: 6, src, dst, hopLimit }, { icmp: { type: 2, code: 0, rest: MTU_1280, payload: quoted.subarray(14) } });
}

const full = tcp6(fromClient, CLIENT, 40020, NODE, 30080, { ext: [{ type: 0, length: 16 }] });
cases(
  [
    ['an IPv6 header cut short', full.subarray(0, 14 + 30)],
    ['an extension header cut short', full.subarray(0, 14 + 40 + 1)],
    ['a TCP header after an extension header cut short', full.subarray(0, 14 + 40 + 16 + 10)],
  ].map(([what, frame]) => ({
    name: `truncated: ${what as string} -> passed untouched`,
    input: () => frame as Buffer,
    verdict: 'PASS' as const,
    output: 'unchanged' as const,
    reason: 'malformed' as const,
  })),
);

it('tc egress: the IPv6 reply of a local backend leaves from the NodePort the client dialled', () => {
  const before = fx.stats();
  const r = fx.runTc(tcp6(toClient, LOCAL, 8080, CLIENT, 40003, { flags: SYN | ACK, seq: 9, ack: 1001 }));
  assert.is(r.retval, 0, 'TC_ACT_OK');
  assert.is(hex(r.data), hex(tcp6(toClient, NODE, 30081, CLIENT, 40003, { flags: SYN | ACK, seq: 9, ack: 1001 })));
  assert.is(fx.stats().tc_reversed - before.tc_reversed, 1n);
});

// DSR over IPv6: encapsulated to the backend's node; as that node, decapsulated.
const DSR_PORT = 8900;
const NODE_B = 'fd00:1::2';

function dsrFrame(eth: Eth, outerSrc: string, outerDst: string, sport: number, hop: number, frontendPort: number, inner: Buffer): Buffer {
  const hdr = encode(Layouts.lb6DsrHdr, { version: 1, proto: 41, frontend_port: frontendPort, frontend_address: NODE });
  const payload = Buffer.concat([hdr, inner.subarray(14)]);
  return packet(
    eth,
    { v: 6, src: outerSrc, dst: outerDst, hopLimit: hop },
    { udp: { sport, dport: DSR_PORT, payload, zeroChecksum: true } },
  );
}

it('IPv6 DSR: a flow to a remote backend is encapsulated to its node, the client source kept', () => {
  fx.backend({ id: 9, address: REMOTE, port: 9090, proto: PROTO.TCP, node: NODE_B });
  fx.frontend({ serviceId: 9, address: NODE, port: 30099, proto: PROTO.TCP, backends: [9] });
  fx.config({ snat6: SNAT, portMin: NAT_MIN, portMax: NAT_MAX, flags: NodeConfigFlags.dsr, dsrPort: DSR_PORT });
  try {
    const r = fx.run(tcp6(fromClient, CLIENT, 41500, NODE, 30099));
    assert.is(r.retval, XDP.REDIRECT);
    const ct = fx.flow({ saddr: CLIENT, daddr: NODE, sport: 41500, dport: 30099, proto: PROTO.TCP })!;
    assert.equal([ct.flags, ct.nat_address], [CtFlags.dsr, NODE_B]);
    const want = dsrFrame(toNodeB, SNAT, NODE_B, Number(ct.nat_port), 63, 30099, tcp6(fromClient, CLIENT, 41500, REMOTE, 9090));
    assert.is(hex(r.data), hex(want));
  } finally {
    fx.config({ snat6: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  }
});

it("IPv6 DSR, on the backend's node: decapsulated, and the reply leaves from the frontend", () => {
  fx.config({ snat6: SNAT, portMin: NAT_MIN, portMax: NAT_MAX, dsrPort: DSR_PORT });
  try {
    const inner = tcp6(fromNodeB, CLIENT, 41600, LOCAL, 8080, { flags: ACK, payload: DATA });
    const r = fx.run(dsrFrame(fromNodeB, NODE_B, SNAT, 0xc001, 63, 30080, inner), 'int0');
    assert.is(r.retval, XDP.PASS);
    assert.is(hex(r.data), hex(inner));
    const reply = fx.runTc(tcp6(toClient, LOCAL, 8080, CLIENT, 41600, { flags: ACK, seq: 9, ack: 1001 }));
    assert.is(hex(reply.data), hex(tcp6(toClient, NODE, 30080, CLIENT, 41600, { flags: ACK, seq: 9, ack: 1001 })));
  } finally {
    fx.config({ snat6: SNAT, portMin: NAT_MIN, portMax: NAT_MAX });
  }
});

test.run();
