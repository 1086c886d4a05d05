// The lab itself, without any BPF: real namespaces, real servers, real probes.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cgroup2Mount } from '../../src/agent/host.ts';
import { NetnsLab, type ProbeResult } from '../../src/lab/netns-lab.ts';

const LAB_MODULE = fileURLToPath(new URL('../../src/lab/netns-lab.ts', import.meta.url));

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

function leftovers(prefix: string): string[] {
  const root = cgroup2Mount();
  return [
    ...netnsList().filter((n) => n.startsWith(prefix)),
    ...fs
      .readdirSync(root)
      .filter((n) => n.startsWith(prefix))
      .map((n) => path.join(root, n)),
    ...(fs.existsSync(`/run/socklb-lab/${prefix}.json`) ? [`/run/socklb-lab/${prefix}.json`] : []),
  ];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs a script in a child Node process that owns a lab; returns its stdout lines as they come. */
function childWithLab(body: string): {
  proc: ReturnType<typeof spawn>;
  lines: () => string[];
  exited: Promise<[number | null, string | null]>;
} {
  const script = `const { NetnsLab } = await import(${JSON.stringify(LAB_MODULE)});\n${body}`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr!.on('data', () => {});
  const exited = new Promise<[number | null, string | null]>((r) => proc.once('exit', (c, s) => r([c, s])));
  return { proc, lines: () => out.split('\n').filter(Boolean), exited };
}

let lab: NetnsLab;
const TCP = 8080;
const UDP = 5353;

test.before(async () => {
  lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('labt'), backends: 3 });
  await Promise.all(lab.pods.map((p) => lab.startServer(p.index, { tcp: [TCP], udp: [UDP] })));
});

test.after(async () => {
  await lab?.destroy();
});

test('create builds the node netns, one netns per pod and the client cgroup', () => {
  const names = netnsList();
  assert.ok(names.includes(lab.nodeNs));
  assert.equal(
    lab.pods.map((p) => [p.name, p.ipv4, p.ipv6]),
    [
      ['pod0', '10.244.0.11', 'fd00:10:244::11'],
      ['pod1', '10.244.0.12', 'fd00:10:244::12'],
      ['pod2', '10.244.0.13', 'fd00:10:244::13'],
    ],
  );
  for (const p of lab.pods) assert.ok(names.includes(p.ns), p.ns);
  assert.ok(fs.statSync(lab.cgroupPath).isDirectory());
  assert.ok(lab.cgroupPath.startsWith(cgroup2Mount()));
});

test('a probe runs inside the client cgroup and the node netns', async () => {
  const { stdout } = await lab.exec(lab.nodeNs, ['cat', '/proc/self/cgroup'], { inCgroup: true });
  assert.match(stdout, `0::/${lab.prefix}\n`);
  const addrs = (await lab.exec(lab.nodeNs, ['ip', '-br', 'addr', 'show', 'br0'])).stdout;
  assert.match(addrs, '10.244.0.1/24');
  assert.match(addrs, 'fd00:10:244::1/64');
});

test('exec refuses namespaces the lab does not own', async () => {
  try {
    await lab.exec('definitely-not-ours', ['true']);
    assert.unreachable('exec ran outside the lab');
  } catch (err) {
    assert.match((err as Error).message, 'not a namespace of lab');
  }
});

test('tcp probe to each pod address (IPv4 and IPv6) reaches that pod by name', async () => {
  for (const p of lab.pods) {
    for (const [addr, peer] of [
      [p.ipv4, `${p.ipv4}:${TCP}`],
      [`[${p.ipv6}]`, `[${p.ipv6}]:${TCP}`],
    ] as const) {
      const r = await lab.runProbe(['tcp', '--target', `${addr}:${TCP}`, '--count', '3'], { timeoutMs: 15_000 });
      assert.is(r.ok, 3, JSON.stringify(r));
      assert.is(r.failed, 0);
      assert.equal(r.byBackend, { [p.name]: 3 });
      assert.equal(r.peers, { [peer]: 3 });
    }
  }
});

test('udp probe, unconnected and connected, gets the pod name back from the pod address', async () => {
  for (const p of lab.pods) {
    for (const addr of [p.ipv4, `[${p.ipv6}]`]) {
      for (const connected of [false, true]) {
        const args = ['udp', '--target', `${addr}:${UDP}`, '--count', '3', ...(connected ? ['--connected'] : [])];
        const r = await lab.runProbe(args, { timeoutMs: 15_000 });
        assert.is(r.ok, 3, JSON.stringify(r));
        assert.equal(r.byBackend, { [p.name]: 3 });
        assert.equal(r.peers, { [`${addr}:${UDP}`]: 3 });
      }
    }
  }
});

test('connected udp to a closed port reports ECONNREFUSED and stops on error', async () => {
  const p = lab.pods[0]!;
  const r = await lab.runProbe(['udp', '--target', `${p.ipv4}:${UDP + 1}`, '--count', '5', '--connected', '--stop-on-error']);
  assert.is(r.ok, 0);
  assert.is(r.failed, 1);
  assert.is(r.lastError, 'ECONNREFUSED');
  assert.is(r.stopped, 'error');
});

test('connect-only reports a mean connect time', async () => {
  const p = lab.pods[0]!;
  const r = await lab.runProbe(['connect-only', '--target', `${p.ipv4}:${TCP}`, '--count', '50']);
  assert.is(r.ok, 50);
  assert.ok((r.nsPerConnect ?? 0) > 0, JSON.stringify(r));
  assert.equal(r.peers, { [`${p.ipv4}:${TCP}`]: 50 });
});

test('a spawned probe loop can be stopped and still reports what it saw', async () => {
  const p = lab.pods[1]!;
  const h = lab.spawnProbe(['tcp', '--target', `${p.ipv4}:${TCP}`, '--count', '100000', '--interval-ms', '5', '--duration-ms', '20000']);
  await h.started;
  await new Promise((r) => setTimeout(r, 300));
  const r: ProbeResult = await h.stop();
  assert.is(r.stopped, 'signal');
  assert.ok(r.ok > 0 && r.ok < 100000, JSON.stringify(r));
  assert.equal(Object.keys(r.byBackend), [p.name]);
});

test('removePod deletes the namespace and its addresses stop answering; addPod adds a fresh one', async () => {
  const victim = lab.pod(1);
  const servers = lab.spawnedPids.length;
  await lab.removePod(1);
  assert.not.ok(netnsList().includes(victim.ns));
  assert.throws(() => lab.pod(1));
  const tcp = await lab.runProbe(['tcp', '--target', `${victim.ipv4}:${TCP}`, '--count', '1', '--timeout-ms', '300'], {
    timeoutMs: 10_000,
  });
  assert.is(tcp.ok, 0);
  assert.is(tcp.failed, 1);
  const udp = await lab.runProbe(['udp', '--target', `[${victim.ipv6}]:${UDP}`, '--count', '2', '--timeout-ms', '200'], {
    timeoutMs: 10_000,
  });
  assert.is(udp.ok, 0);
  assert.is(udp.failed, 2);

  const fresh = await lab.addPod();
  assert.is(fresh.index, 3);
  assert.is(fresh.ipv4, '10.244.0.14');
  await lab.startServer(fresh.index, { tcp: [TCP], udp: [] });
  const r = await lab.runProbe(['tcp', '--target', `${fresh.ipv4}:${TCP}`, '--count', '1']);
  assert.equal(r.byBackend, { pod3: 1 });
  assert.ok(lab.spawnedPids.length > servers);
});

test('destroy leaves no namespace, cgroup, owner record or process behind, and is idempotent', async () => {
  const other = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('labd'), backends: 2 });
  await other.startServer(0, { tcp: [TCP], udp: [UDP] });
  const loop = other.spawnProbe(['udp', '--target', `${other.pods[0]!.ipv4}:${UDP}`, '--count', '1000000', '--interval-ms', '10']);
  assert.ok(leftovers(other.prefix).length >= 4);
  const pids = other.spawnedPids;
  assert.is(pids.length, 2);
  const t0 = performance.now();
  await other.destroy();
  const ms = performance.now() - t0;
  await other.destroy();
  assert.equal(leftovers(other.prefix), []);
  for (const pid of pids) assert.not.ok(alive(pid), `pid ${pid} survived`);
  await loop.result().then(
    () => assert.unreachable('a killed probe has no result'),
    () => {},
  );
  assert.ok(ms < 5000, `destroy took ${ms} ms`);
});

test('destroy in finally cleans up when a test throws midway', async () => {
  const prefix = NetnsLab.uniquePrefix('labf');
  let pids: number[] = [];
  try {
    const l = await NetnsLab.create({ prefix, backends: 1 });
    try {
      await l.startServer(0, { tcp: [TCP] });
      pids = l.spawnedPids;
      throw new Error('boom');
    } finally {
      await l.destroy();
    }
  } catch (err) {
    assert.is((err as Error).message, 'boom');
  }
  assert.equal(leftovers(prefix), []);
  assert.ok(pids.length === 1 && !alive(pids[0]!));
});

test('a failed create removes what it made and leaves what was not its own', async () => {
  const prefix = NetnsLab.uniquePrefix('labc');
  execFileSync('ip', ['netns', 'add', `${prefix}-pod1`]); // collides with the second pod
  try {
    await NetnsLab.create({ prefix, backends: 3 }).then(
      () => assert.unreachable('create should fail on an existing namespace'),
      (err: Error) => assert.match(err.message, `${prefix}-pod1`),
    );
    assert.equal(leftovers(prefix), [`${prefix}-pod1`]);
  } finally {
    execFileSync('ip', ['netns', 'del', `${prefix}-pod1`]);
  }
  assert.equal(leftovers(prefix), []);
});

test('the exit hook cleans up when the owning process crashes with an uncaught error', async () => {
  const c = childWithLab(`
    const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('labx'), backends: 2 });
    await lab.startServer(0, { tcp: [8080] });
    console.log(lab.prefix, lab.spawnedPids.join(','));
    setTimeout(() => { throw new Error('crash'); }, 50);
  `);
  const [code] = await c.exited;
  assert.is(code, 1);
  const [prefix, pids] = (c.lines()[0] ?? '').split(' ');
  assert.ok(prefix && pids, c.lines().join('\n'));
  assert.equal(leftovers(prefix), []);
  await waitFor('server exit', () => !alive(Number(pids)));
});

test('SIGTERM of the owning process cleans up and still kills it', async () => {
  const c = childWithLab(`
    const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('labs'), backends: 1 });
    await lab.startServer(0, { udp: [5353] });
    console.log(lab.prefix);
    setTimeout(() => {}, 60000);
  `);
  await waitFor('child lab', () => c.lines().length > 0, 15_000);
  const prefix = c.lines()[0]!;
  assert.ok(leftovers(prefix).length > 0);
  c.proc.kill('SIGTERM');
  const [, sig] = await c.exited;
  assert.is(sig, 'SIGTERM');
  assert.equal(leftovers(prefix), []);
});

test("sweep removes a SIGKILLed run's leftovers but not a live lab", async () => {
  const c = childWithLab(`
    const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('labk'), backends: 2 });
    await lab.startServer(1, { tcp: [8080] });
    console.log(lab.prefix, lab.spawnedPids.join(','));
    setTimeout(() => {}, 60000);
  `);
  await waitFor('child lab', () => c.lines().length > 0, 15_000);
  const [prefix, pid] = c.lines()[0]!.split(' ') as [string, string];
  c.proc.kill('SIGKILL');
  await c.exited;
  assert.ok(leftovers(prefix).length >= 5, 'SIGKILL leaves the lab behind');
  // The orphaned server notices its parent is gone and exits on its own.
  await waitFor('orphaned server exit', () => !alive(Number(pid)));

  const before = leftovers(lab.prefix);
  // 'slb-lab' matches this file's labs only: other suites may run labs at the same time.
  const swept = NetnsLab.sweep('slb-lab');
  // A lab another process creates meanwhile sweeps dead owners first, through the same code: then
  // this sweep finds nothing of that run left, which is as good.
  assert.equal(leftovers(prefix), [], JSON.stringify(swept));
  assert.equal(leftovers(lab.prefix), before, 'a live lab is not swept');
  const r = await lab.runProbe(['tcp', '--target', `${lab.pods[0]!.ipv4}:${TCP}`, '--count', '1']);
  assert.is(r.ok, 1);
});

test('options are checked before anything is created', async () => {
  for (const bad of [
    { prefix: 'Bad_Prefix', backends: 1 },
    { prefix: 'slb-ok', backends: -1 },
    { prefix: 'x'.repeat(21), backends: 1 },
  ]) {
    await NetnsLab.create(bad).then(
      () => assert.unreachable(),
      (err: Error) => assert.instance(err, Error),
    );
  }
  assert.throws(() => NetnsLab.sweep('sl'), /at least 3/);
  assert.match(NetnsLab.uniquePrefix('t'), /^slb-t-[0-9a-f]{4}$/);
});

test.run();
