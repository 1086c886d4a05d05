// A throwaway cluster node in network namespaces: a client/"node" netns with a bridge, N pod
// namespaces on it running lab backend servers, and a cgroup the agent attaches its hooks to.
// Kernel tests, the demo and benchmarks dial ClusterIPs only from inside these namespaces.
//
//   <prefix>-node   lo, br0 10.244.0.1/24 fd00:10:244::1/64, veth<i> (bridge ports)
//   <prefix>-pod<i> lo, eth0 10.244.0.(11+i)/24 fd00:10:244::(11+i)/64, default via br0
//   <cgroup2>/<prefix>      the clients (probes); attach the agent here
//   <cgroup2>/<prefix>-srv  the backend servers, so a kill of the cgroup reaps them all
//
// Every lab writes an owner record (/run/socklb-lab/<prefix>.json: pid + start time) before it
// creates anything, so a sweep can tell a crashed run's leftovers from a lab another live
// process is using at the same moment.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount } from '../agent/host.ts';
import { PROBE_STARTED, type ProbeResult } from './probe.ts';

export type { ProbeResult } from './probe.ts';

export interface LabOptions {
  /** Names every namespace and cgroup of the lab: [a-z0-9-], at most 20 chars, unique per run. */
  prefix: string;
  /** Pod namespaces to create at once (0..100; more with addPod). */
  backends: number;
  /** Give the bridge and the pods IPv6 addresses too (default true). */
  ipv6?: boolean;
}

export interface LabPod {
  /** Stable for the pod's life; its address is derived from it and never reused in a lab. */
  index: number;
  /** `pod<index>`: the name its servers answer with unless told otherwise. */
  name: string;
  ns: string;
  ipv4: string;
  /** Undefined when the lab was made with `ipv6: false`. */
  ipv6?: string;
  /** The bridge port in the node namespace (the pod side is always `eth0`). */
  veth: string;
}

export interface ServerOptions {
  tcp?: number[];
  udp?: number[];
  /** What the server answers with; default the pod's name. */
  name?: string;
}

export interface ServerHandle {
  pid: number;
  pod: LabPod;
  name: string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Kill the process after this long (default: 120 s for probes, 10 s for exec). */
  timeoutMs?: number;
  /** Namespace to run in, one of the lab's; default the node namespace. */
  ns?: string;
  /** Run inside the lab's client cgroup (default true for probes, false for exec). */
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
}

/** Addresses of the node side of the pod network. */
export const NODE_IPV4 = '10.244.0.1';
export const NODE_IPV6 = 'fd00:10:244::1';
const FIRST_POD_HOST = 11;
const MAX_POD_INDEX = 254 - FIRST_POD_HOST;
const IP_TIMEOUT_MS = 10_000;
const READY_TIMEOUT_MS = 15_000;
const OWNER_DIR = '/run/socklb-lab';
const PREFIX_RE = /^[a-z0-9][a-z0-9-]{0,19}$/;

const LAB_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROBE_SCRIPT = path.join(LAB_DIR, 'probe.ts');
const SERVER_SCRIPT = path.join(LAB_DIR, 'backend-server.ts');

// `$$` is the pid we spawned; exec keeps it, so killing child.pid kills the final node process.
const IN_CGROUP = 'echo $$ > "$1/cgroup.procs" || exit 97; shift; exec ip netns exec "$@"';
const NO_CGROUP = 'shift; exec ip netns exec "$@"';

function ip(args: string[], input?: string): Promise<string> {
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

function listNetns(): string[] {
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
function startTime(pid: number): string | undefined {
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

/** Kills everything in a cgroup and removes it; bounded wait for the kill to land. */
function removeCgroupSync(dir: string): boolean {
  if (!fs.existsSync(dir)) return true;
  for (let i = 0; i < 300; i++) {
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
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    }
    sleepSync(10);
  }
  return false;
}

async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (!fs.existsSync(dir)) return;
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    } catch {
      /* see removeCgroupSync */
    }
    try {
      for (const p of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (p) killPid(Number(p));
    } catch {
      /* gone */
    }
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    }
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

// ---- cleanup on exit / Ctrl-C ------------------------------------------------------------

const liveLabs = new Set<NetnsLab>();
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

// ---- the lab --------------------------------------------------------------------------

interface Tracked {
  child: ChildProcess;
  ns: string;
  exited: Promise<void>;
}

export class NetnsLab {
  readonly prefix: string;
  readonly nodeNs: string;
  /** The client cgroup: attach the agent's cgroup programs here. */
  readonly cgroupPath: string;
  /** The backend servers' cgroup (a sibling, so client hooks never touch server sockets). */
  readonly serverCgroupPath: string;
  readonly ipv6: boolean;
  readonly nodeAddress: { ipv4: string; ipv6?: string };

  #pods = new Map<number, LabPod>();
  #nextIndex = 0;
  #namespaces = new Set<string>();
  #cgroups: string[] = [];
  #children = new Map<number, Tracked>();
  #spawnedPids: number[] = [];
  #ownerFile: string;
  #ownerWritten = false;
  #destroyed: Promise<void> | undefined;

  private constructor(prefix: string, ipv6: boolean) {
    this.prefix = prefix;
    this.ipv6 = ipv6;
    this.nodeNs = `${prefix}-node`;
    const root = cgroup2Mount();
    this.cgroupPath = path.join(root, prefix);
    this.serverCgroupPath = path.join(root, `${prefix}-srv`);
    this.nodeAddress = ipv6 ? { ipv4: NODE_IPV4, ipv6: NODE_IPV6 } : { ipv4: NODE_IPV4 };
    this.#ownerFile = path.join(OWNER_DIR, `${prefix}.json`);
  }

  /** `slb-<tag>-<4 hex>`: short and unique per run. */
  static uniquePrefix(tag: string): string {
    if (!/^[a-z0-9]{1,10}$/.test(tag)) throw new TypeError(`tag must be 1-10 chars of [a-z0-9], got "${tag}"`);
    return `slb-${tag}-${randomBytes(2).toString('hex')}`;
  }

  static async create(opts: LabOptions): Promise<NetnsLab> {
    if (!PREFIX_RE.test(opts.prefix)) throw new TypeError(`prefix must match ${PREFIX_RE}, got "${opts.prefix}"`);
    if (!Number.isInteger(opts.backends) || opts.backends < 0 || opts.backends > 100) {
      throw new RangeError(`backends must be an integer in 0..100, got ${opts.backends}`);
    }
    // Leftovers of crashed runs (their owner is dead) would collide on names or waste memory.
    NetnsLab.#sweepDeadOwners();
    const lab = new NetnsLab(opts.prefix, opts.ipv6 ?? true);
    await lab.#setup(opts.backends).catch(async (err: unknown) => {
      await lab.destroy().catch(() => {});
      throw err;
    });
    return lab;
  }

  /** Live pods, by index. */
  get pods(): LabPod[] {
    return [...this.#pods.values()].sort((a, b) => a.index - b.index);
  }

  /** The pod with this index; throws if it was removed or never existed. */
  pod(index: number): LabPod {
    const p = this.#pods.get(index);
    if (!p) throw new RangeError(`lab ${this.prefix} has no pod ${index}`);
    return p;
  }

  /** Pids of every process the lab spawned (servers, probes, exec), alive or not. */
  get spawnedPids(): number[] {
    return [...this.#spawnedPids];
  }

  get destroyed(): boolean {
    return this.#destroyed !== undefined;
  }

  async #setup(backends: number): Promise<void> {
    fs.mkdirSync(OWNER_DIR, { recursive: true });
    // 'wx': an existing record means the prefix is in use (or was not swept): refuse, touch nothing.
    fs.writeFileSync(this.#ownerFile, JSON.stringify({ prefix: this.prefix, pid: process.pid, start: startTime(process.pid) ?? '' }), {
      flag: 'wx',
    });
    this.#ownerWritten = true;
    liveLabs.add(this);
    installHooks();
    for (const dir of [this.cgroupPath, this.serverCgroupPath]) {
      fs.mkdirSync(dir); // EEXIST: someone else's; we do not adopt it
      this.#cgroups.push(dir);
    }
    await this.#addNetns(this.nodeNs);
    const v6 = this.ipv6 ? [`addr add ${NODE_IPV6}/64 dev br0 nodad`] : [];
    await ip(
      ['-n', this.nodeNs, '-batch', '-'],
      [
        'link set lo up',
        // No STP (ports forward at once) and no snooping (IPv6 neighbour discovery must just work).
        'link add br0 type bridge stp_state 0 mcast_snooping 0',
        `addr add ${NODE_IPV4}/24 dev br0`,
        ...v6,
        'link set br0 up',
        '',
      ].join('\n'),
    );
    const made: Promise<LabPod>[] = [];
    for (let i = 0; i < backends; i++) made.push(this.addPod());
    const results = await Promise.allSettled(made);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  async #addNetns(ns: string): Promise<void> {
    await ip(['netns', 'add', ns]);
    this.#namespaces.add(ns);
  }

  #assertLive(): void {
    if (this.#destroyed) throw new Error(`lab ${this.prefix} is destroyed`);
  }

  /** A new pod namespace on the bridge, with the next unused index (so a fresh address). */
  async addPod(): Promise<LabPod> {
    this.#assertLive();
    const index = this.#nextIndex;
    if (index > MAX_POD_INDEX) throw new RangeError(`lab ${this.prefix}: no pod addresses left`);
    this.#nextIndex++;
    const host = FIRST_POD_HOST + index;
    const pod: LabPod = {
      index,
      name: `pod${index}`,
      ns: `${this.prefix}-pod${index}`,
      ipv4: `10.244.0.${host}`,
      veth: `veth${index}`,
    };
    if (this.ipv6) pod.ipv6 = `fd00:10:244::${host}`;
    await this.#addNetns(pod.ns);
    await ip(
      ['-n', this.nodeNs, '-batch', '-'],
      [`link add ${pod.veth} type veth peer name eth0 netns ${pod.ns}`, `link set ${pod.veth} master br0 up`, ''].join('\n'),
    );
    const v6 = pod.ipv6 ? [`addr add ${pod.ipv6}/64 dev eth0 nodad`] : [];
    const v6route = pod.ipv6 ? [`route add default via ${NODE_IPV6}`] : [];
    await ip(
      ['-n', pod.ns, '-batch', '-'],
      [
        'link set lo up',
        `addr add ${pod.ipv4}/24 dev eth0`,
        ...v6,
        'link set eth0 up',
        `route add default via ${NODE_IPV4}`,
        ...v6route,
        '',
      ].join('\n'),
    );
    this.#pods.set(index, pod);
    return pod;
  }

  /** Kills the pod's processes and deletes its namespace: its addresses stop answering at once. */
  async removePod(index: number): Promise<void> {
    this.#assertLive();
    const pod = this.pod(index);
    this.#pods.delete(index);
    await this.#killWhere((t) => t.ns === pod.ns);
    // Unplug first: netns teardown is asynchronous in the kernel, the link deletion is not.
    await ip(['-n', this.nodeNs, 'link', 'del', pod.veth]).catch(() => {});
    for (const pid of netnsPids(pod.ns)) killPid(pid);
    await ip(['netns', 'del', pod.ns]);
    this.#namespaces.delete(pod.ns);
  }

  #ownNs(ns: string): string {
    // Never run lab traffic in the root namespace or someone else's.
    if (!this.#namespaces.has(ns)) throw new Error(`${ns} is not a namespace of lab ${this.prefix}`);
    return ns;
  }

  #spawn(ns: string, argv: string[], cgroup: string | undefined): Tracked {
    this.#assertLive();
    const args = cgroup
      ? ['-c', IN_CGROUP, 'bash', cgroup, this.#ownNs(ns), ...argv]
      : ['-c', NO_CGROUP, 'bash', '-', this.#ownNs(ns), ...argv];
    const child = spawn('bash', args, { stdio: ['ignore', 'pipe', 'pipe'] });
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

  /** Starts a backend server in pod `index`; resolves once every socket listens. */
  async startServer(index: number, opts: ServerOptions): Promise<ServerHandle> {
    const pod = this.pod(index);
    const name = opts.name ?? pod.name;
    const tcp = opts.tcp ?? [];
    const udp = opts.udp ?? [];
    const argv = [process.execPath, SERVER_SCRIPT, '--name', name];
    if (tcp.length) argv.push('--tcp', tcp.join(','));
    if (udp.length) argv.push('--udp', udp.join(','));
    const t = this.#spawn(pod.ns, argv, this.serverCgroupPath);
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
        reject(new Error(`backend server ${name} in ${pod.ns}: ${why}: ${stderr.trim()}`));
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
    const handle: ServerHandle = {
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
    return handle;
  }

  /** Runs a probe (see probe.ts for the modes and flags) to completion and parses its JSON line. */
  runProbe(args: string[], opts: SpawnOptions = {}): Promise<ProbeResult> {
    return this.spawnProbe(args, opts).result();
  }

  /** Starts a probe and returns at once: for loops that run while the test changes things. */
  spawnProbe(args: string[], opts: SpawnOptions = {}): ProbeHandle {
    const ns = opts.ns ?? this.nodeNs;
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const t = this.#spawn(ns, [process.execPath, PROBE_SCRIPT, ...args], opts.inCgroup === false ? undefined : this.cgroupPath);
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
  async exec(ns: string, cmd: string[], opts: SpawnOptions = {}): Promise<ExecResult> {
    if (cmd.length === 0) throw new TypeError('exec needs a command');
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const t = this.#spawn(ns, cmd, opts.inCgroup ? this.cgroupPath : undefined);
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

  /** Kills every process, deletes the namespaces and cgroups. Idempotent; safe after a failed create. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#teardown();
    return this.#destroyed;
  }

  async #teardown(): Promise<void> {
    liveLabs.delete(this);
    const problems: unknown[] = [];
    await this.#killWhere(() => true);
    for (const dir of this.#cgroups) await removeCgroup(dir).catch((e: unknown) => problems.push(e));
    // Pods before the node, so the node netns never outlives a pod's veth peer by much.
    const order = [...this.#namespaces].sort((a, b) => Number(a === this.nodeNs) - Number(b === this.nodeNs));
    for (const ns of order) {
      for (const pid of netnsPids(ns)) killPid(pid);
      await ip(['netns', 'del', ns]).catch((e: unknown) => {
        if (listNetns().includes(ns)) problems.push(e);
      });
      this.#namespaces.delete(ns);
    }
    this.#pods.clear();
    if (this.#ownerWritten) {
      try {
        fs.unlinkSync(this.#ownerFile);
      } catch {
        /* gone */
      }
    }
    if (problems.length) throw new AggregateError(problems, `lab ${this.prefix}: cleanup incomplete`);
  }

  /** The exit-hook variant: synchronous, best effort. Not for normal use: call destroy(). */
  destroySync(): void {
    liveLabs.delete(this);
    this.#destroyed ??= Promise.resolve();
    for (const t of this.#children.values()) killPid(t.child.pid!);
    for (const dir of this.#cgroups) removeCgroupSync(dir);
    for (const ns of this.#namespaces) removeNetnsSync(ns);
    this.#namespaces.clear();
    if (this.#ownerWritten) {
      try {
        fs.unlinkSync(this.#ownerFile);
      } catch {
        /* gone */
      }
    }
  }

  static #sweepDeadOwners(): void {
    for (const o of readOwners()) {
      if (!ownerAlive(o)) NetnsLab.#sweepPrefix((n) => ownedBy(n, o.prefix), o.prefix);
    }
  }

  static #sweepPrefix(match: (name: string) => boolean, ownerPrefix?: string): SweepResult {
    const out: SweepResult = { namespaces: [], cgroups: [] };
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
   * Removes leftover namespaces and cgroups whose names match (a string is a name prefix, at
   * least 3 chars) from earlier crashed runs. Labs whose owner process is alive (this one's or
   * another's) are left alone unless `force`. Names matching but without any owner record are
   * treated as leftovers.
   */
  static sweep(pattern: string | RegExp, opts: { force?: boolean } = {}): SweepResult {
    if (typeof pattern === 'string' && pattern.length < 3) {
      throw new RangeError('sweep prefix must be at least 3 chars, so it cannot match unrelated namespaces');
    }
    const matches = (n: string): boolean => (typeof pattern === 'string' ? n.startsWith(pattern) : pattern.test(n));
    const owners = readOwners();
    const live = opts.force ? [] : owners.filter(ownerAlive).map((o) => o.prefix);
    const res = NetnsLab.#sweepPrefix((n) => matches(n) && !live.some((p) => ownedBy(n, p)));
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
