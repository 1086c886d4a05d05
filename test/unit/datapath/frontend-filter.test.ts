import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { filterBit, filterWords, frontendHash } from '../../../src/datapath/frontend-filter.ts';
import type { Frontend } from '../../../src/model/types.ts';

test('the filter has at least 32 bits per frontend of both families, in a power of two of words', () => {
  assert.is(filterWords(1), 1);
  assert.is(filterWords(8), 8);
  assert.is(filterWords(32768), 32768);
  assert.is(filterWords(10000), 16384);
  for (const n of [1, 3, 1000, 32768, 100000]) {
    const words = filterWords(n);
    assert.ok(words * 64 >= 64 * n && (words & (words - 1)) === 0, `${n} -> ${words}`);
  }
});

test('address, port, protocol and family each change the hash', () => {
  const base: Frontend = { family: 4, address: '10.96.0.10', port: 80, protocol: 'TCP' };
  const h = frontendHash(base);
  assert.is.not(frontendHash({ ...base, address: '10.96.0.11' }), h);
  assert.is.not(frontendHash({ ...base, port: 81 }), h);
  assert.is.not(frontendHash({ ...base, protocol: 'UDP' }), h);
  assert.is.not(frontendHash({ family: 6, address: '::ffff:10.96.0.10', port: 80, protocol: 'TCP' }), h);
  assert.is(frontendHash({ ...base }), h);
  // The scope is not hashed: the hook looks only in-cluster frontends up, at one bit per address and port.
  assert.is(frontendHash({ ...base, scope: 'external' }), h);
});

test('10,000 ClusterIPs in one /16 spread over the bits as a random function would', () => {
  const words = filterWords(10000);
  const bits = new Set<number>();
  for (let i = 0; i < 10000; i++) {
    const { word, bit } = filterBit({ family: 4, address: `10.96.${i >> 8}.${i & 255}`, port: 443, protocol: 'TCP' }, words);
    bits.add(word * 64 + bit);
  }
  // 10,000 keys into 2^20 bits collide about n^2 / 2m = 48 times; a weak hash collides far more.
  assert.ok(bits.size > 9850, `${bits.size} distinct bits`);
});
test.run();
