// Reads v1 Node objects into what socklb needs of them: a name, the zone label and the node's
// InternalIP and ExternalIP addresses (NodePort frontends on the agent's own node; the node a remote
// endpoint runs on for direct server return). A malformed Node is reported, field by field, and the
// rest of it and every other Node still count.

import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { parseIp } from './ip.ts';
import { isRecord, problem, show } from './problem.ts';
import type { Family, NodeAddressBook } from './types.ts';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** The address types a node is reached at, in the order they are preferred (kube-proxy's). */
const ADDRESS_TYPES = ['InternalIP', 'ExternalIP'];

export interface NodeRead {
  /** undefined when the Node has no readable name (then it is not used at all). */
  name: string | undefined;
  zone?: string;
  /** InternalIP then ExternalIP addresses, canonical, deduplicated, in the Node's order. */
  addresses: string[];
  problems: ObjectProblem[];
}

/**
 * One Node's name, zone and addresses. `status.addresses` entries of other types (Hostname,
 * InternalDNS) are skipped silently; an InternalIP or ExternalIP that is not an IP address is a
 * problem naming its index, and the node's other addresses still count.
 */
export function readNode(node: unknown): NodeRead {
  const out: NodeRead = { name: undefined, addresses: [], problems: [] };
  const meta = isRecord(node) && isRecord(node.metadata) ? node.metadata : {};
  const ref = { kind: 'Node', namespace: '', name: typeof meta.name === 'string' ? meta.name : '' };
  if (typeof meta.name !== 'string' || meta.name === '') {
    out.problems.push(problem(ref, 'metadata.name', ErrorCodes.MISSING_FIELD, `is required, got ${show(meta.name)}; the Node is not read`));
    return out;
  }
  out.name = meta.name;
  const zone = isRecord(meta.labels) ? meta.labels[ZONE_LABEL] : undefined;
  if (typeof zone === 'string' && zone !== '') out.zone = zone;
  const status = isRecord(node) ? node.status : undefined;
  const list = isRecord(status) ? status.addresses : undefined;
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) {
    out.problems.push(problem(ref, 'status.addresses', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}`));
    return out;
  }
  for (const type of ADDRESS_TYPES) {
    list.forEach((entry: unknown, i) => {
      if (!isRecord(entry) || entry.type !== type) return;
      const ip = parseIp(entry.address);
      if (!ip) {
        const message = `${show(entry.address)} is not an IP address; the node is not known by it`;
        out.problems.push(problem(ref, `status.addresses[${i}].address`, ErrorCodes.INVALID_IP, message));
        return;
      }
      if (!out.addresses.includes(ip.address)) out.addresses.push(ip.address);
    });
  }
  return out;
}

/** Every Node's addresses by name, and the problems of the Nodes read. */
export function nodeAddressBook(nodes: readonly unknown[]): { book: Map<string, readonly string[]>; problems: ObjectProblem[] } {
  const book = new Map<string, readonly string[]>();
  const problems: ObjectProblem[] = [];
  for (const node of nodes) {
    const read = readNode(node);
    problems.push(...read.problems);
    if (read.name !== undefined) book.set(read.name, read.addresses);
  }
  return { book, problems };
}

/**
 * The address of `family` a node is reached at: its first InternalIP of that family, else its first
 * ExternalIP. Every agent picks a node's address by this one rule, so the address node A sends a DSR
 * packet to is the one node B takes as its own (lb_node_config's snat_address) and decapsulates on.
 */
export function nodeAddressOf(addresses: readonly string[] | undefined, family: Family): string | undefined {
  return addresses?.find((a) => (family === 6) === a.includes(':'));
}

/** Whether two books hold the same nodes with the same addresses. */
export function sameBook(a: NodeAddressBook, b: NodeAddressBook): boolean {
  if (a.size !== b.size) return false;
  for (const [name, addresses] of a) {
    const other = b.get(name);
    if (!other || other.length !== addresses.length || other.some((x, i) => x !== addresses[i])) return false;
  }
  return true;
}
