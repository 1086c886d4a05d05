// Long pure computations written as generators that yield between units of work, so one body
// serves both a caller that wants the result at once and the agent, which must keep its event loop
// answering health checks while it computes a table of 100,000 services.

/** Runs the steps to the end in one go. */
export function runSteps<T>(steps: Generator<void, T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/** How often a long computation yields to the event loop. */
export const STEP_SLICE_MS = 10;

/** Runs the steps, giving the event loop a turn whenever `sliceMs` of work has gone by. */
export async function runStepsSliced<T>(steps: Generator<void, T>, sliceMs = STEP_SLICE_MS): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    if (performance.now() - sliceStart >= sliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
}

/**
 * Units of work (objects, frontends) between two yields: a yield costs a small fraction of even the
 * cheapest unit, while 16 of the costliest (a service read for the first time) take about 5 ms.
 */
export const STEP_EVERY = 16;
