import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { desired } from '../../../src/model/desired.ts';
import { DesiredState, type TableChanges } from '../../../src/model/desired-state.ts';
import { readService } from '../../../src/model/service-spec.ts';
import { runSteps } from '../../../src/model/steps.ts';
import { type DesiredFrontend, type DesiredTable, endpointKey, type NodeInfo } from '../../../src/model/types.ts';
import { service, slice } from '../../support/objects.ts';
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

const idOf = (o: V1Service | V1EndpointSlice) => `${o.metadata!.namespace}/${o.metadata!.name}`;
const rejected = (s: V1Service) => {
  const read = readService(s);
  return read.spec === undefined && read.problems.length > 0;
};
const canonical = (t: DesiredTable) => ({
  frontends: t.frontends,
  healthChecks: t.healthChecks,
  problems: t.problems.map((p) => JSON.stringify(p)).sort(),
});

/**
 * What the agent programs for this sequence of worlds, computed from scratch each time: desired()
 * over the services, a rejected one replaced by the last accepted version of it while it exists.
 */
class Reference {
  #accepted = new Map<string, V1Service>();
  substituted = new Set<string>();

  table(w: World): DesiredTable {
    const present = new Set(w.services.map(idOf));
    for (const id of [...this.#accepted.keys()]) if (!present.has(id)) this.#accepted.delete(id);
    this.substituted.clear();
    const effective = w.services.map((s) => {
      const id = idOf(s);
      if (!rejected(s)) {
        this.#accepted.set(id, s);
        return s;
      }
      const kept = this.#accepted.get(id);
      if (!kept) return s;
      this.substituted.add(id);
      return kept;
    });
    return desired(effective, w.slices, w.node, { maxBackendsPerService: 3 });
  }
}

/**
 * Feeds the difference between two worlds to the state one object at a time, as informer events.
 * Some changed objects arrive as a delete and an add (a recreated object), before the same flush.
 */
function feed(r: () => number, state: DesiredState, from: World, to: World): void {
  const before = new Map([...from.services, ...from.slices].map((o) => [`${o.kind}/${idOf(o)}`, o]));
  const after = new Map([...to.services, ...to.slices].map((o) => [`${o.kind}/${idOf(o)}`, o]));
  const remove = (o: V1Service | V1EndpointSlice) => {
    if (o.kind === 'Service') state.deleteService(o.metadata!.namespace!, o.metadata!.name!);
    else state.deleteSlice(o.metadata!.namespace!, o.metadata!.name!);
  };
  for (const [key, o] of before) if (!after.has(key)) remove(o);
  for (const [key, o] of after) {
    if (before.get(key) === o) continue;
    // (Not a rejected service: the reference would keep its accepted version through the delete.)
    if (before.has(key) && !(o.kind === 'Service' && rejected(o as V1Service)) && r() < 0.3) remove(o);
    if (o.kind === 'Service') state.putService(o as V1Service);
    else state.putSlice(o as V1EndpointSlice);
  }
  state.setNode(to.node);
}

/** The table a consumer of the changes holds: the last one with each change made to it. */
function applyChanges(held: Map<string, DesiredFrontend>, changes: TableChanges): void {
  for (const [key, d] of changes) {
    if (d) held.set(key, d);
    else held.delete(key);
  }
}

test('fed object by object, the state holds the table desired() computes afresh, and its changes lead to it', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = rng(seed);
    const n = 120;
    let w = randomWorld(r, n);
    const reference = new Reference();
    const state = new DesiredState(w.node, { maxBackendsPerService: 3 });
    const held = new Map<string, DesiredFrontend>();
    feed(r, state, { services: [], slices: [], node: w.node }, w);
    for (let round = 2; round < 60; round++) {
      applyChanges(held, runSteps(state.flush()));
      const fresh = reference.table(w);
      const got = state.table();
      const where = `seed ${seed} round ${round}`;
      assert.equal(got.frontends, fresh.frontends, where);
      assert.is(state.size, fresh.frontends.length, where);
      assert.equal(got.healthChecks, fresh.healthChecks, where);
      const named = (t: DesiredTable) => ({
        ...t,
        problems: t.problems.filter((p) => !reference.substituted.has(`${p.namespace}/${p.name}`)),
      });
      assert.equal(canonical(named(got)).problems, canonical(named(fresh)).problems, where);
      assert.equal([...held.keys()].sort(), fresh.frontends.map((f) => endpointKey(f.frontend)).sort(), where);
      for (const f of fresh.frontends) assert.equal(held.get(endpointKey(f.frontend)), f, where);
      const next = mutate(r, w, round, n);
      if (r() < 0.2) {
        state.replaceAll(next.services, next.slices);
        state.setNode(next.node);
      } else feed(r, state, w, next);
      w = next;
    }
  }
});

test('a flush with nothing changed changes nothing; one slice changed changes only its frontends', () => {
  const w = randomWorld(rng(7), 200);
  const state = new DesiredState(w.node);
  state.replaceAll(w.services, w.slices);
  runSteps(state.flush());
  assert.equal(runSteps(state.flush()).size, 0);
  state.replaceAll(w.services, w.slices);
  assert.equal(state.dirty, false);
  const web = service({ name: 'web', clusterIPs: ['10.96.200.1'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  state.putService(web);
  runSteps(state.flush());
  const one = (address: string) => slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address }] });
  state.putSlice(one('10.244.9.1'));
  const changes = runSteps(state.flush());
  assert.equal([...changes.keys()], ['TCP/10.96.200.1:80']);
  assert.equal(
    changes.get('TCP/10.96.200.1:80')?.backends.map((b) => b.address),
    ['10.244.9.1'],
  );
});

test('a rejected edit keeps the accepted version programmed and reports the problem; a fix or delete replaces it', () => {
  const good = service({ name: 'web', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const broken = { ...good, spec: { ...good.spec, ports: [{ name: 'http', port: 70000 }] } } as V1Service;
  const state = new DesiredState({ name: 'node-a' });
  const frontends = () => state.table().frontends.map((f) => `${f.service.name} ${f.frontend.address}:${f.frontend.port}`);
  state.putService(broken);
  runSteps(state.flush());
  assert.equal(frontends(), [], 'rejected from the start: not programmed');
  state.putService(good);
  runSteps(state.flush());
  const kept = state.table().frontends;
  state.putService(broken);
  runSteps(state.flush());
  assert.equal(state.table().frontends, kept);
  assert.ok(state.table().problems.some((p) => p.name === 'web' && p.field === 'spec.ports[0].port'));
  state.deleteService('default', 'web');
  runSteps(state.flush());
  assert.equal(frontends(), []);
  state.putService(broken);
  runSteps(state.flush());
  assert.equal(frontends(), [], 'deleted while rejected: nothing is kept');
});

test.run();
