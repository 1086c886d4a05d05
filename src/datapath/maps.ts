// What the reconciler needs from the datapath maps, in model terms. KernelMaps writes the real BPF
// maps; MemoryMaps holds the same in memory for fast tests. One contract suite runs against both.

import type { Backend, Family, Frontend } from '../model/types.ts';

export interface ServiceEntry {
  serviceId: number;
  backendCount: number;
  /** ServiceFlags bits. */
  flags: number;
  /** Seconds a client sticks to its backend when flags has ServiceFlags.affinity; else 0. */
  affinityTimeout: number;
  /** enum lb_scheduler (Schedulers); absent: random (0). */
  scheduler?: number;
}

export interface SlotEntry {
  serviceId: number;
  slot: number;
  backendId: number;
}

/** Everything the service maps hold, read back. */
export interface MapsDump {
  services: { frontend: Frontend; entry: ServiceEntry }[];
  slots: SlotEntry[];
  backends: { id: number; backend: Backend }[];
}

export interface Capacity {
  /** Frontends per family (lb4_services, lb6_services). */
  services: number;
  /** Backend slots over all services (lb_slots). */
  slots: number;
  /** Backends per family (lb4_backends, lb6_backends). */
  backends: number;
  /** Service ids are 1..serviceIds-1 (the size of lb_svc_stats). */
  serviceIds: number;
  /** Backend ids are 1..backendIds-1 (the size of lb_be_stats). */
  backendIds: number;
  /** Services that may hold a scheduler table (wrr, maglev) at once; absent: DEFAULT_TABLES. */
  tables?: number;
  /** Positions all those tables may hold together; absent: DEFAULT_TABLE_POSITIONS. */
  tablePositions?: number;
}

/** 256 tables of 4,096 positions on average: 2 MiB of table memory (docs/operating.md). */
export const DEFAULT_TABLES = 256;
export const DEFAULT_TABLE_POSITIONS = 1 << 20;

export interface ServiceCounters {
  connects: bigint;
  refused: bigint;
}

export interface DatapathMaps {
  readonly capacity: Capacity;
  putService(frontend: Frontend, entry: ServiceEntry): void;
  deleteService(frontend: Frontend): void;
  putSlot(slot: SlotEntry): void;
  deleteSlot(serviceId: number, slot: number): void;
  putBackend(id: number, backend: Backend): void;
  /**
   * Swaps in a service's whole scheduler table (slot numbers by position): the datapath sees the old
   * table or the new one, never a mix.
   */
  putTable(serviceId: number, slots: Uint16Array): void;
  /** Removes a service's table, if it has one. */
  deleteTable(serviceId: number): void;
  deleteBackend(id: number, family: Family): void;
  /** Zeroes the counters of an id about to be reused, so it does not inherit old counts. */
  resetServiceCounters(serviceId: number): void;
  resetBackendCounters(backendId: number): void;
  serviceCounters(serviceId: number): ServiceCounters;
  backendConnects(backendId: number): bigint;
  dump(): MapsDump;
  // Batches: each writes its entries in order, one syscall per map where the kernel can (Linux 5.6),
  // and returns how many leading entries were written; it stops at the first that fails and leaves
  // that one, and all after it, unwritten for the caller to write one by one (and see the error).
  putBackends(entries: readonly BackendEntry[]): number;
  putSlots(slots: readonly SlotEntry[]): number;
  putServices(entries: readonly FrontendEntry[]): number;
  resetServiceCountersBatch(serviceIds: readonly number[]): number;
  resetBackendCountersBatch(backendIds: readonly number[]): number;
}

export interface BackendEntry {
  id: number;
  backend: Backend;
}

export interface FrontendEntry {
  frontend: Frontend;
  entry: ServiceEntry;
}

/** The op-by-op batch: for maps that have no batch of their own, and for the kernel's fallback. */
export function eachUntilFailure<T>(entries: readonly T[], write: (entry: T) => void): number {
  for (let i = 0; i < entries.length; i++) {
    try {
      write(entries[i]!);
    } catch {
      return i;
    }
  }
  return entries.length;
}

/** The error a full map gives, shaped like the kernel's (E2BIG) so callers handle both alike. */
export function mapFullError(map: string, maxEntries: number): Error {
  return Object.assign(new Error(`bpf_map_update_elem: map ${map} is full (${maxEntries} entries)`), {
    code: 'E2BIG',
    errno: 7,
    operation: 'bpf_map_update_elem',
  });
}

function frontendId(f: Frontend): string {
  return `${f.family}|${f.protocol}|${f.address}|${f.port}|${f.scope ?? 'internal'}`;
}

/** An in-memory DatapathMaps with the kernel maps' capacities and full-map errors. */
export class MemoryMaps implements DatapathMaps {
  readonly capacity: Capacity;
  #services = new Map<string, { frontend: Frontend; entry: ServiceEntry }>();
  #slots = new Map<string, SlotEntry>();
  #backends = new Map<number, Backend>();
  #serviceCounters = new Map<number, ServiceCounters>();
  #backendCounters = new Map<number, bigint>();
  #tables = new Map<number, Uint16Array>();

  constructor(capacity: Capacity) {
    this.capacity = capacity;
  }

  putService(frontend: Frontend, entry: ServiceEntry): void {
    const id = frontendId(frontend);
    const sameFamily = [...this.#services.values()].filter((s) => s.frontend.family === frontend.family);
    if (!this.#services.has(id) && sameFamily.length >= this.capacity.services) {
      throw mapFullError(frontend.family === 4 ? 'lb4_services_v2' : 'lb6_services_v2', this.capacity.services);
    }
    this.#services.set(id, { frontend: { ...frontend }, entry: { ...entry } });
  }

  deleteService(frontend: Frontend): void {
    this.#services.delete(frontendId(frontend));
  }

  putSlot(slot: SlotEntry): void {
    const id = `${slot.serviceId}/${slot.slot}`;
    if (!this.#slots.has(id) && this.#slots.size >= this.capacity.slots) {
      throw mapFullError('lb_slots_v1', this.capacity.slots);
    }
    // Its own fields only: a batch hands in plan ops, which carry more.
    this.#slots.set(id, { serviceId: slot.serviceId, slot: slot.slot, backendId: slot.backendId });
  }

  deleteSlot(serviceId: number, slot: number): void {
    this.#slots.delete(`${serviceId}/${slot}`);
  }

  putBackend(id: number, backend: Backend): void {
    const sameFamily = [...this.#backends.values()].filter((b) => b.family === backend.family);
    if (!this.#backends.has(id) && sameFamily.length >= this.capacity.backends) {
      throw mapFullError(backend.family === 4 ? 'lb4_backends_v2' : 'lb6_backends_v2', this.capacity.backends);
    }
    this.#backends.set(id, { ...backend });
  }

  deleteBackend(id: number): void {
    this.#backends.delete(id);
  }

  putTable(serviceId: number, slots: Uint16Array): void {
    this.#tables.set(serviceId, slots.slice());
  }

  deleteTable(serviceId: number): void {
    this.#tables.delete(serviceId);
  }

  /** A service's table as last put, for tests (the kernel's is read by the datapath only). */
  table(serviceId: number): Uint16Array | undefined {
    return this.#tables.get(serviceId);
  }

  resetServiceCounters(serviceId: number): void {
    this.#serviceCounters.delete(serviceId);
  }

  resetBackendCounters(backendId: number): void {
    this.#backendCounters.delete(backendId);
  }

  serviceCounters(serviceId: number): ServiceCounters {
    return this.#serviceCounters.get(serviceId) ?? { connects: 0n, refused: 0n };
  }

  backendConnects(backendId: number): bigint {
    return this.#backendCounters.get(backendId) ?? 0n;
  }

  putBackends(entries: readonly BackendEntry[]): number {
    return eachUntilFailure(entries, (e) => this.putBackend(e.id, e.backend));
  }

  putSlots(slots: readonly SlotEntry[]): number {
    return eachUntilFailure(slots, (s) => this.putSlot(s));
  }

  putServices(entries: readonly FrontendEntry[]): number {
    return eachUntilFailure(entries, (e) => this.putService(e.frontend, e.entry));
  }

  resetServiceCountersBatch(serviceIds: readonly number[]): number {
    return eachUntilFailure(serviceIds, (id) => this.resetServiceCounters(id));
  }

  resetBackendCountersBatch(backendIds: readonly number[]): number {
    return eachUntilFailure(backendIds, (id) => this.resetBackendCounters(id));
  }

  dump(): MapsDump {
    return {
      services: [...this.#services.values()].map((s) => ({ frontend: { ...s.frontend }, entry: { ...s.entry } })),
      slots: [...this.#slots.values()].map((s) => ({ ...s })),
      backends: [...this.#backends].map(([id, backend]) => ({ id, backend: { ...backend } })),
    };
  }
}
