// Prometheus metrics in a registry of their own. Counters the datapath keeps (per-CPU map values) are
// read at scrape time in collect callbacks; sync and programming latencies are observed by the agent.
// Each socklb_ metric that has a kube-proxy counterpart keeps its name after the prefix.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ABI_VERSION } from '../datapath/abi.ts';
import type { MapSummary } from '../debug/map-views.ts';
import { type ServiceView, serviceViews } from '../debug/service-view.ts';
import { type DebugSource, sockReasonCounts } from '../debug/source.ts';
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

interface Snapshot {
  services: ServiceView[];
  maps: MapSummary[];
  reasons: Record<string, bigint>;
}

export class SocklbMetrics {
  readonly registry = new Registry();
  readonly #source: DebugSource;
  readonly #sync: Histogram;
  readonly #programming: Histogram;
  readonly #syncErrors: Counter<'reason'>;
  #snapshot: Snapshot | undefined;

  constructor(source: DebugSource) {
    this.#source = source;
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
          for (const s of self.#snap().services) {
            for (const f of s.frontends) {
              this.inc({ namespace: s.namespace, service: s.name, port_name: f.portName, frontend: f.frontend }, count(f));
            }
          }
        },
      });
    perFrontend(
      'socklb_service_connects_total',
      'Connects (TCP) and sends (UDP) balanced to a backend, per frontend, from the per-CPU counters.',
      (f) => f.connects,
    );
    perFrontend('socklb_service_refused_total', 'Connects and sends refused because the frontend had no backend.', (f) => f.refused);
    new Counter({
      name: 'socklb_backend_connects_total',
      help: 'Connects and sends balanced to a backend, over every frontend that uses it.',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        const seen = new Map<string, number>();
        for (const s of self.#snap().services) {
          for (const f of s.frontends) for (const b of f.backends) if (b.backend) seen.set(b.backend, b.connects);
        }
        for (const [backend, connects] of seen) this.inc({ backend }, connects);
      },
    });
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

    const mapGauge = (name: string, help: string, value: (m: MapSummary) => number | undefined) =>
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
    mapGauge('socklb_map_entries', 'Entries a BPF map holds (an array map always holds max entries).', (m) => m.entries);
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

  /** One read of the maps per scrape, shared by every collect callback of that scrape. */
  #snap(): Snapshot {
    this.#snapshot ??= {
      services: serviceViews(this.#source.readback(), this.#source.table()),
      maps: this.#source.maps().map((m) => m.summary()),
      reasons: sockReasonCounts(this.#source),
    };
    return this.#snapshot;
  }
}
