// The pipeline reads one way in the folder names: every import in src/ goes from a unit to a unit in
// a lower layer, never sideways or up, so no two top-level folders can import each other again.
// A unit is a top-level folder of src/, or a root file by its name (`cli.ts` joins `cli/`).

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const SRC = resolve(import.meta.dirname, '../../src');

/**
 * Lowest first. A unit may import units of lower layers only. To add a folder, place it here: the
 * layer says what it may use and what may use it.
 */
const LAYERS: readonly (readonly string[])[] = [
  // Leaves every layer shares: coded errors, the build's version.
  ['errors', 'version'],
  // The libbpf binding (it owns the address bytes it hands the kernel); the pure Kubernetes model.
  ['bpf', 'model'],
  // The ABI mirror and the maps interface over the binding, in model terms.
  ['datapath'],
  // Desired table -> map writes; the object sources; kube-proxy's health listeners.
  ['reconcile', 'sources', 'health'],
  // Load/attach/adopt and the sync loop.
  ['agent'],
  // Read-only views of what the agent holds, and the endpoint that serves them.
  ['debug'],
  // Prometheus metrics, read through the debug source.
  ['metrics'],
  // `socklb agent` wired together (agent, sources, health, debug, metrics); the namespace lab.
  ['daemon', 'lab'],
  ['demo'],
  ['cli'],
];

type ImportGraph = Map<string, Map<string, string[]>>;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** `agent` for src/agent/agent.ts, `cli` for src/cli.ts; undefined outside src/. */
function unitOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return undefined;
  const [first, ...rest] = rel.split(sep);
  return rest.length > 0 ? first : first!.replace(/\.ts$/, '');
}

/** Unit -> imported unit -> the `file: specifier` lines that make that edge. */
function importGraph(files: string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of files) {
    const from = unitOf(file)!;
    const edges = graph.get(from) ?? new Map<string, string[]>();
    graph.set(from, edges);
    // preProcessFile lists static imports and re-exports (type-only ones too) and import() calls.
    for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      // Packages, and the addon's .node binary that bpf/native.ts requires from build/, are no unit.
      if (!fileName.startsWith('.') || !fileName.endsWith('.ts')) continue;
      const to = unitOf(resolve(dirname(file), fileName)) ?? `(outside src: ${fileName})`;
      if (to === from) continue;
      const why = edges.get(to) ?? [];
      why.push(`${relative(SRC, file)}: ${fileName}`);
      edges.set(to, why);
    }
  }
  return graph;
}

/** Imports that go sideways, up, or to a unit LAYERS does not place. */
function againstOrder(graph: ImportGraph, layers: readonly (readonly string[])[]): string[] {
  const rank = new Map(layers.flatMap((units, i) => units.map((u) => [u, i] as const)));
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (!rank.has(from)) bad.push(`${from} is in no layer: place it in LAYERS`);
    for (const [to, why] of edges) {
      const a = rank.get(from);
      const b = rank.get(to);
      if (a === undefined) continue;
      if (b === undefined) bad.push(`${from} -> ${to}: ${to} is in no layer (${why[0]})`);
      else if (b >= a) bad.push(`${from} (layer ${a}) -> ${to} (layer ${b}): ${why.join(', ')}`);
    }
  }
  return bad;
}

/** Every set of units that import each other, directly or round a loop (strongly connected, Tarjan), sorted. */
function cycles(graph: ImportGraph): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) found.push(scc.sort().join(', '));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = importGraph(tsFiles(SRC));

test('no two top-level folders of src/ import each other, directly or round a loop', () => {
  assert.equal(cycles(graph), []);
});

test('every import in src/ goes to a lower layer of LAYERS', () => {
  assert.equal(againstOrder(graph, LAYERS), []);
});

test('every unit of src/ is placed in exactly one layer', () => {
  const placed = LAYERS.flat();
  assert.is(new Set(placed).size, placed.length, 'a unit is in two layers');
  for (const unit of graph.keys()) assert.ok(placed.includes(unit), `${unit} is in no layer`);
});

test('the checks catch what they guard against: a pair, a loop of three, an import up, an unplaced folder', () => {
  const g = (edges: [string, string][]): ImportGraph => {
    const out: ImportGraph = new Map();
    for (const [a, b] of edges) {
      if (!out.has(b)) out.set(b, new Map());
      out.set(a, (out.get(a) ?? new Map()).set(b, [`${a}/x.ts: ../${b}/y.ts`]));
    }
    return out;
  };
  assert.equal(
    cycles(
      g([
        ['debug', 'metrics'],
        ['metrics', 'debug'],
      ]),
    ),
    ['debug, metrics'],
  );
  assert.equal(
    cycles(
      g([
        ['bpf', 'datapath'],
        ['datapath', 'reconcile'],
        ['reconcile', 'bpf'],
        ['model', 'bpf'],
      ]),
    ),
    ['bpf, datapath, reconcile'],
  );
  assert.equal(
    cycles(
      g([
        ['agent', 'datapath'],
        ['datapath', 'bpf'],
      ]),
    ),
    [],
  );
  const layers = [['bpf'], ['datapath'], ['agent', 'debug']];
  assert.equal(
    againstOrder(
      g([
        ['agent', 'datapath'],
        ['datapath', 'bpf'],
      ]),
      layers,
    ),
    [],
  );
  assert.is(againstOrder(g([['bpf', 'datapath']]), layers).length, 1, 'an import up');
  assert.is(againstOrder(g([['agent', 'debug']]), layers).length, 1, 'an import sideways');
  assert.match(againstOrder(g([['agent', 'extra']]), layers).join('\n'), /extra is in no layer/);
  // The real graph is read from the files: agent imports datapath, and cli.ts counts as cli.
  assert.ok(graph.get('agent')?.has('datapath'));
  assert.ok(graph.get('cli')?.has('daemon'));
});

test.run();
