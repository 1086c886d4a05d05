// The minimal, ordered map writes that turn what the maps hold into the desired table. Pure.
//
// Order is what keeps connects from failing during a change: a new backend is written before any
// slot names it; a service's slots are written before its entry raises backend_count to cover them;
// slots are deleted only after the entry stops covering them; backends are deleted last, when no
// slot names them any more. A backend that stays keeps its slot, so a change touches only the slots
// whose backend changed.

import { Schedulers, ServiceFlags } from '../datapath/abi.ts';
import { type Capacity, DEFAULT_TABLE_POSITIONS, DEFAULT_TABLES } from '../datapath/maps.ts';
import { type ErrorCode, ErrorCodes } from '../errors.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE, maglevTable } from '../model/maglev.ts';
import { type SchedulerName, TABLE_SCHEDULERS, WEIGHT_TABLE_SCHEDULERS, weightTable, wrrSequence, wrrTurns } from '../model/scheduler.ts';
import { runSteps, STEP_EVERY } from '../model/steps.ts';
import { type Backend, type DesiredFrontend, endpointKey, type Family, type Frontend, type ServiceName } from '../model/types.ts';
import { liveBackendIds, type ProgrammedService, type ProgrammedState } from './state.ts';

export type Op =
  /** `key`: endpointKey(backend), made once by the plan for the state's index. */
  | { kind: 'put-backend'; id: number; backend: Backend; key: string }
  | { kind: 'reset-backend-counters'; id: number }
  | { kind: 'put-slot'; serviceId: number; slot: number; backendId: number }
  | { kind: 'reset-service-counters'; serviceId: number }
  | {
      kind: 'put-service';
      frontend: Frontend;
      /** endpointKey(frontend), as the plan keys it. */
      key: string;
      serviceId: number;
      backendCount: number;
      flags: number;
      affinityTimeout: number;
      /** enum lb_scheduler */
      scheduler: number;
    }
  | { kind: 'put-table'; serviceId: number; slots: Uint16Array; tableKey: string }
  | { kind: 'delete-table'; serviceId: number }
  | { kind: 'delete-slot'; serviceId: number; slot: number }
  | { kind: 'delete-service'; frontend: Frontend }
  | { kind: 'delete-backend'; id: number; backend: Backend };

/** The writes for one frontend; applied as a unit, so a failure stops at a consistent point. */
export interface FrontendChange {
  /** endpointKey(frontend), or `orphan/<service id>` for the clean-up of orphan slots. */
  key: string;
  frontend: Frontend | undefined;
  /** Absent for a frontend being removed. */
  service?: ServiceName;
  ops: Op[];
}

export interface PlanProblem {
  key: string;
  service: ServiceName;
  code: ErrorCode;
  message: string;
}

export interface Plan {
  /** Removals first (they free room), then additions and changes. */
  changes: FrontendChange[];
  /** Backends no slot names once every change is applied. */
  backendDeletes: Op[];
  /** Frontends left as they are because they do not fit. */
  problems: PlanProblem[];
}

interface KnownKey {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  readonly protocol: string;
  readonly scope: Frontend['scope'];
  readonly key: string;
}

/**
 * endpointKey of frontends seen before: desired() with a cache hands over the same Frontend objects
 * sync after sync, and a key string made once keeps its hash. Checked against the fields, so an
 * object changed in place is keyed afresh.
 */
const frontendKeys = new WeakMap<Frontend, KnownKey>();

export function frontendKey(f: Frontend): string {
  const k = frontendKeys.get(f);
  if (k && k.address === f.address && k.port === f.port && k.protocol === f.protocol && k.family === f.family && k.scope === f.scope) {
    return k.key;
  }
  const key = endpointKey(f);
  frontendKeys.set(f, { family: f.family, address: f.address, port: f.port, protocol: f.protocol, scope: f.scope, key });
  return key;
}

class IdPool {
  readonly #inUse: (id: number) => boolean;
  readonly #taken = new Set<number>();
  readonly #limit: number;
  #next: number;

  /** `inUse` says which ids the state holds, asked lazily from `floor`, below which every id is in use. */
  constructor(inUse: (id: number) => boolean, limit: number, floor: number) {
    this.#inUse = inUse;
    this.#limit = limit;
    this.#next = floor;
  }

  /** The lowest free id, or undefined when all are taken. */
  take(): number | undefined {
    while (this.#next < this.#limit && (this.#taken.has(this.#next) || this.#inUse(this.#next))) this.#next++;
    if (this.#next >= this.#limit) return undefined;
    this.#taken.add(this.#next);
    return this.#next;
  }
}

interface Room {
  slots: number;
  tables: number;
  tablePositions: number;
  services: Record<Family, number>;
  backends: Record<Family, number>;
}

export interface PlanOptions {
  /**
   * Pass over frontends the maps already hold exactly as desired without building their ops (default
   * true). The plan is the same either way; false exists so tests can prove that.
   */
  skipProgrammed?: boolean;
  /** The node's scheduler where a Service names none (--scheduler, --maglev-table-size); default random. */
  defaults?: SchedulerDefaults;
}

export interface SchedulerDefaults {
  scheduler: SchedulerName;
  maglevTableSize: number;
}

const RANDOM_DEFAULTS: SchedulerDefaults = { scheduler: 'random', maglevTableSize: DEFAULT_MAGLEV_TABLE_SIZE };

/** How a frontend schedules, its annotations over the node's defaults. */
interface Scheduling {
  name: SchedulerName;
  /** enum lb_scheduler */
  id: number;
  tableSize: number;
  weights: Readonly<Record<string, number>> | undefined;
}

function schedulingOf(d: DesiredFrontend, defaults: SchedulerDefaults): Scheduling {
  const name = d.scheduling?.scheduler ?? defaults.scheduler;
  return {
    name,
    id: Schedulers[name],
    tableSize: d.scheduling?.maglevTableSize ?? defaults.maglevTableSize,
    weights: d.scheduling?.weights,
  };
}

export function plan(desired: readonly DesiredFrontend[], state: ProgrammedState, capacity: Capacity, options: PlanOptions = {}): Plan {
  return runSteps(planSteps(desired, state, capacity, options));
}

/** plan(), yielding between frontends (src/model/steps.ts). */
export function* planSteps(
  desired: readonly DesiredFrontend[],
  state: ProgrammedState,
  capacity: Capacity,
  options: PlanOptions = {},
): Generator<void, Plan> {
  const wanted = new Map<string, DesiredFrontend>();
  for (const d of desired) {
    const key = frontendKey(d.frontend);
    if (!wanted.has(key)) wanted.set(key, d);
  }
  const removed: [string, ProgrammedService][] = [];
  for (const [key, svc] of state.services) if (!wanted.has(key)) removed.push([key, svc]);
  return yield* planFor(wanted, removed, state, capacity, options);
}

/**
 * The plan for some frontends only, for a table that changed in a few places: `changes` maps the
 * key of each frontend that may differ from what the maps hold to its entry, or to undefined when it
 * is to go. Frontends not named are left as they are, so the work follows the change, not the table.
 * Given every frontend that differs, it is the plan plan() would make for the whole table.
 */
export function planChanges(
  changes: ReadonlyMap<string, DesiredFrontend | undefined>,
  state: ProgrammedState,
  capacity: Capacity,
  options: PlanOptions = {},
): Plan {
  const wanted = new Map<string, DesiredFrontend>();
  const removed: [string, ProgrammedService][] = [];
  for (const [key, d] of changes) {
    if (d) {
      wanted.set(frontendKey(d.frontend), d);
      continue;
    }
    const svc = state.services.get(key);
    if (svc) removed.push([key, svc]);
  }
  return runSteps(planFor(wanted, removed, state, capacity, options));
}

/** Writes for the `wanted` frontends and removals for `removed`, with room and ids taken from the state. */
function* planFor(
  wanted: ReadonlyMap<string, DesiredFrontend>,
  removed: readonly [string, ProgrammedService][],
  state: ProgrammedState,
  capacity: Capacity,
  options: PlanOptions,
): Generator<void, Plan> {
  const skip = options.skipProgrammed ?? true;
  const defaults = options.defaults ?? RANDOM_DEFAULTS;
  const changes: FrontendChange[] = [];
  const problems: PlanProblem[] = [];
  const room = roomLeft(state, capacity);

  for (const [serviceId, slots] of state.orphanSlots) {
    changes.push({
      key: `orphan/${serviceId}`,
      frontend: undefined,
      ops: [...tableDelete(state, serviceId, room), ...slotDeletes(serviceId, slots)],
    });
    room.slots += slots.size;
  }
  // A table whose service entry was never written (its put failed) or is gone without slots.
  for (const serviceId of state.tables.keys()) {
    if (state.byId(serviceId) || state.orphanSlots.has(serviceId)) continue;
    changes.push({ key: `orphan/${serviceId}`, frontend: undefined, ops: tableDelete(state, serviceId, room) });
  }
  // Which backends end up unnamed follows from the state's live reference counts: only those named by
  // the current entries of frontends this plan rewrites or removes (or by none at all) can be.
  const released = new Map<number, number>();
  const release = (svc: ProgrammedService): void => {
    for (let slot = 1; slot <= svc.backendCount; slot++) {
      const id = svc.slots.get(slot);
      if (id !== undefined) released.set(id, (released.get(id) ?? 0) + 1);
    }
  };
  /** Backend ids in the final slots of the frontends this plan rewrites (or refuses to). */
  const kept = new Set<number>();
  const keep = (ids: readonly number[]): void => {
    for (const id of ids) kept.add(id);
  };

  for (const [key, svc] of removed) {
    release(svc);
    const [deleteService, ...deleteSlots] = removalOps(svc);
    changes.push({ key, frontend: svc.frontend, ops: [deleteService!, ...tableDelete(state, svc.serviceId, room), ...deleteSlots] });
    room.slots += svc.slots.size;
    room.services[svc.frontend.family]++;
  }

  // Backends this plan adds, by key; the rest are looked up in the state.
  const planned = new Map<string, number>();
  // Backends already held whose value this plan rewrites (a new node address).
  const refreshed = new Set<number>();
  const backendPool = new IdPool((id) => state.backends.has(id), capacity.backendIds, state.backendIdFloor());
  const servicePool = new IdPool(
    (id) => state.byId(id) !== undefined || state.orphanSlots.has(id) || state.tables.has(id),
    capacity.serviceIds,
    state.serviceIdFloor(),
  );
  const exactIds = !state.hasDuplicateBackends();

  let visited = 0;
  for (const [key, d] of wanted) {
    if (++visited % STEP_EVERY === 0) yield;
    const current = state.services.get(key);
    const sched = schedulingOf(d, defaults);
    // (With a room already overdrawn the slow path refuses even an unchanged frontend: let it.)
    const roomOk = room.slots >= 0 && room.backends[4] >= 0 && room.backends[6] >= 0;
    if (skip && current && exactIds && roomOk && isProgrammed(current, d, state, sched)) {
      // Nothing to write, and its backends stay named: the common case, checked without building keys or ops.
      continue;
    }
    if (current) release(current);
    const refuse = (code: ErrorCode, message: string) => {
      problems.push({ key, service: d.service, code, message });
      if (current) keep(liveBackendIds(current));
    };

    // New backend ids become visible to later frontends only once this frontend is accepted.
    const backendOps: Op[] = [];
    const pending = new Map<string, number>();
    const refreshing = new Set<number>();
    const ids: number[] = [];
    const newBackends = { 4: 0, 6: 0 };
    for (const b of d.backends) {
      const bkey = endpointKey(b);
      let id = planned.get(bkey) ?? state.backendIdOf(bkey) ?? pending.get(bkey);
      const held = id === undefined ? undefined : state.backends.get(id);
      if (id !== undefined && held && !sameNode(held, b) && !refreshed.has(id) && !refreshing.has(id)) {
        // The backend's node address changed (or became known): rewritten in place, under the same
        // id, so its flows (their entries name the id) go on.
        refreshing.add(id);
        backendOps.push({ kind: 'put-backend', id, backend: b, key: bkey });
      } else if (id === undefined) {
        newBackends[b.family]++;
        id = backendPool.take();
        if (id === undefined) break;
        pending.set(bkey, id);
        backendOps.push({ kind: 'reset-backend-counters', id }, { kind: 'put-backend', id, backend: b, key: bkey });
      }
      ids.push(id);
    }
    if (ids.length < d.backends.length || newBackends[4] > room.backends[4] || newBackends[6] > room.backends[6]) {
      refuse(ErrorCodes.MAP_FULL, `no room for ${d.backends.length} backends (backend maps hold ${capacity.backends} per family)`);
      continue;
    }

    let serviceId = current?.serviceId;
    const ops: Op[] = [...backendOps];
    if (serviceId === undefined) {
      serviceId = room.services[d.frontend.family] < 1 ? undefined : servicePool.take();
      if (serviceId === undefined) {
        refuse(ErrorCodes.MAP_FULL, `no room for another frontend (service map holds ${capacity.services} per family)`);
        continue;
      }
      ops.push({ kind: 'reset-service-counters', serviceId });
    }

    const layout = slotLayout(current, ids);
    const addedSlots = layout.writes.filter((w) => !current?.slots.has(w.slot)).length - layout.deletes.length;
    if (addedSlots > room.slots) {
      refuse(ErrorCodes.MAP_FULL, `no room for ${ids.length} backend slots (slot map holds ${capacity.slots})`);
      continue;
    }

    for (const w of layout.writes) ops.push({ kind: 'put-slot', serviceId, slot: w.slot, backendId: w.backendId });
    // The table goes in after the slots it names and before the entry that asks for it.
    const table = TABLE_SCHEDULERS.has(sched.name) ? tableOf(sched, d, ids, layout.final) : undefined;
    if (table && state.tables.get(serviceId) !== table.key) {
      const grows = table.length - state.tableLength(serviceId);
      const isNew = !state.tables.has(serviceId);
      if ((isNew && room.tables < 1) || grows > room.tablePositions) {
        // Without its table the kernel falls back to the slots: wrr turns rr, maglev hashes over them.
        problems.push({
          key,
          service: d.service,
          code: ErrorCodes.MAP_FULL,
          message: `no room for a ${sched.name} table of ${table.length} positions (${capacity.tables ?? DEFAULT_TABLES} tables of ${capacity.tablePositions ?? DEFAULT_TABLE_POSITIONS} positions in all); balancing over the slots meanwhile`,
        });
      } else {
        ops.push({ kind: 'put-table', serviceId, slots: table.build(), tableKey: table.key });
        if (isNew) room.tables--;
        room.tablePositions -= grows;
      }
    }
    const affinityTimeout = d.affinityTimeoutSeconds ?? 0;
    const flags = serviceFlags(d);
    if (
      !current ||
      current.backendCount !== ids.length ||
      current.flags !== flags ||
      current.affinityTimeout !== affinityTimeout ||
      (current.scheduler ?? 0) !== sched.id
    ) {
      ops.push({
        kind: 'put-service',
        frontend: d.frontend,
        key,
        serviceId,
        backendCount: ids.length,
        flags,
        affinityTimeout,
        scheduler: sched.id,
      });
    }
    if (!table) ops.push(...tableDelete(state, serviceId, room));
    for (const slot of layout.deletes) ops.push({ kind: 'delete-slot', serviceId, slot });

    room.slots -= addedSlots;
    room.backends[4] -= newBackends[4];
    room.backends[6] -= newBackends[6];
    if (!current) room.services[d.frontend.family]--;
    for (const [bkey, id] of pending) planned.set(bkey, id);
    for (const id of refreshing) refreshed.add(id);
    keep(layout.final);
    if (ops.length > 0) changes.push({ key, frontend: d.frontend, service: d.service, ops });
  }

  const candidates = new Set<number>(state.unreferencedBackends());
  for (const id of released.keys()) candidates.add(id);
  const backendDeletes: Op[] = [...candidates]
    .filter((id) => state.backends.has(id) && !kept.has(id) && state.liveRefs(id) - (released.get(id) ?? 0) <= 0)
    .sort((a, b) => state.compareBackendIds(a, b))
    .map((id) => ({ kind: 'delete-backend', id, backend: state.backends.get(id)! }));
  return { changes, backendDeletes, problems };
}

/**
 * Whether the maps already hold `d` exactly as the slow path would leave them with no write: its
 * backends, each under the id the state gives its key, in slots 1..n with no slot above, and the same
 * flags. Compares backend fields directly (no keys built); with duplicate backend ids in the state
 * (adopted maps) the caller takes the slow path instead.
 */
function isProgrammed(current: ProgrammedService, d: DesiredFrontend, state: ProgrammedState, sched: Scheduling): boolean {
  const n = d.backends.length;
  const affinityTimeout = d.affinityTimeoutSeconds ?? 0;
  const flags = serviceFlags(d);
  if (current.backendCount !== n || current.slots.size !== n || current.flags !== flags || current.affinityTimeout !== affinityTimeout) {
    return false;
  }
  if ((current.scheduler ?? 0) !== sched.id || !tableIsProgrammed(current, state, sched)) return false;
  if (n > SMALL) return isProgrammedLarge(current, d, state);
  // Each slot holds a distinct id whose backend matches a distinct wanted backend, so none is missing.
  let used = 0;
  for (let slot = 1; slot <= n; slot++) {
    const id = current.slots.get(slot);
    const b = id === undefined ? undefined : state.backends.get(id);
    if (!b) return false;
    for (let earlier = 1; earlier < slot; earlier++) if (current.slots.get(earlier) === id) return false;
    let found = -1;
    for (let j = 0; j < n; j++) {
      if ((used & (1 << j)) === 0 && sameBackend(b, d.backends[j]!)) {
        found = j;
        break;
      }
    }
    if (found < 0) return false;
    used |= 1 << found;
  }
  return true;
}

const SMALL = 16;

/**
 * The entry's flags: session affinity; and for the entry outside traffic reads, whether only local
 * backends serve it (externalTrafficPolicy: Local) and whether its sources are checked.
 */
export function serviceFlags(d: DesiredFrontend): number {
  let flags = (d.affinityTimeoutSeconds ?? 0) > 0 ? ServiceFlags.affinity : 0;
  if (d.frontend.scope === 'external') {
    if (d.externalLocal) flags |= ServiceFlags.local;
    if ((d.sourceRanges?.length ?? 0) > 0) flags |= ServiceFlags.sourceRanges;
  }
  return flags;
}

function isProgrammedLarge(current: ProgrammedService, d: DesiredFrontend, state: ProgrammedState): boolean {
  const want = new Set<number>();
  for (const b of d.backends) {
    const id = state.backendIdOf(endpointKey(b));
    const held = id === undefined ? undefined : state.backends.get(id);
    if (id === undefined || !held || want.has(id) || !sameNode(held, b)) return false;
    want.add(id);
  }
  for (let slot = 1; slot <= d.backends.length; slot++) {
    const id = current.slots.get(slot);
    if (id === undefined || !want.delete(id)) return false;
  }
  return want.size === 0;
}

/** Whether the held backend `a` serves the wanted `b`. */
function sameBackend(a: Backend, b: Backend): boolean {
  return (
    a.address === b.address &&
    a.port === b.port &&
    a.protocol === b.protocol &&
    a.family === b.family &&
    a.local === b.local &&
    sameNode(a, b)
  );
}

/**
 * Whether the held backend's node address serves the wanted one. A wanted backend without one keeps
 * the address held: the same endpoint may come from another slice without a nodeName (a hand-made
 * or mirrored one), and clearing there but setting it back for the next frontend would rewrite the
 * entry at every sync. An address learnt for an endpoint stays until another one replaces it.
 */
function sameNode(held: Backend, wanted: Backend): boolean {
  return wanted.node === undefined || held.node === wanted.node;
}

function roomLeft(state: ProgrammedState, capacity: Capacity): Room {
  return {
    slots: capacity.slots - state.serviceSlotCount(),
    tables: (capacity.tables ?? DEFAULT_TABLES) - state.tables.size,
    tablePositions: (capacity.tablePositions ?? DEFAULT_TABLE_POSITIONS) - state.tablePositions,
    services: { 4: capacity.services - state.serviceCount(4), 6: capacity.services - state.serviceCount(6) },
    backends: { 4: capacity.backends - state.backendCount(4), 6: capacity.backends - state.backendCount(6) },
  };
}

function removalOps(svc: ProgrammedService): Op[] {
  return [{ kind: 'delete-service', frontend: svc.frontend }, ...slotDeletes(svc.serviceId, svc.slots)];
}

function slotDeletes(serviceId: number, slots: Map<number, number>): Op[] {
  return [...slots.keys()].sort((a, b) => a - b).map((slot) => ({ kind: 'delete-slot', serviceId, slot }));
}

interface SlotLayout {
  writes: { slot: number; backendId: number }[];
  deletes: number[];
  /** Backend ids of slots 1..n once applied. */
  final: number[];
}

/**
 * Places the wanted backends in slots 1..n, keeping every backend that stays where it is and
 * filling the freed slots with new backends, then with backends from slots above n.
 */
export function slotLayout(current: ProgrammedService | undefined, wanted: readonly number[]): SlotLayout {
  const n = wanted.length;
  const want = new Set(wanted);
  const final: number[] = new Array(n);
  const placed = new Set<number>();
  for (let slot = 1; slot <= n; slot++) {
    const id = current && slot <= current.backendCount ? current.slots.get(slot) : undefined;
    if (id !== undefined && want.has(id) && !placed.has(id)) {
      final[slot - 1] = id;
      placed.add(id);
    }
  }
  const rest = wanted.filter((id) => !placed.has(id));
  const writes: { slot: number; backendId: number }[] = [];
  for (let slot = 1; slot <= n; slot++) {
    if (final[slot - 1] !== undefined) continue;
    const id = rest.shift()!;
    final[slot - 1] = id;
    writes.push({ slot, backendId: id });
  }
  const deletes = current ? [...current.slots.keys()].filter((slot) => slot > n).sort((a, b) => a - b) : [];
  return { writes, deletes, final };
}

/** The delete of a service's table, if it has one, with the room it frees. */
function tableDelete(state: ProgrammedState, serviceId: number, room: Room): Op[] {
  if (!state.tables.has(serviceId)) return [];
  room.tables++;
  room.tablePositions += state.tableLength(serviceId);
  return [{ kind: 'delete-table', serviceId }];
}

/**
 * A backend's name in a Maglev table: its address, port and protocol, never whether it is local,
 * so every node hashes it alike.
 */
export function tableName(b: Backend): string {
  return endpointKey(b.local ? { ...b, local: undefined } : b);
}

interface TablePlan {
  /** What the table is built from (scheduler, size, each slot's backend and weight): equal keys, equal tables. */
  key: string;
  length: number;
  build(): Uint16Array;
}

/**
 * The table of a wrr or maglev frontend whose slots will hold `final` (backend ids, slot order);
 * `ids[j]` is the id of d.backends[j]. Built only when its key differs from what the maps hold.
 */
function tableOf(sched: Scheduling, d: DesiredFrontend, ids: readonly number[], final: readonly number[]): TablePlan {
  const slotOf = new Map<number, number>();
  for (const [i, id] of final.entries()) slotOf.set(id, i);
  const names: string[] = new Array(final.length);
  const weights: number[] = new Array(final.length);
  d.backends.forEach((b, j) => {
    const at = slotOf.get(ids[j]!)!;
    names[at] = tableName(b);
    weights[at] = sched.weights?.[b.address] ?? 1;
  });
  return tablePlan(sched, names, weights);
}

function tablePlan(sched: Scheduling, names: string[], weights: number[]): TablePlan {
  const size = sched.name === 'maglev' ? sched.tableSize : 0;
  const key = `${sched.name}/${size}/${names.map((name, i) => `${name}=${weights[i]}`).join(',')}`;
  const build = (): Uint16Array => {
    if (WEIGHT_TABLE_SCHEDULERS.has(sched.name)) return weightTable(weights);
    const positions = sched.name === 'maglev' ? maglevTable(names, weights, size) : wrrSequence(weights);
    // Backend index i sits in slot i + 1.
    for (let p = 0; p < positions.length; p++) positions[p]!++;
    return positions;
  };
  const length =
    sched.name === 'maglev'
      ? weights.some((w) => w > 0)
        ? size
        : 0
      : WEIGHT_TABLE_SCHEDULERS.has(sched.name)
        ? weights.length + wrrLength(weights)
        : wrrLength(weights);
  return { key, length, build };
}

function wrrLength(weights: readonly number[]): number {
  return wrrTurns(weights).reduce((a, b) => a + b, 0);
}

/** Whether the maps hold the table `sched` wants for `current`'s slots (and none when it wants none). */
function tableIsProgrammed(current: ProgrammedService, state: ProgrammedState, sched: Scheduling): boolean {
  const held = state.tables.get(current.serviceId);
  if (!TABLE_SCHEDULERS.has(sched.name)) return held === undefined;
  if (held === undefined) return false;
  const names: string[] = [];
  const weights: number[] = [];
  for (let slot = 1; slot <= current.backendCount; slot++) {
    const b = state.backends.get(current.slots.get(slot) ?? 0);
    if (!b) return false;
    names.push(tableName(b));
    weights.push(sched.weights?.[b.address] ?? 1);
  }
  return tablePlan(sched, names, weights).key === held;
}
