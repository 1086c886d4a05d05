// What desired() may reuse between calls: per-object reads and per-service results, keyed by the
// object instances themselves, so one changed object costs one recomputation, not a cluster's.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { ObjectProblem } from '../errors.ts';
import type { Claim } from './conflicts.ts';
import type { ParsedIp } from './ip.ts';
import { cmp, isRecord } from './problem.ts';
import { readService, type ServiceRead } from './service-spec.ts';
import { readSlice, type SliceRead, sliceOwner } from './slice-read.ts';
import type { DesiredFrontend, HealthCheck, NodeInfo } from './types.ts';

/** A Service as desired() orders and reads it. */
export interface ServiceMemo {
  readonly object: V1Service;
  /** metadata.namespace and .name as text for ordering ('' when unreadable). */
  readonly namespace: string;
  readonly name: string;
  readonly read: ServiceRead;
  /** `namespace/name` of the spec, the key its slices are grouped under; '' without a spec. */
  readonly sliceKey: string;
  /** The call that last saw it (to find duplicates and what left without a set). */
  seen: number;
  /** The call whose order it is part of. */
  listed: number;
}

/** An EndpointSlice as desired() groups and reads it; `read` is filled the first time a service asks. */
export interface SliceMemo {
  readonly object: V1EndpointSlice;
  readonly namespace: string;
  readonly name: string;
  /** `namespace/service` of the service it belongs to; undefined when it names none. */
  readonly owner: string | undefined;
  read: SliceRead | undefined;
  /** The call that last saw it. */
  seen: number;
  /** It is in the cache's slice groups. */
  grouped: boolean;
}

/** What one programmed service contributes to the table, given its slices and the node. */
export interface ServiceResult {
  /** The slices it was computed from, as the same instances in the same order. */
  readonly slices: readonly V1EndpointSlice[];
  readonly claims: readonly Claim[];
  readonly healthCheck: HealthCheck | undefined;
  /** The problems of those slices, in slice order. */
  readonly sliceProblems: readonly ObjectProblem[];
}

/** A table as desired() assembled it, with its inputs. */
export interface AssembledTable {
  readonly maxBackends: number;
  readonly nodeFacts: NodeFacts;
  readonly order: readonly ServiceMemo[];
  /** Per service in `order`: its result, undefined when it has no spec. */
  readonly results: readonly (ServiceResult | undefined)[];
  readonly frontends: readonly DesiredFrontend[];
  /** Frontend key -> its index in `frontends`. */
  readonly index: ReadonlyMap<string, number>;
  readonly problems: readonly ObjectProblem[];
  readonly healthChecks: readonly HealthCheck[];
}

/** The node facts the model reads, computed once per distinct (name, zone, addresses). */
export interface NodeFacts {
  readonly ips: readonly ParsedIp[];
  readonly problems: readonly ObjectProblem[];
}

/**
 * Memo tables for `desired(…, { cache })`. Entries are keyed by object identity (WeakMaps, so a
 * deleted object's entries go with it) and per-service results also by the exact slice instances and
 * the node's facts, so a result is reused only when nothing it was computed from can have changed.
 *
 * Callers must never mutate a Service or EndpointSlice in place after handing it to desired() with a
 * cache: a changed object has to be a new object. The Kubernetes informer cache (client-node's
 * ListWatch) replaces an object on MODIFIED and keeps the old instance when the resourceVersion is
 * unchanged, so its lists satisfy this. The tables returned share their entries with the cache: treat
 * them as immutable too. The public fields are desired()'s bookkeeping, not for other callers.
 */
export class DesiredCache {
  #services = new WeakMap<object, ServiceMemo>();
  #slices = new WeakMap<object, SliceMemo>();
  #results = new WeakMap<object, ServiceResult>();
  #nodeKey: string | undefined;
  #peers: NodeInfo['peers'];
  #nodeFacts: NodeFacts | undefined;
  /** Counts calls, to mark what each one saw. */
  epoch = 0;
  /** The last call's services in table order, to reuse the order when few services changed. */
  order: ServiceMemo[] = [];
  /** The call that made `order`. */
  orderEpoch = 0;
  /** The last call's slices with an owner, grouped by it, each group in (namespace, name) order. */
  groups = new Map<string, SliceMemo[]>();
  /** The grouped slices by `namespace/name`, to find the one a new version replaces. */
  groupedById = new Map<string, SliceMemo>();
  /** The last call's table and what it was assembled from, to patch when only some results changed. */
  table: AssembledTable | undefined;

  /** Forgets everything (the next call computes from scratch). */
  clear(): void {
    this.#services = new WeakMap();
    this.#slices = new WeakMap();
    this.#results = new WeakMap();
    this.#nodeKey = undefined;
    this.#peers = undefined;
    this.#nodeFacts = undefined;
    this.order = [];
    this.groups = new Map();
    this.groupedById = new Map();
    this.table = undefined;
  }

  service(svc: V1Service): ServiceMemo {
    const key = svc as unknown;
    const known = isObject(key) ? this.#services.get(key) : undefined;
    if (known) return known;
    const read = readService(svc);
    const spec = read.spec;
    const memo: ServiceMemo = {
      object: svc,
      namespace: metaText(key, 'namespace'),
      name: metaText(key, 'name'),
      read,
      sliceKey: spec ? `${spec.service.namespace}/${spec.service.name}` : '',
      seen: 0,
      listed: 0,
    };
    if (isObject(key)) this.#services.set(key, memo);
    return memo;
  }

  slice(slice: V1EndpointSlice): SliceMemo {
    const key = slice as unknown;
    const known = isObject(key) ? this.#slices.get(key) : undefined;
    if (known) return known;
    const owner = sliceOwner(slice);
    const memo: SliceMemo = {
      object: slice,
      namespace: metaText(key, 'namespace'),
      name: metaText(key, 'name'),
      owner: owner ? `${owner.namespace}/${owner.service}` : undefined,
      read: undefined,
      seen: 0,
      grouped: false,
    };
    if (isObject(key)) this.#slices.set(key, memo);
    return memo;
  }

  readSlice(memo: SliceMemo): SliceRead {
    memo.read ??= readSlice(memo.object);
    return memo.read;
  }

  /**
   * The node's facts; a change of them, or other nodes' addresses (a new peers book), drops every
   * per-service result.
   */
  node(node: NodeInfo, compute: (node: NodeInfo) => NodeFacts): NodeFacts {
    const key = JSON.stringify([node.name, node.zone ?? '', node.addresses ?? []]);
    if (key !== this.#nodeKey || node.peers !== this.#peers || !this.#nodeFacts) {
      this.#nodeKey = key;
      this.#peers = node.peers;
      this.#nodeFacts = compute(node);
      this.#results = new WeakMap();
    }
    return this.#nodeFacts;
  }

  /** The service's result when it was computed from these very slices (and the current node facts). */
  result(svc: V1Service, slices: readonly SliceMemo[]): ServiceResult | undefined {
    const key = svc as unknown;
    const r = isObject(key) ? this.#results.get(key) : undefined;
    if (!r || r.slices.length !== slices.length) return undefined;
    for (let i = 0; i < slices.length; i++) if (r.slices[i] !== slices[i]!.object) return undefined;
    return r;
  }

  setResult(svc: V1Service, result: ServiceResult): void {
    const key = svc as unknown;
    if (isObject(key)) this.#results.set(key, result);
  }
}

/** Orders by metadata namespace, then name, as desired() lists services and slices. */
export function byNamespaceName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/** A metadata field as text for ordering; tolerates objects too malformed to validate yet. */
function metaText(o: unknown, field: 'namespace' | 'name'): string {
  const meta = isRecord(o) ? o.metadata : undefined;
  const value = isRecord(meta) ? meta[field] : undefined;
  return typeof value === 'string' ? value : '';
}
