// The debug endpoint over MemoryMaps, through fastify.inject(): every route's shape and its errors.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Layouts } from '../../../src/datapath/abi.ts';
import { buildDebugServer, checkDebugListen, parseListenAddress, startDebugServer } from '../../../src/debug/server.ts';
import type { DebugSource } from '../../../src/debug/source.ts';
import { ErrorCodes } from '../../../src/errors.ts';
import { SocklbMetrics } from '../../../src/metrics/metrics.ts';
import { fixture } from './fixture.ts';

async function get(source: DebugSource, url: string, headers: Record<string, string> = {}) {
  const app = await buildDebugServer(source, { metrics: new SocklbMetrics(source) });
  try {
    return await app.inject({ method: 'GET', url, headers });
  } finally {
    await app.close();
  }
}

function assertJsonError(res: { statusCode: number; body: string; headers: Record<string, unknown> }, status: number, code?: string): void {
  assert.is(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /application\/json/);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  assert.is(body.statusCode, status);
  assert.type(body.message, 'string');
  assert.type(body.code, 'string');
  if (code) assert.is(body.code, code);
  assert.not.match(res.body, /at .*\.ts:\d+/, 'no stack trace');
}

test('GET /v1/services lists programmed frontends by service, backends in slot order, with counters', async () => {
  const { source } = fixture();
  const res = await get(source, '/v1/services');
  assert.is(res.statusCode, 200);
  const { services } = res.json() as { services: any[] };
  assert.equal(
    services.map((s) => `${s.namespace}/${s.name}`),
    ['demo/web', 'kube-system/dns'],
  );
  const web = services[0];
  assert.equal(
    web.frontends.map((f: any) => f.frontend),
    ['TCP/10.96.0.10:80', 'TCP/[fd00:10:96::10]:80'],
  );
  const v4 = web.frontends[0];
  assert.is(v4.portName, 'http');
  assert.is(v4.backendCount, 3);
  assert.is(v4.connects, 10);
  assert.is(v4.refused, 1);
  assert.equal(
    v4.backends.map((b: any) => b.slot),
    [1, 2, 3],
  );
  assert.equal(v4.backends.map((b: any) => b.backend).sort(), ['TCP/10.244.0.11:8080', 'TCP/10.244.0.12:8080', 'TCP/10.244.0.13:8080']);
  assert.is(
    v4.backends.reduce((n: number, b: any) => n + b.connects, 0),
    10,
  );
});

test('GET /v1/services names a frontend the desired table lacks as unnamed, not dropped', async () => {
  const { source } = fixture();
  const t = source.table();
  // The table moves on (web is gone from it) while the maps still hold web: drift shows.
  const before = source.table;
  source.table = () => ({ frontends: t.frontends.filter((f) => f.service.name !== 'web'), problems: [] });
  try {
    const { services } = (await get(source, '/v1/services')).json() as { services: any[] };
    const unnamed = services.find((s) => s.name === '');
    assert.ok(unnamed);
    assert.is(unnamed.frontends.length, 2);
  } finally {
    source.table = before;
  }
});

test('GET /v1/services/:namespace/:name answers one service, 404 for an unknown one, 400 for a bad name', async () => {
  const { source } = fixture();
  const ok = await get(source, '/v1/services/kube-system/dns');
  assert.is(ok.statusCode, 200);
  assert.equal((ok.json() as any).frontends[0].frontend, 'UDP/10.96.0.53:53');
  assertJsonError(await get(source, '/v1/services/demo/nothing'), 404, 'SOCKLB_ERR_DEBUG_NOT_FOUND');
  assertJsonError(await get(source, '/v1/services/Demo/WEB'), 400, 'FST_ERR_VALIDATION');
  assertJsonError(await get(source, '/v1/services/demo'), 404);
});

test('GET /v1/maps lists every map with type, sizes, entries in use and capacity', async () => {
  const { source } = fixture();
  const res = await get(source, '/v1/maps');
  assert.is(res.statusCode, 200);
  const maps = (res.json() as { maps: any[] }).maps;
  const byName = Object.fromEntries(maps.map((m) => [m.name, m]));
  assert.ok(byName.lb4_services_v2 && byName.lb_slots_v1 && byName.sock_stats_v1 && byName.lb_be_stats_v2);
  assert.equal(byName.lb4_services_v2, {
    name: 'lb4_services_v2',
    type: 'hash',
    keySize: 8,
    valueSize: Layouts.service.size,
    maxEntries: 64,
    entries: 2,
    memoryBytes: null,
    perCpu: false,
    keyLayout: 'lb4_key',
    valueLayout: 'lb_service',
  });
  assert.is(byName.lb_slots_v1.entries, 3 + 2 + 1);
  assert.is(byName.lb4_backends_v2.entries, 4);
  assert.is(byName.lb6_backends_v2.entries, 2);
});

test('GET /v1/maps/:name decodes keys and values by field name', async () => {
  const { source } = fixture();
  const res = await get(source, '/v1/maps/lb4_services_v2');
  assert.is(res.statusCode, 200);
  const page = res.json() as any;
  assert.is(page.keyLayout, 'lb4_key');
  assert.is(page.cursor, null);
  const web = page.entries.find((e: any) => e.key.address === '10.96.0.10');
  assert.equal(web.key, { address: '10.96.0.10', dport: 80, proto: 6, scope: 0 });
  assert.equal(
    Object.keys(web.value),
    Layouts.service.fields.filter((f) => f.type !== 'pad').map((f) => f.name),
  );
  assert.is(web.value.backend_count, 3);
  const backends = (await get(source, '/v1/maps/lb4_backends_v2')).json() as any;
  assert.ok(backends.entries.some((e: any) => e.value.address === '10.244.0.21' && e.value.port === 53 && e.value.proto === 17));
});

test('GET /v1/maps/:name sums per-CPU values and lists each CPU', async () => {
  const { source } = fixture();
  const page = (await get(source, '/v1/maps/sock_stats_v1')).json() as any;
  const balanced = page.entries.find((e: any) => e.key.reason === 0);
  assert.is(page.perCpu, true);
  assert.equal(balanced.value, { count: 10 });
  assert.equal(balanced.cpus, [{ count: 10 }]);
});

test('GET /v1/maps/:name pages with an opaque cursor, without duplicates or gaps', async () => {
  const { source } = fixture(500);
  const seen = new Set<string>();
  let cursor: string | null = null;
  let pages = 0;
  do {
    const url: string = `/v1/maps/lb4_backends_v2?limit=37${cursor ? `&cursor=${cursor}` : ''}`;
    const res = await get(source, url);
    assert.is(res.statusCode, 200, res.body);
    const page = res.json() as any;
    assert.ok(page.count <= 37);
    for (const e of page.entries) {
      assert.not.ok(seen.has(String(e.key.backend_id)), `backend ${e.key.backend_id} twice`);
      seen.add(String(e.key.backend_id));
    }
    cursor = page.cursor;
    pages++;
  } while (cursor);
  assert.is(seen.size, 504);
  assert.is(pages, Math.ceil(504 / 37));
});

test('GET /v1/maps/:name rejects a bad limit or cursor and an unknown map with a JSON 4xx', async () => {
  const { source } = fixture();
  assertJsonError(await get(source, '/v1/maps/lb4_services_v2?limit=0'), 400, 'FST_ERR_VALIDATION');
  assertJsonError(await get(source, '/v1/maps/lb4_services_v2?limit=99999'), 400, 'FST_ERR_VALIDATION');
  assertJsonError(await get(source, '/v1/maps/lb4_services_v2?limit=ten'), 400, 'FST_ERR_VALIDATION');
  assertJsonError(await get(source, '/v1/maps/lb4_services_v2?cursor=***'), 400, 'FST_ERR_VALIDATION');
  assertJsonError(await get(source, '/v1/maps/lb4_services_v2?cursor=AAAA'), 400, 'SOCKLB_ERR_DEBUG_BAD_CURSOR');
  const unknown = await get(source, '/v1/maps/no_such_map');
  assertJsonError(unknown, 404, 'SOCKLB_ERR_DEBUG_NOT_FOUND');
  assert.match(unknown.body, /lb4_services_v2/, 'names the maps there are');
  assertJsonError(await get(source, '/v1/maps/..%2Fetc'), 400);
});

test('unknown paths get a JSON 404, and a failing source a JSON 500 without its message or stack', async () => {
  const { source } = fixture();
  assertJsonError(await get(source, '/v2/anything'), 404, 'SOCKLB_ERR_DEBUG_NOT_FOUND');
  const broken: DebugSource = {
    ...source,
    readback: () => {
      throw new Error('secret detail at /sys/fs/bpf/x');
    },
  };
  const res = await get(broken, '/v1/services');
  assertJsonError(res, 500, 'SOCKLB_ERR_DEBUG_INTERNAL');
  assert.not.match(res.body, /secret detail/);
});

test('GET /v1/status and /healthz say loaded, attached and in sync; /healthz is 503 when a hook is missing', async () => {
  const { source } = fixture();
  const status = (await get(source, '/v1/status')).json() as any;
  assert.is(status.healthy, true);
  assert.is(status.hooks.length, 8);
  assert.is(status.inSync, true);
  assert.is(status.frontends, 3);
  assert.is(status.objectProblems[0].code, ErrorCodes.PORT_RANGE);
  assert.type(status.lastSync, 'string');
  const health = await get(source, '/healthz');
  assert.is(health.statusCode, 200);
  assert.is((health.json() as any).status, 'ok');
  source.setAttached(false);
  const sick = await get(source, '/healthz');
  assert.is(sick.statusCode, 503);
  assert.equal((sick.json() as any).attached, false);
});

test('GET /proxyMode answers as kube-proxy does: plain text, no newline', async () => {
  const { source } = fixture();
  const res = await get(source, '/proxyMode');
  assert.is(res.statusCode, 200);
  assert.is(res.body, 'socklb');
  assert.is(res.headers['content-type'], 'text/plain; charset=utf-8');
  assert.is(res.headers['x-content-type-options'], 'nosniff');
});

test('GET /v1/config shows the settings', async () => {
  const { source } = fixture();
  const config = (await get(source, '/v1/config')).json() as any;
  assert.is(config.proxyMode, 'socklb');
  assert.is(config.node, 'node-a');
  assert.is(config.capacity.services, 64);
  assert.type(config.version, 'string');
});

test('GET /openapi.json is generated from the route schemas', async () => {
  const { source } = fixture();
  const doc = (await get(source, '/openapi.json')).json() as any;
  assert.is(doc.openapi, '3.0.3');
  for (const p of [
    '/v1/services',
    '/v1/services/{namespace}/{name}',
    '/v1/maps',
    '/v1/maps/{name}',
    '/v1/config',
    '/v1/status',
    '/healthz',
    '/proxyMode',
    '/metrics',
  ]) {
    assert.ok(doc.paths[p], `${p} documented`);
  }
  assert.not.ok(doc.paths['/openapi.json']);
  const q = doc.paths['/v1/maps/{name}'].get.parameters.map((x: any) => x.name).sort();
  assert.equal(q, ['cursor', 'limit', 'name']);
  assert.ok(doc.paths['/v1/services'].get.responses['200'].content['application/json'].schema);
  assert.ok(JSON.stringify(doc.components.schemas).includes('"backendCount"'), 'the Service schema is a component');
});

test('a token makes every route need the bearer header', async () => {
  const { source } = fixture();
  const app = await buildDebugServer(source, { metrics: new SocklbMetrics(source), token: 'correct-horse-battery-staple' });
  try {
    const none = await app.inject({ url: '/v1/services' });
    assertJsonError(none, 401, 'SOCKLB_ERR_DEBUG_UNAUTHORIZED');
    assert.is(none.headers['www-authenticate'], 'Bearer');
    assertJsonError(await app.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong' } }), 401);
    const ok = await app.inject({ url: '/v1/services', headers: { authorization: 'Bearer correct-horse-battery-staple' } });
    assert.is(ok.statusCode, 200);
  } finally {
    await app.close();
  }
});

test('listen options: loopback by default; elsewhere only with --debug-allow-remote and a token', () => {
  assert.equal(checkDebugListen({}).address, { host: '127.0.0.1', port: 10249 });
  assert.equal(checkDebugListen({ address: '[::1]:9000' }).address, { host: '::1', port: 9000 });
  const refused = (o: Parameters<typeof checkDebugListen>[0], re: RegExp) => {
    try {
      checkDebugListen(o);
      assert.unreachable('should have been refused');
    } catch (err) {
      assert.is((err as { code: string }).code, ErrorCodes.BAD_OPTION);
      assert.match((err as Error).message, re);
    }
  };
  refused({ address: '0.0.0.0:10249' }, /--debug-allow-remote/);
  refused({ address: '10.0.0.1:10249', allowRemote: true }, /--debug-token-file/);
  refused({ address: 'localhost' }, /IP:PORT/);
  refused({ address: '127.0.0.1:70000' }, /IP:PORT/);
  const dir = mkdtempSync(join(tmpdir(), 'socklb-debug-'));
  try {
    writeFileSync(join(dir, 'short'), 'abc\n');
    refused({ address: '0.0.0.0:1', allowRemote: true, tokenFile: join(dir, 'short') }, /at least 16/);
    refused({ tokenFile: join(dir, 'missing') }, /missing/);
    writeFileSync(join(dir, 'token'), 'a-long-enough-token-0123456789\n');
    const ok = checkDebugListen({ address: '0.0.0.0:10249', allowRemote: true, tokenFile: join(dir, 'token') });
    assert.is(ok.token, 'a-long-enough-token-0123456789');
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.equal(parseListenAddress('[fd00::1]:80'), { host: 'fd00::1', port: 80 });
});

test('startDebugServer refuses a non-loopback bind without a token before binding', async () => {
  const { source } = fixture();
  try {
    await startDebugServer(source, { address: '0.0.0.0:0' });
    assert.unreachable('should have been refused');
  } catch (err) {
    assert.is((err as { code: string }).code, ErrorCodes.BAD_OPTION);
  }
  const { server, url } = await startDebugServer(source, { address: '127.0.0.1:0' });
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.is(await (await fetch(`${url}/proxyMode`)).text(), 'socklb');
  } finally {
    await server.close();
  }
});

test.run();
