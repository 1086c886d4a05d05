// /metrics over MemoryMaps: counters read from the maps at scrape time, latencies the agent observes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MapNames } from '../../../src/datapath/abi.ts';
import type { MapView } from '../../../src/debug/map-views.ts';
import { memorySource } from '../../../src/debug/memory-source.ts';
import { buildDebugServer } from '../../../src/debug/server.ts';
import type { DebugSource } from '../../../src/debug/source.ts';
import { ErrorCodes } from '../../../src/errors.ts';
import { SocklbMetrics } from '../../../src/metrics/metrics.ts';
import { CAPACITY, CountingMaps, fixture, table } from './fixture.ts';

/** The value of one sample line, by metric name and exact label text. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

test('/metrics serves per-frontend connects, and per-backend ones only with the per-backend option', async () => {
  const { source, maps } = fixture();
  const web = 'namespace="demo",service="web",port_name="http",frontend="TCP/10.96.0.10:80"';
  const plain = await buildDebugServer(source, { metrics: new SocklbMetrics(source) });
  const perBackend = await buildDebugServer(source, { metrics: new SocklbMetrics(source, { perBackend: true }) });
  try {
    const res = await plain.inject({ url: '/metrics' });
    assert.is(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.is(sample(res.body, 'socklb_service_connects_total', web), 10);
    assert.is(sample(res.body, 'socklb_service_refused_total', web), 1);
    assert.not.match(res.body, /socklb_backend_connects_total/, 'no per-backend series unless asked for');

    const withBackends = (await perBackend.inject({ url: '/metrics' })).body;
    assert.is(sample(withBackends, 'socklb_service_connects_total', web), 10);
    assert.is(sample(withBackends, 'socklb_backend_connects_total', 'backend="TCP/10.244.0.11:8080"'), 5);
    assert.is(sample(withBackends, 'socklb_backend_connects_total', 'backend="TCP/10.244.0.13:8080"'), 2);
    // One series per programmed backend: web's 3 IPv4 and 2 IPv6 pods, dns's one.
    assert.is([...withBackends.matchAll(/^socklb_backend_connects_total\{/gm)].length, 6);

    // A later scrape reads the counters again, not a cached copy.
    const id = [...maps.backendCounts.keys()][0]!;
    maps.backendCounts.set(id, 50n);
    maps.services.set(source.programmed().services.get('TCP/10.96.0.10:80')!.serviceId, { connects: 1099511627783n, refused: 1n });
    const again = (await perBackend.inject({ url: '/metrics' })).body;
    assert.is(sample(again, 'socklb_backend_connects_total', 'backend="TCP/10.244.0.11:8080"'), 50);
    assert.match(again, `\nsocklb_service_connects_total{${web}} 1099511627783\n`);
  } finally {
    await plain.close();
    await perBackend.close();
  }
});

/**
 * The fixture's source, with every map read counted: pages and full counts per map name, and each
 * use of the map readback (a dump, a lookup per service or backend).
 */
function countingSource(source: DebugSource) {
  const pages = new Map<string, number>();
  const counted = new Map<string, number>();
  const readback: string[] = [];
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const wrapped: DebugSource = {
    ...source,
    maps: () =>
      source.maps().map(
        (view): MapView => ({
          name: view.name,
          key: view.key,
          value: view.value,
          info: () => view.info(),
          summary: () => {
            bump(counted, view.name);
            return view.summary();
          },
          page: (cursor, limit) => {
            bump(pages, view.name);
            return view.page(cursor, limit);
          },
        }),
      ),
    readback: () => {
      const maps = source.readback();
      return new Proxy(maps, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (typeof v !== 'function') return v;
          return (...args: unknown[]) => {
            readback.push(String(prop));
            return v.apply(target, args);
          };
        },
      });
    },
  };
  return { wrapped, pages, counted, readback };
}

test('a scrape reads the service counters and sock_stats in pages, and no service, slot or backend map', async () => {
  const { source } = fixture(500);
  for (const perBackend of [false, true]) {
    const c = countingSource(source);
    const text = await new SocklbMetrics(c.wrapped, { perBackend }).metrics();
    assert.is(
      sample(text, 'socklb_service_connects_total', 'namespace="demo",service="web",port_name="http",frontend="TCP/10.96.0.10:80"'),
      10,
    );
    assert.equal(c.readback, [], 'no dump of the service maps, no lookup per service or backend');
    assert.equal([...c.counted.keys()], [], 'no map is walked to count its entries');
    const want = perBackend
      ? [MapNames.backendStats, MapNames.serviceStats, MapNames.sockStats]
      : [MapNames.serviceStats, MapNames.sockStats];
    assert.equal([...c.pages.keys()].sort(), want.sort());
    for (const n of c.pages.values()) assert.is(n, 1, 'each counter map in one page (4096 entries) here');
    // Entries of the agent's own maps come from what it programmed: 2 IPv4 frontends, 503 + 1 IPv4 backends.
    assert.is(sample(text, 'socklb_map_entries', `map="${MapNames.lb4Services}"`), 2);
    assert.is(sample(text, 'socklb_map_entries', `map="${MapNames.lb4Backends}"`), 504);
    assert.is(sample(text, 'socklb_map_entries', `map="${MapNames.slots}"`), 506);
    assert.is(sample(text, 'socklb_map_entries', `map="${MapNames.lb6Backends}"`), 2);
  }
  // Backends removed by a sync leave the count too.
  source.sync(table());
  const after = await new SocklbMetrics(source).metrics();
  assert.is(sample(after, 'socklb_map_entries', `map="${MapNames.lb4Backends}"`), 4);
  assert.is(sample(after, 'socklb_map_entries', `map="${MapNames.slots}"`), 6);
});

test('scrapes at once and one after another all get the whole text: reused chunks never mix replies', async () => {
  // 5,000 backends of their own, so the per-backend family spans several 64 KiB chunks.
  const source = memorySource(new CountingMaps({ ...CAPACITY, slots: 16384, backends: 8192, backendIds: 16385 }));
  source.sync(table(5000));
  const metrics = new SocklbMetrics(source, { perBackend: true });
  const app = await buildDebugServer(source, { metrics });
  try {
    const want = await metrics.metrics();
    assert.ok(want.length > 4 * 65536, `${want.length} bytes: several chunks`);
    const together = await Promise.all([1, 2, 3].map(() => app.inject({ url: '/metrics' })));
    for (const res of together) assert.is(res.body, want);
    for (let i = 0; i < 3; i++) assert.is((await app.inject({ url: '/metrics' })).body, want);
  } finally {
    await app.close();
  }
});

test('/metrics serves map fill, sock hook reasons, problems by reason, sync state and build info', async () => {
  const { source } = fixture();
  const metrics = new SocklbMetrics(source);
  const text = await metrics.metrics();
  assert.is(sample(text, 'socklb_map_entries', 'map="lb4_services_v2"'), 2);
  assert.is(sample(text, 'socklb_map_max_entries', 'map="lb_slots_v1"'), 4096);
  assert.is(sample(text, 'socklb_sock_hook_total', 'reason="balanced"'), 10);
  assert.is(sample(text, 'socklb_sock_hook_total', 'reason="not_service"'), 42);
  assert.is(sample(text, 'socklb_sock_hook_total', 'reason="reverse_full"'), 0);
  assert.is(sample(text, 'socklb_rejected_objects', `reason="${ErrorCodes.PORT_RANGE}"`), 1);
  assert.is(sample(text, 'socklb_in_sync'), 1);
  assert.ok(sample(text, 'socklb_sync_proxy_rules_last_timestamp_seconds')! > 1.7e9);
  assert.match(text, /socklb_build_info\{version="\d+\.\d+\.\d+",abi_version="2",node_version="v\d+[^"]*"\} 1/);
});

test('observeSync and observeProgramming fill the kube-proxy style histograms and error counter', async () => {
  const { source } = fixture();
  const metrics = new SocklbMetrics(source);
  metrics.observeSync(0.003);
  metrics.observeSync(0.02, [{ code: ErrorCodes.MAP_FULL }, { code: ErrorCodes.MAP_FULL }]);
  const now = new Date('2025-01-01T00:00:02.500Z');
  metrics.observeProgramming(new Date('2025-01-01T00:00:00Z'), now);
  metrics.observeProgramming(new Date('2025-01-01T00:00:05Z'), now); // a trigger time in the future (clock skew): ignored
  const text = await metrics.metrics();
  assert.is(sample(text, 'socklb_sync_proxy_rules_duration_seconds_count'), 2);
  assert.is(sample(text, 'socklb_sync_proxy_rules_duration_seconds_bucket', 'le="0.004"'), 1);
  assert.is(sample(text, 'socklb_sync_proxy_rules_errors_total', `reason="${ErrorCodes.MAP_FULL}"`), 2);
  assert.is(sample(text, 'socklb_network_programming_duration_seconds_count'), 1);
  assert.is(sample(text, 'socklb_network_programming_duration_seconds_sum'), 2.5);
  assert.is(sample(text, 'socklb_network_programming_duration_seconds_bucket', 'le="2"'), 0);
  assert.is(sample(text, 'socklb_network_programming_duration_seconds_bucket', 'le="3"'), 1);
});

test('reconcile errors are reported by reason from the last reconcile', async () => {
  const { source } = fixture();
  // 5,000 backends do not fit the fixture's 1,024-entry backend map: web's IPv4 frontend is refused.
  const table = source.table();
  const big = table.frontends.map((f) =>
    f.frontend.address === '10.96.0.10'
      ? { ...f, backends: Array.from({ length: 1100 }, (_, i) => ({ ...f.backends[0]!, address: `10.245.${i >> 8}.${i & 255}` })) }
      : f,
  );
  source.sync({ ...table, frontends: big });
  const text = await new SocklbMetrics(source).metrics();
  assert.is(sample(text, 'socklb_reconcile_errors', `reason="${ErrorCodes.MAP_FULL}"`), 1);
});

test.run();
