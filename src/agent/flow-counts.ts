// The XDP path's open flows per backend (lb_be_flows_v1), recounted from the connection tables.
// The programs count a flow up at its pick and down at its first FIN or RST, or when they delete
// its entry; an open entry the LRU evicts to make room takes its count with it unseen, and so does
// an entry another CPU's pick of the same tuple writes over. The recount bounds that drift: a
// backend's figure becomes the number of counted entries that name it, wherever the figure did
// not move while the tables were read (one that moved is left to the next pass).

import { endianness } from 'node:os';
import type { BpfMap } from '../bpf/binding.ts';
import { CtFlags, type Layout, Layouts, readS64, readU32, s64Bytes, u32Bytes } from '../datapath/abi.ts';

/** How often the agent recounts by default: an evicted flow's count lasts at most this long. */
export const DEFAULT_FLOW_RECOUNT_MS = 30_000;

/** Entries per batch read: a 32,768-flow table in eight system calls. */
const PAGE = 4096;

const LE = endianness() === 'LE';

function offsetOf(layout: Layout, field: string): number {
  const f = layout.fields.find((x) => x.name === field);
  if (!f) throw new Error(`${layout.name} has no field ${field}`);
  return f.offset;
}

/** Counted connection entries (values laid out as `layout`) per backend id, added into `into`. */
export function tallyCounted(values: Iterable<Buffer>, layout: Layout, into = new Map<number, number>()): Map<number, number> {
  const idAt = offsetOf(layout, 'backend_id');
  const flagsAt = offsetOf(layout, 'flags');
  for (const v of values) {
    if (!(v[flagsAt]! & CtFlags.counted)) continue;
    const id = LE ? v.readUInt32LE(idAt) : v.readUInt32BE(idAt);
    into.set(id, (into.get(id) ?? 0) + 1);
  }
  return into;
}

/** The corrections to write: backend id -> its tally, where the figure was steady and differs. */
export function corrections(
  before: ReadonlyMap<number, bigint>,
  after: ReadonlyMap<number, bigint>,
  tally: ReadonlyMap<number, number>,
): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const id of new Set([...after.keys(), ...tally.keys()])) {
    const now = after.get(id) ?? 0n;
    const want = BigInt(tally.get(id) ?? 0);
    if ((before.get(id) ?? 0n) === now && now !== want) out.set(id, want);
  }
  return out;
}

function* values(map: BpfMap): Generator<Buffer> {
  for (const [, v] of map.entries(PAGE)) yield v;
}

/** The figures that are not 0, by backend id. */
function nonZero(flows: BpfMap): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const [k, v] of flows.entries(PAGE)) {
    const n = readS64(v);
    if (n !== 0n) out.set(readU32(k), n);
  }
  return out;
}

export interface RecountResult {
  /** Counted flows found in the tables. */
  flows: number;
  /** Backends whose figure was rewritten. */
  corrected: number;
}

/** One recount: reads both connection tables and rewrites the figures that drifted. */
export function recountFlows(maps: { ct4: BpfMap; ct6: BpfMap; flows: BpfMap }): RecountResult {
  const before = nonZero(maps.flows);
  const tally = tallyCounted(values(maps.ct6), Layouts.lb6Ct, tallyCounted(values(maps.ct4), Layouts.lb4Ct));
  const after = nonZero(maps.flows);
  const fix = corrections(before, after, tally);
  for (const [id, n] of fix) maps.flows.update(u32Bytes(id), s64Bytes(n));
  let flows = 0;
  for (const n of tally.values()) flows += n;
  return { flows, corrected: fix.size };
}
