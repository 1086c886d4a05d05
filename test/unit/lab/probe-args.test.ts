import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProbeArgs } from '../../../src/lab/probe.ts';

test('--hold keeps TCP connections open; UDP has none to hold, and says so', () => {
  assert.is(parseProbeArgs(['tcp', '--target', '10.96.0.10:80', '--count', '20', '--hold']).hold, true);
  assert.is(parseProbeArgs(['connect-only', '--target', '[fd00::10]:80', '--hold']).hold, true);
  assert.is(parseProbeArgs(['tcp', '--target', '10.96.0.10:80']).hold, false);
  assert.throws(() => parseProbeArgs(['udp', '--target', '10.96.0.10:53', '--hold']), /--hold is for tcp and connect-only/);
});

test.run();
