// Settles frontends claimed by more than one service: the oldest service keeps it.

import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { cmp, problem } from './problem.ts';
import type { DesiredFrontend } from './types.ts';

export interface Claim {
  entry: DesiredFrontend;
  /** The claiming service's metadata.creationTimestamp in ms; undefined sorts as newest. */
  created: number | undefined;
  /** The field the frontend came from, for the loser's problem (`spec.ports[0]`). */
  field: string;
  /** endpointKey(entry.frontend). */
  key: string;
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
    const existing = first.get(c.key);
    if (!existing) {
      first.set(c.key, c);
      continue;
    }
    const list = contested.get(c.key);
    if (list) list.push(c);
    else contested.set(c.key, [existing, c]);
  }
  const kept: DesiredFrontend[] = [];
  const keys: string[] = [];
  const fields: string[] = [];
  const problems: ObjectProblem[] = [];
  for (const [key, only] of first) {
    const winner = winnerOf(contested.get(key) ?? [only], problems);
    keys.push(key);
    kept.push(winner.entry);
    fields.push(winner.field);
  }
  return { kept, keys, fields, problems };
}

/**
 * The claim that keeps a frontend key, of all the claims on it (as settleConflicts chooses); each
 * loser's FRONTEND_CONFLICT problem goes to `problems`.
 */
export function winnerOf(claims: readonly Claim[], problems: ObjectProblem[]): Claim {
  if (claims.length === 1) return claims[0]!;
  const [winner, ...losers] = [...claims].sort(olderFirst) as [Claim, ...Claim[]];
  const owner = `${winner.entry.service.namespace}/${winner.entry.service.name}`;
  for (const l of losers) {
    problems.push(
      problem(
        { kind: 'Service', ...l.entry.service },
        l.field,
        ErrorCodes.FRONTEND_CONFLICT,
        `${winner.key} is also claimed by ${owner}, which wins (older creationTimestamp, then namespace/name); ` +
          'not programmed for this service',
      ),
    );
  }
  return winner;
}

function olderFirst(a: Claim, b: Claim): number {
  const ta = a.created ?? Infinity;
  const tb = b.created ?? Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return cmp(a.entry.service.namespace, b.entry.service.namespace) || cmp(a.entry.service.name, b.entry.service.name);
}
