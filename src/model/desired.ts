// The pure heart of the agent: Services and EndpointSlices in, the table of frontends to program out.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { type PortEndpoint, portEndpoints, toBackends } from './backends.ts';
import { type Claim, settleConflicts } from './conflicts.ts';
import {
  type AssembledTable,
  byNamespaceName,
  DesiredCache,
  type NodeFacts,
  type ServiceMemo,
  type ServiceResult,
  type SliceMemo,
} from './desired-cache.ts';
import { type ParsedIp, parseIp } from './ip.ts';
import { cmp, problem, sortProblems } from './problem.ts';
import type { ServiceSpec } from './service-spec.ts';
import type { SliceRead } from './slice-read.ts';
import { runSteps, STEP_EVERY } from './steps.ts';
import { categorizeEndpoints } from './topology.ts';
import {
  type Backend,
  type DesiredFrontend,
  type DesiredTable,
  endpointKey,
  type FrontendKind,
  type HealthCheck,
  type NodeInfo,
} from './types.ts';

export { DesiredCache } from './desired-cache.ts';

export const DEFAULT_MAX_BACKENDS_PER_SERVICE = 1024;

export interface DesiredOptions {
  /**
   * Most backends one frontend may balance over (default 1024). A frontend with more keeps the first
   * N in (address, port) order, so the choice is stable, and its service gets a TOO_MANY_BACKENDS problem.
   */
  maxBackendsPerService?: number;
  /**
   * Reuses work from earlier calls given the same cache: a service is read and its frontends built
   * again only when its object, one of its slices (as an instance) or the node's facts changed. The
   * table is the same as without it. Objects handed in must then never be mutated in place (see
   * DesiredCache); without a cache every call starts from scratch.
   */
  cache?: DesiredCache;
}

const NO_SLICES: readonly SliceMemo[] = [];

/**
 * Computes the desired table: what kube-proxy would program for the same objects on this node, as
 * frontends (cluster IPs, node addresses with nodePorts, external and load-balancer IPs) with the
 * backends a client on this node gets and, for externally reachable ones, those traffic from outside
 * gets. Pure and deterministic: the same objects in any order give the same table. Bad objects become
 * problems, never exceptions; only bad options throw.
 */
export function desired(services: V1Service[], slices: V1EndpointSlice[], node: NodeInfo, options: DesiredOptions = {}): DesiredTable {
  return runSteps(desiredSteps(services, slices, node, options));
}

/** desired(), yielding between services (src/model/steps.ts). */
export function* desiredSteps(
  services: V1Service[],
  slices: V1EndpointSlice[],
  node: NodeInfo,
  options: DesiredOptions = {},
): Generator<void, DesiredTable> {
  const max = checkOptions(options);
  const cache = options.cache ?? new DesiredCache();
  const epoch = ++cache.epoch;
  const nodeFacts = cache.node(node, nodeFactsOf);
  const groups = yield* groupSlices(slices, cache, epoch);
  const order = yield* orderedServices(services, cache, epoch);
  const results: (ServiceResult | undefined)[] = new Array(order.length);
  for (let i = 0; i < order.length; i++) {
    if (i % STEP_EVERY === 0) yield;
    const memo = order[i]!;
    const spec = memo.read.spec;
    if (!spec) continue;
    const svcSlices = groups.get(memo.sliceKey) ?? NO_SLICES;
    let result = cache.result(memo.object, svcSlices);
    if (!result) {
      result = serviceResult(spec, svcSlices, cache, node, nodeFacts.ips);
      cache.setResult(memo.object, result);
    }
    results[i] = result;
  }
  const table = patched(cache.table, max, nodeFacts, order, results) ?? (yield* assemble(max, nodeFacts, order, results));
  cache.table = table;
  // Every frontend carries its kind and the table its health checks (both optional in the type only
  // for tables built by hand). The arrays are the caller's; the entries are shared with the cache.
  return { frontends: [...table.frontends], problems: [...table.problems], healthChecks: [...table.healthChecks] };
}

/** The table from every service's result: conflicts settled, backends limited, all sorted. */
function* assemble(
  max: number,
  nodeFacts: NodeFacts,
  order: readonly ServiceMemo[],
  results: readonly (ServiceResult | undefined)[],
): Generator<void, AssembledTable> {
  const problems: ObjectProblem[] = [];
  pushAll(problems, nodeFacts.problems);
  const claims: Claim[] = [];
  const healthChecks: HealthCheck[] = [];
  // Slice problems are reported once per service key, even if two objects name the same service.
  const reported = new Set<string>();
  for (let i = 0; i < order.length; i++) {
    if (i % (STEP_EVERY * 16) === 0) yield;
    const memo = order[i]!;
    pushAll(problems, memo.read.problems);
    const result = results[i];
    if (!result) continue;
    if (result.sliceProblems.length > 0 && !reported.has(memo.sliceKey)) {
      reported.add(memo.sliceKey);
      pushAll(problems, result.sliceProblems);
    }
    pushAll(claims, result.claims);
    if (result.healthCheck) healthChecks.push(result.healthCheck);
  }
  const settled = settleConflicts(claims);
  pushAll(problems, settled.problems);
  yield;
  const keyed = settled.kept.map((f, i) => ({ key: settled.keys[i]!, f: limitBackends(f, max, settled.fields[i]!, problems) }));
  yield;
  keyed.sort(byKeyedFrontend);
  yield;
  const frontends = keyed.map((k) => k.f);
  const index = new Map<string, number>();
  for (const [i, k] of keyed.entries()) index.set(k.key, i);
  healthChecks.sort((a, b) => a.port - b.port || cmp(a.service.namespace, b.service.namespace) || cmp(a.service.name, b.service.name));
  return { maxBackends: max, nodeFacts, order, results, frontends, index, problems: sortProblems(problems), healthChecks };
}

/** Beyond this many changed services a patch saves little over assembling afresh. */
const MAX_PATCHED = 64;

/**
 * The last table with the entries of a few changed services swapped in, when that is provably what
 * assemble() would give: the same services in the same order, each changed one claiming the same
 * frontends (keys, fields, kinds) it won before, within the backend limit, without slice problems,
 * and with a health check on the same port or none. Then no conflict, problem or position changes.
 */
function patched(
  last: AssembledTable | undefined,
  max: number,
  nodeFacts: NodeFacts,
  order: readonly ServiceMemo[],
  results: readonly (ServiceResult | undefined)[],
): AssembledTable | undefined {
  if (!last || last.maxBackends !== max || last.nodeFacts !== nodeFacts || last.order.length !== order.length) return undefined;
  const changed: number[] = [];
  for (let i = 0; i < order.length; i++) {
    if (order[i] !== last.order[i]) return undefined;
    if (results[i] !== last.results[i]) {
      if (changed.length === MAX_PATCHED) return undefined;
      changed.push(i);
    }
  }
  if (changed.length === 0) return { ...last, results };
  const frontends = [...last.frontends];
  let healthChecks = last.healthChecks;
  for (const i of changed) {
    const before = last.results[i];
    const after = results[i];
    if (!before || !after || before.claims.length !== after.claims.length) return undefined;
    if (before.sliceProblems.length > 0 || after.sliceProblems.length > 0) return undefined;
    for (let j = 0; j < after.claims.length; j++) {
      const old = before.claims[j]!;
      const now = after.claims[j]!;
      const at = now.key === undefined ? undefined : last.index.get(now.key);
      if (at === undefined || old.key !== now.key || old.field !== now.field || old.created !== now.created) return undefined;
      if (old.entry.kind !== now.entry.kind || last.frontends[at] !== old.entry) return undefined;
      const most = Math.max(now.entry.backends.length, now.entry.externalBackends?.length ?? 0);
      if (most > max) return undefined;
      frontends[at] = now.entry;
    }
    if (before.healthCheck || after.healthCheck) {
      const at = before.healthCheck ? healthChecks.indexOf(before.healthCheck) : -1;
      if (at < 0 || !after.healthCheck || after.healthCheck.port !== before.healthCheck!.port) return undefined;
      if (healthChecks === last.healthChecks) healthChecks = [...healthChecks];
      (healthChecks as HealthCheck[])[at] = after.healthCheck;
    }
  }
  return { ...last, results, frontends, healthChecks };
}

function pushAll<T>(to: T[], from: readonly T[]): void {
  for (let i = 0; i < from.length; i++) to.push(from[i]!);
}

function serviceResult(
  spec: ServiceSpec,
  sliceMemos: readonly SliceMemo[],
  cache: DesiredCache,
  node: NodeInfo,
  nodeIps: readonly ParsedIp[],
): ServiceResult {
  const reads = sliceMemos.map((m) => cache.readSlice(m));
  const sliceProblems: ObjectProblem[] = [];
  for (const r of reads) pushAll(sliceProblems, r.problems);
  return {
    slices: sliceMemos.map((m) => m.object),
    claims: claimsOf(spec, reads, node, nodeIps),
    healthCheck: healthCheckOf(spec, reads, node),
    sliceProblems,
  };
}

/**
 * Services in (namespace, name) order, stable for equal names. With a cache the last call's order
 * is reused: the services that stayed keep their places and only the new ones are merged in.
 */
function* orderedServices(services: readonly V1Service[], cache: DesiredCache, epoch: number): Generator<void, readonly ServiceMemo[]> {
  const previous = cache.order;
  const listed = cache.orderEpoch;
  const memos: ServiceMemo[] = new Array(services.length);
  const added: ServiceMemo[] = [];
  let twice = false;
  for (let i = 0; i < services.length; i++) {
    // Reading a service seen for the first time is the costly part of a first sync.
    if (i % STEP_EVERY === 0) yield;
    const m = cache.service(services[i]!);
    if (m.seen === epoch) twice = true;
    m.seen = epoch;
    memos[i] = m;
    if (m.listed !== listed || listed === 0) added.push(m);
  }
  const stayed = memos.length - added.length;
  if (!twice && added.length === 0 && stayed === previous.length) return previous;
  let ordered: ServiceMemo[] | undefined;
  if (!twice) {
    const kept = stayed === previous.length ? previous : previous.filter((m) => m.seen === epoch);
    ordered = merge(kept, added.sort(byNamespaceName));
    // Equal names tie-break on input order, which a merge does not know: sort such a list afresh.
    for (let i = 1; i < ordered.length; i++) {
      if (byNamespaceName(ordered[i - 1]!, ordered[i]!) >= 0) {
        ordered = undefined;
        break;
      }
    }
  }
  ordered ??= memos.sort(byNamespaceName);
  for (const m of ordered) m.listed = epoch;
  cache.order = ordered;
  cache.orderEpoch = epoch;
  return ordered;
}

function merge(a: readonly ServiceMemo[], b: readonly ServiceMemo[]): ServiceMemo[] {
  const out: ServiceMemo[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(byNamespaceName(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

/**
 * Slices grouped by `namespace/service`, each group in (namespace, name) order. A slice is only read
 * (and its problems recorded) when a programmed service asks for it, so slices of headless or foreign
 * services, or of no service, never raise problems. With a cache the last call's groups are updated:
 * a new slice object joins its group, and the one it replaces (same namespace/name) or any that is
 * gone leaves; a group that changes is a new array.
 */
function* groupSlices(
  slices: readonly V1EndpointSlice[],
  cache: DesiredCache,
  epoch: number,
): Generator<void, ReadonlyMap<string, readonly SliceMemo[]>> {
  if (cache.groupedById.size === 0) return yield* regroup(slices, cache, epoch);
  const added: SliceMemo[] = [];
  let owned = 0;
  let twice = false;
  let visited = 0;
  for (const slice of slices) {
    if (++visited % STEP_EVERY === 0) yield;
    const m = cache.slice(slice);
    if (m.owner === undefined) continue;
    if (m.seen === epoch) twice = true;
    m.seen = epoch;
    owned++;
    if (!m.grouped) added.push(m);
  }
  const byId = cache.groupedById;
  // Grouped slices not seen this time: the ones replaced by an added version are found by name.
  let gone = byId.size - (owned - added.length);
  const leaving: SliceMemo[] = [];
  const idOf = (m: SliceMemo): string => `${m.namespace}/${m.name}`;
  for (const m of added) {
    const old = byId.get(idOf(m));
    if (old && old.seen !== epoch) leaving.push(old);
  }
  gone -= leaving.length;
  if (twice || gone < 0) return yield* regroup(slices, cache, epoch);
  if (gone > 0) {
    // Some left without a new version (deleted): find them all.
    leaving.length = 0;
    for (const m of byId.values()) if (m.seen !== epoch) leaving.push(m);
  }
  if (added.length === 0 && leaving.length === 0) return cache.groups;
  const groups = cache.groups;
  const touched = new Map<string, SliceMemo[]>();
  const group = (owner: string): SliceMemo[] => {
    let list = touched.get(owner);
    if (!list) {
      list = [...(groups.get(owner) ?? [])];
      touched.set(owner, list);
    }
    return list;
  };
  for (const m of leaving) {
    const list = group(m.owner!);
    const at = list.indexOf(m);
    if (at >= 0) list.splice(at, 1);
    m.grouped = false;
    if (byId.get(idOf(m)) === m) byId.delete(idOf(m));
  }
  for (const m of added) {
    const id = idOf(m);
    if (byId.has(id)) return yield* regroup(slices, cache, epoch);
    group(m.owner!).push(m);
    m.grouped = true;
    byId.set(id, m);
  }
  for (const [owner, list] of touched) {
    if (list.length === 0) groups.delete(owner);
    else groups.set(owner, list.length > 1 ? list.sort(byNamespaceName) : list);
  }
  return groups;
}

/** Groups every slice afresh (at first, or with slices named twice, where order must follow the input). */
function* regroup(
  slices: readonly V1EndpointSlice[],
  cache: DesiredCache,
  epoch: number,
): Generator<void, ReadonlyMap<string, readonly SliceMemo[]>> {
  for (const m of cache.groupedById.values()) m.grouped = false;
  const groups = new Map<string, SliceMemo[]>();
  const byId = new Map<string, SliceMemo>();
  let unique = true;
  let visited = 0;
  for (const slice of slices) {
    if (++visited % STEP_EVERY === 0) yield;
    const m = cache.slice(slice);
    if (m.owner === undefined) continue;
    const list = groups.get(m.owner);
    if (list) list.push(m);
    else groups.set(m.owner, [m]);
    const id = `${m.namespace}/${m.name}`;
    if (byId.has(id)) unique = false;
    m.seen = epoch;
    byId.set(id, m);
  }
  for (const list of groups.values()) if (list.length > 1) list.sort(byNamespaceName);
  // Only a set without repeats can be updated next time; otherwise group afresh again.
  if (unique) {
    for (const m of byId.values()) m.grouped = true;
    cache.groups = groups;
    cache.groupedById = byId;
  } else {
    cache.groups = new Map();
    cache.groupedById = new Map();
  }
  return groups;
}

function checkOptions(options: DesiredOptions): number {
  const max = options.maxBackendsPerService ?? DEFAULT_MAX_BACKENDS_PER_SERVICE;
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`maxBackendsPerService must be a positive integer, got ${String(max)}`);
  }
  if (options.cache !== undefined && !(options.cache instanceof DesiredCache)) {
    throw new TypeError('cache must be a DesiredCache');
  }
  return max;
}

/**
 * The node's addresses, canonical and deduplicated. They come from the Node's status (through the
 * agent), so one that does not parse is that object's problem, not a reason to stop: it is skipped.
 */
function nodeFactsOf(node: NodeInfo): NodeFacts {
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
function claimsOf(spec: ServiceSpec, slices: SliceRead[], node: NodeInfo, nodeIps: readonly ParsedIp[]): Claim[] {
  const claims: Claim[] = [];
  const seen = new Set<string>();
  const affinity = spec.affinityTimeoutSeconds === undefined ? {} : { affinityTimeoutSeconds: spec.affinityTimeoutSeconds };
  const scheduling = spec.scheduling === undefined ? {} : { scheduling: spec.scheduling };
  for (const ip of spec.ips) {
    const family = ip.family;
    const externalIps = spec.externalIps.filter((x) => x.family === family);
    const lbIps = spec.loadBalancerIps.filter((x) => x.family === family);
    const nodeAddrs = nodeIps.filter((x) => x.family === family);
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
      const backendsOf = (eps: PortEndpoint[] | undefined): Backend[] => toBackends(eps ?? [], family, port.protocol, node.peers);
      const clusterWide = backendsOf(sets.cluster);
      const internal = spec.localOnly ? backendsOf(sets.local) : clusterWide;
      const external = spec.externalLocal ? backendsOf(sets.local) : clusterWide;
      const add = (kind: FrontendKind, address: string, frontPort: number, field: string): void => {
        const frontend = { family, address, port: frontPort, protocol: port.protocol };
        const key = endpointKey(frontend);
        if (seen.has(key)) return;
        seen.add(key);
        const entry: DesiredFrontend & { kind: FrontendKind } =
          kind === 'ClusterIP'
            ? { frontend, service: spec.service, portName: port.name, kind, backends: internal, ...affinity, ...scheduling }
            : {
                frontend,
                service: spec.service,
                portName: port.name,
                kind,
                backends: clusterWide,
                externalBackends: external,
                ...affinity,
                ...scheduling,
                ...(spec.externalLocal ? { externalLocal: true as const } : {}),
                ...(kind === 'LoadBalancer' && spec.sourceRanges.length > 0 ? { sourceRanges: spec.sourceRanges } : {}),
              };
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

/**
 * The health check of a LoadBalancer service with `externalTrafficPolicy: Local`, counting its ready
 * endpoints on this node as kube-proxy's EndpointsMap.LocalReadyEndpoints (pkg/proxy/endpoints.go)
 * does: by address, across every slice port (so a pod serving two ports counts once), terminating
 * ones not at all. kube-proxy runs a proxier per family that report into one health server; we
 * report the larger of the families' counts (they are equal for dual-stack pods).
 */
function healthCheckOf(spec: ServiceSpec, slices: SliceRead[], node: NodeInfo): HealthCheck | undefined {
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
function limitBackends(f: DesiredFrontend, max: number, field: string, problems: ObjectProblem[]): DesiredFrontend {
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
