import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { corrections, tallyCounted } from '../../../src/agent/flow-counts.ts';
import { CtFlags, encode, Layouts } from '../../../src/datapath/abi.ts';

const ct4 = (backend_id: number, flags: number) =>
  encode(Layouts.lb4Ct, { backend_id, flags, backend_address: '10.0.0.1', nat_address: '10.1.0.1' });
const ct6 = (backend_id: number, flags: number) =>
  encode(Layouts.lb6Ct, { backend_id, flags, backend_address: 'fd00::1', nat_address: 'fd00::2' });

test('only entries flagged counted are tallied, per backend, both families into one tally', () => {
  const tally = tallyCounted(
    [ct4(1, CtFlags.snat | CtFlags.counted), ct4(1, CtFlags.snat), ct4(2, CtFlags.local | CtFlags.counted)],
    Layouts.lb4Ct,
  );
  tallyCounted([ct6(1, CtFlags.dsr | CtFlags.counted), ct6(3, CtFlags.snat)], Layouts.lb6Ct, tally);
  assert.equal([...tally].sort(), [
    [1, 2],
    [2, 1],
  ]);
});

test('a figure is rewritten to the tally only where it differs and did not move during the read', () => {
  const before = new Map([
    [1, 5n],
    [2, 3n],
    [3, 2n],
    [4, -1n],
  ]);
  const after = new Map([
    [1, 5n],
    [2, 4n],
    [3, 2n],
    [4, -1n],
  ]);
  const tally = new Map([
    [1, 2],
    [2, 1],
    [3, 2],
  ]);
  assert.equal(
    [...corrections(before, after, tally)],
    [
      [1, 2n],
      [4, 0n],
    ],
    '1 drifted (evictions), 2 moved (left to the next pass), 3 is right, 4 dipped below 0 with nothing open',
  );
});

test.run();
