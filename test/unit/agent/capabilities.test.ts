import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAgentCapabilities, effectiveCapabilities, missingCapabilities } from '../../../src/agent/capabilities.ts';

const bit = (n: number) => 1n << BigInt(n);
const ALL = (1n << 41n) - 1n;
const status = (eff: bigint) =>
  `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${eff.toString(16).padStart(16, '0')}\nCapBnd:\t000001ffffffffff\n`;
const names = (eff: bigint, kernel: [number, number]) => missingCapabilities(eff, kernel).map((n) => n.name);

test('the effective set is read from the CapEff line, not CapBnd or CapInh', () => {
  assert.is(effectiveCapabilities(status(bit(39) | bit(12))), bit(39) | bit(12));
  assert.throws(() => effectiveCapabilities('Name:\tnode\n'), /no CapEff line/);
});

test('every capability present: nothing missing, on an old kernel and a new one', () => {
  assert.equal(names(ALL, [6, 18]), []);
  assert.equal(names(ALL, [5, 4]), []);
});

test('CAP_BPF or CAP_SYS_ADMIN dropped is named, the others are not', () => {
  assert.equal(names(ALL & ~bit(39), [6, 18]), ['BPF']);
  assert.equal(names(ALL & ~bit(21), [6, 18]), ['SYS_ADMIN']);
  assert.equal(names(ALL & ~bit(39) & ~bit(21), [6, 1]), ['BPF', 'SYS_ADMIN']);
});

test('CAP_SYS_RESOURCE is needed only where map memory is charged to RLIMIT_MEMLOCK (before 5.11)', () => {
  assert.equal(names(ALL & ~bit(24), [6, 18]), []);
  assert.equal(names(ALL & ~bit(24), [5, 11]), []);
  assert.equal(names(ALL & ~bit(24), [5, 10]), ['SYS_RESOURCE']);
});

test('before 5.8 there is no CAP_BPF or CAP_PERFMON to ask for: CAP_SYS_ADMIN covers bpf(2)', () => {
  assert.equal(names(ALL & ~bit(39) & ~bit(38), [5, 4]), []);
  assert.equal(names(ALL & ~bit(39), [5, 8]), ['BPF']);
});

test('the error is one line with the code, every missing capability and where to add it', () => {
  try {
    checkAgentCapabilities(status(ALL & ~bit(39) & ~bit(12)), '6.18.0');
    assert.unreachable('no error');
  } catch (err) {
    const e = err as Error & { code?: string };
    assert.is(e.code, 'SOCKLB_ERR_CAPABILITY');
    assert.not.match(e.message, /\n/);
    assert.match(e.message, /^missing CAP_BPF \(.*\), CAP_NET_ADMIN \(.*\): add BPF, NET_ADMIN to the container's securityContext/);
  }
  checkAgentCapabilities(status(ALL), '6.18.0');
});

test.run();
