import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DesiredCache, desired } from '../../../src/model/desired.ts';
import type { NodeInfo } from '../../../src/model/types.ts';
import { rng } from '../../support/rng.ts';

const NODES = ['node-a', 'node-b', 'node-c'];

/** A service with a varied spec: types, policies, affinity, external IPs, sometimes broken or shared IPs. */
function randomService(r: () => number, i: number, version: number): V1Service {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const type = pick(['ClusterIP', 'ClusterIP', 'NodePort', 'LoadBalancer']);
  // Some services share a cluster IP, so conflicts (oldest wins) take part.
  const ip = r() < 0.1 ? `10.96.0.${i % 3}` : `10.96.${1 + (i >> 8)}.${i & 255}`;
  const dual = r() < 0.2;
  const port = r() < 0.05 ? 70000 : 80 + (i % 3);
  const spec: Record<string, unknown> = {
    type,
    clusterIP: ip,
    clusterIPs: dual ? [ip, `fd00::${i.toString(16)}`] : [ip],
    ipFamilies: dual ? ['IPv4', 'IPv6'] : ['IPv4'],
    ports: [
      { name: 'http', port, protocol: 'TCP', ...(type !== 'ClusterIP' ? { nodePort: 30000 + i } : {}) },
      ...(r() < 0.3 ? [{ name: 'dns', port: 53, protocol: 'UDP' }] : []),
    ],
    internalTrafficPolicy: r() < 0.2 ? 'Local' : 'Cluster',
    externalTrafficPolicy: r() < 0.3 ? 'Local' : 'Cluster',
    ...(r() < 0.2 ? { externalIPs: [`192.0.2.${i & 255}`, r() < 0.2 ? 'bogus' : '192.0.2.250'] } : {}),
    ...(r() < 0.2 ? { sessionAffinity: 'ClientIP' } : {}),
    ...(type === 'LoadBalancer' ? { healthCheckNodePort: 32000 + i } : {}),
    publishNotReadyAddresses: r() < 0.1,
  };
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: `svc-${i}`,
      namespace: i % 4 === 0 ? 'kube-system' : 'default',
      creationTimestamp: new Date(Date.UTC(2024, 0, 1, 0, 0, i % 7)) as never,
      resourceVersion: String(version),
      labels: r() < 0.05 ? { 'service.kubernetes.io/headless': '' } : {},
    },
    spec: spec as never,
    ...(type === 'LoadBalancer' ? { status: { loadBalancer: { ingress: [{ ip: `203.0.113.${i & 255}` }] } } } : {}),
  };
}

function randomSlice(r: () => number, i: number, part: number, family: 4 | 6): V1EndpointSlice {
  const endpoints = Array.from({ length: 1 + Math.floor(r() * 4) }, (_, k) => {
    const n = Math.floor(r() * 50);
    const address = family === 4 ? (r() < 0.03 ? '999.1.1.1' : `10.244.${i & 255}.${n}`) : `fd00:244::${n.toString(16)}`;
    const hinted = r() < 0.3;
    return {
      addresses: [address],
      conditions: { ready: r() < 0.8, serving: r() < 0.9, terminating: r() < 0.2 },
      nodeName: NODES[(n + k) % NODES.length],
      ...(hinted ? { hints: { forZones: [{ name: r() < 0.5 ? 'zone-a' : 'zone-b' }] } } : {}),
    };
  });
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `svc-${i}-${part}`,
      namespace: i % 4 === 0 ? 'kube-system' : 'default',
      labels: { 'kubernetes.io/service-name': `svc-${i}` },
    },
    addressType: family === 4 ? 'IPv4' : 'IPv6',
    ports: [
      { name: 'http', port: r() < 0.03 ? 0 : 8080, protocol: 'TCP' },
      { name: 'dns', port: 5353, protocol: 'UDP' },
    ],
    endpoints: endpoints as never,
  };
}

interface World {
  services: V1Service[];
  slices: V1EndpointSlice[];
  node: NodeInfo;
}

function randomWorld(r: () => number, n: number): World {
  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  for (let i = 0; i < n; i++) {
    services.push(randomService(r, i, 1));
    const parts = Math.floor(r() * 3);
    for (let p = 0; p < parts; p++) slices.push(randomSlice(r, i, p, p === 2 ? 6 : 4));
  }
  return { services, slices, node: { name: 'node-a', zone: 'zone-a', addresses: ['192.168.0.2', 'fd00:192::2'] } };
}

/** Replaces a few objects with new ones (as an informer does), deletes and adds some, maybe moves the node. */
function mutate(r: () => number, w: World, round: number, n: number): World {
  const services = [...w.services];
  const slices = [...w.slices];
  for (let k = 0; k < 3; k++) {
    const i = Math.floor(r() * services.length);
    const name = services[i]!.metadata!.name!;
    const id = Number(name.slice(4));
    const what = r();
    if (what < 0.3) services[i] = randomService(r, id, round);
    else if (what < 0.4) services.splice(i, 1);
    else if (what < 0.5) services.push(randomService(r, n + round * 10 + k, round));
    else {
      const at = slices.findIndex((s) => s.metadata!.labels!['kubernetes.io/service-name'] === name);
      if (at >= 0 && r() < 0.7) slices[at] = randomSlice(r, id, Number(slices[at]!.metadata!.name!.split('-').at(-1)), 4);
      else if (at >= 0) slices.splice(at, 1);
      else slices.push(randomSlice(r, id, 0, 4));
    }
  }
  // Arrival order must not matter, with or without the cache.
  if (r() < 0.2) services.reverse();
  if (r() < 0.2) slices.reverse();
  let node = w.node;
  if (r() < 0.1) node = { ...node, zone: node.zone === 'zone-a' ? 'zone-b' : 'zone-a' };
  else if (r() < 0.05) node = { ...node, addresses: ['192.168.0.3'] };
  else if (r() < 0.3) node = { ...node, addresses: [...(node.addresses ?? [])] }; // equal facts, new object
  return { services, slices, node };
}

test('with a cache, every table equals a fresh computation while objects change, vanish and appear', () => {
  for (const seed of [1, 2, 3, 4]) {
    const r = rng(seed);
    const n = 120;
    let w = randomWorld(r, n);
    const cache = new DesiredCache();
    for (let round = 2; round < 60; round++) {
      const cached = desired(w.services, w.slices, w.node, { cache, maxBackendsPerService: 3 });
      const fresh = desired(w.services, w.slices, w.node, { maxBackendsPerService: 3 });
      assert.equal(cached, fresh, `seed ${seed} round ${round}`);
      w = mutate(r, w, round, n);
    }
  }
});

test('the random worlds exercise conflicts, problems, health checks and every frontend kind', () => {
  const w = randomWorld(rng(1), 120);
  const t = desired(w.services, w.slices, w.node, { maxBackendsPerService: 3 });
  const codes = new Set<string>(t.problems.map((p) => p.code));
  for (const code of ['SOCKLB_ERR_FRONTEND_CONFLICT', 'SOCKLB_ERR_PORT_RANGE', 'SOCKLB_ERR_INVALID_IP', 'SOCKLB_ERR_TOO_MANY_BACKENDS']) {
    assert.ok(codes.has(code), `no ${code} in ${[...codes].join(', ')}`);
  }
  assert.ok((t.healthChecks ?? []).length > 0);
  assert.equal(new Set(t.frontends.map((f) => f.kind)), new Set(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalIP']));
});

const node: NodeInfo = { name: 'node-a', zone: 'zone-a', addresses: ['192.168.0.2'] };

function simple(i: number): { svc: V1Service; slice: V1EndpointSlice } {
  return {
    svc: {
      metadata: { name: `s${i}`, namespace: 'default' },
      spec: { type: 'NodePort', clusterIP: `10.96.0.${i}`, ports: [{ name: 'http', port: 80, nodePort: 30000 + i }] },
    },
    slice: {
      metadata: { name: `s${i}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': `s${i}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: [`10.244.0.${i}`], nodeName: 'node-a' }],
    },
  };
}

function entriesOf(t: ReturnType<typeof desired>, name: string): object[] {
  return t.frontends.filter((f) => f.service.name === name);
}

test('a changed slice recomputes only its service; the others keep their very entries', () => {
  const a = simple(1);
  const b = simple(2);
  const cache = new DesiredCache();
  const before = desired([a.svc, b.svc], [a.slice, b.slice], node, { cache });
  const moved: V1EndpointSlice = { ...b.slice, endpoints: [{ addresses: ['10.244.9.9'] }] };
  const after = desired([a.svc, b.svc], [a.slice, moved], node, { cache });
  for (const [i, e] of entriesOf(after, 's1').entries())
    assert.ok(e === entriesOf(before, 's1')[i], 'the unchanged service was recomputed');
  for (const [i, e] of entriesOf(after, 's2').entries()) assert.ok(e !== entriesOf(before, 's2')[i], 'the changed slice was not seen');
  assert.equal(
    after.frontends.find((f) => f.service.name === 's2')!.backends.map((x) => x.address),
    ['10.244.9.9'],
  );
});

test('a changed service, a new or removed slice, and new node facts each invalidate the right results', () => {
  const a = simple(1);
  const b = simple(2);
  const cache = new DesiredCache();
  const base = desired([a.svc, b.svc], [a.slice, b.slice], node, { cache });

  const edited: V1Service = { ...a.svc, spec: { ...a.svc.spec, ports: [{ name: 'http', port: 81, nodePort: 30001 }] } };
  const t1 = desired([edited, b.svc], [a.slice, b.slice], node, { cache });
  assert.ok(entriesOf(t1, 's1').every((e) => !entriesOf(base, 's1').includes(e)));
  assert.ok(entriesOf(t1, 's2').every((e, i) => e === entriesOf(base, 's2')[i]));
  assert.equal(t1, desired([edited, b.svc], [a.slice, b.slice], node));

  const second: V1EndpointSlice = {
    ...b.slice,
    metadata: { ...b.slice.metadata, name: 's2-y' },
    endpoints: [{ addresses: ['10.244.0.77'] }],
  };
  const t2 = desired([edited, b.svc], [a.slice, b.slice, second], node, { cache });
  assert.equal(
    t2.frontends.find((f) => f.service.name === 's2')!.backends.map((x) => x.address),
    ['10.244.0.2', '10.244.0.77'],
  );
  const t3 = desired([edited, b.svc], [a.slice], node, { cache });
  assert.equal(t3.frontends.find((f) => f.service.name === 's2')!.backends, []);
  assert.ok(entriesOf(t3, 's1').every((e, i) => e === entriesOf(t1, 's1')[i]));

  // Equal facts in a new object reuse everything; a new address recomputes every service.
  const same = desired([edited, b.svc], [a.slice], { ...node, addresses: ['192.168.0.2'] }, { cache });
  assert.ok(same.frontends.every((e, i) => e === t3.frontends[i]));
  const moved = desired([edited, b.svc], [a.slice], { ...node, addresses: ['192.168.0.9'] }, { cache });
  assert.ok(moved.frontends.every((e) => !t3.frontends.includes(e)));
  assert.equal(moved, desired([edited, b.svc], [a.slice], { ...node, addresses: ['192.168.0.9'] }));
  assert.ok(moved.frontends.some((f) => f.kind === 'NodePort' && f.frontend.address === '192.168.0.9'));

  cache.clear();
  const cleared = desired([edited, b.svc], [a.slice], { ...node, addresses: ['192.168.0.9'] }, { cache });
  assert.equal(cleared, moved);
  assert.ok(cleared.frontends.every((e) => !moved.frontends.includes(e)));
});

test('services with the same name in one call keep input order, as without a cache', () => {
  const a = simple(1);
  const twin: V1Service = { ...a.svc, spec: { ...a.svc.spec, clusterIP: '10.96.0.50' } };
  const cache = new DesiredCache();
  desired([a.svc], [a.slice], node, { cache });
  for (const list of [
    [a.svc, twin],
    [twin, a.svc],
  ]) {
    assert.equal(desired(list, [a.slice], node, { cache }), desired(list, [a.slice], node));
  }
});

test('slices with the same name in one call keep input order, as without a cache', () => {
  const a = simple(1);
  // The same address twice: the first copy wins unless a later one is not terminating.
  const one: V1EndpointSlice = {
    ...a.slice,
    endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: false, serving: true, terminating: true } }],
  };
  const two: V1EndpointSlice = { ...a.slice, ports: [{ name: 'http', port: 9090 }], endpoints: [{ addresses: ['10.244.0.5'] }] };
  const cache = new DesiredCache();
  for (const list of [[a.slice], [one, two], [two, one], [one], [one, two, a.slice], [two]]) {
    assert.equal(desired([a.svc], list, node, { cache }), desired([a.svc], list, node), JSON.stringify(list.map((x) => x.endpoints)));
  }
});

test('a cache option that is not a DesiredCache is refused', () => {
  assert.throws(
    () => desired([], [], node, { cache: {} as never }),
    (e: Error) => e instanceof TypeError,
  );
});

test.run();
