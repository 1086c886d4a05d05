// The desired table kept per service, for the agent: objects come and go one at a time, and each
// change recomputes only the services it touches and settles only the frontends they claim. What it
// holds is always the table desired() computes from the same objects (test/unit/model/desired-state.test.ts).

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { ObjectProblem } from '../errors.ts';
import { type Claim, winnerOf } from './conflicts.ts';
import {
  checkOptions,
  claimsOf,
  type DesiredOptions,
  healthCheckOf,
  limitBackends,
  metaText,
  type NodeFacts,
  nodeFactsOf,
} from './desired.ts';
import { cmp, sortProblems } from './problem.ts';
import { readService, type ServiceRead, type ServiceSpec } from './service-spec.ts';
import { readSlice, sliceOwner } from './slice-read.ts';
import { runSteps, STEP_EVERY } from './steps.ts';
import type { DesiredFrontend, DesiredTable, HealthCheck, NodeInfo } from './types.ts';

/**
 * A Service as put, and the claims it holds. Reads are not kept: a service is read again when it is
 * computed again (its slices changed), which costs microseconds, while keeping every read would
 * double the memory a service takes.
 */
interface ServiceEntry {
  /** Undefined once deleted: the entry stays until the next flush releases its claims. */
  object: V1Service | undefined;
  /** Read at the next flush (reading is the costly part of taking in a cluster, so it is done in steps). */
  read: boolean;
  /**
   * The version the frontends come from: this one, or while this one is rejected outright (problems
   * and no spec), the last accepted one, so one bad edit never tears down what was programmed.
   */
  accepted: V1Service | undefined;
  /** The frontends its last computation claimed (claimsOf), held until it is computed again. */
  claims: readonly Claim[];
}

const NO_CLAIMS: readonly Claim[] = [];

/** One frontend key: the claims on it and the entry that won them. */
interface FrontendSlot {
  readonly key: string;
  /** Every claim on the key, of any service; nearly always one. Empty: the slot goes at the next settling. */
  readonly claims: Claim[];
  /** The claim that won, as programmed (backends limited); undefined until the key is first settled. */
  winner: DesiredFrontend | undefined;
}

/** What computing one programmed service gives: its claims, its health check, its slices' problems. */
interface ServiceResult {
  readonly claims: readonly Claim[];
  readonly healthCheck: HealthCheck | undefined;
  readonly sliceProblems: readonly ObjectProblem[];
}

/** Objects taken in between two yields: taking one in (no reading yet) costs a few microseconds. */
const INTAKE_EVERY = 256;

/** One object added, changed (object set) or deleted (object absent), as an informer reports it. */
export type ObjectEvent =
  | { kind: 'Service'; namespace: string; name: string; object?: V1Service }
  | { kind: 'EndpointSlice'; namespace: string; name: string; object?: V1EndpointSlice };

/** Frontend key -> its entry now, or undefined when it went: the frontends one flush changed. */
export type TableChanges = Map<string, DesiredFrontend | undefined>;

/**
 * The objects by `namespace/name` and what they yield. Objects handed in must not be mutated
 * afterwards: a changed object is a new object (as the informer caches replace them), and an object
 * put again as the same instance is known unchanged.
 */
export class DesiredState {
  readonly #max: number;
  #nodeKey = '';
  #node: NodeInfo;
  #facts: NodeFacts;
  readonly #services = new Map<string, ServiceEntry>();
  readonly #slices = new Map<string, V1EndpointSlice>();
  /**
   * Slices by the `namespace/service` they belong to (ownerOf), in name order as desired() reads
   * them: nearly always one.
   */
  readonly #groups = new Map<string, V1EndpointSlice[]>();
  /** By frontend key. */
  readonly #frontends = new Map<string, FrontendSlot>();
  /** How many slots have a winner: the frontends the table holds. */
  #winners = 0;
  /**
   * Problems and health checks by service id (settling's problems by frontend key), kept only where
   * there are some, so listing them costs what they hold.
   */
  readonly #readProblems = new Map<string, readonly ObjectProblem[]>();
  readonly #sliceProblems = new Map<string, readonly ObjectProblem[]>();
  readonly #settleProblems = new Map<string, readonly ObjectProblem[]>();
  readonly #healthChecks = new Map<string, HealthCheck>();
  /** Services to compute again at the next flush, by `namespace/name`. */
  readonly #dirty = new Set<string>();
  /** The sorted table, built when asked for and kept until a flush changes something. */
  #table: DesiredTable | undefined;

  constructor(node: NodeInfo, options: DesiredOptions = {}) {
    this.#max = checkOptions(options);
    this.#node = node;
    this.#facts = nodeFactsOf(node);
    this.#nodeKey = nodeKeyOf(node);
  }

  /** The node's facts; when they change, every service is computed again. */
  setNode(node: NodeInfo): void {
    const key = nodeKeyOf(node);
    const peersChanged = node.peers !== this.#node.peers;
    this.#node = node;
    // A new book of other nodes' addresses (a new instance only when one changed) moves backends' nodes.
    if (key === this.#nodeKey && !peersChanged) return;
    this.#nodeKey = key;
    this.#facts = nodeFactsOf(node);
    for (const id of this.#services.keys()) this.#dirty.add(id);
    this.#table = undefined;
  }

  putService(svc: V1Service): void {
    this.#putService(idOf(svc), svc);
  }

  #putService(id: string, svc: V1Service): void {
    const entry = this.#services.get(id);
    if (entry?.object === svc) return;
    if (entry) {
      entry.object = svc;
      entry.read = false;
    } else this.#services.set(id, { object: svc, read: false, accepted: undefined, claims: NO_CLAIMS });
    this.#dirty.add(id);
  }

  /** An informer's event. */
  apply(event: ObjectEvent): void {
    if (event.kind === 'Service') {
      if (event.object) this.putService(event.object);
      else this.deleteService(event.namespace, event.name);
    } else if (event.object) this.putSlice(event.object);
    else this.deleteSlice(event.namespace, event.name);
  }

  deleteService(namespace: string, name: string): void {
    this.#deleteService(`${namespace}/${name}`);
  }

  #deleteService(id: string): void {
    const entry = this.#services.get(id);
    if (!entry?.object) return;
    entry.object = undefined;
    entry.accepted = undefined;
    this.#readProblems.delete(id);
    this.#dirty.add(id);
  }

  putSlice(slice: V1EndpointSlice): void {
    this.#putSlice(idOf(slice), slice);
  }

  #putSlice(id: string, slice: V1EndpointSlice): void {
    const previous = this.#slices.get(id);
    if (previous === slice) return;
    if (previous) this.#ungroup(previous);
    this.#slices.set(id, slice);
    const owner = ownerOf(slice);
    if (owner === undefined) return;
    const group = this.#groups.get(owner);
    if (group) {
      // Names in a group differ (a slice's id is its namespace, the group's, and its name).
      const name = metaText(slice, 'name');
      let at = group.length;
      while (at > 0 && cmp(metaText(group[at - 1], 'name'), name) > 0) at--;
      group.splice(at, 0, slice);
    } else this.#groups.set(owner, [slice]);
    this.#dirty.add(owner);
  }

  deleteSlice(namespace: string, name: string): void {
    const id = `${namespace}/${name}`;
    const previous = this.#slices.get(id);
    if (!previous) return;
    this.#slices.delete(id);
    this.#ungroup(previous);
  }

  #ungroup(slice: V1EndpointSlice): void {
    const owner = ownerOf(slice);
    if (owner === undefined) return;
    const group = this.#groups.get(owner);
    const at = group ? group.indexOf(slice) : -1;
    if (at >= 0) group!.splice(at, 1);
    if (group?.length === 0) this.#groups.delete(owner);
    this.#dirty.add(owner);
  }

  /**
   * Makes the objects exactly these (a manifest read, a first list): puts the new and changed ones
   * and deletes the ones not listed. An object listed twice counts once, the later one.
   */
  replaceAll(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): void {
    runSteps(this.replaceAllSteps(services, slices));
  }

  /** replaceAll(), yielding between objects (src/model/steps.ts): a list of 100,000 takes a while. */
  *replaceAllSteps(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): Generator<void, void> {
    // What was not listed goes; a first list (nothing held yet) has nothing to look up.
    const listed = this.#services.size > 0 || this.#slices.size > 0 ? new Set<string>() : undefined;
    let done = 0;
    for (const s of services) {
      if (++done % INTAKE_EVERY === 0) yield;
      const id = idOf(s);
      listed?.add(id);
      this.#putService(id, s);
    }
    if (listed) for (const id of [...this.#services.keys()]) if (!listed.has(id)) this.#deleteService(id);
    listed?.clear();
    for (const s of slices) {
      if (++done % INTAKE_EVERY === 0) yield;
      const id = idOf(s);
      listed?.add(id);
      this.#putSlice(id, s);
    }
    if (!listed) return;
    for (const [id, slice] of [...this.#slices]) {
      if (listed.has(id)) continue;
      this.#slices.delete(id);
      this.#ungroup(slice);
    }
  }

  /** Whether a flush has work to do. */
  get dirty(): boolean {
    return this.#dirty.size > 0;
  }

  /**
   * Computes the services changed since the last flush and settles the frontends they claimed or
   * claim. Returns the frontends whose entry changed; the work is proportional to the change.
   */
  *flush(): Generator<void, TableChanges> {
    const touched = new Set<FrontendSlot>();
    let done = 0;
    for (const id of this.#dirty) {
      if (++done % STEP_EVERY === 0) yield;
      const entry = this.#services.get(id);
      let read: ServiceRead | undefined;
      if (entry?.object && !entry.read) {
        read = readService(entry.object);
        const rejected = read.spec === undefined && read.problems.length > 0;
        entry.read = true;
        setOrDelete(this.#readProblems, id, read.problems);
        if (rejected) read = undefined;
        else entry.accepted = entry.object;
      }
      if (!read && entry?.accepted) read = readService(entry.accepted);
      const result = read?.spec && this.#compute(id, read.spec);
      if (entry) {
        for (const c of entry.claims) this.#unclaim(c, touched);
        // A copy of exactly its length: the list was pushed to, which leaves room for 16 more.
        entry.claims = result ? result.claims.slice() : NO_CLAIMS;
        if (!entry.object) this.#services.delete(id);
      }
      for (const c of result?.claims ?? NO_CLAIMS) {
        let slot = this.#frontends.get(c.key);
        if (slot) slot.claims.push(c);
        else {
          slot = { key: c.key, claims: [c], winner: undefined };
          this.#frontends.set(c.key, slot);
        }
        touched.add(slot);
      }
      setOrDelete(this.#sliceProblems, id, result?.sliceProblems ?? []);
      if (result?.healthCheck) this.#healthChecks.set(id, result.healthCheck);
      else this.#healthChecks.delete(id);
    }
    if (this.#dirty.size > 0) this.#table = undefined;
    this.#dirty.clear();
    const changes: TableChanges = new Map();
    for (const slot of touched) {
      if (++done % STEP_EVERY === 0) yield;
      const { key, claims, winner: before } = slot;
      if (claims.length === 0) {
        this.#frontends.delete(key);
        this.#settleProblems.delete(key);
        if (before) {
          this.#winners--;
          changes.set(key, undefined);
        }
        continue;
      }
      const problems: ObjectProblem[] = [];
      const winner = winnerOf(claims, problems);
      const entry = limitBackends(winner.entry, this.#max, winner.field, problems);
      slot.winner = entry;
      if (!before) this.#winners++;
      setOrDelete(this.#settleProblems, key, problems);
      if (entry !== before) changes.set(key, entry);
    }
    return changes;
  }

  #unclaim(claim: Claim, touched: Set<FrontendSlot>): void {
    const slot = this.#frontends.get(claim.key);
    if (!slot) return;
    touched.add(slot);
    const at = slot.claims.indexOf(claim);
    if (at >= 0) slot.claims.splice(at, 1);
  }

  /** `id` is the service's `namespace/name`, which its spec names too. */
  #compute(id: string, spec: ServiceSpec): ServiceResult {
    const reads = (this.#groups.get(id) ?? []).map(readSlice);
    const sliceProblems: ObjectProblem[] = [];
    for (const read of reads) for (const p of read.problems) sliceProblems.push(p);
    return {
      claims: claimsOf(spec, reads, this.#node, this.#facts.ips),
      healthCheck: healthCheckOf(spec, reads, this.#node),
      sliceProblems,
    };
  }

  /**
   * The whole table as desired() gives it (frontends by key, problems by object, health checks by
   * port): built when asked for (the debug endpoint, status), never on the path of a change.
   */
  table(): DesiredTable {
    if (this.#table) return this.#table;
    const programmed = [...this.#frontends.values()].filter((slot) => slot.winner !== undefined);
    const frontends = programmed.sort((a, b) => cmp(a.key, b.key)).map((slot) => slot.winner!);
    this.#table = { frontends, problems: this.problems(), healthChecks: this.healthChecks() };
    return this.#table;
  }

  /** Every frontend of the table, in no particular order (no sort on the way to the maps). */
  frontends(): DesiredFrontend[] {
    const all: DesiredFrontend[] = [];
    for (const slot of this.#frontends.values()) if (slot.winner) all.push(slot.winner);
    return all;
  }

  /** Every rejected object or part of one, ordered by object. */
  problems(): ObjectProblem[] {
    const all: ObjectProblem[] = [...this.#facts.problems];
    for (const list of [this.#readProblems, this.#sliceProblems, this.#settleProblems]) {
      for (const problems of list.values()) for (const p of problems) all.push(p);
    }
    return sortProblems(all);
  }

  /** The health-check listeners, by port. */
  healthChecks(): HealthCheck[] {
    return [...this.#healthChecks.values()].sort(
      (a, b) => a.port - b.port || cmp(a.service.namespace, b.service.namespace) || cmp(a.service.name, b.service.name),
    );
  }

  /** How many frontends the table holds. */
  get size(): number {
    return this.#winners;
  }
}

function nodeKeyOf(node: NodeInfo): string {
  return JSON.stringify([node.name, node.zone ?? '', node.addresses ?? []]);
}

function idOf(o: V1Service | V1EndpointSlice): string {
  return `${metaText(o, 'namespace')}/${metaText(o, 'name')}`;
}

/**
 * The `namespace/service` a slice belongs to; undefined when it names none. Read again when the slice
 * goes rather than kept: objects are never mutated.
 */
function ownerOf(slice: V1EndpointSlice): string | undefined {
  const owner = sliceOwner(slice);
  return owner && `${owner.namespace}/${owner.service}`;
}

function setOrDelete<T>(map: Map<string, readonly T[]>, key: string, list: readonly T[]): void {
  if (list.length > 0) map.set(key, list);
  else map.delete(key);
}
