import * as assert from 'uvu/assert';
import { BpfError } from '../../src/bpf/binding.ts';

/** Asserts that fn throws a BpfError from `operation` with errno `code`, and returns it. */
export function throwsBpf(fn: () => unknown, code: string, operation: string): BpfError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, BpfError);
    const e = err as BpfError;
    assert.is(e.code, code, e.message);
    assert.is(e.operation, operation);
    assert.ok(e.message.includes(operation), e.message);
    return e;
  }
  throw new assert.Assertion({
    message: `expected ${operation} to fail with ${code}`,
    operator: 'throws',
    expects: code,
    actual: 'no error',
  });
}
