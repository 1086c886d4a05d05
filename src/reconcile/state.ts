// The reconciler's picture of what the maps hold, rebuilt from a map dump at start-up.

import { Schedulers } from '../datapath/abi.ts';
import type { MapsDump } from '../datapath/maps.ts';
import { type Backend, endpointKey, type Family, type Frontend } from '../model/types.ts';

/** The table key of a table adopted from pinned maps: its content is not read back. */
export const UNKNOWN_TABLE = '?';
/** Schedulers (enum lb_scheduler) that pick through a table. */
export const TABLE_SCHEDULER_IDS: ReadonlySet<number> = new Set([Schedulers.wrr, Schedulers.maglev]);

export interface ProgrammedService {
  frontend: Frontend;
  serviceId: number;
  backendCount: number;
  flags: number;
  affinityTimeout: number;
  /** enum lb_scheduler; absent: random. */
  scheduler?: number;
  /** slot number -> backend id; may hold slots above backendCount left by an interrupted apply. */
  slots: Map<number, number>;
}

export class ProgrammedState {
  /** By endpointKey(frontend). */
  readonly services = new Map<string, ProgrammedService>();
  /** By backend id; change it through setBackend and deleteBackend, which keep the indexes. */
  readonly backends: ReadonlyMap<number, Backend> = new Map<number, Backend>();
  /**
   * Slots in the map whose service entry is absent: written for a service whose entry write then
   * failed, or left by a removal that was interrupted. Invisible to the datapath; deleted next time.
   */
  readonly orphanSlots = new Map<number, Map<number, number>>();
  /**
   * Service id -> what its scheduler table was built from (plan.ts's tableKey), for every id whose
   * table lb_tables holds; UNKNOWN_TABLE for one adopted from a dump (rewritten at the first sync).
   */
  readonly tables = new Map<number, string>();
  #tablePositions = 0;
  readonly #tableLengths = new Map<number, number>();
  readonly #keyById = new Map<number, string>();
  /** endpointKey(backend) -> the id holding it, or the ids in the order they entered `backends`. */
  readonly #idsByKey = new Map<string, number | number[]>();
  /** Backend id -> how many slots (of services and orphans, at any slot number) name it. */
  readonly #slotRefs = new Map<number, number>();
  /** Backend id -> how many live slots (1..backendCount of a service entry) name it. */
  readonly #liveRefs = new Map<number, number>();
  /** Ids in `backends` that no live slot names. */
  readonly #unreferenced = new Set<number>();
  /** Backend id -> when it entered `backends`, to list ids in that order without walking them all. */
  readonly #entered = new Map<number, number>();
  #entries = 0;
  /** Backends in `backends` by family, kept so /metrics need not walk them on each scrape. */
  readonly #perFamily = { 4: 0, 6: 0 };
  /** Service entries by family and the slots they hold, kept so a plan need not walk them to know the room left. */
  readonly #servicesPerFamily = { 4: 0, 6: 0 };
  #serviceSlots = 0;
  /** Every id below these is in use, so the lowest free id is found without walking the ids in use. */
  #backendFloor = 1;
  #serviceFloor = 1;

  /** Adopts what pinned maps hold, so a restarted agent continues instead of starting over. */
  static fromDump(dump: MapsDump): ProgrammedState {
    const state = new ProgrammedState();
    for (const { frontend, entry } of dump.services) {
      state.setService({ frontend, ...entry, slots: new Map() });
      // Its length is unknown too: counted as none, the table is rewritten before it matters.
      if (entry.scheduler !== undefined && TABLE_SCHEDULER_IDS.has(entry.scheduler)) state.setTable(entry.serviceId, UNKNOWN_TABLE, 0);
    }
    for (const s of dump.slots) state.setSlot(s.serviceId, s.slot, s.backendId);
    for (const { id, backend } of dump.backends) state.setBackend(id, backend);
    return state;
  }

  setTable(serviceId: number, key: string, length: number): void {
    this.#tablePositions += length - (this.#tableLengths.get(serviceId) ?? 0);
    this.#tableLengths.set(serviceId, length);
    this.tables.set(serviceId, key);
  }

  deleteTable(serviceId: number): void {
    this.#tablePositions -= this.#tableLengths.get(serviceId) ?? 0;
    this.#tableLengths.delete(serviceId);
    this.tables.delete(serviceId);
  }

  /** Positions all tables hold together. */
  get tablePositions(): number {
    return this.#tablePositions;
  }

  /** How many positions a service's table holds (0 when it has none or it is unknown). */
  tableLength(serviceId: number): number {
    return this.#tableLengths.get(serviceId) ?? 0;
  }

  /** `key`: endpointKey(backend), when the caller has it already. */
  setBackend(id: number, backend: Backend, key = endpointKey(backend)): void {
    const backends = this.backends as Map<number, Backend>;
    const previous = backends.get(id);
    backends.set(id, backend);
    if (previous) this.#perFamily[previous.family]--;
    this.#perFamily[backend.family]++;
    if (previous === undefined) {
      this.#entered.set(id, this.#entries++);
      if (!this.#liveRefs.has(id)) this.#unreferenced.add(id);
      this.#index(key, id);
    } else if (endpointKey(previous) !== key) {
      // An id rewritten with another backend keeps its place in `backends`: rebuild the index in that order.
      this.#idsByKey.clear();
      for (const [i, b] of backends) this.#index(endpointKey(b), i);
    }
  }

  #index(key: string, id: number): void {
    const ids = this.#idsByKey.get(key);
    if (ids === undefined) this.#idsByKey.set(key, id);
    else if (typeof ids === 'number') this.#idsByKey.set(key, [ids, id]);
    else ids.push(id);
  }

  deleteBackend(id: number): void {
    const backends = this.backends as Map<number, Backend>;
    const previous = backends.get(id);
    if (previous === undefined) return;
    backends.delete(id);
    this.#backendFloor = Math.min(this.#backendFloor, id);
    this.#perFamily[previous.family]--;
    this.#entered.delete(id);
    this.#unreferenced.delete(id);
    const key = endpointKey(previous);
    const ids = this.#idsByKey.get(key);
    if (ids === id) this.#idsByKey.delete(key);
    else if (Array.isArray(ids)) {
      const at = ids.indexOf(id);
      if (at >= 0) ids.splice(at, 1);
      if (ids.length === 1) this.#idsByKey.set(key, ids[0]!);
    }
  }

  /**
   * The id holding a backend with this endpointKey; when several do (maps adopted from an
   * interrupted agent), the last to enter `backends`, as a map built by iterating it would say.
   */
  backendIdOf(key: string): number | undefined {
    const ids = this.#idsByKey.get(key);
    return typeof ids === 'number' ? ids : ids?.at(-1);
  }

  /** How many backends of this family `backends` holds. */
  backendCount(family: Family): number {
    return this.#perFamily[family];
  }

  /** How many service entries of this family `services` holds. */
  serviceCount(family: Family): number {
    return this.#servicesPerFamily[family];
  }

  /** How many slots the service entries hold (orphans not counted). */
  serviceSlotCount(): number {
    return this.#serviceSlots;
  }

  /** The lowest backend id at or above which a free one is to be looked for: every id below is in use. */
  backendIdFloor(): number {
    while (this.backends.has(this.#backendFloor)) this.#backendFloor++;
    return this.#backendFloor;
  }

  /** As backendIdFloor, for service ids (an id whose orphan slots are still in the map is in use). */
  serviceIdFloor(): number {
    while (this.#keyById.has(this.#serviceFloor) || this.orphanSlots.has(this.#serviceFloor)) this.#serviceFloor++;
    return this.#serviceFloor;
  }

  /** Whether some backend is held by more than one id. */
  hasDuplicateBackends(): boolean {
    return this.#idsByKey.size !== this.backends.size;
  }

  /** Whether any slot, of a service or an orphan, names this backend id. */
  isReferenced(backendId: number): boolean {
    return (this.#slotRefs.get(backendId) ?? 0) > 0;
  }

  /** How many live slots (1..backendCount of a service entry) name this backend id. */
  liveRefs(backendId: number): number {
    return this.#liveRefs.get(backendId) ?? 0;
  }

  /** Backend ids that no live slot names (normally none between reconciles). */
  unreferencedBackends(): ReadonlySet<number> {
    return this.#unreferenced;
  }

  /** Orders backend ids as `backends` iterates them. */
  compareBackendIds(a: number, b: number): number {
    return (this.#entered.get(a) ?? Infinity) - (this.#entered.get(b) ?? Infinity);
  }

  #live(backendId: number, by: number): void {
    const n = (this.#liveRefs.get(backendId) ?? 0) + by;
    if (n > 0) this.#liveRefs.set(backendId, n);
    else this.#liveRefs.delete(backendId);
    if (!this.backends.has(backendId)) return;
    if (n > 0) this.#unreferenced.delete(backendId);
    else this.#unreferenced.add(backendId);
  }

  #liveSlots(svc: ProgrammedService, by: number): void {
    for (const [slot, id] of svc.slots) if (slot >= 1 && slot <= svc.backendCount) this.#live(id, by);
  }

  #ref(backendId: number, by: number): void {
    const n = (this.#slotRefs.get(backendId) ?? 0) + by;
    if (n > 0) this.#slotRefs.set(backendId, n);
    else this.#slotRefs.delete(backendId);
  }

  byId(serviceId: number): ProgrammedService | undefined {
    const key = this.#keyById.get(serviceId);
    return key === undefined ? undefined : this.services.get(key);
  }

  /** `key`: endpointKey(svc.frontend), when the caller has it already. */
  setService(svc: ProgrammedService, key = endpointKey(svc.frontend)): void {
    const previous = this.services.get(key);
    if (previous && previous.serviceId !== svc.serviceId) {
      this.#keyById.delete(previous.serviceId);
      this.#serviceFloor = Math.min(this.#serviceFloor, previous.serviceId);
    }
    if (previous) this.#serviceSlots -= previous.slots.size;
    else this.#servicesPerFamily[svc.frontend.family]++;
    this.#serviceSlots += svc.slots.size;
    if (previous?.slots !== svc.slots) {
      // Slots of an entry replaced by one with other slots leave the state; the new ones enter it.
      if (previous) for (const id of previous.slots.values()) this.#ref(id, -1);
      for (const id of svc.slots.values()) this.#ref(id, 1);
    }
    if (previous) this.#liveSlots(previous, -1);
    this.#liveSlots(svc, 1);
    this.services.set(key, svc);
    this.#keyById.set(svc.serviceId, key);
  }

  /** Forgets a service entry; its slots, still in the map, become orphans until deleted. */
  removeService(frontend: Frontend): void {
    const key = endpointKey(frontend);
    const svc = this.services.get(key);
    if (!svc) return;
    this.services.delete(key);
    this.#keyById.delete(svc.serviceId);
    this.#serviceFloor = Math.min(this.#serviceFloor, svc.serviceId);
    this.#servicesPerFamily[svc.frontend.family]--;
    this.#serviceSlots -= svc.slots.size;
    this.#liveSlots(svc, -1);
    if (svc.slots.size > 0) this.orphanSlots.set(svc.serviceId, svc.slots);
  }

  /** The slots of a service id, from its entry or, before the entry exists, from the orphans. */
  takeSlots(serviceId: number): Map<number, number> {
    const slots = this.orphanSlots.get(serviceId) ?? new Map<number, number>();
    this.orphanSlots.delete(serviceId);
    this.#serviceFloor = Math.min(this.#serviceFloor, serviceId);
    // They leave the state until setService puts them back under their entry (which counts them again).
    for (const id of slots.values()) this.#ref(id, -1);
    return slots;
  }

  setSlot(serviceId: number, slot: number, backendId: number): void {
    const svc = this.byId(serviceId);
    let slots = svc?.slots ?? this.orphanSlots.get(serviceId);
    if (!slots) {
      slots = new Map();
      this.orphanSlots.set(serviceId, slots);
    }
    const previous = slots.get(slot);
    if (svc && previous === undefined) this.#serviceSlots++;
    const live = svc !== undefined && slot >= 1 && slot <= svc.backendCount;
    if (previous !== undefined) {
      this.#ref(previous, -1);
      if (live) this.#live(previous, -1);
    }
    slots.set(slot, backendId);
    this.#ref(backendId, 1);
    if (live) this.#live(backendId, 1);
  }

  deleteSlot(serviceId: number, slot: number): void {
    const svc = this.byId(serviceId);
    const slots = svc ? svc.slots : this.orphanSlots.get(serviceId);
    const previous = slots?.get(slot);
    if (previous !== undefined) {
      this.#ref(previous, -1);
      if (svc && slot >= 1 && slot <= svc.backendCount) this.#live(previous, -1);
    }
    if (slots?.delete(slot) && svc) this.#serviceSlots--;
    if (!svc && slots?.size === 0) {
      this.orphanSlots.delete(serviceId);
      this.#serviceFloor = Math.min(this.#serviceFloor, serviceId);
    }
  }
}

/** Backend ids of the slots the datapath may pick: 1..backendCount. */
export function liveBackendIds(svc: ProgrammedService): number[] {
  const ids: number[] = [];
  for (let slot = 1; slot <= svc.backendCount; slot++) {
    const id = svc.slots.get(slot);
    if (id !== undefined) ids.push(id);
  }
  return ids;
}
