// The datapath across changes and agent lifetimes: backends replaced under load, the agent
// killed and restarted under load, and cleanup leaving nothing behind.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RELEASE_ATTACH_TYPE, RELEASE_PROGRAM, SOCK_PROGRAMS } from '../../src/agent/datapath.ts';
import { cgroupPrograms } from '../../src/bpf/binding.ts';
import { MapNames, SOCK_REASONS } from '../../src/datapath/abi.ts';
import type { NetnsLab, ProbeHandle } from '../../src/lab/netns-lab.ts';
import { ROOT, startAgentProcess } from '../support/agent-process.ts';
import { manifest, service, slice } from '../support/objects.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled, TIME_SCALE, waitUntil } from '../support/time-scale.ts';

const VIP = '10.96.0.10';

function webObjects(addresses: string[]): object[] {
  return [
    service({ name: 'web', clusterIPs: [VIP], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: addresses.map((address) => ({ address })) }),
  ];
}

function sockStats(sl: SockLab): Record<string, string> {
  const raw = sl.agent.datapath.maps[MapNames.sockStats];
  const out: Record<string, string> = {};
  SOCK_REASONS.forEach((reason, i) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(i);
    const value = raw.lookup(key)!;
    let sum = 0n;
    for (let at = 0; at < value.length; at += 8) sum += value.readBigUInt64LE(at);
    out[reason] = String(sum);
  });
  return out;
}

function attachedPrograms(cgroup: string): number {
  return [...Object.values(SOCK_PROGRAMS), RELEASE_ATTACH_TYPE].reduce((n, type) => n + cgroupPrograms(cgroup, type).length, 0);
}

/**
 * TCP connects to the VIP for 30 s (scaled) or until stopped. A connect that fails counts; one
 * slowed by a loaded machine does not (hence the long per-connect timeout).
 */
function connectLoop(lab: NetnsLab): ProbeHandle {
  const args = ['tcp', '--target', `${VIP}:80`, '--count', '1000000', '--duration-ms', String(scaled(30_000))];
  return lab.spawnProbe([...args, '--timeout-ms', String(scaled(10_000, 60_000))], { timeoutMs: scaled(60_000) });
}

const rolling = suite<{ sl: SockLab }>('replacing backends under load');

rolling.before(async (ctx) => {
  ctx.sl = await SockLab.create('roll', 3);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
});

rolling.after(async (ctx) => {
  await ctx.sl?.close();
});

rolling('replacing every backend one by one while a client connects fails no connect', async ({ sl }) => {
  const { lab } = sl;
  const original = lab.pods.map((p) => p.index);
  let live = lab.pods.map((p) => p.ipv4);
  await sl.startAgent(webObjects(live));
  const probe = connectLoop(lab);

  await new Promise((r) => setTimeout(r, 300));
  for (const index of original) {
    const fresh = await lab.addPod();
    await lab.startServer(fresh.index, { tcp: [8080] });
    const gone = lab.pod(index).ipv4;
    live = [...live.filter((a) => a !== gone), fresh.ipv4];
    await sl.apply(webObjects(live));
    // Connections already established to the old pod finish before it goes away, as they would
    // in a terminating pod's grace period (generous: a loaded CI machine can stall the client).
    await new Promise((r) => setTimeout(r, 1000));
    await lab.removePod(index);
  }
  const during = await probe.stop();
  assert.is(during.failed, 0, `${JSON.stringify(during)} sock_stats=${JSON.stringify(sockStats(sl))}`);
  assert.ok(during.ok > 50 / TIME_SCALE, `only ${during.ok} connects during the change`);

  const after = await lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '150']);
  assert.is(after.failed, 0, JSON.stringify(after.errors));
  assert.equal(Object.keys(after.byBackend).sort(), ['pod3', 'pod4', 'pod5']);
});

rolling.run();

const restart = suite<{ sl: SockLab; agents: ChildProcess[] }>('agent restarts');

restart.before(async (ctx) => {
  ctx.agents = [];
  ctx.sl = await SockLab.create('kill', 3);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
  writeFileSync(ctx.sl.manifestPath, manifest(webObjects(ctx.sl.lab.pods.map((p) => p.ipv4))));
});

restart.after(async (ctx) => {
  for (const a of ctx.agents) a.kill('SIGKILL');
  await ctx.sl?.close();
});

restart('kill -9 of the agent during a connect loop fails no connect; the restarted agent adopts the maps', async ({ sl, agents }) => {
  const first = await startAgentProcess(sl, agents);
  assert.is(first.inSync.adopted, false);
  const probe = connectLoop(sl.lab);

  await new Promise((r) => setTimeout(r, 300));
  first.child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 500));
  const second = await startAgentProcess(sl, agents);
  await new Promise((r) => setTimeout(r, 300));
  const during = await probe.stop();
  assert.is(during.failed, 0, JSON.stringify(during.errors));
  assert.ok(during.ok > 50 / TIME_SCALE, `only ${during.ok} connects`);
  assert.is(second.inSync.adopted, true);
  assert.is(second.inSync.frontends, 1);

  second.child.kill('SIGTERM');
  await new Promise((r) => second.child.once('exit', r));
  // A stopped agent leaves the datapath running.
  const stillServed = await sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '10']);
  assert.is(stillServed.ok, 10);
});

restart('socklb cleanup detaches and unpins everything the agent made', async ({ sl }) => {
  assert.ok(attachedPrograms(sl.lab.cgroupPath) > 0);
  // Pinned where the kernel takes it (connections are counted), and then attached like the others.
  const releasePinned = existsSync(join(sl.bpffs, 'links', RELEASE_PROGRAM));
  assert.is(cgroupPrograms(sl.lab.cgroupPath, RELEASE_ATTACH_TYPE).length, releasePinned ? 1 : 0, 'the release hook');
  const cleanup = spawn(join(ROOT, 'bin/socklb'), ['cleanup', '--bpffs', sl.bpffs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  cleanup.stderr!.on('data', (d: Buffer) => (stderr += d));
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => cleanup.once('exit', (c, s) => r([c, s])));
  assert.is(code, 0, `socklb cleanup: exit ${code}, signal ${signal}: ${stderr}`);
  assert.is(existsSync(sl.bpffs), false);
  // Removing a link's last pin releases it after an RCU grace period (at once on recent kernels).
  await waitUntil('the hooks to detach', () => attachedPrograms(sl.lab.cgroupPath) === 0, 2000);
  const after = await sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '1', '--timeout-ms', '300']);
  assert.is(after.ok, 0, 'the ClusterIP must no longer be balanced');
});

restart.run();
