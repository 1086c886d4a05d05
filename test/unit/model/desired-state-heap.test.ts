// A memory regression test at a size CI affords: what the agent keeps per service, in its model and
// in its picture of the maps, measured as retained heap after full garbage collections.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterOf, toKubernetes } from '../../../src/lab/services.ts';
import { DesiredState } from '../../../src/model/desired-state.ts';
import { runSteps } from '../../../src/model/steps.ts';
import { applyOp } from '../../../src/reconcile/apply.ts';
import { planChanges } from '../../../src/reconcile/plan.ts';
import { ProgrammedState } from '../../../src/reconcile/state.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const SERVICES = 5000;
/** Measured 1.0 KiB (model) and 1.5 KiB (programmed state) per service of one port and 3 endpoints. */
const MODEL_BYTES_PER_SERVICE = 1500;
const STATE_BYTES_PER_SERVICE = 2500;

test('the model and the programmed state keep under 1.5 KB and 2.5 KB per service', () => {
  const objects = toKubernetes(clusterOf(SERVICES, []));
  const before = heapAfterGc();
  const desired = new DesiredState({ name: 'node-a' });
  desired.replaceAll(objects.services, objects.slices);
  const changes = runSteps(desired.flush());
  const model = heapAfterGc() - before;

  const state = new ProgrammedState();
  const capacity = { services: 8192, slots: 32768, backends: 32768, serviceIds: 8192, backendIds: 32768 };
  const plan = planChanges(changes, state, capacity);
  // The state as the reconciler keeps it; the map writes themselves are not this test's subject.
  const noMaps = new Proxy({}, { get: () => () => {} }) as never;
  for (const change of plan.changes) for (const op of change.ops) applyOp(noMaps, state, op);
  const programmed = heapAfterGc() - before - model;

  assert.is(desired.size, SERVICES);
  assert.is(state.services.size, SERVICES);
  const perService = (bytes: number) => Math.round(bytes / SERVICES);
  assert.ok(perService(model) < MODEL_BYTES_PER_SERVICE, `model: ${perService(model)} bytes per service`);
  assert.ok(perService(programmed) < STATE_BYTES_PER_SERVICE, `programmed state: ${perService(programmed)} bytes per service`);
});

test.run();
