// How a Service picks its backends: the scheduler annotations read and checked, and the weighted
// round-robin sequence. Pure.

import { ErrorCodes, type ObjectProblem } from '../errors.ts';
import { parseIp } from './ip.ts';
import { MAGLEV_TABLE_SIZES } from './maglev.ts';
import { isRecord, type ObjectRef, problem, show } from './problem.ts';

export const ANNOTATION_SCHEDULER = 'socklb.io/scheduler';
export const ANNOTATION_WEIGHTS = 'socklb.io/weights';
export const ANNOTATION_MAGLEV_TABLE_SIZE = 'socklb.io/maglev-table-size';

/** IPVS's names where IPVS has the scheduler; the order is enum lb_scheduler's (src/datapath/abi.ts). */
export const SCHEDULERS = ['random', 'rr', 'wrr', 'sh', 'maglev', 'lc', 'wlc', 'sed', 'nq'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

/** Schedulers whose kernel pick goes through a per-service table the agent builds. */
export const TABLE_SCHEDULERS: ReadonlySet<SchedulerName> = new Set(['wrr', 'maglev', 'wlc', 'sed', 'nq']);

/** Schedulers that compare the backends' open connections (sockets counted by the socket hooks, flows by XDP). */
export const LEAST_CONNECTION_SCHEDULERS: ReadonlySet<SchedulerName> = new Set(['lc', 'wlc', 'sed', 'nq']);

/** Schedulers whose table holds each slot's weight before a weighted sequence (weightTable). */
export const WEIGHT_TABLE_SCHEDULERS: ReadonlySet<SchedulerName> = new Set(['wlc', 'sed', 'nq']);

/**
 * The table of a wlc, sed or nq service over n slots: positions 0 to n - 1 hold slot i + 1's
 * weight + 1 (0 would read as "no table"), then the wrr sequence of slot numbers, from which the
 * kernel draws its two candidates in proportion to weight before comparing their connections per
 * weight (bpf/lib/lb.h, lb_least_conn_slot).
 */
export function weightTable(weights: readonly number[]): Uint16Array {
  const sequence = wrrSequence(weights);
  const table = new Uint16Array(weights.length + sequence.length);
  weights.forEach((w, i) => {
    table[i] = w + 1;
  });
  sequence.forEach((backend, p) => {
    table[weights.length + p] = backend + 1;
  });
  return table;
}

/** IPVS takes weights up to 65,535; 1,000 is plenty for shares and keeps a wrr sequence short. */
export const MAX_WEIGHT = 1000;

/** What a Service's annotations ask for; an absent field falls back to the node's default. */
export interface Scheduling {
  scheduler?: SchedulerName;
  /** Endpoint address (canonical) -> weight; endpoints not named weigh 1. */
  weights?: Readonly<Record<string, number>>;
  maglevTableSize?: number;
}

/** Reads a scheduler name (annotation or --scheduler); the error says what is allowed. */
export function parseScheduler(text: unknown): { value: SchedulerName } | { error: string } {
  if (typeof text === 'string' && (SCHEDULERS as readonly string[]).includes(text)) return { value: text as SchedulerName };
  return { error: `must be one of ${SCHEDULERS.join(', ')}, got ${show(text)}` };
}

/** Reads a Maglev table size (annotation or --maglev-table-size): one of the allowed primes. */
export function parseMaglevTableSize(text: unknown): { value: number } | { error: string } {
  const n = typeof text === 'string' && /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if ((MAGLEV_TABLE_SIZES as readonly number[]).includes(n)) return { value: n };
  return { error: `must be one of the primes ${MAGLEV_TABLE_SIZES.join(', ')}, got ${show(text)}` };
}

/** Reads `10.244.1.5=3,10.244.2.7=1`: endpoint addresses with integer weights 0-MAX_WEIGHT. */
export function parseWeights(text: unknown): { value: Record<string, number> } | { error: string } {
  if (typeof text !== 'string') return { error: `must be a string like "10.244.1.5=3,10.244.2.7=1", got ${show(text)}` };
  const weights: Record<string, number> = {};
  const items = text.split(',').map((s) => s.trim());
  for (const [i, item] of items.entries()) {
    if (item === '' && items.length === 1) break;
    const m = /^([^=\s]+)\s*=\s*(\d+)$/.exec(item);
    const ip = m ? parseIp(m[1]) : undefined;
    if (!m || !ip) return { error: `entry ${i + 1} ${show(item)} is not ADDRESS=WEIGHT` };
    const weight = Number(m[2]);
    if (weight > MAX_WEIGHT) return { error: `entry ${i + 1} ${show(item)}: weight must be 0-${MAX_WEIGHT}` };
    if (ip.address in weights) return { error: `entry ${i + 1} ${show(item)} names ${ip.address} again` };
    weights[ip.address] = weight;
  }
  return { value: weights };
}

/**
 * The scheduling a Service's annotations ask for. A bad value is a problem naming the annotation
 * that rejects the whole Service: the agent then keeps its last accepted version (src/agent/last-good.ts),
 * so a typo never silently turns a maglev Service into a random one.
 */
export function readScheduling(annotations: unknown, who: ObjectRef, problems: ObjectProblem[]): Scheduling | undefined {
  if (!isRecord(annotations)) return undefined;
  const out: Scheduling = {};
  const field = (name: string) => `metadata.annotations[${JSON.stringify(name)}]`;
  const read = <T>(name: string, parse: (v: unknown) => { value: T } | { error: string }, set: (v: T) => void) => {
    if (!(name in annotations)) return;
    const r = parse(annotations[name]);
    if ('error' in r) problems.push(problem(who, field(name), ErrorCodes.INVALID_FIELD, r.error));
    else set(r.value);
  };
  read(ANNOTATION_SCHEDULER, parseScheduler, (v) => {
    out.scheduler = v;
  });
  read(ANNOTATION_WEIGHTS, parseWeights, (v) => {
    if (Object.keys(v).length > 0) out.weights = v;
  });
  read(ANNOTATION_MAGLEV_TABLE_SIZE, parseMaglevTableSize, (v) => {
    out.maglevTableSize = v;
  });
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Longest weighted round-robin sequence: beyond it weights are scaled down (a table is one map). */
export const MAX_WRR_SEQUENCE = 65536;

/**
 * The turns each backend gets in one wrr cycle: its weight divided by the weights' gcd and, when
 * the cycle would pass MAX_WRR_SEQUENCE, scaled down (every backend with weight keeping one turn,
 * so the sum stays within the limit).
 */
export function wrrTurns(weights: readonly number[]): number[] {
  let g = 0;
  for (const w of weights) g = gcd(g, w);
  const turns = g > 1 ? weights.map((w) => w / g) : [...weights];
  const total = turns.reduce((a, b) => a + b, 0);
  if (total <= MAX_WRR_SEQUENCE) return turns;
  const room = MAX_WRR_SEQUENCE - turns.length;
  return turns.map((w) => (w === 0 ? 0 : Math.max(1, Math.floor((w * room) / total))));
}

/**
 * One cycle of smooth weighted round robin (nginx's): each backend appears wrrTurns times, spread
 * out rather than in runs, so consecutive connects alternate even while weights are unequal.
 * Backend indexes.
 */
export function wrrSequence(weights: readonly number[]): Uint16Array {
  const turns = wrrTurns(weights);
  const total = turns.reduce((a, b) => a + b, 0);
  const sequence = new Uint16Array(total);
  const current = new Float64Array(turns.length);
  for (let step = 0; step < total; step++) {
    let best = -1;
    for (let i = 0; i < turns.length; i++) {
      current[i]! += turns[i]!;
      if (turns[i]! > 0 && (best < 0 || current[i]! > current[best]!)) best = i;
    }
    current[best]! -= total;
    sequence[step] = best;
  }
  return sequence;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
