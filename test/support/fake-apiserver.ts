// A small Kubernetes API server of our own for tests: the one allowed stand-in, since no real API
// server can be installed here. It speaks the list/watch protocol @kubernetes/client-node uses, for
// v1 Services, v1 Nodes and discovery.k8s.io/v1 EndpointSlices:
//
// - lists (`GET /api/v1/services`, `/api/v1/namespaces/NS/services`, ...) answer `kind: ServiceList`
//   with `metadata.resourceVersion`; items carry no kind/apiVersion, as a real server's JSON lists;
//   `limit`/`continue` page over a consistent snapshot, and a continue token older than the last
//   compaction gets `410 Gone` (reason Expired), as etcd compaction causes;
// - `?watch=true&resourceVersion=N` streams chunked JSON lines `{"type":...,"object":...}` with every
//   change after N, then live ones; no or `0` resourceVersion starts with synthetic ADDED events;
//   BOOKMARK events only for `allowWatchBookmarks=true`; a resourceVersion older than the last
//   compaction gets the real server's answer, an ERROR event holding a 410 Expired Status in a 200
//   stream (or, with `goneMode = 'http'`, a plain HTTP 410 with the Status as body);
// - `fieldSelector` (metadata.name / metadata.namespace, `=`, `==`, `!=`), `timeoutSeconds`;
// - a bearer token is required when one is set.
//
// Test controls: add/modify/remove bump one global resourceVersion; compact(), dropWatches(),
// expireWatches() (410 mid-watch), stallWatches() (a slow watcher: events stop reaching it),
// bookmark(), failLists(), stop()/restart() on the same port.

import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Resource = 'services' | 'endpointslices' | 'nodes';

interface ResourceInfo {
  kind: string;
  apiVersion: string;
  namespaced: boolean;
}

const RESOURCES: Record<Resource, ResourceInfo> = {
  services: { kind: 'Service', apiVersion: 'v1', namespaced: true },
  endpointslices: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', namespaced: true },
  nodes: { kind: 'Node', apiVersion: 'v1', namespaced: false },
};

const KIND_TO_RESOURCE: Record<string, Resource> = {
  Service: 'services',
  EndpointSlice: 'endpointslices',
  Node: 'nodes',
};

/** A Kubernetes object as loose JSON. */
export type KubeObject = { kind?: string; apiVersion?: string; metadata?: Record<string, any>; [k: string]: any };

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface ChangeEvent {
  rv: number;
  resource: Resource;
  type: EventType;
  key: string;
  object: KubeObject;
  /** The object before this change (MODIFIED, DELETED), to rebuild older snapshots for paging. */
  previous: KubeObject | undefined;
}

interface Watcher {
  resource: Resource;
  match: (o: KubeObject) => boolean;
  res: http.ServerResponse;
  bookmarks: boolean;
  stalled: boolean;
  timer: NodeJS.Timeout | undefined;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: URLSearchParams;
  watch: boolean;
}

export interface FakeApiServerOptions {
  /** Bearer token clients must send (default 'socklb-test-token'); '' disables the check. */
  token?: string;
  /** Sends a BOOKMARK to every watcher that asked for them at this period (default off). */
  bookmarkIntervalMs?: number;
}

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** A fixture object (a deep copy, so a test may change it freely). */
export function fixture(name: 'service' | 'endpointslice' | 'node'): KubeObject {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')) as KubeObject;
}

function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function clone<T>(o: T): T {
  return structuredClone(o);
}

function status(code: number, reason: string, message: string): KubeObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeApiServer {
  /** Whether a too-old watch resourceVersion gets an ERROR event in a 200 stream (the real server) or HTTP 410. */
  goneMode: 'event' | 'http' = 'event';
  /** Every request, in order, for tests to assert on (paging, bookmarks, selectors). */
  readonly requests: RequestRecord[] = [];
  readonly #token: string;
  readonly #bookmarkMs: number;
  #server: http.Server | undefined;
  #port = 0;
  #rv = 100;
  #compactedRv = 0;
  #objects: Record<Resource, Map<string, KubeObject>> = { services: new Map(), endpointslices: new Map(), nodes: new Map() };
  #log: ChangeEvent[] = [];
  #watchers = new Set<Watcher>();
  #sockets = new Set<Socket>();
  #failLists = 0;
  #failStatus = 500;
  #bookmarkTimer: NodeJS.Timeout | undefined;

  constructor(options: FakeApiServerOptions = {}) {
    this.#token = options.token ?? 'socklb-test-token';
    this.#bookmarkMs = options.bookmarkIntervalMs ?? 0;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The latest resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Open watch streams. */
  get watchCount(): number {
    return this.#watchers.size;
  }

  /** Listens on 127.0.0.1 (a random port the first time, the same port after a stop). */
  async start(): Promise<void> {
    if (this.#server) throw new Error('FakeApiServer: already listening');
    const server = http.createServer((req, res) => this.#handle(req, res));
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: this.#port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    if (this.#bookmarkMs > 0) this.#bookmarkTimer = setInterval(() => this.bookmark(), this.#bookmarkMs);
  }

  /** The API server goes away: the listener closes and every connection is cut (not ended). */
  async stop(): Promise<void> {
    clearInterval(this.#bookmarkTimer);
    this.#bookmarkTimer = undefined;
    const server = this.#server;
    this.#server = undefined;
    for (const w of this.#watchers) clearTimeout(w.timer);
    this.#watchers.clear();
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    server.closeAllConnections();
    await closed;
  }

  /** Comes back on the same port, with whatever objects were changed meanwhile. */
  async restart(): Promise<void> {
    await this.start();
  }

  /** A kubeconfig for this server: http:// needs insecure-skip-tls-verify with client-node 2.x. */
  kubeconfig(): string {
    const user = this.#token ? `\n    token: ${this.#token}` : '\n    {}';
    return `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${this.url}
    insecure-skip-tls-verify: true
users:
- name: fake
  user:${user}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
current-context: fake
`;
  }

  /** Writes kubeconfig() into dir and returns the file's path. */
  writeKubeconfig(dir: string): string {
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, this.kubeconfig());
    return file;
  }

  // ---- objects -------------------------------------------------------------------------------

  /** Creates an object (kind decides the resource); returns the stored copy with its resourceVersion. */
  add(obj: KubeObject): KubeObject {
    const resource = this.#resourceOf(obj);
    const stored = this.#stamp(obj, resource);
    const key = keyOf(stored);
    if (this.#objects[resource].has(key)) throw new Error(`FakeApiServer: ${resource} ${key} already exists`);
    stored.metadata!.uid ??= randomUUID();
    stored.metadata!.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    this.#objects[resource].set(key, stored);
    this.#emit({ rv: this.#rv, resource, type: 'ADDED', key, object: stored, previous: undefined });
    return clone(stored);
  }

  /** Replaces an existing object (matched by namespace/name). */
  modify(obj: KubeObject): KubeObject {
    const resource = this.#resourceOf(obj);
    const key = keyOf(obj);
    const previous = this.#objects[resource].get(key);
    if (!previous) throw new Error(`FakeApiServer: ${resource} ${key} does not exist`);
    const stored = this.#stamp(obj, resource);
    stored.metadata!.uid = previous.metadata!.uid;
    stored.metadata!.creationTimestamp = previous.metadata!.creationTimestamp;
    this.#objects[resource].set(key, stored);
    this.#emit({ rv: this.#rv, resource, type: 'MODIFIED', key, object: stored, previous });
    return clone(stored);
  }

  /** Deletes an object; watchers get its last state with a new resourceVersion, as from a real server. */
  remove(obj: KubeObject): void {
    const resource = this.#resourceOf(obj);
    const key = keyOf(obj);
    const previous = this.#objects[resource].get(key);
    if (!previous) throw new Error(`FakeApiServer: ${resource} ${key} does not exist`);
    this.#rv++;
    const gone = clone(previous);
    gone.metadata!.resourceVersion = String(this.#rv);
    this.#objects[resource].delete(key);
    this.#emit({ rv: this.#rv, resource, type: 'DELETED', key, object: gone, previous });
  }

  /** The stored object, or undefined. */
  get(kind: string, namespace: string, name: string): KubeObject | undefined {
    const o = this.#objects[KIND_TO_RESOURCE[kind] as Resource]?.get(`${namespace}/${name}`);
    return o && clone(o);
  }

  // ---- protocol controls ---------------------------------------------------------------------

  /** Forgets history: any resourceVersion (watch or continue token) older than the current one gets 410. */
  compact(): void {
    this.#compactedRv = this.#rv;
    this.#log = [];
  }

  /** Ends every watch stream cleanly (a server-side watch timeout); clients reconnect from their resourceVersion. */
  dropWatches(): void {
    for (const w of [...this.#watchers]) this.#closeWatch(w);
  }

  /** Stops delivering events to the open watches, as to a slow watcher whose buffer fills. */
  stallWatches(): void {
    for (const w of this.#watchers) w.stalled = true;
  }

  /** Sends an ERROR event with a 410 Expired Status to every open watch and ends it (mid-watch 410). */
  expireWatches(): void {
    for (const w of [...this.#watchers]) {
      this.#write(w, { type: 'ERROR', object: status(410, 'Expired', 'too old resource version') }, true);
      this.#closeWatch(w);
    }
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watcher that allowed bookmarks. */
  bookmark(): void {
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const info = RESOURCES[w.resource];
      this.#write(w, {
        type: 'BOOKMARK',
        object: { kind: info.kind, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.#rv) } },
      });
    }
  }

  /** The next n list requests fail with the given HTTP status. */
  failLists(n: number, code = 500): void {
    this.#failLists = n;
    this.#failStatus = code;
  }

  // ---- internals -----------------------------------------------------------------------------

  #resourceOf(obj: KubeObject): Resource {
    const resource = KIND_TO_RESOURCE[obj.kind ?? ''];
    if (!resource) throw new Error(`FakeApiServer: unsupported kind ${String(obj.kind)}`);
    if (!obj.metadata?.name) throw new Error('FakeApiServer: object needs metadata.name');
    if (RESOURCES[resource].namespaced && !obj.metadata.namespace) throw new Error('FakeApiServer: object needs metadata.namespace');
    return resource;
  }

  #stamp(obj: KubeObject, resource: Resource): KubeObject {
    const stored = clone(obj);
    const info = RESOURCES[resource];
    stored.kind = info.kind;
    stored.apiVersion = info.apiVersion;
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.#rv) };
    delete stored.metadata.managedFields;
    return stored;
  }

  #emit(event: ChangeEvent): void {
    this.#log.push(event);
    for (const w of this.#watchers) {
      if (w.resource === event.resource && !w.stalled && w.match(event.object)) {
        this.#write(w, { type: event.type, object: event.object });
      }
    }
  }

  #write(w: Watcher, event: unknown, evenIfStalled = false): void {
    if (w.stalled && !evenIfStalled) return;
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(`${JSON.stringify(event)}\n`);
  }

  #closeWatch(w: Watcher): void {
    clearTimeout(w.timer);
    this.#watchers.delete(w);
    if (!w.res.writableEnded) w.res.end();
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, watch });
    if (this.#token && req.headers.authorization !== `Bearer ${this.#token}`) {
      this.#send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (req.method !== 'GET') {
      this.#send(res, 405, status(405, 'MethodNotAllowed', 'only GET is served'));
      return;
    }
    const m =
      /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?(services|nodes)$/.exec(url.pathname) ??
      /^\/apis\/discovery\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?(endpointslices)$/.exec(url.pathname);
    if (!m) {
      this.#send(res, 404, status(404, 'NotFound', `the server could not find the requested resource`));
      return;
    }
    const namespace = m[1];
    const resource = m[2] as Resource;
    if (namespace !== undefined && !RESOURCES[resource].namespaced) {
      this.#send(res, 404, status(404, 'NotFound', `${resource} are not namespaced`));
      return;
    }
    let match: (o: KubeObject) => boolean;
    try {
      match = fieldSelector(url.searchParams.get('fieldSelector') ?? '', namespace);
    } catch (err) {
      this.#send(res, 400, status(400, 'BadRequest', (err as Error).message));
      return;
    }
    if (watch) this.#watch(resource, match, url.searchParams, res);
    else this.#list(resource, match, url.searchParams, res);
  }

  #send(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  #list(resource: Resource, match: (o: KubeObject) => boolean, query: URLSearchParams, res: http.ServerResponse): void {
    if (this.#failLists > 0) {
      this.#failLists--;
      this.#send(res, this.#failStatus, status(this.#failStatus, 'InternalError', 'injected list failure'));
      return;
    }
    const info = RESOURCES[resource];
    const limit = Number(query.get('limit') ?? 0);
    let at = this.#rv;
    let after = '';
    const token = query.get('continue');
    if (token) {
      try {
        ({ rv: at, after } = JSON.parse(Buffer.from(token, 'base64url').toString()) as { rv: number; after: string });
      } catch {
        this.#send(res, 400, status(400, 'BadRequest', 'continue token is not valid'));
        return;
      }
      if (at < this.#compactedRv) {
        this.#send(res, 410, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'));
        return;
      }
    }
    const items = [...this.#snapshotAt(resource, at).entries()]
      .filter(([k, o]) => k > after && match(o))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const page = limit > 0 ? items.slice(0, limit) : items;
    const metadata: Record<string, unknown> = { resourceVersion: String(at) };
    if (limit > 0 && items.length > limit) {
      const last = page[page.length - 1]![0];
      metadata.continue = Buffer.from(JSON.stringify({ rv: at, after: last })).toString('base64url');
      metadata.remainingItemCount = items.length - limit;
    }
    this.#send(res, 200, {
      kind: `${info.kind}List`,
      apiVersion: info.apiVersion,
      metadata,
      // A real server's JSON list leaves kind and apiVersion out of the items.
      items: page.map(([, o]) => {
        const { kind: _k, apiVersion: _a, ...rest } = o;
        return rest;
      }),
    });
  }

  /** The objects as they were at resourceVersion rv, undoing later changes from the log. */
  #snapshotAt(resource: Resource, rv: number): Map<string, KubeObject> {
    const objects = new Map(this.#objects[resource]);
    for (let i = this.#log.length - 1; i >= 0; i--) {
      const e = this.#log[i]!;
      if (e.rv <= rv) break;
      if (e.resource !== resource) continue;
      if (e.type === 'ADDED') objects.delete(e.key);
      else objects.set(e.key, e.previous!);
    }
    return objects;
  }

  #watch(resource: Resource, match: (o: KubeObject) => boolean, query: URLSearchParams, res: http.ServerResponse): void {
    const rvText = query.get('resourceVersion') ?? '';
    const rv = rvText === '' || rvText === '0' ? undefined : Number(rvText);
    if (rv !== undefined && (!Number.isInteger(rv) || rv < 0)) {
      this.#send(res, 400, status(400, 'BadRequest', `invalid resourceVersion ${JSON.stringify(rvText)}`));
      return;
    }
    const gone = rv !== undefined && rv < this.#compactedRv;
    if (gone && this.goneMode === 'http') {
      this.#send(res, 410, status(410, 'Expired', `too old resource version: ${rv} (${this.#compactedRv})`));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource, match, res, bookmarks: query.get('allowWatchBookmarks') === 'true', stalled: false, timer: undefined };
    if (gone) {
      this.#write(w, { type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${rv} (${this.#compactedRv})`) });
      res.end();
      return;
    }
    if (rv === undefined) {
      for (const o of this.#objects[resource].values()) if (match(o)) this.#write(w, { type: 'ADDED', object: o });
    } else {
      for (const e of this.#log) {
        if (e.rv > rv && e.resource === resource && match(e.object)) this.#write(w, { type: e.type, object: e.object });
      }
    }
    const timeout = Number(query.get('timeoutSeconds') ?? 0);
    if (timeout > 0) w.timer = setTimeout(() => this.#closeWatch(w), timeout * 1000);
    this.#watchers.add(w);
    res.on('close', () => {
      clearTimeout(w.timer);
      this.#watchers.delete(w);
    });
  }
}

/** A matcher for the field selectors the clients here use: metadata.name / metadata.namespace with =, ==, !=. */
function fieldSelector(text: string, namespace: string | undefined): (o: KubeObject) => boolean {
  const tests: ((o: KubeObject) => boolean)[] = [];
  if (namespace !== undefined) tests.push((o) => o.metadata?.namespace === namespace);
  for (const term of text.split(',').filter((t) => t !== '')) {
    const m = /^(metadata\.name|metadata\.namespace)(==|=|!=)(.*)$/.exec(term);
    if (!m) throw new Error(`unsupported field selector term ${JSON.stringify(term)}`);
    const field = m[1] === 'metadata.name' ? 'name' : 'namespace';
    const want = m[3];
    const equal = m[2] !== '!=';
    tests.push((o) => (o.metadata?.[field] === want) === equal);
  }
  return (o) => tests.every((t) => t(o));
}
