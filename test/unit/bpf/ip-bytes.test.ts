import { isIPv4 } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes } from '../../../src/bpf/ip-bytes.ts';
import { decode, encode, Layouts } from '../../../src/datapath/abi.ts';

test('IPv4 addresses become net-order bytes and back', () => {
  assert.equal([...ipv4ToBytes('10.96.0.10')], [10, 96, 0, 10]);
  assert.is(bytesToIpv4(Buffer.from([192, 168, 1, 254])), '192.168.1.254');
});

test('IPv6 addresses round-trip in canonical RFC 5952 form', () => {
  for (const [input, canonical] of [
    ['fd00:10:96::10', 'fd00:10:96::10'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::ffff:10.96.0.10', '::ffff:a60:a'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
  ] as const) {
    assert.is(bytesToIpv6(ipv6ToBytes(input)), canonical, input);
  }
  assert.is(ipv6ToBytes('fd00::1')[15], 1);
  assert.is(ipv6ToBytes('fd00::1')[0], 0xfd);
});

test('malformed addresses are refused, not silently zeroed', () => {
  assert.throws(() => ipv4ToBytes('10.96.0'), /not an IPv4 address/);
  // The char-code parser takes exactly what net.isIPv4 takes.
  for (const text of [
    '0.0.0.0',
    '255.255.255.255',
    '10.96.0.10',
    '1.2.3.4.',
    '.1.2.3',
    '1..2.3',
    '01.2.3.4',
    '1.2.3.04',
    '1.2.3.256',
    '1.2.3.1000',
    '1.2.3',
    '',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.-4',
    '1.2.3.4/8',
    '١.2.3.4',
    '1.2.3.00',
  ]) {
    let accepted = true;
    try {
      ipv4ToBytes(text);
    } catch {
      accepted = false;
    }
    assert.is(accepted, isIPv4(text), JSON.stringify(text));
  }
  assert.throws(() => ipv6ToBytes('fd00:::1'), /not an IPv6 address/);
});

test('an lb4_key encodes port and address in net order, the protocol and the scope as bytes', () => {
  const key = encode(Layouts.lb4Key, { address: '10.96.0.10', dport: 80, proto: 6 });
  assert.equal([...key], [10, 96, 0, 10, 0, 80, 6, 0]);
  assert.equal(decode(Layouts.lb4Key, key), { address: '10.96.0.10', dport: 80, proto: 6, scope: 0 });
});

test.run();
