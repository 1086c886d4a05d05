// The synthetic cluster a benchmark programs: N other services with 3 endpoints each, plus the
// dialled services whose endpoints are lab pods. One description feeds every system (socklb's
// Kubernetes objects, the iptables and nftables rulesets), so they all program the same table.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

export interface BenchEndpoint {
  ip: string;
  port: number;
  /** The node the endpoint's pod runs on: `externalTrafficPolicy: Local` keeps the rules' node's own. */
  nodeName?: string;
}

export interface BenchService {
  namespace: string;
  name: string;
  portName: string;
  clusterIP: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  endpoints: BenchEndpoint[];
  /** Traffic from outside the cluster (the cluster lab's NodePort baseline); absent for ClusterIP. */
  nodePort?: number;
  externalIPs?: string[];
  loadBalancerIPs?: string[];
  /** Sources allowed to the LoadBalancer IPs (CIDRs); empty or absent: all. */
  loadBalancerSourceRanges?: string[];
  /** `Local`: external traffic only to the node's own endpoints, the client's address kept. */
  externalTrafficPolicy?: 'Cluster' | 'Local';
}

export const NAMESPACE = 'bench';
export const SERVICE_PORT = 80;
export const TARGET_PORT = 8080;
/** The dialled service's ClusterIP (3 lab pods behind it). */
export const TARGET_VIP = '10.96.0.10';
/** Where the other services' ClusterIPs start (inside 10.96.0.0/12, the lab's service CIDR). */
const OTHER_VIP_BASE = ipv4ToInt('10.96.4.0');
/** Endpoints of the other services: never dialled, never routed, unique per service. */
const OTHER_ENDPOINT_BASE = ipv4ToInt('10.64.0.0');
export const SERVICE_CIDR = '10.96.0.0/12';
export const POD_CIDR = '10.244.0.0/16';
export const MAX_OTHER_SERVICES = 200_000;

export function ipv4ToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new TypeError(`not an IPv4 address: ${ip}`);
  }
  return ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The i-th other service (0-based): ClusterIP 10.96.4.0 + i, endpoints 10.64.0.0 + 3i.. port 8080. */
export function otherService(i: number): BenchService {
  return {
    namespace: NAMESPACE,
    name: `svc-${i}`,
    portName: 'http',
    clusterIP: intToIpv4(OTHER_VIP_BASE + i),
    port: SERVICE_PORT,
    protocol: 'TCP',
    endpoints: [0, 1, 2].map((k) => ({ ip: intToIpv4(OTHER_ENDPOINT_BASE + 3 * i + k), port: TARGET_PORT })),
  };
}

/** A dialled service over lab pods. */
export function dialledService(name: string, clusterIP: string, podIps: string[]): BenchService {
  return {
    namespace: NAMESPACE,
    name,
    portName: 'http',
    clusterIP,
    port: SERVICE_PORT,
    protocol: 'TCP',
    endpoints: podIps.map((ip) => ({ ip, port: TARGET_PORT })),
  };
}

/** `others` other services, then the dialled ones LAST: the worst case for a linear rule list. */
export function clusterOf(others: number, dialled: BenchService[]): BenchService[] {
  if (!Number.isInteger(others) || others < 0 || others > MAX_OTHER_SERVICES) {
    throw new RangeError(`others must be an integer in 0..${MAX_OTHER_SERVICES}, got ${others}`);
  }
  const out: BenchService[] = [];
  for (let i = 0; i < others; i++) out.push(otherService(i));
  return out.concat(dialled);
}

/**
 * The endpoint change every system applies with N services present: the first service's last
 * endpoint moves to a new address (a pod replaced). Returns the new cluster and the changed service.
 */
export function withOneEndpointChanged(cluster: BenchService[]): { cluster: BenchService[]; changed: BenchService; before: BenchService } {
  const before = cluster[0];
  if (!before) throw new RangeError('the cluster has no service to change');
  const endpoints = before.endpoints.slice(0, -1).concat({ ip: '10.127.255.254', port: TARGET_PORT });
  const changed = { ...before, endpoints };
  return { cluster: [changed, ...cluster.slice(1)], changed, before };
}

/** The Kubernetes objects an informer would hand the agent for this cluster. */
export function toKubernetes(cluster: BenchService[]): { services: V1Service[]; slices: V1EndpointSlice[] } {
  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  for (const s of cluster) {
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: s.namespace },
      spec: {
        type: s.nodePort === undefined ? 'ClusterIP' : 'NodePort',
        clusterIP: s.clusterIP,
        clusterIPs: [s.clusterIP],
        ipFamilies: ['IPv4'],
        ipFamilyPolicy: 'SingleStack',
        ports: [
          {
            name: s.portName,
            port: s.port,
            targetPort: s.portName,
            protocol: s.protocol,
            ...(s.nodePort === undefined ? {} : { nodePort: s.nodePort }),
          },
        ],
      },
    });
    slices.push(sliceOf(s));
  }
  return { services, slices };
}

export function sliceOf(s: BenchService): V1EndpointSlice {
  const port = s.endpoints[0]?.port ?? TARGET_PORT;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${s.name}-bench`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.name } },
    addressType: 'IPv4',
    ports: [{ name: s.portName, port, protocol: s.protocol }],
    endpoints: s.endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: true } })),
  };
}
