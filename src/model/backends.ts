// Gathers a service port's endpoints from its slices and turns chosen endpoints into backends.

import { compareIp } from './ip.ts';
import { nodeAddressOf } from './node-read.ts';
import type { SliceRead } from './slice-read.ts';
import type { TopologyEndpoint } from './topology.ts';
import type { Backend, Family, NodeAddressBook, Protocol } from './types.ts';

/** One endpoint of one service port: an address, the port its slice gives, and what kube-proxy reads. */
export interface PortEndpoint extends TopologyEndpoint {
  address: string;
  port: number;
  /** The slice's nodeName: where direct server return sends its traffic. */
  nodeName: string | undefined;
}

export interface EndpointQuery {
  family: Family;
  /** The service port's name ('' when unnamed), matched against slice port names. */
  portName: string;
  /** As the slice port writes it ('TCP', 'UDP', or another a service port cannot have). */
  protocol: string;
  /** This node's name; an endpoint is local when its nodeName equals it (never when it is ''). */
  nodeName: string;
  /** publishNotReadyAddresses: every endpoint counts as ready, terminating ones too. */
  publishNotReadyAddresses: boolean;
}

/**
 * The endpoints of a service port, ordered by (address, port): from every slice of its family, the
 * slice port with the service port's name and protocol gives the port (that is how a named
 * targetPort arrives resolved). An address:port seen twice (a pod moving between slices, or an IP
 * reused while the old pod terminates) keeps the first copy unless a later one is not terminating,
 * as kube-proxy's endpointslicecache does. Slices arrive sorted by name, so the choice is stable.
 */
export function portEndpoints(q: EndpointQuery, slices: readonly SliceRead[]): PortEndpoint[] {
  const found: PortEndpoint[] = [];
  for (const slice of slices) {
    if (slice.family !== q.family) continue;
    const sp = slice.ports.find((p) => p.name === q.portName && p.protocol === q.protocol);
    if (!sp || sp.port === null) continue;
    for (const ep of slice.endpoints) {
      found.push({
        address: ep.address,
        port: sp.port,
        // The EndpointSlice controller marks every endpoint ready (terminating ones too) for a service
        // that publishes not-ready addresses; doing it here gives hand-written slices the same meaning.
        ready: q.publishNotReadyAddresses || ep.ready,
        serving: ep.serving,
        terminating: ep.terminating,
        local: q.nodeName !== '' && ep.nodeName === q.nodeName,
        nodeName: ep.nodeName,
        zoneHints: ep.zoneHints,
        nodeHints: ep.nodeHints,
      });
    }
  }
  // The sort is stable, so the copies of one address:port end up next to each other in slice order.
  // Slices often list their endpoints in order already, and sort() allocates even for three.
  if (!isSorted(found)) found.sort(compareBackends);
  let kept = 0;
  for (const ep of found) {
    const last = kept > 0 ? found[kept - 1] : undefined;
    if (last && last.address === ep.address && last.port === ep.port) {
      if (!ep.terminating) found[kept - 1] = ep;
    } else found[kept++] = ep;
  }
  found.length = kept;
  return found;
}

function isSorted(endpoints: readonly PortEndpoint[]): boolean {
  for (let i = 1; i < endpoints.length; i++) if (compareBackends(endpoints[i - 1]!, endpoints[i]!) > 0) return false;
  return true;
}

/**
 * The endpoints (as portEndpoints gives them: one per address:port, in order) as backends. One on
 * another node whose Node is in `peers` carries that node's address of its family (nodeAddressOf),
 * which direct server return sends its packets to.
 */
export function toBackends(endpoints: readonly PortEndpoint[], family: Family, protocol: Protocol, peers?: NodeAddressBook): Backend[] {
  return endpoints.map((e): Backend => {
    if (e.local) return { family, address: e.address, port: e.port, protocol, local: true };
    const node = e.nodeName === undefined ? undefined : nodeAddressOf(peers?.get(e.nodeName), family);
    return node === undefined
      ? { family, address: e.address, port: e.port, protocol }
      : { family, address: e.address, port: e.port, protocol, node };
  });
}

export function compareBackends(a: { address: string; port: number }, b: { address: string; port: number }): number {
  return compareIp(a.address, b.address) || a.port - b.port;
}

export function sameBackends(a: readonly Backend[], b: readonly Backend[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => x.address === b[i]?.address && x.port === b[i]?.port && x.local === b[i]?.local && x.node === b[i]?.node)
  );
}
