// Settles frontends claimed by more than one service: the oldest service keeps it.

import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { cmp, problem } from './problem.ts';
import { type DesiredFrontend, endpointKey } from './types.ts';

export interface Claim {
  entry: DesiredFrontend;
  /** The claiming service's metadata.creationTimestamp in ms; undefined sorts as newest. */
  created: number | undefined;
  /** The field the frontend came from, for the loser's problem (`spec.ports[0]`). */
  field: string;
  /** endpointKey(entry.frontend), when the claimer already has it. */
  key?: string;
}

/**
 * Keeps one claim per frontend key: the oldest by creationTimestamp (a service without one counts as
 * newest), then the first by namespace/name, so the result does not depend on arrival order. Each
 * loser gets a FRONTEND_CONFLICT problem; its other frontends are unaffected. `keys[i]` is the key of
 * `kept[i]`, `fields[i]` the field it came from.
 */
export function settleConflicts(claims: readonly Claim[]): {
  kept: DesiredFrontend[];
  keys: string[];
  fields: string[];
  problems: ObjectProblem[];
} {
  // Nearly every key has one claim: keep a list only for those with more.
  const first = new Map<string, Claim>();
  const contested = new Map<string, Claim[]>();
  for (const c of claims) {
    const key = c.key ?? endpointKey(c.entry.frontend);
    const existing = first.get(key);
    if (!existing) {
      first.set(key, c);
      continue;
    }
    const list = contested.get(key);
    if (list) list.push(c);
    else contested.set(key, [existing, c]);
  }
  const kept: DesiredFrontend[] = [];
  const keys: string[] = [];
  const fields: string[] = [];
  const problems: ObjectProblem[] = [];
  for (const [key, only] of first) {
    const list = contested.get(key);
    keys.push(key);
    if (!list) {
      kept.push(only.entry);
      fields.push(only.field);
      continue;
    }
    list.sort(olderFirst);
    const [winner, ...losers] = list as [Claim, ...Claim[]];
    kept.push(winner.entry);
    fields.push(winner.field);
    const owner = `${winner.entry.service.namespace}/${winner.entry.service.name}`;
    for (const l of losers) {
      problems.push(
        problem(
          { kind: 'Service', ...l.entry.service },
          l.field,
          ErrorCodes.FRONTEND_CONFLICT,
          `${key} is also claimed by ${owner}, which wins (older creationTimestamp, then namespace/name); ` +
            'not programmed for this service',
        ),
      );
    }
  }
  return { kept, keys, fields, problems };
}

function olderFirst(a: Claim, b: Claim): number {
  const ta = a.created ?? Infinity;
  const tb = b.created ?? Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return cmp(a.entry.service.namespace, b.entry.service.namespace) || cmp(a.entry.service.name, b.entry.service.name);
}
