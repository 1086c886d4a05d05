// What every lab of network namespaces shares: the owner record that tells a crashed run's
// leftovers from a live lab, processes spawned inside a namespace (optionally in a cgroup),
// backend servers and probes, and the teardown (on destroy, on exit and signals, and the sweep of
// dead owners' namespaces, cgroups and bpffs directories). netns-lab.ts (one node) and
// cluster-lab.ts (a client, two nodes, a switch) build their topologies on it.
//
// Every lab writes an owner record (/run/socklb-lab/<prefix>.json: pid + start time) before it
// creates anything, so a sweep can tell a crashed run's leftovers from a lab another live
// process is using at the same moment. Everything a lab makes is named <prefix> or <prefix>-*.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount } from '../agent/host.ts';
import { PROBE_STARTED, type ProbeResult } from './probe.ts';

export type { ProbeResult } from './probe.ts';

export interface ServerOptions {
  tcp?: number[];
  udp?: number[];
  /** What the server answers with; default the pod's name. */
  name?: string;
  /** UDP replies also carry the client address the server saw (TCP replies always do, in x-client). */
  reportPeer?: boolean;
}

export interface ServerHandle<P> {
  pid: number;
  pod: P;
  name: string;
  stop(): Promise<void>;
}

/** A long-running process in a namespace (an agent, a server of another kind). */
export interface ProcessHandle {
  pid: number;
  /** Everything it printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Resolves with the exit code (or signal name) once it has exited. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); resolves once it is gone. */
  stop(graceMs?: number): Promise<number | string>;
}

export interface StartOptions {
  /** A cgroup directory to run in (written before the namespace is entered). */
  cgroup?: string;
  /** Enter with `nsenter --net` so the host's /sys (cgroup2, bpffs) stays visible: for an agent. */
  keepSys?: boolean;
}

export interface SpawnOptions {
  /** Kill the process after this long (default: 120 s for probes, 10 s for exec). */
  timeoutMs?: number;
  /** Namespace to run in, one of the lab's; default the lab's client side (NetnsLab: the node; ClusterLab: the client). */
  ns?: string;
  /** Run in the cgroup of clients in that namespace (default true for probes, false for exec). */
  inCgroup?: boolean;
}

export interface ProbeHandle {
  pid: number;
  /** Resolves once the probe runs its loop (or has exited). */
  started: Promise<void>;
  /** The probe's JSON line; rejects if it was killed, timed out, or printed none. */
  result(): Promise<ProbeResult>;
  /** SIGTERM: the probe stops its loop and still prints what it has (`stopped: 'signal'`). */
  stop(): Promise<ProbeResult>;
  /** SIGKILL: no result (result() rejects). */
  kill(): void;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface SweepResult {
  namespaces: string[];
  cgroups: string[];
  /** bpffs directories (names under BPFFS_ROOT) an agent of a dead run left pinned. */
  bpffs: string[];
}

const IP_TIMEOUT_MS = 10_000;
/**
 * How long a server may take to listen. Under the QEMU lab's emulated CPU (which sets
 * SOCKLB_TEST_TIME_SCALE, as for the tests' own waits) starting Node alone can take longer.
 */
const READY_TIMEOUT_MS = 15_000 * Math.max(1, Number(process.env.SOCKLB_TEST_TIME_SCALE) || 1);
const OWNER_DIR = '/run/socklb-lab';
/** Where a lab's bpffs directories live (`<BPFFS_ROOT>/<prefix>-*`), swept with the rest. */
export const BPFFS_ROOT = '/sys/fs/bpf';
export const PREFIX_RE = /^[a-z0-9][a-z0-9-]{0,19}$/;

const LAB_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROBE_SCRIPT = path.join(LAB_DIR, 'probe.ts');
const SERVER_SCRIPT = path.join(LAB_DIR, 'backend-server.ts');

// `$$` is the pid we spawned; exec keeps it, so killing child.pid kills the final node process.
// `ip netns exec` remounts /sys (the cgroup2 tree vanishes inside); nsenter --net keeps the host's
// /sys and /sys/fs/bpf, which an agent needs.
const IN_CGROUP = 'echo $$ > "$1/cgroup.procs" || exit 97; shift; exec ip netns exec "$@"';
const NO_CGROUP = 'shift; exec ip netns exec "$@"';
const NSENTER_IN_CGROUP = 'echo $$ > "$1/cgroup.procs" || exit 97; ns=$2; shift 2; exec nsenter --net=/run/netns/"$ns" -- "$@"';
const NSENTER = 'ns=$2; shift 2; exec nsenter --net=/run/netns/"$ns" -- "$@"';

export function ip(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { timeout: IP_TIMEOUT_MS, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function ipSync(args: string[]): string {
  return execFileSync('ip', args, { timeout: IP_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

export function listNetns(): string[] {
  try {
    return ipSync(['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

function netnsPids(ns: string): number[] {
  try {
    return ipSync(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Process start time (clock ticks since boot), to tell a live owner from a recycled pid. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface OwnerRecord {
  prefix: string;
  pid: number;
  start: string;
}

function readOwners(): OwnerRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(OWNER_DIR);
  } catch {
    return [];
  }
  const out: OwnerRecord[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(OWNER_DIR, n), 'utf8')) as OwnerRecord);
    } catch {
      out.push({ prefix: n.slice(0, -5), pid: 0, start: '' });
    }
  }
  return out;
}

const ownerAlive = (o: OwnerRecord): boolean => o.pid > 0 && startTime(o.pid) === o.start;
const ownedBy = (name: string, prefix: string): boolean => name === prefix || name.startsWith(`${prefix}-`);

/** One try at killing everything in a cgroup and removing it: true once it is gone. */
function cgroupRemovedOnce(dir: string): boolean {
  if (!fs.existsSync(dir)) return true;
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    /* no cgroup.kill: pids below */
  }
  try {
    for (const p of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (p) killPid(Number(p));
  } catch {
    /* gone */
  }
  try {
    fs.rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Kills everything in a cgroup and removes it; bounded wait (3 s) for the kill to land. */
function removeCgroupSync(dir: string): boolean {
  for (let i = 0; i < 300; i++) {
    if (cgroupRemovedOnce(dir)) return true;
    sleepSync(10);
  }
  return false;
}

async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (cgroupRemovedOnce(dir)) return;
    await sleep(10);
  }
  throw new Error(`cgroup ${dir} still busy after 3 s`);
}

/** Kills whatever still runs in a namespace (it would keep the netns alive) and deletes it. */
function removeNetnsSync(ns: string): void {
  for (const pid of netnsPids(ns)) killPid(pid);
  try {
    ipSync(['netns', 'del', ns]);
  } catch {
    /* already gone */
  }
}

function removeBpffsDirSync(dir: string): void {
  // Unlinking the pins drops the programs and links they held (nothing else refers to them).
  fs.rmSync(dir, { recursive: true, force: true });
}

function bpffsMounted(): boolean {
  try {
    return fs.readFileSync('/proc/mounts', 'utf8').includes(` ${BPFFS_ROOT} bpf `);
  } catch {
    return false;
  }
}

// ---- cleanup on exit / Ctrl-C ------------------------------------------------------------

const liveLabs = new Set<LabBase>();
let hooksInstalled = false;

function cleanupAllSync(): void {
  for (const lab of [...liveLabs]) lab.destroySync();
}

function onSignal(sig: NodeJS.Signals): void {
  cleanupAllSync();
  // Ours was the only handler: die of the signal as the process would have without us.
  if (process.listenerCount(sig) === 1) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
}

// ---- the base ----------------------------------------------------------------------------

interface Tracked {
  child: ChildProcess;
  ns: string;
  exited: Promise<void>;
}

/**
 * Namespaces, cgroups and bpffs directories a lab owns, the processes it runs in them, and their
 * removal. A subclass makes its topology with addNetns/addCgroup/addBpffsDir after claim().
 */
export abstract class LabBase {
  readonly prefix: string;

  #namespaces = new Set<string>();
  #cgroups: string[] = [];
  #bpffsDirs: string[] = [];
  #children = new Map<number, Tracked>();
  #spawnedPids: number[] = [];
  #ownerFile: string;
  #ownerWritten = false;
  #destroyed: Promise<void> | undefined;

  protected constructor(prefix: string) {
    if (!PREFIX_RE.test(prefix)) throw new TypeError(`prefix must match ${PREFIX_RE}, got "${prefix}"`);
    this.prefix = prefix;
    this.#ownerFile = path.join(OWNER_DIR, `${prefix}.json`);
  }

  /** `slb-<tag>-<4 hex>`: short and unique per run. */
  static uniquePrefix(tag: string): string {
    if (!/^[a-z0-9]{1,10}$/.test(tag)) throw new TypeError(`tag must be 1-10 chars of [a-z0-9], got "${tag}"`);
    return `slb-${tag}-${randomBytes(2).toString('hex')}`;
  }

  /** Where probes and exec run when no `ns` is given. */
  protected abstract defaultNs(): string;
  /** The cgroup of probes (and of exec with inCgroup) in `ns`; undefined: none. */
  protected abstract clientCgroup(ns: string): string | undefined;
  /** Namespaces in the order teardown deletes them (default: as made). */
  protected deletionOrder(names: string[]): string[] {
    return names;
  }

  /** Pids of every process the lab spawned (servers, probes, exec), alive or not. */
  get spawnedPids(): number[] {
    return [...this.#spawnedPids];
  }

  get destroyed(): boolean {
    return this.#destroyed !== undefined;
  }

  /** Namespaces the lab holds right now. */
  get namespaces(): string[] {
    return [...this.#namespaces];
  }

  /**
   * Sweeps dead owners' leftovers, then writes this lab's owner record: the first thing a
   * subclass's setup does, before it creates anything.
   */
  protected claim(): void {
    // Leftovers of crashed runs (their owner is dead) would collide on names or waste memory.
    LabBase.#sweepDeadOwners();
    fs.mkdirSync(OWNER_DIR, { recursive: true });
    // 'wx': an existing record means the prefix is in use (or was not swept): refuse, touch nothing.
    fs.writeFileSync(this.#ownerFile, JSON.stringify({ prefix: this.prefix, pid: process.pid, start: startTime(process.pid) ?? '' }), {
      flag: 'wx',
    });
    this.#ownerWritten = true;
    liveLabs.add(this);
    installHooks();
  }

  /** Creates a cgroup directory the lab owns (named `<prefix>` or `<prefix>-*`). */
  protected addCgroup(dir: string): void {
    fs.mkdirSync(dir); // EEXIST: someone else's; we do not adopt it
    this.#cgroups.push(dir);
  }

  /** Records a bpffs directory (`<BPFFS_ROOT>/<prefix>-*`) to remove on teardown; not created. */
  protected addBpffsDir(dir: string): void {
    this.#bpffsDirs.push(dir);
  }

  protected async addNetns(ns: string): Promise<void> {
    await ip(['netns', 'add', ns]);
    this.#namespaces.add(ns);
  }

  /** Kills what still runs in `ns` and deletes it. */
  protected async deleteNetns(ns: string): Promise<void> {
    await this.#killWhere((t) => t.ns === ns);
    for (const pid of netnsPids(ns)) killPid(pid);
    await ip(['netns', 'del', ns]);
    this.#namespaces.delete(ns);
  }

  protected assertLive(): void {
    if (this.#destroyed) throw new Error(`lab ${this.prefix} is destroyed`);
  }

  #ownNs(ns: string): string {
    // Never run lab traffic in the root namespace or someone else's.
    if (!this.#namespaces.has(ns)) throw new Error(`${ns} is not a namespace of lab ${this.prefix}`);
    return ns;
  }

  #spawn(ns: string, argv: string[], opts: StartOptions): Tracked {
    this.assertLive();
    const own = this.#ownNs(ns);
    const script = opts.keepSys ? (opts.cgroup ? NSENTER_IN_CGROUP : NSENTER) : opts.cgroup ? IN_CGROUP : NO_CGROUP;
    const child = spawn('bash', ['-c', script, 'bash', opts.cgroup ?? '-', own, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not spawn ${argv[0]} in ${ns}`);
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    const tracked: Tracked = { child, ns, exited };
    this.#children.set(pid, tracked);
    this.#spawnedPids.push(pid);
    void exited.then(() => this.#children.delete(pid));
    return tracked;
  }

  async #killWhere(pred: (t: Tracked) => boolean): Promise<void> {
    const victims = [...this.#children.values()].filter(pred);
    for (const t of victims) t.child.kill('SIGKILL');
    await Promise.race([Promise.all(victims.map((t) => t.exited)), sleep(5000)]);
  }

  /** Starts a long-running process in one of the lab's namespaces; it dies with the lab. */
  start(ns: string, argv: string[], opts: StartOptions = {}): ProcessHandle {
    if (argv.length === 0) throw new TypeError('start needs a command');
    const t = this.#spawn(ns, argv, opts);
    let out = '';
    const keep = (c: Buffer): void => {
      // Bounded: a chatty agent must not grow the test's memory without limit.
      out = (out + c.toString()).slice(-1_000_000);
    };
    t.child.stdout!.on('data', keep);
    t.child.stderr!.on('data', keep);
    const exited = new Promise<number | string>((resolve) => {
      if (t.child.exitCode !== null) resolve(t.child.exitCode);
      t.child.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown'));
      t.child.once('error', (err) => resolve(err.message));
    });
    return {
      pid: t.child.pid!,
      output: () => out,
      exited,
      stop: async (graceMs = 5000) => {
        t.child.kill('SIGTERM');
        const timer = setTimeout(() => t.child.kill('SIGKILL'), graceMs);
        const r = await exited;
        clearTimeout(timer);
        return r;
      },
    };
  }

  /** Starts a backend server (backend-server.ts) in `ns`; resolves once every socket listens. */
  protected async startServerIn<P>(
    pod: P,
    ns: string,
    name: string,
    opts: ServerOptions,
    cgroup: string | undefined,
  ): Promise<ServerHandle<P>> {
    const tcp = opts.tcp ?? [];
    const udp = opts.udp ?? [];
    const argv = [process.execPath, SERVER_SCRIPT, '--name', name];
    if (tcp.length) argv.push('--tcp', tcp.join(','));
    if (udp.length) argv.push('--udp', udp.join(','));
    if (opts.reportPeer) argv.push('--report-peer');
    const t = this.#spawn(ns, argv, cgroup ? { cgroup } : {});
    const pid = t.child.pid!;
    let stderr = '';
    t.child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        t.child.kill('SIGKILL');
        reject(new Error(`backend server ${name} in ${ns}: ${why}: ${stderr.trim()}`));
      };
      t.child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      t.child.once('exit', (code, sig) => fail(`exited (${code ?? sig})`));
    });
    return {
      pid,
      pod,
      name,
      stop: async () => {
        t.child.kill('SIGTERM');
        await Promise.race([t.exited, sleep(2000)]);
        t.child.kill('SIGKILL');
        await t.exited;
      },
    };
  }

  /** Runs a probe (see probe.ts for the modes and flags) to completion and parses its JSON line. */
  runProbe(args: string[], opts: SpawnOptions = {}): Promise<ProbeResult> {
    return this.spawnProbe(args, opts).result();
  }

  /** Starts a probe and returns at once: for loops that run while the test changes things. */
  spawnProbe(args: string[], opts: SpawnOptions = {}): ProbeHandle {
    const ns = opts.ns ?? this.defaultNs();
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const cgroup = opts.inCgroup === false ? undefined : this.clientCgroup(ns);
    const t = this.#spawn(ns, [process.execPath, PROBE_SCRIPT, ...args], cgroup ? { cgroup } : {});
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let markStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      markStarted = resolve;
    });
    t.child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes(`${PROBE_STARTED}\n`)) markStarted();
    });
    t.child.once('exit', () => markStarted());
    t.child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      t.child.kill('SIGKILL');
    }, timeoutMs);
    const result = new Promise<ProbeResult>((resolve, reject) => {
      t.child.once('exit', (code, sig) => {
        clearTimeout(timer);
        const line = stdout.trim().split('\n').pop() ?? '';
        if (code === 0 && line.startsWith('{')) {
          try {
            resolve(JSON.parse(line) as ProbeResult);
            return;
          } catch {
            /* fall through */
          }
        }
        const why = timedOut ? `timed out after ${timeoutMs} ms` : `exited (${code ?? sig})`;
        reject(new Error(`probe ${args.join(' ')} in ${ns}: ${why}: ${stderr.trim() || stdout.trim()}`));
      });
    });
    // Unobserved failures must not crash the test process; result() still rejects for callers.
    result.catch(() => {});
    return {
      pid: t.child.pid!,
      started,
      result: () => result,
      // A SIGTERM before the probe handles it would kill it without a report.
      stop: async () => {
        await started;
        t.child.kill('SIGTERM');
        return result;
      },
      kill: () => {
        t.child.kill('SIGKILL');
      },
    };
  }

  /** Runs a command in one of the lab's namespaces; throws with its stderr if it fails. */
  async exec(ns: string, cmd: string[], opts: SpawnOptions & { keepSys?: boolean } = {}): Promise<ExecResult> {
    if (cmd.length === 0) throw new TypeError('exec needs a command');
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const cgroup = opts.inCgroup ? this.clientCgroup(ns) : undefined;
    const t = this.#spawn(ns, cmd, { ...(cgroup ? { cgroup } : {}), keepSys: opts.keepSys ?? false });
    let stdout = '';
    let stderr = '';
    t.child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    t.child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => t.child.kill('SIGKILL'), timeoutMs);
    const [code, sig] = await new Promise<[number | null, string | null]>((resolve) => {
      t.child.once('exit', (c, s) => resolve([c, s]));
    });
    clearTimeout(timer);
    if (code !== 0) {
      throw new Error(`${cmd.join(' ')} in ${ns}: exited (${code ?? sig}): ${stderr.trim()}`);
    }
    return { stdout, stderr };
  }

  /** Kills every process, deletes the namespaces, cgroups and bpffs directories. Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#teardown();
    return this.#destroyed;
  }

  async #teardown(): Promise<void> {
    liveLabs.delete(this);
    const problems: unknown[] = [];
    await this.#killWhere(() => true);
    for (const dir of this.#cgroups) await removeCgroup(dir).catch((e: unknown) => problems.push(e));
    for (const ns of this.deletionOrder([...this.#namespaces])) {
      for (const pid of netnsPids(ns)) killPid(pid);
      await ip(['netns', 'del', ns]).catch((e: unknown) => {
        if (listNetns().includes(ns)) problems.push(e);
      });
      this.#namespaces.delete(ns);
    }
    for (const dir of this.#bpffsDirs) {
      try {
        removeBpffsDirSync(dir);
      } catch (e) {
        problems.push(e);
      }
    }
    this.#releaseOwner();
    if (problems.length) throw new AggregateError(problems, `lab ${this.prefix}: cleanup incomplete`);
  }

  #releaseOwner(): void {
    if (!this.#ownerWritten) return;
    try {
      fs.unlinkSync(this.#ownerFile);
    } catch {
      /* gone */
    }
  }

  /** The exit-hook variant: synchronous, best effort. Not for normal use: call destroy(). */
  destroySync(): void {
    liveLabs.delete(this);
    this.#destroyed ??= Promise.resolve();
    for (const t of this.#children.values()) killPid(t.child.pid!);
    for (const dir of this.#cgroups) removeCgroupSync(dir);
    for (const ns of this.deletionOrder([...this.#namespaces])) removeNetnsSync(ns);
    this.#namespaces.clear();
    for (const dir of this.#bpffsDirs) {
      try {
        removeBpffsDirSync(dir);
      } catch {
        /* best effort */
      }
    }
    this.#releaseOwner();
  }

  static #sweepDeadOwners(): void {
    for (const o of readOwners()) {
      if (!ownerAlive(o)) LabBase.#sweepPrefix((n) => ownedBy(n, o.prefix), o.prefix);
    }
  }

  static #sweepPrefix(match: (name: string) => boolean, ownerPrefix?: string): SweepResult {
    const out: SweepResult = { namespaces: [], cgroups: [], bpffs: [] };
    let root: string | undefined;
    try {
      root = cgroup2Mount();
    } catch {
      /* no cgroup2: nothing to sweep there */
    }
    if (root) {
      for (const d of fs.readdirSync(root, { withFileTypes: true })) {
        if (d.isDirectory() && match(d.name) && removeCgroupSync(path.join(root, d.name))) out.cgroups.push(d.name);
      }
    }
    for (const ns of listNetns()) {
      if (!match(ns)) continue;
      removeNetnsSync(ns);
      out.namespaces.push(ns);
    }
    // Only a real bpffs: never rm -r under a plain /sys/fs/bpf directory of another file system.
    if (bpffsMounted()) {
      for (const d of fs.readdirSync(BPFFS_ROOT, { withFileTypes: true })) {
        if (!d.isDirectory() || !match(d.name)) continue;
        try {
          removeBpffsDirSync(path.join(BPFFS_ROOT, d.name));
          out.bpffs.push(d.name);
        } catch {
          /* left for the next sweep */
        }
      }
    }
    if (ownerPrefix) {
      try {
        fs.unlinkSync(path.join(OWNER_DIR, `${ownerPrefix}.json`));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  /**
   * Removes leftover namespaces, cgroups and bpffs directories whose names match (a string is a
   * name prefix, at least 3 chars) from earlier crashed runs. Labs whose owner process is alive
   * (this one's or another's) are left alone unless `force`. Names matching but without any owner
   * record are treated as leftovers.
   */
  static sweep(pattern: string | RegExp, opts: { force?: boolean } = {}): SweepResult {
    if (typeof pattern === 'string' && pattern.length < 3) {
      throw new RangeError('sweep prefix must be at least 3 chars, so it cannot match unrelated namespaces');
    }
    const matches = (n: string): boolean => (typeof pattern === 'string' ? n.startsWith(pattern) : pattern.test(n));
    const owners = readOwners();
    const live = opts.force ? [] : owners.filter(ownerAlive).map((o) => o.prefix);
    const res = LabBase.#sweepPrefix((n) => matches(n) && !live.some((p) => ownedBy(n, p)));
    for (const o of owners) {
      if (matches(o.prefix) && !live.includes(o.prefix)) {
        try {
          fs.unlinkSync(path.join(OWNER_DIR, `${o.prefix}.json`));
        } catch {
          /* gone */
        }
      }
    }
    return res;
  }
}
