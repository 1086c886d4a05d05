// Picks the backends of one frontend from its service's slices, the way kube-proxy does.

import { compareIp } from './ip.ts';
import type { SliceEndpoint, SliceRead } from './slice-read.ts';
import type { Backend, Frontend } from './types.ts';

export interface BackendQuery {
  frontend: Frontend;
  /** The service port's name ('' when unnamed), matched against slice port names. */
  portName: string;
  /** internalTrafficPolicy: Local: only endpoints whose nodeName is this node. */
  localOnly: boolean;
  nodeName: string;
}

/**
 * Backends of a frontend: from every slice of its family, the slice port with the service port's name
 * and protocol gives the port (that is how a named targetPort arrives resolved). Ready endpoints are
 * used; when none is ready, the serving-and-terminating ones, so connections still land during a
 * rolling update. Deduplicated and sorted by address then port.
 */
export function selectBackends(q: BackendQuery, slices: SliceRead[]): Backend[] {
  const candidates: { ep: SliceEndpoint; port: number }[] = [];
  for (const slice of slices) {
    if (slice.family !== q.frontend.family) continue;
    const sp = slice.ports.find((p) => p.name === q.portName && p.protocol === q.frontend.protocol);
    if (!sp || sp.port === null) continue;
    for (const ep of slice.endpoints) {
      if (q.localOnly && ep.nodeName !== q.nodeName) continue;
      candidates.push({ ep, port: sp.port });
    }
  }
  let chosen = candidates.filter((c) => c.ep.ready);
  if (chosen.length === 0) chosen = candidates.filter((c) => c.ep.serving && c.ep.terminating);
  return dedupeSorted(
    chosen.map((c) => ({ family: q.frontend.family, address: c.ep.address, port: c.port, protocol: q.frontend.protocol })),
  );
}

export function dedupeSorted(backends: Backend[]): Backend[] {
  const sorted = [...backends].sort((a, b) => compareIp(a.address, b.address) || a.port - b.port);
  return sorted.filter((b, i) => i === 0 || b.address !== sorted[i - 1]?.address || b.port !== sorted[i - 1]?.port);
}
