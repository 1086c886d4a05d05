// The fast manifest reader (src/sources/manifest-fast.ts) against the `yaml` package it stands in
// for: over fixtures and generated manifests it must give every document's value and index exactly
// as `yaml` does, and step aside, so that `yaml` names the error, whenever some document does not parse.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Composer, Parser } from 'yaml';
import { runSteps } from '../../../src/model/steps.ts';
import { parseManifest } from '../../../src/sources/manifest.ts';
import { fastDocuments } from '../../../src/sources/manifest-fast.ts';
import { CI_OPTIONS, generateCase } from '../../support/fuzz.ts';
import { manifestText } from '../../support/fuzz-run.ts';
import { rng } from '../../support/rng.ts';

/** Each document's value as the `yaml` path reads it, or undefined when some document does not parse. */
function yamlDocuments(text: string): unknown[] | undefined {
  const values: unknown[] = [];
  for (const doc of new Composer({ merge: true }).compose(new Parser().parse(text))) {
    if (doc.errors.length > 0) return undefined;
    try {
      values.push(doc.toJS());
    } catch {
      return undefined;
    }
  }
  return values;
}

/** A value with its key order and number spelling made visible (-0, NaN), for a strict deep-equal. */
function shape(value: unknown): unknown {
  if (typeof value === 'number') return `number ${Object.is(value, -0) ? '-0' : String(value)}`;
  if (Array.isArray(value)) return value.map(shape);
  if (value !== null && typeof value === 'object') return Object.entries(value).map(([k, v]) => [k, shape(v)]);
  return value;
}

/** The same text with a byte-order mark, which `yaml` ignores and which makes parseManifest use `yaml` alone. */
const yamlOnly = (text: string): string => `\uFEFF${text}`;

function assertSameAsYaml(text: string, what: string): void {
  const fast = runSteps(fastDocuments(text));
  assert.ok(fast !== undefined, `${what}: the fast reader stepped aside`);
  assert.equal(shape(fast), shape(yamlDocuments(text)), `${what}: values differ`);
  assert.equal(parseManifest(text, 'm.yaml'), parseManifest(yamlOnly(text), 'm.yaml'), `${what}: ParsedManifest differs`);
}

// ---- A seeded generator of valid manifests in the styles people write -----------------------------

/** Plain scalars the two schemas could read differently: YAML 1.1 forms, odd numbers, nulls, dates. */
const TRICKY = [
  '0x50',
  '0X50',
  '0o17',
  '017',
  '09',
  '0b1',
  '1_000',
  '+12',
  '-0',
  '12345678901234567890',
  '1e3',
  '1.',
  '.5',
  '-.5',
  '1.5e-3',
  '.inf',
  '-.Inf',
  '.NaN',
  '~',
  'null',
  'NULL',
  'yes',
  'no',
  'on',
  'off',
  'y',
  'True',
  'FALSE',
  'tRue',
  '2001-12-14',
  '2024-01-01T00:00:00Z',
  '12:30:45',
  '1:20',
  '+0x10',
  'http://a/b#c',
  'a b  c',
  '-x',
  '?y',
  "'it''s'",
  '"tab\\there \\u00e9\\x41 \\N\\_\\/"',
  '"a: b"',
  "''",
  '""',
];

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function labels(r: () => number, indent: string): string {
  const n = 1 + Math.floor(r() * 4);
  return Array.from({ length: n }, (_, i) => `${indent}k${i}: ${pick(r, TRICKY)}${r() < 0.2 ? '  # why' : ''}\n`).join('');
}

const BLOCK_SCALARS = ['|', '|-', '|+', '>', '>-', '>+', '|2'];

function serviceDoc(r: () => number, i: number): string {
  const ip = `10.96.${i >> 8}.${i & 255}`;
  switch (Math.floor(r() * 5)) {
    case 0:
      // Block style, with comments, odd labels and a block scalar annotation.
      return `# service ${i}
apiVersion: v1
kind: Service
metadata:
  name: s${i}
  labels:
${labels(r, '    ')}  annotations:
    note: ${pick(r, BLOCK_SCALARS)}
      first line
        more indented

      after a blank ${pick(r, TRICKY)}
spec:
  clusterIP: ${ip}   # a comment
  ports:
  - name: http
    port: 80
    targetPort: ${pick(r, ['8080', 'http', '"8080"'])}
`;
    case 1:
      // Flow style over several lines, quoted strings.
      return `{apiVersion: v1, kind: Service,
 metadata: {name: "s${i}", labels: {a: '${pick(r, ['x', "it''s", 'b: c'])}', b: ${pick(r, TRICKY)}}},
 spec: {clusterIP: '${ip}', ports: [{name: http, port: 80}, {port: 0x1bb, name: "https"}]}}
`;
    case 2:
      // JSON, as `kubectl get -o json` per document.
      return `${JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}` }, spec: { clusterIP: ip, ports: [{ port: 80 }] } })}\n`;
    case 3:
      // Anchors, aliases and merge keys, one source and a list of them.
      return `apiVersion: v1
kind: Service
base: &base
  type: ClusterIP
  ports: &ports [{name: http, port: 80}]
extra: &extra {type: NodePort, sessionAffinity: None}
metadata: {name: s${i}, labels: &l {app: s${i}}}
spec:
  <<: ${r() < 0.5 ? '*base' : '[*base, *extra]'}
  clusterIP: ${ip}
  selector: *l
  ${r() < 0.5 ? 'type: LoadBalancer' : 'other: *ports'}
`;
    default:
      // A List of objects in block style with the item on the dash line.
      return `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: s${i}
    annotations: {text: "line one\\nline two", empty: , tricky: ${pick(r, TRICKY)}}
  spec: {clusterIP: ${ip}, ports: [{port: 80}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: s${i}-1, labels: {kubernetes.io/service-name: s${i}}}
  addressType: IPv4
  endpoints:
  - addresses: [10.244.${i >> 8}.${i & 255}]
    conditions: {ready: true}
`;
  }
}

function generated(seed: number): string {
  const r = rng(seed);
  const parts: string[] = [];
  // What comes before the first document: nothing, a `---`, comments, or comments and a `---`.
  parts.push(pick(r, ['', '---\n', '# header\n\n', '# header\n---\n', '\n  \n---  \n']));
  const n = 3 + Math.floor(r() * 20);
  for (let i = 0; i < n; i++) {
    parts.push(serviceDoc(r, seed * 100 + i));
    // Empty documents between, a comment-only one, markers with trailing spaces.
    parts.push(pick(r, ['---\n', '---\n', '---   \n', '---\n---\n', '---\n# nothing here\n---\n']));
  }
  // A trailing `---` (an empty last document) or none.
  let text = parts.join('');
  if (r() < 0.5) text = text.replace(/---[ \n]*$/, '');
  return r() < 0.3 ? text.replaceAll('\n', '\r\n') : text;
}

// ---- Tests ---------------------------------------------------------------------------------------

test('the fixtures (golden cases, deploy manifests) read the same as with `yaml`', () => {
  const root = path.resolve(import.meta.dirname, '../../..');
  const files = [
    ...fs.readdirSync(path.join(root, 'test/golden')).map((f) => `test/golden/${f}`),
    'deploy/daemonset.yaml',
    'deploy/rbac.yaml',
    'deploy/vagrant/smoke.yaml',
  ].filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 10, files.join(' '));
  for (const f of files) assertSameAsYaml(fs.readFileSync(path.join(root, f), 'utf8'), f);
});

test('generated manifests (comments, empty documents, merge keys, block scalars, flow, CRLF) read the same as with `yaml`', () => {
  for (let seed = 1; seed <= 80; seed++) assertSameAsYaml(generated(seed), `seed ${seed}`);
});

test('scalars the schemas could read differently read as `yaml` reads them, as values and as keys', () => {
  // Values in one document, keys one to a document (`~` and `null` are the same key).
  const text = `${TRICKY.map((s, i) => `v${i}: ${s}\n`).join('')}---\n${TRICKY.map((s) => `${s}: x\n`).join('---\n')}`;
  const values = runSteps(fastDocuments(text));
  assert.equal(shape(values), shape(yamlDocuments(text)));
  // The ones js-yaml's default schema would read as YAML 1.1 (timestamps, yes/no, 0b, 1_000) stay strings.
  const first = values?.[0] as Record<string, unknown>;
  for (const s of ['2001-12-14', 'yes', 'off', '0b1', '1_000']) assert.is(first[`v${TRICKY.indexOf(s)}`], s);
  // A null key is '' for `yaml` (js-yaml's own map would say 'null').
  assert.equal(runSteps(fastDocuments('~: a\n---\nnull: b\n')), [{ '': 'a' }, { '': 'b' }]);
});

test('fuzz-generated manifests: the same values when every document parses, `yaml` alone when one does not', () => {
  const syntax = new Set(['manifest/alias-bomb', 'manifest/deep-nesting', 'manifest/truncated']);
  for (const seed of [21, 22]) {
    const c = generateCase(seed, { ...CI_OPTIONS, items: 60, manyEndpoints: 0, hugeBytes: 4096 });
    // Deep nesting overflows the stack at a column that depends on the caller's stack: not comparable.
    c.items = c.items.filter((i) => i.label !== 'manifest/deep-nesting');
    const whole = manifestText(c).text;
    assert.is(runSteps(fastDocuments(whole)), undefined, `seed ${seed}: a case with every mutation has a broken document`);
    assert.equal(parseManifest(whole, 'f.yaml'), parseManifest(yamlOnly(whole), 'f.yaml'));
    c.items = c.items.filter((i) => !syntax.has(i.label));
    assertSameAsYaml(manifestText(c).text, `seed ${seed} without syntax mutations`);
  }
});

/** Nesting past js-yaml's limit of 100, well within `yaml`'s. */
const DEEP = `${'['.repeat(150)}${']'.repeat(150)}`;

test('documents js-yaml refuses but `yaml` takes are read by `yaml`: collection keys, control characters, deep nesting', () => {
  for (const doc of ['? [a, b]\n: c\n', 'a: "\u0001"\n', 'a: b\u007fc\n', '1: a\n"1": b\n', `a: ${DEEP}\n`]) {
    assertSameAsYaml(`x: 1\n---\n${doc}---\ny: 2\n`, JSON.stringify(doc));
  }
});

test('one-line JSON documents read as `yaml` reads them: escapes, colons in strings, odd characters, what JSON.parse refuses', () => {
  const docs = [
    '{"a": "x\\"y:z", "b\\\\": "::1", "c": {"d": [1, {"e": null}, -0, 1e400, 0.1]}, "f": []}',
    '{"__proto__": {"x": 1}, "k": "\u007f\u0085\u2028\ufffe", "u": "\\u00e9\\ud83d\\ude00"}',
    '{\t"tab": 1}',
    '{"a": 01}',
    `{"deep": ${DEEP}}`,
    '{"a": 1} # a comment',
  ];
  assertSameAsYaml(`${docs.join('\n---\n')}\n`, 'JSON lines');
});

function withBroken(broken: string): string {
  const svc = (i: number): string =>
    `apiVersion: v1\nkind: Service\nmetadata:\n  name: s${i}\nspec:\n  clusterIP: 10.96.0.${i + 1}\n  ports: [{name: http, port: 80}]\n`;
  return [...Array.from({ length: 20 }, (_, i) => svc(i)), broken, ...Array.from({ length: 20 }, (_, i) => svc(20 + i))].join('---\n');
}

test('a broken document after many good ones: the same MANIFEST_SYNTAX message as before, the others still apply', () => {
  const cases: [string, string][] = [
    [
      'apiVersion: v1\nkind: Service\nmetadata: {name: broken\n',
      'line 164, column 1: Flow map in block collection must be sufficiently indented and end with a }',
    ],
    ['apiVersion: v1\nkind: Service\nmetadata:\n  name: dup\n  name: again\n', 'line 165, column 3: Map keys must be unique'],
    // What js-yaml would read but `yaml` refuses: a long implicit key, many alias expansions, a bare CR line end.
    [
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: long\n  annotations:\n    ${'k'.repeat(1100)}: v\n`,
      'line 166, column 5: The : indicator must be at most 1024 chars after the start of an implicit block mapping key',
    ],
    [
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: many\n  labels: &l {a: b}\nspec:\n${Array.from({ length: 101 }, (_, i) => `  x${i}: *l`).join('\n')}\n`,
      'Excessive alias count indicates a resource exhaustion attack',
    ],
    // A repeated key in a JSON line, which JSON.parse would take.
    ['{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j", "name": "k"}}\n', 'line 161, column 67: Map keys must be unique'],
  ];
  for (const [broken, message] of cases) {
    const m = parseManifest(withBroken(broken), 'b.yaml');
    assert.is(m.services.length, 40, message);
    assert.is(m.complete, false);
    assert.equal(
      m.problems.map((p) => [p.code, p.name, p.message]),
      [['SOCKLB_ERR_MANIFEST_SYNTAX', 'b.yaml#20', message]],
    );
  }
  // Nested too deep for `yaml` (its stack overflows, at a column that varies), not for JSON.parse.
  const deep = parseManifest(
    withBroken(`{"apiVersion": "v1", "kind": "Service", "x": ${'['.repeat(20_000)}${']'.repeat(20_000)}}\n`),
    'b.yaml',
  );
  assert.equal(
    deep.problems.map((p) => [p.code, p.name]),
    [['SOCKLB_ERR_MANIFEST_SYNTAX', 'b.yaml#20']],
  );
  const cr = parseManifest(withBroken('apiVersion: v1\rkind: Service\rmetadata: {name: cr}\r'), 'b.yaml');
  assert.equal(
    cr.problems.map((p) => p.message),
    ['line 161, column 13: Nested mappings are not allowed in compact mappings'],
  );
});

test('texts the split cannot take exactly go to `yaml` whole: directives, `...`, content after `---`, a tab after it', () => {
  for (const text of ['%YAML 1.2\n---\na: 1\n', 'a: 1\n...\n---\nb: 2\n', '--- {a: 1}\n---\nb: 2\n', '---\t\na: 1\n', '\uFEFFa: 1\n']) {
    assert.is(runSteps(fastDocuments(text)), undefined, JSON.stringify(text));
  }
  assert.equal(runSteps(fastDocuments('----\n---\nb: 2\n')), undefined, 'a line of four dashes is content, not a marker');
});

test('document indexes: comments before the first `---` are no document; every `---` after starts one', () => {
  for (const text of [
    '# c\n---\na: 1\n',
    '\n\n---\na: 1\n',
    '---\na: 1\n',
    'a: 1\n---\n',
    'a: 1\n---',
    'a: 1\n---\n# c\n',
    '---\n---\n',
    '# only\n',
    '',
  ]) {
    assert.equal(runSteps(fastDocuments(text)), yamlDocuments(text), JSON.stringify(text));
  }
});

test.run();
