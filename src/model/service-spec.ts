// Reads a v1 Service into the validated shape the model programs, or says why it cannot.

import type { V1Service } from '@kubernetes/client-node';
import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { notAnIp, type ParsedIp, parseCidr, parseIp } from './ip.ts';
import { isRecord, type ObjectRef, problem, show } from './problem.ts';
import { readScheduling, type Scheduling } from './scheduler.ts';
import type { Protocol, ServiceName } from './types.ts';

/** Label naming the proxy that owns a service; any value means it is not ours (kube-proxy too). */
export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
/** Label marking a service headless whatever its spec says. */
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';

export interface ServiceIp extends ParsedIp {
  /** Where the address came from, for problems: `spec.clusterIPs[1]` or `spec.clusterIP`. */
  field: string;
}

export interface ServicePortSpec {
  /** Index in `spec.ports`, for problems. */
  index: number;
  /** '' when unnamed. */
  name: string;
  port: number;
  protocol: Protocol;
  /** `spec.ports[i].nodePort`; undefined when unset (or 0), as for ClusterIP services. */
  nodePort: number | undefined;
}

/** Service types the model programs (ExternalName services are not ours). */
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
export const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;

export interface ServiceSpec {
  service: ServiceName;
  /** metadata.creationTimestamp in ms since the epoch; undefined when absent or unreadable. */
  created: number | undefined;
  type: ServiceType;
  ips: ServiceIp[];
  /** Only the ports with a supported protocol. */
  ports: ServicePortSpec[];
  /** internalTrafficPolicy: Local: cluster IP traffic only to endpoints on this node. */
  localOnly: boolean;
  /**
   * externalTrafficPolicy: Local, where it applies: kube-proxy (pkg/api/v1/service ExternalPolicyLocal)
   * honours it only for NodePort and LoadBalancer services and ClusterIP ones with externalIPs.
   */
  externalLocal: boolean;
  /** `spec.externalIPs` that parse, canonical, each naming its field. */
  externalIps: ServiceIp[];
  /** `status.loadBalancer.ingress[].ip` in VIP mode, canonical, each naming its field. */
  loadBalancerIps: ServiceIp[];
  /** sessionAffinity: ClientIP: the stickiness timeout; undefined without affinity. */
  affinityTimeoutSeconds: number | undefined;
  /** The health-check port kube-proxy serves (LoadBalancer with externalTrafficPolicy Local). */
  healthCheckNodePort: number | undefined;
  /** publishNotReadyAddresses: every endpoint counts as ready. */
  publishNotReadyAddresses: boolean;
  /**
   * `spec.loadBalancerSourceRanges` of a LoadBalancer service, canonical `address/prefix`: the
   * sources its load-balancer IPs accept. Empty: every source.
   */
  sourceRanges: string[];
  /** `socklb.io/scheduler` and its settings; undefined: the node's default. */
  scheduling: Scheduling | undefined;
}

export interface ServiceRead {
  /** Undefined when the service is not programmed (not ours, or rejected: see problems). */
  spec: ServiceSpec | undefined;
  problems: ObjectProblem[];
}

/**
 * Validates a Service. Services that are not ours (headless, ExternalName, another proxy's) yield
 * no spec and no problem. A structural error (metadata, cluster IPs, ports) rejects the whole service;
 * an unsupported protocol only drops that port.
 */
export function readService(svc: V1Service): ServiceRead {
  const raw = svc as unknown;
  if (!isRecord(raw)) {
    return { spec: undefined, problems: [problem(ref('', ''), '', ErrorCodes.INVALID_FIELD, 'not an object')] };
  }
  const problems: ObjectProblem[] = [];
  const meta = isRecord(raw.metadata) ? raw.metadata : {};
  const namespace = readName(meta.namespace, 'metadata.namespace', problems);
  const name = readName(meta.name, 'metadata.name', problems);
  const who = ref(namespace, name);
  for (const p of problems) Object.assign(p, who);
  const spec = isRecord(raw.spec) ? raw.spec : {};
  if (notOurs(meta, spec)) return { spec: undefined, problems: [] };
  // A spec that is not an object would otherwise be blamed on the fields it lacks (spec.clusterIP).
  if (raw.spec !== undefined && raw.spec !== null && !isRecord(raw.spec)) {
    problems.push(problem(who, 'spec', ErrorCodes.INVALID_FIELD, `must be an object, got ${show(raw.spec)}`));
    return { spec: undefined, problems };
  }

  // Problems in `problems` (but an unsupported protocol) reject the service, as the API server would
  // have; those in `soft` only drop the part at fault, as kube-proxy ignores it.
  const soft: ObjectProblem[] = [];
  const type = readType(spec.type, who, problems);
  const ips = readClusterIps(spec, who, problems);
  const ports = readPorts(spec, who, problems);
  const externalIps = readIpList(spec.externalIPs, 'spec.externalIPs', who, soft);
  const affinityTimeoutSeconds = readAffinity(spec, who, problems);
  const scheduling = readScheduling(meta.annotations, who, problems);
  const status = isRecord(raw.status) ? raw.status : {};
  const loadBalancerIps = readIngress(status.loadBalancer, who, soft);
  if (problems.some((p) => p.code !== ErrorCodes.UNSUPPORTED_PROTOCOL) || type === undefined) {
    return { spec: undefined, problems: problems.concat(soft) };
  }
  const externalLocal = externallyAccessible(type, externalIps) && spec.externalTrafficPolicy === 'Local';
  const healthCheckNodePort =
    type === 'LoadBalancer' && externalLocal ? readHealthCheckPort(spec.healthCheckNodePort, who, soft) : undefined;
  return {
    spec: {
      service: { namespace, name },
      created: readTimestamp(meta.creationTimestamp),
      type,
      ips,
      ports,
      localOnly: spec.internalTrafficPolicy === 'Local',
      externalLocal,
      externalIps,
      loadBalancerIps,
      affinityTimeoutSeconds,
      healthCheckNodePort,
      publishNotReadyAddresses: spec.publishNotReadyAddresses === true,
      sourceRanges: type === 'LoadBalancer' ? readSourceRanges(spec.loadBalancerSourceRanges, who, soft) : [],
      scheduling,
    },
    problems: problems.concat(soft),
  };
}

/** kube-proxy's ExternallyAccessible (pkg/api/v1/service): where externalTrafficPolicy means anything. */
function externallyAccessible(type: ServiceType, externalIps: ServiceIp[]): boolean {
  return type === 'LoadBalancer' || type === 'NodePort' || externalIps.length > 0;
}

function readType(value: unknown, who: ObjectRef, problems: ObjectProblem[]): ServiceType | undefined {
  if (value === undefined || value === null || value === '') return 'ClusterIP';
  if (value === 'ClusterIP' || value === 'NodePort' || value === 'LoadBalancer') return value;
  problems.push(
    problem(who, 'spec.type', ErrorCodes.INVALID_FIELD, `must be ClusterIP, NodePort, LoadBalancer or ExternalName, got ${show(value)}`),
  );
  return undefined;
}

/** A list of addresses where each bad entry is dropped with a problem naming it (`spec.externalIPs[1]`). */
function readIpList(list: unknown, field: string, who: ObjectRef, soft: ObjectProblem[]): ServiceIp[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    soft.push(problem(who, field, ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}; ignored`));
    return [];
  }
  const ips: ServiceIp[] = [];
  list.forEach((text: unknown, i) => {
    const ip = parseIp(text);
    if (ip) ips.push({ ...ip, field: `${field}[${i}]` });
    else soft.push(problem(who, `${field}[${i}]`, ErrorCodes.INVALID_IP, `${notAnIp(text)}; ignored`));
  });
  return ips;
}

/**
 * `spec.loadBalancerSourceRanges`: CIDRs, surrounding spaces allowed as kube-proxy trims them. An
 * entry that does not parse is dropped with a problem, as kube-proxy ignores it; if none is left the
 * service accepts every source, as it would without the field.
 */
function readSourceRanges(list: unknown, who: ObjectRef, soft: ObjectProblem[]): string[] {
  const field = 'spec.loadBalancerSourceRanges';
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    soft.push(problem(who, field, ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}; ignored`));
    return [];
  }
  const ranges: string[] = [];
  list.forEach((text: unknown, i) => {
    const cidr = parseCidr(typeof text === 'string' ? text.trim() : text);
    if (cidr) ranges.push(`${cidr.address}/${cidr.prefix}`);
    else soft.push(problem(who, `${field}[${i}]`, ErrorCodes.INVALID_FIELD, `${show(text)} is not a CIDR; ignored`));
  });
  return [...new Set(ranges)];
}

/**
 * `status.loadBalancer.ingress[].ip`, as kube-proxy reads it (pkg/proxy/serviceport.go): entries with
 * only a hostname are skipped, and so are those whose `ipMode` is not VIP (`Proxy`: the load balancer
 * delivers to the node itself, so programming the IP here would bypass it).
 */
function readIngress(lb: unknown, who: ObjectRef, soft: ObjectProblem[]): ServiceIp[] {
  const list = isRecord(lb) ? lb.ingress : undefined;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    soft.push(problem(who, 'status.loadBalancer.ingress', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}; ignored`));
    return [];
  }
  const ips: ServiceIp[] = [];
  list.forEach((entry: unknown, i) => {
    const field = `status.loadBalancer.ingress[${i}].ip`;
    if (!isRecord(entry) || entry.ip === undefined || entry.ip === null || entry.ip === '') return;
    if (entry.ipMode !== undefined && entry.ipMode !== null && entry.ipMode !== 'VIP') return;
    const ip = parseIp(entry.ip);
    if (ip) ips.push({ ...ip, field });
    else soft.push(problem(who, field, ErrorCodes.INVALID_IP, `${notAnIp(entry.ip)}; ignored`));
  });
  return ips;
}

/** sessionAffinity ClientIP: the timeout, defaulted as the API server does and checked against its range. */
function readAffinity(spec: Record<string, unknown>, who: ObjectRef, problems: ObjectProblem[]): number | undefined {
  const affinity = spec.sessionAffinity;
  if (affinity === undefined || affinity === null || affinity === '' || affinity === 'None') return undefined;
  if (affinity !== 'ClientIP') {
    problems.push(problem(who, 'spec.sessionAffinity', ErrorCodes.INVALID_FIELD, `must be None or ClientIP, got ${show(affinity)}`));
    return undefined;
  }
  const config = isRecord(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : {};
  const clientIp = isRecord(config.clientIP) ? config.clientIP : {};
  const value = clientIp.timeoutSeconds;
  if (value === undefined || value === null) return DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_AFFINITY_TIMEOUT_SECONDS) {
    problems.push(
      problem(
        who,
        'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
        ErrorCodes.INVALID_FIELD,
        `must be an integer in 1-${MAX_AFFINITY_TIMEOUT_SECONDS}, got ${show(value)}`,
      ),
    );
    return undefined;
  }
  return value;
}

/** kube-proxy serves no health check (and logs an error) when the port is unset; so do we, with a problem. */
function readHealthCheckPort(value: unknown, who: ObjectRef, soft: ObjectProblem[]): number | undefined {
  const field = 'spec.healthCheckNodePort';
  if (value === undefined || value === null || value === 0) {
    soft.push(
      problem(
        who,
        field,
        ErrorCodes.MISSING_FIELD,
        'is required for a LoadBalancer with externalTrafficPolicy Local; no health check served',
      ),
    );
    return undefined;
  }
  return checkPort(value, field, who, soft);
}

function ref(namespace: string, name: string): ObjectRef {
  return { kind: 'Service', namespace, name };
}

function readName(value: unknown, field: string, problems: ObjectProblem[]): string {
  if (typeof value === 'string' && value !== '') return value;
  if (value === undefined || value === null || value === '') {
    problems.push(problem(ref('', ''), field, ErrorCodes.MISSING_FIELD, 'is required'));
  } else {
    problems.push(problem(ref('', ''), field, ErrorCodes.INVALID_FIELD, `must be a string, got ${show(value)}`));
  }
  return '';
}

function notOurs(meta: Record<string, unknown>, spec: Record<string, unknown>): boolean {
  const labels = isRecord(meta.labels) ? meta.labels : {};
  if (LABEL_SERVICE_PROXY_NAME in labels || LABEL_HEADLESS in labels) return true;
  if (spec.type === 'ExternalName') return true;
  if (spec.clusterIP === 'None') return true;
  return Array.isArray(spec.clusterIPs) && spec.clusterIPs[0] === 'None';
}

function readTimestamp(value: unknown): number | undefined {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

function readClusterIps(spec: Record<string, unknown>, who: ObjectRef, problems: ObjectProblem[]): ServiceIp[] {
  const list = spec.clusterIPs;
  const single = spec.clusterIP;
  const hasList = Array.isArray(list) && list.length > 0;
  if (list !== undefined && list !== null && !Array.isArray(list)) {
    problems.push(problem(who, 'spec.clusterIPs', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}`));
    return [];
  }
  if (!hasList && (single === undefined || single === null || single === '')) {
    problems.push(problem(who, 'spec.clusterIP', ErrorCodes.MISSING_FIELD, 'is required (no cluster IP to program)'));
    return [];
  }
  const before = problems.length;
  const ips: ServiceIp[] = [];
  const count = hasList ? (list as unknown[]).length : 1;
  for (let i = 0; i < count; i++) {
    const text = hasList ? (list as unknown[])[i] : single;
    const field = hasList ? `spec.clusterIPs[${i}]` : 'spec.clusterIP';
    const ip = parseIp(text);
    if (ip) ips.push({ family: ip.family, address: ip.address, field });
    else problems.push(problem(who, field, ErrorCodes.INVALID_IP, notAnIp(text)));
  }
  if (problems.length > before) return ips;
  if (hasList && single !== undefined && single !== null && single !== '' && parseIp(single)?.address !== ips[0]?.address) {
    problems.push(problem(who, 'spec.clusterIP', ErrorCodes.INVALID_FIELD, `${show(single)} differs from spec.clusterIPs[0]`));
  }
  if (ips.length > 2 || (ips.length === 2 && ips[0]?.family === ips[1]?.family)) {
    problems.push(problem(who, 'spec.clusterIPs', ErrorCodes.INVALID_FIELD, 'holds at most one IPv4 and one IPv6 address'));
  }
  checkFamilies(spec.ipFamilies, ips, who, problems);
  return ips;
}

function checkFamilies(families: unknown, ips: ServiceIp[], who: ObjectRef, problems: ObjectProblem[]): void {
  if (families === undefined || families === null) return;
  if (!Array.isArray(families)) {
    problems.push(problem(who, 'spec.ipFamilies', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(families)}`));
    return;
  }
  ips.forEach((ip, i) => {
    const want = families[i];
    if (want === undefined) return;
    if (want !== `IPv${ip.family}`) {
      problems.push(
        problem(who, ip.field, ErrorCodes.INVALID_IP, `${ip.address} is IPv${ip.family} but spec.ipFamilies[${i}] is ${show(want)}`),
      );
    }
  });
}

function readPorts(spec: Record<string, unknown>, who: ObjectRef, problems: ObjectProblem[]): ServicePortSpec[] {
  const list = spec.ports;
  if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
    problems.push(problem(who, 'spec.ports', ErrorCodes.MISSING_FIELD, 'at least one port is required'));
    return [];
  }
  if (!Array.isArray(list)) {
    problems.push(problem(who, 'spec.ports', ErrorCodes.INVALID_FIELD, `must be a list, got ${show(list)}`));
    return [];
  }
  const ports: ServicePortSpec[] = [];
  list.forEach((item: unknown, index) => {
    const port = readPort(item, index, who, problems);
    if (port) ports.push(port);
  });
  checkDuplicates(ports, who, problems);
  return ports;
}

function readPort(item: unknown, index: number, who: ObjectRef, problems: ObjectProblem[]): ServicePortSpec | undefined {
  const at = `spec.ports[${index}]`;
  if (!isRecord(item)) {
    problems.push(problem(who, at, ErrorCodes.INVALID_FIELD, `must be an object, got ${show(item)}`));
    return undefined;
  }
  const port = checkPort(item.port, `${at}.port`, who, problems);
  let name = '';
  if (typeof item.name === 'string') name = item.name;
  else if (item.name !== undefined && item.name !== null) {
    problems.push(problem(who, `${at}.name`, ErrorCodes.INVALID_FIELD, `must be a string, got ${show(item.name)}`));
  }
  const protocol = item.protocol ?? 'TCP';
  if (protocol !== 'TCP' && protocol !== 'UDP') {
    problems.push(
      problem(who, `${at}.protocol`, ErrorCodes.UNSUPPORTED_PROTOCOL, `${show(protocol)} is not supported (TCP and UDP are); port skipped`),
    );
    return undefined;
  }
  const nodePort =
    item.nodePort === undefined || item.nodePort === null || item.nodePort === 0
      ? undefined
      : checkPort(item.nodePort, `${at}.nodePort`, who, problems);
  return port === undefined ? undefined : { index, name, port, protocol, nodePort };
}

/** Checks a port number field; shared with EndpointSlice ports. */
export function checkPort(value: unknown, field: string, who: ObjectRef, problems: ObjectProblem[]): number | undefined {
  if (value === undefined || value === null) {
    problems.push(problem(who, field, ErrorCodes.MISSING_FIELD, 'is required'));
  } else if (typeof value !== 'number' || !Number.isInteger(value)) {
    problems.push(problem(who, field, ErrorCodes.INVALID_FIELD, `must be an integer, got ${show(value)}`));
  } else if (value < 1 || value > 65535) {
    problems.push(problem(who, field, ErrorCodes.PORT_RANGE, `${value} is outside 1-65535`));
  } else {
    return value;
  }
  return undefined;
}

/** Two ports with the same (port, protocol) or (name, protocol) are ambiguous: reject the service. */
function checkDuplicates(ports: ServicePortSpec[], who: ObjectRef, problems: ObjectProblem[]): void {
  if (ports.length < 2) return;
  const seenPort = new Map<string, number>();
  const seenName = new Map<string, number>();
  for (const p of ports) {
    const byPort = `${p.protocol}/${p.port}`;
    const byName = `${p.protocol}/${p.name}`;
    const first = seenPort.get(byPort);
    if (first !== undefined) {
      problems.push(
        problem(who, `spec.ports[${p.index}].port`, ErrorCodes.INVALID_FIELD, `${p.protocol} ${p.port} repeats spec.ports[${first}]`),
      );
    }
    const firstName = seenName.get(byName);
    if (firstName !== undefined) {
      problems.push(
        problem(
          who,
          `spec.ports[${p.index}].name`,
          ErrorCodes.INVALID_FIELD,
          `${show(p.name)} (${p.protocol}) repeats spec.ports[${firstName}]`,
        ),
      );
    }
    if (first === undefined) seenPort.set(byPort, p.index);
    if (firstName === undefined) seenName.set(byName, p.index);
  }
}
