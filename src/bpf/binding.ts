// Typed wrapper over the libbpf addon: BpfObject, BpfMap, BpfLink and a few queries. It knows
// nothing about services; keys and values are Buffers in the map's own layout.
//
// Every failure is a BpfError whose `code` is the errno name ('ENOENT', 'E2BIG', ...), as with fs.
import { readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import { ipv4ToBytes, ipv6ToBytes } from './ip-bytes.ts';
import {
  type BatchResult,
  type NativeBpfObject,
  type NativeFd,
  type NativeTestRun,
  type NativeUdpTarget,
  native,
  type Status,
} from './native.ts';

// The statuses this wrapper reacts to or makes, negative as the addon returns them.
const EBADF = -constants.errno.EBADF;
const EINVAL = -constants.errno.EINVAL;
const ENOENT = -constants.errno.ENOENT;
const ENOSPC = -constants.errno.ENOSPC;
/** The kernel's internal ENOTSUPP (no libc name): a map type without batch ops. */
const ENOTSUPP = -524;
const ENODATA = -constants.errno.ENODATA;

/** A failed libbpf or bpf() call. */
export class BpfError extends Error {
  /** The libbpf function (or syscall) that failed, e.g. 'bpf_map_update_elem'. */
  readonly operation: string;
  /** Positive errno. */
  readonly errno: number;
  /** The errno name, e.g. 'ENOENT'. */
  readonly code: string;
  /** For object open/load/attach failures: the tail of what libbpf and the verifier printed. */
  readonly log?: string;

  constructor(operation: string, status: number, detail?: string, log?: string) {
    const code = getSystemErrorName(status);
    const text = getSystemErrorMap().get(status)?.[1] ?? 'unknown error';
    super(`${operation}${detail ? `(${detail})` : ''} failed: ${code} (${text})`);
    this.name = 'BpfError';
    this.operation = operation;
    this.errno = -status;
    this.code = code;
    if (log) this.log = log;
  }
}

// The addon throws a BpfError itself for a Buffer whose size does not fit the map.
native.setErrorClass(BpfError);

function isStatus(r: unknown): r is Status {
  return typeof r === 'number' && r < 0;
}

/** Returns r unless it is a negative errno, which it throws as a BpfError. */
function check<T>(r: T | Status, operation: string, detail?: string, log?: string): T {
  if (isStatus(r)) throw new BpfError(operation, r, detail, log);
  return r as T;
}

/** The tail of what libbpf printed during a call that failed, for BpfError.log (the last 8 KiB). */
function logTail(text: string): string | undefined {
  const log = text.trimEnd();
  return log ? log.slice(-8192) : undefined;
}

/** Runs a libbpf object call with its log captured; throws a BpfError carrying the log. */
function checkLogged<T>(call: () => T | Status, operation: string, detail?: string): T {
  native.takeLog();
  const r = call();
  if (isStatus(r)) throw new BpfError(operation, r, detail, logTail(native.takeLog()));
  native.takeLog();
  return r as T;
}

/** Throws EBADF unless the fd is still open: a closed owner must fail loudly, not hit fd -1. */
function openFd(owner: NativeFd | undefined, operation: string): number {
  if (!owner || owner.fd < 0) throw new BpfError(operation, EBADF, 'closed');
  return owner.fd;
}

/**
 * Checks that fd is the kind of bpf object expected, since a pin may hold a map, program or link.
 * The kernel names the inode 'bpf-map' or 'bpf-link' ('bpf_link' for a link fd made by attaching).
 */
function expectKind(owner: NativeFd, kind: 'map' | 'link', operation: string, path: string): void {
  const inode = readlinkSync(`/proc/self/fd/${owner.fd}`);
  if (inode !== `anon_inode:bpf-${kind}` && inode !== `anon_inode:bpf_${kind}`) {
    owner.close();
    throw new BpfError(operation, EINVAL, `${path} is not a bpf ${kind}`);
  }
}

/** libbpf_num_possible_cpus(): the number of slots in a per-CPU value. */
export function possibleCpus(): number {
  return check(native.possibleCpus(), 'libbpf_num_possible_cpus');
}

export type MapType = 'hash' | 'array' | 'percpu_hash' | 'percpu_array' | 'lru_hash';

export interface MapInfo {
  id: number;
  /** enum bpf_map_type. */
  type: number;
  /** libbpf's name of the type, e.g. 'lru_hash'. */
  typeName: string;
  name: string;
  keySize: number;
  /** Per element, as the kernel reports it (per CPU for per-CPU maps). */
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** Bytes charged to the map, from /proc/self/fdinfo. */
  memlock?: number;
}

/** One page of lookupBatch(). */
export interface BatchPage {
  /** count keys, back to back. */
  keys: Buffer;
  /** count values of BpfMap.valueBufferSize bytes each. */
  values: Buffer;
  count: number;
  /** Pass to the next lookupBatch(); undefined once the map is exhausted. */
  nextCursor: Buffer | undefined;
}

const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;
export type UpdateFlag = keyof typeof UPDATE_FLAGS;

/**
 * A map fd this object owns. The addon checks every key and value Buffer against the map's sizes
 * (the kernel trusts the lengths) and throws a BpfError with code 'EINVAL' naming both.
 */
export class BpfMap {
  #fd: NativeFd;
  /** Key bytes. */
  readonly keySize: number;
  /** Value bytes per element as the kernel reports it (per CPU for per-CPU maps). */
  readonly valueSize: number;
  /** Bytes of a value Buffer in lookup/update: valueSize, or possibleCpus() * roundup(valueSize, 8) for per-CPU maps. */
  readonly valueBufferSize: number;
  readonly perCpu: boolean;

  private constructor(fd: NativeFd) {
    this.#fd = fd;
    const info = check(native.mapInfo(fd.fd), 'bpf_map_get_info_by_fd');
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.perCpu = info.typeName.startsWith('percpu_') || info.typeName === 'lru_percpu_hash';
    this.valueBufferSize = this.perCpu ? possibleCpus() * Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
  }

  /** @internal Adopts an fd the addon just opened (used by BpfObject.map). */
  static adopt(fd: NativeFd): BpfMap {
    try {
      return new BpfMap(fd);
    } catch (err) {
      fd.close();
      throw err;
    }
  }

  /** bpf_obj_get: opens the map pinned at path. */
  static fromPin(path: string): BpfMap {
    const fd = check(native.objGet(path), 'bpf_obj_get', path);
    expectKind(fd, 'map', 'bpf_obj_get', path);
    return BpfMap.adopt(fd);
  }

  /** bpf_map_create: a new map, for tests and scratch use. */
  static create(o: { type: MapType; keySize: number; valueSize: number; maxEntries: number; name?: string; flags?: number }): BpfMap {
    const fd = check(
      native.mapCreate(o.type, o.name ?? '', o.keySize, o.valueSize, o.maxEntries, o.flags ?? 0),
      'bpf_map_create',
      o.name ?? o.type,
    );
    return BpfMap.adopt(fd);
  }

  /** The fd, valid until close(); -1 after. */
  get fd(): number {
    return this.#fd.fd;
  }

  /** bpf_map_get_info_by_fd, plus the memlock charge from fdinfo. */
  info(): MapInfo {
    const fd = openFd(this.#fd, 'bpf_map_get_info_by_fd');
    const info: MapInfo = check(native.mapInfo(fd), 'bpf_map_get_info_by_fd');
    const memlock = /^memlock:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (memlock) info.memlock = Number(memlock[1]);
    return info;
  }

  /** bpf_map_lookup_elem: the value, or undefined when the key is absent. */
  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueBufferSize);
    const rc = native.mapLookup(this.#fd, key, value);
    if (rc === ENOENT) return undefined;
    check(rc, 'bpf_map_lookup_elem');
    return value;
  }

  /** bpf_map_update_elem. A full hash map fails with code 'E2BIG'. */
  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    check(native.mapUpdate(this.#fd, key, value, UPDATE_FLAGS[flag]), 'bpf_map_update_elem');
  }

  /** bpf_map_delete_elem: false when the key was absent. */
  delete(key: Buffer): boolean {
    const rc = native.mapDelete(this.#fd, key);
    if (rc === ENOENT) return false;
    check(rc, 'bpf_map_delete_elem');
    return true;
  }

  /**
   * Walks the keys with bpf_map_get_next_key. If the current key is deleted meanwhile, a hash
   * map restarts from its first key, so concurrent deletes may repeat keys.
   */
  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const rc = native.mapGetNextKey(this.#fd, prev, next);
      if (rc === ENOENT) return;
      check(rc, 'bpf_map_get_next_key');
      yield next;
      prev = next;
    }
  }

  /**
   * bpf_map_lookup_batch: up to maxCount entries after cursor (from the start when omitted).
   * A hash bucket is never split, so a bucket larger than maxCount makes this retry larger.
   */
  lookupBatch(cursor?: Buffer, maxCount = 256): BatchPage {
    // Array maps use a key as the cursor, hash maps a u32 bucket index.
    const nextCursor = Buffer.alloc(Math.max(this.keySize, 8));
    for (let want = maxCount; ; want *= 2) {
      const keys = Buffer.alloc(want * this.keySize);
      const values = Buffer.alloc(want * this.valueBufferSize);
      const [rc, count]: BatchResult = native.mapLookupBatch(this.#fd, cursor ?? null, nextCursor, keys, values, want);
      // Per-CPU arrays have batch ops only since Linux 5.13: page through them a key at a time.
      if (rc === ENOTSUPP) return this.#lookupByKeys(cursor, maxCount);
      if (rc === ENOSPC && count === 0) continue;
      if (rc !== ENOENT) check(rc, 'bpf_map_lookup_batch');
      return {
        keys: keys.subarray(0, count * this.keySize),
        values: values.subarray(0, count * this.valueBufferSize),
        count,
        nextCursor: rc === ENOENT ? undefined : nextCursor,
      };
    }
  }

  /** lookupBatch's page, read with get_next_key and lookup: the cursor is the last key returned. */
  #lookupByKeys(cursor: Buffer | undefined, maxCount: number): BatchPage {
    const keys = Buffer.alloc(maxCount * this.keySize);
    const values = Buffer.alloc(maxCount * this.valueBufferSize);
    let prev: Buffer | null = cursor ?? null;
    let count = 0;
    while (count < maxCount) {
      const key = keys.subarray(count * this.keySize, (count + 1) * this.keySize);
      const rc = native.mapGetNextKey(this.#fd, prev, key);
      if (rc === ENOENT)
        return {
          keys: keys.subarray(0, count * this.keySize),
          values: values.subarray(0, count * this.valueBufferSize),
          count,
          nextCursor: undefined,
        };
      check(rc, 'bpf_map_get_next_key');
      const lrc = native.mapLookup(this.#fd, key, values.subarray(count * this.valueBufferSize, (count + 1) * this.valueBufferSize));
      prev = key;
      if (lrc === ENOENT) continue; // deleted meanwhile (hash maps only)
      check(lrc, 'bpf_map_lookup_elem');
      count++;
    }
    return { keys, values, count, nextCursor: Buffer.from(prev!) };
  }

  /** Every entry, read with lookupBatch pages. */
  *entries(pageSize = 256): Generator<[key: Buffer, value: Buffer]> {
    let cursor: Buffer | undefined;
    do {
      const page = this.lookupBatch(cursor, pageSize);
      for (let i = 0; i < page.count; i++) {
        yield [
          page.keys.subarray(i * this.keySize, (i + 1) * this.keySize),
          page.values.subarray(i * this.valueBufferSize, (i + 1) * this.valueBufferSize),
        ];
      }
      cursor = page.nextCursor;
    } while (cursor);
  }

  /** bpf_map_update_batch: count keys and values, back to back, filling both Buffers exactly. */
  updateBatch(keys: Buffer, values: Buffer, count = keys.length / this.keySize, flag: UpdateFlag = 'any'): void {
    const { error } = this.updateBatchSome(keys, values, count, flag);
    if (error) throw error;
  }

  /**
   * updateBatch() that reports a failure instead of throwing: the kernel writes the entries in order
   * and stops at the first that fails, so `done` leading entries are in and the rest are not.
   */
  updateBatchSome(
    keys: Buffer,
    values: Buffer,
    count = keys.length / this.keySize,
    flag: UpdateFlag = 'any',
  ): { done: number; error?: BpfError } {
    const [rc, done] = native.mapUpdateBatch(this.#fd, keys, values, count, UPDATE_FLAGS[flag]);
    return isStatus(rc) ? { done, error: new BpfError('bpf_map_update_batch', rc, `${done} of ${count} done`) } : { done: count };
  }

  /** bpf_map_delete_batch of count keys filling keys exactly; fails with 'ENOENT' at the first absent key (those before are gone). */
  deleteBatch(keys: Buffer, count = keys.length / this.keySize): void {
    const [rc, done] = native.mapDeleteBatch(this.#fd, keys, count);
    check(rc, 'bpf_map_delete_batch', `${done} of ${count} done`);
  }

  /** bpf_obj_pin: pins the map at path (on a bpffs). */
  pin(path: string): void {
    check(native.objPin(openFd(this.#fd, 'bpf_obj_pin'), path), 'bpf_obj_pin', path);
  }

  /** Closes this fd; the map lives on while pins, programs or other fds hold it. */
  close(): void {
    this.#fd.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface LinkInfo {
  id: number;
  progId: number;
  /** enum bpf_link_type (BPF_LINK_TYPE_CGROUP = 3, BPF_LINK_TYPE_ITER = 4). */
  type: number;
  /** For cgroup links: the cgroup's id (its inode number). */
  cgroupId?: number;
}

/** A bpf_link fd this object owns. Closing it detaches the link unless it is pinned. */
export class BpfLink {
  #fd: NativeFd;
  #pinPath: string | undefined;

  private constructor(fd: NativeFd, pinPath?: string) {
    this.#fd = fd;
    this.#pinPath = pinPath;
  }

  /** @internal Adopts an fd the addon just opened (used by BpfObject attach calls). */
  static adopt(fd: NativeFd): BpfLink {
    return new BpfLink(fd);
  }

  /** Opens the link pinned at path (bpf_link__open's bpf_obj_get); unpin() then defaults to path. */
  static fromPin(path: string): BpfLink {
    const fd = check(native.objGet(path), 'bpf_obj_get', path);
    expectKind(fd, 'link', 'bpf_obj_get', path);
    return new BpfLink(fd, path);
  }

  /** The fd, valid until close(); -1 after. */
  get fd(): number {
    return this.#fd.fd;
  }

  /** bpf_obj_pin: the link then stays attached after every fd is closed, until unpinned. */
  pin(path: string): void {
    check(native.objPin(openFd(this.#fd, 'bpf_obj_pin'), path), 'bpf_obj_pin', path);
    this.#pinPath = path;
  }

  /** Removes the pin (the one made by pin() or opened by fromPin() unless path is given). */
  unpin(path = this.#pinPath): void {
    if (path === undefined) throw new BpfError('unlink', EINVAL, 'the link has no known pin');
    try {
      unlinkSync(path);
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).errno;
      throw new BpfError('unlink', typeof errno === 'number' ? errno : EINVAL, path);
    }
    if (path === this.#pinPath) this.#pinPath = undefined;
  }

  /** bpf_link_update: swaps in another program atomically (no moment without a program). */
  updateProgram(programFd: number): void {
    check(native.linkUpdate(openFd(this.#fd, 'bpf_link_update'), programFd), 'bpf_link_update');
  }

  /** bpf_link_get_info_by_fd. */
  info(): LinkInfo {
    return check(native.linkInfo(openFd(this.#fd, 'bpf_link_get_info_by_fd')), 'bpf_link_get_info_by_fd');
  }

  /** Closes our fd; a pinned link stays attached. */
  close(): void {
    this.#fd.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A libbpf bpf_object: open, configure, load, then take maps and attach programs. */
export class BpfObject {
  #obj: NativeBpfObject;
  readonly path: string;

  private constructor(obj: NativeBpfObject, path: string) {
    this.#obj = obj;
    this.path = path;
  }

  /** bpf_object__open_file. */
  static open(path: string): BpfObject {
    const obj = new native.BpfObject();
    checkLogged(() => obj.open(path), 'bpf_object__open_file', path);
    return new BpfObject(obj, path);
  }

  /** Map names as libbpf reports them (internal maps may read e.g. 'binding_.rodata'; find them as '.rodata'). */
  mapNames(): string[] {
    return check(this.#obj.mapNames(), 'bpf_object__for_each_map', this.path);
  }

  programNames(): string[] {
    return check(this.#obj.programNames(), 'bpf_object__for_each_program', this.path);
  }

  /** bpf_map__set_max_entries; before load. */
  setMaxEntries(map: string, n: number): void {
    check(this.#obj.setMaxEntries(map, n), 'bpf_map__set_max_entries', map);
  }

  /**
   * bpf_map__set_pin_path; before load. At load libbpf reuses a compatible map pinned there (same
   * type, sizes, max_entries, flags), fails with a BpfError if an incompatible one is, or pins the
   * new map there.
   */
  setPinPath(map: string, path: string): void {
    check(this.#obj.setPinPath(map, path), 'bpf_map__set_pin_path', map);
  }

  /**
   * bpf_map__reuse_fd; before load. The object uses `map` (the same kernel map, e.g. one another
   * object created) instead of creating its own; its definition must match.
   */
  reuseMap(name: string, map: BpfMap): void {
    check(this.#obj.reuseMapFd(name, map.fd), 'bpf_map__reuse_fd', name);
  }

  /** A copy of the map's initial data (e.g. '.rodata'), or undefined for a map without any. */
  initialValue(map: string): Buffer | undefined {
    const r = this.#obj.initialValue(map);
    if (r === ENODATA) return undefined;
    return check(r, 'bpf_map__initial_value', map);
  }

  /** bpf_map__set_initial_value; before load, and exactly the map's value size (initialValue(map).length). */
  setInitialValue(map: string, data: Buffer): void {
    check(this.#obj.setInitialValue(map, data), 'bpf_map__set_initial_value', map);
  }

  /** bpf_object__load. On failure the BpfError's log holds the verifier's explanation. */
  load(): void {
    checkLogged(() => this.#obj.load(), 'bpf_object__load', this.path);
  }

  /**
   * load() on a libuv worker thread, so the event loop keeps turning while the verifier works;
   * rejects with the BpfError load() would throw (its log is this load's alone). Until it
   * settles, every other method of this object fails with code 'EBUSY', close() included.
   */
  async loadAsync(): Promise<void> {
    const [status, log] = await this.#obj.loadAsync();
    if (isStatus(status)) throw new BpfError('bpf_object__load', status, this.path, logTail(log));
  }

  /** A loaded map, with an fd of its own (dup) that stays valid after this object closes. */
  map(name: string): BpfMap {
    return BpfMap.adopt(check(this.#obj.mapFd(name), 'bpf_map__fd', name));
  }

  /** bpf_program__fd: valid while this object is open. */
  programFd(name: string): number {
    return check(this.#obj.programFd(name), 'bpf_program__fd', name);
  }

  /** bpf_program__attach_cgroup: a bpf_link (the program's attach type comes from its SEC()). */
  attachCgroup(program: string, cgroupPath: string): BpfLink {
    const fd = checkLogged(() => this.#obj.attachCgroup(program, cgroupPath), 'bpf_program__attach_cgroup', `${program}, ${cgroupPath}`);
    return BpfLink.adopt(fd);
  }

  /** bpf_program__attach_iter: a link to read with readIterator(). */
  attachIter(program: string): BpfLink {
    return BpfLink.adopt(checkLogged(() => this.#obj.attachIter(program), 'bpf_program__attach_iter', program));
  }

  /** BPF_PROG_TEST_RUN of a packet program (XDP, tc) on one packet; see testRun(). */
  testRun(program: string, options: TestRunOptions): TestRunResult {
    return testRun(this.programFd(program), options);
  }

  /** Attaches an XDP program to a device through a bpf_link (kernel 5.9+); see attachXdp(). */
  attachXdp(program: string, ifindex: number, mode: XdpMode, netns?: string): BpfLink {
    return attachXdp(this.programFd(program), ifindex, mode, netns);
  }

  /** Attaches a tc program to a device's ingress or egress; see attachTc(). */
  attachTc(program: string, ifindex: number, direction: 'ingress' | 'egress', netns?: string, mode: TcMode = 'auto'): TcAttachment {
    return attachTc(this.programFd(program), ifindex, direction, netns, mode);
  }

  /**
   * bpf_object__close: maps and programs live on while links, pins or map fds hold them. Refused
   * with code 'EBUSY' while loadAsync() runs (it would free the object under the loader).
   */
  close(): void {
    check(this.#obj.close(), 'bpf_object__close', this.path);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * bpf_iter_create + read to EOF. A socket iterator walks the sockets of the netns the iterator is
 * created in: give netnsPath (/proc/PID/ns/net, /run/netns/NAME) to walk another one; the addon
 * does that on a short-lived thread, so this thread's netns never changes.
 */
export function readIterator(link: BpfLink, netnsPath?: string): string {
  return check(native.iterRead(iterLinkFd(link), netnsPath), iterOperation(netnsPath), netnsPath);
}

/**
 * readIterator on a libuv worker thread (the netns is entered by a thread of its own, so no pool
 * thread changes namespace); rejects with the BpfError readIterator would throw. The worker reads
 * through its own dup of the link's fd: closing the link meanwhile is safe and does not wait.
 */
export async function readIteratorAsync(link: BpfLink, netnsPath?: string): Promise<string> {
  return check(await native.iterReadAsync(iterLinkFd(link), netnsPath), iterOperation(netnsPath), netnsPath);
}

function iterLinkFd(link: BpfLink): number {
  const fd = link.fd;
  if (fd < 0) throw new BpfError('bpf_iter_create', EBADF, 'closed link');
  return fd;
}

function iterOperation(netnsPath: string | undefined): string {
  return netnsPath ? 'bpf_iter_create in netns' : 'bpf_iter_create';
}

/** bpf_prog_query: ids of the programs attached directly to the cgroup, e.g. for 'cgroup_inet4_connect'. */
export function cgroupPrograms(cgroupPath: string, attachType: string): number[] {
  return check(native.progQuery(cgroupPath, attachType), 'bpf_prog_query', `${cgroupPath}, ${attachType}`);
}

export interface ProgramStats {
  id: number;
  /** enum bpf_prog_type. */
  type: number;
  /** The kernel's name, truncated to 15 characters. */
  name: string;
  tag: string;
  /** Zero unless run-time stats are on (enableRunTimeStats() or kernel.bpf_stats_enabled). */
  runTimeNs: number;
  runCount: number;
}

/** bpf_prog_get_info_by_fd, for a program given by fd (e.g. BpfObject.programFd) or by id. */
export function programStats(program: { fd: number } | { id: number }): ProgramStats {
  if ('fd' in program) return check(native.progInfo(program.fd), 'bpf_prog_get_info_by_fd');
  const fd = check(native.progGetFdById(program.id), 'bpf_prog_get_fd_by_id', String(program.id));
  try {
    return check(native.progInfo(fd.fd), 'bpf_prog_get_info_by_fd');
  } finally {
    fd.close();
  }
}

/** An open bpf_enable_stats() handle: stats count until it is closed. */
export interface StatsHandle {
  close(): void;
}

/** bpf_enable_stats(BPF_STATS_RUN_TIME): runTimeNs/runCount count while the handle is open. */
export function enableRunTimeStats(): StatsHandle {
  const fd = check(native.enableRunTimeStats(), 'bpf_enable_stats');
  return { close: () => fd.close() };
}

/** A backend whose connected UDP sockets are to end. */
export interface UdpPeer {
  family: 4 | 6;
  /** An IP literal of the family, or its network-order bytes (4 or 16). */
  address: string | Buffer;
  port: number;
}

export interface UdpDestroyResult {
  /** Sockets ended (their owners' next recv/send fails with ECONNABORTED). */
  destroyed: number;
  /** Sockets that matched but whose SOCK_DESTROY failed (other than being closed meanwhile). */
  errors: number;
}

function nativeUdpTarget(peer: UdpPeer, i: number): NativeUdpTarget {
  const { family, address, port } = peer;
  if (family !== 4 && family !== 6) throw new RangeError(`targets[${i}].family must be 4 or 6`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`targets[${i}].port must be 1..65535`);
  let bytes: Buffer;
  if (Buffer.isBuffer(address)) bytes = address;
  else if (typeof address === 'string') bytes = family === 4 ? ipv4ToBytes(address) : ipv6ToBytes(address);
  else throw new TypeError(`targets[${i}].address must be a string or a Buffer`);
  if (bytes.length !== (family === 4 ? 4 : 16)) {
    throw new RangeError(`targets[${i}].address holds ${bytes.length} bytes, not an IPv${family} address`);
  }
  return { family, address: bytes, port };
}

/**
 * Ends the UDP sockets connected to any of targets through sock_diag's SOCK_DESTROY, as `ss -K`
 * does: the fallback for kernels without the bpf_sock_destroy kfunc (before 6.5). An IPv4 target
 * also ends dual-stack IPv6 sockets connected to its ::ffff:a.b.c.d form. Works in the caller's
 * netns, or in netnsPath (/proc/PID/ns/net, /run/netns/NAME) entered on a short-lived thread.
 *
 * Throws a BpfError (operation 'sock_diag') with code 'EOPNOTSUPP' when the kernel has no
 * SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY off), 'EPERM' without CAP_NET_ADMIN over the netns,
 * 'ENOENT' when netnsPath is missing or the kernel has no UDP sock_diag (CONFIG_INET_UDP_DIAG off).
 */
export function destroyUdpSockets(targets: readonly UdpPeer[], netnsPath?: string): UdpDestroyResult {
  const list = targets.map(nativeUdpTarget);
  return check(native.destroyUdpSockets(list, netnsPath), 'sock_diag', netnsPath);
}

/**
 * destroyUdpSockets on a libuv worker thread (the netns entered by a thread of its own); rejects
 * with the error destroyUdpSockets would throw, a RangeError or TypeError for a bad target included.
 */
export async function destroyUdpSocketsAsync(targets: readonly UdpPeer[], netnsPath?: string): Promise<UdpDestroyResult> {
  const list = targets.map(nativeUdpTarget);
  return check(await native.destroyUdpSocketsAsync(list, netnsPath), 'sock_diag', netnsPath);
}

export interface TestRunOptions {
  /** The packet, from its Ethernet header. */
  data: Buffer;
  /** Runs timed; the packet is not reset between runs, so only the first sees `data`. Default 1. */
  repeat?: number;
  /** The context (struct xdp_md, struct __sk_buff) to run with, e.g. xdpContext(); none by default. */
  ctxIn?: Buffer;
  /** Run in this netns (/run/netns/NAME): its FIB, neighbours and devices are what the program sees. */
  netns?: string;
  /** Room for the packet the program leaves (default: the input plus 512 bytes). */
  outSize?: number;
}

export type TestRunResult = NativeTestRun;

/** bpf_prog_test_run_opts: the verdict, the packet as the program left it and the ns per run. */
export function testRun(programFd: number, o: TestRunOptions): TestRunResult {
  const repeat = o.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1) throw new RangeError('repeat must be a positive integer');
  const outSize = o.outSize ?? o.data.length + 512;
  return check(native.progTestRun(programFd, o.data, repeat, o.ctxIn ?? null, outSize, o.netns), 'bpf_prog_test_run_opts');
}

/** A struct xdp_md for testRun: a packet of `length` bytes arriving on device ingressIfindex. */
export function xdpContext(ingressIfindex: number, length: number): Buffer {
  const md = Buffer.alloc(24);
  md.writeUInt32LE(length, 4); // data_end: data is 0, no metadata
  md.writeUInt32LE(ingressIfindex, 12);
  return md;
}

/** 'native': in the driver (XDP_FLAGS_DRV_MODE); 'generic': on the skb (XDP_FLAGS_SKB_MODE), any device. */
export type XdpMode = 'native' | 'generic';
const XDP_FLAGS = { generic: 2, native: 4 } as const;

/** bpf_link_create(BPF_XDP): a link that detaches the program when closed unless pinned. */
export function attachXdp(programFd: number, ifindex: number, mode: XdpMode, netns?: string): BpfLink {
  const flags = XDP_FLAGS[mode];
  if (flags === undefined) throw new TypeError("mode must be 'native' or 'generic'");
  return BpfLink.adopt(
    checkLogged(() => native.xdpAttach(programFd, ifindex, flags, netns), 'bpf_link_create', `xdp ${mode}, ifindex ${ifindex}`),
  );
}

/**
 * A tc program on a device: a tcx bpf_link where the kernel has tcx (6.6+), else a filter on a
 * clsact qdisc, which nothing but the device holds (close() removes it; it cannot be pinned).
 */
export class TcAttachment {
  readonly kind: 'tcx' | 'clsact';
  /** The tcx link (pin it to outlive the agent); undefined for clsact. */
  readonly link: BpfLink | undefined;
  readonly #detach: () => void;

  constructor(kind: 'tcx' | 'clsact', link: BpfLink | undefined, detach: () => void) {
    this.kind = kind;
    this.link = link;
    this.#detach = detach;
  }

  /** Closes the tcx link (a pinned one stays attached) or removes the clsact filter. */
  close(): void {
    this.#detach();
  }
}

/** 'auto': tcx where the kernel has it, else clsact; 'tcx' or 'clsact': only that one. */
export type TcMode = 'auto' | 'tcx' | 'clsact';

/** Attaches a SEC("tc") program: tcx where the kernel has it, else clsact (bpf_tc_hook + bpf_tc_attach). */
export function attachTc(
  programFd: number,
  ifindex: number,
  direction: 'ingress' | 'egress',
  netns?: string,
  mode: TcMode = 'auto',
): TcAttachment {
  const egress = direction === 'egress';
  if (mode !== 'clsact') {
    const tcx = native.tcxAttach(programFd, ifindex, egress, netns);
    if (!isStatus(tcx)) {
      const link = BpfLink.adopt(tcx);
      return new TcAttachment('tcx', link, () => link.close());
    }
    // A kernel without tcx rejects the attach type; anything else (no device, no permission) is final.
    if (tcx !== EINVAL || mode === 'tcx') check(tcx, 'bpf_link_create', `tcx ${direction}, ifindex ${ifindex}`);
  }
  const f = check(native.clsactAttach(programFd, ifindex, egress, netns), 'bpf_tc_attach', `${direction}, ifindex ${ifindex}`);
  return new TcAttachment('clsact', undefined, () => {
    const rc = native.clsactDetach(ifindex, egress, f.handle, f.priority, netns);
    if (rc !== ENOENT) check(rc, 'bpf_tc_detach', `${direction}, ifindex ${ifindex}`);
  });
}
