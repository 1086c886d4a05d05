// The Kubernetes source: v1 Services, discovery.k8s.io/v1 EndpointSlices (all namespaces) and this
// node's v1 Node (or, for direct server return, every Node, kept as names and addresses only),
// listed then watched through client-node informers. It emits whole snapshots, and
// only once all three have listed; while the API server is away the last objects stay in force (a
// disconnect never empties a snapshot), and the informers reconnect with a capped, jittered backoff.
// What client-node does by itself on 410 and disconnects, and what is added, is in k8s-informer.ts.

import * as fs from 'node:fs';
import {
  HttpMethod,
  KubeConfig,
  type KubernetesObject,
  RequestContext,
  type V1EndpointSlice,
  type V1Node,
  type V1Service,
} from '@kubernetes/client-node';
import { IsomorphicFetchHttpLibrary } from '@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js';
import { ErrorCodes, type ObjectProblem, SocklbError } from '../errors.ts';
import { readNode, ZONE_LABEL } from '../model/node-read.ts';
import { isRecord } from '../model/problem.ts';
import type { NodeAddressBook, NodeInfo } from '../model/types.ts';
import { type Backoff, DEFAULT_BACKOFF, type InformerStatus, type Page, type PageRequest, ResilientInformer } from './k8s-informer.ts';

/** The annotation the EndpointSlice controller sets to when the change behind a slice update happened. */
export const TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';
/** The taint the cluster autoscaler sets on a node it is about to delete (kube-proxy's ToBeDeletedTaint). */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';
export { ZONE_LABEL };

/** This node, as the model and the health server need it. */
export interface KubeNodeInfo extends NodeInfo {
  /** The `topology.kubernetes.io/zone` label; undefined when unset or the Node is not (yet) seen. */
  zone?: string;
  /** status.addresses of type InternalIP, then ExternalIP, deduplicated, in the Node's order. */
  addresses: string[];
  /** metadata.deletionTimestamp is set. */
  deleting: boolean;
  /** The cluster autoscaler's ToBeDeletedByClusterAutoscaler taint is set (kube-proxy: not eligible). */
  toBeDeleted: boolean;
}

export interface KubernetesSnapshot {
  services: V1Service[];
  slices: V1EndpointSlice[];
  node: KubeNodeInfo;
  /** Every Node's addresses (options.allNodes; else empty); the same Map while none changes. */
  peers: NodeAddressBook;
  /** Nodes' fields that could not be read (an address that is not an IP), naming node and field. */
  problems: ObjectProblem[];
  /**
   * The `endpoints.kubernetes.io/last-change-trigger-time` of the EndpointSlice changes folded into
   * this snapshot (the earliest per slice, as kube-proxy counts), for a network-programming-latency
   * metric: observe `now - t` for each once the snapshot is in the maps.
   */
  changeTriggerTimes: Date[];
}

export interface KubernetesSourceOptions {
  /** The node the agent runs on (`--node-name`, default NODE_NAME). */
  nodeName: string;
  /** A kubeconfig file (`--kubeconfig PATH`); without it the in-cluster config is used. */
  kubeconfigPath?: string;
  /** A ready KubeConfig, instead of kubeconfigPath / in-cluster. */
  kubeConfig?: KubeConfig;
  /**
   * Watch every Node, not only this one: direct server return needs the address of each backend's
   * node. Each is kept as its name, addresses, zone and deletion marks (compactNode).
   */
  allNodes?: boolean;
  /** A new snapshot: the first once all three informers have listed, then after every change. */
  onChange(snapshot: KubernetesSnapshot): void;
  /** All three informers have listed once (called once, before the first onChange). */
  onSynced?(): void;
  /** A list or watch failed (it is retried) or onChange threw. */
  onError?(error: Error): void;
  /** Reconnect backoff (default 500 ms doubling to 30 s, jittered). */
  backoff?: Partial<Backoff>;
  /** Items per list page (default 500, as client-go's pager). */
  pageSize?: number;
  /** Time allowed for one whole list (default 60 s). */
  listTimeoutMs?: number;
}

export interface KubernetesSourceStatus {
  synced: boolean;
  informers: Record<'services' | 'endpointslices' | 'node', InformerStatus>;
}

/** Loads `path`, or the in-cluster config (service account token and CA, KUBERNETES_SERVICE_HOST/PORT). */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) {
    if (!fs.existsSync(path)) throw new SocklbError(ErrorCodes.BAD_OPTION, `--kubeconfig ${path} does not exist`);
    try {
      kc.loadFromFile(path);
    } catch (err) {
      throw new SocklbError(ErrorCodes.BAD_OPTION, `--kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new SocklbError(
        ErrorCodes.BAD_OPTION,
        'not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): give --kubeconfig PATH or --manifests FILE',
      );
    }
    kc.loadFromCluster();
  }
  if (!kc.getCurrentCluster()) {
    throw new SocklbError(ErrorCodes.BAD_OPTION, `kubeconfig ${path ?? '(in-cluster)'} has no current cluster`);
  }
  return kc;
}

/** This node's facts from its Node object (or just the name when the Node is not known). */
export function nodeInfo(name: string, node: V1Node | undefined): KubeNodeInfo {
  const info: KubeNodeInfo = { name, addresses: [], deleting: false, toBeDeleted: false };
  if (!node) return info;
  const read = readNode(node);
  if (read.zone !== undefined) info.zone = read.zone;
  info.addresses = read.addresses;
  info.deleting = Boolean(node.metadata?.deletionTimestamp);
  info.toBeDeleted = Array.isArray(node.spec?.taints) && node.spec.taints.some((t) => t?.key === TO_BE_DELETED_TAINT);
  return info;
}

/**
 * What the cache keeps of a watched Node: the fields nodeInfo and readNode read, nothing of its
 * status conditions, images or capacity (most of a Node's bytes, and what changes every heartbeat).
 */
export function compactNode(node: V1Node): V1Node {
  const meta = node.metadata ?? {};
  const zone = meta.labels?.[ZONE_LABEL];
  const taints = Array.isArray(node.spec?.taints) ? node.spec.taints.filter((t) => t?.key === TO_BE_DELETED_TAINT) : [];
  // Every entry, not only the IPs: a problem names an address by its index in the Node.
  const addresses = node.status?.addresses;
  return {
    apiVersion: node.apiVersion ?? 'v1',
    kind: node.kind ?? 'Node',
    metadata: {
      ...(meta.name !== undefined ? { name: meta.name } : {}),
      ...(meta.uid !== undefined ? { uid: meta.uid } : {}),
      ...(meta.resourceVersion !== undefined ? { resourceVersion: meta.resourceVersion } : {}),
      ...(meta.deletionTimestamp !== undefined ? { deletionTimestamp: meta.deletionTimestamp } : {}),
      ...(zone !== undefined ? { labels: { [ZONE_LABEL]: zone } } : {}),
    },
    ...(taints.length > 0 ? { spec: { taints } } : {}),
    ...(addresses !== undefined ? { status: { addresses } } : {}),
  };
}

function sameNode(a: KubeNodeInfo, b: KubeNodeInfo): boolean {
  return (
    a.name === b.name &&
    a.zone === b.zone &&
    a.deleting === b.deleting &&
    a.toBeDeleted === b.toBeDeleted &&
    a.addresses.length === b.addresses.length &&
    a.addresses.every((x, i) => x === b.addresses[i])
  );
}

function objectKey(o: KubernetesObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function triggerTime(slice: V1EndpointSlice): Date | undefined {
  const text = slice.metadata?.annotations?.[TRIGGER_TIME_ANNOTATION];
  if (typeof text !== 'string') return undefined;
  const t = new Date(text);
  return Number.isNaN(t.getTime()) ? undefined : t;
}

const HTTP = new IsomorphicFetchHttpLibrary();

interface ListTarget {
  path: string;
  kind: string;
  apiVersion: string;
  fieldSelector?: string;
}

/**
 * One list page, items exactly as the API server sent them (plain JSON, as watch events carry them).
 * Not the generated clients: they decode a list into model classes, which throws on one field of the
 * wrong type (`ports: 42`, an unreadable creationTimestamp when encoding back) and so fails every list,
 * leaving the source never synced; and they silently reshape others (`ports: "abc"` becomes three empty
 * ports), so desired() would blame the wrong field. Found by the fuzz test (test/support/fuzz.ts).
 */
async function listPage<T>(kc: KubeConfig, target: ListTarget, r: PageRequest): Promise<Page<T>> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server + target.path);
  if (r.limit !== undefined) url.searchParams.set('limit', String(r.limit));
  if (r.continue !== undefined) url.searchParams.set('continue', r.continue);
  if (target.fieldSelector !== undefined) url.searchParams.set('fieldSelector', target.fieldSelector);
  const ctx = new RequestContext(url.toString(), HttpMethod.GET);
  ctx.setHeaderParam('Accept', 'application/json');
  await kc.applySecurityAuthentication(ctx);
  const res = await HTTP.send(ctx).toPromise();
  const text = await res.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const record = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
  if (res.httpStatusCode !== 200) {
    const message = record(body).message;
    const why = typeof message === 'string' ? message : text.slice(0, 200);
    // statusCode: the informer tells an expired continue token (410) from other failures by it.
    throw Object.assign(new Error(`list ${target.path}: ${why}`), { statusCode: res.httpStatusCode });
  }
  if (body === undefined) throw new Error(`list ${target.path}: the answer is not JSON`);
  const meta = record(record(body).metadata);
  const items = Array.isArray(record(body).items) ? (record(body).items as unknown[]) : [];
  return {
    // A real server never lists a non-object; skip one rather than hand it to the informer cache.
    items: items.flatMap((item) => {
      if (!isRecord(item)) return [];
      // A JSON list leaves kind and apiVersion out of its items; watch events carry them.
      item.kind ??= target.kind;
      item.apiVersion ??= target.apiVersion;
      return [item as T];
    }),
    resourceVersion: typeof meta.resourceVersion === 'string' ? meta.resourceVersion : '',
    continue: typeof meta.continue === 'string' && meta.continue !== '' ? meta.continue : undefined,
  };
}

function checkNumber(value: number | undefined, fallback: number, name: string, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new RangeError(`KubernetesSource: options.${name} must be a number >= ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * Watches the API server. `start()` resolves once all three informers have listed (or on stop());
 * failures never reject it: they go to onError and are retried with backoff.
 */
export class KubernetesSource {
  readonly #nodeName: string;
  readonly #onChange: (snapshot: KubernetesSnapshot) => void;
  readonly #onSynced: () => void;
  readonly #onError: (error: Error) => void;
  readonly #services: ResilientInformer<V1Service>;
  readonly #slices: ResilientInformer<V1EndpointSlice>;
  readonly #nodes: ResilientInformer<V1Node>;
  readonly #listed = new Set<string>();
  #synced = false;
  #started = false;
  #stopped = false;
  #dirty = false;
  #emitting: NodeJS.Immediate | undefined;
  #node: KubeNodeInfo;
  readonly #allNodes: boolean;
  /** Every Node's addresses (with allNodes); replaced, never edited, when one changes. */
  #peers: Map<string, readonly string[]> = new Map();
  /** Node name -> the problems of its last version. */
  #nodeProblems = new Map<string, ObjectProblem[]>();
  /** The earliest trigger time per slice changed since the last snapshot. */
  #pendingTriggers = new Map<string, Date>();
  /** The latest trigger time seen per slice. */
  #lastTriggers = new Map<string, Date>();
  #whenSynced: Promise<void>;
  #resolveSynced!: () => void;

  constructor(options: KubernetesSourceOptions) {
    if (typeof options?.onChange !== 'function') throw new TypeError('KubernetesSource: options.onChange must be a function');
    if (typeof options.nodeName !== 'string' || options.nodeName === '') {
      throw new TypeError('KubernetesSource: options.nodeName must be a non-empty string (--node-name or NODE_NAME)');
    }
    for (const f of ['onSynced', 'onError'] as const) {
      if (options[f] !== undefined && typeof options[f] !== 'function') {
        throw new TypeError(`KubernetesSource: options.${f} must be a function`);
      }
    }
    const backoff: Backoff = {
      initialMs: checkNumber(options.backoff?.initialMs, DEFAULT_BACKOFF.initialMs, 'backoff.initialMs', 1),
      maxMs: checkNumber(options.backoff?.maxMs, DEFAULT_BACKOFF.maxMs, 'backoff.maxMs', 1),
    };
    if (backoff.maxMs < backoff.initialMs) throw new RangeError('KubernetesSource: options.backoff.maxMs must be >= initialMs');
    const pageSize = checkNumber(options.pageSize, 500, 'pageSize', 1);
    const listTimeoutMs = checkNumber(options.listTimeoutMs, 60_000, 'listTimeoutMs', 1);

    this.#nodeName = options.nodeName;
    this.#allNodes = options.allNodes === true;
    this.#onChange = options.onChange;
    this.#onSynced = options.onSynced ?? (() => {});
    this.#onError = options.onError ?? (() => {});
    this.#node = nodeInfo(this.#nodeName, undefined);
    this.#whenSynced = new Promise((resolve) => (this.#resolveSynced = resolve));

    const kc = options.kubeConfig ?? loadKubeConfig(options.kubeconfigPath);
    const common = { kubeConfig: kc, pageSize, listTimeoutMs, backoff, onError: (e: Error) => this.#onError(e) };
    const nodeSelector = this.#allNodes ? undefined : `metadata.name=${this.#nodeName}`;

    this.#services = new ResilientInformer<V1Service>({
      ...common,
      name: 'services',
      path: '/api/v1/services',
      listPage: (r: PageRequest) => listPage(kc, { path: '/api/v1/services', kind: 'Service', apiVersion: 'v1' }, r),
      onChange: () => this.#changed(),
      onListed: () => this.#listedOnce('services'),
    });
    this.#slices = new ResilientInformer<V1EndpointSlice>({
      ...common,
      name: 'endpointslices',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      listPage: (r: PageRequest) =>
        listPage(kc, { path: '/apis/discovery.k8s.io/v1/endpointslices', kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' }, r),
      onChange: (verb, slice) => {
        if (verb !== 'delete') this.#recordTrigger(slice);
        this.#changed();
      },
      onListed: () => this.#listedOnce('endpointslices'),
    });
    const nodeTarget: ListTarget = {
      path: '/api/v1/nodes',
      kind: 'Node',
      apiVersion: 'v1',
      ...(nodeSelector ? { fieldSelector: nodeSelector } : {}),
    };
    this.#nodes = new ResilientInformer<V1Node>({
      ...common,
      name: this.#allNodes ? 'nodes' : `node ${this.#nodeName}`,
      path: '/api/v1/nodes',
      ...(nodeSelector ? { fieldSelector: nodeSelector } : {}),
      compact: compactNode,
      listPage: (r: PageRequest) => listPage(kc, nodeTarget, r),
      onChange: (verb, node) => {
        this.#nodeChanged(this.#track(verb, node));
      },
      onListed: () => this.#listedOnce('node'),
    });
  }

  /** Starts the informers; resolves once all three have listed (or when stop() is called first). */
  async start(): Promise<void> {
    if (this.#started) throw new Error('KubernetesSource: already started');
    this.#started = true;
    this.#services.start();
    this.#slices.start();
    this.#nodes.start();
    await this.#whenSynced;
  }

  /** Stops watching; no onChange is called afterwards. The last objects stay readable via snapshot(). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearImmediate(this.#emitting);
    this.#emitting = undefined;
    this.#services.stop();
    this.#slices.stop();
    this.#nodes.stop();
    this.#resolveSynced();
  }

  /** Whether all three informers have listed at least once. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The current objects (what the next onChange would carry, without pending trigger times). */
  snapshot(): KubernetesSnapshot {
    return {
      services: this.#services.list(),
      slices: this.#slices.list(),
      node: { ...this.#node, addresses: [...this.#node.addresses] },
      peers: this.#peers,
      problems: [...this.#nodeProblems.values()].flat(),
      changeTriggerTimes: [],
    };
  }

  /** The latest `last-change-trigger-time` recorded per EndpointSlice (`namespace/name`). */
  lastChangeTriggerTimes(): Map<string, Date> {
    return new Map(this.#lastTriggers);
  }

  status(): KubernetesSourceStatus {
    return {
      synced: this.#synced,
      informers: { services: this.#services.status(), endpointslices: this.#slices.status(), node: this.#nodes.status() },
    };
  }

  #recordTrigger(slice: V1EndpointSlice): void {
    const t = triggerTime(slice);
    if (!t) return;
    const key = objectKey(slice);
    const last = this.#lastTriggers.get(key);
    // The same annotation again (a relist, a status-only update) is not a new change.
    if (last && last.getTime() === t.getTime()) return;
    this.#lastTriggers.set(key, t);
    const pending = this.#pendingTriggers.get(key);
    if (!pending || t < pending) this.#pendingTriggers.set(key, t);
  }

  /**
   * Records a Node's problems and (with allNodes) its addresses; true when either changed, which
   * makes a snapshot even when this node's own facts stay the same.
   */
  #track(verb: 'add' | 'update' | 'delete', node: V1Node): boolean {
    const read = readNode(node);
    if (read.name === undefined) return false;
    const problemsBefore = JSON.stringify(this.#nodeProblems.get(read.name) ?? []);
    if (read.problems.length > 0 && verb !== 'delete') this.#nodeProblems.set(read.name, read.problems);
    else this.#nodeProblems.delete(read.name);
    const problemsChanged = problemsBefore !== JSON.stringify(this.#nodeProblems.get(read.name) ?? []);
    if (!this.#allNodes) return problemsChanged;
    const before = this.#peers.get(read.name);
    if (verb === 'delete') {
      if (!before) return problemsChanged;
      this.#peers = new Map(this.#peers);
      this.#peers.delete(read.name);
      return true;
    }
    if (before && before.length === read.addresses.length && before.every((a, i) => a === read.addresses[i])) return problemsChanged;
    // A new Map, not an edit: the desired cache tells a change by identity.
    this.#peers = new Map(this.#peers).set(read.name, read.addresses);
    return true;
  }

  #nodeChanged(peersChanged = false): void {
    const node = nodeInfo(
      this.#nodeName,
      this.#nodes.list().find((n) => n.metadata?.name === this.#nodeName),
    );
    // Nodes change often (status, heartbeat conditions); only what the model reads makes a snapshot.
    if (sameNode(node, this.#node) && !peersChanged) return;
    this.#node = node;
    this.#changed();
  }

  #listedOnce(which: string): void {
    if (which === 'node') this.#nodeChanged();
    if (this.#listed.has(which)) return;
    this.#listed.add(which);
    if (this.#listed.size < 3 || this.#synced) return;
    this.#synced = true;
    this.#dirty = true;
    // The first list's trigger times are history, not changes programmed late: no latency to report.
    this.#pendingTriggers.clear();
    try {
      this.#onSynced();
    } catch (err) {
      this.#onError(new Error(`kubernetes: onSynced failed: ${(err as Error)?.message}`, { cause: err }));
    }
    this.#emit();
    this.#resolveSynced();
  }

  #changed(): void {
    this.#dirty = true;
    if (!this.#synced || this.#stopped || this.#emitting) return;
    // One snapshot per burst: a relist fires a callback per difference, all in one turn.
    this.#emitting = setImmediate(() => {
      this.#emitting = undefined;
      this.#emit();
    });
  }

  #emit(): void {
    if (!this.#dirty || this.#stopped) return;
    this.#dirty = false;
    const snapshot = this.snapshot();
    snapshot.changeTriggerTimes = [...this.#pendingTriggers.values()];
    this.#pendingTriggers.clear();
    try {
      this.#onChange(snapshot);
    } catch (err) {
      this.#onError(new Error(`kubernetes: onChange failed: ${(err as Error)?.message}`, { cause: err }));
    }
  }
}
