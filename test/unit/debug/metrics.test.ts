// /metrics over MemoryMaps: counters read from the maps at scrape time, latencies the agent observes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildDebugServer } from '../../../src/debug/server.ts';
import { ErrorCodes } from '../../../src/errors.ts';
import { SocklbMetrics } from '../../../src/metrics/metrics.ts';
import { fixture } from './fixture.ts';

/** The value of one sample line, by metric name and exact label text. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

test('/metrics serves per-frontend and per-backend connects read from the maps at scrape time', async () => {
  const { source, maps } = fixture();
  const metrics = new SocklbMetrics(source);
  const app = await buildDebugServer(source, { metrics });
  try {
    const res = await app.inject({ url: '/metrics' });
    assert.is(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const web = 'namespace="demo",service="web",port_name="http",frontend="TCP/10.96.0.10:80"';
    assert.is(sample(res.body, 'socklb_service_connects_total', web), 10);
    assert.is(sample(res.body, 'socklb_service_refused_total', web), 1);
    assert.is(sample(res.body, 'socklb_backend_connects_total', 'backend="TCP/10.244.0.11:8080"'), 5);
    assert.is(sample(res.body, 'socklb_backend_connects_total', 'backend="TCP/10.244.0.13:8080"'), 2);

    // A later scrape reads the counters again, not a cached copy.
    const id = [...maps.backendCounts.keys()][0]!;
    maps.backendCounts.set(id, 50n);
    const again = (await app.inject({ url: '/metrics' })).body;
    assert.is(sample(again, 'socklb_backend_connects_total', 'backend="TCP/10.244.0.11:8080"'), 50);
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
