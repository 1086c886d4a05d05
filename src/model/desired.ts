// The pure heart of the agent: Services and EndpointSlices in, the table of frontends to program out.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { portEndpoints, toBackends } from './backends.ts';
import { type Claim, settleConflicts } from './conflicts.ts';
import { type ParsedIp, parseIp } from './ip.ts';
import { cmp, isRecord, problem, sortProblems } from './problem.ts';
import { readService, type ServiceRead, type ServiceSpec } from './service-spec.ts';
import { readSlice, type SliceRead, sliceOwner } from './slice-read.ts';
import { categorizeEndpoints } from './topology.ts';
import {
  type DesiredFrontend,
  type DesiredTable,
  endpointKey,
  type Family,
  type Frontend,
  type FrontendKind,
  type HealthCheck,
  type NodeInfo,
} from './types.ts';

export const DEFAULT_MAX_BACKENDS_PER_SERVICE = 1024;

export interface DesiredOptions {
  /**
   * Most backends one frontend may balance over (default 1024). A frontend with more keeps the first
   * N in (address, port) order, so the choice is stable, and its service gets a TOO_MANY_BACKENDS problem.
   */
  maxBackendsPerService?: number;
}

/** The node facts the model reads: its addresses, parsed, and what was wrong with them. */
export interface NodeFacts {
  readonly ips: readonly ParsedIp[];
  readonly problems: readonly ObjectProblem[];
}

/** A Service as desired() orders and reads it. */
interface ServiceMemo {
  readonly namespace: string;
  readonly name: string;
  readonly read: ServiceRead;
}

/** An EndpointSlice as desired() groups it; read only when a programmed service asks for it. */
interface SliceMemo {
  readonly object: V1EndpointSlice;
  readonly namespace: string;
  readonly name: string;
  read: SliceRead | undefined;
}

/** What one programmed service contributes to the table, given its slices and the node. */
interface ServiceResult {
  readonly claims: readonly Claim[];
  readonly healthCheck: HealthCheck | undefined;
  /** The problems of its slices, in slice order. */
  readonly sliceProblems: readonly ObjectProblem[];
}

/**
 * Computes the desired table: what kube-proxy would program for the same objects on this node, as
 * frontends (cluster IPs, node addresses with nodePorts, external and load-balancer IPs) with the
 * backends a client on this node gets and, for externally reachable ones, those traffic from outside
 * gets. Pure and deterministic: the same objects in any order give the same table. Bad objects become
 * problems, never exceptions; only bad options throw. From scratch each time: the agent keeps the
 * table per service instead (DesiredState), and is tested to hold what this computes.
 */
export function desired(services: V1Service[], slices: V1EndpointSlice[], node: NodeInfo, options: DesiredOptions = {}): DesiredTable {
  const max = checkOptions(options);
  const nodeFacts = nodeFactsOf(node);
  const groups = groupSlices(slices);
  // Services in (namespace, name) order, stable for equal names.
  const order: ServiceMemo[] = services
    .map((svc) => ({ namespace: metaText(svc, 'namespace'), name: metaText(svc, 'name'), read: readService(svc) }))
    .sort(byNamespaceName);
  const problems: ObjectProblem[] = [...nodeFacts.problems];
  const claims: Claim[] = [];
  const healthChecks: HealthCheck[] = [];
  // Slice problems are reported once per service key, even if two objects name the same service.
  const reported = new Set<string>();
  for (const memo of order) {
    pushAll(problems, memo.read.problems);
    const spec = memo.read.spec;
    if (!spec) continue;
    const sliceKey = `${spec.service.namespace}/${spec.service.name}`;
    const result = serviceResult(spec, groups.get(sliceKey) ?? [], node, nodeFacts.ips);
    if (result.sliceProblems.length > 0 && !reported.has(sliceKey)) {
      reported.add(sliceKey);
      pushAll(problems, result.sliceProblems);
    }
    pushAll(claims, result.claims);
    if (result.healthCheck) healthChecks.push(result.healthCheck);
  }
  const settled = settleConflicts(claims);
  pushAll(problems, settled.problems);
  const keyed = settled.kept.map((f, i) => ({ key: settled.keys[i]!, f: limitBackends(f, max, settled.fields[i]!, problems) }));
  keyed.sort(byKeyedFrontend);
  healthChecks.sort((a, b) => a.port - b.port || cmp(a.service.namespace, b.service.namespace) || cmp(a.service.name, b.service.name));
  return { frontends: keyed.map((k) => k.f), problems: sortProblems(problems), healthChecks };
}

function pushAll<T>(to: T[], from: readonly T[]): void {
  for (let i = 0; i < from.length; i++) to.push(from[i]!);
}

function serviceResult(spec: ServiceSpec, slices: readonly SliceMemo[], node: NodeInfo, nodeIps: readonly ParsedIp[]): ServiceResult {
  const reads = slices.map((m) => {
    m.read ??= readSlice(m.object);
    return m.read;
  });
  const sliceProblems: ObjectProblem[] = [];
  for (const r of reads) pushAll(sliceProblems, r.problems);
  return { claims: claimsOf(spec, reads, node, nodeIps), healthCheck: healthCheckOf(spec, reads, node), sliceProblems };
}

/**
 * Slices grouped by `namespace/service`, each group in (namespace, name) order, stable for equal
 * names. A slice is only read (and its problems recorded) when a programmed service asks for it, so
 * slices of headless or foreign services, or of no service, never raise problems.
 */
function groupSlices(slices: readonly V1EndpointSlice[]): Map<string, SliceMemo[]> {
  const groups = new Map<string, SliceMemo[]>();
  for (const slice of slices) {
    const owner = sliceOwner(slice);
    if (!owner) continue;
    const key = `${owner.namespace}/${owner.service}`;
    const memo: SliceMemo = { object: slice, namespace: metaText(slice, 'namespace'), name: metaText(slice, 'name'), read: undefined };
    const list = groups.get(key);
    if (list) list.push(memo);
    else groups.set(key, [memo]);
  }
  for (const list of groups.values()) if (list.length > 1) list.sort(byNamespaceName);
  return groups;
}

/** Orders by metadata namespace, then name. */
function byNamespaceName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

/** A metadata field as text for ordering; tolerates objects too malformed to validate yet. */
export function metaText(o: unknown, field: 'namespace' | 'name'): string {
  const meta = isRecord(o) ? o.metadata : undefined;
  const value = isRecord(meta) ? meta[field] : undefined;
  return typeof value === 'string' ? value : '';
}

export function checkOptions(options: DesiredOptions): number {
  const max = options.maxBackendsPerService ?? DEFAULT_MAX_BACKENDS_PER_SERVICE;
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`maxBackendsPerService must be a positive integer, got ${String(max)}`);
  }
  return max;
}

/**
 * The node's addresses, canonical and deduplicated. They come from the Node's status (through the
 * agent), so one that does not parse is that object's problem, not a reason to stop: it is skipped.
 */
export function nodeFactsOf(node: NodeInfo): NodeFacts {
  const problems: ObjectProblem[] = [];
  const seen = new Set<string>();
  const ips: ParsedIp[] = [];
  (node.addresses ?? []).forEach((text, i) => {
    const ip = parseIp(text);
    if (!ip) {
      const who = { kind: 'Node', namespace: '', name: node.name };
      problems.push(
        problem(who, `addresses[${i}]`, ErrorCodes.INVALID_IP, `${JSON.stringify(text)} is not an IP address; no NodePort frontends on it`),
      );
      return;
    }
    if (seen.has(ip.address)) return;
    seen.add(ip.address);
    ips.push(ip);
  });
  return { ips, problems };
}

/**
 * Every frontend of a service, per family it has a cluster IP of (kube-proxy runs one proxier per
 * family and a family's proxier ignores a service without a cluster IP of that family, with its
 * external, load-balancer and node addresses of that family), per port:
 *
 * - the cluster IP: `internalTrafficPolicy: Local` gives the node's own endpoints, else the
 *   cluster-wide set (topology hints applied);
 * - `spec.externalIPs`, `status.loadBalancer.ingress[].ip` and, with a nodePort, every node address:
 *   traffic from outside gets the local set under `externalTrafficPolicy: Local`, else the
 *   cluster-wide set. A client on this node gets the cluster-wide set under either policy. That is
 *   kube-proxy's "short circuit" (pkg/proxy/iptables/proxier.go, the KUBE-EXT chain of an eTP:Local
 *   service): traffic from a local pod (localDetector) or with a LOCAL source address (the host) jumps
 *   to the cluster policy chain before the local policy is considered, because such a client is not
 *   behind the external load balancer whose source IP the policy exists to preserve, and the policy
 *   would otherwise blackhole it on nodes without endpoints. Socket hooks see exactly these clients.
 *   internalTrafficPolicy does not apply to these frontends at all.
 *
 * A frontend the service names twice (an external IP also in its ingress) is kept once, first kind wins.
 */
export function claimsOf(spec: ServiceSpec, slices: readonly SliceRead[], node: NodeInfo, nodeIps: readonly ParsedIp[]): Claim[] {
  const claims: Claim[] = [];
  const seen = new Set<string>();
  for (const ip of spec.ips) {
    const family = ip.family;
    const externalIps = ofFamily(spec.externalIps, family);
    const lbIps = ofFamily(spec.loadBalancerIps, family);
    const nodeAddrs = ofFamily(nodeIps, family);
    for (const port of spec.ports) {
      const endpoints = portEndpoints(
        {
          family,
          portName: port.name,
          protocol: port.protocol,
          nodeName: node.name,
          publishNotReadyAddresses: spec.publishNotReadyAddresses,
        },
        slices,
      );
      const policy = {
        internalLocal: spec.localOnly,
        externalLocal: spec.externalLocal,
        externallyAccessible: port.nodePort !== undefined || externalIps.length > 0 || lbIps.length > 0,
      };
      const sets = categorizeEndpoints(endpoints, policy, node.name, node.zone ?? '');
      const clusterWide = toBackends(sets.cluster ?? [], family, port.protocol, node.peers);
      const local = spec.localOnly || spec.externalLocal ? toBackends(sets.local ?? [], family, port.protocol, node.peers) : [];
      const add = (kind: FrontendKind, address: string, frontPort: number, field: string): void => {
        const frontend: Frontend = { family, address, port: frontPort, protocol: port.protocol };
        const key = endpointKey(frontend);
        if (seen.has(key)) return;
        seen.add(key);
        const entry: DesiredFrontend = { frontend, service: spec.service, portName: port.name, kind, backends: clusterWide };
        if (kind === 'ClusterIP') {
          if (spec.localOnly) entry.backends = local;
        } else entry.externalBackends = spec.externalLocal ? local : clusterWide;
        setServiceOptions(entry, spec);
        claims.push({ entry, created: spec.created, field, key });
      };
      add('ClusterIP', ip.address, port.port, `spec.ports[${port.index}]`);
      for (const x of externalIps) add('ExternalIP', x.address, port.port, x.field);
      for (const x of lbIps) add('LoadBalancer', x.address, port.port, x.field);
      if (port.nodePort !== undefined) {
        for (const x of nodeAddrs) add('NodePort', x.address, port.nodePort, `spec.ports[${port.index}].nodePort`);
      }
    }
  }
  return claims;
}

/** The addresses of one family; the list itself when they all are (the usual case: one family, or none). */
function ofFamily<T extends ParsedIp>(ips: readonly T[], family: Family): readonly T[] {
  return ips.every((x) => x.family === family) ? ips : ips.filter((x) => x.family === family);
}

/** The fields of a frontend's entry that come from its service as a whole, set only where they apply. */
function setServiceOptions(entry: DesiredFrontend, spec: ServiceSpec): void {
  if (spec.affinityTimeoutSeconds !== undefined) entry.affinityTimeoutSeconds = spec.affinityTimeoutSeconds;
  if (spec.scheduling !== undefined) entry.scheduling = spec.scheduling;
  if (entry.kind === 'ClusterIP') return;
  if (spec.externalLocal) entry.externalLocal = true;
  if (entry.kind === 'LoadBalancer' && spec.sourceRanges.length > 0) entry.sourceRanges = spec.sourceRanges;
}

/**
 * The health check of a LoadBalancer service with `externalTrafficPolicy: Local`, counting its ready
 * endpoints on this node as kube-proxy's EndpointsMap.LocalReadyEndpoints (pkg/proxy/endpoints.go)
 * does: by address, across every slice port (so a pod serving two ports counts once), terminating
 * ones not at all. kube-proxy runs a proxier per family that report into one health server; we
 * report the larger of the families' counts (they are equal for dual-stack pods).
 */
export function healthCheckOf(spec: ServiceSpec, slices: readonly SliceRead[], node: NodeInfo): HealthCheck | undefined {
  if (spec.healthCheckNodePort === undefined) return undefined;
  let best = 0;
  for (const family of new Set(spec.ips.map((ip) => ip.family))) {
    const ports = new Map<string, { name: string; protocol: string }>();
    for (const slice of slices) {
      if (slice.family !== family) continue;
      for (const p of slice.ports) if (p.port !== null) ports.set(`${p.protocol}/${p.name}`, p);
    }
    const addresses = new Set<string>();
    for (const p of ports.values()) {
      const query = {
        family,
        portName: p.name,
        protocol: p.protocol,
        nodeName: node.name,
        publishNotReadyAddresses: spec.publishNotReadyAddresses,
      };
      for (const ep of portEndpoints(query, slices)) if (ep.local && ep.ready) addresses.add(ep.address);
    }
    best = Math.max(best, addresses.size);
  }
  return { service: spec.service, port: spec.healthCheckNodePort, localEndpoints: best };
}

/** `field` is where the frontend came from (`spec.ports[0]`), so the problem names the port at fault. */
export function limitBackends(f: DesiredFrontend, max: number, field: string, problems: ObjectProblem[]): DesiredFrontend {
  const most = Math.max(f.backends.length, f.externalBackends?.length ?? 0);
  if (most <= max) return f;
  problems.push(
    problem(
      { kind: 'Service', ...f.service },
      field,
      ErrorCodes.TOO_MANY_BACKENDS,
      `${endpointKey(f.frontend)} has ${most} backends; programming the first ${max} by address`,
    ),
  );
  const limited = { ...f, backends: f.backends.slice(0, max) };
  if (f.externalBackends) limited.externalBackends = f.externalBackends.slice(0, max);
  return limited;
}

function byKeyedFrontend(a: { key: string; f: DesiredFrontend }, b: { key: string; f: DesiredFrontend }): number {
  return cmp(a.key, b.key) || cmp(a.f.service.namespace, b.f.service.namespace) || cmp(a.f.service.name, b.f.service.name);
}
