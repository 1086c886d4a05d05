// The service table as the maps hold it: frontends read back from the maps, named by the desired
// table, each with its backends in slot order and the per-CPU connect counters summed.

import type { DatapathMaps } from '../datapath/maps.ts';
import { cmp } from '../model/problem.ts';
import { SCHEDULERS } from '../model/scheduler.ts';
import { type Backend, type DesiredTable, endpointKey } from '../model/types.ts';

export interface BackendView {
  slot: number;
  backendId: number;
  /** `TCP/10.244.0.11:8080`; '' when the slot names a backend id the maps lack. */
  backend: string;
  address: string;
  port: number;
  /**
   * Connects balanced to this backend. Counted per backend id, and a backend (address, port,
   * protocol) has one id however many frontends use it: shared backends show the sum over those.
   */
  connects: number;
}

export interface FrontendView {
  /** `TCP/10.96.0.10:80`. */
  frontend: string;
  family: 4 | 6;
  address: string;
  port: number;
  protocol: string;
  portName: string;
  serviceId: number;
  backendCount: number;
  /** Session affinity (ClientIP) timeout in seconds; 0 when the frontend has none. */
  affinityTimeout: number;
  /** socklb.io/scheduler as the entry holds it: random, rr, wrr, sh, maglev. */
  scheduler: string;
  connects: number;
  /** Connects and sends refused because the frontend had no backend. */
  refused: number;
  backends: BackendView[];
}

export interface ServiceView {
  namespace: string;
  name: string;
  frontends: FrontendView[];
}

function num(n: bigint): number {
  return Number(n);
}

/**
 * Reads the service maps and groups frontends by service. A frontend the desired table does not
 * name (left by an earlier agent, or drift) is listed under namespace '' and name ''.
 */
export function serviceViews(maps: DatapathMaps, table: DesiredTable): ServiceView[] {
  const dump = maps.dump();
  const names = new Map(table.frontends.map((d) => [endpointKey(d.frontend), d]));
  const backends = new Map<number, Backend>(dump.backends.map((b) => [b.id, b.backend]));
  const slotsById = new Map<number, { slot: number; backendId: number }[]>();
  for (const s of dump.slots) {
    let list = slotsById.get(s.serviceId);
    if (!list) {
      list = [];
      slotsById.set(s.serviceId, list);
    }
    list.push(s);
  }
  const services = new Map<string, ServiceView>();
  for (const { frontend, entry } of dump.services) {
    const key = endpointKey(frontend);
    const desired = names.get(key);
    const ns = desired?.service.namespace ?? '';
    const name = desired?.service.name ?? '';
    const id = `${ns}/${name}`;
    let svc = services.get(id);
    if (!svc) {
      svc = { namespace: ns, name, frontends: [] };
      services.set(id, svc);
    }
    const counters = maps.serviceCounters(entry.serviceId);
    // Only slots 1..backend_count are live: the datapath never picks one above.
    const slots = (slotsById.get(entry.serviceId) ?? [])
      .filter((s) => s.slot >= 1 && s.slot <= entry.backendCount)
      .sort((a, b) => a.slot - b.slot);
    svc.frontends.push({
      frontend: key,
      family: frontend.family,
      address: frontend.address,
      port: frontend.port,
      protocol: frontend.protocol,
      portName: desired?.portName ?? '',
      serviceId: entry.serviceId,
      backendCount: entry.backendCount,
      affinityTimeout: entry.affinityTimeout ?? 0,
      scheduler: SCHEDULERS[entry.scheduler ?? 0] ?? `unknown (${entry.scheduler})`,
      connects: num(counters.connects),
      refused: num(counters.refused),
      backends: slots.map((s) => {
        const b = backends.get(s.backendId);
        return {
          slot: s.slot,
          backendId: s.backendId,
          backend: b ? endpointKey(b) : '',
          address: b?.address ?? '',
          port: b?.port ?? 0,
          connects: num(maps.backendConnects(s.backendId)),
        };
      }),
    });
  }
  const list = [...services.values()].sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
  for (const s of list) s.frontends.sort((a, b) => cmp(a.frontend, b.frontend));
  return list;
}
