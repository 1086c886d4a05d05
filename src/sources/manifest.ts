// The manifest-file source: Services, EndpointSlices and Nodes from a multi-document YAML file,
// re-read whenever the file changes, for clusters without an API server to watch (demos, tests,
// edge nodes).

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Composer, type Document, LineCounter, Parser } from 'yaml';
import { ErrorCodes, type ObjectProblem, SocklbError } from '../errors.ts';
import { nodeAddressBook, readNode, sameBook } from '../model/node-read.ts';
import { isRecord, show } from '../model/problem.ts';
import { runSteps, runStepsSliced, STEP_EVERY } from '../model/steps.ts';
import type { NodeAddressBook, NodeInfo } from '../model/types.ts';
import { fastDocuments } from './manifest-fast.ts';

export interface ParsedManifest {
  services: V1Service[];
  slices: V1EndpointSlice[];
  /** `v1/Node` documents, as written (read by src/model/node-read.ts). */
  nodes: V1Node[];
  problems: ObjectProblem[];
  /** False when some document did not parse (e.g. a file caught half-written): see mergeManifest. */
  complete: boolean;
}

export interface ManifestObjects {
  services: V1Service[];
  slices: V1EndpointSlice[];
  nodes: V1Node[];
}

export interface ManifestSnapshot extends ManifestObjects {
  /** Problems of the latest read (documents rejected, Nodes' bad fields); object problems come later, from desired(). */
  problems: ObjectProblem[];
  /** Every Node document's addresses; the same Map instance as the last snapshot's while they stay the same. */
  peers: NodeAddressBook;
  /** The agent's own node, from the Node document named like options.nodeName; absent without one. */
  node?: NodeInfo;
  /** Whether the latest read parsed fully; when not, objects from earlier reads may be kept. */
  complete: boolean;
}

/** Namespace given to objects that name none, as `kubectl apply` would with the default context. */
export const MANIFEST_DEFAULT_NAMESPACE = 'default';

const SERVICE = { apiVersion: 'v1', kind: 'Service' };
const SLICE = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' };
const NODE = { apiVersion: 'v1', kind: 'Node' };

/**
 * Parses a manifest: `v1/Service`, `discovery.k8s.io/v1/EndpointSlice` and `v1/Node` documents, and
 * `v1/List`s of them. A document that is not valid YAML gets MANIFEST_SYNTAX (and makes the read incomplete); one of
 * another kind gets MANIFEST_KIND; both are named `file#index` (index from 0) and the other documents
 * still apply. Namespaced objects without a namespace get `default`. When the same object appears twice the later
 * document wins (with a problem).
 */
export function parseManifest(text: string, fileName: string): ParsedManifest {
  return runSteps(parseManifestSteps(text, fileName));
}

/**
 * parseManifest(), yielding between documents (src/model/steps.ts): a manifest of 50,000 services
 * would otherwise hold the event loop for seconds. A manifest in JSON (a List, or one object) is
 * read by JSON.parse; other YAML by manifest-fast.ts (js-yaml, JSON.parse for one-line JSON
 * documents) at about ten megabytes a second; a text that reader cannot take exactly, or with a
 * document that does not parse, by the `yaml` package at about one megabyte a second, which names
 * errors by line and column.
 */
export function* parseManifestSteps(text: string, fileName: string): Generator<void, ParsedManifest> {
  const out: ParsedManifest = { services: [], slices: [], nodes: [], problems: [], complete: true };
  const seen = new Map<string, string>();
  const json = asJson(text);
  if (json !== undefined) {
    yield* addValue(json, `${fileName}#0`, out, seen);
    return out;
  }
  const fast = yield* fastDocuments(text);
  if (fast !== undefined) {
    for (const [index, value] of fast.entries()) {
      yield* addValue(value, `${fileName}#${index}`, out, seen);
      if (index % STEP_EVERY === 0) yield;
    }
    return out;
  }
  const lines = new LineCounter();
  // `<<` merge keys are read as kubectl reads them (go-yaml, YAML 1.1); without this a manifest that
  // works with kubectl would lose the merged fields here and be rejected for the wrong reason.
  const composer = new Composer({ merge: true });
  // One document at a time, not parseAllDocuments(): that holds every document's syntax tree at once,
  // about 40 times the text, so a 100 MB manifest of Services took 4 GB of heap, at the edge of V8's
  // limit (the fuzz test's big manifest). A document's tree is garbage once its value is read.
  let index = 0;
  for (const doc of composer.compose(new Parser(lines.addNewLine).parse(text))) {
    const where = `${fileName}#${index++}`;
    yield* addValue(readDocument(doc, where, lines, out), where, out, seen);
    if (index % STEP_EVERY === 0) yield;
  }
  return out;
}

/**
 * The text's value when it is JSON that YAML would read the same way (no `<<` merge key, which
 * only YAML gives a meaning), else undefined: the YAML reader then takes it, and names its errors.
 */
function asJson(text: string): unknown {
  const start = text.trimStart()[0];
  if ((start !== '{' && start !== '[') || text.includes('"<<"')) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A document's value: a List's items, or one object. */
function* addValue(value: unknown, where: string, out: ParsedManifest, seen: Map<string, string>): Generator<void, void> {
  if (value === undefined || value === null) return;
  if (isRecord(value) && value.apiVersion === 'v1' && value.kind === 'List') {
    if (!Array.isArray(value.items)) {
      out.problems.push(docProblem(where, 'items', ErrorCodes.MANIFEST_KIND, 'a List needs an items list'));
      return;
    }
    for (const [i, item] of (value.items as unknown[]).entries()) {
      addObject(item, where, `items[${i}]`, out, seen);
      if (i % (STEP_EVERY * 16) === 0) yield;
    }
  } else {
    addObject(value, where, '', out, seen);
  }
}

/** The document's plain value, or undefined (with a problem, read marked incomplete) when it does not parse. */
function readDocument(doc: Document.Parsed, where: string, lines: LineCounter, out: ParsedManifest): unknown {
  const error = doc.errors[0];
  if (error) {
    out.complete = false;
    const pos = lines.linePos(error.pos[0]);
    const at = `line ${pos.line}, column ${pos.col}: `;
    const message = error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? error.code;
    out.problems.push(docProblem(where, '', ErrorCodes.MANIFEST_SYNTAX, `${at}${message}`));
    return undefined;
  }
  try {
    return doc.toJS();
  } catch (err) {
    // Valid syntax that cannot become a value (e.g. too many aliases): treat it like a syntax error.
    out.complete = false;
    out.problems.push(docProblem(where, '', ErrorCodes.MANIFEST_SYNTAX, (err as Error).message));
    return undefined;
  }
}

function addObject(value: unknown, where: string, field: string, out: ParsedManifest, seen: Map<string, string>): void {
  const type = isRecord(value) ? value : {};
  const isService = type.apiVersion === SERVICE.apiVersion && type.kind === SERVICE.kind;
  const isSlice = type.apiVersion === SLICE.apiVersion && type.kind === SLICE.kind;
  const isNode = type.apiVersion === NODE.apiVersion && type.kind === NODE.kind;
  if (!isRecord(value) || (!isService && !isSlice && !isNode)) {
    const what = isRecord(value) ? `apiVersion ${show(value.apiVersion)} kind ${show(value.kind)}` : `a ${typeName(value)}`;
    out.problems.push(
      docProblem(
        where,
        field,
        ErrorCodes.MANIFEST_KIND,
        `${what} is not read; expected v1 Service, discovery.k8s.io/v1 EndpointSlice or v1 Node`,
      ),
    );
    return;
  }
  // An object without a readable (or sane) name cannot be tracked or reported by name: reject it here,
  // where the document index still says which one it is (desired() could only report a nameless object).
  const nameless = namelessProblem(value);
  if (nameless) {
    out.problems.push(docProblem(where, field ? `${field}.${nameless.field}` : nameless.field, nameless.code, nameless.message));
    return;
  }
  // A Node belongs to no namespace.
  if (!isNode) defaultNamespace(value);
  const id = objectIdentity(value);
  const previous = id === undefined ? undefined : seen.get(id);
  if (id !== undefined && previous !== undefined) {
    out.problems.push(
      docProblem(
        where,
        field ? `${field}.metadata.name` : 'metadata.name',
        ErrorCodes.INVALID_FIELD,
        `${id} repeats ${previous}; the later document wins`,
      ),
    );
    out.services = out.services.filter((s) => objectIdentity(s) !== id);
    out.slices = out.slices.filter((s) => objectIdentity(s) !== id);
    out.nodes = out.nodes.filter((s) => objectIdentity(s) !== id);
  }
  if (id !== undefined) seen.set(id, field ? `${where} ${field}` : where);
  if (isService) out.services.push(value as V1Service);
  else if (isNode) out.nodes.push(value as V1Node);
  else out.slices.push(value as unknown as V1EndpointSlice);
}

/** Kubernetes' limits: a name is a DNS subdomain (253), a namespace a DNS label (63). */
const MAX_NAME = 253;
const MAX_NAMESPACE = 63;

function namelessProblem(value: Record<string, unknown>): { field: string; code: ObjectProblem['code']; message: string } | undefined {
  const meta = value.metadata;
  if (meta !== undefined && meta !== null && !isRecord(meta)) {
    return { field: 'metadata', code: ErrorCodes.INVALID_FIELD, message: `must be an object, got ${show(meta)}` };
  }
  const name = isRecord(meta) ? meta.name : undefined;
  if (name === undefined || name === null || name === '') {
    return { field: 'metadata.name', code: ErrorCodes.MISSING_FIELD, message: `is required; the ${String(value.kind)} is not read` };
  }
  if (typeof name !== 'string') {
    return {
      field: 'metadata.name',
      code: ErrorCodes.INVALID_FIELD,
      message: `must be a string, got ${show(name)}; the ${String(value.kind)} is not read`,
    };
  }
  // The API server refuses longer ones; here a 64 KB name would be repeated in every problem, log
  // line, debug page and metric label of the object.
  const namespace = isRecord(meta) ? meta.namespace : undefined;
  for (const [field, text, most] of [
    ['metadata.name', name, MAX_NAME],
    ['metadata.namespace', namespace, MAX_NAMESPACE],
  ] as const) {
    if (typeof text === 'string' && text.length > most) {
      return { field, code: ErrorCodes.INVALID_FIELD, message: `is ${text.length} characters long; at most ${most} are allowed` };
    }
  }
  return undefined;
}

function defaultNamespace(value: Record<string, unknown>): void {
  if (value.metadata === undefined || value.metadata === null) value.metadata = {};
  const meta = value.metadata;
  if (isRecord(meta) && (meta.namespace === undefined || meta.namespace === null || meta.namespace === '')) {
    meta.namespace = MANIFEST_DEFAULT_NAMESPACE;
  }
}

/** `Service/default/web`; undefined when the object has no readable name (it cannot be tracked). */
export function objectIdentity(value: unknown): string | undefined {
  if (!isRecord(value) || !isRecord(value.metadata)) return undefined;
  const { namespace, name } = value.metadata;
  if (typeof name !== 'string' || name === '' || typeof value.kind !== 'string') return undefined;
  return `${value.kind}/${typeof namespace === 'string' ? namespace : ''}/${name}`;
}

/**
 * The objects to use after a read. A complete read replaces everything. An incomplete one (some
 * document did not parse) keeps each earlier object the new read no longer yields, whether its
 * document vanished (a truncated file) or now fails: deleting services because a file was caught
 * half-written would cut live connections, keeping them a little longer costs nothing.
 */
export function mergeManifest(previous: ManifestObjects, next: ParsedManifest): ManifestObjects {
  if (next.complete) return { services: next.services, slices: next.slices, nodes: next.nodes };
  const present = new Set<string>();
  for (const o of [...next.services, ...next.slices, ...next.nodes]) {
    const id = objectIdentity(o);
    if (id !== undefined) present.add(id);
  }
  const missing = (o: V1Service | V1EndpointSlice | V1Node): boolean => {
    const id = objectIdentity(o);
    return id !== undefined && !present.has(id);
  };
  return {
    services: [...next.services, ...previous.services.filter(missing)],
    slices: [...next.slices, ...previous.slices.filter(missing)],
    nodes: [...next.nodes, ...previous.nodes.filter(missing)],
  };
}

export interface ManifestSourceOptions {
  /** The agent's node (--node-name): a Node document of that name gives its addresses. */
  nodeName?: string;
  /** Called with the first read and after every change of the file's text. */
  onChange(snapshot: ManifestSnapshot): void;
  /** Called when a later read fails (the last snapshot stays in force) or onChange throws. */
  onError?(error: Error): void;
  /** Period of the stat poll that backs up fs.watch (default 2000 ms). */
  pollIntervalMs?: number;
  /** Quiet time after a change before reading, so an editor's several writes make one read (default 50 ms). */
  debounceMs?: number;
}

/**
 * Watches a manifest file. fs.watch is set on the directory, since editors and `kubectl`-style tools
 * replace the file (write a temporary file, rename it over) and a watch on the old inode would go
 * quiet; a slow stat poll catches what fs.watch misses (network filesystems, overlay quirks).
 */
export class ManifestSource {
  #path: string;
  #onChange: (snapshot: ManifestSnapshot) => void;
  #onError: (error: Error) => void;
  #pollMs: number;
  #debounceMs: number;
  #watcher: fs.FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #state: ManifestObjects = { services: [], slices: [], nodes: [] };
  #lastText: string | undefined;
  #lastStat = '';
  #nodeName: string | undefined;
  #peers: NodeAddressBook = new Map();
  #reading: Promise<void> | undefined;
  #again = false;
  #started = false;
  #stopped = false;

  constructor(file: string, options: ManifestSourceOptions) {
    if (typeof file !== 'string' || file === '') throw new TypeError('ManifestSource: path must be a non-empty string');
    if (typeof options?.onChange !== 'function') throw new TypeError('ManifestSource: options.onChange must be a function');
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError('ManifestSource: options.onError must be a function');
    }
    this.#pollMs = checkMs(options.pollIntervalMs, 2000, 'pollIntervalMs');
    this.#debounceMs = checkMs(options.debounceMs, 50, 'debounceMs');
    this.#path = path.resolve(file);
    this.#onChange = options.onChange;
    this.#nodeName = options.nodeName;
    this.#onError = options.onError ?? (() => {});
  }

  /** Reads the file once (rejecting, naming the path, when it cannot be read), then watches it. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('ManifestSource: already started');
    this.#started = true;
    try {
      await this.#readOnce(true);
    } catch (err) {
      this.#stopped = true;
      throw err;
    }
    if (this.#stopped) return;
    this.#watch();
    this.#poll = setInterval(() => void this.#checkStat(), this.#pollMs);
  }

  /** Stops watching; no onChange is called afterwards. Waits for a read in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    await this.#reading;
  }

  #watch(): void {
    const base = path.basename(this.#path);
    try {
      this.#watcher = fs.watch(path.dirname(this.#path), (_event, name) => {
        // Some platforms give no file name: then any change in the directory may be ours.
        if (!name || name === base) this.#schedule();
      });
      this.#watcher.on('error', (err) => {
        this.#watcher?.close();
        this.#watcher = undefined;
        this.#onError(wrapError(`watching ${this.#path} failed; falling back to polling`, err));
      });
    } catch (err) {
      this.#onError(wrapError(`cannot watch ${this.#path}; falling back to polling`, err));
    }
  }

  async #checkStat(): Promise<void> {
    let key: string;
    try {
      key = statKey(await fsp.stat(this.#path));
    } catch {
      key = 'missing';
    }
    if (key !== this.#lastStat) this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#read(), this.#debounceMs);
  }

  /** Serialises reads: a change seen during a read triggers one more read after it. */
  #read(): void {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = (async () => {
      do {
        this.#again = false;
        try {
          await this.#readOnce(false);
        } catch (err) {
          this.#onError(err as Error);
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#reading = undefined;
      // A change that arrived after the loop's last check but before this point.
      if (this.#again && !this.#stopped) this.#read();
    });
  }

  async #readOnce(initial: boolean): Promise<void> {
    let text: string;
    try {
      // Stat before reading: if the file changes in between, the next poll sees a new key and re-reads.
      const st = await fsp.stat(this.#path);
      text = await fsp.readFile(this.#path, 'utf8');
      this.#lastStat = statKey(st);
    } catch (err) {
      this.#lastStat = 'missing';
      const code = (err as NodeJS.ErrnoException).code;
      const what = code === 'ENOENT' ? `manifest file ${this.#path} does not exist` : `cannot read manifest file ${this.#path}`;
      // After start a vanished file keeps the last snapshot: an editor may be between unlink and rename.
      throw new SocklbError(ErrorCodes.BAD_OPTION, initial ? what : `${what}; keeping the last snapshot`, { cause: err });
    }
    if (this.#stopped || text === this.#lastText) return;
    this.#lastText = text;
    const parsed = await runStepsSliced(parseManifestSteps(text, this.#path));
    if (this.#stopped) return;
    this.#state = mergeManifest(this.#state, parsed);
    const { book, problems } = nodeAddressBook(this.#state.nodes);
    // Kept when equal, so the desired cache does not recompute every service for a change elsewhere.
    if (!sameBook(book, this.#peers)) this.#peers = book;
    const own = this.#state.nodes.find((n) => n.metadata?.name === this.#nodeName);
    const snapshot: ManifestSnapshot = {
      ...this.#state,
      problems: [...parsed.problems, ...problems],
      complete: parsed.complete,
      peers: this.#peers,
      ...(own ? { node: ownNode(own) } : {}),
    };
    if (initial) {
      this.#onChange(snapshot);
      return;
    }
    try {
      this.#onChange(snapshot);
    } catch (err) {
      this.#onError(wrapError('manifest onChange failed', err));
    }
  }
}

function ownNode(node: unknown): NodeInfo {
  const read = readNode(node);
  return { name: read.name ?? '', addresses: read.addresses, ...(read.zone ? { zone: read.zone } : {}) };
}

function checkMs(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`ManifestSource: options.${name} must be a non-negative number of ms, got ${String(value)}`);
  }
  return value;
}

function statKey(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function wrapError(message: string, cause: unknown): Error {
  return new Error(`${message}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
}

function docProblem(where: string, field: string, code: ObjectProblem['code'], message: string): ObjectProblem {
  return { kind: 'Document', namespace: '', name: where, field, code, message };
}

function typeName(value: unknown): string {
  return Array.isArray(value) ? 'list' : typeof value === 'string' ? 'string' : typeof value;
}
