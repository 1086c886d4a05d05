// One long TCP connection, to tell whether a flow keeps its backend (and stays one connection)
// while a load balancer's backends change. Run inside lab namespaces:
//   node test/support/tcp-stream.ts serve NAME PORT
//     answers every line with `NAME CLIENT-IP LINE`; prints `ready` once listening
//   node test/support/tcp-stream.ts stream HOST PORT COUNT INTERVAL_MS
//     sends COUNT lines (at most 10,000) over one connection, one every INTERVAL_MS, each awaiting
//     its answer (5 s at most), then prints ONE JSON line (StreamResult)
//   node test/support/tcp-stream.ts spread HOST PORT CONNECTIONS
//     one line on each of CONNECTIONS (at most 1,000) new connections, one after another: which
//     backends new flows reach; prints ONE JSON line (StreamResult, summed)

import * as net from 'node:net';

export interface StreamResult {
  ok: number;
  failed: number;
  /** Backend name -> answers. */
  backends: Record<string, number>;
  /** The client addresses the backends saw. */
  sources: string[];
  /** Why the stream ended early (the connection closed, reset, or an answer timed out). */
  error?: string;
}

function serve(name: string, port: number): void {
  const server = net.createServer((sock) => {
    const client = (sock.remoteAddress ?? '?').replace(/^::ffff:/, '');
    let pending = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        sock.write(`${name} ${client} ${pending.slice(0, nl)}\n`);
        pending = pending.slice(nl + 1);
      }
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen(port, '::', () => process.stdout.write('ready\n'));
  // A crashed test must not leave the server pinning a deleted namespace: re-parented, it leaves.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000);
}

async function stream(host: string, port: number, count: number, intervalMs: number): Promise<StreamResult> {
  const out: StreamResult = { ok: 0, failed: 0, backends: {}, sources: [] };
  const sock = net.connect({ host, port });
  sock.setEncoding('utf8');
  const lines: string[] = [];
  let waiting: ((line: string | Error) => void) | undefined;
  let pending = '';
  let ended: Error | undefined;
  const deliver = (v: string | Error): void => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(v);
    } else if (typeof v === 'string') lines.push(v);
  };
  sock.on('data', (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      deliver(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  sock.on('error', (err) => {
    ended = err;
    deliver(err);
  });
  sock.on('close', () => {
    ended ??= new Error('connection closed');
    deliver(ended);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  for (let i = 0; i < count && !ended; i++) {
    sock.write(`${i}\n`);
    const answer = await new Promise<string | Error>((resolve) => {
      const early = lines.shift();
      if (early !== undefined) return resolve(early);
      const timer = setTimeout(() => resolve(new Error(`no answer to line ${i} in 5 s`)), 5000);
      waiting = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
    });
    if (answer instanceof Error) {
      out.failed++;
      out.error = answer.message;
      break;
    }
    const [name = '', client = '', echo = ''] = answer.split(' ');
    if (echo !== String(i)) {
      out.failed++;
      out.error = `line ${i} answered with ${JSON.stringify(answer)}`;
      break;
    }
    out.ok++;
    out.backends[name] = (out.backends[name] ?? 0) + 1;
    if (!out.sources.includes(client)) out.sources.push(client);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  sock.destroy();
  return out;
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') {
  const [name = '', port = ''] = args;
  serve(name, Number(port));
} else if (mode === 'stream') {
  const [host = '', port = '', count = '', interval = ''] = args;
  const result = await stream(host, Number(port), Math.min(Number(count), 10_000), Number(interval));
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else if (mode === 'spread') {
  const [host = '', port = '', connections = ''] = args;
  const sum: StreamResult = { ok: 0, failed: 0, backends: {}, sources: [] };
  for (let i = 0; i < Math.min(Number(connections), 1000); i++) {
    const r = await stream(host, Number(port), 1, 0).catch((err: Error) => ({
      ok: 0,
      failed: 1,
      backends: {},
      sources: [],
      error: err.message,
    }));
    sum.ok += r.ok;
    sum.failed += r.failed;
    for (const [name, n] of Object.entries(r.backends)) sum.backends[name] = (sum.backends[name] ?? 0) + n;
    if (r.error) sum.error = r.error;
  }
  process.stdout.write(`${JSON.stringify(sum)}\n`);
} else {
  throw new TypeError('usage: tcp-stream.ts serve NAME PORT | stream HOST PORT COUNT INTERVAL_MS | spread HOST PORT CONNECTIONS');
}
