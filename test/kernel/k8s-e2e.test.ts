// The Kubernetes agent end to end, adapted from the Kubernetes e2e Service tests
// (test/e2e/network/service.go): our fake API server on loopback, a KubernetesSource and an
// in-process agent on the lab cgroup, pods in network namespaces. Each scenario asserts what a
// client in the lab's node namespace gets (backend names from the probe), what the agent's table and
// maps hold, and what the kube-proxy compatible health endpoints answer.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { probeFeatures } from '../../src/agent/features.ts';
import type { ProbeResult } from '../../src/lab/netns-lab.ts';
import { NODE_IPV4 } from '../../src/lab/netns-lab.ts';
import type { KubeObject } from '../support/fake-apiserver.ts';
import { freePort, K8sLab, labNode, NODE_NAME, OTHER_NODE } from '../support/k8s-lab.ts';
import { type EndpointSpec, type PortSpec, service, slice } from '../support/objects.ts';
import { scaled } from '../support/time-scale.ts';

interface Ctx {
  k: K8sLab;
  /** Objects a test put at the API server, removed after it (also when it fails). */
  made: Map<string, KubeObject>;
}

const e2e = suite<Ctx>('kubernetes e2e');

const POD = { p0: '10.244.0.11', p1: '10.244.0.12', p2: '10.244.0.13' };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// Without bpf_set_retval (Linux < 5.18) a refused connect fails with the hook's default, EPERM.
const REFUSED = probeFeatures().set_retval.available ? 'ECONNREFUSED' : 'EPERM';

e2e.before(async (ctx) => {
  ctx.made = new Map();
  ctx.k = await K8sLab.create('e2e', { pods: 3, tcpPorts: [8080, 8100, 8101] });
});

e2e.after(async (ctx) => {
  await ctx.k?.close();
});

e2e.after.each(async (ctx) => {
  const { k, made } = ctx;
  if (!k) return;
  // A test that failed mid-outage left the API server stopped (restart throws when it is not).
  await k.api.restart().catch(() => {});
  const changes: KubeObject[] = [];
  const node = k.api.get('Node', '', NODE_NAME);
  if (node?.metadata?.deletionTimestamp) changes.push(k.api.modify(labNode()));
  for (const o of made.values()) {
    if (k.api.get(o.kind!, o.metadata!.namespace, o.metadata!.name)) changes.push(k.remove(o));
  }
  made.clear();
  await k.settle(changes, 10_000);
});

// ---- objects ---------------------------------------------------------------------------------

function keyOf(o: KubeObject): string {
  return `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
}

/** Creates or replaces an object at the API server; returns the stored copy. */
function put(ctx: Ctx, o: object): KubeObject {
  const obj = o as KubeObject;
  ctx.made.set(keyOf(obj), obj);
  return ctx.k.api.get(obj.kind!, obj.metadata!.namespace ?? '', obj.metadata!.name) ? ctx.k.api.modify(obj) : ctx.k.api.add(obj);
}

function svc(
  name: string,
  ip: string,
  ports: PortSpec[],
  more: { spec?: Record<string, unknown>; labels?: Record<string, string>; status?: unknown; affinitySeconds?: number } = {},
): KubeObject {
  const s = service({
    name,
    clusterIPs: [ip],
    ports,
    ...(more.labels ? { labels: more.labels } : {}),
    ...(more.affinitySeconds ? { affinitySeconds: more.affinitySeconds } : {}),
  }) as KubeObject;
  Object.assign(s.spec, more.spec ?? {});
  if (more.status) s.status = more.status;
  return s;
}

function eps(name: string, owner: string, ports: { name?: string; port: number }[], endpoints: EndpointSpec[]): KubeObject {
  return slice({ service: owner, name, addressType: 'IPv4', ports, endpoints }) as KubeObject;
}

const http = (port = 8080) => [{ name: 'http', port }];
const web = (port = 80, targetPort = 8080): PortSpec[] => [{ name: 'http', port, targetPort }];
const ready = (address: string, nodeName = NODE_NAME): EndpointSpec => ({ address, nodeName });

// ---- assertions ------------------------------------------------------------------------------

function names(r: ProbeResult): string[] {
  return Object.keys(r.byBackend).sort();
}

async function reaches(k: K8sLab, target: string, want: string[], count = 30): Promise<void> {
  const r = await k.probe(target, count);
  assert.is(r.failed, 0, `${target}: ${JSON.stringify(r.errors)}`);
  assert.equal(names(r), want, `${target} reached ${JSON.stringify(r.byBackend)}`);
}

async function refused(k: K8sLab, target: string, code = REFUSED): Promise<void> {
  const r = await k.probe(target, 3);
  assert.equal(r.errors, { [code]: 3 }, `${target}: ${JSON.stringify(r)}`);
}

/** Not balanced at all: nothing is programmed, and the lab has no route to the address. */
async function unbalanced(k: K8sLab, target: string): Promise<void> {
  const r = await k.probe(target, 2);
  assert.is(r.ok, 0, `${target} answered: ${JSON.stringify(r.byBackend)}`);
}

/** The table and the maps agree on a frontend's backends. */
function backends(k: K8sLab, key: string, want: string[]): void {
  assert.equal(k.backendsOf(key), want, `table backends of ${key}`);
  assert.equal(k.programmed(key), [...want].sort(), `programmed backends of ${key}`);
}

async function waitBackends(k: K8sLab, key: string, want: string[], ms = 5000): Promise<void> {
  const text = JSON.stringify(want);
  await k.until(
    `${key} -> ${text}`,
    () => JSON.stringify(k.backendsOf(key)) === text && JSON.stringify(k.programmed(key)) === JSON.stringify([...want].sort()),
    ms,
  );
}

async function waitHealth(
  k: K8sLab,
  port: number,
  check: (h: Awaited<ReturnType<K8sLab['serviceHealth']>>) => boolean,
  ms = 5000,
): Promise<Awaited<ReturnType<K8sLab['serviceHealth']>>> {
  const deadline = Date.now() + scaled(ms);
  let last: Awaited<ReturnType<K8sLab['serviceHealth']>> | undefined;
  let error: unknown;
  while (Date.now() < deadline) {
    try {
      last = await k.serviceHealth(port);
      if (check(last)) return last;
    } catch (err) {
      error = err;
    }
    await sleep(20);
  }
  throw new Error(`health check on ${port} never matched: last ${JSON.stringify(last)} ${String(error ?? '')}`);
}

// ---- scenarios -------------------------------------------------------------------------------

e2e('should serve a basic endpoint from pods: endpoints added are reached, removed ones refuse', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.10';
  const key = `TCP/${VIP}:80`;
  await k.settle(put(ctx, svc('basic', VIP, web())));
  backends(k, key, []);
  await refused(k, `${VIP}:80`);

  await k.settle(put(ctx, eps('basic-a', 'basic', http(), [ready(POD.p0)])));
  backends(k, key, [`${POD.p0}:8080`]);
  await reaches(k, `${VIP}:80`, ['pod0'], 10);

  await k.settle(put(ctx, eps('basic-a', 'basic', http(), [ready(POD.p0), ready(POD.p1)])));
  backends(k, key, [`${POD.p0}:8080`, `${POD.p1}:8080`]);
  await reaches(k, `${VIP}:80`, ['pod0', 'pod1'], 40);

  await k.settle(put(ctx, eps('basic-a', 'basic', http(), [ready(POD.p1)])));
  await reaches(k, `${VIP}:80`, ['pod1'], 10);

  await k.settle(put(ctx, eps('basic-a', 'basic', http(), [])));
  backends(k, key, []);
  await refused(k, `${VIP}:80`);

  // The same objects again write nothing; the proxy reports healthy like kube-proxy's /healthz.
  assert.is(k.agent.reconciler.reconcile(k.agent.table.frontends).writes, 0);
  const healthz = await k.healthz('/healthz');
  assert.is(healthz.status, 200);
  assert.is(healthz.body.nodeEligible, true);
  assert.type(healthz.body.lastUpdated, 'string');
  assert.is((await k.healthz('/livez')).status, 200);
});

e2e('should serve multiport endpoints from pods: each service port reaches its own target port', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.20';
  const ports: PortSpec[] = [
    { name: 'portname1', port: 80, targetPort: 'svc1' },
    { name: 'portname2', port: 81, targetPort: 'svc2' },
  ];
  put(ctx, svc('multi', VIP, ports));
  // As the EndpointSlice controller writes them: one slice per distinct set of resolved ports.
  put(ctx, eps('multi-1', 'multi', [{ name: 'portname1', port: 8100 }], [ready(POD.p0)]));
  await k.settle(put(ctx, eps('multi-2', 'multi', [{ name: 'portname2', port: 8101 }], [ready(POD.p1)])));
  backends(k, `TCP/${VIP}:80`, [`${POD.p0}:8100`]);
  backends(k, `TCP/${VIP}:81`, [`${POD.p1}:8101`]);
  // Every pod listens on 8100 and 8101: a port mixed up would show up as another pod's name.
  await reaches(k, `${VIP}:80`, ['pod0'], 10);
  await reaches(k, `${VIP}:81`, ['pod1'], 10);

  await k.settle(k.remove(ctx.made.get('EndpointSlice/default/multi-1')!));
  await refused(k, `${VIP}:80`);
  await reaches(k, `${VIP}:81`, ['pod1'], 10);
});

e2e('should change the type: ExternalName -> ClusterIP -> NodePort -> LoadBalancer -> ClusterIP -> ExternalName', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.30';
  const NODE_PORT = 30080;
  const LB_IP = '192.0.2.50';
  const cluster = `TCP/${VIP}:80`;
  const nodePort = `TCP/${NODE_IPV4}:${NODE_PORT}`;
  const lb = `TCP/${LB_IP}:80`;
  const externalName = (): KubeObject => {
    const s = svc('types', VIP, web());
    s.spec = { type: 'ExternalName', externalName: 'db.example.com', sessionAffinity: 'None' };
    return s;
  };
  put(ctx, eps('types-a', 'types', http(), [ready(POD.p2)]));
  await k.settle(put(ctx, externalName()));
  assert.equal(
    k.agent.table.frontends.filter((f) => f.service.name === 'types'),
    [],
  );
  assert.ok(!k.agent.status().objectProblems.some((p) => p.name === 'types'), 'ExternalName is not ours, and no problem');
  await unbalanced(k, `${VIP}:80`);

  await k.settle(put(ctx, svc('types', VIP, web())));
  assert.is(k.frontend(cluster)?.kind, 'ClusterIP');
  await reaches(k, `${VIP}:80`, ['pod2'], 10);

  const asNodePort = svc('types', VIP, web());
  asNodePort.spec.type = 'NodePort';
  asNodePort.spec.externalTrafficPolicy = 'Cluster';
  asNodePort.spec.ports[0].nodePort = NODE_PORT;
  await k.settle(put(ctx, asNodePort));
  assert.is(k.frontend(nodePort)?.kind, 'NodePort');
  backends(k, nodePort, [`${POD.p2}:8080`]);
  // Dialled from the node's client namespace at the node's own address (the lab bridge).
  await reaches(k, `${NODE_IPV4}:${NODE_PORT}`, ['pod2'], 10);
  await reaches(k, `${VIP}:80`, ['pod2'], 5);

  const asLb = structuredClone(asNodePort);
  asLb.spec.type = 'LoadBalancer';
  asLb.status = { loadBalancer: { ingress: [{ ip: LB_IP, ipMode: 'VIP' }] } };
  await k.settle(put(ctx, asLb));
  assert.is(k.frontend(lb)?.kind, 'LoadBalancer');
  backends(k, lb, [`${POD.p2}:8080`]);
  await reaches(k, `${LB_IP}:80`, ['pod2'], 10);
  await reaches(k, `${NODE_IPV4}:${NODE_PORT}`, ['pod2'], 5);

  await k.settle(put(ctx, svc('types', VIP, web())));
  assert.is(k.frontend(nodePort), undefined);
  assert.is(k.frontend(lb), undefined);
  assert.is(k.programmed(nodePort), undefined);
  assert.is(k.programmed(lb), undefined);
  // Nothing listens on the node address itself: once the NodePort is gone the connect is refused.
  await refused(k, `${NODE_IPV4}:${NODE_PORT}`, 'ECONNREFUSED');
  await reaches(k, `${VIP}:80`, ['pod2'], 5);

  await k.settle(put(ctx, externalName()));
  assert.is(k.frontend(cluster), undefined);
  assert.is(k.programmed(cluster), undefined);
  await unbalanced(k, `${VIP}:80`);
});

e2e('should have session affinity work, and time out, for a ClusterIP service', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.40';
  const key = `TCP/${VIP}:80`;
  put(ctx, eps('sticky-a', 'sticky', http(), [ready(POD.p0), ready(POD.p1), ready(POD.p2)]));
  await k.settle(put(ctx, svc('sticky', VIP, web(), { affinitySeconds: 1 })));
  assert.is(k.frontend(key)?.affinityTimeoutSeconds, 1);
  assert.is(k.agent.reconciler.state.services.get(key)?.affinityTimeout, 1);
  const held = await k.probe(`${VIP}:80`, 30, ['--interval-ms', '20']);
  assert.is(held.ok, 30, JSON.stringify(held.errors));
  assert.is(names(held).length, 1, `affinity did not hold: ${JSON.stringify(held.byBackend)}`);
  // Each pick after a pause longer than the timeout is a fresh one: 8 all landing on one of 3
  // backends happens once in 2,187 runs.
  const seen = new Set<string>();
  for (let i = 0; i < 8 && seen.size < 2; i++) {
    await sleep(1200);
    const once = await k.probe(`${VIP}:80`, 1);
    seen.add(names(once)[0] ?? 'none');
  }
  assert.ok(seen.size > 1, `every pick after expiry went to ${[...seen].join()}`);
});

e2e('externalTrafficPolicy Local: external backends are the local endpoints; the health check follows them', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.50';
  const LB_IP = '192.0.2.51';
  const NODE_PORT = 30081;
  const hcPort = await freePort();
  const lb = `TCP/${LB_IP}:80`;
  const nodePort = `TCP/${NODE_IPV4}:${NODE_PORT}`;
  const s = svc('etp', VIP, web(), {
    spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: hcPort },
    status: { loadBalancer: { ingress: [{ ip: LB_IP, ipMode: 'VIP' }] } },
  });
  s.spec.ports[0].nodePort = NODE_PORT;
  put(ctx, s);
  const all = [`${POD.p0}:8080`, `${POD.p1}:8080`, `${POD.p2}:8080`];
  await k.settle(put(ctx, eps('etp-a', 'etp', http(), [ready(POD.p0), ready(POD.p1, OTHER_NODE), ready(POD.p2)])));
  for (const key of [lb, nodePort]) {
    assert.equal(k.backendsOf(key, true), [`${POD.p0}:8080`, `${POD.p2}:8080`], `external backends of ${key}`);
    backends(k, key, all);
  }
  backends(k, `TCP/${VIP}:80`, all);
  // A client on the node is not behind the load balancer: kube-proxy short-circuits it to every endpoint.
  await reaches(k, `${LB_IP}:80`, ['pod0', 'pod1', 'pod2'], 60);
  await reaches(k, `${NODE_IPV4}:${NODE_PORT}`, ['pod0', 'pod1', 'pod2'], 60);

  const two = await waitHealth(k, hcPort, (h) => h.status === 200 && h.body.localEndpoints === 2);
  assert.is(two.weight, '2');
  assert.equal(two.body, { service: { namespace: 'default', name: 'etp' }, localEndpoints: 2, serviceProxyHealthy: true });

  // The local endpoints start terminating: the node leaves rotation (503) while traffic that still
  // arrives goes to them (the local terminating fallback), cluster-wide clients to the ready one.
  const terminating = (address: string): EndpointSpec => ({ address, nodeName: NODE_NAME, ready: false, serving: true, terminating: true });
  await k.settle(put(ctx, eps('etp-a', 'etp', http(), [terminating(POD.p0), ready(POD.p1, OTHER_NODE), terminating(POD.p2)])));
  assert.equal(k.backendsOf(lb, true), [`${POD.p0}:8080`, `${POD.p2}:8080`]);
  backends(k, lb, [`${POD.p1}:8080`]);
  const draining = await waitHealth(k, hcPort, (h) => h.status === 503);
  assert.is(draining.body.localEndpoints, 0);
  assert.is(draining.weight, null);

  await k.settle(put(ctx, eps('etp-a', 'etp', http(), [ready(POD.p1, OTHER_NODE)])));
  assert.equal(k.backendsOf(lb, true), []);
  assert.equal(k.backendsOf(nodePort, true), []);
  const none = await waitHealth(k, hcPort, (h) => h.status === 503);
  assert.is(none.body.localEndpoints, 0);
  await reaches(k, `${LB_IP}:80`, ['pod1'], 10);
});

e2e('internalTrafficPolicy Local: the ClusterIP reaches only endpoints on this node', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.60';
  put(ctx, svc('itp', VIP, web(), { spec: { internalTrafficPolicy: 'Local' } }));
  await k.settle(put(ctx, eps('itp-a', 'itp', http(), [ready(POD.p0), ready(POD.p1, OTHER_NODE), ready(POD.p2, OTHER_NODE)])));
  backends(k, `TCP/${VIP}:80`, [`${POD.p0}:8080`]);
  await reaches(k, `${VIP}:80`, ['pod0'], 30);
  // No local endpoint: kube-proxy drops the traffic rather than leave the node.
  await k.settle(put(ctx, eps('itp-a', 'itp', http(), [ready(POD.p1, OTHER_NODE), ready(POD.p2, OTHER_NODE)])));
  backends(k, `TCP/${VIP}:80`, []);
  await refused(k, `${VIP}:80`);
});

e2e('should fall back to terminating endpoints when there are no ready ones (cluster-wide and local sets)', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.70';
  const LOCAL_VIP = '10.96.1.71';
  const term = (address: string, nodeName = NODE_NAME, serving = true): EndpointSpec => ({
    address,
    nodeName,
    ready: false,
    serving,
    terminating: true,
  });
  put(ctx, svc('term', VIP, web()));
  await k.settle(put(ctx, eps('term-a', 'term', http(), [ready(POD.p0), term(POD.p1)])));
  await reaches(k, `${VIP}:80`, ['pod0'], 20);
  await k.settle(put(ctx, eps('term-a', 'term', http(), [term(POD.p1), term(POD.p2)])));
  backends(k, `TCP/${VIP}:80`, [`${POD.p1}:8080`, `${POD.p2}:8080`]);
  await reaches(k, `${VIP}:80`, ['pod1', 'pod2'], 40);
  await k.settle(put(ctx, eps('term-a', 'term', http(), [term(POD.p1, NODE_NAME, false)])));
  await refused(k, `${VIP}:80`);

  // internalTrafficPolicy Local decides the fallback for the local set alone: this node's only
  // endpoint is terminating while another node has a ready one, and local traffic still goes to it.
  put(ctx, svc('term-local', LOCAL_VIP, web(), { spec: { internalTrafficPolicy: 'Local' } }));
  await k.settle(put(ctx, eps('term-local-a', 'term-local', http(), [term(POD.p1), ready(POD.p2, OTHER_NODE)])));
  backends(k, `TCP/${LOCAL_VIP}:80`, [`${POD.p1}:8080`]);
  await reaches(k, `${LOCAL_VIP}:80`, ['pod1'], 10);
});

e2e('should create endpoints for unready pods with publishNotReadyAddresses', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.80';
  const unready: EndpointSpec = { address: POD.p2, nodeName: NODE_NAME, ready: false, serving: false, terminating: false };
  put(ctx, eps('unready-a', 'unready', http(), [unready]));
  await k.settle(put(ctx, svc('unready', VIP, web())));
  await refused(k, `${VIP}:80`);
  await k.settle(put(ctx, svc('unready', VIP, web(), { spec: { publishNotReadyAddresses: true } })));
  backends(k, `TCP/${VIP}:80`, [`${POD.p2}:8080`]);
  await reaches(k, `${VIP}:80`, ['pod2'], 10);
});

e2e('should implement service.kubernetes.io/service-proxy-name (and headless): labelled services are not ours', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.90';
  const HEADLESS_VIP = '10.96.1.92';
  const PLAIN = '10.96.1.91';
  const foreign = { 'service.kubernetes.io/service-proxy-name': 'foo-bar' };
  put(ctx, eps('proxied-a', 'proxied', http(), [ready(POD.p1)]));
  put(ctx, eps('plain-a', 'plain', http(), [ready(POD.p0)]));
  put(ctx, eps('headless-a', 'headless', http(), [ready(POD.p2)]));
  put(ctx, svc('headless', HEADLESS_VIP, web(), { labels: { 'service.kubernetes.io/headless': '' } }));
  put(ctx, svc('plain', PLAIN, web()));
  await k.settle(put(ctx, svc('proxied', VIP, web(), { labels: foreign })));
  assert.is(k.programmed(`TCP/${VIP}:80`), undefined);
  assert.is(k.programmed(`TCP/${HEADLESS_VIP}:80`), undefined);
  assert.ok(!k.agent.status().objectProblems.some((p) => ['proxied', 'headless'].includes(p.name)));
  await unbalanced(k, `${VIP}:80`);
  await unbalanced(k, `${HEADLESS_VIP}:80`);
  await reaches(k, `${PLAIN}:80`, ['pod0'], 5);

  await k.settle(put(ctx, svc('proxied', VIP, web())));
  await reaches(k, `${VIP}:80`, ['pod1'], 10);
  await k.settle(put(ctx, svc('proxied', VIP, web(), { labels: foreign })));
  assert.is(k.programmed(`TCP/${VIP}:80`), undefined);
  await unbalanced(k, `${VIP}:80`);
});

e2e('an API server that goes away: the old state keeps serving, then the agent converges on its return', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.100';
  const NEW_VIP = '10.96.1.101';
  put(ctx, svc('away', VIP, web()));
  await k.settle(put(ctx, eps('away-a', 'away', http(), [ready(POD.p0)])));
  await reaches(k, `${VIP}:80`, ['pod0'], 5);
  const syncs = k.agent.status().syncs;
  const errors = k.sourceErrors.length;

  await k.api.stop();
  // Changed while the agent cannot see them.
  put(ctx, eps('away-a', 'away', http(), [ready(POD.p1)]));
  put(ctx, svc('away-new', NEW_VIP, web()));
  put(ctx, eps('away-new-a', 'away-new', http(), [ready(POD.p2)]));
  try {
    await k.until('the source to notice the outage', () => k.sourceErrors.length > errors, 5000);
    await sleep(500);
    await reaches(k, `${VIP}:80`, ['pod0'], 10);
    await unbalanced(k, `${NEW_VIP}:80`);
    assert.is(k.agent.status().syncs, syncs, 'no reconcile without news');
    backends(k, `TCP/${VIP}:80`, [`${POD.p0}:8080`]);
    // kube-proxy stays healthy while the API server is away: nothing is queued unprogrammed.
    assert.is((await k.healthz('/healthz')).status, 200);
  } finally {
    await k.api.restart();
  }
  await waitBackends(k, `TCP/${VIP}:80`, [`${POD.p1}:8080`], 10_000);
  await waitBackends(k, `TCP/${NEW_VIP}:80`, [`${POD.p2}:8080`], 10_000);
  await reaches(k, `${VIP}:80`, ['pod1'], 10);
  await reaches(k, `${NEW_VIP}:80`, ['pod2'], 10);
});

e2e('a 410 Gone during a watch: the source relists and the agent programs what it missed', async (ctx) => {
  const { k } = ctx;
  const VIP = '10.96.1.110';
  put(ctx, svc('gone', VIP, web()));
  await k.settle(put(ctx, eps('gone-a', 'gone', http(), [ready(POD.p0)])));
  await reaches(k, `${VIP}:80`, ['pod0'], 5);
  const requests = k.api.requests.length;
  // The watch falls behind, history is compacted, then the server tells it its version is gone.
  k.api.stallWatches();
  put(ctx, eps('gone-a', 'gone', http(), [ready(POD.p2)]));
  k.api.compact();
  k.api.expireWatches();
  await waitBackends(k, `TCP/${VIP}:80`, [`${POD.p2}:8080`], 10_000);
  const relisted = k.api.requests.slice(requests).some((r) => !r.watch && r.path.endsWith('/endpointslices'));
  assert.ok(relisted, 'the endpointslices informer relisted after the 410');
  await reaches(k, `${VIP}:80`, ['pod2'], 10);
});

e2e('malformed objects are rejected one by one, naming object and field; the others are served', async (ctx) => {
  const { k } = ctx;
  const OK = '10.96.1.120';
  const PORT_VIP = '10.96.1.121';
  put(ctx, svc('ok', OK, web()));
  const okA = eps('ok-a', 'ok', http(), [ready(POD.p0)]);
  okA.endpoints.push({ addresses: ['10.244.0.300'], conditions: { ready: true } }, { conditions: { ready: true } });
  put(ctx, okA);
  put(ctx, eps('ok-b', 'ok', [{ name: 'http', port: 99999 }], [ready(POD.p1)]));
  put(ctx, svc('bad-ip', '10.96.1.300', web()));
  put(ctx, svc('bad-port', PORT_VIP, [{ name: 'http', port: 70000, targetPort: 8080 }]));
  put(ctx, eps('bad-port-a', 'bad-port', http(), [ready(POD.p2)]));
  const noPorts = svc('no-ports', '10.96.1.122', web());
  delete noPorts.spec.ports;
  await k.settle(put(ctx, noPorts));

  const problems = k.agent.status().objectProblems.map((p) => `${p.code} ${p.kind} ${p.namespace}/${p.name} ${p.field}`);
  for (const want of [
    'SOCKLB_ERR_INVALID_IP Service default/bad-ip spec.clusterIPs[0]',
    'SOCKLB_ERR_PORT_RANGE Service default/bad-port spec.ports[0].port',
    'SOCKLB_ERR_MISSING_FIELD Service default/no-ports spec.ports',
    'SOCKLB_ERR_INVALID_IP EndpointSlice default/ok-a endpoints[1].addresses[0]',
    'SOCKLB_ERR_MISSING_FIELD EndpointSlice default/ok-a endpoints[2].addresses',
    'SOCKLB_ERR_PORT_RANGE EndpointSlice default/ok-b ports[0].port',
  ]) {
    assert.ok(problems.includes(want), `missing problem "${want}" in:\n${problems.join('\n')}`);
  }
  for (const name of ['bad-ip', 'bad-port', 'no-ports']) {
    assert.equal(
      k.agent.table.frontends.filter((f) => f.service.name === name),
      [],
      `${name} has no frontend`,
    );
  }
  backends(k, `TCP/${OK}:80`, [`${POD.p0}:8080`]);
  await reaches(k, `${OK}:80`, ['pod0'], 10);
  await unbalanced(k, `${PORT_VIP}:80`);

  // Fixed, it is served and its problem is gone.
  await k.settle(put(ctx, svc('bad-port', PORT_VIP, web())));
  await reaches(k, `${PORT_VIP}:80`, ['pod2'], 10);
  assert.ok(!k.agent.status().objectProblems.some((p) => p.name === 'bad-port'));
});

e2e('/healthz turns 503 while the Node is being deleted; /livez stays 200', async (ctx) => {
  const { k } = ctx;
  const node = labNode();
  node.metadata!.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await k.settle(k.api.modify(node));
  const healthz = await k.healthz('/healthz');
  assert.is(healthz.status, 503);
  assert.is(healthz.body.nodeEligible, false);
  assert.is((await k.healthz('/livez')).status, 200);
  await k.settle(k.api.modify(labNode()));
  assert.is((await k.healthz('/healthz')).status, 200);
});

e2e.run();
