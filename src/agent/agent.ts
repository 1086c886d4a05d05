// The agent: sources -> desired table -> reconcile into the maps, coalescing bursts of changes.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KernelMaps } from '../datapath/kernel-maps.ts';
import { formatProblem, type ObjectProblem } from '../errors.ts';
import { DesiredCache, desired } from '../model/desired.ts';
import type { DesiredTable, NodeInfo } from '../model/types.ts';
import type { PlanProblem } from '../reconcile/plan.ts';
import { Reconciler } from '../reconcile/reconciler.ts';
import { Datapath, type DatapathOptions } from './datapath.ts';
import { LastGood } from './last-good.ts';

export interface AgentOptions extends DatapathOptions {
  node: NodeInfo;
  log: Logger;
  /** Least time between two reconciles: a burst of changes within it becomes one (kube-proxy's minSyncPeriod). */
  minSyncPeriodMs: number;
}

export interface AgentStatus {
  inSync: boolean;
  adopted: boolean;
  lastSync: Date | undefined;
  syncs: number;
  frontends: number;
  objectProblems: ObjectProblem[];
  programProblems: PlanProblem[];
  /** How UDP sockets of removed backends are destroyed: 'bpf_sock_destroy' (Linux 6.5+) or 'sock_diag'. */
  destroyMethod: 'bpf_sock_destroy' | 'sock_diag';
  /** errno of a connect()/sendmsg() to a service without backends; 0: the kernel has no bpf_set_retval, callers see EPERM. */
  refuseErrno: number;
}

/** Told about each reconcile: the metrics implement it. */
export interface SyncObserver {
  observeSync(seconds: number, problems: readonly { code: string }[]): void;
  observeProgramming(triggerTime: Date): void;
}

const TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

export class Agent {
  readonly datapath: Datapath;
  /** Set after construction (the metrics need the agent first). */
  observer: SyncObserver | undefined;
  readonly reconciler: Reconciler;
  readonly #options: AgentOptions;
  readonly #log: Logger;
  readonly #lastGood = new LastGood();
  /**
   * Per-object work reused between syncs: the sources hand over arrays in which unchanged objects are
   * the same instances (the informer caches replace an object when it changes, never edit it), so a
   * sync recomputes only the services whose object, slices or node facts changed.
   */
  readonly #desiredCache = new DesiredCache();
  #node: NodeInfo;
  #syncListeners: ((table: DesiredTable) => void)[] = [];
  #services: V1Service[] = [];
  #slices: V1EndpointSlice[] = [];
  #sourceProblems: ObjectProblem[] = [];
  #table: DesiredTable = { frontends: [], problems: [] };
  #timer: NodeJS.Timeout | undefined;
  #lastRun = 0;
  #dirty = false;
  #synced = false;
  #syncs = 0;
  #lastSync: Date | undefined;
  #programProblems: PlanProblem[] = [];
  #reported = new Set<string>();
  #idle: (() => void)[] = [];
  /** EndpointSlice namespace/name -> the last change-trigger time already programmed. */
  #triggerTimes = new Map<string, string>();

  constructor(options: AgentOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#node = options.node;
    this.datapath = Datapath.open(options);
    this.reconciler = new Reconciler(new KernelMaps(this.datapath.maps, options.capacity));
    if (this.datapath.adopted) {
      this.#log.info({ frontends: this.reconciler.state.services.size }, 'adopted the pinned datapath of an earlier agent');
    }
    if (this.datapath.bpfDestroyUnavailable) {
      this.#log.info(`UDP sockets of removed backends are destroyed through sock_diag: ${this.datapath.bpfDestroyUnavailable}`);
    }
    if (this.datapath.refuseErrno === 0)
      this.#log.warn(
        'no bpf_set_retval in this kernel (Linux < 5.18): a connect() to a service without backends fails with EPERM, not ECONNREFUSED',
      );
  }

  /**
   * The latest objects from a source (and, from the API server, this node's facts); the reconcile
   * that follows is coalesced with others.
   */
  update(objects: { services: V1Service[]; slices: V1EndpointSlice[]; problems?: ObjectProblem[]; node?: NodeInfo }): void {
    this.#services = objects.services;
    this.#slices = objects.slices;
    this.#sourceProblems = objects.problems ?? [];
    if (objects.node) this.#node = objects.node;
    this.#dirty = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer) return;
    const wait = Math.max(0, this.#lastRun + this.#options.minSyncPeriodMs - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.syncNow();
    }, wait);
  }

  /** Reconciles at once; returns after the maps hold the current desired table. */
  syncNow(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastRun = Date.now();
    this.#dirty = false;
    const started = process.hrtime.bigint();
    const cache = this.#desiredCache;
    const table = this.#lastGood.resolve(this.#services, (s) => desired(s, this.#slices, this.#node, { cache }));
    this.#table = table;
    const result = this.reconciler.reconcile(table.frontends);
    this.#programProblems = result.problems;
    this.#report([...this.#sourceProblems, ...table.problems], result.problems);
    if (result.removedBackends.length > 0) {
      const destroyed = this.datapath.destroyer.destroy(result.removedBackends);
      if (destroyed.destroyed > 0) this.#log.info(destroyed, 'destroyed UDP sockets of removed backends');
      for (const [ns, message] of Object.entries(destroyed.failures)) {
        this.#log.debug({ ns, message }, 'could not look for sockets of removed backends in a network namespace');
      }
    }
    this.#synced = true;
    this.#syncs++;
    this.#lastSync = new Date();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (result.writes > 0) this.#log.info({ writes: result.writes, frontends: table.frontends.length, ms }, 'reconciled');
    this.observer?.observeSync(ms / 1000, result.problems);
    this.#observeProgramming(this.#syncs > 1);
    for (const listener of this.#syncListeners) listener(table);
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /**
   * Network programming latency, as kube-proxy measures it: from the change-trigger time the
   * EndpointSlice controller stamps on a slice to now, when the change is in the maps. The first
   * sync only records the times: objects that existed before the agent started would count their age.
   */
  #observeProgramming(observe: boolean): void {
    const seen = new Map<string, string>();
    for (const s of this.#slices) {
      const time = s.metadata?.annotations?.[TRIGGER_TIME];
      if (!time) continue;
      const key = `${s.metadata?.namespace}/${s.metadata?.name}`;
      seen.set(key, time);
      if (observe && this.#triggerTimes.get(key) !== time) {
        const at = new Date(time);
        if (!Number.isNaN(at.getTime())) this.observer?.observeProgramming(at);
      }
    }
    this.#triggerTimes = seen;
  }

  /** Calls `listener` after every reconcile, with the table now in the maps. */
  onSync(listener: (table: DesiredTable) => void): void {
    this.#syncListeners.push(listener);
  }

  /** Resolves once no change is waiting to be programmed. */
  whenSynced(): Promise<void> {
    if (this.#synced && !this.#dirty && !this.#timer) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #report(objectProblems: ObjectProblem[], programProblems: PlanProblem[]): void {
    const now = new Set<string>();
    for (const p of objectProblems) now.add(formatProblem(p));
    for (const p of programProblems) now.add(`${p.code}: ${p.service.namespace}/${p.service.name} ${p.key}: ${p.message}`);
    for (const line of now) if (!this.#reported.has(line)) this.#log.error(line);
    this.#reported = now;
  }

  get table(): DesiredTable {
    return this.#table;
  }

  status(): AgentStatus {
    return {
      inSync: this.#synced && !this.#dirty,
      adopted: this.datapath.adopted,
      lastSync: this.#lastSync,
      syncs: this.#syncs,
      frontends: this.reconciler.state.services.size,
      objectProblems: [...this.#sourceProblems, ...this.#table.problems],
      programProblems: this.#programProblems,
      destroyMethod: this.datapath.destroyer.method,
      refuseErrno: this.datapath.refuseErrno,
    };
  }

  /** Stops reconciling and closes fds; the pinned datapath keeps balancing without the agent. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.datapath.close();
  }
}
