// `npm run bench [-- --quick]`: socklb against kube-proxy's iptables (legacy and nft back ends) and
// nftables modes, on this machine, in one run, in network namespaces it makes and removes.
// Writes bench/results/<date>-<kernel>.{json,svg,md}; a full run also refreshes docs/benchmarks.md.
// Every figure that matters is a ratio to the direct connect measured in the same run.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup as cleanupDatapath, SOCK_OBJECT } from '../src/agent/datapath.ts';
import { NetnsLab } from '../src/lab/netns-lab.ts';
import { iptSepChain } from '../src/lab/rules/chain-names.ts';
import { IPTABLES_EMPTY, iptablesRestore } from '../src/lab/rules/iptables.ts';
import { nftablesEndpointChange, nftablesRuleset } from '../src/lab/rules/nftables.ts';
import {
  type BenchService,
  clusterOf,
  dialledService,
  SERVICE_CIDR,
  SERVICE_PORT,
  TARGET_PORT,
  TARGET_VIP,
  withOneEndpointChanged,
} from '../src/lab/services.ts';
import { xdpContextMissing } from '../test/support/xdp-fixture.ts';
import { renderChart } from './chart.ts';
import { measureHookCost } from './hook-cost.ts';
import { renderMarkdown, updateDocs } from './report.ts';
import type { SocklbChildResult } from './socklb-child.ts';
import type { BenchResults, ClientRun, ConnectPoint, SystemName } from './types.ts';
import { measureXdpPacket } from './xdp-packet.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const DEFAULT_OUT = join(HERE, 'results');
const BALANCE_VIP_10 = '10.96.0.11';

export interface BenchOptions {
  quick: boolean;
  out: string;
  ns: number[];
  rounds: number;
  count: number;
  warmup: number;
  balance: number;
  /** Longest one ruleset load may take; a system slower than this at some N is skipped above it. */
  capMs: number;
  docs: boolean;
  systems: SystemName[];
}

const ALL_SYSTEMS: SystemName[] = ['direct', 'socklb', 'nftables', 'iptables-nft', 'iptables-legacy'];

export function parseArgs(argv: string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const o: BenchOptions = {
    quick,
    out: DEFAULT_OUT,
    ns: quick ? [1, 1000] : [1, 1000, 10000, 50000],
    rounds: quick ? 5 : 7,
    count: quick ? 2000 : 5000,
    warmup: quick ? 100 : 300,
    balance: quick ? 3000 : 30000,
    capMs: quick ? 60_000 : 150_000,
    docs: !quick,
    systems: ALL_SYSTEMS,
  };
  const int = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${flag} must be an integer in ${min}..${max}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    switch (flag) {
      case '--quick':
        break;
      case '--out':
        o.out = resolve(v ?? '');
        o.docs = false;
        i++;
        break;
      case '--n':
        o.ns = (v ?? '').split(',').map((x) => int('--n', x, 1, 200_000));
        i++;
        break;
      case '--rounds':
        o.rounds = int(flag, v, 1, 50);
        i++;
        break;
      case '--count':
        o.count = int(flag, v, 10, 1_000_000);
        i++;
        break;
      case '--balance':
        o.balance = int(flag, v, 10, 1_000_000);
        i++;
        break;
      case '--cap-s':
        o.capMs = 1000 * int(flag, v, 1, 3600);
        i++;
        break;
      case '--no-docs':
        o.docs = false;
        break;
      case '--systems': {
        const list = (v ?? '').split(',') as SystemName[];
        for (const s of list) if (!ALL_SYSTEMS.includes(s)) throw new TypeError(`--systems: unknown system ${s}`);
        o.systems = ALL_SYSTEMS.filter((s) => s === 'direct' || list.includes(s));
        i++;
        break;
      }
      default:
        throw new TypeError(`unknown argument ${flag} (see docs/benchmarks.md)`);
    }
  }
  return o;
}

// ---- processes ---------------------------------------------------------------------------

const children = new Set<number>();

/** Runs a program with a hard time limit; resolves with its exit and output, never rejects on exit code. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) children.add(child.pid);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 20_000) stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (child.pid) children.delete(child.pid);
      resolveRun({ code, stdout: Buffer.concat(out).toString(), stderr });
    });
  });
}

function lastJson<T>(text: string, what: string): T {
  const line = text.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what}: no JSON result in ${JSON.stringify(text.slice(-500))}`);
  }
}

interface Timed {
  exit: number;
  signal: number;
  elapsed_ns: number;
  maxrss_kb: number;
}

// ---- the lab -----------------------------------------------------------------------------

interface Bin {
  client: string;
  server: string;
  timed: string;
}

function buildPrograms(dir: string): Bin {
  const bin = { client: join(dir, 'client'), server: join(dir, 'server'), timed: join(dir, 'timed') };
  for (const [name, path] of Object.entries(bin)) {
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', path, join(HERE, `${name}.c`)], { stdio: 'inherit', timeout: 60_000 });
  }
  return bin;
}

class Bench {
  readonly o: BenchOptions;
  readonly bin: Bin;
  readonly work: string;
  lab: NetnsLab | undefined;
  bpffs: string | undefined;
  readonly labs: string[] = [];
  readonly log: (line: string) => void;

  constructor(o: BenchOptions, bin: Bin, work: string) {
    this.o = o;
    this.bin = bin;
    this.work = work;
    this.log = (line) => process.stderr.write(`bench: ${line}\n`);
  }

  async openLab(pods: number): Promise<NetnsLab> {
    const lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('bench'), backends: pods, ipv6: false });
    this.lab = lab;
    this.labs.push(lab.prefix);
    // ClusterIPs need a route for the connect() that iptables/nftables DNAT afterwards (socklb needs none).
    await lab.exec(lab.nodeNs, ['ip', 'route', 'add', SERVICE_CIDR, 'dev', 'br0']);
    await lab.exec(lab.nodeNs, ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000']);
    for (const pod of lab.pods) {
      await lab.exec(pod.ns, ['sysctl', '-qw', 'net.core.somaxconn=65535', 'net.ipv4.tcp_max_syn_backlog=65535']);
      // Not awaited: the server runs until the lab is destroyed (or its own --max-seconds).
      lab
        .exec(pod.ns, [this.bin.server, '--port', String(TARGET_PORT), '--name', pod.name, '--max-seconds', '7200'], {
          timeoutMs: 7_200_000,
        })
        .catch(() => {});
    }
    for (const pod of lab.pods) {
      const until = Date.now() + 10_000;
      for (;;) {
        const ss = await lab.exec(pod.ns, ['ss', '-Hltn', `sport = :${TARGET_PORT}`]);
        if (ss.stdout.trim()) break;
        if (Date.now() > until) throw new Error(`server in ${pod.ns} is not listening after 10 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return lab;
  }

  async closeLab(): Promise<void> {
    this.removeSocklb();
    await this.lab?.destroy();
    this.lab = undefined;
  }

  removeSocklb(): void {
    if (!this.bpffs) return;
    try {
      cleanupDatapath(this.bpffs);
    } catch {
      rmSync(this.bpffs, { recursive: true, force: true });
    }
    this.bpffs = undefined;
  }

  /** One client run in the lab's client cgroup + node netns (exactly where NetnsLab.runProbe runs). */
  async client(target: string, count: number, read: boolean): Promise<ClientRun> {
    const lab = this.lab!;
    const durationMs = Math.max(20_000, count * 5);
    const args = [
      this.bin.client,
      '--target',
      target,
      '--count',
      String(count),
      '--duration-ms',
      String(durationMs),
      '--warmup',
      String(read ? 0 : this.o.warmup),
    ];
    if (read) args.push('--read');
    const r = await lab.exec(lab.nodeNs, args, { inCgroup: true, timeoutMs: durationMs + 15_000 });
    return lastJson<ClientRun>(r.stdout, `client ${target}`);
  }

  async rounds(target: string): Promise<ClientRun[]> {
    const out: ClientRun[] = [];
    for (let i = 0; i < this.o.rounds; i++) out.push(await this.client(target, this.o.count, false));
    return out;
  }

  /** Runs a command in the node netns under `timed`; bounded by the cap. */
  async timed(argv: string[]): Promise<Timed & { stderr: string }> {
    const lab = this.lab!;
    const r = await run(
      'ip',
      ['netns', 'exec', lab.nodeNs, this.bin.timed, '--timeout-ms', String(this.o.capMs), '--', ...argv],
      this.o.capMs + 30_000,
    );
    const t = lastJson<Timed>(r.stdout, argv[0]!);
    return { ...t, stderr: r.stderr.trim() };
  }

  async nodeText(argv: string[]): Promise<string> {
    const r = await run('ip', ['netns', 'exec', this.lab!.nodeNs, ...argv], 120_000);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async socklb(others: number, dialled: BenchService[], change: boolean): Promise<SocklbChildResult> {
    const lab = this.lab!;
    this.bpffs = `/sys/fs/bpf/${lab.prefix}`;
    const input = JSON.stringify({ bpffs: this.bpffs, cgroup: lab.cgroupPath, others, dialled, change });
    const r = await run(process.execPath, [join(HERE, 'socklb-child.ts'), input], this.o.capMs);
    if (r.code !== 0) throw new Error(`socklb child failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
    return lastJson<SocklbChildResult>(r.stdout, 'socklb child');
  }

  write(name: string, text: string): string {
    const path = join(this.work, name);
    writeFileSync(path, text);
    return path;
  }
}

// ---- measurements ------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function point(n: number, system: SystemName, runs: ClientRun[]): ConnectPoint {
  return {
    n,
    system,
    runs,
    meanNs: median(runs.map((r) => r.mean_ns)),
    p99Ns: median(runs.map((r) => r.p99_ns)),
    connectsPerS: median(runs.map((r) => r.connects_per_s)),
    failed: runs.reduce((a, r) => a + r.failed, 0),
    ratio: NaN,
  };
}

const ms = (t: Timed): number => t.elapsed_ns / 1e6;

function checkTimed(t: Timed & { stderr: string }, what: string): 'ok' | 'timeout' {
  if (t.signal === 9) return 'timeout';
  if (t.exit !== 0) throw new Error(`${what} failed (exit ${t.exit}): ${t.stderr.slice(0, 1000)}`);
  return 'ok';
}

async function connectBlock(b: Bench, n: number, results: BenchResults, slow: Set<SystemName>): Promise<void> {
  const lab = await b.openLab(3);
  try {
    const pods = lab.pods.map((p) => p.ipv4);
    const target = dialledService('target', TARGET_VIP, pods);
    const cluster = clusterOf(n, [target]);
    const vip = `${TARGET_VIP}:${SERVICE_PORT}`;
    const direct = `${pods[0]}:${TARGET_PORT}`;
    const directRuns: ClientRun[] = [];
    const baseline = async () => {
      directRuns.push(...(await b.rounds(direct)));
    };
    const change = withOneEndpointChanged(cluster);
    const staleSep = iptSepChain(change.before, change.before.endpoints[change.before.endpoints.length - 1]!);
    const want = (s: SystemName) => b.o.systems.includes(s) && !slow.has(s);

    await baseline();
    if (want('socklb')) {
      b.log(`N=${n}: socklb`);
      const s = await b.socklb(n, [target], true);
      results.programming.push({
        n,
        system: 'socklb',
        status: 'ok',
        programMs: s.program.reconcileMs,
        changeMs: s.change?.reconcileMs ?? null,
        details: {
          desiredMs: s.program.desiredMs,
          changeDesiredMs: s.change?.desiredMs,
          writes: s.program.writes,
          changeWrites: s.change?.writes,
        },
      });
      results.memory.push({
        n,
        system: 'socklb',
        kernelBytes: s.memlockTotal,
        processRssBytes: s.rssAfterBytes,
        textBytes: null,
        details: { memlock: s.memlock, capacity: s.capacity, rssBeforeBytes: s.rssBeforeBytes, heapUsedBytes: s.heapUsedBytes },
      });
      results.scrape?.push({ n, frontends: s.frontends, ...s.scrape });
      results.connect.push(point(n, 'socklb', await b.rounds(vip)));
      results.hook?.push(
        await measureHookCost(
          n,
          lab.cgroupPath,
          () => b.client(vip, b.o.count, false),
          () => b.client(direct, b.o.count, false),
        ),
      );
      b.removeSocklb();
      await baseline();
    }
    if (want('nftables')) {
      b.log(`N=${n}: nftables`);
      const full = b.write(`nft-${n}.nft`, nftablesRuleset(cluster));
      const t = await b.timed(['nft', '-f', full]);
      if (checkTimed(t, 'nft -f') === 'timeout') {
        slow.add('nftables');
        results.programming.push({ n, system: 'nftables', status: 'timeout', programMs: b.o.capMs, changeMs: null, details: {} });
      } else {
        const c = await b.timed(['nft', '-f', b.write(`nft-${n}-change.nft`, nftablesEndpointChange(change.before, change.changed))]);
        checkTimed(c, 'nft -f (change)');
        const text = await b.nodeText(['nft', 'list', 'ruleset']);
        results.programming.push({ n, system: 'nftables', status: 'ok', programMs: ms(t), changeMs: ms(c), details: {} });
        results.memory.push({
          n,
          system: 'nftables',
          kernelBytes: null,
          processRssBytes: t.maxrss_kb * 1024,
          textBytes: Buffer.byteLength(text),
          details: { inputBytes: Buffer.byteLength(readFileSync(full)) },
        });
        results.connect.push(point(n, 'nftables', await b.rounds(vip)));
      }
      await b.nodeText(['nft', 'flush', 'ruleset']);
      rmSync(full, { force: true });
      await baseline();
    }
    for (const system of ['iptables-nft', 'iptables-legacy'] as const) {
      if (!want(system)) continue;
      b.log(`N=${n}: ${system}`);
      const tool = system === 'iptables-nft' ? 'iptables-nft' : 'iptables-legacy';
      const full = b.write(`ipt-${n}.txt`, iptablesRestore(cluster, { full: true }));
      const t = await b.timed([`${tool}-restore`, full]);
      if (checkTimed(t, `${tool}-restore`) === 'timeout') {
        slow.add(system);
        results.programming.push({ n, system, status: 'timeout', programMs: b.o.capMs, changeMs: null, details: {} });
      } else {
        const text = await b.nodeText([`${tool}-save`]);
        const c = await b.timed([`${tool}-restore`, b.write(`ipt-${n}-change.txt`, iptablesRestore(change.cluster, { full: true }))]);
        checkTimed(c, `${tool}-restore (change)`);
        const partialFile = b.write(
          `ipt-${n}-partial.txt`,
          iptablesRestore(change.cluster, { onlyServices: [change.changed], staleChains: [staleSep] }),
        );
        const p = await b.timed([`${tool}-restore`, '--noflush', partialFile]);
        const partial = checkTimed(p, `${tool}-restore --noflush (partial)`);
        results.programming.push({
          n,
          system,
          status: 'ok',
          programMs: ms(t),
          changeMs: ms(c),
          details: { partialChangeMs: partial === 'ok' ? ms(p) : null, partialStatus: partial },
        });
        results.memory.push({
          n,
          system,
          kernelBytes: null,
          processRssBytes: t.maxrss_kb * 1024,
          textBytes: Buffer.byteLength(text),
          details: { inputBytes: Buffer.byteLength(readFileSync(full)) },
        });
        results.connect.push(point(n, system, await b.rounds(vip)));
      }
      for (const f of [`ipt-${n}.txt`, `ipt-${n}-change.txt`, `ipt-${n}-partial.txt`]) rmSync(join(b.work, f), { force: true });
      if (system === 'iptables-nft') {
        await b.nodeText(['nft', 'flush', 'ruleset']);
        await baseline();
      } else {
        // Legacy tables stay registered in a netns once used: this system runs last, the lab goes next.
        await b.timed([`${tool}-restore`, b.write('empty.txt', IPTABLES_EMPTY)]);
      }
    }
    const d = point(n, 'direct', directRuns);
    d.ratio = 1;
    results.connect.push(d);
    for (const p of results.connect) if (p.n === n && p.system !== 'direct') p.ratio = p.meanNs / d.meanNs;
  } finally {
    await b.closeLab();
  }
}

function spread(counts: Record<string, number>, backends: number): number {
  const values = Object.values(counts);
  if (values.length < backends) return Infinity;
  return Math.max(...values) / Math.min(...values);
}

async function balanceBlock(b: Bench, results: BenchResults): Promise<void> {
  const lab = await b.openLab(10);
  try {
    const pods = lab.pods.map((p) => p.ipv4);
    const dialled = [dialledService('target3', TARGET_VIP, pods.slice(0, 3)), dialledService('target10', BALANCE_VIP_10, pods)];
    const measure = async (system: SystemName) => {
      for (const [vip, backends] of [
        [TARGET_VIP, 3],
        [BALANCE_VIP_10, 10],
      ] as const) {
        const r = await b.client(`${vip}:${SERVICE_PORT}`, b.o.balance, true);
        results.balance.push({
          system,
          backends,
          connections: b.o.balance,
          ok: r.ok,
          failed: r.failed,
          counts: r.replies,
          maxMinRatio: spread(r.replies, backends),
        });
      }
    };
    if (b.o.systems.includes('socklb')) {
      b.log('balance: socklb');
      await b.socklb(0, dialled, false);
      await measure('socklb');
      b.removeSocklb();
    }
    if (b.o.systems.includes('nftables')) {
      b.log('balance: nftables');
      const t = await b.timed(['nft', '-f', b.write('balance.nft', nftablesRuleset(dialled))]);
      checkTimed(t, 'nft -f');
      await measure('nftables');
      await b.nodeText(['nft', 'flush', 'ruleset']);
    }
    if (b.o.systems.includes('iptables-legacy')) {
      b.log('balance: iptables-legacy');
      const t = await b.timed(['iptables-legacy-restore', b.write('balance.txt', iptablesRestore(dialled, { full: true }))]);
      checkTimed(t, 'iptables-legacy-restore');
      await measure('iptables-legacy');
    }
  } finally {
    await b.closeLab();
  }
}

function tool(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
        .trim()
        .split('\n')[0] ?? ''
    );
  } catch {
    return 'unavailable';
  }
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new Error('npm run bench needs root (network namespaces, BPF, iptables)');
  for (const t of ['cc', 'nft', 'iptables-legacy-restore', 'iptables-nft-restore', 'ss']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${t} is missing: run bash tools/setup.sh (Debian: build-essential nftables iptables iproute2)`);
    }
  }
  if (!existsSync(SOCK_OBJECT)) throw new Error(`${SOCK_OBJECT} is missing: run bash tools/setup.sh`);
}

export async function runBench(o: BenchOptions, argv: string[]): Promise<{ json: string; svg: string; md: string; results: BenchResults }> {
  preflight();
  const work = mkdtempSync(join(tmpdir(), 'socklb-bench-'));
  let bench: Bench | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    bench?.removeSocklb();
    rmSync(work, { recursive: true, force: true });
    process.stderr.write(`bench: ${sig}: cleaned up\n`);
    // The labs' exit hook removes their namespaces and cgroups.
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = new Date();
  try {
    bench = new Bench(o, buildPrograms(work), work);
    const results: BenchResults = {
      schema: 1,
      mode: o.quick ? 'quick' : 'full',
      command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
      startedAt: started.toISOString(),
      finishedAt: '',
      host: {
        kernel: release(),
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? '',
        node: process.version,
        iptables: tool('iptables-legacy', ['--version']),
        nft: tool('nft', ['--version']),
      },
      params: { ns: o.ns, rounds: o.rounds, count: o.count, warmup: o.warmup, balance: o.balance, capMs: o.capMs, systems: o.systems },
      connect: [],
      programming: [],
      memory: [],
      scrape: [],
      hook: [],
      balance: [],
      made: { labs: bench.labs, workDir: work },
    };
    const slow = new Set<SystemName>();
    for (const n of o.ns) {
      bench.log(`N=${n}: measuring (${o.rounds} rounds of ${o.count} connects per system)`);
      await connectBlock(bench, n, results, slow);
    }
    await balanceBlock(bench, results);
    const xdpMissing = xdpContextMissing();
    if (xdpMissing) {
      bench.log(`xdp: not measured: ${xdpMissing}`);
    } else {
      bench.log('xdp: cost per packet (BPF_PROG_TEST_RUN)');
      results.xdp = measureXdpPacket({ repeat: o.quick ? 100_000 : 1_000_000, rounds: o.quick ? 3 : 5 });
    }
    results.finishedAt = new Date().toISOString();

    mkdirSync(o.out, { recursive: true });
    const base = join(o.out, `${started.toISOString().slice(0, 10)}-${release()}${o.quick ? '-quick' : ''}`);
    const json = `${base}.json`;
    const svg = `${base}.svg`;
    const md = `${base}.md`;
    writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(svg, renderChart(results));
    writeFileSync(md, renderMarkdown(results, relative(ROOT, svg)));
    if (o.docs) updateDocs(join(ROOT, 'docs', 'benchmarks.md'), renderMarkdown(results, relative(join(ROOT, 'docs'), svg)));
    return { json, svg, md, results };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await bench?.closeLab().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  runBench(parseArgs(argv), argv).then(
    (r) => {
      process.stdout.write(readFileSync(r.md, 'utf8'));
      process.stdout.write(
        `\nwrote ${relative(process.cwd(), r.json)}, ${relative(process.cwd(), r.svg)}, ${relative(process.cwd(), r.md)}\n`,
      );
    },
    (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
