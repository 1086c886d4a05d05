// kube-proxy's endpoint categorisation (pkg/proxy/topology.go CategorizeEndpoints, 1.33+ with
// PreferSameNode): which endpoints cluster-wide and node-local traffic may use.

/** What categorisation needs to know of an endpoint (conditions already defaulted as kube-proxy does). */
export interface TopologyEndpoint {
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** nodeName is this node. */
  local: boolean;
  /** `hints.forZones` names; empty when the endpoint carries none. */
  zoneHints: readonly string[];
  /** `hints.forNodes` names; empty when the endpoint carries none. */
  nodeHints: readonly string[];
}

/** The parts of a service port's policy that decide which sets it needs (kube-proxy's ServicePort). */
export interface TrafficPolicy {
  /** internalTrafficPolicy: Local. */
  internalLocal: boolean;
  /** externalTrafficPolicy: Local, where it applies (see ServiceSpec.externalLocal). */
  externalLocal: boolean;
  /** The port has a nodePort, a load-balancer IP or an external IP (of the family at hand). */
  externallyAccessible: boolean;
}

export type TopologyMode = '' | 'PreferSameZone' | 'PreferSameNode';

export interface Categorized<E> {
  /** Cluster-policy endpoints, topology applied; undefined when the port never uses them. */
  cluster: E[] | undefined;
  /** Local-policy endpoints (topology ignored); undefined when the port never uses them. */
  local: E[] | undefined;
  /** The union of the two: everything reachable from this node. */
  all: E[];
  /** Some endpoint is usable anywhere in the cluster (even if none is reachable from here). */
  hasAny: boolean;
  topologyMode: TopologyMode;
}

/** kube-proxy's UsesClusterEndpoints: eTP Local still needs them, for the short circuit of on-node clients. */
export function usesClusterEndpoints(p: TrafficPolicy): boolean {
  return !p.internalLocal || p.externallyAccessible;
}

export function usesLocalEndpoints(p: TrafficPolicy): boolean {
  return p.internalLocal || (p.externalLocal && p.externallyAccessible);
}

/**
 * Splits a service port's endpoints the way kube-proxy does. "Usable" means ready, falling back to
 * serving-and-terminating when none is, decided separately for the cluster-wide and the local set:
 * a node whose own endpoints are all terminating keeps sending its Local traffic to them while the
 * cluster-wide set still has ready ones elsewhere. Topology (hints) narrows only the cluster set, and
 * is not applied to the terminating fallback.
 */
export function categorizeEndpoints<E extends TopologyEndpoint>(
  endpoints: readonly E[],
  policy: TrafficPolicy,
  nodeName: string,
  zone: string,
): Categorized<E> {
  let cluster: E[] | undefined;
  let local: E[] | undefined;
  let hasAny = false;
  let topologyMode: TopologyMode = '';

  if (usesClusterEndpoints(policy)) {
    topologyMode = topologyModeFromHints(endpoints, nodeName, zone);
    cluster = endpoints.filter((ep) => ep.ready && availableForTopology(ep, topologyMode, nodeName, zone));
    // A topology mode is only chosen when some ready endpoint matches it, so an empty set here means
    // no ready endpoint anywhere.
    if (cluster.length === 0) cluster = endpoints.filter((ep) => ep.serving && ep.terminating);
    if (cluster.length > 0) hasAny = true;
  }
  if (!usesLocalEndpoints(policy)) return { cluster, local, all: cluster ?? [], hasAny, topologyMode };

  let localReady = false;
  let localServingTerminating = false;
  for (const ep of endpoints) {
    if (ep.ready) {
      hasAny = true;
      if (ep.local) localReady = true;
    } else if (ep.serving && ep.terminating) {
      hasAny = true;
      if (ep.local) localServingTerminating = true;
    }
  }
  const useServingTerminating = !localReady && localServingTerminating;
  local = [];
  if (localReady) local = endpoints.filter((ep) => ep.local && ep.ready);
  else if (localServingTerminating) local = endpoints.filter((ep) => ep.local && ep.serving && ep.terminating);

  if (!cluster) return { cluster, local, all: local, hasAny, topologyMode };
  if (topologyMode === '' && !useServingTerminating) {
    // Cluster holds every ready endpoint and local only ready ones: cluster is the union.
    return { cluster, local, all: cluster, hasAny, topologyMode };
  }
  const union = new Set<E>([...cluster, ...local]);
  return { cluster, local, all: endpoints.filter((ep) => union.has(ep)), hasAny, topologyMode };
}

/**
 * kube-proxy's topologyModeFromHints. Only hints count: the Service's `trafficDistribution` (and the
 * topology-mode annotation) tell the EndpointSlice controller to write them, and kube-proxy never
 * reads the field itself. Same-node wins when every ready endpoint has a node hint and one names
 * this node; else same-zone when every ready endpoint has a zone hint and one names this node's zone;
 * else no topology. Unready endpoints' hints are ignored either way.
 */
export function topologyModeFromHints(endpoints: readonly TopologyEndpoint[], nodeName: string, zone: string): TopologyMode {
  let hasReady = false;
  let forNode = false;
  let allNodeHints = true;
  let forZone = false;
  let allZoneHints = true;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    hasReady = true;
    if (ep.nodeHints.length === 0) allNodeHints = false;
    else if (ep.nodeHints.includes(nodeName)) forNode = true;
    if (ep.zoneHints.length === 0) allZoneHints = false;
    else if (ep.zoneHints.includes(zone)) forZone = true;
  }
  if (!hasReady) return '';
  if (allNodeHints && forNode) return 'PreferSameNode';
  if (allZoneHints && forZone) return 'PreferSameZone';
  return '';
}

function availableForTopology(ep: TopologyEndpoint, mode: TopologyMode, nodeName: string, zone: string): boolean {
  if (mode === 'PreferSameNode') return ep.nodeHints.includes(nodeName);
  if (mode === 'PreferSameZone') return ep.zoneHints.includes(zone);
  return true;
}
