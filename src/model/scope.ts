// The entries the maps hold for a table: every frontend for clients on the node (the socket hooks),
// and for a frontend reachable from outside (NodePort, LoadBalancer, externalIP) a second entry of
// external scope for the XDP program, with the backends outside traffic gets (under
// externalTrafficPolicy: Local only those on this node).

import type { TableChanges } from './desired-state.ts';
import type { DesiredFrontend } from './types.ts';

export function withExternalScope(frontends: readonly DesiredFrontend[]): DesiredFrontend[] {
  const entries: DesiredFrontend[] = [];
  for (const d of frontends) {
    entries.push(d);
    const external = externalEntry(d);
    if (external) entries.push(external);
  }
  return entries;
}

/**
 * The same for the frontends a flush changed: each changed key with its external-scope key, whose
 * entry goes with the frontend or when the frontend is no longer reachable from outside.
 */
export function changesWithExternalScope(changes: TableChanges): TableChanges {
  const entries: TableChanges = new Map();
  for (const [key, d] of changes) {
    entries.set(key, d);
    entries.set(`external:${key}`, d && externalEntry(d));
  }
  return entries;
}

function externalEntry(d: DesiredFrontend): DesiredFrontend | undefined {
  if (d.externalBackends === undefined) return undefined;
  // Session affinity keys on the client's network namespace, which outside clients do not have.
  const { affinityTimeoutSeconds, ...rest } = d;
  return { ...rest, frontend: { ...d.frontend, scope: 'external' }, backends: d.externalBackends };
}
