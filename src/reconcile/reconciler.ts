// Keeps the maps equal to the desired table: plan against the programmed state, apply each
// frontend's writes as a unit, record what failed per service, and never stop at one failure.

import type { DatapathMaps } from '../datapath/maps.ts';
import { type ErrorCode, ErrorCodes } from '../errors.ts';
import { runSteps, STEP_EVERY } from '../model/steps.ts';
import type { Backend, DesiredFrontend, ServiceName } from '../model/types.ts';
import { applyOp } from './apply.ts';
import { type Op, type PlanProblem, planSteps, type SchedulerDefaults } from './plan.ts';
import { ProgrammedState } from './state.ts';

export interface ReconcileResult {
  /** Map writes and deletes carried out. */
  writes: number;
  /** Backends deleted from the maps: the agent ends the sockets still aimed at them. */
  removedBackends: Backend[];
  /** Frontends not (fully) programmed this time, by frontend key. */
  problems: PlanProblem[];
}

export class Reconciler {
  readonly #maps: DatapathMaps;
  readonly #state: ProgrammedState;
  readonly #planOptions: { defaults?: SchedulerDefaults };

  /** Adopts whatever the maps already hold. `defaults`: the scheduler of Services that name none. */
  constructor(maps: DatapathMaps, options: { defaults?: SchedulerDefaults } = {}) {
    this.#maps = maps;
    this.#planOptions = options.defaults ? { defaults: options.defaults } : {};
    this.#state = ProgrammedState.fromDump(maps.dump());
  }

  get maps(): DatapathMaps {
    return this.#maps;
  }

  get state(): ProgrammedState {
    return this.#state;
  }

  reconcile(desired: readonly DesiredFrontend[]): ReconcileResult {
    return runSteps(this.reconcileSteps(desired));
  }

  /** reconcile(), yielding between frontends (src/model/steps.ts). */
  *reconcileSteps(desired: readonly DesiredFrontend[]): Generator<void, ReconcileResult> {
    const p = yield* planSteps(desired, this.#state, this.#maps.capacity, this.#planOptions);
    const problems = [...p.problems];
    let writes = 0;
    let done = 0;
    for (const change of p.changes) {
      // A change is a handful of syscalls: worth a yield each.
      yield;
      for (const op of change.ops) {
        try {
          applyOp(this.#maps, this.#state, op);
          writes++;
        } catch (err) {
          const service = change.service ?? { namespace: '', name: '' };
          problems.push({ key: change.key, service, ...describeFailure(err, op, service) });
          break;
        }
      }
    }
    const removedBackends: Backend[] = [];
    for (const op of p.backendDeletes) {
      if (++done % STEP_EVERY === 0) yield;
      // A slot whose delete failed still names its backend: keep that backend.
      if (op.kind !== 'delete-backend' || this.#state.isReferenced(op.id)) continue;
      try {
        applyOp(this.#maps, this.#state, op);
        writes++;
        removedBackends.push(op.backend);
      } catch (err) {
        problems.push({ key: `backend/${op.id}`, service: { namespace: '', name: '' }, ...describeFailure(err, op) });
      }
    }
    return { writes, removedBackends, problems };
  }
}

function describeFailure(err: unknown, op: Op, service?: ServiceName): { code: ErrorCode; message: string } {
  const e = err as { code?: string; message?: string };
  const who = service?.name ? `${service.namespace}/${service.name}: ` : '';
  if (e.code === 'E2BIG' || e.code === 'ENOSPC' || e.code === 'ENOMEM') {
    return { code: ErrorCodes.MAP_FULL, message: `${who}${op.kind} failed, map full: ${e.message ?? e.code}` };
  }
  return { code: ErrorCodes.BPF, message: `${who}${op.kind} failed: ${e.message ?? String(err)}` };
}
