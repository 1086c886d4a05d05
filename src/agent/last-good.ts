// Keeps the last accepted version of a Service whose new version is rejected, so one bad edit
// never tears down what was already programmed for it.

import type { V1Service } from '@kubernetes/client-node';
import type { DesiredTable } from '../model/types.ts';

function idOf(s: V1Service): string {
  return `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;
}

export class LastGood {
  #accepted = new Map<string, V1Service>();

  /**
   * Computes the table; for each service that is rejected outright (it has problems and yields no
   * frontend) while an earlier version was accepted, computes it again with that earlier version.
   */
  resolve(services: V1Service[], compute: (services: V1Service[]) => DesiredTable): DesiredTable {
    let table = compute(services);
    const withFrontends = new Set(table.frontends.map((f) => `${f.service.namespace}/${f.service.name}`));
    const withProblems = new Set(table.problems.filter((p) => p.kind === 'Service').map((p) => `${p.namespace}/${p.name}`));
    const rejected = new Set([...withProblems].filter((id) => !withFrontends.has(id) && this.#accepted.has(id)));
    let effective = services;
    if (rejected.size > 0) {
      effective = services.map((s) => (rejected.has(idOf(s)) ? this.#accepted.get(idOf(s))! : s));
      const kept = compute(effective);
      table = { ...kept, problems: table.problems };
    }
    const accepted = new Map<string, V1Service>();
    for (const s of effective) {
      const id = idOf(s);
      if (rejected.has(id) || withFrontends.has(id) || !withProblems.has(id)) {
        accepted.set(id, s);
      }
    }
    this.#accepted = accepted;
    return table;
  }
}
