// Building and ordering ObjectProblems, so every module reports them the same way.

import type { ErrorCode, ObjectProblem } from '../errors.ts';

/** Who a problem is about: the object's kind and, as far as they can be read, namespace and name. */
export interface ObjectRef {
  kind: string;
  namespace: string;
  name: string;
}

export function problem(ref: ObjectRef, field: string, code: ErrorCode, message: string): ObjectProblem {
  return { kind: ref.kind, namespace: ref.namespace, name: ref.name, field, code, message };
}

/**
 * Orders problems by object (namespace, name, kind), keeping the order they were found in within one
 * object (fields in document order), so a table does not depend on the order objects arrived in.
 */
export function sortProblems(problems: ObjectProblem[]): ObjectProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => cmp(a.p.namespace, b.p.namespace) || cmp(a.p.name, b.p.name) || cmp(a.p.kind, b.p.kind) || a.i - b.i)
    .map((x) => x.p);
}

/** Plain code-unit string comparison (not locale dependent, so stable across hosts). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Longest value a message quotes whole; a huge one would make every log line and debug page huge. */
const SHOW_MAX = 200;

/** Describes a value for a message: strings quoted, everything else as JSON, cut to SHOW_MAX characters. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length <= SHOW_MAX ? text : `${text.slice(0, SHOW_MAX)}... (${text.length} characters)`;
}

/** True for a plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
