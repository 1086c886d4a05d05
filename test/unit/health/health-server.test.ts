import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../../../src/errors.ts';
import { HealthServer, parseAddress } from '../../../src/health/health-server.ts';
import { serviceHealthResponse } from '../../../src/health/service-health.ts';

function clock(start = Date.parse('2025-03-04T09:00:00Z')) {
  const c = { t: start, now: () => c.t };
  return c;
}

async function get(port: number, path = '/', method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A free port on 127.0.0.1 (bound and released). */
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Asserts that nothing listens on the port any more. */
async function refused(port: number): Promise<void> {
  const err = await get(port).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e,
  );
  assert.is(err?.code, 'ECONNREFUSED', `port ${port} should be closed`);
}

const web = { namespace: 'default', name: 'web' };
const db = { namespace: 'prod', name: 'db' };

test('healthz/livez: 200 with kube-proxy fields while nothing is queued; lastUpdated reads as now', async () => {
  const c = clock();
  const h = new HealthServer({ address: '127.0.0.1:0', now: c.now });
  try {
    for (const path of ['/healthz', '/livez']) {
      const r = await h.app.inject({ method: 'GET', url: path });
      assert.is(r.statusCode, 200, path);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.is(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(JSON.parse(r.body), {
        lastUpdated: '2025-03-04T09:00:00.000Z',
        currentTime: '2025-03-04T09:00:00.000Z',
        nodeEligible: true,
      });
    }
  } finally {
    await h.close();
  }
});

test('a queued change that waits longer than the timeout makes both 503; a sync heals', async () => {
  const c = clock();
  const h = new HealthServer({ address: '127.0.0.1:0', healthTimeoutMs: 1000, now: c.now });
  try {
    h.updated();
    c.t += 5000;
    h.queuedUpdate();
    c.t += 999;
    assert.is((await h.app.inject({ url: '/healthz' })).statusCode, 200, 'still within the bound');
    h.queuedUpdate(); // a later change does not restart the clock
    c.t += 1;
    for (const path of ['/healthz', '/livez']) {
      const r = await h.app.inject({ url: path });
      assert.is(r.statusCode, 503, path);
      const body = JSON.parse(r.body);
      assert.is(body.lastUpdated, '2025-03-04T09:00:00.000Z', 'the real last sync when unhealthy');
      assert.is(body.currentTime, '2025-03-04T09:00:06.000Z');
    }
    assert.not.ok(h.isHealthy());
    h.updated();
    assert.is((await h.app.inject({ url: '/livez' })).statusCode, 200);
    // Long idle with nothing queued is healthy.
    c.t += 3_600_000;
    assert.is((await h.app.inject({ url: '/healthz' })).statusCode, 200);
  } finally {
    await h.close();
  }
});

test('never synced and overdue: lastUpdated is the zero time', async () => {
  const c = clock();
  const h = new HealthServer({ address: '127.0.0.1:0', healthTimeoutMs: 10, now: c.now });
  try {
    h.queuedUpdate();
    c.t += 10;
    const r = await h.app.inject({ url: '/healthz' });
    assert.is(r.statusCode, 503);
    assert.is(JSON.parse(r.body).lastUpdated, '0001-01-01T00:00:00.000Z');
  } finally {
    await h.close();
  }
});

test('a node being deleted: /healthz 503 with nodeEligible false, /livez stays 200', async () => {
  const h = new HealthServer({ address: '127.0.0.1:0' });
  try {
    h.syncNode({ deleting: true });
    let r = await h.app.inject({ url: '/healthz' });
    assert.is(r.statusCode, 503);
    assert.is(JSON.parse(r.body).nodeEligible, false);
    assert.is((await h.app.inject({ url: '/livez' })).statusCode, 200);
    h.syncNode({ deleting: false, toBeDeleted: true });
    assert.is((await h.app.inject({ url: '/healthz' })).statusCode, 503, 'autoscaler taint');
    h.syncNode({ deleting: false, toBeDeleted: false });
    r = await h.app.inject({ url: '/healthz' });
    assert.is(r.statusCode, 200);
    assert.is(JSON.parse(r.body).nodeEligible, true);
  } finally {
    await h.close();
  }
});

test('listens for real on 127.0.0.1 and closes', async () => {
  const h = new HealthServer({ address: '127.0.0.1:0' });
  const { port } = await h.listen();
  try {
    const r = await get(port, '/healthz');
    assert.is(r.status, 200);
    assert.is(JSON.parse(r.body).nodeEligible, true);
    assert.is((await get(port, '/nope')).status, 404);
  } finally {
    await h.close();
  }
  await refused(port);
});

test('service health response: 200 + weight header with local endpoints, 503 without or when the proxy is unhealthy', () => {
  let r = serviceHealthResponse(web, 3, true);
  assert.is(r.status, 200);
  assert.is(r.headers['X-Load-Balancing-Endpoint-Weight'], '3');
  assert.equal(JSON.parse(r.body), { service: { namespace: 'default', name: 'web' }, localEndpoints: 3, serviceProxyHealthy: true });
  r = serviceHealthResponse(web, 0, true);
  assert.is(r.status, 503);
  assert.is(r.headers['X-Load-Balancing-Endpoint-Weight'], undefined);
  r = serviceHealthResponse(web, 2, false);
  assert.is(r.status, 503);
  assert.is(JSON.parse(r.body).serviceProxyHealthy, false);
});

test('per-service listeners answer any path; counts update in place; removed ones close', async () => {
  const c = clock();
  const h = new HealthServer({ address: '127.0.0.1:0', serviceHealthHost: '127.0.0.1', healthTimeoutMs: 1000, now: c.now });
  const [p1, p2] = [await freePort(), await freePort()];
  try {
    assert.equal(
      await h.syncHealthChecks([
        { service: web, port: p1, localEndpoints: 2 },
        { service: db, port: p2, localEndpoints: 0 },
      ]),
      [],
    );
    let r = await get(p1, '/any/path?x=1');
    assert.is(r.status, 200);
    assert.is(r.headers['x-load-balancing-endpoint-weight'], '2');
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.equal(JSON.parse(r.body), { service: web, localEndpoints: 2, serviceProxyHealthy: true });
    r = await get(p2, '/healthz', 'HEAD');
    assert.is(r.status, 503);
    r = await get(p2);
    assert.is(r.status, 503);
    assert.is(r.headers['x-load-balancing-endpoint-weight'], undefined);
    assert.equal(JSON.parse(r.body), { service: db, localEndpoints: 0, serviceProxyHealthy: true });

    // Endpoints move: same listeners, new counts.
    await h.syncHealthChecks([
      { service: web, port: p1, localEndpoints: 0 },
      { service: db, port: p2, localEndpoints: 1 },
    ]);
    assert.is((await get(p1)).status, 503);
    assert.is((await get(p2)).headers['x-load-balancing-endpoint-weight'], '1');

    // The proxy falls behind: every service check says so.
    h.queuedUpdate();
    c.t += 1000;
    r = await get(p2);
    assert.is(r.status, 503);
    assert.is(JSON.parse(r.body).serviceProxyHealthy, false);
    h.updated();

    // web goes away: its port closes, db keeps serving.
    await h.syncHealthChecks([{ service: db, port: p2, localEndpoints: 1 }]);
    await refused(p1);
    assert.is((await get(p2)).status, 200);
    assert.equal(
      h.services.listening().map((l) => `${l.service.name}:${l.port}`),
      [`db:${p2}`],
    );
  } finally {
    await h.close();
  }
  await refused(p2);
});

test('a port in use is a problem for that service alone, retried at the next sync', async () => {
  const h = new HealthServer({ address: '127.0.0.1:0', serviceHealthHost: '127.0.0.1' });
  const squatter = http.createServer((_q, s) => s.end('squatter'));
  await new Promise<void>((r) => squatter.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const taken = (squatter.address() as AddressInfo).port;
  const free = await freePort();
  try {
    const problems = await h.syncHealthChecks([
      { service: web, port: taken, localEndpoints: 1 },
      { service: db, port: free, localEndpoints: 1 },
      { service: { namespace: 'x', name: 'bad' }, port: 70000, localEndpoints: 1 },
    ]);
    assert.equal(
      problems.map((p) => [p.service.name, p.code, p.errno]),
      [
        ['bad', ErrorCodes.PORT_RANGE, undefined],
        ['web', ErrorCodes.HOST, 'EADDRINUSE'],
      ],
    );
    assert.match(problems[1]!.message, new RegExp(`default/web.*${taken}`));
    assert.equal(h.services.problems(), problems);
    assert.is((await get(free)).status, 200, 'the other service is served');
    assert.is((await get(taken)).body, 'squatter');

    // The port frees up: the next sync opens it.
    await new Promise<void>((r) => squatter.close(() => r()));
    assert.equal(
      await h.syncHealthChecks([
        { service: web, port: taken, localEndpoints: 1 },
        { service: db, port: free, localEndpoints: 1 },
      ]),
      [],
    );
    assert.is((await get(taken)).status, 200);
  } finally {
    if (squatter.listening) await new Promise<void>((r) => squatter.close(() => r()));
    await h.close();
  }
});

test('a port change moves the listener', async () => {
  const h = new HealthServer({ address: '127.0.0.1:0', serviceHealthHost: '127.0.0.1' });
  const [a, b] = [await freePort(), await freePort()];
  try {
    await h.syncHealthChecks([{ service: web, port: a, localEndpoints: 1 }]);
    await h.syncHealthChecks([{ service: web, port: b, localEndpoints: 1 }]);
    await refused(a);
    assert.is((await get(b)).status, 200);
  } finally {
    await h.close();
  }
});

test('options are checked up front', () => {
  assert.equal(parseAddress('0.0.0.0:10256'), { host: '0.0.0.0', port: 10256 });
  assert.equal(parseAddress('[::]:10256'), { host: '::', port: 10256 });
  assert.throws(() => parseAddress('10256'), RangeError);
  assert.throws(() => parseAddress('1.2.3.4:70000'), RangeError);
  assert.throws(() => new HealthServer({ healthTimeoutMs: 0 }), RangeError);
});

test.run();
