// The read-only debug endpoint (fastify): the service table and maps as the kernel holds them,
// status, config, /metrics, and /proxyMode as kube-proxy serves it on the same port (10249).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { isIP } from 'node:net';
import swagger from '@fastify/swagger';
import { type FastifyBaseLogger, type FastifyError, type FastifyInstance, fastify, LogController } from 'fastify';
import { type Logger, pino } from 'pino';
import { ErrorCodes, SocklbError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { DEFAULT_DEBUG_ADDRESS, PROXY_MODE } from './defaults.ts';
import { decodeEntry } from './map-views.ts';
import { configSchema, mapPageQuerySchema, mapPageSchema, mapsSchema, SHARED_SCHEMAS, servicesSchema } from './schemas.ts';
import { serviceViews } from './service-view.ts';
import type { DebugSource } from './source.ts';

export { DEFAULT_DEBUG_ADDRESS, PROXY_MODE };

/**
 * What /metrics serves: SocklbMetrics implements it. The metrics read through the same DebugSource,
 * so they sit above this folder and are handed in; without them the endpoint has no /metrics.
 */
export interface MetricsExposition {
  readonly contentType: string;
  /** The body, and what to call once the reply is over (sent, or its connection gone). */
  exposition(): Promise<{ body: Buffer | string | NodeJS.ReadableStream; sent?: () => void }>;
}

export interface DebugServerOptions {
  /** Registered at /metrics when present. */
  metrics?: MetricsExposition;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Request logs; none when absent. */
  log?: Logger;
}

/** Error codes of the endpoint itself (requests it cannot answer), next to fastify's FST_ERR_*. */
export const DebugErrorCodes = {
  NOT_FOUND: 'SOCKLB_ERR_DEBUG_NOT_FOUND',
  BAD_CURSOR: 'SOCKLB_ERR_DEBUG_BAD_CURSOR',
  UNAUTHORIZED: 'SOCKLB_ERR_DEBUG_UNAUTHORIZED',
  INTERNAL: 'SOCKLB_ERR_DEBUG_INTERNAL',
} as const;

class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  constructor(statusCode: number, code: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

const DNS_NAME = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';

/** Builds (does not start) the debug server over a source. */
export async function buildDebugServer(source: DebugSource, options: DebugServerOptions = {}): Promise<FastifyInstance> {
  const app = fastify({
    loggerInstance: (options.log ?? pino({ enabled: false })) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  const metrics = options.metrics;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'socklb debug endpoint',
        description: 'Read-only view of what the socklb datapath holds. Served by the agent on 127.0.0.1:10249 by default.',
        version: VERSION,
      },
      components: options.token ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {},
      security: options.token ? [{ bearer: [] }] : [],
    },
  });
  for (const s of SHARED_SCHEMAS) app.addSchema(s);

  if (options.token) {
    const want = digest(options.token);
    app.addHook('onRequest', async (req) => {
      const m = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? '');
      if (!m || !timingSafeEqual(digest(m[1]!), want)) {
        throw new HttpError(401, DebugErrorCodes.UNAUTHORIZED, 'a bearer token is required (Authorization: Bearer <token>)');
      }
    });
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'debug endpoint request failed');
    if (status === 401) void reply.header('www-authenticate', 'Bearer');
    void reply.code(status).send({
      statusCode: status,
      error: STATUS_CODES[status] ?? 'Error',
      code: status === 500 ? DebugErrorCodes.INTERNAL : (err.code ?? 'SOCKLB_ERR_DEBUG'),
      message: status === 500 ? 'internal error; the agent log has the details' : err.message,
    });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({
      statusCode: 404,
      error: 'Not Found',
      code: DebugErrorCodes.NOT_FOUND,
      message: `no route ${req.method} ${req.url.split('?')[0]}`,
    });
  });

  const errors = { '4xx': { $ref: 'Error#' }, '5xx': { $ref: 'Error#' } };

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Healthy: loaded, hooks attached, synced once',
        response: { 200: { $ref: 'Health#' }, 503: { $ref: 'Health#' }, ...errors },
      },
    },
    async (_req, reply) => {
      const s = source.status();
      const loaded = source.loaded();
      const attached = source.hooks().every((h) => h.attached);
      const ok = loaded && attached && s.syncs > 0;
      void reply.code(ok ? 200 : 503);
      return { status: ok ? 'ok' : 'unhealthy', loaded, attached, inSync: s.inSync, lastSync: s.lastSync?.toISOString() ?? null };
    },
  );

  app.get(
    '/proxyMode',
    {
      schema: { summary: 'The proxy mode, as kube-proxy serves it', response: { 200: { type: 'string' }, ...errors } },
    },
    async (_req, reply) => {
      void reply.type('text/plain; charset=utf-8').header('x-content-type-options', 'nosniff');
      return PROXY_MODE;
    },
  );

  if (metrics) {
    app.get(
      '/metrics',
      {
        schema: { summary: 'Prometheus metrics', produces: ['text/plain'], response: { 200: { type: 'string' }, ...errors } },
      },
      async (_req, reply) => {
        void reply.type(metrics.contentType);
        const { body, sent } = await metrics.exposition();
        if (sent) reply.raw.once('close', sent);
        return body;
      },
    );
  }

  app.get(
    '/v1/status',
    {
      schema: { summary: 'Agent status: loaded, attached, in sync, problems', response: { 200: { $ref: 'Status#' }, ...errors } },
    },
    async () => {
      const s = source.status();
      const hooks = source.hooks();
      const loaded = source.loaded();
      const attached = hooks.every((h) => h.attached);
      return {
        version: VERSION,
        healthy: loaded && attached && s.syncs > 0,
        loaded,
        attached,
        hooks,
        inSync: s.inSync,
        adopted: s.adopted,
        lastSync: s.lastSync?.toISOString() ?? null,
        syncs: s.syncs,
        frontends: s.frontends,
        objectProblems: s.objectProblems,
        programProblems: s.programProblems.map((p) => ({
          key: p.key,
          namespace: p.service.namespace,
          name: p.service.name,
          code: p.code,
          message: p.message,
        })),
        destroyMethod: s.destroyMethod,
        refuseErrno: s.refuseErrno,
        committed: s.committed,
        migration: s.migration,
        syncErrors: s.syncErrors.map((e) => ({ ...e, at: e.at.toISOString() })),
        pendingDestroy: s.pendingDestroy,
        xdp: s.xdp,
        dsrFallbacks: s.dsrFallbacks,
      };
    },
  );

  app.get(
    '/v1/config',
    {
      schema: { summary: 'The settings the agent runs with', response: { 200: configSchema, ...errors } },
    },
    async () => ({ version: VERSION, proxyMode: PROXY_MODE, ...source.config() }),
  );

  app.get(
    '/v1/services',
    {
      schema: { summary: 'Every programmed service, read back from the maps', response: { 200: servicesSchema, ...errors } },
    },
    async () => ({ services: serviceViews(source.readback(), source.table()) }),
  );

  app.get<{ Params: { namespace: string; name: string } }>(
    '/v1/services/:namespace/:name',
    {
      schema: {
        summary: 'One programmed service',
        params: {
          type: 'object',
          properties: { namespace: { type: 'string', pattern: DNS_NAME }, name: { type: 'string', pattern: DNS_NAME } },
          required: ['namespace', 'name'],
        },
        response: { 200: { $ref: 'Service#' }, ...errors },
      },
    },
    async (req) => {
      const { namespace, name } = req.params;
      const svc = serviceViews(source.readback(), source.table()).find((s) => s.namespace === namespace && s.name === name);
      if (!svc) throw new HttpError(404, DebugErrorCodes.NOT_FOUND, `service ${namespace}/${name} is not programmed`);
      return svc;
    },
  );

  app.get(
    '/v1/maps',
    {
      schema: { summary: 'Every BPF map: type, sizes, entries in use, memory', response: { 200: mapsSchema, ...errors } },
    },
    async () => ({
      maps: source.maps().map((m) => {
        const s = m.summary();
        return { ...s, memoryBytes: s.memoryBytes ?? null };
      }),
    }),
  );

  app.get<{ Params: { name: string }; Querystring: { limit: number; cursor?: string } }>(
    '/v1/maps/:name',
    {
      schema: {
        summary: 'One page of a map, decoded by field name',
        params: { type: 'object', properties: { name: { type: 'string', pattern: '^[a-z0-9_]{1,64}$' } }, required: ['name'] },
        querystring: mapPageQuerySchema,
        response: { 200: mapPageSchema, ...errors },
      },
    },
    async (req) => {
      const view = source.maps().find((m) => m.name === req.params.name);
      if (!view) {
        const known = source
          .maps()
          .map((m) => m.name)
          .join(', ');
        throw new HttpError(404, DebugErrorCodes.NOT_FOUND, `no map ${req.params.name}; the agent holds ${known}`);
      }
      const summary = view.info();
      const cursor = req.query.cursor === undefined ? undefined : Buffer.from(req.query.cursor, 'base64url');
      let page: ReturnType<typeof view.page>;
      try {
        page = view.page(cursor, req.query.limit);
      } catch (err) {
        if (err instanceof RangeError) throw new HttpError(400, DebugErrorCodes.BAD_CURSOR, `cursor: ${err.message}`);
        throw err;
      }
      return {
        name: view.name,
        type: summary.type,
        perCpu: summary.perCpu,
        keyLayout: view.key.name,
        valueLayout: view.value.name,
        count: page.entries.length,
        entries: page.entries.map(([k, v]) => decodeEntry(view, summary.perCpu, k, v)),
        cursor: page.next ? page.next.toString('base64url') : null,
      };
    },
  );

  return app;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` or `[V6]:PORT`. */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || (m[1] !== 'localhost' && isIP(m[1]!) === 0)) {
    throw new SocklbError(ErrorCodes.BAD_OPTION, `--debug-address must be IP:PORT or [IPV6]:PORT, got ${JSON.stringify(text)}`);
  }
  return { host: m[1]!, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export interface DebugListenOptions extends DebugServerOptions {
  /** `HOST:PORT`; default 127.0.0.1:10249. */
  address?: string;
  /** Allows a non-loopback address; needs tokenFile too. */
  allowRemote?: boolean;
  /** A file holding the bearer token clients must send (required off loopback). */
  tokenFile?: string;
}

/**
 * Checks where the endpoint may listen and loads the token, before anything binds: the endpoint
 * shows every service and backend of the node, so off loopback it needs both an explicit flag and
 * a token.
 */
export function checkDebugListen(o: DebugListenOptions): { address: ListenAddress; token: string | undefined } {
  const address = parseListenAddress(o.address ?? DEFAULT_DEBUG_ADDRESS);
  let token = o.token;
  if (o.tokenFile !== undefined) {
    try {
      token = readFileSync(o.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new SocklbError(ErrorCodes.BAD_OPTION, `--debug-token-file ${o.tokenFile}: ${(err as Error).message}`);
    }
    if (token.length < 16) {
      throw new SocklbError(ErrorCodes.BAD_OPTION, `--debug-token-file ${o.tokenFile}: the token must be at least 16 characters`);
    }
  }
  if (!isLoopback(address.host)) {
    if (!o.allowRemote) {
      throw new SocklbError(
        ErrorCodes.BAD_OPTION,
        `--debug-address ${o.address} is not a loopback address: the debug endpoint shows every service and backend of the node; add --debug-allow-remote and --debug-token-file FILE to serve it there`,
      );
    }
    if (!token) {
      throw new SocklbError(
        ErrorCodes.BAD_OPTION,
        `--debug-address ${o.address} with --debug-allow-remote needs --debug-token-file FILE: off loopback every request must carry a bearer token`,
      );
    }
  }
  return { address, token };
}

/** Checks the options, builds the server and listens. Fails before binding when the options are unsafe. */
export async function startDebugServer(source: DebugSource, o: DebugListenOptions = {}): Promise<{ server: FastifyInstance; url: string }> {
  const { address, token } = checkDebugListen(o);
  const server = await buildDebugServer(source, { ...o, ...(token ? { token } : {}) });
  try {
    const url = await server.listen({ host: address.host, port: address.port });
    return { server, url };
  } catch (err) {
    await server.close();
    const e = err as NodeJS.ErrnoException;
    throw new SocklbError(ErrorCodes.HOST, `the debug endpoint cannot listen on ${address.host}:${address.port}: ${e.code ?? e.message}`, {
      cause: err,
    });
  }
}
