// Keeps the maps equal to the desired table: plan against the programmed state, apply each
// frontend's writes as a unit, record what failed per service, and never stop at one failure.

import type { DatapathMaps } from '../datapath/maps.ts';
import { type ErrorCode, ErrorCodes } from '../errors.ts';
import { runSteps, STEP_EVERY } from '../model/steps.ts';
import type { Backend, DesiredFrontend, ServiceName } from '../model/types.ts';
import { applyBatch, applyOp, isBatchable } from './apply.ts';
import {
  type FrontendChange,
  frontendKey,
  type Op,
  type Plan,
  type PlanProblem,
  planChanges,
  planSteps,
  type SchedulerDefaults,
} from './plan.ts';
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
  readonly #batch: boolean;
  /** The table last asked for, by frontend key, so a change to a few frontends is planned against it. */
  readonly #wanted = new Map<string, DesiredFrontend>();
  /** Frontends the last reconcile refused or failed to write: planned again next time, changed or not. */
  #retry = new Set<string>();

  /**
   * Adopts whatever the maps already hold. `defaults`: the scheduler of Services that name none.
   * `batch` (default true): write long runs of additions in batches; the maps end the same either
   * way, and false exists so tests can prove that.
   */
  constructor(maps: DatapathMaps, options: { defaults?: SchedulerDefaults; batch?: boolean } = {}) {
    this.#maps = maps;
    this.#batch = options.batch ?? true;
    this.#planOptions = options.defaults ? { defaults: options.defaults } : {};
    this.#state = ProgrammedState.fromDump(maps.dump());
  }

  get maps(): DatapathMaps {
    return this.#maps;
  }

  get state(): ProgrammedState {
    return this.#state;
  }

  /** The entry last asked for under a frontend key. */
  wanted(key: string): DesiredFrontend | undefined {
    return this.#wanted.get(key);
  }

  reconcile(desired: readonly DesiredFrontend[]): ReconcileResult {
    return runSteps(this.reconcileSteps(desired));
  }

  /** reconcile(), yielding between frontends (src/model/steps.ts). */
  *reconcileSteps(desired: readonly DesiredFrontend[]): Generator<void, ReconcileResult> {
    this.#wanted.clear();
    for (const d of desired) {
      const key = frontendKey(d.frontend);
      if (!this.#wanted.has(key)) this.#wanted.set(key, d);
    }
    return yield* this.#apply(yield* planSteps(desired, this.#state, this.#maps.capacity, this.#planOptions));
  }

  /**
   * reconcile() for the table last reconciled with `changes` made to it: frontend key -> its new
   * entry, or undefined when it is gone. Plans only those frontends (and the ones the last reconcile
   * left undone), so one endpoint change costs the same at any number of services.
   */
  reconcileChanges(changes: ReadonlyMap<string, DesiredFrontend | undefined>): ReconcileResult {
    return runSteps(this.reconcileChangesSteps(changes));
  }

  /** reconcileChanges(), yielding between frontends. */
  *reconcileChangesSteps(changes: ReadonlyMap<string, DesiredFrontend | undefined>): Generator<void, ReconcileResult> {
    const dirty = new Map(changes);
    for (const [key, d] of changes) {
      if (d) this.#wanted.set(key, d);
      else this.#wanted.delete(key);
    }
    for (const key of this.#retry) if (!dirty.has(key)) dirty.set(key, this.#wanted.get(key));
    return yield* this.#apply(planChanges(dirty, this.#state, this.#maps.capacity, this.#planOptions));
  }

  *#apply(p: Plan): Generator<void, ReconcileResult> {
    const problems = [...p.problems];
    let writes = 0;
    let done = 0;
    const applyChange = (change: FrontendChange, skip?: Set<Op>): void => {
      for (const op of change.ops) {
        if (skip?.has(op)) continue;
        try {
          applyOp(this.#maps, this.#state, op);
          writes++;
        } catch (err) {
          const service = change.service ?? { namespace: '', name: '' };
          problems.push({ key: change.key, service, ...describeFailure(err, op, service) });
          break;
        }
      }
    };
    for (let i = 0; i < p.changes.length; ) {
      const run = this.#batch ? batchableRun(p.changes, i) : [];
      if (run.length < BATCH_FROM) {
        // A change is a handful of syscalls: worth a yield each.
        yield;
        applyChange(p.changes[i++]!);
        continue;
      }
      i += run.length;
      const written = yield* applyBatch(this.#maps, this.#state, run);
      writes += written?.size ?? run.reduce((n, change) => n + change.ops.length, 0);
      // What the batch left is written op by op, each failure stopping its own frontend as above.
      if (written) for (const change of run) applyChange(change, written);
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
    this.#retry = new Set(problems.map((pr) => pr.key).filter((key) => !key.startsWith('orphan/') && !key.startsWith('backend/')));
    return { writes, removedBackends, problems };
  }
}

/** Changes in a row that are written as one batch at least, and at most, this many. */
const BATCH_FROM = 16;
const BATCH_UP_TO = 64;

/** The batchable changes from `start` on, up to BATCH_UP_TO. */
function batchableRun(changes: readonly FrontendChange[], start: number): FrontendChange[] {
  let end = start;
  while (end < changes.length && end - start < BATCH_UP_TO && isBatchable(changes[end]!)) end++;
  return changes.slice(start, end);
}

function describeFailure(err: unknown, op: Op, service?: ServiceName): { code: ErrorCode; message: string } {
  const e = err as { code?: string; message?: string };
  const who = service?.name ? `${service.namespace}/${service.name}: ` : '';
  if (e.code === 'E2BIG' || e.code === 'ENOSPC' || e.code === 'ENOMEM') {
    return { code: ErrorCodes.MAP_FULL, message: `${who}${op.kind} failed, map full: ${e.message ?? e.code}` };
  }
  return { code: ErrorCodes.BPF, message: `${who}${op.kind} failed: ${e.message ?? String(err)}` };
}
