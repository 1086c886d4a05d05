// The service table: what socklb programs, independent of where the objects came from.

import type { ObjectProblem } from '../errors.ts';
import type { Scheduling } from './scheduler.ts';

export type Family = 4 | 6;
export type Protocol = 'TCP' | 'UDP';

/**
 * How a frontend is reached: a cluster IP, a node address with a nodePort, a
 * `status.loadBalancer.ingress[].ip`, or one of `spec.externalIPs`.
 */
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalIP';

/** An address a client dials (a cluster IP, node address, load-balancer or external IP) and port. */
export interface Frontend {
  family: Family;
  /** Canonical text form (as `net` prints it: lower case, IPv6 compressed). */
  address: string;
  port: number;
  protocol: Protocol;
  /**
   * 'external': the entry traffic from outside the node gets (the XDP program), beside the one for
   * clients on the node. Absent: the entry the socket hooks read.
   */
  scope?: 'external';
}

/** Where a connection ends: an endpoint address and the resolved target port. */
export interface Backend {
  family: Family;
  address: string;
  port: number;
  protocol: Protocol;
  /** The endpoint runs on this node: traffic from outside reaches it without source NAT. */
  local?: true;
  /**
   * The address (of the backend's family) of the node the endpoint runs on, for direct server
   * return; set only for endpoints on other nodes whose Node is known.
   */
  node?: string;
}

export interface ServiceName {
  namespace: string;
  name: string;
}

/** One frontend of a service port with the backends it balances over. */
export interface DesiredFrontend {
  frontend: Frontend;
  service: ServiceName;
  /** The service port's name ('' when unnamed). */
  portName: string;
  /**
   * What a client on this node gets (the socket hooks), deduplicated and sorted by (address, port) so
   * equal inputs give equal tables.
   */
  backends: Backend[];
  /**
   * How the frontend is reached. `desired()` always sets it; it is optional only so entries built by
   * hand before it existed still type-check, and absent means ClusterIP.
   */
  kind?: FrontendKind;
  /**
   * What traffic arriving from outside the node gets (XDP, later), sorted like `backends`. Set on
   * NodePort, LoadBalancer and ExternalIP frontends only; differs from `backends` under
   * `externalTrafficPolicy: Local` (only endpoints on this node).
   */
  externalBackends?: Backend[];
  /** `sessionAffinity: ClientIP`: how long a client sticks to its backend. Absent: no affinity. */
  affinityTimeoutSeconds?: number;
  /**
   * `externalTrafficPolicy: Local`: traffic from outside goes only to this node's endpoints, keeps
   * its source, and is dropped where there is none. Set on NodePort, LoadBalancer and ExternalIP
   * frontends only.
   */
  externalLocal?: true;
  /** A LoadBalancer frontend's `loadBalancerSourceRanges` (canonical CIDRs); absent: any source. */
  sourceRanges?: string[];
  /** The service's `socklb.io/scheduler` annotations; absent: the node's default (--scheduler). */
  scheduling?: Scheduling;
}

/** The node the agent runs on, as far as the model needs it. */
export interface NodeInfo {
  name: string;
  /** The node's `topology.kubernetes.io/zone` label, for topology hints; absent when unlabelled. */
  zone?: string;
  /** The node IPs NodePort frontends listen on (both families as they apply); none when absent. */
  addresses?: string[];
  /**
   * The Node has a deletionTimestamp. The health server reports it (`/healthz` 503); the table does
   * not change, as kube-proxy keeps programming services while its node drains.
   */
  deleting?: boolean;
  /**
   * Every node's addresses by name (the Node objects), to find a remote endpoint's node. Replaced,
   * never edited, when one changes: the desired cache compares it by identity.
   */
  peers?: NodeAddressBook;
}

/** Node name -> its InternalIP then ExternalIP addresses, canonical, deduplicated, in the Node's order. */
export type NodeAddressBook = ReadonlyMap<string, readonly string[]>;

/**
 * A `healthCheckNodePort` to serve for a LoadBalancer service with `externalTrafficPolicy: Local`:
 * cloud load balancers probe it to learn which nodes have endpoints.
 */
export interface HealthCheck {
  service: ServiceName;
  port: number;
  /** Ready endpoints on this node, counted by address across ports; terminating ones do not count. */
  localEndpoints: number;
}

export interface DesiredTable {
  /** Sorted by frontend key. */
  frontends: DesiredFrontend[];
  /** Objects (or parts of them) that were rejected, each naming the object and field. */
  problems: ObjectProblem[];
  /**
   * Health-check listeners, sorted by port. `desired()` always sets it; optional so tables built
   * elsewhere before it existed still type-check.
   */
  healthChecks?: HealthCheck[];
}

/**
 * A stable text key for a frontend or backend, e.g. `TCP/10.96.0.10:80` or `UDP/[fd00::a]:53`; an
 * external-scope frontend reads `external:TCP/192.168.1.10:30080`, a backend on this node
 * `TCP/10.244.0.11:8080 local`.
 */
export function endpointKey(e: Frontend | Backend): string {
  const host = e.family === 6 ? `[${e.address}]` : e.address;
  const key = `${e.protocol}/${host}:${e.port}`;
  if ('scope' in e && e.scope === 'external') return `external:${key}`;
  if ('local' in e && e.local) return `${key} local`;
  return key;
}
