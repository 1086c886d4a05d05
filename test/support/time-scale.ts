// One knob for slow machines: SOCKLB_TEST_TIME_SCALE (default 1) multiplies the fixed waits and
// deadlines of the kernel tests. The QEMU lab sets it in its TCG guests, where everything runs
// 10-50x slower (tools/lab); on real hardware it stays 1, so a slow path still fails there.
// Waits that stand for a kernel or protocol timeout (an affinity timeout, a probe's pause) are
// not scaled: only how long a test is willing to wait for something that must happen.

const raw = process.env.SOCKLB_TEST_TIME_SCALE ?? '1';
const parsed = Number(raw);
if (!(parsed >= 1)) throw new RangeError(`SOCKLB_TEST_TIME_SCALE must be a number >= 1, not ${JSON.stringify(raw)}`);

/** The factor, >= 1. */
export const TIME_SCALE = parsed;

/** `ms` times the scale, rounded; capped at `max` when given (e.g. a flag's upper bound). */
export function scaled(ms: number, max = Infinity): number {
  return Math.min(Math.round(ms * TIME_SCALE), max);
}

/** Polls `check` every 20 ms until it holds; throws naming `what` after `ms` (scaled). */
export async function waitUntil(what: string, check: () => boolean, ms: number): Promise<void> {
  const limit = scaled(ms);
  const deadline = Date.now() + limit;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${limit} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
