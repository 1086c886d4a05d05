// DSR with real traffic: node A encapsulates a client's packets to node B, where the backend pod
// runs; node B decapsulates, delivers to the pod, and its tc egress sends the pod's replies
// straight to the client from the NodePort on node A the client dialled. All three sit on one
// bridge, as nodes and an outside client on one L2 segment do.
//
//   client c0 192.0.2.10 ─┐
//   nodea  a0 192.0.2.1  ─┼─ br0 (lan)          nodeb b0 192.0.2.2, pod0 10.244.1.1 ── pod eth0 10.244.1.7
//   nodeb  b0 192.0.2.2  ─┘
//
// Node A sends the encapsulated packet back out of the device it came in on (XDP_TX): the bridge
// port facing it carries xdp_pass, as veth needs for XDP_TX.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NodeConfigFlags } from '../../src/datapath/abi.ts';
import { PROTO } from '../support/packets.ts';
import type { XdpMaps } from '../support/xdp-fixture.ts';
import { XdpLab } from '../support/xdp-lab.ts';

const NODE_A = '192.0.2.1';
const NODE_A6 = '2001:db8::1';
const DSR_PORT = 8900;
const lab = new XdpLab();
let client: string;
let a: XdpMaps;
let b: XdpMaps;

test.before(async () => {
  const lan = lab.netns('lan');
  client = lab.netns('client');
  const nodea = lab.netns('nodea');
  const nodeb = lab.netns('nodeb');
  const pod = lab.netns('pod');
  lab.ip(lan, 'link', 'add', 'br0', 'type', 'bridge');
  lab.ip(lan, 'link', 'set', 'br0', 'up');
  for (const [ns, dev, cidr, cidr6] of [
    [client, 'c0', '192.0.2.10/24', '2001:db8::10/64'],
    [nodea, 'a0', '192.0.2.1/24', '2001:db8::1/64'],
    [nodeb, 'b0', '192.0.2.2/24', '2001:db8::2/64'],
  ] as const) {
    lab.veth(ns, dev, cidr, lan, `${dev}p`, undefined);
    lab.ip(ns, 'addr', 'add', cidr6, 'dev', dev, 'nodad');
    lab.ip(lan, 'link', 'set', `${dev}p`, 'master', 'br0');
  }
  lab.veth(nodeb, 'pod0', '10.244.1.1/24', pod, 'eth0', '10.244.1.7/24');
  lab.ip(nodeb, 'addr', 'add', 'fd00:244:1::1/64', 'dev', 'pod0', 'nodad');
  lab.ip(pod, 'addr', 'add', 'fd00:244:1::7/64', 'dev', 'eth0', 'nodad');
  lab.ip(pod, 'route', 'add', 'default', 'via', '10.244.1.1');
  lab.ip(pod, '-6', 'route', 'add', 'default', 'via', 'fd00:244:1::1');
  lab.ip(nodea, 'route', 'add', '10.244.1.0/24', 'via', '192.0.2.2');
  lab.ip(nodea, '-6', 'route', 'add', 'fd00:244:1::/64', 'via', '2001:db8::2');
  lab.exec(nodeb, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  // Until node A knows node B's MAC, XDP leaves the encapsulated packet (a node address as its
  // source) to the stack, which resolves the neighbour: the documented host settings.
  lab.exec(nodea, 'sysctl', [
    '-qw',
    'net.ipv4.ip_forward=1',
    'net.ipv6.conf.all.forwarding=1',
    'net.ipv4.conf.all.accept_local=1',
    'net.ipv4.conf.a0.accept_local=1',
  ]);

  a = lab.loadXdp();
  a.config({ snat4: NODE_A, snat6: NODE_A6, portMin: 40000, portMax: 40999, flags: NodeConfigFlags.dsr, dsrPort: DSR_PORT });
  a.backend({ id: 3, address: 'fd00:244:1::7', port: 8080, proto: PROTO.TCP, node: '2001:db8::2' });
  a.backend({ id: 4, address: 'fd00:244:1::7', port: 5353, proto: PROTO.UDP, node: '2001:db8::2' });
  a.frontend({ serviceId: 3, address: NODE_A6, port: 30080, proto: PROTO.TCP, backends: [3] });
  a.frontend({ serviceId: 4, address: NODE_A6, port: 30053, proto: PROTO.UDP, backends: [4] });
  a.backend({ id: 1, address: '10.244.1.7', port: 8080, proto: PROTO.TCP, node: '192.0.2.2' });
  a.backend({ id: 2, address: '10.244.1.7', port: 5353, proto: PROTO.UDP, node: '192.0.2.2' });
  a.frontend({ serviceId: 1, address: NODE_A, port: 30080, proto: PROTO.TCP, backends: [1] });
  a.frontend({ serviceId: 2, address: NODE_A, port: 30053, proto: PROTO.UDP, backends: [2] });
  b = lab.loadXdp();
  b.config({ snat4: '192.0.2.2', snat6: '2001:db8::2', portMin: 40000, portMax: 40999, flags: NodeConfigFlags.dsr, dsrPort: DSR_PORT });
  lab.attachXdp(a, 'xdp_lb', nodea, 'a0');
  lab.attachXdp(a, 'xdp_pass', lan, 'a0p');
  lab.attachXdp(b, 'xdp_lb', nodeb, 'b0');
  lab.attachTcEgress(b, nodeb, 'b0');
  await lab.server(pod, 'pod-on-b');
});

test.after(() => lab.close());

test('TCP through a NodePort on node A to a pod on node B in DSR mode: the pod sees the client, the client sees node A', () => {
  for (let i = 0; i < 3; i++) {
    const r = lab.http(client, NODE_A, 30080);
    assert.is(r.error, '', 'the request succeeded');
    assert.is(r.body, 'pod-on-b');
    assert.match(r.client, /^192\.0\.2\.10:\d+$/, `source ${r.client} is the client`);
  }
});

test('UDP in DSR mode: the reply comes from the NodePort on node A', () => {
  assert.is(lab.udp(client, NODE_A, 30053, 'hi'), `${NODE_A}:30053 pod-on-b hi`);
});

test('IPv6 TCP and UDP in DSR mode: the pod sees the client, the client sees node A', () => {
  const r = lab.http(client, NODE_A6, 30080);
  assert.is(r.error, '', 'the request succeeded');
  assert.is(r.body, 'pod-on-b');
  assert.match(r.client, /^\[2001:db8::10\]:\d+$/, `source ${r.client} is the client`);
  assert.is(lab.udp(client, NODE_A6, 30053, 'hi'), `${NODE_A6}:30053 pod-on-b hi`);
});

test('node A only encapsulated (no replies reached it), node B decapsulated and reversed the replies', () => {
  const sa = a.stats();
  const sb = b.stats();
  assert.ok(sa.balanced > 0n && sa.established > 0n, 'node A balanced the flows');
  assert.is(sa.reply, 0n, 'no reply went through node A');
  assert.ok(sb.dsr_decap > 0n && sb.tc_reversed > 0n, 'node B decapsulated and reversed');
});

test.run();
