// The XDP timing harness (bench/xdp-packet.ts) measures what it says: every timed run of the
// balanced programs is redirected, new-flow runs all make new flows, and no run hits a limit.
// Never asserts a speed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { measureXdpPacket, renderXdpPacket } from '../../bench/xdp-packet.ts';
import { xdpContextMissing } from '../support/xdp-fixture.ts';

/** Kernels before 5.15 cannot run these (see xdpContextMissing): every test is skipped, saying why. */
const missing = xdpContextMissing();
const it = missing ? test.skip : test;
if (missing) test(`skipped on this kernel: ${missing}`, () => {});

it('a short run times all five programs, each on the path it names', () => {
  const r = measureXdpPacket({ repeat: 2000, rounds: 2 });
  assert.equal(
    r.points.map((p) => [p.program, p.verdict]),
    [
      ['pass', 'PASS'],
      ['copy', 'PASS'],
      ['established', 'REDIRECT'],
      ['new_flow', 'REDIRECT'],
      ['new_flow_lc', 'REDIRECT'],
    ],
  );
  for (const p of r.points) assert.ok(p.ns > 0 && p.rounds.length === 2, p.program);
  // A SYN before the timed runs makes the established flow; every timed run of it is established.
  assert.equal(r.counters, { balanced: String(1 + 2 * 2 * 2000), established: String(2 * 2000) });
  assert.match(renderXdpPacket(r), /\| xdp_lb, established flow/);
});

test.run();
