// The service table: what socklb programs, independent of where the objects came from.

import type { ObjectProblem } from '../errors.ts';

export type Family = 4 | 6;
export type Protocol = 'TCP' | 'UDP';

/** An address a client dials: a ClusterIP (later also a node address or external IP) and port. */
export interface Frontend {
  family: Family;
  /** Canonical text form (as `net` prints it: lower case, IPv6 compressed). */
  address: string;
  port: number;
  protocol: Protocol;
}

/** Where a connection ends: an endpoint address and the resolved target port. */
export interface Backend {
  family: Family;
  address: string;
  port: number;
  protocol: Protocol;
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
  /** Backends, deduplicated and sorted by (address, port) so equal inputs give equal tables. */
  backends: Backend[];
}

/** The node the agent runs on, as far as the model needs it. */
export interface NodeInfo {
  name: string;
}

export interface DesiredTable {
  /** Sorted by frontend key. */
  frontends: DesiredFrontend[];
  /** Objects (or parts of them) that were rejected, each naming the object and field. */
  problems: ObjectProblem[];
}

/** A stable text key for a frontend or backend, e.g. `TCP/10.96.0.10:80` or `UDP/[fd00::a]:53`. */
export function endpointKey(e: Frontend | Backend): string {
  const host = e.family === 6 ? `[${e.address}]` : e.address;
  return `${e.protocol}/${host}:${e.port}`;
}
