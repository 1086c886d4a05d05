// The Service fields beyond ClusterIP that kube-proxy honours: NodePort, LoadBalancer, externalIPs,
// traffic policies, topology, endpoint conditions, session affinity and health checks.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../../../src/errors.ts';
import { type DesiredOptions, desired } from '../../../src/model/desired.ts';
import { formatFrontend } from '../../../src/model/format.ts';
import type { DesiredTable, NodeInfo } from '../../../src/model/types.ts';

type Spec = Record<string, unknown>;

/** A Service as the API server returns it; `spec` fields override a plain ClusterIP service's. */
function svc(name: string, spec: Spec = {}, status: Spec = {}, meta: Spec = {}): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', ...meta },
    spec: {
      type: 'ClusterIP',
      clusterIP: '10.96.0.10',
      clusterIPs: ['10.96.0.10'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
      ...spec,
    },
    status,
  } as unknown as V1Service;
}

const http = (nodePort?: number): Spec => ({ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort });

interface Ep {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  nodeName?: string;
  hints?: { forZones?: { name: string }[]; forNodes?: { name: string }[] };
}

function ep(address: string, nodeName?: string, conditions?: Ep['conditions'], hints?: Ep['hints']): Ep {
  return { addresses: [address], nodeName, conditions, hints };
}

const READY = { ready: true, serving: true, terminating: false };
const TERMINATING = { ready: false, serving: true, terminating: true };
const NOT_READY = { ready: false, serving: false, terminating: false };

function slice(name: string, service: string, endpoints: Ep[], o: { type?: string; ports?: unknown[] } = {}): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: o.type ?? 'IPv4',
    ports: o.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
  } as unknown as V1EndpointSlice;
}

const NODE: NodeInfo = { name: 'node-a', zone: 'zone-a', addresses: ['192.168.0.2', '172.18.0.2', 'fd00:192::2'] };

function run(services: V1Service[], slices: V1EndpointSlice[] = [], node: NodeInfo = NODE, options?: DesiredOptions) {
  return desired(services, slices, node, options);
}

const lines = (t: DesiredTable): string[] => t.frontends.map(formatFrontend);
const problemsOf = (t: DesiredTable): string[] => t.problems.map((p) => `${p.code} ${p.kind} ${p.namespace}/${p.name} ${p.field}`);

/** One local and one remote ready endpoint: the usual shape to tell the policies apart. */
const mixed = (service: string): V1EndpointSlice =>
  slice(`${service}-1`, service, [ep('10.244.0.5', 'node-a', READY), ep('10.244.1.5', 'node-b', READY)]);

// --- NodePort ---

test('NodePort: one frontend per node address of the service family and port, on the nodePort', () => {
  const t = run([svc('web', { type: 'NodePort', ports: [http(30080)] })], [mixed('web')]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'NodePort TCP/172.18.0.2:30080 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'NodePort TCP/192.168.0.2:30080 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
  const np = t.frontends.find((f) => f.kind === 'NodePort');
  assert.equal(np?.frontend, { family: 4, address: '172.18.0.2', port: 30080, protocol: 'TCP' });
  assert.equal(np?.externalBackends, np?.backends);
  assert.is(t.frontends[0]?.kind, 'ClusterIP');
  assert.is(t.frontends[0]?.externalBackends, undefined);
});

test("NodePort on a dual-stack service: node addresses of each family with that family's backends", () => {
  const s = svc('web', { type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00::10'], ipFamilies: ['IPv4', 'IPv6'], ports: [http(30080)] });
  const t = run([s], [mixed('web'), slice('web-6', 'web', [ep('fd00:244::5', 'node-b')], { type: 'IPv6' })], {
    name: 'node-a',
    addresses: ['192.168.0.2', 'FD00:192::2'],
  });
  assert.equal(
    lines(t).filter((l) => l.startsWith('NodePort')),
    [
      'NodePort TCP/192.168.0.2:30080 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
      'NodePort TCP/[fd00:192::2]:30080 default/web:http -> [fd00:244::5]:8080',
    ],
  );
});

test('a node without addresses (callers passing only a name) gets no NodePort frontends', () => {
  const t = run([svc('web', { type: 'NodePort', ports: [http(30080)] })], [mixed('web')], { name: 'node-a' });
  assert.equal(
    t.frontends.map((f) => f.kind),
    ['ClusterIP'],
  );
});

test('a node address that does not parse is skipped with a problem on the Node; the others still serve', () => {
  const t = run([svc('web', { type: 'NodePort', ports: [http(30080)] })], [], {
    name: 'node-a',
    addresses: ['node-a.example', '192.168.0.2', '192.168.0.2'],
  });
  assert.equal(
    t.frontends.map((f) => `${f.kind} ${f.frontend.address}`),
    ['ClusterIP 10.96.0.10', 'NodePort 192.168.0.2'],
  );
  assert.equal(problemsOf(t), [`${ErrorCodes.INVALID_IP} Node /node-a addresses[0]`]);
});

test('a nodePort out of range rejects the service, naming the field', () => {
  const t = run([
    svc('bad', { type: 'NodePort', ports: [http(70000)] }),
    svc('ok', { clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'] }),
  ]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/ok:http -> (no backends)']);
  assert.equal(problemsOf(t), [`${ErrorCodes.PORT_RANGE} Service default/bad spec.ports[0].nodePort`]);
});

test('two services on one nodePort: the older keeps it, the other gets a conflict naming its nodePort', () => {
  const a = svc('a', { type: 'NodePort', ports: [http(30080)] }, {}, { creationTimestamp: '2024-01-01T00:00:00Z' });
  const b = svc(
    'b',
    { type: 'NodePort', clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'], ports: [http(30080)] },
    {},
    { creationTimestamp: '2024-02-01T00:00:00Z' },
  );
  const t = run([b, a], [], { name: 'node-a', addresses: ['192.168.0.2'] });
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/a:http -> (no backends)',
    'ClusterIP TCP/10.96.0.11:80 default/b:http -> (no backends)',
    'NodePort TCP/192.168.0.2:30080 default/a:http -> (no backends)',
  ]);
  assert.equal(problemsOf(t), [`${ErrorCodes.FRONTEND_CONFLICT} Service default/b spec.ports[0].nodePort`]);
});

// --- LoadBalancer and externalIPs ---

test('LoadBalancer: ingress IPs become frontends on the service port; Proxy mode and hostname-only entries are skipped', () => {
  const ingress = [
    { ip: '203.0.113.10' },
    { ip: '203.0.113.11', ipMode: 'Proxy' },
    { hostname: 'lb.example.com' },
    { ip: '203.0.113.12', ipMode: 'VIP' },
  ];
  const t = run([svc('lb', { type: 'LoadBalancer', ports: [http(31080)] }, { loadBalancer: { ingress } })], [mixed('lb')], {
    name: 'node-a',
    addresses: ['192.168.0.2'],
  });
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'NodePort TCP/192.168.0.2:31080 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'LoadBalancer TCP/203.0.113.10:80 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'LoadBalancer TCP/203.0.113.12:80 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
  assert.equal(t.problems, []);
});

test('LoadBalancer with allocateLoadBalancerNodePorts false (no nodePort) has no NodePort frontends', () => {
  const s = svc(
    'lb',
    { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false },
    { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
  );
  const t = run([s]);
  assert.equal(
    t.frontends.map((f) => f.kind),
    ['ClusterIP', 'LoadBalancer'],
  );
});

test('a bad ingress IP is dropped with a problem naming it; the rest of the service is programmed', () => {
  const s = svc('lb', { type: 'LoadBalancer' }, { loadBalancer: { ingress: [{ ip: '203.0.113.300' }, { ip: '203.0.113.10' }] } });
  const t = run([s]);
  assert.equal(
    t.frontends.map((f) => `${f.kind} ${f.frontend.address}`),
    ['ClusterIP 10.96.0.10', 'LoadBalancer 203.0.113.10'],
  );
  assert.equal(problemsOf(t), [`${ErrorCodes.INVALID_IP} Service default/lb status.loadBalancer.ingress[0].ip`]);
});

test('externalIPs become frontends on the service port; a bad one is dropped with a problem naming it', () => {
  const t = run([svc('web', { externalIPs: ['198.51.100.7', '198.51.100.300', '2001:DB8::7'] })], [mixed('web')]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'ExternalIP TCP/198.51.100.7:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
  // The IPv6 one is ignored without a problem: kube-proxy's IPv6 proxier skips a service without an
  // IPv6 cluster IP, and a family mismatch is expected in dual-stack clusters.
  assert.equal(problemsOf(t), [`${ErrorCodes.INVALID_IP} Service default/web spec.externalIPs[1]`]);
});

test('an address the service names twice (external IP also in its ingress) is one frontend, no conflict', () => {
  const s = svc('lb', { type: 'LoadBalancer', externalIPs: ['203.0.113.10'] }, { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } });
  const t = run([s]);
  assert.equal(
    t.frontends.map((f) => `${f.kind} ${f.frontend.address}`),
    ['ClusterIP 10.96.0.10', 'ExternalIP 203.0.113.10'],
  );
  assert.equal(t.problems, []);
});

test('loadBalancerSourceRanges reach the LoadBalancer frontends only; an entry that is no CIDR is dropped by name', () => {
  const s = svc(
    'lb',
    {
      type: 'LoadBalancer',
      loadBalancerSourceRanges: [' 198.51.100.0/24', '2001:db8::/32', 'ten/8', '198.51.100.0/24'],
      ports: [http(31080)],
    },
    { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
  );
  const t = run([s], [], { name: 'node-a', addresses: ['192.168.0.2'] });
  const byKind = Object.fromEntries(t.frontends.map((f) => [f.kind, f]));
  assert.equal(byKind.LoadBalancer?.sourceRanges, ['198.51.100.0/24', '2001:db8::/32']);
  assert.is(byKind.NodePort?.sourceRanges, undefined);
  assert.is(byKind.ClusterIP?.sourceRanges, undefined);
  assert.equal(problemsOf(t), [`${ErrorCodes.INVALID_FIELD} Service default/lb spec.loadBalancerSourceRanges[2]`]);
});

test('externalTrafficPolicy Local marks the frontends reachable from outside, not the cluster IP', () => {
  const s = svc('np', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [http(30080)] });
  const t = run([s], [], { name: 'node-a', addresses: ['192.168.0.2'] });
  assert.equal(
    t.frontends.map((f) => `${f.kind} ${f.externalLocal ?? false}`),
    ['ClusterIP false', 'NodePort true'],
  );
});

// --- Traffic policies ---

test("externalTrafficPolicy Local: outside traffic gets this node's endpoints, clients on the node the cluster-wide set", () => {
  const s = svc(
    'lb',
    { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, ports: [http(31080)] },
    { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
  );
  const t = run([s], [mixed('lb')], { name: 'node-a', addresses: ['192.168.0.2'] });
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080',
    'NodePort TCP/192.168.0.2:31080 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080 | from outside -> 10.244.0.5:8080',
    'LoadBalancer TCP/203.0.113.10:80 default/lb:http -> 10.244.0.5:8080 10.244.1.5:8080 | from outside -> 10.244.0.5:8080',
  ]);
  assert.equal(t.frontends[1]?.externalBackends, [{ family: 4, address: '10.244.0.5', port: 8080, protocol: 'TCP', local: true }]);
});

test('externalTrafficPolicy Local on a node without endpoints: nothing from outside, clients on the node still served', () => {
  const s = svc('np', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [http(30080)] });
  const t = run([s], [slice('np-1', 'np', [ep('10.244.1.5', 'node-b')])], { name: 'node-a', addresses: ['192.168.0.2'] });
  const np = t.frontends.find((f) => f.kind === 'NodePort');
  assert.equal(
    np?.backends.map((b) => b.address),
    ['10.244.1.5'],
  );
  assert.equal(np?.externalBackends, []);
});

test('externalTrafficPolicy Local applies to a ClusterIP service with externalIPs', () => {
  const t = run([svc('web', { externalIPs: ['198.51.100.7'], externalTrafficPolicy: 'Local' })], [mixed('web')]);
  assert.equal(
    t.frontends[1]?.externalBackends?.map((b) => b.address),
    ['10.244.0.5'],
  );
});

test('the local terminating fallback is decided apart from the cluster-wide one', () => {
  // This node's only endpoint is terminating while node-b has a ready one: outside traffic drains to
  // the terminating local endpoint; clients on the node go to the ready remote one.
  const s = svc('np', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [http(30080)] });
  const t = run([s], [slice('np-1', 'np', [ep('10.244.0.5', 'node-a', TERMINATING), ep('10.244.1.5', 'node-b', READY)])], {
    name: 'node-a',
    addresses: ['192.168.0.2'],
  });
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/np:http -> 10.244.1.5:8080',
    'NodePort TCP/192.168.0.2:30080 default/np:http -> 10.244.1.5:8080 | from outside -> 10.244.0.5:8080',
  ]);
});

test('internalTrafficPolicy Local narrows only the cluster IP; NodePort traffic from the node is cluster-wide', () => {
  const s = svc('np', { type: 'NodePort', internalTrafficPolicy: 'Local', ports: [http(30080)] });
  const t = run([s], [mixed('np')], { name: 'node-a', addresses: ['192.168.0.2'] });
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/np:http -> 10.244.0.5:8080',
    'NodePort TCP/192.168.0.2:30080 default/np:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
});

test("internalTrafficPolicy Local falls back to this node's terminating endpoints, not to remote ready ones", () => {
  const t = run(
    [svc('web', { internalTrafficPolicy: 'Local' })],
    [slice('web-1', 'web', [ep('10.244.0.5', 'node-a', TERMINATING), ep('10.244.1.5', 'node-b', READY)])],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080']);
});

// --- Endpoint conditions ---

test('conditions: a missing ready counts as ready; a missing serving as serving; not-ready non-terminating never used', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-1', 'web', [
        ep('10.244.0.1', 'node-a'),
        ep('10.244.0.2', 'node-a', NOT_READY),
        ep('10.244.0.3', 'node-b', { ready: false, terminating: true }),
      ]),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.1:8080']);
  const draining = run(
    [svc('web')],
    [slice('web-1', 'web', [ep('10.244.0.2', 'node-a', NOT_READY), ep('10.244.0.3', 'node-b', { ready: false, terminating: true })])],
  );
  assert.equal(lines(draining), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.3:8080']);
});

test('publishNotReadyAddresses: every endpoint counts as ready, terminating ones too', () => {
  const eps = [ep('10.244.0.1', 'node-a', NOT_READY), ep('10.244.0.2', 'node-b', TERMINATING), ep('10.244.0.3', 'node-b', READY)];
  const t = run([svc('web', { publishNotReadyAddresses: true })], [slice('web-1', 'web', eps)]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.1:8080 10.244.0.2:8080 10.244.0.3:8080']);
  assert.equal(lines(run([svc('web')], [slice('web-1', 'web', eps)])), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.3:8080']);
});

test('an address in two slices: a non-terminating copy wins over a terminating one (an IP reused by a new pod)', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-a', 'web', [ep('10.244.0.1', 'node-b', TERMINATING), ep('10.244.0.2', 'node-b', READY)]),
      slice('web-b', 'web', [ep('10.244.0.1', 'node-a', READY)]),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.1:8080 10.244.0.2:8080']);
});

// --- Topology ---

const zoned = (service: string): V1EndpointSlice =>
  slice(`${service}-1`, service, [
    ep('10.244.0.5', 'node-a', READY, { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-a' }] }),
    ep('10.244.2.5', 'node-c', READY, { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-c' }] }),
    ep('10.244.1.5', 'node-b', READY, { forZones: [{ name: 'zone-b' }], forNodes: [{ name: 'node-b' }] }),
  ]);
const zoneOnly = (service: string): V1EndpointSlice =>
  slice(`${service}-1`, service, [
    ep('10.244.0.5', 'node-a', READY, { forZones: [{ name: 'zone-a' }] }),
    ep('10.244.2.5', 'node-c', READY, { forZones: [{ name: 'zone-a' }] }),
    ep('10.244.1.5', 'node-b', READY, { forZones: [{ name: 'zone-b' }] }),
  ]);

test("zone hints on every ready endpoint and one for this zone: only this zone's endpoints", () => {
  const t = run([svc('web', { trafficDistribution: 'PreferClose' })], [zoneOnly('web')]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.2.5:8080']);
});

test("node hints for this node (PreferSameNode): only this node's endpoint", () => {
  const t = run([svc('web', { trafficDistribution: 'PreferSameNode' })], [zoned('web')]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080']);
});

test('a node without a zone label ignores zone hints', () => {
  const t = run([svc('web')], [zoneOnly('web')], { name: 'node-a' });
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080 10.244.2.5:8080']);
});

test('a ready endpoint without a hint disables topology; trafficDistribution alone filters nothing', () => {
  const partial = slice('web-1', 'web', [
    ep('10.244.0.5', 'node-a', READY, { forZones: [{ name: 'zone-a' }] }),
    ep('10.244.1.5', 'node-b', READY),
  ]);
  assert.equal(lines(run([svc('web', { trafficDistribution: 'PreferSameZone' })], [partial])), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
  assert.equal(lines(run([svc('web', { trafficDistribution: 'PreferSameZone' })], [mixed('web')])), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
});

test('internalTrafficPolicy Local wins over topology', () => {
  const t = run(
    [svc('web', { internalTrafficPolicy: 'Local' })],
    [
      slice('web-1', 'web', [
        ep('10.244.0.5', 'node-a', READY, { forZones: [{ name: 'zone-b' }] }),
        ep('10.244.1.5', 'node-b', READY, { forZones: [{ name: 'zone-a' }] }),
      ]),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080']);
});

test('topology narrows external frontends too under externalTrafficPolicy Cluster, not the Local set', () => {
  const cluster = run([svc('np', { type: 'NodePort', ports: [http(30080)] })], [zoneOnly('np')], {
    name: 'node-a',
    zone: 'zone-a',
    addresses: ['192.168.0.2'],
  });
  assert.equal(lines(cluster)[1], 'NodePort TCP/192.168.0.2:30080 default/np:http -> 10.244.0.5:8080 10.244.2.5:8080');
  const local = run([svc('np', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [http(30080)] })], [zoneOnly('np')], {
    name: 'node-a',
    zone: 'zone-b',
    addresses: ['192.168.0.2'],
  });
  assert.equal(lines(local)[1], 'NodePort TCP/192.168.0.2:30080 default/np:http -> 10.244.1.5:8080 | from outside -> 10.244.0.5:8080');
});

// --- Session affinity ---

test('sessionAffinity ClientIP: timeoutSeconds from sessionAffinityConfig, 10800 when absent, on every frontend', () => {
  const explicit = svc('a', {
    type: 'NodePort',
    sessionAffinity: 'ClientIP',
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
    ports: [http(30080)],
  });
  const t = run([explicit], [], { name: 'node-a', addresses: ['192.168.0.2'] });
  assert.equal(
    t.frontends.map((f) => f.affinityTimeoutSeconds),
    [60, 60],
  );
  const defaulted = run([svc('b', { sessionAffinity: 'ClientIP' })]);
  assert.is(defaulted.frontends[0]?.affinityTimeoutSeconds, 10800);
  const none = run([svc('c', { sessionAffinity: 'None', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } })]);
  assert.not.ok('affinityTimeoutSeconds' in (none.frontends[0] ?? {}));
});

test('a timeout outside 1-86400 or an unknown sessionAffinity rejects the service, naming the field', () => {
  const t = run([
    svc('zero', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
    svc('big', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } }),
    svc('odd', { sessionAffinity: 'Cookie' }),
    svc('max', {
      clusterIP: '10.96.0.11',
      clusterIPs: ['10.96.0.11'],
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 86400 } },
    }),
  ]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/max:http affinity=86400s -> (no backends)']);
  assert.equal(problemsOf(t), [
    `${ErrorCodes.INVALID_FIELD} Service default/big spec.sessionAffinityConfig.clientIP.timeoutSeconds`,
    `${ErrorCodes.INVALID_FIELD} Service default/odd spec.sessionAffinity`,
    `${ErrorCodes.INVALID_FIELD} Service default/zero spec.sessionAffinityConfig.clientIP.timeoutSeconds`,
  ]);
});

// --- Health checks ---

test('LoadBalancer + externalTrafficPolicy Local: a health check counting local ready endpoints by address', () => {
  const s = svc('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 });
  const slices = [
    slice(
      'lb-1',
      'lb',
      [
        ep('10.244.0.5', 'node-a', READY),
        ep('10.244.0.6', 'node-a', TERMINATING),
        ep('10.244.0.7', 'node-a', NOT_READY),
        ep('10.244.1.5', 'node-b', READY),
      ],
      {
        ports: [
          { name: 'http', port: 8080, protocol: 'TCP' },
          { name: 'admin', port: 9000, protocol: 'TCP' },
        ],
      },
    ),
  ];
  const t = run([s], slices);
  assert.equal(t.healthChecks, [{ service: { namespace: 'default', name: 'lb' }, port: 32000, localEndpoints: 1 }]);
  const draining = run([s], [slice('lb-1', 'lb', [ep('10.244.0.6', 'node-a', TERMINATING)])]);
  assert.equal(draining.healthChecks, [{ service: { namespace: 'default', name: 'lb' }, port: 32000, localEndpoints: 0 }]);
});

test('no health check for Cluster policy or for NodePort services; a missing port is a problem', () => {
  const cluster = svc('a', { type: 'LoadBalancer', externalTrafficPolicy: 'Cluster', healthCheckNodePort: 32000 });
  const nodePort = svc('b', { type: 'NodePort', externalTrafficPolicy: 'Local', clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'] });
  const missing = svc('c', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', clusterIP: '10.96.0.12', clusterIPs: ['10.96.0.12'] });
  const t = run([cluster, nodePort, missing]);
  assert.equal(t.healthChecks, []);
  assert.equal(problemsOf(t), [`${ErrorCodes.MISSING_FIELD} Service default/c spec.healthCheckNodePort`]);
  assert.is(t.frontends.length, 3);
});

// --- Type changes are recomputation ---

test('service type changes: ClusterIP -> NodePort -> LoadBalancer -> ClusterIP', () => {
  const node = { name: 'node-a', addresses: ['192.168.0.2'] };
  const base = { ports: [http()] };
  const steps: [Spec, Spec, string[]][] = [
    [{ ...base }, {}, ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080']],
    [
      { type: 'NodePort', ports: [http(30080)] },
      {},
      [
        'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
        'NodePort TCP/192.168.0.2:30080 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
      ],
    ],
    [
      { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, ports: [http(30080)] },
      { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
      [
        'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
        'NodePort TCP/192.168.0.2:30080 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080 | from outside -> 10.244.0.5:8080',
        'LoadBalancer TCP/203.0.113.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080 | from outside -> 10.244.0.5:8080',
      ],
    ],
    // The API server drops nodePorts, healthCheckNodePort and the ingress status when going back.
    [{ ...base }, {}, ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080']],
  ];
  for (const [spec, status, want] of steps) {
    const t = run([svc('web', spec, status)], [mixed('web')], node);
    assert.equal(lines(t), want);
    assert.is(t.healthChecks?.length, spec.healthCheckNodePort ? 1 : 0);
  }
});

test('service type changes: ExternalName -> ClusterIP -> ExternalName', () => {
  const external = svc('web', {
    type: 'ExternalName',
    externalName: 'web.example.com',
    clusterIP: undefined,
    clusterIPs: undefined,
    ports: undefined,
  });
  assert.equal(run([external], [mixed('web')]), { frontends: [], problems: [], healthChecks: [] });
  assert.equal(lines(run([svc('web')], [mixed('web')])), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.5:8080 10.244.1.5:8080',
  ]);
  assert.equal(run([external], [mixed('web')]).frontends, []);
});

test('an unknown service type rejects the service', () => {
  assert.equal(problemsOf(run([svc('web', { type: 'Headless' })])), [`${ErrorCodes.INVALID_FIELD} Service default/web spec.type`]);
});

// --- Table properties ---

test('maxBackendsPerService limits the outside backends too', () => {
  const s = svc('np', { type: 'NodePort', ports: [http(30080)] });
  const t = run(
    [s],
    [slice('np-1', 'np', [ep('10.244.0.3'), ep('10.244.0.1'), ep('10.244.0.2')])],
    { name: 'node-a', addresses: ['192.168.0.2'] },
    { maxBackendsPerService: 2 },
  );
  assert.equal(
    t.frontends[1]?.externalBackends?.map((b) => b.address),
    ['10.244.0.1', '10.244.0.2'],
  );
});

test('a node being deleted changes nothing in the table', () => {
  const s = [svc('np', { type: 'NodePort', ports: [http(30080)] })];
  assert.equal(run(s, [mixed('np')], { ...NODE, deleting: true }), run(s, [mixed('np')], NODE));
});

test('with every kind present the table does not depend on input order', () => {
  const services = [
    svc(
      'lb',
      {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 32000,
        externalIPs: ['198.51.100.7'],
        ports: [http(31080)],
      },
      { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
    ),
    svc('np', { type: 'NodePort', clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'], ports: [http(30080)] }),
  ];
  const slices = [mixed('lb'), mixed('np'), slice('lb-2', 'lb', [ep('10.244.0.9', 'node-a')])];
  const a = run(services, slices);
  assert.equal(run([...services].reverse(), [...slices].reverse()), a);
  assert.is(a.frontends.length, 8); // lb: cluster IP, external IP, ingress IP, two node addresses; np: cluster IP, two node addresses
  assert.equal(a.healthChecks, [{ service: { namespace: 'default', name: 'lb' }, port: 32000, localEndpoints: 2 }]);
});

test.run();
