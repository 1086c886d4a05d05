// kube-proxy's own CategorizeEndpoints cases (kubernetes/kubernetes pkg/proxy/topology_test.go),
// adapted as a table, plus the PreferSameNode cases of topology.go 1.33+. As there, an endpoint's
// unset conditions are false (these are kube-proxy's parsed endpoints, not EndpointSlice YAML).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { categorizeEndpoints, type TopologyEndpoint, type TrafficPolicy, topologyModeFromHints } from '../../../src/model/topology.ts';

interface Ep extends TopologyEndpoint {
  id: string;
}

function ep(id: string, o: Partial<Omit<Ep, 'id'>> = {}): Ep {
  return { id, ready: false, serving: false, terminating: false, local: false, zoneHints: [], nodeHints: [], ...o };
}

interface Case {
  name: string;
  zone?: string;
  node?: string;
  policy?: Partial<TrafficPolicy>;
  endpoints: Ep[];
  /** null: the port never uses this kind of endpoints (kube-proxy's nil). */
  cluster: string[] | null;
  local: string[] | null;
  /** Only when both sets are used; otherwise all equals the one that is. */
  all?: string[];
  /** hasAny although nothing is reachable from this node. */
  onlyRemote?: boolean;
}

const A = { zoneHints: ['zone-a'], ready: true };
const B = { zoneHints: ['zone-b'], ready: true };
const C = { zoneHints: ['zone-c'], ready: true };

const cases: Case[] = [
  {
    name: 'should use topology since all endpoints have hints, node has a zone label and there are endpoints for its zone',
    zone: 'zone-a',
    endpoints: [ep('10.1.2.3:80', A), ep('10.1.2.4:80', B), ep('10.1.2.5:80', C), ep('10.1.2.6:80', A)],
    cluster: ['10.1.2.3:80', '10.1.2.6:80'],
    local: null,
  },
  {
    name: 'externalTrafficPolicy: Local, topology ignored for Local endpoints',
    zone: 'zone-a',
    policy: { externalLocal: true, externallyAccessible: true },
    endpoints: [
      ep('10.1.2.3:80', { ...A, local: true }),
      ep('10.1.2.4:80', { ...B, local: true }),
      ep('10.1.2.5:80', C),
      ep('10.1.2.6:80', A),
    ],
    cluster: ['10.1.2.3:80', '10.1.2.6:80'],
    local: ['10.1.2.3:80', '10.1.2.4:80'],
    all: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, topology ignored for Local endpoints',
    zone: 'zone-a',
    policy: { internalLocal: true, externallyAccessible: true },
    endpoints: [
      ep('10.1.2.3:80', { ...A, local: true }),
      ep('10.1.2.4:80', { ...B, local: true }),
      ep('10.1.2.5:80', C),
      ep('10.1.2.6:80', A),
    ],
    cluster: ['10.1.2.3:80', '10.1.2.6:80'],
    local: ['10.1.2.3:80', '10.1.2.4:80'],
    all: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
  },
  { name: 'empty node labels', endpoints: [ep('10.1.2.3:80', A)], cluster: ['10.1.2.3:80'], local: null },
  { name: 'empty zone label', zone: '', endpoints: [ep('10.1.2.3:80', A)], cluster: ['10.1.2.3:80'], local: null },
  {
    name: 'node in different zone, no endpoint filtering',
    zone: 'zone-b',
    endpoints: [ep('10.1.2.3:80', A)],
    cluster: ['10.1.2.3:80'],
    local: null,
  },
  {
    name: 'unready endpoint',
    zone: 'zone-a',
    endpoints: [ep('10.1.2.3:80', A), ep('10.1.2.4:80', B), ep('10.1.2.5:80', C), ep('10.1.2.6:80', { ...A, ready: false })],
    cluster: ['10.1.2.3:80'],
    local: null,
  },
  {
    name: 'only unready endpoints in same zone (should not filter)',
    zone: 'zone-a',
    endpoints: [
      ep('10.1.2.3:80', { ...A, ready: false }),
      ep('10.1.2.4:80', B),
      ep('10.1.2.5:80', C),
      ep('10.1.2.6:80', { ...A, ready: false }),
    ],
    cluster: ['10.1.2.4:80', '10.1.2.5:80'],
    local: null,
  },
  {
    name: 'missing hints, no filtering applied',
    zone: 'zone-a',
    endpoints: [ep('10.1.2.3:80', A), ep('10.1.2.4:80', B), ep('10.1.2.5:80', { ready: true }), ep('10.1.2.6:80', A)],
    cluster: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.5:80', '10.1.2.6:80'],
    local: null,
  },
  {
    name: 'multiple hints per endpoint, filtering includes any endpoint with zone included',
    zone: 'zone-c',
    endpoints: [
      ep('10.1.2.3:80', { ready: true, zoneHints: ['zone-a', 'zone-b', 'zone-c'] }),
      ep('10.1.2.4:80', { ready: true, zoneHints: ['zone-b', 'zone-c'] }),
      ep('10.1.2.5:80', { ready: true, zoneHints: ['zone-b', 'zone-d'] }),
      ep('10.1.2.6:80', { ready: true, zoneHints: ['zone-c'] }),
    ],
    cluster: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
    local: null,
  },
  {
    name: 'conflicting topology and localness require merging allEndpoints',
    zone: 'zone-a',
    policy: { externalLocal: true, externallyAccessible: true },
    endpoints: [
      ep('10.0.0.0:80', { ...A, local: true }),
      ep('10.0.0.1:80', { ...B, local: true }),
      ep('10.0.0.2:80', A),
      ep('10.0.0.3:80', B),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.2:80'],
    local: ['10.0.0.0:80', '10.0.0.1:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80', '10.0.0.2:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, with empty endpoints',
    policy: { internalLocal: true },
    endpoints: [],
    cluster: null,
    local: [],
  },
  {
    name: 'internalTrafficPolicy: Local, but all endpoints are remote',
    policy: { internalLocal: true },
    endpoints: [ep('10.0.0.0:80', { ready: true }), ep('10.0.0.1:80', { ready: true })],
    cluster: null,
    local: [],
    onlyRemote: true,
  },
  {
    name: 'internalTrafficPolicy: Local, all endpoints are local',
    policy: { internalLocal: true },
    endpoints: [ep('10.0.0.0:80', { ready: true, local: true }), ep('10.0.0.1:80', { ready: true, local: true })],
    cluster: null,
    local: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, some endpoints are local',
    policy: { internalLocal: true },
    endpoints: [ep('10.0.0.0:80', { ready: true, local: true }), ep('10.0.0.1:80', { ready: true })],
    cluster: null,
    local: ['10.0.0.0:80'],
  },
  {
    name: 'Cluster traffic policy, endpoints not Ready',
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80')],
    cluster: [],
    local: null,
  },
  {
    name: 'Cluster traffic policy, some endpoints are Ready',
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80', { ready: true })],
    cluster: ['10.0.0.1:80'],
    local: null,
  },
  {
    name: 'Cluster traffic policy, all endpoints are terminating',
    endpoints: [
      ep('10.0.0.0:80', { serving: true, terminating: true, local: true }),
      ep('10.0.0.1:80', { serving: true, terminating: true }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: null,
  },
  {
    name: 'iTP: Local, eTP: Cluster, some endpoints local',
    policy: { internalLocal: true, externallyAccessible: true },
    endpoints: [ep('10.0.0.0:80', { ready: true, local: true }), ep('10.0.0.1:80', { ready: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: ['10.0.0.0:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Cluster, eTP: Local, some endpoints local',
    policy: { externalLocal: true, externallyAccessible: true },
    endpoints: [ep('10.0.0.0:80', { ready: true, local: true }), ep('10.0.0.1:80', { ready: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: ['10.0.0.0:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, some endpoints local',
    policy: { internalLocal: true, externalLocal: true, externallyAccessible: true },
    endpoints: [ep('10.0.0.0:80', { ready: true, local: true }), ep('10.0.0.1:80', { ready: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: ['10.0.0.0:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, all endpoints remote',
    policy: { internalLocal: true, externalLocal: true, externallyAccessible: true },
    endpoints: [ep('10.0.0.0:80', { ready: true }), ep('10.0.0.1:80', { ready: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: [],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, all endpoints remote and terminating',
    policy: { internalLocal: true, externalLocal: true, externallyAccessible: true },
    endpoints: [ep('10.0.0.0:80', { serving: true, terminating: true }), ep('10.0.0.1:80', { serving: true, terminating: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: [],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
    onlyRemote: true,
  },
  {
    name: 'iTP: Cluster, eTP: Local, with terminating endpoints',
    policy: { externalLocal: true, externallyAccessible: true },
    endpoints: [
      ep('10.0.0.0:80', { ready: true }),
      ep('10.0.0.1:80', { local: true }),
      ep('10.0.0.2:80', { serving: true, terminating: true, local: true }),
      ep('10.0.0.3:80', { serving: true, terminating: true }),
    ],
    cluster: ['10.0.0.0:80'],
    local: ['10.0.0.2:80'],
    all: ['10.0.0.0:80', '10.0.0.2:80'],
  },
  {
    name: 'externalTrafficPolicy ignored if not externally accessible',
    policy: { externalLocal: true },
    endpoints: [ep('10.0.0.0:80', { ready: true }), ep('10.0.0.1:80', { ready: true, local: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: null,
  },
  {
    name: 'no cluster endpoints for iTP:Local internal-only service',
    policy: { internalLocal: true },
    endpoints: [ep('10.0.0.0:80', { ready: true }), ep('10.0.0.1:80', { ready: true, local: true })],
    cluster: null,
    local: ['10.0.0.1:80'],
  },
  // PreferSameNode (topology.go 1.33+, PreferSameTrafficDistribution enabled).
  {
    name: 'PreferSameNode: every ready endpoint has a node hint and one is for this node',
    zone: 'zone-a',
    endpoints: [
      ep('10.0.0.0:80', { ready: true, zoneHints: ['zone-a'], nodeHints: ['node-a'] }),
      ep('10.0.0.1:80', { ready: true, zoneHints: ['zone-a'], nodeHints: ['node-x'] }),
      ep('10.0.0.2:80', { ready: true, zoneHints: ['zone-b'], nodeHints: ['node-b'] }),
    ],
    cluster: ['10.0.0.0:80'],
    local: null,
  },
  {
    name: 'PreferSameNode: no node hint for this node falls back to zone hints',
    zone: 'zone-a',
    endpoints: [
      ep('10.0.0.1:80', { ready: true, zoneHints: ['zone-a'], nodeHints: ['node-x'] }),
      ep('10.0.0.2:80', { ready: true, zoneHints: ['zone-b'], nodeHints: ['node-b'] }),
    ],
    cluster: ['10.0.0.1:80'],
    local: null,
  },
  {
    name: 'PreferSameNode: a ready endpoint without a node hint disables same-node, zone hints still apply',
    zone: 'zone-a',
    endpoints: [
      ep('10.0.0.0:80', { ready: true, zoneHints: ['zone-a'], nodeHints: ['node-a'] }),
      ep('10.0.0.1:80', { ready: true, zoneHints: ['zone-a'] }),
      ep('10.0.0.2:80', { ready: true, zoneHints: ['zone-b'], nodeHints: ['node-b'] }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: null,
  },
  {
    name: 'PreferSameNode: an unready endpoint without hints does not count',
    endpoints: [
      ep('10.0.0.0:80', { ready: true, nodeHints: ['node-a'] }),
      ep('10.0.0.1:80', { ready: true, nodeHints: ['node-b'] }),
      ep('10.0.0.2:80'),
    ],
    cluster: ['10.0.0.0:80'],
    local: null,
  },
  {
    name: 'PreferSameNode: neither node nor zone matches, no filtering',
    zone: 'zone-c',
    endpoints: [
      ep('10.0.0.0:80', { ready: true, zoneHints: ['zone-a'], nodeHints: ['node-x'] }),
      ep('10.0.0.1:80', { ready: true, zoneHints: ['zone-b'], nodeHints: ['node-b'] }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: null,
  },
  {
    name: 'topology is not applied to the terminating fallback',
    zone: 'zone-a',
    endpoints: [
      ep('10.0.0.0:80', { serving: true, terminating: true, zoneHints: ['zone-b'], nodeHints: ['node-b'] }),
      ep('10.0.0.1:80', { serving: true, terminating: true, zoneHints: ['zone-a'], nodeHints: ['node-a'] }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: null,
  },
  {
    name: 'PreferSameNode with eTP Local: the local set ignores node hints',
    policy: { externalLocal: true, externallyAccessible: true },
    endpoints: [
      ep('10.0.0.0:80', { ready: true, local: true, nodeHints: ['node-a'] }),
      ep('10.0.0.1:80', { ready: true, local: true, nodeHints: ['node-b'] }),
      ep('10.0.0.2:80', { ready: true, nodeHints: ['node-b'] }),
    ],
    cluster: ['10.0.0.0:80'],
    local: ['10.0.0.0:80', '10.0.0.1:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
];

const ids = (eps: readonly Ep[] | undefined): string[] | null => (eps ? eps.map((e) => e.id).sort() : null);

for (const c of cases) {
  test(`CategorizeEndpoints: ${c.name}`, () => {
    const policy = { internalLocal: false, externalLocal: false, externallyAccessible: false, ...c.policy };
    const got = categorizeEndpoints(c.endpoints, policy, c.node ?? 'node-a', c.zone ?? '');
    assert.equal(ids(got.cluster), c.cluster === null ? null : [...c.cluster].sort(), 'cluster endpoints');
    assert.equal(ids(got.local), c.local === null ? null : [...c.local].sort(), 'local endpoints');
    const wantAll = c.cluster !== null && c.local === null ? c.cluster : c.local !== null && c.cluster === null ? c.local : (c.all ?? []);
    assert.equal(ids(got.all), [...wantAll].sort(), 'all reachable endpoints');
    assert.is(got.hasAny, wantAll.length > 0 || c.onlyRemote === true, 'hasAnyEndpoints');
  });
}

test('topologyModeFromHints: no ready endpoints means no topology', () => {
  assert.is(topologyModeFromHints([ep('x', { zoneHints: ['zone-a'], nodeHints: ['node-a'] })], 'node-a', 'zone-a'), '');
});

test.run();
