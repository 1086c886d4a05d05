// Reads a discovery.k8s.io/v1 EndpointSlice into the endpoints and ports the model balances over.

import type { V1EndpointSlice } from '@kubernetes/client-node';
import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { notAnIp, parseIp } from './ip.ts';
import { isRecord, type ObjectRef, problem, show } from './problem.ts';
import { checkPort } from './service-spec.ts';
import type { Family } from './types.ts';

/** Label linking a slice to its service (same namespace). */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

export interface SlicePort {
  /** '' when unnamed. */
  name: string;
  /** As written; TCP when absent. Compared with the service port's protocol. */
  protocol: string;
  /** null: the slice carries no port for this name (kube-proxy programs no backends from it). */
  port: number | null;
}

export interface SliceEndpoint {
  /** Canonical addresses[0] (kube-proxy uses only the first address). */
  address: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName: string | undefined;
  /** `hints.forZones[].name`: the zones this endpoint is meant for; empty when it carries none. */
  zoneHints: readonly string[];
  /** `hints.forNodes[].name`: the nodes this endpoint is meant for; empty when it carries none. */
  nodeHints: readonly string[];
}

export interface SliceRead {
  /** Undefined for FQDN slices and rejected ones: they contribute nothing. */
  family: Family | undefined;
  ports: SlicePort[];
  endpoints: SliceEndpoint[];
  problems: ObjectProblem[];
}

/** The namespace and service a slice belongs to, or undefined when it names none. */
export function sliceOwner(slice: V1EndpointSlice): { namespace: string; service: string } | undefined {
  const raw: unknown = slice;
  const meta = isRecord(raw) ? raw.metadata : undefined;
  if (!isRecord(meta) || typeof meta.namespace !== 'string' || !isRecord(meta.labels)) return undefined;
  const service = meta.labels[LABEL_SERVICE_NAME];
  if (typeof service !== 'string' || service === '') return undefined;
  return { namespace: meta.namespace, service };
}

/**
 * Validates a slice. An endpoint with a bad address and a port with a bad number are skipped with a
 * problem naming the field (`endpoints[2].addresses[0]`, `ports[0].port`); the rest is used.
 */
export function readSlice(slice: V1EndpointSlice): SliceRead {
  const value: unknown = slice;
  const raw = isRecord(value) ? value : {};
  const meta = isRecord(raw.metadata) ? raw.metadata : {};
  const who: ObjectRef = {
    kind: 'EndpointSlice',
    namespace: typeof meta.namespace === 'string' ? meta.namespace : '',
    name: typeof meta.name === 'string' ? meta.name : '',
  };
  const out: SliceRead = { family: undefined, ports: [], endpoints: [], problems: [] };
  if (who.name === '') {
    out.problems.push(problem(who, 'metadata.name', ErrorCodes.MISSING_FIELD, 'is required'));
    return out;
  }
  const type = raw.addressType;
  if (type === 'FQDN') return out;
  if (type !== 'IPv4' && type !== 'IPv6') {
    const code = type === undefined || type === null ? ErrorCodes.MISSING_FIELD : ErrorCodes.INVALID_FIELD;
    out.problems.push(problem(who, 'addressType', code, `must be IPv4, IPv6 or FQDN, got ${show(type)}`));
    return out;
  }
  out.family = type === 'IPv4' ? 4 : 6;
  out.ports = readPorts(raw.ports, who, out.problems);
  out.endpoints = readEndpoints(raw.endpoints, out.family, who, out.problems);
  return out;
}

function readPorts(list: unknown, who: ObjectRef, problems: ObjectProblem[]): SlicePort[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    problems.push(problem(who, 'ports', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}`));
    return [];
  }
  const ports: SlicePort[] = [];
  list.forEach((item: unknown, i) => {
    if (!isRecord(item)) {
      problems.push(problem(who, `ports[${i}]`, ErrorCodes.INVALID_FIELD, `must be an object, got ${show(item)}`));
      return;
    }
    const name = typeof item.name === 'string' ? item.name : '';
    const protocol = typeof item.protocol === 'string' ? item.protocol : 'TCP';
    if (item.port === undefined || item.port === null) {
      ports.push({ name, protocol, port: null });
      return;
    }
    const port = checkPort(item.port, `ports[${i}].port`, who, problems);
    if (port !== undefined) ports.push({ name, protocol, port });
  });
  return ports;
}

function readEndpoints(list: unknown, family: Family, who: ObjectRef, problems: ObjectProblem[]): SliceEndpoint[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    problems.push(problem(who, 'endpoints', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}`));
    return [];
  }
  const endpoints: SliceEndpoint[] = [];
  for (let i = 0; i < list.length; i++) {
    const ep = readEndpoint(list[i], i, family, who, problems);
    if (ep) endpoints.push(ep);
  }
  return endpoints;
}

/** The item is `endpoints[i]`, a field named only for a problem (large services have thousands of endpoints). */
function readEndpoint(item: unknown, i: number, family: Family, who: ObjectRef, problems: ObjectProblem[]): SliceEndpoint | undefined {
  if (!isRecord(item)) {
    problems.push(problem(who, endpointField(i), ErrorCodes.INVALID_FIELD, `must be an object, got ${show(item)}`));
    return undefined;
  }
  const addresses = item.addresses;
  if (addresses !== undefined && addresses !== null && !Array.isArray(addresses)) {
    // A wrong type is not a missing field: say what was there.
    problems.push(problem(who, `${endpointField(i)}.addresses`, ErrorCodes.INVALID_FIELD, `must be a list, got ${show(addresses)}`));
    return undefined;
  }
  if (!Array.isArray(addresses) || addresses.length === 0) {
    problems.push(problem(who, `${endpointField(i)}.addresses`, ErrorCodes.MISSING_FIELD, 'at least one address is required'));
    return undefined;
  }
  const ip = parseIp(addresses[0]);
  if (!ip || ip.family !== family) {
    const why = ip ? `${show(addresses[0])} is IPv${ip.family} in an IPv${family} slice` : notAnIp(addresses[0]);
    problems.push(problem(who, `${endpointField(i)}.addresses[0]`, ErrorCodes.INVALID_IP, why));
    return undefined;
  }
  const c = isRecord(item.conditions) ? item.conditions : {};
  const hints = isRecord(item.hints) ? item.hints : {};
  return {
    address: ip.address,
    // kube-proxy (pkg/proxy/endpointslicecache.go): a missing ready or serving counts as true, a
    // missing terminating as false. (The API documents a missing serving as "defer to ready"; the two
    // differ only for ready=false with serving unset, which kube-proxy treats as serving.)
    ready: c.ready !== false,
    serving: c.serving !== false,
    terminating: c.terminating === true,
    nodeName: typeof item.nodeName === 'string' ? item.nodeName : undefined,
    zoneHints: hintNames(hints.forZones),
    nodeHints: hintNames(hints.forNodes),
  };
}

function endpointField(i: number): string {
  return `endpoints[${i}]`;
}

/** The hints of an endpoint that carries none: nearly every one, so they share one empty list. */
const NO_HINTS: readonly string[] = [];

/** The names of a hint list (`[{name: zone-a}]`); entries without a string name are ignored. */
function hintNames(list: unknown): readonly string[] {
  if (!Array.isArray(list)) return NO_HINTS;
  return list.flatMap((h: unknown) => (isRecord(h) && typeof h.name === 'string' ? [h.name] : []));
}
