// Prometheus metrics in a registry of their own. Counters the datapath keeps (per-CPU map values) are
// read at scrape time in collect callbacks; sync and programming latencies are observed by the agent.
// Each socklb_ metric that has a kube-proxy counterpart keeps its name after the prefix.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ABI_VERSION, MapNames } from '../datapath/abi.ts';
import type { MapInfo } from '../debug/map-views.ts';
import { type DebugSource, sockReasonCounts, sumCounters } from '../debug/source.ts';
import { endpointKey } from '../model/types.ts';
import type { ProgrammedState } from '../reconcile/state.ts';
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

type FrontendLabels = { namespace: string; service: string; port_name: string; frontend: string };

interface Snapshot {
  frontends: { labels: FrontendLabels; connects: number; refused: number }[];
  /** Empty unless perBackend. */
  backends: { backend: string; connects: number }[];
  maps: (MapInfo & { entries: number | undefined })[];
  reasons: Record<string, bigint>;
}

/**
 * Entries of the maps the agent writes, from what it programmed: the kernel keeps no count, and
 * counting would walk every bucket of every map on each scrape. The maps the datapath fills itself
 * (reverse, affinity) get no such figure here; /v1/maps counts them when asked.
 */
function programmedEntries(state: ProgrammedState): Map<string, number> {
  const n = { v4: 0, v6: 0, slots: 0, b4: 0, b6: 0 };
  for (const s of state.services.values()) {
    if (s.frontend.family === 4) n.v4++;
    else n.v6++;
    n.slots += s.slots.size;
  }
  for (const orphans of state.orphanSlots.values()) n.slots += orphans.size;
  for (const b of state.backends.values()) {
    if (b.family === 4) n.b4++;
    else n.b6++;
  }
  return new Map([
    [MapNames.lb4Services, n.v4],
    [MapNames.lb6Services, n.v6],
    [MapNames.slots, n.slots],
    [MapNames.lb4Backends, n.b4],
    [MapNames.lb6Backends, n.b6],
  ]);
}

export class SocklbMetrics {
  readonly registry = new Registry();
  readonly #source: DebugSource;
  readonly #sync: Histogram;
  readonly #programming: Histogram;
  readonly #syncErrors: Counter<'reason'>;
  readonly #perBackend: boolean;
  #snapshot: Snapshot | undefined;

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
      name: 'socklb_rejected_objects',
      help: 'Problems found in Services and EndpointSlices (each names an object and field), by reason (error code).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const p of source.status().objectProblems) this.inc({ reason: p.code });
      },
    });

    const perFrontend = (name: string, help: string, count: (f: { connects: number; refused: number }) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['namespace', 'service', 'port_name', 'frontend'],
        registers,
        collect() {
          this.reset();
          for (const f of self.#snap().frontends) this.inc(f.labels, count(f));
        },
      });
    perFrontend(
      'socklb_service_connects_total',
      'Connects (TCP) and sends (UDP) balanced to a backend, per frontend, from the per-CPU counters.',
      (f) => f.connects,
    );
    perFrontend('socklb_service_refused_total', 'Connects and sends refused because the frontend had no backend.', (f) => f.refused);
    if (this.#perBackend) {
      new Counter({
        name: 'socklb_backend_connects_total',
        help: 'Connects and sends balanced to a backend, over every frontend that uses it (only with --metrics-per-backend).',
        labelNames: ['backend'],
        registers,
        collect() {
          this.reset();
          for (const b of self.#snap().backends) this.inc({ backend: b.backend }, b.connects);
        },
      });
    }
    new Counter({
      name: 'socklb_sock_hook_total',
      help: 'Calls of the socket hooks by outcome (sock_stats reasons: balanced, not_service, no_backend, ...).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(self.#snap().reasons)) this.inc({ reason }, Number(n));
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

  /**
   * Records the latency from an EndpointSlice change (its last-change-trigger-time annotation) to
   * the map write that made it visible. Call once per changed slice, after the write.
   */
  observeProgramming(triggerTime: Date, now: Date = new Date()): void {
    const seconds = (now.getTime() - triggerTime.getTime()) / 1000;
    if (Number.isFinite(seconds) && seconds >= 0) this.#programming.observe(seconds);
  }

  /** The Prometheus text exposition. */
  async metrics(): Promise<string> {
    try {
      return await this.registry.metrics();
    } finally {
      this.#snapshot = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

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
    const counters = (name: string, ids: Set<number>) => {
      const view = views.get(name);
      return view ? sumCounters(view, (id) => ids.has(id)) : new Map<number, Record<string, bigint>>();
    };

    const services = [...state.services.values()];
    const serviceCounts = counters(MapNames.serviceStats, new Set(services.map((s) => s.serviceId)));
    const names = new Map(source.table().frontends.map((d) => [endpointKey(d.frontend), d]));
    const frontends = services.map((s) => {
      const frontend = endpointKey(s.frontend);
      const desired = names.get(frontend);
      const c = serviceCounts.get(s.serviceId);
      return {
        labels: {
          namespace: desired?.service.namespace ?? '',
          service: desired?.service.name ?? '',
          port_name: desired?.portName ?? '',
          frontend,
        },
        connects: Number(c?.connects ?? 0n),
        refused: Number(c?.refused ?? 0n),
      };
    });

    const backends: Snapshot['backends'] = [];
    if (this.#perBackend) {
      const backendCounts = counters(MapNames.backendStats, new Set(state.backends.keys()));
      for (const [id, b] of state.backends)
        backends.push({ backend: endpointKey(b), connects: Number(backendCounts.get(id)?.connects ?? 0n) });
    }

    const entries = programmedEntries(state);
    const maps = [...views.values()].map((v) => {
      const info = v.info();
      return { ...info, entries: info.type.endsWith('array') ? info.maxEntries : entries.get(info.name) };
    });
    return { frontends, backends, maps, reasons: sockReasonCounts(source) };
  }
}
