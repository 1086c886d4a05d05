// The operator commands against a debug server on loopback (port chosen by the kernel).

import { type AddressInfo, createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatTable, inspectCommand } from '../../../src/cli/inspect.ts';
import { startDebugServer } from '../../../src/debug/server.ts';
import { fixture } from './fixture.ts';

let server: FastifyInstance;
let address: string;
const { source } = fixture(0);

test.before(async () => {
  const started = await startDebugServer(source, { address: '127.0.0.1:0' });
  server = started.server;
  address = started.url.replace('http://', '');
});

test.after(async () => {
  await server.close();
});

async function run(command: string, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await inspectCommand(command, [...argv, '--address', address], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

test('formatTable pads columns and right-aligns numbers', () => {
  assert.is(
    formatTable(
      ['A', 'NUM', 'B'],
      [
        ['x', 1, 'y'],
        ['longer', 100, 'z'],
      ],
    ),
    'A        NUM   B\nx          1   y\nlonger   100   z\n',
  );
});

test('socklb services prints one aligned row per frontend', async () => {
  const r = await run('services');
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^SERVICE\s+PORT\s+FRONTEND\s+ID\s+BACKENDS\s+CONNECTS\s+REFUSED$/);
  assert.is(lines.length, 4);
  const web = lines.find((l) => l.includes('TCP/10.96.0.10:80'))!;
  assert.match(web, /^demo\/web\s+http\s+TCP\/10\.96\.0\.10:80\s+\d+\s+3\s+10\s+1$/);
  assert.is(lines[0]!.indexOf('FRONTEND'), web.indexOf('TCP/'), 'columns align');
});

test('socklb services NAMESPACE/NAME and --json answer one service; unknown ones fail with the reason', async () => {
  const one = await run('services', 'kube-system/dns', '--json');
  assert.is(one.code, 0);
  assert.is((JSON.parse(one.out) as { name: string }).name, 'dns');
  const missing = await run('services', 'demo/nothing');
  assert.is(missing.code, 1);
  assert.match(missing.err, /404 SOCKLB_ERR_DEBUG_NOT_FOUND: service demo\/nothing is not programmed/);
});

test('socklb backends lists each slot of each frontend with its connects', async () => {
  const r = await run('backends');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^FRONTEND\s+SLOT\s+BACKEND\s+ID\s+CONNECTS\s+SERVICE\n/);
  assert.match(r.out, /TCP\/10\.244\.0\.11:8080\s+\d+\s+5/);
  assert.is(r.out.trimEnd().split('\n').length, 1 + 3 + 2 + 1);
});

test('socklb maps shows fill against capacity', async () => {
  const r = await run('maps');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /lb4_services_v2\s+hash\s+8\s+\d+\s+2\s+64\s+3\.1%\s+-/);
  assert.match(r.out, /lb_svc_stats_v2\s+array\s+4\s+16\s+129\s+129\s+-\s+-/);
});

test('socklb map dump NAME decodes by field name and follows pages', async () => {
  const r = await run('map', 'dump', 'lb4_backends_v2');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^BACKEND_ID\s+ADDRESS\s+PORT\s+PROTO\s+FLAGS\s+NODE_ADDRESS\n/);
  assert.match(r.out, /4 entries in lb4_backends_v2 \(backend_id -> lb4_backend\)/);
  const limited = await run('map', 'dump', 'lb4_backends_v2', '--limit', '2');
  assert.match(limited.out, /2 entries in lb4_backends_v2 .*more with a larger --limit/);
  const bad = await run('map', 'dump', 'nope');
  assert.is(bad.code, 1);
  assert.match(bad.err, /404/);
});

test('socklb status says loaded, attached, in sync and healthy in one screen', async () => {
  const r = await run('status');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /Health:\s+healthy/);
  assert.match(r.out, /Datapath:\s+loaded/);
  assert.match(r.out, /Hooks:\s+8\/8 attached/);
  assert.match(r.out, /Sync:\s+in sync, 1 syncs/);
  assert.match(r.out, /Problems:\s+1 rejected objects, 0 frontends not programmed/);
  assert.match(r.out, /SOCKLB_ERR_PORT_RANGE: Service demo\/broken: spec\.ports\[0\]\.port/);
  source.setAttached(false);
  try {
    const sick = await run('status');
    assert.is(sick.code, 1);
    assert.match(sick.out, /Health:\s+UNHEALTHY/);
    assert.match(sick.out, /NOT attached: sock4_connect/);
  } finally {
    source.setAttached(true);
  }
});

test('an unreachable agent and bad usage give clear errors and exit codes', async () => {
  let err = '';
  const io = { out: () => {}, err: (t: string) => (err += t) };
  // A port nothing listens on: one the kernel just handed out and took back.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  assert.is(await inspectCommand('status', ['--address', `127.0.0.1:${port}`], io), 1);
  assert.match(err, new RegExp(`cannot reach the socklb debug endpoint at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  assert.is(await inspectCommand('services', ['--bogus'], io), 2);
  assert.is(await inspectCommand('map', ['dump', 'x', '--limit', '0'], io), 2);
});

test.run();
