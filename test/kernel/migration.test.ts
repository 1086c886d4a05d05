// Upgrades and resizes without an outage: an agent started over the pins of an earlier one whose
// maps differ (another --max-services, or the previous release's map layout) migrates them while a
// client keeps connecting, and leaves no pin of the old maps behind.

import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../src/bpf/binding.ts';
import { MapNames } from '../../src/datapath/abi.ts';
import type { NetnsLab, ProbeHandle } from '../../src/lab/netns-lab.ts';
import { ROOT, startAgentProcess, stopAgentProcess } from '../support/agent-process.ts';
import { manifest, service, slice } from '../support/objects.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled, TIME_SCALE } from '../support/time-scale.ts';

const VIP = '10.96.0.10';
/** The release before the v2 map layout: what a node runs when it is upgraded to this one. */
const PREVIOUS_RELEASE = 'e4e1e9d';

function webObjects(addresses: string[]): object[] {
  return [
    service({ name: 'web', clusterIPs: [VIP], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: addresses.map((address) => ({ address })) }),
  ];
}

/** TCP connects to the VIP until stopped; a failed connect counts, a slow one does not. */
function connectLoop(lab: NetnsLab): ProbeHandle {
  const args = ['tcp', '--target', `${VIP}:80`, '--count', '1000000', '--duration-ms', String(scaled(60_000))];
  return lab.spawnProbe([...args, '--timeout-ms', String(scaled(10_000, 60_000))], { timeoutMs: scaled(120_000) });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  sl: SockLab;
  agents: ChildProcess[];
}

async function labWithWeb(tag: string): Promise<Ctx> {
  const sl = await SockLab.create(tag, 2);
  for (const pod of sl.lab.pods) await sl.lab.startServer(pod.index, { tcp: [8080] });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(sl.manifestPath, manifest(webObjects(sl.lab.pods.map((p) => p.ipv4))));
  return { sl, agents: [] };
}

function pinnedMaxEntries(sl: SockLab, map: string): number {
  const m = BpfMap.fromPin(join(sl.bpffs, 'maps', map));
  try {
    return m.info().maxEntries;
  } finally {
    m.close();
  }
}

const resize = suite<Ctx>('a restart with other map sizes');

resize.before(async (ctx) => {
  Object.assign(ctx, await labWithWeb('resize'));
});

resize.after(async (ctx) => {
  for (const a of ctx.agents) a.kill('SIGKILL');
  await ctx.sl?.close();
});

resize('doubling --max-services migrates the pinned maps under a connect loop: 0 failed connects', async ({ sl, agents }) => {
  const first = await startAgentProcess(sl, agents, { maxServices: 256 });
  assert.is(pinnedMaxEntries(sl, MapNames.lb4Services), 256);
  const probe = connectLoop(sl.lab);
  await probe.started;
  await pause(300);
  await stopAgentProcess(first);
  const second = await startAgentProcess(sl, agents, { maxServices: 512 });
  await pause(300);
  const during = await probe.stop();
  assert.is(during.failed, 0, JSON.stringify(during.errors));
  assert.ok(during.ok > 50 / TIME_SCALE, `only ${during.ok} connects`);

  const migration = second.inSync.migration as { created: string[]; copied: { from: string; to: string; entries: number }[] };
  assert.ok(migration.created.includes(MapNames.lb4Services), JSON.stringify(migration));
  assert.ok(
    migration.copied.some((c) => c.from === MapNames.lb4Services && c.to === MapNames.lb4Services && c.entries === 1),
    JSON.stringify(migration.copied),
  );
  assert.is(second.inSync.committed, true);
  assert.is(pinnedMaxEntries(sl, MapNames.lb4Services), 512);
  await stopAgentProcess(second);
  const after = await sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '10']);
  assert.is(after.ok, 10, 'the migrated datapath keeps serving without an agent');
});

resize.run();

const upgrade = suite<Ctx & { worktree?: string }>('an upgrade from the previous release');

upgrade.before(async (ctx) => {
  Object.assign(ctx, await labWithWeb('upgrade'));
  ctx.worktree = buildRelease(PREVIOUS_RELEASE);
});

upgrade.after(async (ctx) => {
  for (const a of ctx.agents) a.kill('SIGKILL');
  await ctx.sl?.close();
  if (ctx.worktree) {
    execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', ctx.worktree], { stdio: 'ignore' });
    rmSync(ctx.worktree, { recursive: true, force: true });
  }
});

/**
 * Checks the release out into a temporary worktree and builds its BPF objects and addon there
 * (with this checkout's node_modules: the release's dependencies are the same).
 */
function buildRelease(commit: string): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'socklb-release-')), commit);
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', dir, commit], { stdio: 'pipe' });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  execFileSync('make', ['-s', '-C', join(dir, 'bpf')], { stdio: 'pipe' });
  const nodedir = existsSync('/usr/include/node/node_api.h') ? ['--nodedir=/usr'] : [];
  execFileSync(join(ROOT, 'node_modules/.bin/node-gyp'), ['rebuild', '--silent', ...nodedir], { cwd: dir, stdio: 'pipe' });
  return dir;
}

upgrade("the previous release's pinned v1 maps are migrated to v2 under a connect loop: 0 failed connects", async (ctx) => {
  const { sl, agents } = ctx;
  const old = await startAgentProcess(sl, agents, { root: ctx.worktree! });
  const pinsBefore = readdirSync(join(sl.bpffs, 'maps'));
  assert.ok(pinsBefore.includes('lb4_services_v1'), pinsBefore.join(' '));
  const probe = connectLoop(sl.lab);
  await probe.started;
  await pause(300);
  await stopAgentProcess(old);
  const current = await startAgentProcess(sl, agents);
  await pause(300);
  const during = await probe.stop();
  assert.is(during.failed, 0, JSON.stringify(during.errors));
  assert.ok(during.ok > 50 / TIME_SCALE, `only ${during.ok} connects`);

  const migration = current.inSync.migration as { copied: { from: string; to: string; entries: number }[]; removed: string[] };
  const copied = Object.fromEntries(migration.copied.map((c) => [`${c.from}->${c.to}`, c.entries]));
  assert.is(copied['lb4_services_v1->lb4_services_v2'], 1, JSON.stringify(migration.copied));
  assert.is(copied['lb4_backends_v1->lb4_backends_v2'], 2, JSON.stringify(migration.copied));
  // The adopted state matched the table: the upgrade wrote no service or backend anew.
  assert.is(current.inSync.adopted, true);
  const pins = readdirSync(join(sl.bpffs, 'maps'));
  for (const gone of ['lb4_services_v1', 'lb6_services_v1', 'lb4_backends_v1', 'lb6_backends_v1', 'lb_svc_stats_v1', 'lb_be_stats_v1']) {
    assert.not.ok(pins.includes(gone), `${gone} is still pinned: ${pins.join(' ')}`);
  }
  for (const name of [MapNames.lb4Services, MapNames.lb4Backends, MapNames.serviceStats, MapNames.slots]) {
    assert.ok(pins.includes(name), `${name} is pinned`);
  }
  await stopAgentProcess(current);
  const after = await sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '10']);
  assert.is(after.ok, 10, 'the upgraded datapath keeps serving without an agent');
});

upgrade.run();
