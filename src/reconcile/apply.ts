// Carries out plan ops against the maps, keeping the programmed state equal to what was written.

import { type DatapathMaps, eachUntilFailure, type ServiceEntry } from '../datapath/maps.ts';
import type { FrontendChange, Op } from './plan.ts';
import type { ProgrammedState } from './state.ts';

/** Writes one op and records it in the state; throws what the map write threw, state untouched. */
export function applyOp(maps: DatapathMaps, state: ProgrammedState, op: Op): void {
  writeOp(maps, op);
  recordOp(state, op);
}

function writeOp(maps: DatapathMaps, op: Op): void {
  switch (op.kind) {
    case 'put-backend':
      maps.putBackend(op.id, op.backend);
      return;
    case 'reset-backend-counters':
      maps.resetBackendCounters(op.id);
      return;
    case 'put-slot':
      maps.putSlot({ serviceId: op.serviceId, slot: op.slot, backendId: op.backendId });
      return;
    case 'reset-service-counters':
      maps.resetServiceCounters(op.serviceId);
      return;
    case 'put-service':
      maps.putService(op.frontend, serviceEntry(op));
      return;
    case 'put-table':
      maps.putTable(op.serviceId, op.slots);
      return;
    case 'delete-table':
      maps.deleteTable(op.serviceId);
      return;
    case 'delete-slot':
      maps.deleteSlot(op.serviceId, op.slot);
      return;
    case 'delete-service':
      maps.deleteService(op.frontend);
      return;
    case 'delete-backend':
      maps.deleteBackend(op.id, op.backend.family);
      return;
  }
}

function serviceEntry(op: Extract<Op, { kind: 'put-service' }>): ServiceEntry {
  return {
    serviceId: op.serviceId,
    backendCount: op.backendCount,
    flags: op.flags,
    affinityTimeout: op.affinityTimeout,
    ...(op.scheduler === 0 ? {} : { scheduler: op.scheduler }),
  };
}

/** Records in the state an op the maps now hold. */
export function recordOp(state: ProgrammedState, op: Op): void {
  switch (op.kind) {
    case 'put-backend':
      state.setBackend(op.id, op.backend, op.key);
      return;
    case 'reset-backend-counters':
    case 'reset-service-counters':
      return;
    case 'put-slot':
      state.setSlot(op.serviceId, op.slot, op.backendId);
      return;
    case 'put-service': {
      const slots = state.byId(op.serviceId)?.slots ?? state.takeSlots(op.serviceId);
      state.setService({ frontend: op.frontend, ...serviceEntry(op), slots }, op.key);
      return;
    }
    case 'put-table':
      state.setTable(op.serviceId, op.tableKey, op.slots.length);
      return;
    case 'delete-table':
      state.deleteTable(op.serviceId);
      return;
    case 'delete-slot':
      state.deleteSlot(op.serviceId, op.slot);
      return;
    case 'delete-service':
      state.removeService(op.frontend);
      return;
    case 'delete-backend':
      state.deleteBackend(op.id);
      return;
  }
}

/**
 * The op kinds a batch writes, in the order it writes them: phase by phase over many frontends, so
 * every frontend's backends are in before the slots that name them, and its slots and table before
 * the entry that covers them, as op by op. (Counter resets go before the puts of their phase.)
 */
const PHASES = ['reset-backend-counters', 'put-backend', 'reset-service-counters', 'put-slot', 'put-table', 'put-service'] as const;
type PhaseKind = (typeof PHASES)[number];
const PHASE_KINDS: ReadonlySet<Op['kind']> = new Set(PHASES);

/** Whether a frontend's change only writes entries (no deletes), so it can go in a batch. */
export function isBatchable(change: FrontendChange): boolean {
  return change.ops.every((op) => PHASE_KINDS.has(op.kind));
}

/**
 * Writes every op of `changes` (all batchable) phase by phase, a batch per map, and records what went
 * in. Returns undefined when all went in; else, the ops that did (a phase that fails part way stops
 * the batch there): the caller writes the rest op by op, to see and report each failure as usual.
 */
export function* applyBatch(
  maps: DatapathMaps,
  state: ProgrammedState,
  changes: readonly FrontendChange[],
): Generator<void, Set<Op> | undefined> {
  const phases = new Map<PhaseKind, Op[]>(PHASES.map((kind) => [kind, []]));
  for (const change of changes) for (const op of change.ops) phases.get(op.kind as PhaseKind)!.push(op);
  for (const [p, kind] of PHASES.entries()) {
    const ops = phases.get(kind)!;
    if (ops.length === 0) continue;
    yield;
    const done = writeBatch(maps, ops);
    for (let i = 0; i < done; i++) recordOp(state, ops[i]!);
    if (done < ops.length) {
      const written = new Set<Op>(ops.slice(0, done));
      for (const earlier of PHASES.slice(0, p)) for (const op of phases.get(earlier)!) written.add(op);
      return written;
    }
  }
  return undefined;
}

/** Writes ops of one kind; how many leading ones went in. */
function writeBatch(maps: DatapathMaps, ops: readonly Op[]): number {
  // Every op in `ops` is of the kind of the first.
  const of = <K extends Op['kind']>(_kind: K) => ops as readonly Extract<Op, { kind: K }>[];
  switch (ops[0]!.kind) {
    case 'reset-backend-counters':
      return maps.resetBackendCountersBatch(of('reset-backend-counters').map((op) => op.id));
    case 'put-backend':
      // The ops are BackendEntry and SlotEntry as they are: no copy per entry.
      return maps.putBackends(of('put-backend'));
    case 'reset-service-counters':
      return maps.resetServiceCountersBatch(of('reset-service-counters').map((op) => op.serviceId));
    case 'put-slot':
      return maps.putSlots(of('put-slot'));
    case 'put-service':
      return maps.putServices(of('put-service').map((op) => ({ frontend: op.frontend, entry: serviceEntry(op) })));
    default:
      // Tables are one map each, swapped in whole: no batch to make.
      return eachUntilFailure(ops, (op) => writeOp(maps, op));
  }
}
