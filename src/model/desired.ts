// The pure heart of the agent: Services and EndpointSlices in, the table of frontends to program out.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { selectBackends } from './backends.ts';
import { settleConflicts, type Claim } from './conflicts.ts';
import { cmp, isRecord, problem, sortProblems } from './problem.ts';
import { readService, type ServiceSpec } from './service-spec.ts';
import { readSlice, sliceOwner, type SliceRead } from './slice-read.ts';
import { endpointKey, type DesiredFrontend, type DesiredTable, type NodeInfo } from './types.ts';

export const DEFAULT_MAX_BACKENDS_PER_SERVICE = 1024;

export interface DesiredOptions {
  /**
   * Most backends one frontend may balance over (default 1024). A frontend with more keeps the first
   * N in (address, port) order, so the choice is stable, and its service gets a TOO_MANY_BACKENDS problem.
   */
  maxBackendsPerService?: number;
}

/**
 * Computes the desired table (kube-proxy semantics, ClusterIP frontends). Pure and deterministic: the
 * same objects in any order give the same table. Bad objects become problems, never exceptions; only
 * bad options throw.
 */
export function desired(
  services: V1Service[],
  slices: V1EndpointSlice[],
  node: NodeInfo,
  options: DesiredOptions = {},
): DesiredTable {
  const max = checkOptions(options);
  const problems: ObjectProblem[] = [];
  const sliceIndex = new SliceIndex(slices, problems);
  const claims: Claim[] = [];
  for (const svc of [...services].sort(byNamespaceName)) {
    const read = readService(svc);
    problems.push(...read.problems);
    if (read.spec) claims.push(...claimsOf(read.spec, sliceIndex, node));
  }
  const settled = settleConflicts(claims);
  problems.push(...settled.problems);
  const frontends = settled.kept.map((f) => limitBackends(f, max, problems)).sort(byFrontend);
  return { frontends, problems: sortProblems(problems) };
}

function checkOptions(options: DesiredOptions): number {
  const max = options.maxBackendsPerService ?? DEFAULT_MAX_BACKENDS_PER_SERVICE;
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`maxBackendsPerService must be a positive integer, got ${String(max)}`);
  }
  return max;
}

function claimsOf(spec: ServiceSpec, index: SliceIndex, node: NodeInfo): Claim[] {
  const slices = index.of(spec.service.namespace, spec.service.name);
  const claims: Claim[] = [];
  for (const ip of spec.ips) {
    for (const port of spec.ports) {
      const frontend = { family: ip.family, address: ip.address, port: port.port, protocol: port.protocol };
      const query = { frontend, portName: port.name, localOnly: spec.localOnly, nodeName: node.name };
      claims.push({
        entry: { frontend, service: spec.service, portName: port.name, backends: selectBackends(query, slices) },
        created: spec.created,
        field: `spec.ports[${port.index}]`,
      });
    }
  }
  return claims;
}

function limitBackends(f: DesiredFrontend, max: number, problems: ObjectProblem[]): DesiredFrontend {
  if (f.backends.length <= max) return f;
  problems.push(
    problem(
      { kind: 'Service', ...f.service },
      '',
      ErrorCodes.TOO_MANY_BACKENDS,
      `${endpointKey(f.frontend)} has ${f.backends.length} backends; programming the first ${max} by address`,
    ),
  );
  return { ...f, backends: f.backends.slice(0, max) };
}

function byFrontend(a: DesiredFrontend, b: DesiredFrontend): number {
  return (
    cmp(endpointKey(a.frontend), endpointKey(b.frontend)) ||
    cmp(a.service.namespace, b.service.namespace) ||
    cmp(a.service.name, b.service.name)
  );
}

function byNamespaceName(a: V1Service | V1EndpointSlice, b: V1Service | V1EndpointSlice): number {
  return cmp(metaText(a, 'namespace'), metaText(b, 'namespace')) || cmp(metaText(a, 'name'), metaText(b, 'name'));
}

/** A metadata field as text for ordering; tolerates objects too malformed to validate yet. */
function metaText(o: unknown, field: 'namespace' | 'name'): string {
  const meta = isRecord(o) ? o.metadata : undefined;
  const value = isRecord(meta) ? meta[field] : undefined;
  return typeof value === 'string' ? value : '';
}

/**
 * Slices grouped by `namespace/service`, each read (and its problems recorded) once, lazily: a slice
 * is only validated when a programmed service asks for it, so slices of headless or foreign services,
 * or of no service, never raise problems.
 */
class SliceIndex {
  #byService = new Map<string, V1EndpointSlice[]>();
  #read = new Map<string, SliceRead[]>();
  #problems: ObjectProblem[];

  constructor(slices: V1EndpointSlice[], problems: ObjectProblem[]) {
    this.#problems = problems;
    for (const slice of [...slices].sort(byNamespaceName)) {
      const owner = sliceOwner(slice);
      if (!owner) continue;
      const key = `${owner.namespace}/${owner.service}`;
      const list = this.#byService.get(key);
      if (list) list.push(slice);
      else this.#byService.set(key, [slice]);
    }
  }

  of(namespace: string, service: string): SliceRead[] {
    const key = `${namespace}/${service}`;
    let read = this.#read.get(key);
    if (!read) {
      read = (this.#byService.get(key) ?? []).map(readSlice);
      for (const r of read) this.#problems.push(...r.problems);
      this.#read.set(key, read);
    }
    return read;
  }
}
