import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffDelay, jittered } from '../../../src/sources/k8s-informer.ts';
import { compactNode, type KubernetesSnapshot, KubernetesSource, loadKubeConfig, nodeInfo } from '../../../src/sources/kubernetes.ts';
import { FakeApiServer, fixture, type KubeObject } from '../../support/fake-apiserver.ts';

const FAST = { initialMs: 20, maxMs: 200 };

interface Harness {
  api: FakeApiServer;
  source: KubernetesSource;
  snapshots: KubernetesSnapshot[];
  errors: Error[];
  synced: number;
  dir: string;
  close(): Promise<void>;
}

async function harness(
  setup: (api: FakeApiServer) => void = () => {},
  opts: { pageSize?: number; allNodes?: boolean } = {},
): Promise<Harness> {
  const api = new FakeApiServer();
  await api.start();
  setup(api);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-k8s-'));
  const h: Harness = {
    api,
    snapshots: [],
    errors: [],
    synced: 0,
    dir,
    source: undefined as unknown as KubernetesSource,
    async close() {
      await h.source.stop();
      await api.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  h.source = new KubernetesSource({
    nodeName: 'node-a',
    kubeconfigPath: api.writeKubeconfig(dir),
    backoff: FAST,
    ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
    ...(opts.allNodes ? { allNodes: true } : {}),
    onChange: (s) => h.snapshots.push(s),
    onSynced: () => h.synced++,
    onError: (e) => h.errors.push(e),
  });
  return h;
}

/** Polls until check() holds, failing after a bounded wait. */
async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function last(h: Harness): KubernetesSnapshot {
  const s = h.snapshots.at(-1);
  if (!s) throw new Error('no snapshot yet');
  return s;
}

function names(objects: { metadata?: { namespace?: string; name?: string } }[]): string[] {
  return objects.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`).sort();
}

function svc(name: string, ip: string, ns = 'default'): KubeObject {
  const s = fixture('service');
  s.metadata!.name = name;
  s.metadata!.namespace = ns;
  s.spec.clusterIP = ip;
  s.spec.clusterIPs = [ip];
  return s;
}

function slice(name: string, service: string, trigger?: string): KubeObject {
  const s = fixture('endpointslice');
  s.metadata!.name = name;
  s.metadata!.labels['kubernetes.io/service-name'] = service;
  if (trigger) s.metadata!.annotations['endpoints.kubernetes.io/last-change-trigger-time'] = trigger;
  return s;
}

test('lists all three resources, emits one snapshot after all have listed, with node facts', async () => {
  const h = await harness((api) => {
    api.add(svc('web', '10.96.0.10'));
    api.add(slice('web-abc', 'web'));
    api.add(fixture('node'));
    const other = fixture('node');
    other.metadata!.name = 'node-b';
    api.add(other);
  });
  try {
    await h.source.start();
    assert.ok(h.source.synced);
    assert.is(h.synced, 1);
    await until('first snapshot', () => h.snapshots.length === 1);
    const s = last(h);
    assert.equal(names(s.services), ['default/web']);
    assert.equal(names(s.slices), ['default/web-abc']);
    assert.equal(s.node, {
      name: 'node-a',
      zone: 'zone-a',
      addresses: ['192.168.56.11', '203.0.113.11'],
      deleting: false,
      toBeDeleted: false,
    });
    // List items arrive without kind; the source gives every object its kind, as watch events have.
    assert.is(s.services[0]!.kind, 'Service');
    assert.is(s.slices[0]!.kind, 'EndpointSlice');
    // Timestamps stay wire strings (not Date objects) whether an object came from a list or a watch.
    assert.type(s.services[0]!.metadata!.creationTimestamp, 'string');
    assert.equal(s.changeTriggerTimes, [], 'the initial list reports no programming latency');
    // Only this node was asked for, by field selector, and watches ask for bookmarks.
    await until('watches open', () => h.api.watchCount === 3);
    const nodeReqs = h.api.requests.filter((r) => r.path === '/api/v1/nodes');
    assert.ok(nodeReqs.length >= 2);
    assert.ok(nodeReqs.every((r) => r.query.get('fieldSelector') === 'metadata.name=node-a'));
    assert.ok(h.api.requests.filter((r) => r.watch).every((r) => r.query.get('allowWatchBookmarks') === 'true'));
  } finally {
    await h.close();
  }
});

test('sees ADDED, MODIFIED and DELETED from the watch, one snapshot per burst', async () => {
  const h = await harness((api) => api.add(fixture('node')));
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    await until('first snapshot', () => h.snapshots.length === 1);
    assert.equal(last(h).services, []);

    h.api.add(svc('web', '10.96.0.10'));
    h.api.add(svc('db', '10.96.0.11', 'prod'));
    await until('added', () => last(h).services.length === 2);

    const web = svc('web', '10.96.0.10');
    web.spec.ports[0].port = 8080;
    h.api.modify(web);
    await until('modified', () => last(h).services.some((s) => s.spec?.ports?.[0]?.port === 8080));

    h.api.remove(web);
    await until('deleted', () => names(last(h).services).join() === 'prod/db');
    assert.is(h.errors.length, 0, h.errors.map((e) => e.message).join('; '));

    // A burst of changes in one go becomes few snapshots, not one per event.
    const before = h.snapshots.length;
    for (let i = 0; i < 20; i++) h.api.add(svc(`burst-${i}`, `10.96.1.${i}`));
    await until('burst', () => last(h).services.length === 21);
    assert.ok(h.snapshots.length - before < 20, `${h.snapshots.length - before} snapshots for 20 events`);
  } finally {
    await h.close();
  }
});

test('node changes that the model reads make a snapshot; others do not', async () => {
  const h = await harness((api) => api.add(fixture('node')));
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    const count = h.snapshots.length;
    const node = fixture('node');
    node.status.conditions[0].lastHeartbeatTime = '2025-03-04T09:30:11Z';
    h.api.modify(node);
    await sleep(100);
    assert.is(h.snapshots.length, count, 'a heartbeat is not a change');

    node.metadata!.deletionTimestamp = '2025-03-04T09:31:00Z';
    node.spec.taints = [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1741080660', effect: 'NoSchedule' }];
    h.api.modify(node);
    await until('node deleting', () => last(h).node.deleting);
    assert.ok(last(h).node.toBeDeleted);
  } finally {
    await h.close();
  }
});

function namedNode(name: string, internal: string): KubeObject {
  const n = fixture('node');
  n.metadata!.name = name;
  n.status.addresses = [
    { type: 'Hostname', address: name },
    { type: 'InternalIP', address: internal },
  ];
  return n;
}

test('allNodes: every Node is watched, its addresses are in peers, and an address change makes a snapshot', async () => {
  const h = await harness(
    (api) => {
      api.add(fixture('node'));
      api.add(namedNode('node-b', '192.168.56.12'));
    },
    { allNodes: true },
  );
  try {
    await h.source.start();
    await until('first snapshot', () => h.snapshots.length === 1);
    assert.equal(last(h).peers.get('node-b'), ['192.168.56.12']);
    assert.equal(last(h).node.addresses, ['192.168.56.11', '203.0.113.11'], 'the own node is still read from the same watch');
    await until('watches open', () => h.api.watchCount === 3);
    const nodeReqs = h.api.requests.filter((r) => r.path === '/api/v1/nodes');
    assert.ok(
      nodeReqs.every((r) => !r.query.has('fieldSelector')),
      'no field selector: every Node',
    );

    const count = h.snapshots.length;
    const heartbeat = namedNode('node-b', '192.168.56.12');
    heartbeat.status.conditions[0].lastHeartbeatTime = '2025-03-04T09:30:11Z';
    h.api.modify(heartbeat);
    await sleep(100);
    assert.is(h.snapshots.length, count, "another node's heartbeat is not a change");
    const peersBefore = last(h).peers;

    h.api.modify(namedNode('node-b', '192.168.56.22'));
    await until('new address', () => last(h).peers.get('node-b')?.[0] === '192.168.56.22');
    assert.is.not(last(h).peers, peersBefore, 'a new book, so the desired cache sees the change');

    h.api.add(namedNode('node-c', '10.0.0.300'));
    await until('problem', () => last(h).problems.some((p) => p.name === 'node-c'));
    const p = last(h).problems.find((x) => x.name === 'node-c')!;
    assert.equal([p.kind, p.field, p.code], ['Node', 'status.addresses[1].address', 'SOCKLB_ERR_INVALID_IP']);
    assert.equal(last(h).peers.get('node-c'), []);

    h.api.remove(namedNode('node-b', '192.168.56.22'));
    await until('node-b gone', () => !last(h).peers.has('node-b'));
  } finally {
    await h.close();
  }
});

test('compactNode keeps name, version, zone, addresses and the deletion marks, not status', () => {
  const n = fixture('node');
  n.metadata!.deletionTimestamp = '2025-03-04T09:31:00Z';
  n.spec.taints = [
    { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
    { key: 'ToBeDeletedByClusterAutoscaler', value: '1', effect: 'NoSchedule' },
  ];
  n.status.addresses.push({ type: 'Hostname', address: 'node-a' });
  const c = compactNode(n as never);
  assert.equal(nodeInfo('node-a', c), nodeInfo('node-a', n as never), 'reads the same');
  assert.equal(Object.keys(c.status ?? {}), ['addresses']);
  assert.equal(c.status!.addresses, n.status.addresses, 'all of them: problems name an address by its index');
  assert.equal(
    c.spec?.taints?.map((t) => t.key),
    ['ToBeDeletedByClusterAutoscaler'],
  );
  assert.is(c.metadata?.resourceVersion, n.metadata!.resourceVersion);
  assert.ok(JSON.stringify(c).length < JSON.stringify(n).length / 2, 'much smaller than the Node');
});

test('records last-change-trigger-time of each EndpointSlice change', async () => {
  const h = await harness((api) => api.add(slice('web-abc', 'web', '2025-03-04T09:00:00Z')));
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    h.api.modify(slice('web-abc', 'web', '2025-03-04T09:22:41Z'));
    h.api.add(slice('db-xyz', 'db', '2025-03-04T09:22:42Z'));
    await until('slices', () => last(h).slices.length === 2 && h.source.lastChangeTriggerTimes().size === 2);
    const times = h.snapshots
      .slice(1)
      .flatMap((s) => s.changeTriggerTimes.map((t) => t.toISOString()))
      .sort();
    assert.equal(times, ['2025-03-04T09:22:41.000Z', '2025-03-04T09:22:42.000Z']);
    assert.is(h.source.lastChangeTriggerTimes().get('default/web-abc')?.toISOString(), '2025-03-04T09:22:41.000Z');
  } finally {
    await h.close();
  }
});

test('bookmarks move the resourceVersion without a snapshot', async () => {
  const h = await harness((api) => api.add(svc('web', '10.96.0.10')));
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    const count = h.snapshots.length;
    h.api.add(fixture('node')); // a change elsewhere bumps the global resourceVersion
    await until('node snapshot', () => h.snapshots.length === count + 1);
    h.api.bookmark();
    await until('bookmark seen', () => h.source.status().informers.services.resourceVersion === String(h.api.resourceVersion));
    await sleep(50);
    assert.is(h.snapshots.length, count + 1, 'a bookmark is not a change');
    // The bookmark's resourceVersion is where a reconnect resumes: compacting past the services'
    // last change does not cost a relist.
    h.api.compact();
    const lists = h.api.requests.filter((r) => !r.watch && r.path === '/api/v1/services').length;
    h.api.dropWatches();
    await until('rewatched', () => h.api.watchCount === 3);
    assert.is(h.api.requests.filter((r) => !r.watch && r.path === '/api/v1/services').length, lists);
  } finally {
    await h.close();
  }
});

test('pages lists with limit/continue and sees every object', async () => {
  const h = await harness(
    (api) => {
      for (let i = 0; i < 7; i++) api.add(svc(`s${i}`, `10.96.0.${10 + i}`, i % 2 ? 'a' : 'b'));
    },
    { pageSize: 3 },
  );
  try {
    await h.source.start();
    await until('snapshot', () => h.snapshots.length === 1);
    assert.is(last(h).services.length, 7);
    const pages = h.api.requests.filter((r) => !r.watch && r.path === '/api/v1/services');
    assert.is(pages.length, 3);
    assert.ok(pages.every((r) => r.query.get('limit') === '3'));
    assert.is(pages[0]!.query.get('continue'), null);
    assert.ok(pages[1]!.query.get('continue'));
  } finally {
    await h.close();
  }
});

test('an object the typed clients cannot decode does not stop the list, and reaches the model as sent', async () => {
  const h = await harness(
    (api) => {
      const ports = svc('ports', '10.96.0.10');
      ports.spec.ports = 42;
      const stamp = svc('stamp', '10.96.0.11');
      stamp.metadata!.creationTimestamp = 'garbage';
      const text = svc('text', '10.96.0.12');
      text.spec.ports = 'abc';
      for (const o of [ports, stamp, text, svc('ok', '10.96.0.13')]) api.add(o);
    },
    { pageSize: 2 },
  );
  try {
    assert.ok(await Promise.race([h.source.start().then(() => true), sleep(3000).then(() => false)]), 'synced');
    await until('snapshot', () => h.snapshots.length === 1);
    assert.equal(h.errors, []);
    const byName = new Map(last(h).services.map((s) => [s.metadata?.name, s as unknown as KubeObject]));
    assert.equal([...byName.keys()].sort(), ['ok', 'ports', 'stamp', 'text']);
    assert.is(byName.get('ports')!.spec.ports, 42);
    assert.is(byName.get('stamp')!.metadata!.creationTimestamp, 'garbage');
    assert.is(byName.get('text')!.spec.ports, 'abc', 'not reshaped into three empty ports');
  } finally {
    await h.close();
  }
});

test('a 410 mid-watch (ERROR event) leads to a relist that converges, deletions included', async () => {
  const h = await harness((api) => {
    api.add(svc('keep', '10.96.0.10'));
    api.add(svc('gone', '10.96.0.11'));
  });
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    // A slow watcher: changes stop reaching it, then the server expires its watch.
    h.api.stallWatches();
    h.api.remove(svc('gone', '10.96.0.11'));
    h.api.add(svc('new', '10.96.0.12'));
    const keep = svc('keep', '10.96.0.10');
    keep.spec.ports[0].port = 81;
    h.api.modify(keep);
    h.api.compact();
    await sleep(50);
    assert.equal(names(last(h).services), ['default/gone', 'default/keep'], 'nothing seen while stalled');
    const lists = h.api.requests.filter((r) => !r.watch && r.path === '/api/v1/services').length;
    h.api.expireWatches();
    await until('converged', () => names(last(h).services).join() === 'default/keep,default/new');
    assert.is(last(h).services.find((s) => s.metadata?.name === 'keep')?.spec?.ports?.[0]?.port, 81);
    assert.ok(h.api.requests.filter((r) => !r.watch && r.path === '/api/v1/services').length > lists, 'relisted');
  } finally {
    await h.close();
  }
});

test('an HTTP 410 on reconnect (resourceVersion compacted away) relists', async () => {
  const h = await harness((api) => api.add(svc('web', '10.96.0.10')));
  try {
    h.api.goneMode = 'http';
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    h.api.stallWatches();
    h.api.add(svc('db', '10.96.0.11'));
    h.api.compact();
    h.api.dropWatches();
    await until('converged', () => last(h).services.length === 2);
    assert.ok(h.api.requests.some((r) => r.watch && r.path === '/api/v1/services' && r.query.get('resourceVersion') !== ''));
  } finally {
    await h.close();
  }
});

test('API server away: old snapshot stays in force, then converges to the changed objects', async () => {
  const h = await harness((api) => {
    api.add(svc('web', '10.96.0.10'));
    api.add(svc('db', '10.96.0.11'));
    api.add(slice('web-abc', 'web'));
    api.add(fixture('node'));
  });
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    const before = h.snapshots.length;
    await h.api.stop();
    await until('errors reported', () => h.errors.length >= 3);
    // Meanwhile the objects change (e.g. the control plane restarted with a restored etcd).
    h.api.remove(svc('db', '10.96.0.11'));
    h.api.add(svc('cache', '10.96.0.12'));
    h.api.compact();
    await sleep(150);
    assert.is(h.snapshots.length, before, 'no snapshot while away');
    assert.equal(names(h.source.snapshot().services), ['default/db', 'default/web'], 'old objects kept');
    assert.ok(h.source.snapshot().node.addresses.length > 0);
    assert.ok(h.errors.every((e) => e.message.startsWith('kubernetes: ')));

    await h.api.restart();
    await until('converged', () => names(last(h).services).join() === 'default/cache,default/web', 5000);
    assert.equal(names(last(h).slices), ['default/web-abc']);
    assert.is(last(h).node.zone, 'zone-a');
    assert.ok(last(h).services.length > 0 && h.snapshots.slice(before).every((s) => s.services.length > 0));
    await until('watches reopen', () => h.api.watchCount === 3);
  } finally {
    await h.close();
  }
});

test('API server away and back with history kept: the watch resumes without a relist', async () => {
  const h = await harness((api) => api.add(svc('web', '10.96.0.10')));
  try {
    await h.source.start();
    await until('watches open', () => h.api.watchCount === 3);
    const lists = h.api.requests.filter((r) => !r.watch).length;
    await h.api.stop();
    h.api.add(svc('db', '10.96.0.11'));
    await h.api.restart();
    await until('converged', () => last(h).services.length === 2, 5000);
    assert.is(h.api.requests.filter((r) => !r.watch).length, lists, 'no relist');
  } finally {
    await h.close();
  }
});

test('start() waits through list failures with backoff; nothing is emitted before all have listed', async () => {
  const h = await harness((api) => {
    api.add(svc('web', '10.96.0.10'));
    api.failLists(4, 503);
  });
  try {
    await h.source.start();
    assert.ok(h.errors.length >= 4, `errors: ${h.errors.length}`);
    assert.match(h.errors[0]!.message, /HTTP 503/);
    await until('snapshot', () => h.snapshots.length === 1);
    assert.is(last(h).services.length, 1);
  } finally {
    await h.close();
  }
});

test('stop() before sync resolves start() and leaves no watch open', async () => {
  const h = await harness((api) => api.failLists(1000, 500));
  const started = h.source.start();
  await until('an error', () => h.errors.length > 0);
  await h.source.stop();
  await started;
  assert.is(h.snapshots.length, 0);
  await h.close();
});

test('credentials that cannot be applied are errors retried with backoff, not a crash', async () => {
  const api = new FakeApiServer();
  await api.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-k8s-'));
  const file = path.join(dir, 'kubeconfig');
  fs.writeFileSync(
    file,
    api
      .kubeconfig()
      .replace(
        /user:\n {4}token: .*\n/,
        'user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/false\n',
      ),
  );
  const errors: Error[] = [];
  const source = new KubernetesSource({
    nodeName: 'node-a',
    kubeconfigPath: file,
    backoff: FAST,
    onChange: () => {},
    onError: (e) => errors.push(e),
  });
  try {
    const started = source.start();
    await until('retries', () => errors.length >= 6);
    assert.not.ok(source.synced);
    await source.stop();
    await started;
  } finally {
    await source.stop();
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loadKubeConfig names the missing file and refuses a missing in-cluster environment', () => {
  assert.throws(() => loadKubeConfig('/nonexistent/kubeconfig'), /\/nonexistent\/kubeconfig does not exist/);
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    assert.throws(() => loadKubeConfig(), /KUBERNETES_SERVICE_HOST/);
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});

test('options are checked up front', () => {
  const ok = { nodeName: 'n', onChange: () => {}, kubeConfig: loadKubeConfigFromText() };
  assert.throws(() => new KubernetesSource({ ...ok, nodeName: '' }), TypeError);
  assert.throws(() => new KubernetesSource({ ...ok, onChange: undefined as never }), TypeError);
  assert.throws(() => new KubernetesSource({ ...ok, backoff: { initialMs: 100, maxMs: 10 } }), RangeError);
  assert.throws(() => new KubernetesSource({ ...ok, pageSize: 0 }), RangeError);
});

test('nodeInfo reads zone, InternalIP/ExternalIP addresses and deletion', () => {
  assert.equal(nodeInfo('x', undefined), { name: 'x', addresses: [], deleting: false, toBeDeleted: false });
  const n = fixture('node');
  n.status.addresses.push({ type: 'InternalIP', address: 'fd00::11' }, { type: 'InternalIP', address: '192.168.56.11' });
  assert.equal(nodeInfo('node-a', n as never).addresses, ['192.168.56.11', 'fd00::11', '203.0.113.11']);
});

test('backoff doubles to its cap and jitter stays within [d/2, d]', () => {
  const b = { initialMs: 100, maxMs: 1000 };
  assert.equal(
    [0, 1, 2, 3, 4, 50].map((a) => backoffDelay(b, a)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.is(
    jittered(1000, () => 0),
    500,
  );
  assert.is(
    jittered(1000, () => 1),
    1000,
  );
});

function loadKubeConfigFromText() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-kc-'));
  try {
    const api = new FakeApiServer();
    const file = api.writeKubeconfig(dir);
    return loadKubeConfig(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test.run();
