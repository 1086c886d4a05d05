// The agent: sources -> desired table -> reconcile into the maps, coalescing bursts of changes.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { MapNames } from '../datapath/abi.ts';
import { KernelMaps } from '../datapath/kernel-maps.ts';
import { ErrorCodes, formatProblem, type ObjectProblem } from '../errors.ts';
import { DesiredState, type ObjectEvent, type TableChanges } from '../model/desired-state.ts';
import type { ParsedCidr } from '../model/ip.ts';
import { nodeAddressOf } from '../model/node-read.ts';
import { changesWithExternalScope, withExternalScope } from '../model/scope.ts';
import { runStepsSliced } from '../model/steps.ts';
import {
  type Backend,
  type DesiredFrontend,
  type DesiredTable,
  endpointKey,
  type HealthCheck,
  type NodeAddressBook,
  type NodeInfo,
} from '../model/types.ts';
import type { PlanProblem, SchedulerDefaults } from '../reconcile/plan.ts';
import { type ReconcileResult, Reconciler } from '../reconcile/reconciler.ts';
import { SourceRanges } from '../reconcile/source-ranges.ts';
import { Datapath, type DatapathOptions, type MigrationReport } from './datapath.ts';
import { nodePortAddresses } from './devices.ts';
import { DEFAULT_FLOW_RECOUNT_MS, recountFlows } from './flow-counts.ts';
import { nodeConfigValue, type XdpAttachment } from './xdp.ts';

export interface AgentOptions extends DatapathOptions {
  node: NodeInfo;
  log: Logger;
  /** Least time between two reconciles: a burst of changes within it becomes one (kube-proxy's minSyncPeriod). */
  minSyncPeriodMs: number;
  /** kube-proxy's --nodeport-addresses; empty or absent: every node address. */
  nodePortCidrs?: ParsedCidr[];
  /** The scheduler of Services that name none (--scheduler, --maglev-table-size); absent: random. */
  schedulerDefaults?: SchedulerDefaults;
  /** How often the XDP path's open flows per backend are recounted (flow-counts.ts); absent: 30 s. */
  flowRecountMs?: number;
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
  /** Whether open connections are counted (lc, wlc, sed, nq work); false: they pick at random, the log says why. */
  connsCounted: boolean;
  /** The hooks run this agent's programs: false until the first full sync is in the maps. */
  committed: boolean;
  /** What start-up did to the pinned maps of an earlier agent (created, copied, removed). */
  migration: MigrationReport;
  /** Steps of the last sync that failed, to be retried; empty when the last sync went through. */
  syncErrors: SyncError[];
  /** UDP backends removed from the maps whose sockets are still to be destroyed (a retry is due). */
  pendingDestroy: number;
  /** Where the XDP program runs (empty: XDP off, or not committed yet). */
  xdp: XdpAttachment[];
  /**
   * --nodeport-mode dsr: backends on other nodes that traffic from outside reaches by SNAT instead,
   * because their Node (or its address of their family) is not known. 0 in snat mode.
   */
  dsrFallbacks: number;
}

/** A step of a sync that failed; the next sync retries it. */
export interface SyncError {
  step: 'program' | 'commit' | 'destroy';
  code: string;
  message: string;
  at: Date;
}

/** Told about each reconcile: the metrics implement it. */
export interface SyncObserver {
  observeSync(seconds: number, problems: readonly { code: string }[]): void;
  observeProgramming(triggerTime: Date): void;
  observeSyncError(step: SyncError['step'], code: string): void;
}

/** A failed step is retried after this long at first, doubling up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

const TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

export class Agent {
  readonly datapath: Datapath;
  /** Set after construction (the metrics need the agent first). */
  observer: SyncObserver | undefined;
  readonly reconciler: Reconciler;
  readonly #options: AgentOptions;
  readonly #log: Logger;
  /**
   * The desired table kept per service: the sources' objects go in one at a time (or as a whole
   * list, of which only what changed is recomputed), and each sync programs what changed since the last.
   */
  readonly #desired: DesiredState;
  /** The loadBalancerSourceRanges tries, with the XDP datapath. */
  readonly #sourceRanges: SourceRanges | undefined;
  /** This node's facts as the model has them: NodePort addresses, zone, the other nodes' addresses. */
  #node: NodeInfo;
  /** This node's own addresses (before --nodeport-addresses): the SNAT and DSR address come from them. */
  #ownAddresses: readonly string[];
  /** lb_node_config_v1 as last written. */
  #nodeConfig: Buffer | undefined;
  /** --nodeport-mode dsr: each frontend's remote backends without a node address, by frontend key. */
  readonly #dsrFallbackOf = new Map<string, readonly string[]>();
  /** How many frontends name each such backend, by endpoint key: its size is the status's count. */
  readonly #dsrFallbackRefs = new Map<string, number>();
  /** External entries with source ranges whose frontend had no service id yet: their ranges are written next sync. */
  #rangesPending: string[] = [];
  #syncListeners: (() => void)[] = [];
  /** Slices put since the last sync, whose change-trigger times it reports; 'all' after a whole list. */
  #changedSlices: V1EndpointSlice[] | undefined = [];
  #allSlices: readonly V1EndpointSlice[] = [];
  #sourceProblems: ObjectProblem[] = [];
  /** A whole list handed over and not yet taken in, then the events that came after it. */
  #pendingList: { services: readonly V1Service[]; slices: readonly V1EndpointSlice[] } | undefined;
  #pendingEvents: ObjectEvent[] = [];
  /** The first sync programs the whole table over what an earlier agent left; later ones what changed. */
  #fullSync = true;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  #retryMs = 0;
  #syncErrors: SyncError[] = [];
  /** UDP backends removed from the maps whose sockets are not yet destroyed, by endpoint key. */
  #pendingDestroy = new Map<string, Backend>();
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
  #flowRecount: NodeJS.Timeout | undefined;

  /** Loads the datapath (see Datapath.open: the hooks change only after the first sync). */
  static async create(options: AgentOptions): Promise<Agent> {
    return new Agent(options, await Datapath.open(options));
  }

  private constructor(options: AgentOptions, datapath: Datapath) {
    this.#options = options;
    this.#log = options.log;
    this.#node = this.#withNodePortAddresses(options.node);
    this.#ownAddresses = options.node.addresses ?? [];
    this.#desired = new DesiredState(this.#node);
    this.datapath = datapath;
    const { lb4_src_ranges_v1: v4, lb6_src_ranges_v1: v6 } = datapath.xdpMaps;
    this.#sourceRanges = v4 && v6 ? new SourceRanges(v4, v6) : undefined;
    const defaults = options.schedulerDefaults ? { defaults: options.schedulerDefaults } : {};
    const maps = new KernelMaps(this.datapath.maps, options.capacity, this.datapath.frontendFilter, this.datapath.countersStartZero);
    this.reconciler = new Reconciler(maps, defaults);
    if (this.datapath.adopted) {
      this.#log.info({ frontends: this.reconciler.state.services.size }, 'adopted the pinned datapath of an earlier agent');
    }
    if (this.datapath.bpfDestroyUnavailable) {
      this.#log.info(`UDP sockets of removed backends are destroyed through sock_diag: ${this.datapath.bpfDestroyUnavailable}`);
    }
    if (this.datapath.connsUnavailable) this.#log.warn(this.datapath.connsUnavailable);
    this.#startFlowRecount();
    if (this.datapath.refuseErrno === 0)
      this.#log.warn(
        'no bpf_set_retval in this kernel (Linux < 5.18): a connect() to a service without backends fails with EPERM, not ECONNREFUSED',
      );
  }

  /**
   * The latest objects from a source, as whole lists (and, from the API server, this node's facts);
   * only the objects that are new instances are computed again. The reconcile that follows is
   * coalesced with others.
   */
  update(objects: {
    services: V1Service[];
    slices: V1EndpointSlice[];
    problems?: ObjectProblem[];
    node?: NodeInfo;
    /** Every Node's addresses (backends' nodes, for DSR); kept when absent. */
    peers?: NodeAddressBook;
  }): void {
    // Taken in by the sync, in steps: a list of 100,000 objects must not hold up health checks.
    this.#pendingList = objects;
    this.#pendingEvents = [];
    this.#allSlices = objects.slices;
    this.#changedSlices = undefined;
    this.#sourceProblems = objects.problems ?? [];
    this.#setNode(objects.node, objects.peers);
    this.#dirty = true;
    this.#schedule();
  }

  /**
   * Objects that changed, as events (an informer's adds, updates and deletes): the sync
   * that follows costs what changed, not what the cluster holds.
   */
  change(events: readonly ObjectEvent[]): void {
    for (const event of events) {
      this.#pendingEvents.push(event);
      if (event.kind !== 'EndpointSlice') continue;
      if (event.object) this.#changedSlices?.push(event.object);
      else this.#triggerTimes.delete(`${event.namespace}/${event.name}`);
    }
    this.#dirty = true;
    this.#schedule();
  }

  /** This node's facts changed (addresses, zone). */
  setNode(node: NodeInfo): void {
    this.#setNode(node, undefined);
    this.#dirty = true;
    this.#schedule();
  }

  /** A new Node of this node and/or a new book of every node's addresses; absent ones are kept. */
  #setNode(node: NodeInfo | undefined, peers: NodeAddressBook | undefined): void {
    if (node) {
      this.#ownAddresses = node.addresses ?? [];
      this.#node = { ...this.#withNodePortAddresses(node), peers: this.#node.peers };
    }
    if (peers) this.#node = { ...this.#node, peers };
    this.#desired.setNode(this.#node);
  }

  #schedule(delayMs = 0): void {
    if (this.#timer || this.#running || this.#closed) return;
    const wait = Math.max(delayMs, this.#lastRun + this.#options.minSyncPeriodMs - Date.now(), 0);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.sync();
    }, wait);
  }

  /**
   * Reconciles now (or, when a sync is running, once it ends); resolves when the maps hold the
   * table of the objects seen at the start. Never rejects: a failed step is logged with its code,
   * counted, shown in status() and retried after a back-off.
   */
  sync(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running) {
      this.#dirty = true;
      return this.#running;
    }
    this.#running = this.#syncOnce().finally(() => {
      this.#running = undefined;
      if (this.#syncErrors.length > 0) {
        this.#retryMs = Math.min(this.#retryMs === 0 ? RETRY_MIN_MS : this.#retryMs * 2, RETRY_MAX_MS);
        this.#dirty = true;
        this.#schedule(this.#retryMs);
      } else {
        this.#retryMs = 0;
        if (this.#dirty) this.#schedule();
      }
      if (!this.#dirty && !this.#timer) for (const resolve of this.#idle.splice(0)) resolve();
    });
    return this.#running;
  }

  async #syncOnce(): Promise<void> {
    this.#lastRun = Date.now();
    this.#dirty = false;
    const started = process.hrtime.bigint();
    const errors: SyncError[] = [];
    const fail = (step: SyncError['step'], err: unknown) => {
      const e = err as { code?: unknown; message?: unknown };
      const code = typeof e.code === 'string' ? e.code : ErrorCodes.BPF;
      const error: SyncError = { step, code, message: String(e.message ?? err), at: new Date() };
      errors.push(error);
      this.#log.error({ step, code }, `sync step ${step} failed (retried): ${error.message}`);
      this.observer?.observeSyncError(step, code);
    };
    let writes = 0;
    try {
      const list = this.#pendingList;
      this.#pendingList = undefined;
      if (list) await runStepsSliced(this.#desired.replaceAllSteps(list.services, list.slices));
      for (const event of this.#pendingEvents.splice(0)) this.#desired.apply(event);
      const changes = await runStepsSliced(this.#desired.flush());
      this.#writeNodeConfig();
      // Only DSR has fallbacks to count: no key per frontend built for them otherwise.
      if (this.datapath.options.xdp?.nodePortMode === 'dsr') {
        this.#countDsrFallbacks(this.#fullSync ? this.#desired.frontends().map((f) => [endpointKey(f.frontend), f]) : changes);
      }
      const xdp = this.datapath.options.xdp !== undefined;
      let result: ReconcileResult;
      if (this.#fullSync) {
        const frontends = this.#desired.frontends();
        const entries = xdp ? withExternalScope(frontends) : frontends;
        result = await runStepsSliced(this.reconciler.reconcileSteps(entries));
        if (this.#sourceRanges) {
          const state = this.reconciler.state;
          writes += this.#sourceRanges.sync(entries, (d) => state.services.get(endpointKey(d.frontend))?.serviceId);
        }
        this.#fullSync = false;
      } else {
        const entries = xdp ? changesWithExternalScope(changes) : changes;
        result = await runStepsSliced(this.reconciler.reconcileChangesSteps(entries));
        if (this.#sourceRanges) writes += this.#syncRanges(entries);
      }
      writes += result.writes;
      this.#programProblems = result.problems;
      this.#report([...this.#sourceProblems, ...this.#desired.problems()], result.problems);
      for (const b of result.removedBackends) if (b.protocol === 'UDP') this.#pendingDestroy.set(endpointKey(b), b);
      this.observer?.observeSync(Number(process.hrtime.bigint() - started) / 1e9, result.problems);
      for (const listener of this.#syncListeners) listener();
    } catch (err) {
      fail('program', err);
    }
    if (errors.length === 0 && !this.datapath.committed) {
      try {
        this.datapath.commit();
        this.#log.info({ migration: this.datapath.migration }, "hooks run this agent's programs");
      } catch (err) {
        fail('commit', err);
      }
    }
    if (this.#pendingDestroy.size > 0) await this.#destroyRemoved(fail);
    this.#syncErrors = errors;
    this.#synced = true;
    this.#syncs++;
    this.#lastSync = new Date();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (writes > 0) this.#log.info({ writes, frontends: this.#desired.size, ms }, 'reconciled');
    this.#observeProgramming(this.#syncs > 1);
  }

  /** Ends the UDP sockets of removed backends; what fails stays pending for the next sync. */
  async #destroyRemoved(fail: (step: SyncError['step'], err: unknown) => void): Promise<void> {
    const backends: Backend[] = [...this.#pendingDestroy.values()];
    try {
      const destroyed = await this.datapath.destroyer.destroy(backends);
      for (const b of backends) this.#pendingDestroy.delete(endpointKey(b));
      this.#log.info({ backends: backends.length, ...destroyed }, 'destroyed UDP sockets of removed backends');
      for (const [ns, message] of Object.entries(destroyed.failures)) {
        this.#log.debug({ ns, message }, 'could not look for sockets of removed backends in a network namespace');
      }
    } catch (err) {
      fail('destroy', err);
    }
  }

  /**
   * Network programming latency, as kube-proxy measures it: from the change-trigger time the
   * EndpointSlice controller stamps on a slice to now, when the change is in the maps. The first
   * sync only records the times: objects that existed before the agent started would count their age.
   */
  #observeProgramming(observe: boolean): void {
    const slices = this.#changedSlices ?? this.#allSlices;
    if (this.#changedSlices === undefined) {
      // A whole list: slices not in it are gone.
      const listed = new Set(slices.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`));
      for (const key of this.#triggerTimes.keys()) if (!listed.has(key)) this.#triggerTimes.delete(key);
    }
    this.#changedSlices = [];
    for (const s of slices) {
      const time = s.metadata?.annotations?.[TRIGGER_TIME];
      if (!time) continue;
      const key = `${s.metadata?.namespace}/${s.metadata?.name}`;
      if (observe && this.#triggerTimes.get(key) !== time) {
        const at = new Date(time);
        if (!Number.isNaN(at.getTime())) this.observer?.observeProgramming(at);
      }
      this.#triggerTimes.set(key, time);
    }
  }

  /** Source ranges of the changed entries, and of those whose frontend had no id last time. */
  #syncRanges(entries: TableChanges): number {
    const state = this.reconciler.state;
    const named = new Map(entries);
    for (const key of this.#rangesPending) if (!named.has(key)) named.set(key, this.reconciler.wanted(key));
    const synced = this.#sourceRanges!.syncChanges(named, (d) => state.services.get(endpointKey(d.frontend))?.serviceId);
    this.#rangesPending = synced.unprogrammed;
    return synced.writes;
  }

  /**
   * Rewrites lb_node_config_v1 when what it should hold changed: the SNAT address of each family is
   * the node's own (nodeAddressOf its Node's addresses, the rule every node uses for the others'
   * backends, so DSR packets arrive at the address it decapsulates on) when one of the XDP devices
   * holds it, else the devices' address the datapath was loaded with (replies to an address on
   * another device would miss the XDP program).
   */
  #writeNodeConfig(): void {
    const xdp = this.datapath.options.xdp;
    const map = this.datapath.xdpMaps[MapNames.nodeConfig];
    if (!xdp || !map) return;
    const held = new Set(xdp.devices.flatMap((d) => d.addresses));
    const elsewhere: string[] = [];
    const own = (family: 4 | 6): string | undefined => {
      const address = nodeAddressOf(this.#ownAddresses, family);
      if (address === undefined || held.has(address)) return address;
      elsewhere.push(address);
      return undefined;
    };
    const snatAddresses = { v4: own(4) ?? xdp.snatAddresses.v4, v6: own(6) ?? xdp.snatAddresses.v6 };
    const value = nodeConfigValue({ ...xdp, snatAddresses });
    if (this.#nodeConfig?.equals(value)) return;
    if (elsewhere.length > 0 && xdp.nodePortMode === 'dsr') {
      const devices = xdp.devices.map((d) => d.name);
      this.#log.warn({ addresses: elsewhere, devices }, 'DSR: Node addresses other nodes send to are on none of the XDP devices');
    }
    map.update(Buffer.alloc(4), value);
    this.#nodeConfig = value;
    this.#log.info({ snatAddresses, nodePortMode: xdp.nodePortMode ?? 'snat' }, 'node config written');
  }

  /**
   * In DSR mode, a backend on another node without a known node address is reached by SNAT (the
   * datapath's rule for a zero node_address): it still serves, but sees this node as the client.
   * Counted from the frontends that changed (all of them on the first sync), and logged when the
   * number changes.
   */
  #countDsrFallbacks(changed: Iterable<[string, DesiredFrontend | undefined]>): void {
    const before = this.#dsrFallbackRefs.size;
    for (const [key, f] of changed) {
      for (const b of this.#dsrFallbackOf.get(key) ?? []) {
        const n = this.#dsrFallbackRefs.get(b)! - 1;
        if (n > 0) this.#dsrFallbackRefs.set(b, n);
        else this.#dsrFallbackRefs.delete(b);
      }
      const without = [...new Set((f?.externalBackends ?? []).filter((b) => !b.local && b.node === undefined).map(endpointKey))];
      if (without.length > 0) this.#dsrFallbackOf.set(key, without);
      else this.#dsrFallbackOf.delete(key);
      for (const b of without) this.#dsrFallbackRefs.set(b, (this.#dsrFallbackRefs.get(b) ?? 0) + 1);
    }
    const count = this.#dsrFallbackRefs.size;
    if (count !== before && count > 0) {
      this.#log.warn(
        { backends: count, examples: [...this.#dsrFallbackRefs.keys()].slice(0, 5) },
        'DSR: backends on nodes without a known address (Node object or its address of their family) get SNAT instead',
      );
    }
  }

  /** kube-proxy's --nodeport-addresses: NodePorts listen only on the node addresses inside them. */
  #withNodePortAddresses(node: NodeInfo): NodeInfo {
    const cidrs = this.#options.nodePortCidrs ?? [];
    return cidrs.length === 0 || !node.addresses ? node : { ...node, addresses: nodePortAddresses(node.addresses, cidrs) };
  }

  /** Calls `listener` after every reconcile. */
  onSync(listener: () => void): void {
    this.#syncListeners.push(listener);
  }

  /** Resolves once no change is waiting to be programmed. */
  whenSynced(): Promise<void> {
    if (this.#synced && !this.#dirty && !this.#timer && !this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #report(objectProblems: ObjectProblem[], programProblems: PlanProblem[]): void {
    const now = new Set<string>();
    for (const p of objectProblems) now.add(formatProblem(p));
    for (const p of programProblems) now.add(`${p.code}: ${p.service.namespace}/${p.service.name} ${p.key}: ${p.message}`);
    for (const line of now) if (!this.#reported.has(line)) this.#log.error(line);
    this.#reported = now;
  }

  /** The desired table, sorted (built when asked for, so not on the path of a change). */
  get table(): DesiredTable {
    return this.#desired.table();
  }

  /** The health-check listeners the table wants, by port. */
  healthChecks(): HealthCheck[] {
    return this.#desired.healthChecks();
  }

  status(): AgentStatus {
    return {
      inSync: this.#synced && !this.#dirty,
      adopted: this.datapath.adopted,
      lastSync: this.#lastSync,
      syncs: this.#syncs,
      frontends: this.reconciler.state.services.size,
      objectProblems: [...this.#sourceProblems, ...this.#desired.problems()],
      programProblems: this.#programProblems,
      destroyMethod: this.datapath.destroyer.method,
      refuseErrno: this.datapath.refuseErrno,
      connsCounted: this.datapath.connsUnavailable === undefined,
      committed: this.datapath.committed,
      migration: this.datapath.migration,
      syncErrors: [...this.#syncErrors],
      pendingDestroy: this.#pendingDestroy.size,
      xdp: [...this.datapath.xdpAttachments],
      dsrFallbacks: this.#dsrFallbackRefs.size,
    };
  }

  /**
   * Recounts the XDP path's open flows per backend on a period: the kernel cannot see the open
   * flows the LRU evicts (flow-counts.ts). A failed pass is logged; the next one tries again.
   */
  #startFlowRecount(): void {
    const { lb4_ct_v1: ct4, lb6_ct_v1: ct6, lb_be_flows_v1: flows } = this.datapath.xdpMaps;
    if (!ct4 || !ct6 || !flows) return;
    this.#flowRecount = setInterval(() => {
      try {
        const { flows: open, corrected } = recountFlows({ ct4, ct6, flows });
        if (corrected) this.#log.debug({ open, corrected }, 'recounted the open XDP flows per backend');
      } catch (err) {
        this.#log.warn({ err }, 'recounting the open XDP flows per backend failed');
      }
    }, this.#options.flowRecountMs ?? DEFAULT_FLOW_RECOUNT_MS);
    this.#flowRecount.unref();
  }

  /** Stops reconciling and closes fds; the pinned datapath keeps balancing without the agent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#flowRecount);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    this.datapath.close();
  }
}
