import * as assert from 'uvu/assert';
import { BpfError } from '../../src/bpf/binding.ts';

/** Asserts that err is a BpfError from `operation` with errno `code`, and returns it. */
function assertBpfError(err: unknown, code: string, operation: string): BpfError {
  assert.instance(err, BpfError);
  const e = err as BpfError;
  assert.is(e.code, code, e.message);
  assert.is(e.operation, operation);
  assert.ok(e.message.includes(operation), e.message);
  return e;
}

function noError(code: string, operation: string): assert.Assertion {
  return new assert.Assertion({
    message: `expected ${operation} to fail with ${code}`,
    operator: 'throws',
    expects: code,
    actual: 'no error',
  });
}

/** Asserts that fn throws a BpfError from `operation` with errno `code`, and returns it. */
export function throwsBpf(fn: () => unknown, code: string, operation: string): BpfError {
  try {
    fn();
  } catch (err) {
    return assertBpfError(err, code, operation);
  }
  throw noError(code, operation);
}

/** Asserts that promise rejects with a BpfError from `operation` with errno `code`, and returns it. */
export async function rejectsBpf(promise: Promise<unknown>, code: string, operation: string): Promise<BpfError> {
  try {
    await promise;
  } catch (err) {
    return assertBpfError(err, code, operation);
  }
  throw noError(code, operation);
}
