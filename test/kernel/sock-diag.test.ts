// destroyUdpSockets against the real kernel: sock_diag's SOCK_DESTROY ends exactly the UDP sockets
// connected to a target, in the netns asked for and no other.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { destroyUdpSockets } from '../../src/bpf/binding.ts';
import { throwsBpf } from '../support/assert-bpf.ts';

const NETNS = `socklb-sockdiag-${randomBytes(4).toString('hex')}`;
const WAIT_MS = 5_000;

/**
 * Runs in the netns: echo servers on 127.0.0.1:P, [::1]:P, 127.0.0.1:Q and 127.0.0.2:P, and one
 * connected client per case. Commands on stdin ('ping NAME', 'fresh'), events on stdout
 * ('pong NAME', 'error NAME CODE', 'ready').
 */
const PEER_SCRIPT = `
const dgram = require('node:dgram');
const P = Number(process.env.P), Q = Number(process.env.Q);
const out = (...w) => process.stdout.write(w.join(' ') + '\\n');
const clients = {};
function server(type, address, port) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(type);
    s.on('message', (m, r) => s.send(m, r.port, r.address));
    s.on('error', reject);
    s.bind(port, address, () => resolve(s));
  });
}
function client(name, options, address, port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(options);
    s.on('message', () => out('pong', name));
    s.on('error', (e) => out('error', name, e.code));
    s.connect(port, address, () => { clients[name] = s; resolve(); });
  });
}
function ping(name) {
  clients[name].send('ping', (err) => { if (err) out('error', name, err.code); });
}
(async () => {
  await server('udp4', '127.0.0.1', P);
  await server({ type: 'udp6', ipv6Only: true }, '::1', P);
  await server('udp4', '127.0.0.1', Q);
  await server('udp4', '127.0.0.2', P);
  await client('v4', 'udp4', '127.0.0.1', P);
  await client('v6', { type: 'udp6', ipv6Only: true }, '::1', P);
  await client('mapped', { type: 'udp6', ipv6Only: false }, '::ffff:127.0.0.1', P);
  await client('otherPort', 'udp4', '127.0.0.1', Q);
  await client('otherAddr', 'udp4', '127.0.0.2', P);
  require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
    const [cmd, name] = line.split(' ');
    if (cmd === 'ping') ping(name);
    if (cmd === 'fresh') { await client('fresh', 'udp4', '127.0.0.1', P); ping('fresh'); }
  });
  out('ready');
})().catch((e) => { out('fatal', e.code ?? e.message); process.exit(1); });
`;

/** The peer process in the netns, with every line it printed and a bounded wait for more. */
class Peer {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  #waiters: (() => void)[] = [];

  constructor(p: number, q: number) {
    this.child = spawn('ip', ['netns', 'exec', NETNS, process.execPath, '-e', PEER_SCRIPT], {
      env: { ...process.env, P: String(p), Q: String(q) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  send(command: string): void {
    this.child.stdin!.write(`${command}\n`);
  }

  async waitFor(line: string): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!this.lines.includes(line)) {
      if (this.child.exitCode !== null) throw new Error(`peer exited; printed ${JSON.stringify(this.lines)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no '${line}' within ${WAIT_MS} ms; printed ${JSON.stringify(this.lines)}`);
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), sleep(Math.min(left, 200))]);
    }
  }

  /** Pings and waits for the echo: the client's socket still works. */
  async roundTrip(name: string): Promise<void> {
    this.lines.splice(0, this.lines.length, ...this.lines.filter((l) => l !== `pong ${name}`));
    this.send(`ping ${name}`);
    await this.waitFor(`pong ${name}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill();
    await exited;
  }
}

/** A root-netns client connected to port on 127.0.0.1 that records its errors. */
async function rootClient(port: number): Promise<{ socket: Socket; errors: string[] }> {
  const socket = createSocket('udp4');
  const errors: string[] = [];
  socket.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
  socket.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return { socket, errors };
}

async function rootRoundTrip(socket: Socket): Promise<void> {
  const reply = once(socket, 'message', { signal: AbortSignal.timeout(WAIT_MS) });
  socket.send('ping');
  await reply;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('ends the v4, v6 and dual-stack mapped sockets connected to the targets in the netns only', async () => {
  // Root netns: an echo server on 127.0.0.1:P and a client connected to it, the same peer the
  // netns clients have; P is free in the fresh netns too.
  const rootServer = createSocket('udp4');
  rootServer.on('message', (m, r) => rootServer.send(m, r.port, r.address));
  rootServer.bind(0, '127.0.0.1');
  await once(rootServer, 'listening');
  const p = rootServer.address().port;
  const q = p < 65535 ? p + 1 : p - 1;
  let peer: Peer | undefined;
  let root: Awaited<ReturnType<typeof rootClient>> | undefined;
  execFileSync('ip', ['netns', 'add', NETNS]);
  try {
    execFileSync('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    root = await rootClient(p);
    await rootRoundTrip(root.socket);
    peer = new Peer(p, q);
    await peer.waitFor('ready');
    for (const name of ['v4', 'v6', 'mapped', 'otherPort', 'otherAddr']) await peer.roundTrip(name);

    const result = destroyUdpSockets(
      [
        { family: 4, address: '127.0.0.1', port: p },
        { family: 6, address: Buffer.from('00000000000000000000000000000001', 'hex'), port: p },
      ],
      `/run/netns/${NETNS}`,
    );
    assert.equal(result, { destroyed: 3, errors: 0 });

    // The kernel reports ECONNABORTED on each destroyed socket, which Node's pending recv picks up.
    for (const name of ['v4', 'v6', 'mapped']) await peer.waitFor(`error ${name} ECONNABORTED`);
    for (const name of ['otherPort', 'otherAddr']) await peer.roundTrip(name);
    assert.equal(peer.lines.filter((l) => l.startsWith('error')).sort(), [
      'error mapped ECONNABORTED',
      'error v4 ECONNABORTED',
      'error v6 ECONNABORTED',
    ]);
    peer.send('fresh');
    await peer.waitFor('pong fresh'); // the unconnected server on the target survived

    await rootRoundTrip(root.socket);
    assert.equal(root.errors, [], 'the root netns socket with the same peer is untouched');

    // Without a path: the caller's own netns, which the worker thread above never changed.
    assert.equal(destroyUdpSockets([{ family: 4, address: '127.0.0.1', port: p }]), { destroyed: 1, errors: 0 });
    await until(() => root!.errors.length > 0, 'the root client to see its socket destroyed');
    assert.equal(root.errors, ['ECONNABORTED']);
    const fresh = await rootClient(p);
    try {
      await rootRoundTrip(fresh.socket); // the root server itself was not connected, so it lives
    } finally {
      fresh.socket.close();
    }
  } finally {
    await peer?.stop();
    root?.socket.close();
    rootServer.close();
    execFileSync('ip', ['netns', 'del', NETNS]);
  }
});

test('nothing to end: zero counts; a missing netns is ENOENT, bad targets fail before the kernel', async () => {
  // A port this test holds, so no other process's socket can be connected to it.
  const held = createSocket('udp4');
  held.bind(0, '127.0.0.1');
  await once(held, 'listening');
  try {
    const target = { family: 4 as const, address: '127.0.0.1', port: held.address().port };
    assert.equal(destroyUdpSockets([target], '/proc/self/ns/net'), { destroyed: 0, errors: 0 });
  } finally {
    held.close();
  }
  assert.equal(destroyUdpSockets([]), { destroyed: 0, errors: 0 });
  const err = throwsBpf(
    () => destroyUdpSockets([{ family: 4, address: '127.0.0.1', port: 9 }], '/run/netns/socklb-no-such-netns'),
    'ENOENT',
    'sock_diag',
  );
  assert.match(err.message, /socklb-no-such-netns/);
  assert.throws(() => destroyUdpSockets([{ family: 4, address: '127.0.0.1', port: 0 }]), RangeError);
  assert.throws(() => destroyUdpSockets([{ family: 6, address: '127.0.0.1', port: 53 }]), TypeError);
  assert.throws(() => destroyUdpSockets([{ family: 4, address: Buffer.alloc(16), port: 53 }]), RangeError);
});

test.run();
