// Real-shaped v1 Service and discovery.k8s.io/v1 EndpointSlice objects for tests, and a manifest
// writer: tests describe services briefly and get the YAML a cluster would hold.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { stringify } from 'yaml';

export interface PortSpec {
  name?: string;
  port: number;
  protocol?: 'TCP' | 'UDP';
  targetPort?: number | string;
}

export function service(o: {
  name: string;
  namespace?: string;
  clusterIPs: string[];
  ports: PortSpec[];
  labels?: Record<string, string>;
  /** sessionAffinity: ClientIP with this timeout in seconds. */
  affinitySeconds?: number;
}): V1Service {
  const families = o.clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4'));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: o.name, namespace: o.namespace ?? 'default', labels: o.labels ?? {} },
    spec: {
      type: 'ClusterIP',
      clusterIP: o.clusterIPs[0],
      clusterIPs: o.clusterIPs,
      ipFamilies: families,
      ipFamilyPolicy: o.clusterIPs.length > 1 ? 'PreferDualStack' : 'SingleStack',
      ports: o.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        targetPort: (p.targetPort ?? p.port) as never,
      })),
      ...(o.affinitySeconds
        ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: o.affinitySeconds } } }
        : { sessionAffinity: 'None' }),
    },
  };
}

export interface EndpointSpec {
  address: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  nodeName?: string;
}

export function slice(o: {
  service: string;
  name?: string;
  namespace?: string;
  addressType?: 'IPv4' | 'IPv6';
  ports: { name?: string; port: number; protocol?: 'TCP' | 'UDP' }[];
  endpoints: EndpointSpec[];
}): V1EndpointSlice {
  const addressType = o.addressType ?? (o.endpoints[0]?.address.includes(':') ? 'IPv6' : 'IPv4');
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: o.name ?? `${o.service}-${addressType.toLowerCase()}`,
      namespace: o.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': o.service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType,
    ports: o.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: o.endpoints.map((e) => ({
      addresses: [e.address],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
    })),
  };
}

/** A multi-document manifest; raw strings are inserted as documents as they are. */
export function manifest(docs: (object | string)[]): string {
  return docs.map((d) => (typeof d === 'string' ? d : stringify(d))).join('---\n');
}
