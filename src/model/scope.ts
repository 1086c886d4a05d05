// The entries the maps hold for a table: every frontend for clients on the node (the socket hooks),
// and for a frontend reachable from outside (NodePort, LoadBalancer, externalIP) a second entry of
// external scope for the XDP program, with the backends outside traffic gets (under
// externalTrafficPolicy: Local only those on this node).

import type { DesiredFrontend } from './types.ts';

export function withExternalScope(frontends: readonly DesiredFrontend[]): DesiredFrontend[] {
  const entries: DesiredFrontend[] = [];
  for (const d of frontends) {
    entries.push(d);
    if (d.externalBackends === undefined) continue;
    // Session affinity keys on the client's network namespace, which outside clients do not have.
    const { affinityTimeoutSeconds, ...rest } = d;
    entries.push({ ...rest, frontend: { ...d.frontend, scope: 'external' }, backends: d.externalBackends });
  }
  return entries;
}
