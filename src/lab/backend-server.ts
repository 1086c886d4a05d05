// A lab backend "pod": answers every HTTP request and every UDP datagram with its name, so a
// client can tell which backend the load balancer picked. Run as a script inside a pod netns:
//   node src/lab/backend-server.ts --name pod0 --tcp 8080,8081 --udp 5353 [--report-peer]
// Every HTTP reply carries the client address the server saw (x-client); with --report-peer a UDP
// reply also ends with it (`pod0 <request> from=10.0.0.1:4242`), so SNAT and DSR tests can read it.
// It prints `ready` once every socket listens, and exits when its parent goes away (a crashed
// test must not leave servers pinning a deleted network namespace).

import * as dgram from 'node:dgram';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BackendServerOptions {
  /** Sent back as the HTTP body and as the first word of every UDP reply. */
  name: string;
  tcp: number[];
  udp: number[];
  /** Address to listen on; `::` is dual-stack (IPv4 arrives as ::ffff:a.b.c.d). */
  host?: string;
  /** UDP replies end with ` from=<peer>`: the source address and port the datagram arrived from. */
  reportPeer?: boolean;
}

export interface BackendServer {
  /** Ports actually bound, in the order asked (useful with port 0). */
  tcpPorts: number[];
  udpPorts: number[];
  close(): Promise<void>;
}

/** Formats a peer so IPv4 clients of a dual-stack socket read as plain IPv4. */
export function peer(address: string | undefined, port: number | undefined): string {
  const a = (address ?? '?').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

/** Starts the listeners; resolves when all of them are bound. */
export async function startBackendServer(opts: BackendServerOptions): Promise<BackendServer> {
  const host = opts.host ?? '::';
  const servers: http.Server[] = [];
  const sockets: dgram.Socket[] = [];
  const close = async (): Promise<void> => {
    await Promise.all([
      ...servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.closeAllConnections();
            s.close(() => r());
          }),
      ),
      ...sockets.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ]);
  };
  try {
    for (const port of opts.tcp) {
      const server = http.createServer((req, res) => {
        // The client address as the backend saw it: tests of source-address handling read it.
        const body = opts.name;
        res.writeHead(200, {
          'content-type': 'text/plain',
          'content-length': Buffer.byteLength(body),
          'x-backend': opts.name,
          'x-client': peer(req.socket.remoteAddress, req.socket.remotePort),
          connection: 'close',
        });
        res.end(body);
      });
      server.keepAliveTimeout = 1000;
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, ipv6Only: false }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    }
    for (const port of opts.udp) {
      const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
      sockets.push(sock);
      sock.on('message', (msg, rinfo) => {
        const from = opts.reportPeer ? ` from=${peer(rinfo.address, rinfo.port)}` : '';
        const reply = Buffer.from(`${opts.name} ${msg.toString('utf8')}${from}`);
        sock.send(reply, rinfo.port, rinfo.address);
      });
      // A reply to a vanished client can raise ECONNREFUSED etc.; a backend must keep serving.
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind({ port, address: host }, () => {
          sock.off('error', reject);
          sock.on('error', () => {});
          resolve();
        });
      });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    tcpPorts: servers.map((s) => (s.address() as AddressInfo).port),
    udpPorts: sockets.map((s) => s.address().port),
    close,
  };
}

function parsePorts(v: string | undefined): number[] {
  if (!v) return [];
  return v
    .split(',')
    .filter(Boolean)
    .map((p) => {
      const n = Number(p);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new RangeError(`bad port "${p}"`);
      return n;
    });
}

export function parseServerArgs(argv: string[]): BackendServerOptions {
  const opts: BackendServerOptions = { name: 'backend', tcp: [], udp: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--name':
        opts.name = value ?? '';
        i++;
        break;
      case '--tcp':
        opts.tcp = parsePorts(value);
        i++;
        break;
      case '--udp':
        opts.udp = parsePorts(value);
        i++;
        break;
      case '--report-peer':
        opts.reportPeer = true;
        break;
      case '--host':
        opts.host = value;
        i++;
        break;
      default:
        throw new TypeError(`unknown argument "${flag}"`);
    }
  }
  if (!opts.name || /\s/.test(opts.name)) throw new TypeError('--name must be one word');
  if (opts.tcp.length + opts.udp.length === 0) throw new TypeError('give --tcp and/or --udp ports');
  return opts;
}

async function main(): Promise<void> {
  let opts: BackendServerOptions;
  try {
    opts = parseServerArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`backend-server: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const server = await startBackendServer(opts);
  const stop = (): void => {
    void server.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Orphaned (the lab's process died without cleaning up): re-parented, so leave too.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500).unref();
  process.stdout.write('ready\n');
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`backend-server: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
