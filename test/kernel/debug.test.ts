// The debug endpoint over a real loaded agent in a netns lab: counters add up, map dumps agree
// with bpftool, paging walks a large map exactly once, and an exposed bind without a token fails.

import { execFileSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from '../../src/agent/agent.ts';
import { cleanup, DEFAULT_CAPACITY } from '../../src/agent/datapath.ts';
import { BpfMap } from '../../src/bpf/binding.ts';
import { encode, Layouts } from '../../src/datapath/abi.ts';
import { BpfMapView } from '../../src/debug/map-views.ts';
import { buildDebugServer, startDebugServer } from '../../src/debug/server.ts';
import { agentSource, type DebugSource } from '../../src/debug/source.ts';
import { ErrorCodes } from '../../src/errors.ts';
import { NetnsLab } from '../../src/lab/netns-lab.ts';
import { SocklbMetrics } from '../../src/metrics/metrics.ts';
import { parseManifest } from '../../src/sources/manifest.ts';

const VIP = '10.96.0.10';
const CONNECTS = 90;

let lab: NetnsLab;
let agent: Agent;
let bpffs: string;
let source: DebugSource;
let app: FastifyInstance;

function manifest(pods: string[]): string {
  return `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: ${VIP}
  clusterIPs: ["${VIP}"]
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: demo, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${pods.map((p) => `- {addresses: ["${p}"], conditions: {ready: true}}`).join('\n')}
`;
}

test.before(async () => {
  const prefix = NetnsLab.uniquePrefix('dbg');
  bpffs = `/sys/fs/bpf/${prefix}`;
  lab = await NetnsLab.create({ prefix, backends: 3, ipv6: false });
  for (const pod of lab.pods) await lab.startServer(pod.index, { tcp: [8080] });
  agent = await Agent.create({
    bpffs,
    cgroup: lab.cgroupPath,
    capacity: { ...DEFAULT_CAPACITY, services: 1024, slots: 4096, backends: 1024, serviceIds: 2049, backendIds: 2049 },
    reverseEntries: 4096,
    node: { name: 'debug-node' },
    log: pino({ level: 'silent' }),
    minSyncPeriodMs: 0,
  });
  const parsed = parseManifest(manifest(lab.pods.map((p) => p.ipv4)), 'debug.yaml');
  agent.update(parsed);
  await agent.whenSynced();
  source = agentSource(agent, { config: { node: 'debug-node' } });
  app = await buildDebugServer(source, { metrics: new SocklbMetrics(source, { perBackend: true }) });
});

test.after(async () => {
  await app?.close();
  await agent?.close();
  if (bpffs) cleanup(bpffs);
  await lab?.destroy();
});

test('after N connects through the ClusterIP, /v1/services and /metrics counters add up to N', async () => {
  const probe = await lab.runProbe(['connect-only', '--target', `${VIP}:80`, '--count', String(CONNECTS)]);
  assert.is(probe.ok, CONNECTS, JSON.stringify(probe));

  const res = await app.inject({ url: '/v1/services/demo/web' });
  assert.is(res.statusCode, 200, res.body);
  const web = res.json() as { frontends: { frontend: string; connects: number; backends: { backend: string; connects: number }[] }[] };
  const f = web.frontends[0]!;
  assert.is(f.frontend, `TCP/${VIP}:80`);
  assert.is(f.backends.length, 3);
  assert.is(f.connects, CONNECTS);
  assert.is(
    f.backends.reduce((n, b) => n + b.connects, 0),
    CONNECTS,
  );
  assert.ok(
    f.backends.every((b) => b.connects > 0),
    'every backend got some',
  );

  const text = (await app.inject({ url: '/metrics' })).body;
  const perBackend = [...text.matchAll(/^socklb_backend_connects_total\{backend="([^"]+)"\} (\d+)$/gm)];
  assert.is(perBackend.length, 3);
  assert.is(
    perBackend.reduce((n, m) => n + Number(m[2]), 0),
    CONNECTS,
  );
  for (const b of f.backends) {
    assert.ok(
      perBackend.some((m) => m[1] === b.backend && Number(m[2]) === b.connects),
      `${b.backend} agrees`,
    );
  }
  assert.match(
    text,
    new RegExp(
      `socklb_service_connects_total\\{namespace="demo",service="web",port_name="http",frontend="TCP/${VIP.replace(/\./g, '\\.')}:80"\\} ${CONNECTS}\\n`,
    ),
  );
  const balanced = Number(/^socklb_sock_hook_total\{reason="balanced"\} (\d+)$/m.exec(text)?.[1]);
  assert.ok(balanced >= CONNECTS, `sock_stats balanced ${balanced}`);
});

test('a /metrics scrape reads only the counter maps of its series, in batches, from the real maps', async () => {
  const names = new Map<BpfMap, string>(Object.entries(agent.datapath.maps).map(([name, map]) => [map, name]));
  const reads = new Set<string>();
  const proto = BpfMap.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const saved = { lookupBatch: proto.lookupBatch!, lookup: proto.lookup!, keys: proto.keys! };
  for (const [method, real] of Object.entries(saved)) {
    proto[method] = function (this: BpfMap, ...args: unknown[]) {
      reads.add(`${method} ${names.get(this) ?? 'another map'}`);
      return real.apply(this, args);
    };
  }
  try {
    await new SocklbMetrics(source).metrics();
    assert.equal([...reads].sort(), ['lookupBatch lb_svc_stats_v2', 'lookupBatch sock_stats_v1']);
    reads.clear();
    await new SocklbMetrics(source, { perBackend: true }).metrics();
    assert.equal([...reads].sort(), ['lookupBatch lb_be_stats_v2', 'lookupBatch lb_svc_stats_v2', 'lookupBatch sock_stats_v1']);
  } finally {
    Object.assign(proto, saved);
  }
});

test('/v1/status and /healthz report the real datapath loaded, attached and in sync', async () => {
  const status = (await app.inject({ url: '/v1/status' })).json() as {
    healthy: boolean;
    attached: boolean;
    hooks: { attached: boolean }[];
    inSync: boolean;
  };
  assert.is(status.healthy, true);
  assert.is(status.hooks.length, 8);
  assert.ok(status.hooks.every((h) => h.attached));
  assert.is(status.inSync, true);
  assert.is((await app.inject({ url: '/healthz' })).statusCode, 200);
  const maps = (await app.inject({ url: '/v1/maps' })).json() as {
    maps: { name: string; entries: number; maxEntries: number; memoryBytes: number | null }[];
  };
  const backends = maps.maps.find((m) => m.name === 'lb4_backends_v2')!;
  assert.is(backends.entries, 3);
  assert.is(backends.maxEntries, 1024);
  assert.ok((backends.memoryBytes ?? 0) > 0, 'memory from fdinfo');
});

/** bpftool's BTF-formatted dump of a pinned map. */
function bpftool(
  map: string,
): { formatted: { key: unknown; value?: Record<string, number>; values?: { cpu: number; value: Record<string, number> }[] } }[] {
  const out = execFileSync('bpftool', ['map', 'dump', 'pinned', `${bpffs}/maps/${map}`, '-j'], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** A __be32 as BTF prints it (the u32 the bytes make in host order) back to dotted quad. */
function be32ToIp(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return [...b].join('.');
}

function be16(n: number): number {
  return ((n & 0xff) << 8) | (n >> 8);
}

test('/v1/maps/:name decodes the same entries bpftool map dump shows', async () => {
  const ours = (await app.inject({ url: '/v1/maps/lb4_backends_v2?limit=1000' })).json() as {
    entries: { key: { backend_id: number }; value: Record<string, number | string> }[];
  };
  const theirs = bpftool('lb4_backends_v2').map((e) => ({
    key: { backend_id: e.formatted.key as number },
    value: {
      address: be32ToIp(e.formatted.value!.address!),
      port: be16(e.formatted.value!.port!),
      proto: e.formatted.value!.proto!,
      flags: e.formatted.value!.flags!,
      node_address: be32ToIp(e.formatted.value!.node_address!),
    },
  }));
  const sort = <T extends { key: { backend_id: number } }>(a: T[]) => [...a].sort((x, y) => x.key.backend_id - y.key.backend_id);
  assert.is(theirs.length, 3);
  assert.equal(sort(ours.entries), sort(theirs));

  const services = (await app.inject({ url: '/v1/maps/lb4_services_v2' })).json() as {
    entries: { key: Record<string, unknown>; value: Record<string, unknown> }[];
  };
  const svc = bpftool('lb4_services_v2').map((e) => {
    const k = e.formatted.key as Record<string, number>;
    const { pad, ...value } = e.formatted.value as Record<string, unknown>;
    return { key: { address: be32ToIp(k.address!), dport: be16(k.dport!), proto: k.proto, scope: k.scope }, value };
  });
  assert.equal(services.entries, svc);

  // Per-CPU: bpftool lists each CPU; we list them too, and their sum.
  const stats = (await app.inject({ url: '/v1/maps/sock_stats_v1?limit=100' })).json() as {
    entries: { key: { reason: number }; value: { count: number }; cpus: { count: number }[] }[];
  };
  const dumped = bpftool('sock_stats_v1');
  assert.is(stats.entries.length, dumped.length);
  for (const e of dumped) {
    const mine = stats.entries.find((s) => s.key.reason === e.formatted.key)!;
    const perCpu = e.formatted.values!.map((v) => (v.value as unknown as number) ?? 0);
    assert.equal(
      mine.cpus.map((c) => c.count),
      perCpu,
    );
    assert.is(
      mine.value.count,
      perCpu.reduce((n, v) => n + v, 0),
    );
  }

  // The per-service counters are one shared copy (no per-CPU memory), as bpftool shows.
  const svcStats = (await app.inject({ url: '/v1/maps/lb_be_stats_v2?limit=5000' })).json() as {
    entries: { key: { backend_id: number }; value: { connects: number } }[];
  };
  for (const e of bpftool('lb_be_stats_v2')) {
    const mine = svcStats.entries.find((s) => s.key.backend_id === e.formatted.key)!;
    assert.is(mine.value.connects, e.formatted.value!.connects);
  }
});

test('paging walks a 20,000-entry hash map once: no duplicates, no gaps', async () => {
  const COUNT = 20_000;
  const scratch = BpfMap.create({ type: 'hash', keySize: 16, valueSize: 8, maxEntries: COUNT, name: 'slb_dbg_page' });
  try {
    const keys = Buffer.alloc(COUNT * 16);
    const values = Buffer.alloc(COUNT * 8);
    for (let i = 0; i < COUNT; i++) {
      encode(Layouts.lb4ReverseKey, {
        cookie: BigInt(i + 1),
        address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        port: 1000 + (i % 50000),
      }).copy(keys, i * 16);
      encode(Layouts.lb4Reverse, { address: '10.96.0.10', port: 80 }).copy(values, i * 8);
    }
    scratch.updateBatch(keys, values);
    const view = new BpfMapView('slb_dbg_page', scratch, { key: Layouts.lb4ReverseKey, value: Layouts.lb4Reverse });
    const paged = await buildDebugServer({ ...source, maps: () => [view] });
    try {
      const seen = new Set<string>();
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/v1/maps/slb_dbg_page?limit=1000${cursor ? `&cursor=${cursor}` : ''}`;
        const res = await paged.inject({ url });
        assert.is(res.statusCode, 200, res.body);
        const page = res.json() as { count: number; entries: { key: { cookie: number } }[]; cursor: string | null };
        for (const e of page.entries) {
          assert.not.ok(seen.has(String(e.key.cookie)), `cookie ${e.key.cookie} twice`);
          seen.add(String(e.key.cookie));
        }
        cursor = page.cursor;
        pages++;
        assert.ok(pages < 100, 'the walk ends');
      } while (cursor);
      assert.is(seen.size, COUNT);
      for (let i = 1; i <= COUNT; i++) assert.ok(seen.has(String(i)), `cookie ${i} seen`);
      assert.ok(pages >= 20, `${pages} pages of at most about 1000`);
      const maps = (await paged.inject({ url: '/v1/maps' })).json() as { maps: { entries: number }[] };
      assert.is(maps.maps[0]!.entries, COUNT);
    } finally {
      await paged.close();
    }
  } finally {
    scratch.close();
  }
});

test('a non-loopback bind without a token is refused at start, before binding', async () => {
  for (const address of ['0.0.0.0:10249', `${lab.nodeAddress.ipv4}:10249`]) {
    try {
      await startDebugServer(source, { address });
      assert.unreachable(`${address} should be refused`);
    } catch (err) {
      assert.is((err as { code: string }).code, ErrorCodes.BAD_OPTION);
      assert.match((err as Error).message, /--debug-allow-remote/);
    }
  }
  try {
    await startDebugServer(source, { address: '0.0.0.0:10249', allowRemote: true });
    assert.unreachable('should be refused without a token');
  } catch (err) {
    assert.match((err as Error).message, /--debug-token-file/);
  }
});

test.run();
