import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareIp, ipBytes, notAnIp, parseIp } from '../../../src/model/ip.ts';
import { rng } from '../../support/rng.ts';

test('parseIp reads IPv4 and IPv6 and gives the canonical form', () => {
  assert.equal(parseIp('10.96.0.10'), { family: 4, address: '10.96.0.10' });
  assert.equal(parseIp('FD00:0:0::A'), { family: 6, address: 'fd00::a' });
  assert.equal(parseIp('2001:db8:0:0:0:0:0:1'), { family: 6, address: '2001:db8::1' });
});

test('parseIp rejects leading zeros, short forms, zones and non-strings', () => {
  for (const bad of ['010.1.1.1', '1.2.3', 'fe80::1%eth0', ' 10.0.0.1', '[fd00::1]', '10.0.0.256', '', 'None', 42, null]) {
    assert.is(parseIp(bad), undefined, `accepted ${String(bad)}`);
  }
});

test('parseIp refuses IPv4-mapped IPv6 addresses in every spelling, and says why', () => {
  for (const mapped of ['::ffff:10.96.0.10', '::FFFF:a60:a', '0:0:0:0:0:ffff:10.96.0.10']) {
    assert.is(parseIp(mapped), undefined, `accepted ${mapped}`);
    assert.is(notAnIp(mapped), `${JSON.stringify(mapped)} is an IPv4-mapped IPv6 address`);
  }
  assert.equal(parseIp('64:ff9b::10.96.0.10'), { family: 6, address: '64:ff9b::a60:a' }, 'NAT64 addresses are ordinary IPv6');
  assert.is(notAnIp('x'), '"x" is not an IP address');
});

test('ipBytes expands compressed IPv6 and embedded IPv4', () => {
  assert.equal(ipBytes('10.0.0.9'), [10, 0, 0, 9]);
  assert.equal(ipBytes('fd00::a'), [0xfd, 0, ...new Array(13).fill(0), 0x0a]);
  assert.equal(ipBytes('::ffff:1.2.3.4'), [...new Array(10).fill(0), 0xff, 0xff, 1, 2, 3, 4]);
  assert.equal(ipBytes('::'), new Array(16).fill(0));
});

test('compareIp orders IPv4 addresses as their bytes do, and each before every IPv6 one', () => {
  const r = rng(12);
  const octet = () => [0, 1, 9, 10, 99, 100, 255][Math.floor(r() * 7)]!;
  const v4 = () => `${octet()}.${octet()}.${octet()}.${octet()}`;
  const byBytes = (a: string, b: string): number => {
    const x = ipBytes(a);
    const y = ipBytes(b);
    if (x.length !== y.length) return x.length - y.length;
    const at = x.findIndex((v, k) => v !== y[k]);
    return at < 0 ? 0 : x[at]! - y[at]!;
  };
  for (let i = 0; i < 500; i++) {
    const [a, b] = r() < 0.1 ? [v4(), '::ffff:0:1'] : [v4(), v4()];
    assert.is(Math.sign(compareIp(a, b)), Math.sign(byBytes(a, b)), `${a} vs ${b}`);
    assert.is(Math.sign(compareIp(b, a)), -Math.sign(byBytes(a, b)), `${b} vs ${a}`);
  }
});

test('compareIp orders numerically, IPv4 before IPv6', () => {
  const sorted = ['fd00::10', '10.0.0.10', 'fd00::9', '10.0.0.9', '9.0.0.1'].sort(compareIp);
  assert.equal(sorted, ['9.0.0.1', '10.0.0.9', '10.0.0.10', 'fd00::9', 'fd00::10']);
});

test('parseIp gives what net.SocketAddress prints, also when asked again (cached)', () => {
  const random = rng(7);
  const next = (n: number): number => Math.floor(random() * n);
  for (let i = 0; i < 2000; i++) {
    const v4 = [0, 1, 2, 3].map(() => String(next(256))).join('.');
    const v6 = Array.from({ length: 8 }, () => (next(3) === 0 ? '0' : next(65536).toString(16).toUpperCase())).join(':');
    for (const [text, family] of [
      [v4, 'ipv4'],
      [v6, 'ipv6'],
    ] as const) {
      const want = new net.SocketAddress({ address: text, family }).address;
      for (let k = 0; k < 2; k++) assert.equal(parseIp(text), { family: family === 'ipv4' ? 4 : 6, address: want }, text);
    }
  }
});

test('parseIp hands out a fresh object each time, so a caller changing one changes no other', () => {
  const a = parseIp('10.0.0.1')!;
  a.address = 'changed';
  assert.equal(parseIp('10.0.0.1'), { family: 4, address: '10.0.0.1' });
  assert.is(parseIp('010.0.0.1'), undefined);
  assert.is(parseIp('010.0.0.1'), undefined);
});

test.run();
