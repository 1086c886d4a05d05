// Carries out plan ops against the maps, keeping the programmed state equal to what was written.

import type { DatapathMaps } from '../datapath/maps.ts';
import type { Op } from './plan.ts';
import type { ProgrammedState } from './state.ts';

/** Writes one op and records it in the state; throws what the map write threw, state untouched. */
export function applyOp(maps: DatapathMaps, state: ProgrammedState, op: Op): void {
  switch (op.kind) {
    case 'put-backend':
      maps.putBackend(op.id, op.backend);
      state.setBackend(op.id, op.backend);
      return;
    case 'reset-backend-counters':
      maps.resetBackendCounters(op.id);
      return;
    case 'put-slot':
      maps.putSlot({ serviceId: op.serviceId, slot: op.slot, backendId: op.backendId });
      state.setSlot(op.serviceId, op.slot, op.backendId);
      return;
    case 'reset-service-counters':
      maps.resetServiceCounters(op.serviceId);
      return;
    case 'put-service': {
      const entry = {
        serviceId: op.serviceId,
        backendCount: op.backendCount,
        flags: op.flags,
        affinityTimeout: op.affinityTimeout,
        ...(op.scheduler === 0 ? {} : { scheduler: op.scheduler }),
      };
      maps.putService(op.frontend, entry);
      const slots = state.byId(op.serviceId)?.slots ?? state.takeSlots(op.serviceId);
      state.setService({ frontend: op.frontend, ...entry, slots });
      return;
    }
    case 'put-table':
      maps.putTable(op.serviceId, op.slots);
      state.setTable(op.serviceId, op.tableKey, op.slots.length);
      return;
    case 'delete-table':
      maps.deleteTable(op.serviceId);
      state.deleteTable(op.serviceId);
      return;
    case 'delete-slot':
      maps.deleteSlot(op.serviceId, op.slot);
      state.deleteSlot(op.serviceId, op.slot);
      return;
    case 'delete-service':
      maps.deleteService(op.frontend);
      state.removeService(op.frontend);
      return;
    case 'delete-backend':
      maps.deleteBackend(op.id, op.backend.family);
      state.deleteBackend(op.id);
      return;
  }
}
