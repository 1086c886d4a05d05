// JSON schemas of the debug endpoint's responses: fastify compiles its serialisers from them and
// @fastify/swagger builds /openapi.json from them, so the two cannot drift.

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every 4xx and 5xx answer; never a stack trace.',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string', description: 'The HTTP reason phrase.' },
    code: { type: 'string', description: 'A stable code: SOCKLB_ERR_* or a fastify FST_ERR_* for a malformed request.' },
    message: { type: 'string' },
  },
  required: ['statusCode', 'error', 'code', 'message'],
} as const;

const problemSchema = {
  type: 'object',
  properties: {
    kind: { type: 'string' },
    namespace: { type: 'string' },
    name: { type: 'string' },
    field: { type: 'string' },
    code: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const programProblemSchema = {
  type: 'object',
  properties: {
    key: { type: 'string', description: 'The frontend (e.g. TCP/10.96.0.10:80) or backend/<id>.' },
    namespace: { type: 'string' },
    name: { type: 'string' },
    code: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const hookSchema = {
  type: 'object',
  properties: {
    program: { type: 'string' },
    attachType: { type: 'string' },
    attached: { type: 'boolean' },
  },
} as const;

export const statusSchema = {
  $id: 'Status',
  type: 'object',
  properties: {
    version: { type: 'string' },
    healthy: { type: 'boolean', description: 'Loaded, every hook attached, and synced at least once.' },
    loaded: { type: 'boolean' },
    attached: { type: 'boolean', description: 'Every cgroup hook is attached to the agent cgroup.' },
    hooks: { type: 'array', items: hookSchema },
    inSync: { type: 'boolean', description: 'The maps hold the latest desired table.' },
    adopted: { type: 'boolean', description: 'The datapath was taken over from an earlier agent.' },
    lastSync: { type: ['string', 'null'], format: 'date-time' },
    syncs: { type: 'integer' },
    frontends: { type: 'integer' },
    objectProblems: { type: 'array', items: problemSchema },
    programProblems: { type: 'array', items: programProblemSchema },
    destroyMethod: {
      type: 'string',
      enum: ['bpf_sock_destroy', 'sock_diag'],
      description: 'How UDP sockets of removed backends are destroyed.',
    },
    refuseErrno: {
      type: 'integer',
      description: 'errno of a connect() to a service without backends; 0: no bpf_set_retval (Linux < 5.18), callers see EPERM.',
    },
    committed: { type: 'boolean', description: "The hooks run this agent's programs (after its first full sync)." },
    migration: {
      type: 'object',
      description: 'What start-up did to the pinned maps of an earlier agent.',
      properties: {
        created: { type: 'array', items: { type: 'string' } },
        copied: {
          type: 'array',
          items: {
            type: 'object',
            properties: { from: { type: 'string' }, to: { type: 'string' }, entries: { type: 'integer' }, dropped: { type: 'integer' } },
          },
        },
        removed: { type: 'array', items: { type: 'string' } },
      },
    },
    syncErrors: {
      type: 'array',
      description: 'Steps of the last sync that failed; each is retried.',
      items: {
        type: 'object',
        properties: {
          step: { type: 'string', enum: ['program', 'commit', 'destroy'] },
          code: { type: 'string' },
          message: { type: 'string' },
          at: { type: 'string', format: 'date-time' },
        },
      },
    },
    pendingDestroy: { type: 'integer', description: 'UDP backends removed whose sockets are still to be destroyed.' },
    xdp: {
      type: 'array',
      description: 'The devices the XDP program runs on (empty: --xdp-mode off).',
      items: {
        type: 'object',
        properties: {
          device: { type: 'string' },
          ifindex: { type: 'integer' },
          mode: { type: 'string', enum: ['native', 'generic'] },
          fallback: { type: 'string', description: 'Why native mode was refused, after a fallback to generic.' },
          egress: { type: 'string', enum: ['tcx', 'clsact'] },
        },
      },
    },
    dsrFallbacks: {
      type: 'integer',
      description: '--nodeport-mode dsr: backends on other nodes reached by SNAT, their node address unknown.',
    },
  },
} as const;

export const healthSchema = {
  $id: 'Health',
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok', 'unhealthy'] },
    loaded: { type: 'boolean' },
    attached: { type: 'boolean' },
    inSync: { type: 'boolean' },
    lastSync: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

const backendSchema = {
  type: 'object',
  properties: {
    slot: { type: 'integer' },
    backendId: { type: 'integer' },
    backend: { type: 'string' },
    address: { type: 'string' },
    port: { type: 'integer' },
    connects: { type: 'integer', description: 'Per backend id: a backend shared by frontends shows the sum over them.' },
  },
} as const;

const frontendSchema = {
  type: 'object',
  properties: {
    frontend: { type: 'string' },
    family: { type: 'integer', enum: [4, 6] },
    address: { type: 'string' },
    port: { type: 'integer' },
    protocol: { type: 'string' },
    portName: { type: 'string' },
    serviceId: { type: 'integer' },
    backendCount: { type: 'integer' },
    affinityTimeout: { type: 'integer', description: 'ClientIP session affinity timeout in seconds; 0 for none.' },
    scheduler: { type: 'string', description: 'How the frontend picks a backend (socklb.io/scheduler): random, rr, wrr, sh, maglev.' },
    connects: { type: 'integer' },
    refused: { type: 'integer' },
    backends: { type: 'array', items: backendSchema },
  },
} as const;

export const serviceSchema = {
  $id: 'Service',
  type: 'object',
  properties: {
    namespace: { type: 'string' },
    name: { type: 'string' },
    frontends: { type: 'array', items: frontendSchema },
  },
} as const;

export const servicesSchema = {
  type: 'object',
  properties: { services: { type: 'array', items: { $ref: 'Service#' } } },
} as const;

export const mapSummarySchema = {
  $id: 'MapSummary',
  type: 'object',
  properties: {
    name: { type: 'string' },
    type: { type: 'string' },
    keySize: { type: 'integer' },
    valueSize: { type: 'integer' },
    maxEntries: { type: 'integer' },
    entries: { type: 'integer' },
    memoryBytes: { type: ['integer', 'null'] },
    perCpu: { type: 'boolean' },
    keyLayout: { type: 'string' },
    valueLayout: { type: 'string' },
  },
} as const;

export const mapsSchema = {
  type: 'object',
  properties: { maps: { type: 'array', items: { $ref: 'MapSummary#' } } },
} as const;

const fieldsSchema = {
  type: 'object',
  description: 'Fields by their C name; u64 values beyond 2^53 come as decimal strings.',
  additionalProperties: { anyOf: [{ type: 'integer' }, { type: 'string' }] },
} as const;

export const mapPageSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    type: { type: 'string' },
    perCpu: { type: 'boolean' },
    keyLayout: { type: 'string' },
    valueLayout: { type: 'string' },
    count: { type: 'integer', description: 'Entries in this page.' },
    entries: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          key: fieldsSchema,
          value: { ...fieldsSchema, description: 'For a per-CPU map, the sum over CPUs.' },
          cpus: { type: 'array', items: fieldsSchema, description: 'For a per-CPU map, each CPU value.' },
        },
      },
    },
    cursor: { type: ['string', 'null'], description: 'Pass as ?cursor= for the next page; null after the last.' },
  },
} as const;

export const mapPageQuerySchema = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 5000, default: 100 },
    cursor: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,1024}$', description: 'Opaque, from the previous page.' },
  },
  additionalProperties: false,
} as const;

export const configSchema = {
  type: 'object',
  description: 'The settings the agent runs with.',
  additionalProperties: true,
} as const;

export const SHARED_SCHEMAS = [errorSchema, statusSchema, healthSchema, serviceSchema, mapSummarySchema] as const;
