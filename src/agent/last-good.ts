// Keeps the last accepted version of a Service whose new version is rejected, so one bad edit
// never tears down what was already programmed for it.

import type { V1Service } from '@kubernetes/client-node';
import { runSteps } from '../model/steps.ts';
import type { DesiredTable } from '../model/types.ts';

// biome-ignore lint/correctness/useYield: a result with no steps to yield between
function* stepless<T>(value: T): Generator<void, T> {
  return value;
}

function idOf(s: V1Service): string {
  return `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;
}

export class LastGood {
  /** The services last accepted, as a list (cheap to keep) with the ids that were not accepted. */
  #acceptedList: V1Service[] = [];
  #notAccepted = new Set<string>();
  /** `#acceptedList` by id without `#notAccepted`, built only when a problem needs it. */
  #accepted: Map<string, V1Service> | undefined = new Map();

  /**
   * Computes the table; for each service that is rejected outright (it has problems and yields no
   * frontend) while an earlier version was accepted, computes it again with that earlier version.
   * Without service problems (the usual case) this costs no pass over the services.
   */
  resolve(services: V1Service[], compute: (services: V1Service[]) => DesiredTable): DesiredTable {
    return runSteps(this.resolveSteps(services, (s) => stepless(compute(s))));
  }

  /** resolve(), for a computation written as steps (src/model/steps.ts). */
  *resolveSteps(services: V1Service[], compute: (services: V1Service[]) => Generator<void, DesiredTable>): Generator<void, DesiredTable> {
    let table = yield* compute(services);
    const withProblems = new Set<string>();
    for (const p of table.problems) if (p.kind === 'Service') withProblems.add(`${p.namespace}/${p.name}`);
    const notAccepted = new Set<string>();
    let effective = services;
    if (withProblems.size > 0) {
      const withFrontends = new Set(table.frontends.map((f) => `${f.service.namespace}/${f.service.name}`));
      const accepted = this.#acceptedById();
      const rejected = new Set<string>();
      for (const id of withProblems) {
        if (withFrontends.has(id)) continue;
        if (accepted.has(id)) rejected.add(id);
        else notAccepted.add(id);
      }
      if (rejected.size > 0) {
        effective = services.map((s) => (rejected.has(idOf(s)) ? accepted.get(idOf(s))! : s));
        const kept = yield* compute(effective);
        table = { ...kept, problems: table.problems };
      }
    }
    this.#acceptedList = effective;
    this.#notAccepted = notAccepted;
    this.#accepted = undefined;
    return table;
  }

  #acceptedById(): Map<string, V1Service> {
    if (!this.#accepted) {
      this.#accepted = new Map();
      for (const s of this.#acceptedList) {
        const id = idOf(s);
        if (!this.#notAccepted.has(id)) this.#accepted.set(id, s);
      }
    }
    return this.#accepted;
  }
}
