import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseDevices, deviceNodeAddresses, nodePortAddresses, parseIpAddr, parseNodePortCidrs } from '../../../src/agent/devices.ts';
import { inCidr } from '../../../src/model/ip.ts';

const IP_ADDR = JSON.stringify([
  { ifindex: 1, ifname: 'lo', link_type: 'loopback', addr_info: [{ family: 'inet', local: '127.0.0.1', scope: 'host' }] },
  {
    ifindex: 2,
    ifname: 'eth0',
    link_type: 'ether',
    addr_info: [
      { family: 'inet', local: '192.168.10.2', scope: 'global' },
      { family: 'inet6', local: 'fd00:192:168:10::2', scope: 'global' },
      { family: 'inet6', local: 'fe80::1', scope: 'link' },
    ],
  },
  { ifindex: 3, ifname: 'eth1', link_type: 'ether', addr_info: [{ family: 'inet', local: '10.0.5.2', scope: 'global' }] },
  { ifindex: 4, ifname: 'veth9', link_type: 'ether', addr_info: [] },
]);

const DEFAULT4 = JSON.stringify([{ dst: 'default', gateway: '192.168.10.1', dev: 'eth0' }]);

test('ip -j addr: every device but loopback, with its global addresses and whether a default route uses it', () => {
  assert.equal(parseIpAddr(IP_ADDR, [DEFAULT4, '[]']), [
    { name: 'eth0', ifindex: 2, addresses: ['192.168.10.2', 'fd00:192:168:10::2'], defaultRoute: true },
    { name: 'eth1', ifindex: 3, addresses: ['10.0.5.2'], defaultRoute: false },
    { name: 'veth9', ifindex: 4, addresses: [], defaultRoute: false },
  ]);
});

test("without a Node object the node's addresses are those of its default-route devices", () => {
  assert.equal(deviceNodeAddresses(parseIpAddr(IP_ADDR, [DEFAULT4])), ['192.168.10.2', 'fd00:192:168:10::2']);
  assert.equal(deviceNodeAddresses(parseIpAddr(IP_ADDR)), ['192.168.10.2', 'fd00:192:168:10::2', '10.0.5.2']);
});

test('devices: the named ones, else those holding a node address, else all with an address', () => {
  const devices = parseIpAddr(IP_ADDR);
  assert.equal(
    chooseDevices(devices, ['eth1'], []).map((d) => d.name),
    ['eth1'],
  );
  assert.equal(
    chooseDevices(devices, [], ['192.168.10.2']).map((d) => d.name),
    ['eth0'],
  );
  assert.equal(
    chooseDevices(devices, [], []).map((d) => d.name),
    ['eth0', 'eth1'],
  );
  assert.throws(() => chooseDevices(devices, ['eth7'], []), /--devices: no device eth7 here \(have eth0, eth1, veth9\)/);
});

test('--nodeport-addresses keeps the node addresses inside its CIDRs, of either family', () => {
  const cidrs = parseNodePortCidrs(['192.168.0.0/16', 'fd00:192:168::/48']);
  assert.ok(inCidr('192.168.10.2', cidrs[0]!));
  assert.not.ok(inCidr('192.169.0.1', cidrs[0]!));
  assert.not.ok(inCidr('fd00:192:168::1', cidrs[0]!));
  assert.equal(nodePortAddresses(['192.168.10.2', '10.0.5.2', 'fd00:192:168:10::2', 'fd00:1::2'], cidrs), [
    '192.168.10.2',
    'fd00:192:168:10::2',
  ]);
  assert.equal(nodePortAddresses(['10.0.5.2'], []), ['10.0.5.2']);
  for (const bad of ['192.168.0.0', '192.168.0.0/33', 'fd00::/129', 'nope/8']) {
    assert.throws(() => parseNodePortCidrs([bad]), /--nodeport-addresses: .* is not a CIDR/);
  }
});

test.run();
