// Runs a fuzz case (test/support/fuzz.ts) through the manifest source and through the fake API server
// with the real KubernetesSource informers, then through desired() and a reconcile into MemoryMaps, and
// checks the outcome: nothing thrown or left unhandled, every bad object named with its field, every
// good service served exactly, and the maps holding exactly the table.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { type Capacity, MemoryMaps } from '../../src/datapath/maps.ts';
import { ErrorCodes, type ObjectProblem } from '../../src/errors.ts';
import { desired } from '../../src/model/desired.ts';
import { DesiredState } from '../../src/model/desired-state.ts';
import { runSteps } from '../../src/model/steps.ts';
import { endpointKey } from '../../src/model/types.ts';
import { Reconciler } from '../../src/reconcile/reconciler.ts';
import { KubernetesSource } from '../../src/sources/kubernetes.ts';
import { type ManifestSnapshot, ManifestSource } from '../../src/sources/manifest.ts';
import { FakeApiServer, type KubeObject } from './fake-apiserver.ts';
import { type FuzzCase, type FuzzItem, MAX_BACKENDS } from './fuzz.ts';

export type FuzzPath = 'manifest' | 'apiserver';

const NODE = { name: 'node-a' };
const CAPACITY: Capacity = { services: 8192, slots: 1 << 17, backends: 1 << 17, serviceIds: 8192, backendIds: 1 << 17 };
/** A problem message longer than this is a log line nobody can read (a huge value quoted whole). */
export const MAX_MESSAGE = 1000;

interface Outcome {
  problems: ObjectProblem[];
  /** Frontend key -> sorted `address/port` backends, from the table. */
  table: Map<string, { service: string; backends: string[] }>;
  /** The same, read back from the maps after a reconcile. */
  maps: Map<string, string[]>;
  reconcileProblems: string[];
  /** Where each item's first document is (manifest only), for `Document` problems. */
  docName?: (item: FuzzItem, doc: number) => string;
}

export interface CaseResult {
  failures: string[];
  ms: number;
}

/** Records what would otherwise kill the process (an uncaught exception or an unhandled rejection). */
function captureCrashes(): { crashes: string[]; dispose(): void } {
  const crashes: string[] = [];
  const onError = (err: unknown): void => {
    crashes.push(`crash: ${(err as Error)?.stack ?? String(err)}`);
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    crashes,
    dispose() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}

/** Runs one case through one path and returns what failed (empty: all held). */
export async function runCase(c: FuzzCase, via: FuzzPath): Promise<CaseResult> {
  const started = Date.now();
  const capture = captureCrashes();
  const failures: string[] = [];
  try {
    const out = via === 'manifest' ? await viaManifest(c, failures) : await viaApiServer(c, failures);
    // Let anything a source left running (a rejected promise, a late timer) surface before judging.
    await new Promise((r) => setTimeout(r, 20));
    if (out) failures.push(...check(c, via, out));
  } catch (err) {
    failures.push(`crash: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    capture.dispose();
  }
  return { failures: [...capture.crashes, ...failures], ms: Date.now() - started };
}

/** The case as one manifest: each item's documents in turn, truncated ones at the end. */
export function manifestText(c: FuzzCase): { text: string; first: Map<FuzzItem, number> } {
  const ordered = [...c.items.filter((i) => !i.last), ...c.items.filter((i) => i.last)];
  const first = new Map<FuzzItem, number>();
  const docs: string[] = [];
  for (const item of ordered) {
    first.set(item, docs.length);
    for (const d of item.docs) docs.push(typeof d === 'string' ? d : stringify(d, { lineWidth: 0 }));
  }
  const text = docs.join('---\n');
  return { text: c.crlf ? `\uFEFF${text.replace(/\n/g, '\r\n')}` : text, first };
}

async function viaManifest(c: FuzzCase, failures: string[]): Promise<Outcome | undefined> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-fuzz-'));
  try {
    const file = path.join(dir, 'fuzz.yaml');
    const { text, first } = manifestText(c);
    fs.writeFileSync(file, text);
    const snapshots: ManifestSnapshot[] = [];
    const source = new ManifestSource(file, {
      onChange: (s) => snapshots.push(s),
      onError: (e) => failures.push(`manifest source error: ${e.message}`),
    });
    await source.start();
    await source.stop();
    const snap = snapshots[0];
    if (!snap) {
      failures.push('manifest source gave no snapshot');
      return undefined;
    }
    return { ...evaluate(snap.services, snap.slices, snap.problems), docName: (item, doc) => `${file}#${first.get(item)! + doc}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function viaApiServer(c: FuzzCase, failures: string[]): Promise<Outcome | undefined> {
  const objects = c.items.filter((i) => !i.manifestOnly).flatMap((i) => i.docs as KubeObject[]);
  const api = new FakeApiServer();
  await api.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-fuzz-'));
  let source: KubernetesSource | undefined;
  try {
    // Half arrive in the first (paged) list, half as watch events: the two paths decode differently.
    const half = Math.floor(objects.length / 2);
    for (const o of objects.slice(0, half)) api.add(o);
    source = new KubernetesSource({
      nodeName: NODE.name,
      kubeconfigPath: api.writeKubeconfig(dir),
      pageSize: 7,
      backoff: { initialMs: 20, maxMs: 200 },
      onChange: () => {},
      onError: (e) => failures.push(`kubernetes source error: ${e.message}`),
    });
    if (!(await within(source.start(), 15_000))) {
      failures.push('kubernetes source did not sync within 15 s');
      return undefined;
    }
    for (const o of objects.slice(half)) api.add(o);
    const want = { services: objects.filter((o) => o.kind === 'Service').length, slices: objects.length };
    want.slices -= want.services;
    const s = source;
    const all = (): boolean => {
      const snap = s.snapshot();
      return snap.services.length === want.services && snap.slices.length === want.slices;
    };
    const end = Date.now() + 15_000;
    while (!all() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const snap = source.snapshot();
    if (!all()) {
      failures.push(
        `kubernetes source holds ${snap.services.length}/${want.services} services, ${snap.slices.length}/${want.slices} slices after 15 s`,
      );
    }
    return evaluate(snap.services, snap.slices, []);
  } finally {
    await source?.stop();
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One object per metadata namespace/name, the later one. */
function lastById<T>(objects: T[]): T[] {
  const meta = (o: unknown) => ((o as { metadata?: unknown } | null)?.metadata ?? {}) as { namespace?: unknown; name?: unknown };
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  return [...new Map(objects.map((o) => [`${text(meta(o).namespace)}/${text(meta(o).name)}`, o])).values()];
}

function evaluate(services: V1Service[], slices: V1EndpointSlice[], sourceProblems: ObjectProblem[]): Outcome {
  const d = desired(services, slices, NODE, { maxBackendsPerService: MAX_BACKENDS });
  // The agent keeps a DesiredState across syncs: a half, then all, must give the table a fresh call
  // gives for the same objects (one per namespace/name, the later, as the state keeps them).
  const unique = { services: lastById(services), slices: lastById(slices) };
  const state = new DesiredState(NODE, { maxBackendsPerService: MAX_BACKENDS });
  state.replaceAll(unique.services.slice(0, unique.services.length >> 1), unique.slices.slice(0, unique.slices.length >> 1));
  runSteps(state.flush());
  state.replaceAll(unique.services, unique.slices);
  runSteps(state.flush());
  const fresh = desired(unique.services, unique.slices, NODE, { maxBackendsPerService: MAX_BACKENDS });
  const kept = state.table();
  const cacheDiffers = JSON.stringify([kept.frontends, kept.healthChecks]) !== JSON.stringify([fresh.frontends, fresh.healthChecks]);
  const table = new Map<string, { service: string; backends: string[] }>();
  for (const f of d.frontends) {
    table.set(endpointKey(f.frontend), {
      service: `${f.service.namespace}/${f.service.name}`,
      backends: f.backends.map((b) => `${b.address}/${b.port}`).sort(),
    });
  }
  const maps = new MemoryMaps(CAPACITY);
  const reconciler = new Reconciler(maps);
  const result = reconciler.reconcile(d.frontends);
  const again = reconciler.reconcile(d.frontends);
  const dump = maps.dump();
  const backends = new Map(dump.backends.map((b) => [b.id, b.backend]));
  const slots = new Map(dump.slots.map((s) => [`${s.serviceId}/${s.slot}`, s.backendId]));
  const programmed = new Map<string, string[]>();
  for (const s of dump.services) {
    const list: string[] = [];
    for (let slot = 1; slot <= s.entry.backendCount; slot++) {
      const b = backends.get(slots.get(`${s.entry.serviceId}/${slot}`) ?? 0);
      list.push(b ? `${b.address}/${b.port}` : `<slot ${slot} missing>`);
    }
    programmed.set(endpointKey(s.frontend), list.sort());
  }
  return {
    problems: [...sourceProblems, ...d.problems],
    table,
    maps: programmed,
    reconcileProblems: [
      ...result.problems.map((p) => `${p.key}: ${p.message}`),
      ...(again.writes > 0 ? [`the same table applied again wrote ${again.writes} times`] : []),
      ...(cacheDiffers ? ['the desired state fed twice gave another table than a fresh desired()'] : []),
    ],
  };
}

const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

function brief(list: readonly string[]): string {
  return list.length > 6 ? `[${list.slice(0, 3).join(', ')} ... ${list.length} in all]` : `[${list.join(', ')}]`;
}

/** Every way the outcome differs from what the case demands, one line each. */
export function check(c: FuzzCase, via: FuzzPath, out: Outcome): string[] {
  const failures: string[] = [];
  const items = c.items.filter((i) => via === 'manifest' || !i.manifestOnly);
  const fail = (item: FuzzItem | undefined, text: string): void => {
    failures.push(item ? `${item.service.namespace}/${item.service.name} (${item.label}): ${text}` : text);
  };
  for (const p of out.problems) {
    const whole = p.code === ErrorCodes.MANIFEST_SYNTAX || p.code === ErrorCodes.MANIFEST_KIND;
    if (p.name === '' || (p.field === '' && !whole)) fail(undefined, `problem without an object name or field: ${JSON.stringify(p)}`);
    if (p.message.length > MAX_MESSAGE) fail(undefined, `problem message of ${p.message.length} chars for ${p.kind} ${p.name} ${p.field}`);
  }
  for (const [key, t] of out.table) {
    const m = out.maps.get(key);
    if (!m) fail(undefined, `${key} (${t.service}) is in the table but not in the maps`);
    else if (!same(m, t.backends)) fail(undefined, `${key} maps hold ${brief(m)}, the table ${brief(t.backends)}`);
  }
  for (const key of out.maps.keys()) if (!out.table.has(key)) fail(undefined, `${key} is in the maps but not in the table`);
  for (const p of out.reconcileProblems) fail(undefined, `reconcile: ${p}`);

  const byService = new Map<string, string[]>();
  for (const [key, t] of out.table) {
    const list = byService.get(t.service) ?? [];
    list.push(key);
    byService.set(t.service, list);
  }
  for (const item of items) {
    const id = `${item.service.namespace}/${item.service.name}`;
    const served = (byService.get(id) ?? []).sort();
    const named = out.problems.filter(
      (p) =>
        p.namespace === item.service.namespace &&
        ((p.kind === 'Service' && p.name === item.service.name) || (p.kind === 'EndpointSlice' && item.slices.includes(p.name))),
    );
    for (const w of item.problems) {
      const name = w.kind === 'Document' ? (out.docName?.(item, w.doc ?? 0) ?? '?') : w.name;
      const found = out.problems.some(
        (p) => p.kind === w.kind && p.namespace === w.namespace && p.name === name && p.field === w.field && p.code === w.code,
      );
      if (!found) {
        const near = out.problems.filter((p) => p.name === name || p.name === '').map((p) => `${p.code} ${p.kind} ${p.name} ${p.field}`);
        fail(item, `no ${w.code} for ${w.kind} ${w.namespace}/${name} field ${JSON.stringify(w.field)}; got [${near.join('; ')}]`);
      }
    }
    const serve = item.serve;
    if (serve === 'none') {
      if (served.length > 0) fail(item, `must not be served, but has ${served.join(', ')}`);
    } else if (serve === 'either') {
      if (served.length === 0 && !named.some((p) => p.kind === 'Service')) fail(item, 'neither served nor named by a problem');
    } else {
      const want = Object.keys(serve.exact).sort();
      if (!same(served, want)) fail(item, `frontends ${brief(served)}, want ${brief(want)}`);
      for (const key of want) {
        const got = out.maps.get(key);
        const expected = serve.exact[key]!;
        if (got && !same(got, expected)) fail(item, `${key} programmed with ${brief(got)}, want ${brief(expected)}`);
      }
      if (item.problems.length === 0 && named.length > 0) {
        fail(
          item,
          `a good object is named by a problem: ${named.map((p) => `${p.code} ${p.field} ${p.message.slice(0, 120)}`).join('; ')}`,
        );
      }
    }
  }
  return failures;
}
