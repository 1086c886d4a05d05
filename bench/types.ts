// The shape of bench/results/*.json.

import type { HookCostPoint } from './hook-cost.ts';
import type { XdpPacketResult } from './xdp-packet.ts';

export type SystemName = 'direct' | 'socklb' | 'nftables' | 'iptables-nft' | 'iptables-legacy';

/** One run of bench/client.c, as it prints it. */
export interface ClientRun {
  target: string;
  count: number;
  ok: number;
  failed: number;
  elapsed_ns: number;
  mean_ns: number;
  min_ns: number;
  p50_ns: number;
  p90_ns: number;
  p99_ns: number;
  max_ns: number;
  connects_per_s: number;
  stopped: string | null;
  errors: Record<string, number>;
  replies: Record<string, number>;
}

export interface ConnectPoint {
  n: number;
  system: SystemName;
  /** Every round, raw. */
  runs: ClientRun[];
  /** Medians over the rounds. */
  meanNs: number;
  p99Ns: number;
  connectsPerS: number;
  failed: number;
  /** meanNs / the direct meanNs at the same N, same run. */
  ratio: number;
}

export interface ProgrammingPoint {
  n: number;
  system: SystemName;
  status: 'ok' | 'timeout';
  /** Program N+1 services from nothing. */
  programMs: number;
  /** Apply one endpoint change with N+1 services present. */
  changeMs: number | null;
  details: Record<string, unknown>;
}

export interface MemoryPoint {
  n: number;
  system: SystemName;
  /** socklb: memlock of its maps (bpftool's figure). Null where not measured. */
  kernelBytes: number | null;
  /** socklb: the programming process's RSS; rulesets: peak RSS of iptables-restore / nft. */
  processRssBytes: number | null;
  /** Bytes of `iptables-save` / `nft list ruleset`. */
  textBytes: number | null;
  details: Record<string, unknown>;
}

/** socklb's GET /metrics with N+1 services programmed (the other systems have no such endpoint). */
export interface ScrapePoint {
  n: number;
  /** Frontends programmed, each one series per per-frontend family. */
  frontends: number;
  /** Median wall ms of `scrapes` scrapes over loopback HTTP from another process (request to last byte), after one untimed. */
  ms: number;
  /** The serving process's CPU ms (user + system) per scrape, the untimed one included: a busy machine inflates it less. */
  cpuMs: number;
  bytes: number;
  /** The same with --metrics-per-backend. */
  perBackendMs: number;
  perBackendCpuMs: number;
  perBackendBytes: number;
  scrapes: number;
}

export interface BalanceResult {
  system: SystemName;
  backends: number;
  connections: number;
  ok: number;
  failed: number;
  counts: Record<string, number>;
  maxMinRatio: number;
}

export interface BenchResults {
  schema: 1;
  mode: 'quick' | 'full';
  command: string;
  startedAt: string;
  finishedAt: string;
  host: Record<string, string | number>;
  params: Record<string, unknown>;
  connect: ConnectPoint[];
  programming: ProgrammingPoint[];
  memory: MemoryPoint[];
  /** Absent in results from before it was measured. */
  scrape?: ScrapePoint[];
  /** The connect hook's own ns per run (bench/hook-cost.ts); absent in results from before it was measured. */
  hook?: HookCostPoint[];
  balance: BalanceResult[];
  /** XDP cost per packet (bench/xdp-packet.ts); absent in results from before it was measured. */
  xdp?: XdpPacketResult;
  /** What the run created and removed: lab prefixes (namespaces, cgroups, /sys/fs/bpf/<prefix>) and its work dir. */
  made: { labs: string[]; workDir: string };
}
