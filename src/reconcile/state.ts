// The reconciler's picture of what the maps hold, rebuilt from a map dump at start-up.

import type { MapsDump } from '../datapath/maps.ts';
import { endpointKey, type Backend, type Frontend } from '../model/types.ts';

export interface ProgrammedService {
  frontend: Frontend;
  serviceId: number;
  backendCount: number;
  flags: number;
  affinityTimeout: number;
  /** slot number -> backend id; may hold slots above backendCount left by an interrupted apply. */
  slots: Map<number, number>;
}

export class ProgrammedState {
  /** By endpointKey(frontend). */
  readonly services = new Map<string, ProgrammedService>();
  readonly backends = new Map<number, Backend>();
  /**
   * Slots in the map whose service entry is absent: written for a service whose entry write then
   * failed, or left by a removal that was interrupted. Invisible to the datapath; deleted next time.
   */
  readonly orphanSlots = new Map<number, Map<number, number>>();
  readonly #keyById = new Map<number, string>();

  /** Adopts what pinned maps hold, so a restarted agent continues instead of starting over. */
  static fromDump(dump: MapsDump): ProgrammedState {
    const state = new ProgrammedState();
    for (const { frontend, entry } of dump.services) {
      state.setService({ frontend, ...entry, slots: new Map() });
    }
    for (const s of dump.slots) state.setSlot(s.serviceId, s.slot, s.backendId);
    for (const { id, backend } of dump.backends) state.backends.set(id, backend);
    return state;
  }

  byId(serviceId: number): ProgrammedService | undefined {
    const key = this.#keyById.get(serviceId);
    return key === undefined ? undefined : this.services.get(key);
  }

  setService(svc: ProgrammedService): void {
    const key = endpointKey(svc.frontend);
    const previous = this.services.get(key);
    if (previous && previous.serviceId !== svc.serviceId) this.#keyById.delete(previous.serviceId);
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
    if (svc.slots.size > 0) this.orphanSlots.set(svc.serviceId, svc.slots);
  }

  /** The slots of a service id, from its entry or, before the entry exists, from the orphans. */
  takeSlots(serviceId: number): Map<number, number> {
    const slots = this.orphanSlots.get(serviceId) ?? new Map<number, number>();
    this.orphanSlots.delete(serviceId);
    return slots;
  }

  setSlot(serviceId: number, slot: number, backendId: number): void {
    const svc = this.byId(serviceId);
    if (svc) {
      svc.slots.set(slot, backendId);
      return;
    }
    let slots = this.orphanSlots.get(serviceId);
    if (!slots) this.orphanSlots.set(serviceId, (slots = new Map()));
    slots.set(slot, backendId);
  }

  deleteSlot(serviceId: number, slot: number): void {
    const svc = this.byId(serviceId);
    if (svc) {
      svc.slots.delete(slot);
      return;
    }
    const slots = this.orphanSlots.get(serviceId);
    slots?.delete(slot);
    if (slots?.size === 0) this.orphanSlots.delete(serviceId);
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
