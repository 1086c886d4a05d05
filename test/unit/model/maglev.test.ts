import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_MAGLEV_TABLE_SIZE, MAGLEV_TABLE_SIZES, maglevTable } from '../../../src/model/maglev.ts';

const names = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `TCP/10.244.${(i + from) >> 8}.${(i + from) & 255}:8080`);
const ones = (n: number) => new Array<number>(n).fill(1);

function shares(table: Uint16Array, n: number): number[] {
  const count = new Array<number>(n).fill(0);
  for (const i of table) count[i]!++;
  return count;
}

test('with equal weights every backend holds floor(M/N) or ceil(M/N) positions', () => {
  for (const n of [1, 3, 10, 100, 1000]) {
    for (const m of [DEFAULT_MAGLEV_TABLE_SIZE, 65537]) {
      const count = shares(maglevTable(names(n), ones(n), m), n);
      for (const c of count) assert.ok(c === Math.floor(m / n) || c === Math.ceil(m / n), `N=${n} M=${m}: a backend holds ${c}`);
    }
  }
});

test('removing one of N backends moves only a few percent of M beyond its own positions', () => {
  for (const n of [10, 100]) {
    const m = 65537;
    const before = maglevTable(names(n), ones(n), m);
    const removed = 3;
    const kept = names(n).filter((_, i) => i !== removed);
    const after = maglevTable(kept, ones(n - 1), m);
    let moved = 0;
    for (let p = 0; p < m; p++) {
      const was = before[p]!;
      if (was === removed) continue;
      const now = after[p]! >= removed ? after[p]! + 1 : after[p]!;
      if (now !== was) moved++;
    }
    assert.ok(moved / m < 0.03, `N=${n}: ${((100 * moved) / m).toFixed(2)}% of positions moved beyond the removed backend's`);
  }
});

test('the table depends on the names, not their order in the list', () => {
  const a = names(20);
  const b = [...a].reverse();
  const ta = maglevTable(a, ones(20), 4093);
  const tb = maglevTable(b, ones(20), 4093);
  for (let p = 0; p < 4093; p++) assert.is(a[ta[p]!], b[tb[p]!]);
});

test('weights give proportional shares, and weight 0 none', () => {
  const m = 65537;
  const weights = [3, 1, 2, 0, 1];
  const count = shares(maglevTable(names(5), weights, m), 5);
  const total = weights.reduce((a, b) => a + b, 0);
  weights.forEach((w, i) => {
    const want = (m * w) / total;
    assert.ok(Math.abs(count[i]! - want) <= 1 + want * 0.001, `backend ${i} (weight ${w}) holds ${count[i]}, want ~${want.toFixed(0)}`);
  });
  assert.is(maglevTable(names(2), [0, 0], 251).length, 0, 'no weight at all: no table');
});

test('a 65,537-position table for 1,000 backends builds', () => {
  // The time is measured by the bench (bench/maglev.ts); here only that it completes and fills.
  const table = maglevTable(names(1000), ones(1000), 65537);
  assert.is(table.length, 65537);
  assert.ok(table.every((i) => i < 1000));
});

test('only the allowed prime sizes are accepted, and bad weights are refused', () => {
  assert.throws(() => maglevTable(names(2), ones(2), 16384), /one of 251/);
  assert.throws(() => maglevTable(names(2), [1, -1], 251), /integers >= 0/);
  assert.throws(() => maglevTable(names(2), [1], 251), /2 names but 1 weights/);
  for (const m of MAGLEV_TABLE_SIZES) assert.is(maglevTable(names(3), ones(3), m).length, m);
});

test.run();
