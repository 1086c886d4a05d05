// socklb's image (npm run image) run by podman with deploy/daemonset.yaml's own settings, read by
// src/lab/daemonset-podman.ts: host network and PID namespaces, the capabilities it drops and
// adds, seccomp/AppArmor, a read-only root, its volumes with their mount propagation, its command
// and args, its memory limit. The test's overrides, printed at the start, are only what keeps the
// run inside a lab of its own: the lab's node namespace stands for the host's network (the agent's
// XDP and health ports land on the lab's devices, not the machine's), the cgroup2 volume is the
// lab's cgroup (not every process of the machine), its own bpffs directory, and a manifest file
// in place of the API server.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SOCK_PROGRAMS } from '../../src/agent/datapath.ts';
import { cgroupPrograms } from '../../src/bpf/binding.ts';
import { type Overrides, type PodmanRun, podmanRunFor } from '../../src/lab/daemonset-podman.ts';
import { manifest, service, slice } from '../support/objects.ts';
import { DAEMONSET, hostFlags, IMAGE, ownerLabels, podman, podmanOk, sweepDeadOwners } from '../support/podman.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled, waitUntil } from '../support/time-scale.ts';

const VIP = '10.96.0.10';
const MANIFEST_IN_CONTAINER = '/etc/socklb/services.yaml';
const NODE_NAME = 'node-a';
/** Prints the pid it has in the machine's PID namespace, leaves bpffs, and waits. */
const STAND_IN_INIT = 'umount /sys/fs/bpf 2>/dev/null; cut -d" " -f4 /proc/self/stat; exec sleep 600';

interface Ctx {
  sl: SockLab;
  flags: string[];
  containers: string[];
  agent: string;
  standIn?: ChildProcess;
}

function attachedPrograms(cgroup: string): number {
  return Object.values(SOCK_PROGRAMS).reduce((n, type) => n + cgroupPrograms(cgroup, type).length, 0);
}

function overridesFor(sl: SockLab, o: Overrides = {}): Overrides {
  return {
    hostNetworkNamespace: `/run/netns/${sl.lab.nodeNs}`,
    hostPaths: { cgroup2: sl.lab.cgroupPath },
    extraMounts: [{ source: sl.manifestPath, destination: MANIFEST_IN_CONTAINER, readOnly: true }],
    flags: { '--bpffs': sl.bpffs, '--manifests': MANIFEST_IN_CONTAINER },
    ...o,
  };
}

function runFor(container: string, o: Overrides): PodmanRun {
  const run = podmanRunFor(readFileSync(DAEMONSET, 'utf8'), container, { 'spec.nodeName': NODE_NAME }, o);
  for (const dir of run.mustExist) assert.ok(existsSync(dir), `hostPath ${dir} (type Directory) is missing`);
  return run;
}

/** `podman run` with the host's flags and the owner labels; `name` is removed in after(). */
function runArgs(ctx: Ctx, name: string, run: PodmanRun, mode: '--detach' | '--rm'): string[] {
  ctx.containers.push(name);
  return ['run', mode, `--name=${name}`, ...ctx.flags, ...ownerLabels(), ...run.args];
}

/** GET http://127.0.0.1:PORT/PATH in the lab's node namespace, which stands for the node's network. */
async function getInNode(sl: SockLab, port: number, path: string): Promise<{ status: number; body: string }> {
  const script = `const r = await fetch('http://127.0.0.1:${port}${path}'); console.log(JSON.stringify({ status: r.status, body: await r.text() }));`;
  const { stdout } = await sl.lab.exec(sl.lab.nodeNs, [process.execPath, '--input-type=module', '-e', script]);
  return JSON.parse(stdout) as { status: number; body: string };
}

const image = suite<Ctx>('the DaemonSet, run by podman from the image');

image.before(async (ctx) => {
  ctx.containers = [];
  const swept = await sweepDeadOwners();
  if (swept.length > 0) console.log(`  removed ${swept.length} container(s) of an earlier run that died`);
  const exists = await podman(['image', 'exists', IMAGE]);
  if (exists.code !== 0) throw new Error(`no image ${IMAGE}: build it with npm run image (tools/image.sh)`);
  ctx.flags = hostFlags();
  ctx.sl = await SockLab.create('image', 3);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
  writeFileSync(
    ctx.sl.manifestPath,
    manifest([
      service({ name: 'web', clusterIPs: [VIP], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: ctx.sl.lab.pods.map((p) => ({ address: p.ipv4 })) }),
    ]),
  );
  ctx.agent = `${ctx.sl.lab.prefix}-agent`;
});

image.after(async (ctx) => {
  ctx.standIn?.kill('SIGKILL');
  if (ctx.containers?.length) await podman(['rm', '--force', '--volumes', '--ignore', ...ctx.containers]);
  await ctx.sl?.close();
});

image('the DaemonSet names the image npm run image builds', () => {
  const agent = podmanRunFor(readFileSync(DAEMONSET, 'utf8'), 'agent', { 'spec.nodeName': NODE_NAME });
  const init = podmanRunFor(readFileSync(DAEMONSET, 'utf8'), 'mount-bpffs', {});
  assert.is(agent.image, IMAGE);
  assert.is(init.image, IMAGE);
});

image('the init container mounts bpffs in the mount namespace of PID 1, once', async (ctx) => {
  // This sandbox's own PID 1 lets no other process open /proc/1/ns/mnt, so a stand-in init takes
  // its place: PID 1 of a PID namespace of its own, in a mount namespace without bpffs.
  const init = spawn('unshare', ['--mount', '--pid', '--fork', '--kill-child', '--propagation=private', '--', 'sh', '-c', STAND_IN_INIT], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  ctx.standIn = init;
  const [line] = (await once(createInterface({ input: init.stdout! }), 'line')) as [string];
  const pid = Number(line);
  const bpfMounts = () =>
    readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[4] === '/sys/fs/bpf' && l.includes(' - bpf ')).length;
  assert.is(bpfMounts(), 0, 'the stand-in starts without bpffs');
  const run = runFor('mount-bpffs', { hostNetworkNamespace: `/run/netns/${ctx.sl.lab.nodeNs}`, hostPidNamespace: `/proc/${pid}/ns/pid` });
  console.log(`  overrides of the init container's settings:\n    ${run.overrides.join('\n    ')}`);
  await podmanOk(runArgs(ctx, `${ctx.sl.lab.prefix}-init`, run, '--rm'));
  assert.is(bpfMounts(), 1, 'bpffs mounted at /sys/fs/bpf in PID 1 mount namespace');
  await podmanOk(runArgs(ctx, `${ctx.sl.lab.prefix}-init2`, run, '--rm'));
  assert.is(bpfMounts(), 1, 'a second run finds it and mounts nothing');
  init.kill('SIGKILL');
});

image('the agent container programs the lab: the ClusterIP balances over every pod', async (ctx) => {
  const run = runFor('agent', overridesFor(ctx.sl));
  console.log(`  overrides of the DaemonSet's settings:\n    ${run.overrides.join('\n    ')}`);
  await podmanOk(runArgs(ctx, ctx.agent, run, '--detach'));
  let logs = '';
  await waitUntil(
    'the agent container to log "in sync"',
    () => {
      const state = readContainerLogs(ctx.agent);
      logs = state;
      return state.includes('"in sync"') || state.includes('"level":60');
    },
    60_000,
  );
  assert.ok(logs.includes('"in sync"'), logs);
  assert.not.match(logs, /"level":(50|60)/, `errors in the agent's log:\n${logs}`);
  assert.ok(attachedPrograms(ctx.sl.lab.cgroupPath) > 0, 'hooks on the lab cgroup');
  const result = await ctx.sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '60']);
  assert.is(result.failed, 0, JSON.stringify(result.errors));
  assert.equal(Object.keys(result.byBackend).sort(), ['pod0', 'pod1', 'pod2']);
});

image("/healthz and the DaemonSet's liveness probe answer on the node's 10256", async (ctx) => {
  const run = runFor('agent', overridesFor(ctx.sl));
  assert.equal(run.hostPorts, [10256]);
  const healthz = await getInNode(ctx.sl, 10256, '/healthz');
  assert.is(healthz.status, 200, healthz.body);
  assert.is((JSON.parse(healthz.body) as { nodeEligible: boolean }).nodeEligible, true);
  const live = await getInNode(ctx.sl, run.liveness!.port, run.liveness!.path);
  assert.is(live.status, 200, live.body);
});

image('socklb status, run in the container, reports the datapath loaded, attached and in sync', async (ctx) => {
  const out = await podmanOk(['exec', ctx.agent, 'socklb', 'status', '--json']);
  const status = JSON.parse(out) as { healthy: boolean; loaded: boolean; inSync: boolean; hooks: { attached: boolean }[] };
  assert.is(status.healthy, true);
  assert.is(status.loaded, true);
  assert.is(status.inSync, true);
  assert.ok(status.hooks.length > 0 && status.hooks.every((h) => h.attached), JSON.stringify(status.hooks));
  const text = await podmanOk(['exec', ctx.agent, 'socklb', 'services']);
  assert.match(text, /default\/web\s+http\s+TCP\/10\.96\.0\.10:80/);
});

image('stopping the container leaves the pinned datapath serving', async (ctx) => {
  await podmanOk(['stop', ctx.agent], scaled(60_000));
  const logs = readContainerLogs(ctx.agent);
  assert.match(logs, /the pinned datapath keeps balancing/);
  const state = await podmanOk(['inspect', '--format', '{{.State.ExitCode}}', ctx.agent]);
  assert.is(state.trim(), '0', logs);
  assert.ok(attachedPrograms(ctx.sl.lab.cgroupPath) > 0);
  const result = await ctx.sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '60']);
  assert.is(result.failed, 0, JSON.stringify(result.errors));
  assert.is(Object.keys(result.byBackend).length, 3);
});

image('socklb cleanup, run from the image with the DaemonSet settings, removes it', async (ctx) => {
  const run = runFor('agent', overridesFor(ctx.sl, { args: ['cleanup'], flags: { '--bpffs': ctx.sl.bpffs } }));
  const out = await podmanOk(runArgs(ctx, `${ctx.sl.lab.prefix}-cleanup`, run, '--rm'));
  assert.match(out, /detached and unpinned/);
  assert.is(attachedPrograms(ctx.sl.lab.cgroupPath), 0);
  assert.ok(!existsSync(ctx.sl.bpffs) || readdirSync(ctx.sl.bpffs).length === 0, `${ctx.sl.bpffs} still holds pins`);
  // Nothing rewrites the ClusterIP any more: the node namespace has no route to it.
  const result = await ctx.sl.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '3', '--timeout-ms', '2000']);
  assert.is(result.ok, 0, JSON.stringify(result));
});

for (const capability of ['SYS_ADMIN', 'BPF']) {
  image(`without CAP_${capability} the agent container stops at once with one line naming it`, async (ctx) => {
    const run = runFor('agent', overridesFor(ctx.sl, { withoutCapabilities: [capability] }));
    const r = await podman(
      runArgs(ctx, `${ctx.sl.lab.prefix}-no-${capability.toLowerCase().replace('_', '')}`, run, '--rm'),
      scaled(60_000),
    );
    const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
    assert.is(r.code, 1, lines.join('\n'));
    assert.is(lines.length, 1, `expected one line, got:\n${lines.join('\n')}`);
    const record = JSON.parse(lines[0]!) as { code: string; msg: string };
    assert.is(record.code, 'SOCKLB_ERR_CAPABILITY');
    assert.match(record.msg, new RegExp(`^missing CAP_${capability} \\(`));
    assert.is(record.msg.match(/CAP_[A-Z_]+/g)!.length, 1, record.msg);
    assert.is(attachedPrograms(ctx.sl.lab.cgroupPath), 0);
    assert.ok(!existsSync(ctx.sl.bpffs) || readdirSync(ctx.sl.bpffs).length === 0, `${ctx.sl.bpffs} holds pins`);
  });
}

/** The container's output so far, stdout and stderr (kept after the container stops). */
function readContainerLogs(name: string): string {
  const r = spawnSync('podman', ['logs', name], { encoding: 'utf8', timeout: 30_000 });
  return `${r.stdout}${r.stderr}`;
}

image.run();
