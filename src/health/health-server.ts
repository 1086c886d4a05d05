// kube-proxy-compatible health: `/healthz` and `/livez` on 0.0.0.0:10256, so probes and cloud load
// balancers that target kube-proxy keep working, plus the per-service health-check listeners.
//
// Semantics follow kube-proxy's pkg/proxy/healthcheck/proxy_health.go: the proxy is unhealthy once a
// queued change has waited longer than the health timeout without being programmed (a change queued
// while none is pending starts the clock; a completed sync stops it); while healthy, `lastUpdated`
// reads as the current time (kube-proxy keeps that for older clients). `/healthz` is also 503 when
// the node is not eligible: being deleted (deletionTimestamp) or tainted ToBeDeletedByClusterAutoscaler,
// so a load balancer drains it first; `/livez` ignores the node, so the kubelet does not restart an agent
// on a node that is merely going away.

import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { type HealthCheck, type HealthCheckProblem, ServiceHealthServer } from './service-health.ts';

export type { HealthCheck, HealthCheckProblem } from './service-health.ts';

/** kube-proxy's healthz port. */
export const DEFAULT_HEALTH_ADDRESS = '0.0.0.0:10256';
/** kube-proxy's default: twice the 30 s iptables sync period. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;

export interface HealthServerOptions {
  /** `host:port` (or `[v6]:port`) for /healthz and /livez (default 0.0.0.0:10256). */
  address?: string;
  /** How long a queued change may wait unprogrammed before the proxy counts as unhealthy (default 60 s). */
  healthTimeoutMs?: number;
  /** Address the per-service health-check listeners bind (default 0.0.0.0). */
  serviceHealthHost?: string;
  /** Clock in ms (tests). */
  now?: () => number;
  log?: Logger;
}

/** What the node contributes to /healthz: the Kubernetes source's node info fits. */
export interface NodeEligibility {
  deleting?: boolean;
  toBeDeleted?: boolean;
}

/** Splits `host:port` / `[v6]:port`, checking the port. */
export function parseAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`health address must be host:port or [v6]:port, got ${JSON.stringify(text)}`);
  return { host: (m[1] ?? m[2])!, port };
}

const ZERO_TIME = new Date(0).toISOString().replace('1970', '0001');

export class HealthServer {
  /** The /healthz and /livez routes, for fastify.inject() in tests. */
  readonly app: FastifyInstance;
  readonly services: ServiceHealthServer;
  readonly #host: string;
  readonly #port: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #lastUpdated: number | undefined;
  #oldestQueued: number | undefined;
  #nodeEligible = true;
  #listening = false;

  constructor(options: HealthServerOptions = {}) {
    const { host, port } = parseAddress(options.address ?? DEFAULT_HEALTH_ADDRESS);
    const timeout = options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
      throw new RangeError(`HealthServer: options.healthTimeoutMs must be a positive number of ms, got ${String(timeout)}`);
    }
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('HealthServer: options.now must be a function');
    this.#host = host;
    this.#port = port;
    this.#timeoutMs = timeout;
    this.#now = options.now ?? Date.now;
    this.services = new ServiceHealthServer({
      host: options.serviceHealthHost ?? '0.0.0.0',
      proxyHealthy: () => this.isHealthy(),
      ...(options.log ? { log: options.log } : {}),
    });
    this.app = Fastify({ logger: false });
    this.app.get('/healthz', (_req, reply) => this.#answer(reply, true));
    this.app.get('/livez', (_req, reply) => this.#answer(reply, false));
  }

  /** A change arrived that the maps do not hold yet (call on every source snapshot). */
  queuedUpdate(): void {
    this.#oldestQueued ??= this.#now();
  }

  /** The maps now hold every change queued so far (call after each completed sync). */
  updated(): void {
    this.#oldestQueued = undefined;
    this.#lastUpdated = this.#now();
  }

  /** The node's state: /healthz turns 503 while it is being deleted. */
  syncNode(node: NodeEligibility): void {
    this.#nodeEligible = !node.deleting && !node.toBeDeleted;
  }

  get nodeEligible(): boolean {
    return this.#nodeEligible;
  }

  /** The proxy's own health, ignoring the node (kube-proxy's IsHealthy). */
  isHealthy(): boolean {
    return this.#oldestQueued === undefined || this.#now() - this.#oldestQueued < this.#timeoutMs;
  }

  /** Opens and closes per-service health-check listeners; see ServiceHealthServer.sync. */
  syncHealthChecks(checks: HealthCheck[]): Promise<HealthCheckProblem[]> {
    return this.services.sync(checks);
  }

  /** Listens on the configured address; returns what was bound. */
  async listen(): Promise<{ host: string; port: number }> {
    await this.app.listen({ host: this.#host, port: this.#port });
    this.#listening = true;
    const a = this.app.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Closes /healthz and every service listener. */
  async close(): Promise<void> {
    await this.services.close();
    if (this.#listening) this.app.server.closeAllConnections();
    await this.app.close();
    this.#listening = false;
  }

  #answer(reply: FastifyReply, withNode: boolean): FastifyReply {
    const now = this.#now();
    const healthy = this.isHealthy() && (!withNode || this.#nodeEligible);
    const currentTime = new Date(now).toISOString();
    // Healthy: lastUpdated reads as now (kube-proxy's compatibility rule); otherwise the real last sync.
    const lastUpdated = healthy ? currentTime : this.#lastUpdated === undefined ? ZERO_TIME : new Date(this.#lastUpdated).toISOString();
    return reply
      .code(healthy ? 200 : 503)
      .header('Content-Type', 'application/json')
      .header('X-Content-Type-Options', 'nosniff')
      .send(JSON.stringify({ lastUpdated, currentTime, nodeEligible: this.#nodeEligible }));
  }
}
