import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, SocklbError } from '../../../src/errors.ts';
import { type ManifestSnapshot, ManifestSource, mergeManifest, parseManifest } from '../../../src/sources/manifest.ts';

function service(name: string, ip: string, ns?: string): string {
  const namespace = ns ? `\n  namespace: ${ns}` : '';
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}${namespace}
spec:
  clusterIP: ${ip}
  ports: [{name: http, port: 80}]
`;
}

const slice = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.244.0.11]
`;

const names = (objs: { metadata?: { namespace?: string; name?: string } }[]): string[] =>
  objs.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`);

test('parseManifest reads Services and EndpointSlices from several documents, defaulting the namespace', () => {
  const m = parseManifest(`${service('web', '10.96.0.10')}---\n${slice}---\n${service('api', '10.96.0.11', 'prod')}---\n`, 'm.yaml');
  assert.equal(names(m.services), ['default/web', 'prod/api']);
  assert.equal(names(m.slices), ['default/web-1']);
  assert.equal(m.problems, []);
  assert.is(m.complete, true);
  assert.is(m.slices[0]?.endpoints?.[0]?.addresses[0], '10.244.0.11');
});

test('parseManifest reads a v1 List and names a wrong item by index', () => {
  const text = `apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Service, metadata: {name: web, namespace: a}, spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: p}}
  - {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: s}, addressType: IPv4}
`;
  const m = parseManifest(text, 'list.yaml');
  assert.equal(names(m.services), ['a/web']);
  assert.equal(names(m.slices), ['default/s']);
  assert.equal(
    m.problems.map((p) => [p.code, p.kind, p.name, p.field]),
    [[ErrorCodes.MANIFEST_KIND, 'Document', 'list.yaml#0', 'items[1]']],
  );
  assert.is(m.complete, true);
});

test('a document of another kind or apiVersion gets MANIFEST_KIND; the others still apply', () => {
  const text = `${service('web', '10.96.0.10')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: old}\n---\n- just a list\n---\n${slice}`;
  const m = parseManifest(text, 'k.yaml');
  assert.equal(names(m.services), ['default/web']);
  assert.equal(names(m.slices), ['default/web-1']);
  assert.equal(
    m.problems.map((p) => [p.code, p.name]),
    [
      [ErrorCodes.MANIFEST_KIND, 'k.yaml#1'],
      [ErrorCodes.MANIFEST_KIND, 'k.yaml#2'],
      [ErrorCodes.MANIFEST_KIND, 'k.yaml#3'],
    ],
  );
  assert.is(m.complete, true, 'a foreign kind is not a parse failure');
});

test('a bad YAML document among good ones gets MANIFEST_SYNTAX with its line; the read is incomplete', () => {
  const text = `${service('web', '10.96.0.10')}---\napiVersion: v1\nkind: Service\nmetadata: {name: broken\n---\n${service('api', '10.96.0.11')}`;
  const m = parseManifest(text, 'bad.yaml');
  assert.equal(names(m.services), ['default/web', 'default/api']);
  assert.is(m.complete, false);
  assert.is(m.problems.length, 1);
  const p = m.problems[0]!;
  assert.equal([p.code, p.kind, p.name], [ErrorCodes.MANIFEST_SYNTAX, 'Document', 'bad.yaml#1']);
  assert.match(p.message, /^line \d+, column \d+: /);
});

test('a truncated file: earlier documents parse, the cut one is reported, complete is false', () => {
  const full = `${service('web', '10.96.0.10')}---\n${slice}---\napiVersion: v1\nkind: Service\nmetadata: {name: "api", labels: {a: b}}\n`;
  const cut = full.slice(0, full.indexOf('labels: {a') + 'labels: {a'.length);
  const m = parseManifest(cut, 't.yaml');
  assert.equal(names(m.services), ['default/web']);
  assert.equal(names(m.slices), ['default/web-1']);
  assert.is(m.complete, false);
  assert.equal(
    m.problems.map((p) => [p.code, p.name]),
    [[ErrorCodes.MANIFEST_SYNTAX, 't.yaml#2']],
  );
  assert.match(m.problems[0]!.message, `line ${cut.split('\n').length},`, 'names the line where the file ends');
});

test('the same object twice: the later document wins, with a problem', () => {
  const m = parseManifest(`${service('web', '10.96.0.10')}---\n${service('web', '10.96.0.99')}`, 'd.yaml');
  assert.is(m.services.length, 1);
  assert.is(m.services[0]?.spec?.clusterIP, '10.96.0.99');
  assert.equal(
    m.problems.map((p) => [p.code, p.name, p.field]),
    [[ErrorCodes.INVALID_FIELD, 'd.yaml#1', 'metadata.name']],
  );
});

test('anchors, aliases and << merge keys read as kubectl reads them', () => {
  const text = `apiVersion: v1
kind: Service
metadata: {name: web, labels: &labels {app: web}}
spec:
  <<: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
  selector: *labels
`;
  const m = parseManifest(text, 'a.yaml');
  assert.equal(m.problems, []);
  assert.equal(m.services[0]?.spec?.ports?.[0]?.port, 80);
  assert.equal(m.services[0]?.spec?.selector, { app: 'web' });
});

test('an object without a readable name is rejected at its document, naming the field', () => {
  const text = [
    'apiVersion: v1\nkind: Service\nmetadata: {namespace: a}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n',
    'apiVersion: v1\nkind: Service\nmetadata: {name: 5}\n',
    `apiVersion: v1\nkind: Service\nmetadata: {name: ${'n'.repeat(254)}}\n`,
    `${slice.replace('metadata:\n  name: web-1\n  labels: {kubernetes.io/service-name: web}', 'metadata: web-1')}`,
    service('web', '10.96.0.11'),
  ].join('---\n');
  const m = parseManifest(text, 'n.yaml');
  assert.equal(names(m.services), ['default/web']);
  assert.equal(m.slices, []);
  assert.equal(
    m.problems.map((p) => [p.code, p.kind, p.name, p.field]),
    [
      [ErrorCodes.MISSING_FIELD, 'Document', 'n.yaml#0', 'metadata.name'],
      [ErrorCodes.INVALID_FIELD, 'Document', 'n.yaml#1', 'metadata.name'],
      [ErrorCodes.INVALID_FIELD, 'Document', 'n.yaml#2', 'metadata.name'],
      [ErrorCodes.INVALID_FIELD, 'Document', 'n.yaml#3', 'metadata'],
    ],
  );
});

test('an empty file or empty documents yield nothing and no problem', () => {
  assert.equal(parseManifest('', 'e.yaml'), { services: [], slices: [], nodes: [], problems: [], complete: true });
  assert.equal(parseManifest('# nothing\n---\n---\n', 'e.yaml'), { services: [], slices: [], nodes: [], problems: [], complete: true });
});

test('mergeManifest: a complete read replaces everything; an incomplete one keeps what it lost', () => {
  const before = parseManifest(`${service('web', '10.96.0.10')}---\n${service('api', '10.96.0.11')}---\n${slice}`, 'm.yaml');
  const removed = parseManifest(service('web', '10.96.0.10'), 'm.yaml');
  assert.equal(names(mergeManifest(before, removed).services), ['default/web']);
  assert.equal(mergeManifest(before, removed).slices, []);
  // web changes, api's document breaks, the slice is cut off: api and the slice keep their last version.
  const broken = parseManifest(`${service('web', '10.96.0.20')}---\napiVersion: v1\nkind: Service\nmetadata: {name: api`, 'm.yaml');
  const merged = mergeManifest(before, broken);
  assert.equal(names(merged.services), ['default/web', 'default/api']);
  assert.is(merged.services[0]?.spec?.clusterIP, '10.96.0.20');
  assert.equal(names(merged.slices), ['default/web-1']);
});

// --- ManifestSource: real files in a temporary directory, bounded waits.

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-manifest-'));
}

/** Collects snapshots; next() resolves with the next one or rejects after a bounded wait. */
function collector() {
  const seen: ManifestSnapshot[] = [];
  const waiters: ((s: ManifestSnapshot) => void)[] = [];
  return {
    seen,
    onChange(s: ManifestSnapshot) {
      seen.push(s);
      waiters.shift()?.(s);
    },
    next(ms = 3000): Promise<ManifestSnapshot> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no snapshot within ${ms} ms`)), ms);
        waiters.push((s) => {
          clearTimeout(timer);
          resolve(s);
        });
      });
    },
  };
}

/** Replaces the file the way editors do: write a temporary file, rename it over. */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

test('ManifestSource: start reads once; fs.watch on the directory sees a rename-over rewrite (poll too slow to)', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'services.yaml');
  fs.writeFileSync(file, service('web', '10.96.0.10'));
  const c = collector();
  const src = new ManifestSource(file, { onChange: c.onChange, pollIntervalMs: 60_000, debounceMs: 20 });
  try {
    await src.start();
    assert.is(c.seen.length, 1);
    assert.equal(names(c.seen[0]!.services), ['default/web']);
    const next = c.next();
    replaceFile(file, `${service('web', '10.96.0.10')}---\n${service('api', '10.96.0.11')}`);
    const s = await next;
    assert.equal(names(s.services), ['default/web', 'default/api']);
    assert.is(s.complete, true);
  } finally {
    await src.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ManifestSource: a half-written file keeps the objects it lost; the fixed file drops them', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'services.yaml');
  fs.writeFileSync(file, `${service('web', '10.96.0.10')}---\n${service('api', '10.96.0.11')}`);
  const c = collector();
  const src = new ManifestSource(file, { onChange: c.onChange, pollIntervalMs: 200, debounceMs: 20 });
  try {
    await src.start();
    let next = c.next();
    fs.writeFileSync(file, `${service('web', '10.96.0.10')}---\napiVersion: v1\nkind: Service\nmetadata: {name: "ap`);
    let s = await next;
    assert.is(s.complete, false);
    assert.equal(names(s.services), ['default/web', 'default/api']);
    assert.is(s.problems[0]?.code, ErrorCodes.MANIFEST_SYNTAX);
    next = c.next();
    fs.writeFileSync(file, service('web', '10.96.0.10'));
    s = await next;
    assert.is(s.complete, true);
    assert.equal(names(s.services), ['default/web']);
  } finally {
    await src.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ManifestSource: an in-place write is picked up, and stop() ends the callbacks', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'services.yaml');
  fs.writeFileSync(file, service('web', '10.96.0.10'));
  const c = collector();
  const src = new ManifestSource(file, { onChange: c.onChange, pollIntervalMs: 50, debounceMs: 10 });
  try {
    await src.start();
    const next = c.next();
    fs.writeFileSync(file, service('web', '10.96.0.42'));
    const s = await next;
    assert.is(s.services[0]?.spec?.clusterIP, '10.96.0.42');
    await src.stop();
    const count = c.seen.length;
    fs.writeFileSync(file, service('web', '10.96.0.43'));
    await new Promise((r) => setTimeout(r, 200));
    assert.is(c.seen.length, count);
  } finally {
    await src.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ManifestSource: a missing file is an error naming the path; bad options throw up front', async () => {
  const file = path.join(os.tmpdir(), 'socklb-does-not-exist', 'x.yaml');
  const src = new ManifestSource(file, { onChange() {} });
  try {
    await src.start();
    assert.unreachable('start should reject');
  } catch (err) {
    assert.instance(err, SocklbError);
    assert.match((err as Error).message, file);
  }
  assert.throws(() => new ManifestSource(file, {} as never), TypeError);
  assert.throws(() => new ManifestSource(file, { onChange() {}, pollIntervalMs: -1 }), RangeError);
});

function nodeDoc(name: string, internal: string): string {
  return `apiVersion: v1
kind: Node
metadata: {name: ${name}}
status:
  addresses: [{type: Hostname, address: ${name}}, {type: InternalIP, address: "${internal}"}]
`;
}

test('v1 Node documents are read, without a namespace; a malformed one is reported by field', () => {
  const parsed = parseManifest(`${nodeDoc('node-a', '192.168.0.2')}---\n${nodeDoc('node-b', '192.168.0.3')}`, 'n.yaml');
  assert.equal(
    parsed.nodes.map((n) => [n.metadata?.name, n.metadata?.namespace]),
    [
      ['node-a', undefined],
      ['node-b', undefined],
    ],
  );
  assert.equal(parsed.problems, []);
});

test('ManifestSource: the own Node document gives the node, all of them the peers, kept while unchanged', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-manifest-'));
  const file = path.join(dir, 'services.yaml');
  const nodes = `${nodeDoc('node-a', '192.168.0.2')}---\n${nodeDoc('node-b', '192.168.0.3')}---\n${nodeDoc('node-c', '10.0.0.300')}`;
  fs.writeFileSync(file, `${nodes}---\n${service('web', '10.96.0.10')}`);
  const c = collector();
  const src = new ManifestSource(file, { nodeName: 'node-a', onChange: c.onChange, pollIntervalMs: 60_000, debounceMs: 20 });
  try {
    await src.start();
    const first = c.seen[0]!;
    assert.equal(first.node, { name: 'node-a', addresses: ['192.168.0.2'] });
    assert.equal(first.peers.get('node-b'), ['192.168.0.3']);
    assert.equal(
      first.problems.map((p) => [p.kind, p.name, p.field, p.code]),
      [['Node', 'node-c', 'status.addresses[1].address', ErrorCodes.INVALID_IP]],
    );
    assert.equal(names(first.services), ['default/web'], 'the rest is served');
    let next = c.next();
    replaceFile(file, `${nodes}---\n${service('web', '10.96.0.11')}`);
    let s = await next;
    assert.is(s.peers, first.peers, 'the same book while no Node changed');
    next = c.next();
    replaceFile(file, `${nodeDoc('node-b', '192.168.0.33')}---\n${service('web', '10.96.0.11')}`);
    s = await next;
    assert.equal(s.peers.get('node-b'), ['192.168.0.33']);
    assert.is(s.node, undefined, 'no Node document of its own: the agent falls back to its devices');
  } finally {
    await src.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
