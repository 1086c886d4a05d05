// Per-service health checks, as kube-proxy serves them for `externalTrafficPolicy: Local` services of
// type LoadBalancer: one listener on the service's healthCheckNodePort answering any path with 200
// while this node has local ready endpoints for it (and the proxy is healthy), 503 otherwise, so a
// cloud load balancer sends traffic only to nodes that can serve it locally.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { type ErrorCode, ErrorCodes } from '../errors.ts';
import type { HealthCheck, ServiceName } from '../model/types.ts';

export type { HealthCheck } from '../model/types.ts';

/** A health check that could not be served; recorded per service, the others keep working. */
export interface HealthCheckProblem {
  service: ServiceName;
  port: number;
  code: ErrorCode;
  /** The system error (EADDRINUSE, EACCES) when listening failed. */
  errno?: string;
  message: string;
}

export interface ServiceHealthOptions {
  /** The address the listeners bind (default 0.0.0.0; kube-proxy listens on every node address). */
  host: string;
  /** Whether the proxy as a whole is healthy (serviceProxyHealthy; 503 when not). */
  proxyHealthy(): boolean;
  log?: Logger;
}

interface Listener {
  service: ServiceName;
  port: number;
  localEndpoints: number;
  server: http.Server;
}

function serviceKey(s: ServiceName): string {
  return `${s.namespace}/${s.name}`;
}

/** The status, headers and body kube-proxy answers for a service health check. */
export function serviceHealthResponse(
  service: ServiceName,
  localEndpoints: number,
  proxyHealthy: boolean,
): { status: number; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' };
  if (localEndpoints > 0) headers['X-Load-Balancing-Endpoint-Weight'] = String(localEndpoints);
  const body = JSON.stringify({
    service: { namespace: service.namespace, name: service.name },
    localEndpoints,
    serviceProxyHealthy: proxyHealthy,
  });
  return { status: localEndpoints > 0 && proxyHealthy ? 200 : 503, headers, body };
}

export class ServiceHealthServer {
  readonly #o: ServiceHealthOptions;
  readonly #listeners = new Map<string, Listener>();
  #problems: HealthCheckProblem[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: ServiceHealthOptions) {
    if (typeof options?.host !== 'string' || options.host === '')
      throw new TypeError('ServiceHealthServer: options.host must be an address');
    if (typeof options.proxyHealthy !== 'function') throw new TypeError('ServiceHealthServer: options.proxyHealthy must be a function');
    this.#o = options;
  }

  /**
   * Makes the open listeners match `checks`: closes those no longer wanted (or whose port changed),
   * opens new ones, updates endpoint counts in place. A listener that cannot open (port in use) is a
   * problem for that service alone and is tried again at the next sync. Calls run one after another.
   */
  sync(checks: HealthCheck[]): Promise<HealthCheckProblem[]> {
    const run = this.#queue.then(() => this.#sync(checks));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Problems of the latest sync. */
  problems(): HealthCheckProblem[] {
    return [...this.#problems];
  }

  /** The open listeners: service, port wanted, port bound (differs only for port 0 in tests). */
  listening(): { service: ServiceName; port: number; boundPort: number; localEndpoints: number }[] {
    return [...this.#listeners.values()].map((l) => ({
      service: l.service,
      port: l.port,
      boundPort: (l.server.address() as AddressInfo | null)?.port ?? 0,
      localEndpoints: l.localEndpoints,
    }));
  }

  /** Closes every listener; later syncs do nothing. */
  close(): Promise<void> {
    this.#closed = true;
    const run = this.#queue.then(async () => {
      await Promise.all([...this.#listeners.values()].map((l) => closeServer(l.server)));
      this.#listeners.clear();
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  async #sync(checks: HealthCheck[]): Promise<HealthCheckProblem[]> {
    if (this.#closed) return [];
    const problems: HealthCheckProblem[] = [];
    const wanted = new Map<string, HealthCheck>();
    for (const c of checks) {
      if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535) {
        problems.push({
          service: c.service,
          port: c.port,
          code: ErrorCodes.PORT_RANGE,
          message: `Service ${serviceKey(c.service)}: spec.healthCheckNodePort ${String(c.port)} is not a port`,
        });
        continue;
      }
      wanted.set(serviceKey(c.service), c);
    }
    for (const [key, l] of this.#listeners) {
      const w = wanted.get(key);
      if (!w || w.port !== l.port) {
        this.#listeners.delete(key);
        await closeServer(l.server);
        this.#o.log?.info({ service: key, port: l.port }, 'closed service health check');
      }
    }
    for (const [key, c] of wanted) {
      const open = this.#listeners.get(key);
      if (open) {
        open.localEndpoints = c.localEndpoints;
        continue;
      }
      const l: Listener = { service: c.service, port: c.port, localEndpoints: c.localEndpoints, server: undefined as never };
      l.server = http.createServer((req, res) => {
        // Drain any body; the answer does not depend on the request (kube-proxy answers any path and method).
        req.resume();
        const r = serviceHealthResponse(l.service, l.localEndpoints, this.#o.proxyHealthy());
        res.writeHead(r.status, r.headers);
        res.end(r.body);
      });
      try {
        await listen(l.server, this.#o.host, c.port);
        this.#listeners.set(key, l);
        this.#o.log?.info({ service: key, port: c.port }, 'opened service health check');
      } catch (err) {
        const errno = (err as NodeJS.ErrnoException).code;
        const problem: HealthCheckProblem = {
          service: c.service,
          port: c.port,
          code: ErrorCodes.HOST,
          message: `Service ${key}: cannot listen on health check port ${this.#o.host}:${c.port}: ${(err as Error).message}`,
        };
        if (errno) problem.errno = errno;
        problems.push(problem);
        this.#o.log?.error({ service: key, port: c.port, code: ErrorCodes.HOST, errno }, problem.message);
      }
    }
    this.#problems = problems;
    return problems;
  }
}

/** Binds server to host:port, rejecting (and leaving nothing open) when the port cannot be had. */
export function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, exclusive: true });
  });
}

/** Closes a server and cuts its keep-alive connections (load balancer probes keep them open). */
export function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
