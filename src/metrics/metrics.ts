// Prometheus metrics in a registry of their own. Counters the datapath keeps (per-CPU map values) are
// read at scrape time: the few series per map or reason in collect callbacks, the one-per-frontend
// families (thousands) written straight into the exposition's bytes. Sync and programming latencies
// are observed by the agent. Each socklb_ metric that has a kube-proxy counterpart keeps its name
// after the prefix.

import { Readable } from 'node:stream';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ABI_VERSION, MapNames } from '../datapath/abi.ts';
import type { MapInfo } from '../debug/map-views.ts';
import { type DebugSource, sockReasonCounts, sumCounters, xdpReasonCounts } from '../debug/source.ts';
import { type Backend, type DesiredFrontend, type DesiredTable, endpointKey } from '../model/types.ts';
import type { ProgrammedService } from '../reconcile/state.ts';
import { VERSION } from '../version.ts';

/** kube-proxy's buckets for sync_proxy_rules_duration_seconds: 1 ms doubling to 16 s. */
const SYNC_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

/** kube-proxy's buckets for network_programming_duration_seconds (0.25 s .. 5 min). */
const PROGRAMMING_BUCKETS = [
  0.25,
  0.5,
  ...Array.from({ length: 59 }, (_, i) => i + 1),
  ...Array.from({ length: 12 }, (_, i) => 60 + 5 * i),
  ...Array.from({ length: 7 }, (_, i) => 120 + 30 * i),
];

export interface MetricsOptions {
  /**
   * Also export socklb_backend_connects_total, one series per backend: their number grows with the
   * cluster, and kube-proxy has none (`--metrics-per-backend`). Off by default.
   */
  perBackend?: boolean;
}

/** One counter family of many series: each series' label text as bytes, and its value. */
interface Rows {
  family: { name: string; help: string };
  labels: Buffer[];
  values: Float64Array;
}

interface Snapshot {
  /** The per-frontend (and per-backend) counter families, rendered as bytes by exposition(). */
  rows: Rows[];
  maps: (MapInfo & { entries: number | undefined })[];
  reasons: Record<string, number>;
  /** xdp_stats_v1 by reason; undefined without the XDP datapath. */
  xdpReasons: Record<string, number> | undefined;
}

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
function labelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

/** The longest sample value a counter sum can print: 2^53 has 16 digits. */
const VALUE_DIGITS = 16;

/** Writes a non-negative integer (below 2^53) in decimal at `at`; returns the end. */
function writeCount(out: Buffer, at: number, value: number): number {
  let digits = 1;
  for (let x = value; x >= 10; x = Math.floor(x / 10)) digits++;
  let p = at + digits;
  let x = value;
  do {
    out[--p] = 48 + (x % 10);
    x = Math.floor(x / 10);
  } while (x > 0);
  return at + digits;
}

/** Bytes per chunk of the exposition. */
const CHUNK = 64 * 1024;

/** Chunks kept for the next scrape: 32 MiB, more than 50,000 services with per-backend series need. */
const POOL_CHUNKS = 512;

/**
 * `head`, then the families of many series in the Prometheus text format (0.0.4), rendered a chunk
 * at a time as the reader pulls, into chunks from `take`. At 50,000 services that is 100,000 lines
 * and 12 MB: built as strings and encoded, or in fresh buffers, the garbage cost more than the rest
 * of the scrape (a full collection of the agent's heap every few scrapes), so chunks are reused.
 */
function* render(head: string, families: Rows[], take: () => Buffer): Generator<Buffer> {
  yield Buffer.from(head.endsWith('\n') ? head : `${head}\n`);
  for (const { family, labels, values } of families) {
    const name = Buffer.from(`${family.name}{`);
    let out = take();
    let at = out.write(`\n# HELP ${family.name} ${family.help}\n# TYPE ${family.name} counter\n`);
    for (let j = 0; j < labels.length; j++) {
      const label = labels[j]!;
      const need = name.length + label.length + 2 + VALUE_DIGITS + 1;
      if (at + need > out.length) {
        yield out.subarray(0, at);
        out = need > CHUNK ? Buffer.allocUnsafe(need) : take();
        at = 0;
      }
      // TypedArray set, not Buffer copy: a fifth of the cost for 100,000 small copies.
      out.set(name, at);
      at += name.length;
      out.set(label, at);
      at += label.length;
      out[at++] = 125; // }
      out[at++] = 32;
      at = writeCount(out, at, values[j]!);
      out[at++] = 10;
    }
    yield out.subarray(0, at);
  }
}

const FRONTEND_CONNECTS = {
  name: 'socklb_service_connects_total',
  help: 'Connects (TCP) and sends (UDP) balanced to a backend, per frontend, from the per-CPU counters.',
};
const FRONTEND_REFUSED = { name: 'socklb_service_refused_total', help: 'Connects and sends refused because the frontend had no backend.' };
const BACKEND_CONNECTS = {
  name: 'socklb_backend_connects_total',
  help: 'Connects and sends balanced to a backend, over every frontend that uses it (only with --metrics-per-backend).',
};

export class SocklbMetrics {
  readonly registry = new Registry();
  readonly #source: DebugSource;
  readonly #sync: Histogram;
  readonly #programming: Histogram;
  readonly #syncErrors: Counter<'reason'>;
  readonly #stepErrors: Counter<'step' | 'code'>;
  readonly #perBackend: boolean;
  #snapshot: Snapshot | undefined;
  /** Exposition chunks whose replies are over, for the next scrape. */
  #pool: Buffer[] = [];
  #labels: { table: DesiredTable; names: Map<string, DesiredFrontend> | undefined; bytes: WeakMap<ProgrammedService, Buffer> } | undefined;

  constructor(source: DebugSource, options: MetricsOptions = {}) {
    this.#source = source;
    this.#perBackend = options.perBackend ?? false;
    const registers = [this.registry];
    const self = this;

    new Gauge({
      name: 'socklb_build_info',
      help: 'Always 1; the labels name the running build.',
      labelNames: ['version', 'abi_version', 'node_version'],
      registers,
    }).set({ version: VERSION, abi_version: String(ABI_VERSION), node_version: process.version }, 1);

    this.#sync = new Histogram({
      name: 'socklb_sync_proxy_rules_duration_seconds',
      help: 'Time one reconcile of the desired table into the maps took (kubeproxy_sync_proxy_rules_duration_seconds).',
      buckets: SYNC_BUCKETS,
      registers,
    });
    this.#programming = new Histogram({
      name: 'socklb_network_programming_duration_seconds',
      help: "From an EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time to the map write that carries it (kubeproxy_network_programming_duration_seconds).",
      buckets: PROGRAMMING_BUCKETS,
      registers,
    });
    this.#syncErrors = new Counter({
      name: 'socklb_sync_proxy_rules_errors_total',
      help: 'Frontends a reconcile could not (fully) program, by reason (error code), summed over reconciles.',
      labelNames: ['reason'],
      registers,
    });

    this.#stepErrors = new Counter({
      name: 'socklb_sync_step_errors_total',
      help: 'Steps of a sync that failed and were retried (program the maps, commit the hooks, destroy sockets), by step and error code.',
      labelNames: ['step', 'code'],
      registers,
    });

    new Gauge({
      name: 'socklb_sync_proxy_rules_last_timestamp_seconds',
      help: 'When the last reconcile finished, Unix time (kubeproxy_sync_proxy_rules_last_timestamp_seconds).',
      registers,
      collect() {
        const last = source.status().lastSync;
        if (last) this.set(last.getTime() / 1000);
      },
    });
    new Gauge({
      name: 'socklb_in_sync',
      help: '1 when the maps hold the latest desired table, 0 while a change waits.',
      registers,
      collect() {
        this.set(source.status().inSync ? 1 : 0);
      },
    });
    new Gauge({
      name: 'socklb_reconcile_errors',
      help: 'Frontends the last reconcile left unprogrammed (or part programmed), by reason (error code).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const p of source.status().programProblems) this.inc({ reason: p.code });
      },
    });
    new Gauge({
      name: 'socklb_dsr_fallback_backends',
      help: '--nodeport-mode dsr: backends on other nodes that traffic from outside reaches by SNAT instead, their Node (or its address of their family) unknown. 0 in snat mode.',
      registers,
      collect() {
        this.set(source.status().dsrFallbacks);
      },
    });
    new Gauge({
      name: 'socklb_rejected_objects',
      help: 'Problems found in Services and EndpointSlices (each names an object and field), by reason (error code).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const p of source.status().objectProblems) this.inc({ reason: p.code });
      },
    });

    // The per-frontend (and per-backend) families are written as text by metrics(): one series per
    // frontend is 100,000 series at 50,000 services, and prom-client's labelled children cost
    // several times the map read at that size (hash per label set, per-series objects, escaping).
    new Counter({
      name: 'socklb_sock_hook_total',
      help: 'Calls of the socket hooks by outcome (sock_stats reasons: balanced, not_service, no_backend, ...).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(self.#snap().reasons)) this.inc({ reason }, n);
      },
    });

    new Counter({
      name: 'socklb_xdp_packets_total',
      help: 'Packets the XDP program (and its tc egress partner) handled, by outcome (xdp_stats reasons: balanced, established, reply, not_service, source_denied, nat_exhausted, nat_reclaimed, ct_expired, ...).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(self.#snap().xdpReasons ?? {})) this.inc({ reason }, n);
      },
    });

    const mapGauge = (name: string, help: string, value: (m: Snapshot['maps'][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['map'],
        registers,
        collect() {
          this.reset();
          for (const m of self.#snap().maps) {
            const v = value(m);
            if (v !== undefined) this.set({ map: m.name }, v);
          }
        },
      });
    mapGauge(
      'socklb_map_entries',
      'Entries of a BPF map the agent writes, as it programmed them (an array map always holds max entries; the LRU maps are not counted).',
      (m) => m.entries,
    );
    mapGauge('socklb_map_max_entries', 'Capacity of a BPF map.', (m) => m.maxEntries);
    mapGauge('socklb_map_memory_bytes', 'Memory charged to a BPF map (fdinfo memlock).', (m) => m.memoryBytes);
  }

  /** Records one reconcile: how long it took, and the frontends it could not program. */
  observeSync(seconds: number, problems: readonly { code: string }[] = []): void {
    this.#sync.observe(seconds);
    for (const p of problems) this.#syncErrors.inc({ reason: p.code });
  }

  /** Records a failed step of a sync (it is retried). */
  observeSyncError(step: string, code: string): void {
    this.#stepErrors.inc({ step, code });
  }

  /**
   * Records the latency from an EndpointSlice change (its last-change-trigger-time annotation) to
   * the map write that made it visible. Call once per changed slice, after the write.
   */
  observeProgramming(triggerTime: Date, now: Date = new Date()): void {
    const seconds = (now.getTime() - triggerTime.getTime()) / 1000;
    if (Number.isFinite(seconds) && seconds >= 0) this.#programming.observe(seconds);
  }

  /**
   * The Prometheus text exposition, as GET /metrics serves it: every value is read now, the text is
   * rendered as the stream is read. Call `sent` once the reply is over: its chunks serve the next
   * scrape (a chunk reused before the socket took it would corrupt the reply).
   */
  async exposition(): Promise<{ body: Readable; sent: () => void }> {
    const { chunks, used } = await this.#render();
    let returned = false;
    const sent = () => {
      if (returned) return;
      returned = true;
      for (const c of used) if (this.#pool.length < POOL_CHUNKS) this.#pool.push(c);
    };
    return { body: Readable.from(chunks, { objectMode: false }), sent };
  }

  /** exposition() as one string. */
  async metrics(): Promise<string> {
    const { chunks, used } = await this.#render();
    const text = Buffer.concat([...chunks]).toString();
    this.#pool.push(...used.slice(0, POOL_CHUNKS - this.#pool.length));
    return text;
  }

  async #render(): Promise<{ chunks: Generator<Buffer>; used: Buffer[] }> {
    // A registry.metrics() of its own (a test's, say) leaves a snapshot behind: never serve that one.
    this.#snapshot = undefined;
    try {
      const head = await this.registry.metrics();
      const used: Buffer[] = [];
      const take = () => {
        const chunk = this.#pool.pop() ?? Buffer.allocUnsafe(CHUNK);
        used.push(chunk);
        return chunk;
      };
      return { chunks: render(head, this.#snap().rows, take), used };
    } finally {
      this.#snapshot = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The label bytes of a programmed frontend, named by the desired table; kept while the table is
   * the same object, as it is between syncs, and held by the state's entry (an identity lookup,
   * cheaper than hashing 50,000 key strings per scrape). A frontend the table does not name (left
   * by an earlier agent, or drift) gets namespace, service and port_name ''.
   */
  #frontendLabels(table: DesiredTable): (key: string, svc: ProgrammedService) => Buffer {
    if (this.#labels?.table !== table) this.#labels = { table, names: undefined, bytes: new WeakMap() };
    const cache = this.#labels;
    return (key, svc) => {
      let b = cache.bytes.get(svc);
      if (b === undefined) {
        cache.names ??= new Map(table.frontends.map((d) => [endpointKey(d.frontend), d]));
        const d = cache.names.get(key);
        b = Buffer.from(
          `namespace="${labelValue(d?.service.namespace ?? '')}",service="${labelValue(d?.service.name ?? '')}",port_name="${labelValue(d?.portName ?? '')}",frontend="${labelValue(key)}"`,
        );
        cache.bytes.set(svc, b);
      }
      return b;
    };
  }

  /** The label bytes of a backend, held by the state's backend object while it lasts. */
  #backendLabels = new WeakMap<Backend, Buffer>();

  /**
   * One read per scrape, shared by every collect callback of that scrape: the counter maps in pages
   * (the backend counters only when their series are on), the sock_stats reasons, and each map's
   * info. Frontends and backends are named from the agent's programmed state, so the service, slot
   * and backend maps are not read at all.
   */
  #snap(): Snapshot {
    this.#snapshot ??= this.#read();
    return this.#snapshot;
  }

  #read(): Snapshot {
    const source = this.#source;
    const state = source.programmed();
    const views = new Map(source.maps().map((m) => [m.name, m]));
    /** A counter array summed over CPUs, indexed by id, up to the highest id programmed. */
    const counters = (name: string, maxId: number): Record<string, Float64Array> => {
      const view = views.get(name);
      return view && maxId > 0 ? sumCounters(view, maxId + 1) : {};
    };

    let maxId = 0;
    for (const svc of state.services.values()) if (svc.serviceId > maxId) maxId = svc.serviceId;
    const counts = counters(MapNames.serviceStats, maxId);
    const labels = this.#frontendLabels(source.table());
    const frontendLabels: Buffer[] = new Array(state.services.size);
    const connects = new Float64Array(state.services.size);
    const refused = new Float64Array(state.services.size);
    // Entries of the maps the agent writes, from what it programmed, counted in the same pass: the
    // kernel keeps no count, and counting would walk every bucket of every map on each scrape. The
    // maps the datapath fills itself (reverse, affinity) get no such figure; /v1/maps counts them.
    const n = { v4: 0, slots: 0 };
    for (const orphans of state.orphanSlots.values()) n.slots += orphans.size;
    let i = 0;
    for (const [key, svc] of state.services) {
      if (svc.frontend.family === 4) n.v4++;
      n.slots += svc.slots.size;
      frontendLabels[i] = labels(key, svc);
      connects[i] = counts.connects?.[svc.serviceId] ?? 0;
      refused[i++] = counts.refused?.[svc.serviceId] ?? 0;
    }
    const entries = new Map<string, number>([
      [MapNames.lb4Services, n.v4],
      [MapNames.lb6Services, state.services.size - n.v4],
      [MapNames.slots, n.slots],
      [MapNames.lb4Backends, state.backendCount(4)],
      [MapNames.lb6Backends, state.backendCount(6)],
    ]);
    const rows: Rows[] = [
      { family: FRONTEND_CONNECTS, labels: frontendLabels, values: connects },
      { family: FRONTEND_REFUSED, labels: frontendLabels, values: refused },
    ];

    if (this.#perBackend) {
      let maxBackend = 0;
      for (const id of state.backends.keys()) if (id > maxBackend) maxBackend = id;
      const backendCounts = counters(MapNames.backendStats, maxBackend).connects;
      const cache = this.#backendLabels;
      const backendLabels: Buffer[] = new Array(state.backends.size);
      const values = new Float64Array(state.backends.size);
      let j = 0;
      for (const [id, b] of state.backends) {
        let l = cache.get(b);
        if (!l) {
          l = Buffer.from(`backend="${labelValue(endpointKey(b))}"`);
          cache.set(b, l);
        }
        backendLabels[j] = l;
        values[j++] = backendCounts?.[id] ?? 0;
      }
      rows.push({ family: BACKEND_CONNECTS, labels: backendLabels, values });
    }

    const maps = [...views.values()].map((v) => {
      const info = v.info();
      return { ...info, entries: info.type.endsWith('array') ? info.maxEntries : entries.get(info.name) };
    });
    return { rows, maps, reasons: sockReasonCounts(source), xdpReasons: xdpReasonCounts(source) };
  }
}
