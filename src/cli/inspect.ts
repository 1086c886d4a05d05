// `socklb services | backends | maps | map dump NAME | status`: operator commands, HTTP clients of
// the agent's debug endpoint, printing aligned tables (or the endpoint's JSON with --json).

import { readFileSync } from 'node:fs';
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { DEFAULT_DEBUG_ADDRESS } from '../debug/defaults.ts';

export const INSPECT_COMMANDS = ['services', 'backends', 'maps', 'map', 'status'] as const;

export const INSPECT_USAGE = `usage:
  socklb services [NAMESPACE/NAME] [--address HOST:PORT] [--json]
  socklb backends [--address HOST:PORT] [--json]
  socklb maps [--address HOST:PORT] [--json]
  socklb map dump NAME [--limit N] [--address HOST:PORT] [--json]
  socklb status [--address HOST:PORT] [--json]

  services  the frontends programmed in the maps, per service, with connect counters
  backends  every backend slot of every frontend, with connect counters
  maps      every BPF map: type, sizes, entries in use against capacity, memory
  map dump  the entries of one map, decoded by field name
  status    whether the agent is loaded, attached, in sync and healthy, in one screen

  --address      the agent's debug endpoint (default ${DEFAULT_DEBUG_ADDRESS})
  --token-file   a file with the bearer token, when the endpoint requires one
  --json         print the endpoint's JSON instead of a table`;

/** Where output goes; the process's streams unless a test gives others. */
export interface InspectIo {
  out(text: string): void;
  err(text: string): void;
}

const PROCESS_IO: InspectIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

class InspectError extends Error {}

interface Client {
  base: string;
  get<T>(path: string): Promise<T>;
}

function client(address: string, token: string | undefined): Client {
  const base = `http://${address}`;
  return {
    base,
    async get<T>(path: string): Promise<T> {
      let res: Response;
      try {
        res = await fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10_000) });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
        throw new InspectError(
          `cannot reach the socklb debug endpoint at ${base}: ${cause} (is the agent running? --address picks another)`,
        );
      }
      const text = await res.text();
      if (!res.ok) {
        let detail = text;
        try {
          const e = JSON.parse(text) as { code?: string; message?: string };
          detail = `${e.code ?? ''}: ${e.message ?? text}`;
        } catch {
          /* not JSON: show the body */
        }
        throw new InspectError(`GET ${path}: ${res.status} ${detail}`);
      }
      return JSON.parse(text) as T;
    },
  };
}

// ---- shapes served by the endpoint (see src/debug/schemas.ts) ---------------------------------

interface BackendRow {
  slot: number;
  backendId: number;
  backend: string;
  connects: number;
}
interface FrontendRow {
  frontend: string;
  portName: string;
  serviceId: number;
  backendCount: number;
  connects: number;
  refused: number;
  backends: BackendRow[];
}
interface ServiceRow {
  namespace: string;
  name: string;
  frontends: FrontendRow[];
}
interface MapRow {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  entries: number;
  memoryBytes: number | null;
  perCpu: boolean;
}
interface MapPage {
  name: string;
  perCpu: boolean;
  keyLayout: string;
  valueLayout: string;
  entries: { key: Record<string, number | string>; value: Record<string, number | string> }[];
  cursor: string | null;
}
interface Status {
  version: string;
  healthy: boolean;
  loaded: boolean;
  attached: boolean;
  hooks: { program: string; attachType: string; attached: boolean }[];
  inSync: boolean;
  adopted: boolean;
  lastSync: string | null;
  syncs: number;
  frontends: number;
  objectProblems: { kind: string; namespace: string; name: string; field: string; code: string; message: string }[];
  programProblems: { key: string; namespace: string; name: string; code: string; message: string }[];
  destroyMethod: string;
  syncErrors: { step: string; code: string; message: string; at: string }[];
  pendingDestroy: number;
  xdp: { device: string; mode: string; fallback?: string; egress: string }[];
  /** Absent from agents before it existed. */
  dsrFallbacks?: number;
}

// ---- tables -----------------------------------------------------------------------------------

/** Columns padded to their widest cell; numeric columns right-aligned, like tabwriter output. */
export function formatTable(headers: string[], rows: (string | number)[][]): string {
  const numeric = headers.map((_, c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number'));
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const lines = cells.map((r) =>
    r
      .map((cell, c) => (numeric[c] ? cell.padStart(widths[c]!) : c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
      .join('   ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

function serviceName(s: { namespace: string; name: string }): string {
  return s.name ? `${s.namespace}/${s.name}` : '(unnamed)';
}

function bytes(n: number | null): string {
  if (n === null) return '-';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function percent(used: number, max: number): string {
  return max > 0 ? `${((100 * used) / max).toFixed(1)}%` : '-';
}

function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  return s < 120 ? `${s.toFixed(1)}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

async function servicesCmd(c: Client, args: string[], json: boolean, io: InspectIo): Promise<void> {
  if (args.length > 1) throw new InspectError('socklb services takes at most one NAMESPACE/NAME');
  let services: ServiceRow[];
  if (args[0] !== undefined) {
    const m = /^([^/]+)\/([^/]+)$/.exec(args[0]);
    if (!m) throw new InspectError(`expected NAMESPACE/NAME, got ${JSON.stringify(args[0])}`);
    services = [await c.get<ServiceRow>(`/v1/services/${encodeURIComponent(m[1]!)}/${encodeURIComponent(m[2]!)}`)];
  } else {
    services = (await c.get<{ services: ServiceRow[] }>('/v1/services')).services;
  }
  if (json) return io.out(`${JSON.stringify(args[0] !== undefined ? services[0] : { services }, null, 2)}\n`);
  const rows = services.flatMap((s) =>
    s.frontends.map((f) => [serviceName(s), f.portName || '-', f.frontend, f.serviceId, f.backendCount, f.connects, f.refused]),
  );
  io.out(formatTable(['SERVICE', 'PORT', 'FRONTEND', 'ID', 'BACKENDS', 'CONNECTS', 'REFUSED'], rows));
}

async function backendsCmd(c: Client, args: string[], json: boolean, io: InspectIo): Promise<void> {
  if (args.length > 0) throw new InspectError('socklb backends takes no arguments');
  const { services } = await c.get<{ services: ServiceRow[] }>('/v1/services');
  if (json) {
    const flat = services.flatMap((s) =>
      s.frontends.flatMap((f) => f.backends.map((b) => ({ namespace: s.namespace, name: s.name, frontend: f.frontend, ...b }))),
    );
    return io.out(`${JSON.stringify({ backends: flat }, null, 2)}\n`);
  }
  // One block per frontend, as `cilium-dbg bpf lb list` prints a service then its backends.
  const rows: (string | number)[][] = [];
  for (const s of services) {
    for (const f of s.frontends) {
      if (f.backends.length === 0) rows.push([f.frontend, '-', '(no backend: connects refused)', '-', '-', serviceName(s)]);
      f.backends.forEach((b, i) => {
        rows.push([i === 0 ? f.frontend : '', b.slot, b.backend || '(missing)', b.backendId, b.connects, i === 0 ? serviceName(s) : '']);
      });
    }
  }
  io.out(formatTable(['FRONTEND', 'SLOT', 'BACKEND', 'ID', 'CONNECTS', 'SERVICE'], rows));
}

async function mapsCmd(c: Client, args: string[], json: boolean, io: InspectIo): Promise<void> {
  if (args.length > 0) throw new InspectError('socklb maps takes no arguments');
  const { maps } = await c.get<{ maps: MapRow[] }>('/v1/maps');
  if (json) return io.out(`${JSON.stringify({ maps }, null, 2)}\n`);
  // An array map always holds max entries: its fill says nothing.
  const use = (m: MapRow) => (m.type.endsWith('array') ? '-' : percent(m.entries, m.maxEntries));
  const rows = maps.map((m) => [m.name, m.type, m.keySize, m.valueSize, m.entries, m.maxEntries, use(m), bytes(m.memoryBytes)]);
  io.out(formatTable(['NAME', 'TYPE', 'KEY', 'VALUE', 'ENTRIES', 'MAX', 'USE', 'MEMORY'], rows));
}

async function mapDumpCmd(c: Client, args: string[], json: boolean, limit: number | undefined, io: InspectIo): Promise<void> {
  if (args[0] !== 'dump' || args.length !== 2) throw new InspectError('usage: socklb map dump NAME');
  const name = args[1]!;
  const entries: MapPage['entries'] = [];
  let first: MapPage | undefined;
  let cursor: string | null = null;
  do {
    const want = Math.min(1000, limit === undefined ? 1000 : limit - entries.length);
    const q = `?limit=${want}${cursor ? `&cursor=${cursor}` : ''}`;
    const page: MapPage = await c.get<MapPage>(`/v1/maps/${encodeURIComponent(name)}${q}`);
    first ??= page;
    entries.push(...page.entries);
    cursor = page.cursor;
  } while (cursor && (limit === undefined || entries.length < limit));
  const shown = limit === undefined ? entries : entries.slice(0, limit);
  if (json) return io.out(`${JSON.stringify({ name, entries: shown }, null, 2)}\n`);
  const keyFields = Object.keys(shown[0]?.key ?? {});
  const valueFields = Object.keys(shown[0]?.value ?? {});
  const label = (f: string, other: string[], side: string) => (other.includes(f) ? `${side}.${f}` : f).toUpperCase();
  const headers = [
    ...keyFields.map((f) => label(f, valueFields, 'key')),
    ...valueFields.map((f) => label(f, keyFields, 'value') + (first?.perCpu ? ' (ALL CPUS)' : '')),
  ];
  const rows = shown.map((e) => [...keyFields.map((f) => e.key[f]!), ...valueFields.map((f) => e.value[f]!)]);
  io.out(headers.length > 0 ? formatTable(headers, rows) : '');
  io.out(
    `${shown.length} entries in ${name} (${first?.keyLayout} -> ${first?.valueLayout})${cursor ? ', more with a larger --limit' : ''}\n`,
  );
}

async function statusCmd(c: Client, args: string[], json: boolean, io: InspectIo): Promise<number> {
  if (args.length > 0) throw new InspectError('socklb status takes no arguments');
  const [status, { services }, { maps }] = await Promise.all([
    c.get<Status>('/v1/status'),
    c.get<{ services: ServiceRow[] }>('/v1/services'),
    c.get<{ maps: MapRow[] }>('/v1/maps'),
  ]);
  if (json) {
    io.out(`${JSON.stringify(status, null, 2)}\n`);
    return status.healthy ? 0 : 1;
  }
  const lines: [string, string][] = [];
  const attachedHooks = status.hooks.filter((h) => h.attached);
  const missing = status.hooks.filter((h) => !h.attached).map((h) => h.program);
  const frontends = services.reduce((n, s) => n + s.frontends.length, 0);
  const backends = new Set(services.flatMap((s) => s.frontends.flatMap((f) => f.backends.map((b) => b.backendId)))).size;
  const fullest = maps.filter((m) => !m.type.endsWith('array')).sort((a, b) => b.entries / b.maxEntries - a.entries / a.maxEntries)[0];
  lines.push(['Agent', `socklb ${status.version} at ${c.base}`]);
  lines.push(['Health', status.healthy ? 'healthy' : 'UNHEALTHY']);
  lines.push(['Datapath', `${status.loaded ? 'loaded' : 'NOT LOADED'}${status.adopted ? ' (adopted from an earlier agent)' : ''}`]);
  lines.push([
    'Hooks',
    `${attachedHooks.length}/${status.hooks.length} attached${missing.length > 0 ? `; NOT attached: ${missing.join(', ')}` : ''}`,
  ]);
  lines.push([
    'Sync',
    `${status.inSync ? 'in sync' : 'NOT in sync (a change is waiting)'}, ${status.syncs} syncs, last ${ago(status.lastSync)}`,
  ]);
  lines.push(['Services', `${services.filter((s) => s.name).length} services, ${frontends} frontends, ${backends} backends programmed`]);
  if (fullest)
    lines.push([
      'Fullest map',
      `${fullest.name} ${fullest.entries}/${fullest.maxEntries} (${percent(fullest.entries, fullest.maxEntries)})`,
    ]);
  lines.push([
    'UDP destroy',
    `through ${status.destroyMethod}${status.pendingDestroy > 0 ? `; ${status.pendingDestroy} removed backends still to do` : ''}`,
  ]);
  lines.push([
    'XDP',
    status.xdp.length === 0
      ? 'off'
      : status.xdp.map((x) => `${x.device} ${x.mode}${x.fallback ? ' (native refused)' : ''}, egress ${x.egress}`).join('; ') +
        ((status.dsrFallbacks ?? 0) > 0 ? `; DSR: ${status.dsrFallbacks} backends on unknown nodes get SNAT` : ''),
  ]);
  lines.push([
    'Sync errors',
    status.syncErrors.length === 0 ? 'none' : status.syncErrors.map((e) => `${e.step}: ${e.code} (retrying)`).join(', '),
  ]);
  const problems = status.objectProblems.length + status.programProblems.length;
  lines.push([
    'Problems',
    problems === 0 ? 'none' : `${status.objectProblems.length} rejected objects, ${status.programProblems.length} frontends not programmed`,
  ]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  const rows = lines.map(([label, value]) => {
    const key = `${label}:`;
    return `${key.padEnd(width)}  ${value}\n`;
  });
  io.out(rows.join(''));
  const shown = 10;
  for (const p of status.objectProblems.slice(0, shown)) {
    io.out(`  ${p.code}: ${p.kind} ${p.namespace}/${p.name}: ${p.field ? `${p.field}: ` : ''}${p.message}\n`);
  }
  for (const p of status.programProblems.slice(0, shown)) io.out(`  ${p.code}: ${p.key}: ${p.message}\n`);
  for (const e of status.syncErrors) io.out(`  ${e.code}: sync step ${e.step}: ${e.message}\n`);
  if (status.objectProblems.length > shown || status.programProblems.length > shown) io.out('  ... (--json lists them all)\n');
  return status.healthy ? 0 : 1;
}

const INSPECT_OPTIONS = {
  address: { type: 'string', default: DEFAULT_DEBUG_ADDRESS },
  'token-file': { type: 'string' },
  json: { type: 'boolean', default: false },
  limit: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsOptionsConfig;

/**
 * Runs one inspect command; returns the exit code (0 ok, 1 failed or unhealthy, 2 usage).
 * `command` is one of INSPECT_COMMANDS; argv is what follows it.
 */
export async function inspectCommand(command: string, argv: string[], io: InspectIo = PROCESS_IO): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ options: typeof INSPECT_OPTIONS }>>['values'];
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: INSPECT_OPTIONS,
    }));
  } catch (err) {
    io.err(`socklb ${command}: ${(err as Error).message}\n${INSPECT_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.out(`${INSPECT_USAGE}\n`);
    return 0;
  }
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) {
      io.err(`socklb ${command}: --limit must be a positive integer, got ${JSON.stringify(values.limit)}\n`);
      return 2;
    }
  }
  try {
    const token = values['token-file'] === undefined ? undefined : readFileSync(values['token-file'], 'utf8').trim();
    const c = client(values.address, token);
    switch (command) {
      case 'services':
        await servicesCmd(c, positionals, values.json, io);
        return 0;
      case 'backends':
        await backendsCmd(c, positionals, values.json, io);
        return 0;
      case 'maps':
        await mapsCmd(c, positionals, values.json, io);
        return 0;
      case 'map':
        await mapDumpCmd(c, positionals, values.json, limit, io);
        return 0;
      case 'status':
        return await statusCmd(c, positionals, values.json, io);
      default:
        io.err(`socklb: unknown command ${JSON.stringify(command)}\n${INSPECT_USAGE}\n`);
        return 2;
    }
  } catch (err) {
    if (err instanceof InspectError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      io.err(`socklb ${command}: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}
