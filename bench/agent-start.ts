// The agent's start-up as an operator meets it: from spawning `socklb agent` to the last of N
// services answering a client (issue 12's goal: under 3 s at 50,000 services × 3 endpoints). The
// cluster is N-1 of the bench's other services (3 unrouted endpoints each) and, last in the file or
// the list, a service whose endpoints are a lab's pods.
//
//   node bench/agent-start.ts [--services 50000] [--format json|yaml] [--rounds 3]
//                             [--source manifest|apiserver] [--cap-s 180]
//
// Each round: a fresh NetnsLab (3 pods serving HTTP); bench/first-answer.ts dialling the last
// service's ClusterIP every 20 ms from the lab's node namespace and client cgroup; then the real
// agent process (node src/cli.ts agent) on the lab's cgroup, reading a manifest file (a JSON List or
// multi-document YAML) or listing our test API server (test/support/fake-apiserver.ts, paged as
// client-go pages) through a kubeconfig. Figures: spawn -> first answer from a pod, spawn -> the
// agent's "in sync" log record, and the agent's peak RSS (VmHWM) just before it is stopped. Prints a
// JSON line per round, then a summary line of medians. Needs root; removes the agent's pins, the lab
// and its files, also on failure and on Ctrl-C.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { ProcessHandle } from '../src/lab/netns-base.ts';
import { NetnsLab } from '../src/lab/netns-lab.ts';
import { clusterOf, dialledService, MAX_OTHER_SERVICES, SERVICE_PORT, TARGET_PORT, TARGET_VIP, toKubernetes } from '../src/lab/services.ts';
import { FakeApiServer, fixture, type KubeObject } from '../test/support/fake-apiserver.ts';
import { DIALLING, type FirstAnswer } from './first-answer.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'src/cli.ts');
const DIALLER = join(import.meta.dirname, 'first-answer.ts');
const NODE_NAME = 'bench-node';
const POLL_MS = 20;
const DIALLER_READY_MS = 30_000;
const STOP_GRACE_MS = 30_000;
const CLEANUP_TIMEOUT_MS = 60_000;

interface Options {
  services: number;
  format: 'json' | 'yaml';
  rounds: number;
  source: 'manifest' | 'apiserver';
  capMs: number;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      services: { type: 'string', default: '50000' },
      format: { type: 'string', default: 'json' },
      rounds: { type: 'string', default: '3' },
      source: { type: 'string', default: 'manifest' },
      'cap-s': { type: 'string', default: '180' },
    },
    strict: true,
  });
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`--${name} must be an integer in ${min}..${max}, got ${text}`);
    return n;
  };
  if (values.format !== 'json' && values.format !== 'yaml') throw new TypeError(`--format must be json or yaml, got ${values.format}`);
  if (values.source !== 'manifest' && values.source !== 'apiserver') {
    throw new TypeError(`--source must be manifest or apiserver, got ${values.source}`);
  }
  return {
    services: int('services', values.services, 1, MAX_OTHER_SERVICES + 1),
    format: values.format,
    rounds: int('rounds', values.rounds, 1, 50),
    source: values.source,
    capMs: 1000 * int('cap-s', values['cap-s'], 10, 3600),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function log(line: string): void {
  process.stderr.write(`agent-start: ${line}\n`);
}

// ---- what a Ctrl-C must undo (the labs' own exit hook removes namespaces and cgroups) ----------

const live: { agent?: ChildProcess; bpffs?: string; work?: string; lab?: NetnsLab } = {};

/** `socklb cleanup`: detaches and unpins what the agent made; a failed one still leaves no pins. */
function removePins(bpffs: string): void {
  try {
    execFileSync(process.execPath, [CLI, 'cleanup', '--bpffs', bpffs], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: CLEANUP_TIMEOUT_MS,
    });
  } catch (err) {
    log(`socklb cleanup --bpffs ${bpffs} failed, removing the pins: ${(err as Error).message}`);
    rmSync(bpffs, { recursive: true, force: true });
  }
}

function onSignal(sig: NodeJS.Signals): void {
  live.agent?.kill('SIGKILL');
  if (live.bpffs) removePins(live.bpffs);
  if (live.work) rmSync(live.work, { recursive: true, force: true });
  // A lab being destroyed has left the exit hook's list already: finish its teardown here.
  live.lab?.destroySync();
  log(`${sig}: cleaned up`);
  process.exit(130);
}

// ---- the cluster, as a manifest file or an API server ------------------------------------------

interface Prepared {
  /** The pod addresses the last service's endpoints were made from (the same in every lab). */
  pods: string[];
  /** The agent's source flags. */
  sourceArgs: string[];
  manifestBytes?: number;
}

function kubeObjects(services: number, pods: string[]): KubeObject[] {
  const { services: svcs, slices } = toKubernetes(clusterOf(services - 1, [dialledService('target', TARGET_VIP, pods)]));
  return [...svcs, ...slices] as KubeObject[];
}

function writeManifest(o: Options, work: string, objects: KubeObject[]): { path: string; bytes: number } {
  const path = join(work, `manifest.${o.format}`);
  const text =
    o.format === 'json'
      ? JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects })
      : objects.map((x) => stringify(x)).join('---\n');
  writeFileSync(path, text);
  return { path, bytes: statSync(path).size };
}

async function prepare(o: Options, work: string, pods: string[], api: FakeApiServer | undefined): Promise<Prepared> {
  const objects = kubeObjects(o.services, pods);
  if (!api) {
    const m = writeManifest(o, work, objects);
    log(`wrote ${m.path}: ${(m.bytes / 2 ** 20).toFixed(1)} MiB`);
    return { pods, sourceArgs: ['--manifests', m.path], manifestBytes: m.bytes };
  }
  await api.start();
  const node = fixture('node');
  node.metadata!.name = NODE_NAME;
  api.add(node);
  for (const x of objects) api.add(x);
  log(`the API server at ${api.url} holds ${objects.length} objects`);
  return { pods, sourceArgs: ['--kubeconfig', api.writeKubeconfig(work)] };
}

// ---- one round ----------------------------------------------------------------------------------

interface Round {
  round: number;
  services: number;
  source: Options['source'];
  format?: Options['format'];
  manifestBytes?: number;
  /** Spawn -> the first answer from a pod through the last service's ClusterIP. */
  answerMs: number | null;
  /** Spawn -> the agent's "in sync" log record (its clock, ms). */
  inSyncMs: number | null;
  /** Frontends in the maps when it logged "in sync". */
  frontends: number | null;
  peakRssMiB: number;
  attempts: number;
  backend?: string;
  errorsBefore: Record<string, number>;
}

/** The agent's sizes: every service, backend and slot of the cluster, with room to spare. */
function sizeArgs(services: number): string[] {
  const backends = 3 * services + 1024;
  return ['--max-services', String(services + 1024), '--max-backends', String(backends), '--max-slots', String(backends)];
}

function peakRssKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]);
}

async function stopAgent(agent: ChildProcess): Promise<void> {
  if (agent.exitCode !== null || agent.signalCode !== null) return;
  const exited = new Promise((r) => agent.once('exit', r));
  agent.kill('SIGTERM');
  const timer = setTimeout(() => agent.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** The dialler in the lab's node namespace and client cgroup; resolves once its first attempt has failed. */
async function startDialler(lab: NetnsLab, capMs: number): Promise<ProcessHandle> {
  const target = `${TARGET_VIP}:${SERVICE_PORT}`;
  const argv = [process.execPath, DIALLER, '--target', target, '--interval-ms', String(POLL_MS), '--cap-ms', String(capMs)];
  const dialler = lab.start(lab.nodeNs, argv, { cgroup: lab.cgroupPath });
  const readyBy = Date.now() + DIALLER_READY_MS;
  while (!dialler.output().includes(`${DIALLING}\n`)) {
    if (Date.now() > readyBy) throw new Error(`the dialler did not start within ${DIALLER_READY_MS} ms: ${dialler.output()}`);
    if (await Promise.race([dialler.exited.then(() => true), sleep(POLL_MS).then(() => false)])) {
      throw new Error(`the dialler ended before the agent started: ${dialler.output()}`);
    }
  }
  return dialler;
}

interface AgentRun {
  child: ChildProcess;
  spawnedNs: bigint;
  spawnedAtMs: number;
  /** The "in sync" log record once the agent has written it. */
  inSync(): Record<string, unknown> | undefined;
  /** The end of its stderr. */
  stderr(): string;
  exited: Promise<void>;
}

/** `socklb agent` on the lab's cgroup, in the root namespace as a DaemonSet runs it (no devices: --xdp-mode off). */
function startAgent(o: Options, lab: NetnsLab, bpffs: string, sourceArgs: string[]): AgentRun {
  const argv = [CLI, 'agent', ...sourceArgs, '--node-name', NODE_NAME, '--cgroup', lab.cgroupPath, '--bpffs', bpffs];
  // Port 0: the kernel picks free ones; nothing here asks the agent anything.
  argv.push('--xdp-mode', 'off', '--debug-address', '127.0.0.1:0', '--health-address', '127.0.0.1:0', ...sizeArgs(o.services));
  let inSync: Record<string, unknown> | undefined;
  let tail = '';
  let stderr = '';
  const spawnedAtMs = Date.now();
  const spawnedNs = process.hrtime.bigint();
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.agent = child;
  live.bpffs = bpffs;
  child.stdout!.on('data', (c: Buffer) => {
    const lines = (tail + c.toString()).split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) if (!inSync && line.includes('"in sync"')) inSync = JSON.parse(line) as Record<string, unknown>;
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, spawnedNs, spawnedAtMs, inSync: () => inSync, stderr: () => stderr, exited };
}

async function round(o: Options, index: number, work: string, api: FakeApiServer | undefined, prepared: Prepared | undefined) {
  const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('start'), backends: 3, ipv6: false });
  live.lab = lab;
  const bpffs = `/sys/fs/bpf/${lab.prefix}`;
  let agent: AgentRun | undefined;
  try {
    for (const pod of lab.pods) await lab.startServer(pod.index, { tcp: [TARGET_PORT] });
    const pods = lab.pods.map((p) => p.ipv4);
    if (prepared && prepared.pods.join() !== pods.join()) {
      throw new Error(`the lab's pods moved: ${pods} (the objects have ${prepared.pods})`);
    }
    const p = prepared ?? (await prepare(o, work, pods, api));
    const dialler = await startDialler(lab, o.capMs);
    agent = startAgent(o, lab, bpffs, p.sourceArgs);
    const deadline = Date.now() + o.capMs;
    let capTimer: NodeJS.Timeout | undefined;
    const capped = new Promise<void>((r) => {
      capTimer = setTimeout(r, o.capMs + 5000);
    });
    await Promise.race([dialler.exited, agent.exited, capped]);
    clearTimeout(capTimer);
    const { child } = agent;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the agent exited (${child.exitCode ?? child.signalCode}): ${agent.stderr()}`);
    }
    const line = dialler.output().trim().split('\n').pop() ?? '';
    const answer = JSON.parse(line.startsWith('{') ? line : 'null') as FirstAnswer | null;
    if (!answer?.answeredNs) throw new Error(`no answer within ${o.capMs} ms: ${dialler.output().slice(-1000)}`);
    while (!agent.inSync() && Date.now() < deadline) await sleep(POLL_MS);
    const peak = peakRssKiB(child.pid!);
    const inSync = agent.inSync();
    const r: Round = {
      round: index,
      services: o.services,
      source: o.source,
      ...(o.source === 'manifest' ? { format: o.format, manifestBytes: p.manifestBytes } : {}),
      answerMs: Math.round(Number(BigInt(answer.answeredNs) - agent.spawnedNs) / 1e5) / 10,
      inSyncMs: inSync ? Number(inSync.time) - agent.spawnedAtMs : null,
      frontends: inSync ? Number(inSync.frontends) : null,
      peakRssMiB: Math.round((peak / 1024) * 10) / 10,
      attempts: answer.attempts,
      ...(answer.backend ? { backend: answer.backend } : {}),
      errorsBefore: answer.errors,
    };
    return { r, p };
  } finally {
    if (agent) await stopAgent(agent.child);
    live.agent = undefined;
    removePins(bpffs);
    live.bpffs = undefined;
    await lab.destroy();
    live.lab = undefined;
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('agent-start needs root (network namespaces, BPF)');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const work = mkdtempSync(join(tmpdir(), 'socklb-agent-start-'));
  live.work = work;
  const api = o.source === 'apiserver' ? new FakeApiServer() : undefined;
  const rounds: Round[] = [];
  try {
    let prepared: Prepared | undefined;
    for (let i = 0; i < o.rounds; i++) {
      const { r, p } = await round(o, i, work, api, prepared);
      prepared = p;
      rounds.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
  } finally {
    await api?.stop();
    rmSync(work, { recursive: true, force: true });
    live.work = undefined;
  }
  const of = (k: 'answerMs' | 'inSyncMs' | 'peakRssMiB') => median(rounds.flatMap((r) => (r[k] === null ? [] : [r[k]])));
  process.stdout.write(
    `${JSON.stringify({
      summary: true,
      services: o.services,
      source: o.source,
      ...(o.source === 'manifest' ? { format: o.format } : {}),
      rounds: rounds.length,
      medianAnswerMs: of('answerMs'),
      medianInSyncMs: of('inSyncMs'),
      medianPeakRssMiB: of('peakRssMiB'),
    })}\n`,
  );
}

// Exits at once: a lab's teardown leaves a timer of a few seconds behind (its bound on killing).
main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`agent-start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
