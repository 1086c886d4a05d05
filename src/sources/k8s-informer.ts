// One resilient informer: client-node's ListWatch (list, then watch from the list's resourceVersion,
// relist on 410 Gone), plus what it lacks, read from client-node 2.0.1's cache.js and watch.js:
//
// - ListWatch restarts itself only after a clean end of the watch stream (backing off 1 s doubling to
//   30 s, reset by any event), after a client-side inactivity timeout (30 s without a byte, at once),
//   and after a 410 (an HTTP 410 or an ERROR event holding a 410 Status: it clears its resourceVersion,
//   and the next round relists). Any other failure (connection refused or reset, a 5xx, a failed list)
//   is passed to its 'error' callbacks and the informer STOPS for good. Here such an error restarts it
//   after a capped, jittered exponential backoff; the restart resumes the watch from the last
//   resourceVersion (no relist unless that is too old), and the cache keeps its objects meanwhile.
// - Its watches do not ask for bookmarks; here every watch sends allowWatchBookmarks=true so a quiet
//   resource's resourceVersion stays fresh and a reconnect rarely meets a 410.
// - Its reconnect delay (delayFn) ignores stop(), and after the delay it opens a new watch even when
//   stopped; here the delay is cut short on stop and the watch refuses to open once stopped.
// - It lists without paging; here the list pages with limit/continue and falls back to one unpaged list
//   when a continue token expires (410), as client-go's pager does.
// - It caches whole objects; here an optional `compact` keeps only what the caller reads (client-go's
//   transform), so watching every Node of a large cluster holds names and addresses, not node status.

import { type KubeConfig, type KubernetesListObject, type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';

export interface Backoff {
  /** First retry delay (default 500 ms). */
  initialMs: number;
  /** Cap of the retry delay (default 30 s). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };

/** One page request. */
export interface PageRequest {
  limit?: number;
  continue?: string;
}

/** One page of a list, items in the wire shape. */
export interface Page<T> {
  items: T[];
  resourceVersion: string;
  /** Set when more pages follow. */
  continue: string | undefined;
}

export interface InformerOptions<T extends KubernetesObject> {
  /** What is watched, for messages (`services`). */
  name: string;
  kubeConfig: KubeConfig;
  /** The watch path, e.g. `/api/v1/services`. */
  path: string;
  fieldSelector?: string;
  /**
   * What the cache keeps of each listed or watched object (default: all of it). It must keep
   * metadata.name, .namespace and .resourceVersion, which the cache is keyed and versioned by.
   */
  compact?(obj: T): T;
  /** Fetches one page of the list. */
  listPage(request: PageRequest): Promise<Page<T>>;
  pageSize: number;
  /** Time allowed for a whole (paged) list. */
  listTimeoutMs: number;
  backoff: Backoff;
  /** An object was added, changed or deleted (also for each difference a relist finds). */
  onChange(verb: 'add' | 'update' | 'delete', obj: T): void;
  /** A list completed: the cache now holds what it returned. */
  onListed(): void;
  /** A failure; `retryInMs` says when the informer tries again. */
  onError(error: Error, retryInMs: number): void;
}

export interface InformerStatus {
  listed: boolean;
  /** When the last list or watch event arrived. */
  lastContact: Date | undefined;
  resourceVersion: string;
  restarts: number;
  lastError: string | undefined;
}

/** A delay with full jitter in [d/2, d], so many agents restarted together do not reconnect in step. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms / 2 + (random() * ms) / 2);
}

/** The backoff delay before retry number `attempt` (0-based): initial × 2^attempt, capped. */
export function backoffDelay(backoff: Backoff, attempt: number): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
}

/** client-node's Watch with bookmarks asked for, activity reported, and no new watch once stopped. */
interface WatchOwner {
  readonly stopped: boolean;
  contact(): void;
  /** The object as the cache should keep it. */
  compact(obj: unknown): unknown;
}

class InformerWatch extends Watch {
  readonly #owner: WatchOwner;

  constructor(config: KubeConfig, owner: WatchOwner) {
    super(config);
    this.#owner = owner;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.#owner.stopped) return new AbortController();
    try {
      return await super.watch(
        path,
        { ...queryParams, allowWatchBookmarks: true },
        (phase, obj, raw) => {
          this.#owner.contact();
          const object = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? this.#owner.compact(obj) : obj;
          callback(phase, object, raw);
        },
        done,
      );
    } catch (err) {
      // Watch.watch throws (rather than calling done) when authentication cannot be applied, e.g. an
      // unreadable token file. ListWatch awaits it where nothing catches: hand it to done() instead,
      // so it reaches the 'error' callbacks and is retried rather than crashing the process.
      done(err);
      return new AbortController();
    }
  }
}

export class ResilientInformer<T extends KubernetesObject> {
  readonly #o: InformerOptions<T>;
  readonly #lw: ListWatch<T>;
  #stopped = true;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #sleeps = new Set<() => void>();
  #status: InformerStatus = { listed: false, lastContact: undefined, resourceVersion: '', restarts: 0, lastError: undefined };

  constructor(options: InformerOptions<T>) {
    this.#o = options;
    const watch = new InformerWatch(options.kubeConfig, this);
    this.#lw = new ListWatch<T>(options.path, watch, () => this.#list(), false, undefined, options.fieldSelector, {
      delayFn: (ms) => this.#sleep(ms),
    });
    this.#lw.on('add', (obj) => options.onChange('add', obj));
    this.#lw.on('update', (obj) => options.onChange('update', obj));
    this.#lw.on('delete', (obj) => options.onChange('delete', obj));
    this.#lw.on('error', (err) => this.#failed(err));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Starts listing and watching; failures are retried, never thrown. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#lw.start().catch((err: unknown) => this.#failed(err));
  }

  /** Stops; the cache keeps its objects. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    for (const wake of this.#sleeps) wake();
    // ListWatch.stop() aborts the open watch; the abort reaches its 'error' callbacks, which #failed ignores.
    void this.#lw.stop();
  }

  /** The cached objects. */
  list(): T[] {
    return [...this.#lw.list()];
  }

  status(): InformerStatus {
    return { ...this.#status, resourceVersion: this.#lw.latestResourceVersion() };
  }

  compact(obj: unknown): unknown {
    return this.#o.compact ? this.#o.compact(obj as T) : obj;
  }

  /** Called for every watch event (bookmarks too): the API server is reachable, so the backoff resets. */
  contact(): void {
    this.#attempt = 0;
    this.#status.lastContact = new Date();
  }

  /** ListWatch's own reconnect delay (1 s doubling to 30 s), capped by ours and cut short by stop(). */
  #sleep(ms: number): Promise<void> {
    const wait = jittered(Math.min(ms, this.#o.backoff.maxMs));
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, wait);
      this.#sleeps.add(wake);
    });
  }

  #failed(err: unknown): void {
    if (this.#stopped) return;
    const delay = jittered(backoffDelay(this.#o.backoff, this.#attempt++));
    const error = describe(this.#o.name, err, delay);
    this.#status.lastError = error.message;
    this.#o.onError(error, delay);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#stopped) return;
      this.#status.restarts++;
      // start() keeps the resourceVersion: the watch resumes where it stopped, or relists after a 410.
      this.#lw.start().catch((e: unknown) => this.#failed(e));
    }, delay);
  }

  async #list(): Promise<KubernetesListObject<T>> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`list timed out after ${this.#o.listTimeoutMs} ms`)), this.#o.listTimeoutMs);
    });
    try {
      const list = await Promise.race([this.#pagedList(), timeout]);
      this.#attempt = 0;
      this.#status.listed = true;
      this.#status.lastContact = new Date();
      // ListWatch fills its cache right after this promise settles, before any macrotask runs.
      setImmediate(() => {
        if (!this.#stopped) this.#o.onListed();
      });
      return list;
    } finally {
      clearTimeout(timer);
    }
  }

  async #pagedList(): Promise<KubernetesListObject<T>> {
    const items: T[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    for (;;) {
      let page: Page<T>;
      try {
        page = await this.#o.listPage({ limit: this.#o.pageSize, ...(token ? { continue: token } : {}) });
      } catch (err) {
        if (token === undefined || statusCode(err) !== 410) throw err;
        // An expired continue token: the consistent snapshot is gone; take one unpaged list instead.
        const whole = await this.#o.listPage({});
        const compact = this.#o.compact;
        const all = compact ? whole.items.map((item) => compact(item)) : whole.items;
        return { metadata: { resourceVersion: whole.resourceVersion }, items: all };
      }
      // Every page of a consistent list carries the first page's resourceVersion.
      if (token === undefined) resourceVersion = page.resourceVersion;
      const compact = this.#o.compact;
      items.push(...(compact ? page.items.map((item) => compact(item)) : page.items));
      token = page.continue || undefined;
      if (!token) break;
    }
    return { metadata: { resourceVersion }, items };
  }
}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

function describe(name: string, err: unknown, retryInMs: number): Error {
  const code = statusCode(err);
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  const text = e?.message ?? String(err);
  const detail = [code !== undefined ? `HTTP ${code}` : '', text, cause && !text.includes(cause) ? `(${cause})` : '']
    .filter(Boolean)
    .join(' ');
  return new Error(`kubernetes: ${name}: ${detail}; retrying in ${retryInMs} ms`, { cause: err });
}
