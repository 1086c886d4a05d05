// The lab's client: bounded work against one target, then ONE JSON line on stdout. Run inside the
// client cgroup + node netns (NetnsLab.runProbe does that), so the agent's cgroup hooks see it.
//   node src/lab/probe.ts tcp --target 10.96.0.10:80 --count 20
//   node src/lab/probe.ts udp --target [fd00::10]:53 --count 5 --connected --stop-on-error
//   node src/lab/probe.ts udp --target 192.168.77.11:30053 --count 40 --new-socket
//   node src/lab/probe.ts connect-only --target 10.96.0.10:80 --count 1000
//   node src/lab/probe.ts tcp --target 10.96.0.10:80 --count 10 --bind 10.244.0.201
//   node src/lab/probe.ts tcp --target 10.96.0.10:80 --count 20 --hold
// SIGTERM ends the run early and still prints the result so far (stopped: true). With --hold the
// probe prints its result once every connection is made and keeps them all open until it is
// stopped (SIGTERM) or killed: what a least-connection scheduler sees as busy.

import * as dgram from 'node:dgram';
import * as net from 'node:net';

export type ProbeMode = 'tcp' | 'udp' | 'connect-only';

/** The line a probe prints once it can be stopped with SIGTERM and still report. */
export const PROBE_STARTED = 'probe started';

export interface ProbeResult {
  mode: ProbeMode;
  target: string;
  /** Attempts that completed (connected and, except connect-only, got a backend name). */
  ok: number;
  failed: number;
  /** Backend name (HTTP body / first word of the UDP reply) -> replies. */
  byBackend: Record<string, number>;
  /** The peer the socket reported: getpeername for TCP, rinfo for UDP. `addr:port`, IPv6 bracketed. */
  peers: Record<string, number>;
  /**
   * Backend name -> the client address (IP only) the backend saw -> replies: from the HTTP reply's
   * x-client header, or a UDP reply's `from=` (servers started with --report-peer). What SNAT, DSR
   * and externalTrafficPolicy tests assert on.
   */
  sources: Record<string, Record<string, number>>;
  /** Error code (ECONNREFUSED, ETIMEDOUT, ...) -> count. */
  errors: Record<string, number>;
  lastError?: string;
  /** Mean ns from connect() to established, connect-only mode. */
  nsPerConnect?: number;
  elapsedMs: number;
  /** Ended by SIGTERM, by --duration-ms, or by --stop-on-error before reaching --count. */
  stopped?: 'signal' | 'duration' | 'error';
}

export interface ProbeOptions {
  mode: ProbeMode;
  host: string;
  port: number;
  count: number;
  durationMs: number;
  intervalMs: number;
  timeoutMs: number;
  connected: boolean;
  stopOnError: boolean;
  /** UDP: a fresh socket (so a new source port, a new conntrack flow) for every datagram. */
  newSocket: boolean;
  /** TCP: bind each socket to this local address before connecting (a client with its own source). */
  bind?: string;
  /** TCP: keep every socket open (not closed after the reply) until the probe exits. */
  hold: boolean;
}

const MAX_COUNT = 10_000_000;

/** `10.0.0.1:80`, `[fd00::1]:80`. */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  const a = address ?? '?';
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

export function parseTarget(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new TypeError(`--target must be HOST:PORT or [V6]:PORT, got "${s}"`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (net.isIP(host) === 0) throw new TypeError(`--target host must be an IP address, got "${host}"`);
  if (port < 1 || port > 65535) throw new RangeError(`--target port out of range: ${port}`);
  return { host, port };
}

export function parseProbeArgs(argv: string[]): ProbeOptions {
  const mode = argv[0];
  if (mode !== 'tcp' && mode !== 'udp' && mode !== 'connect-only') {
    throw new TypeError(`mode must be tcp, udp or connect-only, got "${mode ?? ''}"`);
  }
  const o: ProbeOptions = {
    mode,
    host: '',
    port: 0,
    count: 1,
    durationMs: 30_000,
    intervalMs: 0,
    timeoutMs: mode === 'udp' ? 500 : 2000,
    connected: false,
    stopOnError: false,
    newSocket: false,
    hold: false,
  };
  const num = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${flag} must be an integer in ${min}..${max}`);
    return n;
  };
  let target = '';
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    switch (flag) {
      case '--target':
        target = v ?? '';
        i++;
        break;
      case '--count':
        o.count = num(flag, v, 1, MAX_COUNT);
        i++;
        break;
      case '--duration-ms':
        o.durationMs = num(flag, v, 1, 3_600_000);
        i++;
        break;
      case '--interval-ms':
        o.intervalMs = num(flag, v, 0, 60_000);
        i++;
        break;
      case '--timeout-ms':
        o.timeoutMs = num(flag, v, 1, 60_000);
        i++;
        break;
      case '--connected':
        o.connected = true;
        break;
      case '--new-socket':
        o.newSocket = true;
        break;
      case '--stop-on-error':
        o.stopOnError = true;
        break;
      case '--hold':
        if (mode === 'udp') throw new TypeError('--hold is for tcp and connect-only');
        o.hold = true;
        break;
      case '--bind':
        if (!v || net.isIP(v) === 0) throw new TypeError(`--bind must be an IP address, got "${v ?? ''}"`);
        o.bind = v;
        i++;
        break;
      default:
        throw new TypeError(`unknown argument "${flag}"`);
    }
  }
  Object.assign(o, parseTarget(target));
  return o;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

/** `1.2.3.4:80` / `[fd00::1]:80` -> the address alone. */
export function peerAddress(peer: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(peer) ?? /^([^:]+):\d+$/.exec(peer);
  return m ? m[1]! : peer;
}

function bumpSource(r: ProbeResult, backend: string, seen: string | undefined): void {
  if (!seen) return;
  r.sources[backend] ??= {};
  bump(r.sources[backend], peerAddress(seen));
}

function errCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(err);
}

class Run {
  readonly r: ProbeResult;
  readonly o: ProbeOptions;
  readonly start = performance.now();
  stopped: ProbeResult['stopped'];

  constructor(o: ProbeOptions) {
    this.o = o;
    this.r = {
      mode: o.mode,
      target: formatPeer(o.host, o.port),
      ok: 0,
      failed: 0,
      byBackend: {},
      peers: {},
      sources: {},
      errors: {},
      elapsedMs: 0,
    };
  }

  /** Whether the loop may start another attempt. */
  more(done: number): boolean {
    if (this.stopped) return false;
    if (done >= this.o.count) return false;
    if (performance.now() - this.start >= this.o.durationMs) {
      this.stopped = 'duration';
      return false;
    }
    return true;
  }

  fail(err: unknown): void {
    this.r.failed++;
    const code = errCode(err);
    bump(this.r.errors, code);
    this.r.lastError = code;
    if (this.o.stopOnError) this.stopped ??= 'error';
  }

  result(): ProbeResult {
    this.r.elapsedMs = Math.round((performance.now() - this.start) * 1000) / 1000;
    if (this.stopped) this.r.stopped = this.stopped;
    return this.r;
  }
}

function timeoutError(what: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${what} timed out`);
  e.code = 'ETIMEDOUT';
  return e;
}

/** Sockets --hold keeps open: referenced here so nothing closes them before the process exits. */
const held: net.Socket[] = [];

/** One connection: connect, note getpeername, optionally GET / and read the body. */
function tcpOnce(o: ProbeOptions, http: boolean): Promise<{ peer: string; body: string; seen?: string; ns: bigint }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let connectNs = 0n;
    let peer = '';
    const chunks: Buffer[] = [];
    // Half-open allowed when holding: else Node closes the socket once the server has closed its side.
    const sock = net.connect({ host: o.host, port: o.port, allowHalfOpen: o.hold, ...(o.bind ? { localAddress: o.bind } : {}) });
    const finish = (): void => {
      if (o.hold) held.push(sock);
      else sock.destroy();
    };
    const timer = setTimeout(() => {
      sock.destroy();
      reject(timeoutError('tcp'));
    }, o.timeoutMs);
    const done = (err: unknown): void => {
      clearTimeout(timer);
      if (err) reject(err);
    };
    sock.once('error', done);
    sock.once('connect', () => {
      connectNs = process.hrtime.bigint() - t0;
      peer = formatPeer(sock.remoteAddress, sock.remotePort);
      if (!http) {
        finish();
        clearTimeout(timer);
        resolve({ peer, body: '', ns: connectNs });
        return;
      }
      sock.write('GET / HTTP/1.0\r\n\r\n');
    });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('end', () => {
      clearTimeout(timer);
      finish();
      const text = Buffer.concat(chunks).toString('utf8');
      const at = text.indexOf('\r\n\r\n');
      if (!/^HTTP\/1\.[01] 200 /.test(text) || at < 0) {
        const e: NodeJS.ErrnoException = new Error(`bad HTTP response: ${JSON.stringify(text.slice(0, 80))}`);
        e.code = 'EBADRESPONSE';
        reject(e);
        return;
      }
      const seen = /\r\nx-client: *([^\r]+)\r\n/i.exec(text.slice(0, at + 2))?.[1];
      resolve({ peer, body: text.slice(at + 4).trim(), ns: connectNs, ...(seen ? { seen } : {}) });
    });
  });
}

async function runTcp(run: Run, http: boolean): Promise<void> {
  const o = run.o;
  let totalNs = 0n;
  let connects = 0;
  for (let i = 0; run.more(i); i++) {
    if (i > 0 && o.intervalMs > 0) await sleep(o.intervalMs);
    try {
      const { peer, body, ns, seen } = await tcpOnce(o, http);
      run.r.ok++;
      bump(run.r.peers, peer);
      if (http) bump(run.r.byBackend, body);
      if (http) bumpSource(run.r, body, seen);
      totalNs += ns;
      connects++;
    } catch (err) {
      run.fail(err);
    }
  }
  if (!http && connects > 0) run.r.nsPerConnect = Number(totalNs / BigInt(connects));
}

async function runUdp(run: Run): Promise<void> {
  if (!run.o.newSocket) return udpSession(run, 0, Number.POSITIVE_INFINITY);
  for (let i = 0; run.more(i); i++) await udpSession(run, i, 1);
}

/** Attempts `first`.. (at most `max` of them) on one socket. */
async function udpSession(run: Run, first: number, max: number): Promise<void> {
  const o = run.o;
  const sock = dgram.createSocket(net.isIPv6(o.host) ? 'udp6' : 'udp4');
  // One pending request at a time; a late reply to an earlier (timed-out) request is ignored.
  type Reply = { name: string; peer: string; seen?: string };
  let waiting: { seq: number; resolve: (v: Reply) => void; reject: (e: unknown) => void } | null = null;
  sock.on('message', (msg, rinfo) => {
    const text = msg.toString('utf8');
    const [name = '', tag, seq, from] = text.split(' ');
    if (!waiting || tag !== 'probe' || Number(seq) !== waiting.seq) return;
    const w = waiting;
    waiting = null;
    const seen = from?.startsWith('from=') ? from.slice(5) : undefined;
    w.resolve({ name, peer: formatPeer(rinfo.address, rinfo.port), ...(seen ? { seen } : {}) });
  });
  // Connected sockets report ICMP errors (ECONNREFUSED) and a destroyed socket (ECONNABORTED) here.
  sock.on('error', (err) => {
    if (waiting) {
      const w = waiting;
      waiting = null;
      w.reject(err);
    } else {
      run.fail(err);
    }
  });
  try {
    if (o.connected) {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.connect(o.port, o.host, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    }
    for (let i = first; i < first + max && run.more(i); i++) {
      if (i > 0 && o.intervalMs > 0) await sleep(o.intervalMs);
      let timer: NodeJS.Timeout | undefined;
      try {
        const reply = await new Promise<Reply>((resolve, reject) => {
          waiting = { seq: i, resolve, reject };
          timer = setTimeout(() => {
            waiting = null;
            reject(timeoutError('udp'));
          }, o.timeoutMs);
          const msg = Buffer.from(`probe ${i}`);
          const cb = (err: Error | null): void => {
            if (err) {
              waiting = null;
              reject(err);
            }
          };
          if (o.connected) sock.send(msg, cb);
          else sock.send(msg, o.port, o.host, cb);
        });
        run.r.ok++;
        bump(run.r.byBackend, reply.name);
        bump(run.r.peers, reply.peer);
        bumpSource(run.r, reply.name, reply.seen);
      } catch (err) {
        run.fail(err);
      } finally {
        clearTimeout(timer);
      }
    }
  } catch (err) {
    run.fail(err);
  } finally {
    try {
      sock.close();
    } catch {
      /* already closed */
    }
  }
}

/** Runs the probe in this process; `onStart` gets a function returning the result so far. */
export async function probe(o: ProbeOptions, onStart?: (partial: () => ProbeResult) => void): Promise<ProbeResult> {
  const run = new Run(o);
  onStart?.(() => run.result());
  if (o.mode === 'udp') await runUdp(run);
  else await runTcp(run, o.mode === 'tcp');
  return run.result();
}

async function main(): Promise<void> {
  let opts: ProbeOptions;
  try {
    opts = parseProbeArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`probe: ${(err as Error).message}\n`);
    process.exit(2);
  }
  let printed = false;
  const print = (r: ProbeResult): void => {
    if (printed) return;
    printed = true;
    process.stdout.write(`${JSON.stringify(r)}\n`);
  };
  let finish: (() => ProbeResult) | undefined;
  // SIGTERM: report what we have now rather than wait for an in-flight attempt's timeout.
  process.once('SIGTERM', () => {
    if (finish) {
      const r = finish();
      r.stopped ??= 'signal';
      print(r);
    }
    process.exit(0);
  });
  // Tells a parent that may stop us early that SIGTERM is handled from now on.
  process.stdout.write(`${PROBE_STARTED}\n`);
  const r = await probe(opts, (partial) => {
    finish = partial;
  });
  print(r);
  // Holding: the sockets stay open until SIGTERM or SIGKILL ends the process.
  if (opts.hold) setInterval(() => {}, 60_000);
  else process.exit(0);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`probe: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
