// Loads socklb's BPF objects, attaches them to a cgroup through pinned bpf_links, and adopts the
// pinned maps and links an earlier agent left, so a restart never interrupts the datapath.

import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfError, BpfLink, BpfMap, BpfObject } from '../bpf/binding.ts';
import {
  ABI_VERSION,
  DESTROY_MAPS,
  encode,
  Layouts,
  MAP_DEFINITIONS,
  type MapName,
  MapNames,
  SOCK_MAPS,
  SOCK_REASONS,
  type SockMapName,
  s64Bytes,
  u32Bytes,
  XDP_MAPS,
  XDP_REASONS,
  type XdpMapName,
} from '../datapath/abi.ts';
import { FrontendFilter, filterWords } from '../datapath/frontend-filter.ts';
import { type CountersStartZero, frontendsIn, type ServiceMapSet } from '../datapath/kernel-maps.ts';
import type { Capacity } from '../datapath/maps.ts';
import { type MapEntry, migrationsInto } from '../datapath/migrations.ts';
import { ErrorCodes, SocklbError } from '../errors.ts';
import { type Features, planDatapath, probeFeatures } from './features.ts';
import { bpffsRootOf, cgroupId, ensureBpffs } from './host.ts';
import { SockDiagDestroyer, SocketDestroyer, type UdpSocketDestroyer } from './socket-destroyer.ts';
import { attachXdp, writeNodeConfig, type XdpAttachment, type XdpOptions } from './xdp.ts';

const OBJECT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../bpf/out');
export const SOCK_OBJECT = join(OBJECT_DIR, 'sock.bpf.o');
export const DESTROY_OBJECT = join(OBJECT_DIR, 'sock_destroy.bpf.o');
/** cgroup/sock_release, which takes a closed socket off its backend's open-connection count. */
export const RELEASE_OBJECT = join(OBJECT_DIR, 'sock_release.bpf.o');
/** The release hook's program; its link is pinned next to the sock_addr hooks' links. */
export const RELEASE_PROGRAM = 'sock_release';
/** Its attach type, as bpftool and the kernel call it. */
export const RELEASE_ATTACH_TYPE = 'cgroup_inet_sock_release';
/** The XDP program and its tc egress partner (bpf/xdp.bpf.c), for traffic from outside the node. */
export const XDP_OBJECT = join(OBJECT_DIR, 'xdp.bpf.o');

/** The cgroup hooks, by program name, and the attach type bpftool and the kernel call them. */
export const SOCK_PROGRAMS = {
  sock4_connect: 'cgroup_inet4_connect',
  sock4_sendmsg: 'cgroup_udp4_sendmsg',
  sock4_recvmsg: 'cgroup_udp4_recvmsg',
  sock4_getpeername: 'cgroup_inet4_getpeername',
  sock6_connect: 'cgroup_inet6_connect',
  sock6_sendmsg: 'cgroup_udp6_sendmsg',
  sock6_recvmsg: 'cgroup_udp6_recvmsg',
  sock6_getpeername: 'cgroup_inet6_getpeername',
} as const;

export const DEFAULT_BPFFS = '/sys/fs/bpf/socklb';

export interface DatapathOptions {
  /** Where pins live: <bpffs>/maps/<map>, <bpffs>/links/<program>. */
  bpffs: string;
  /** The cgroup v2 directory whose processes are balanced. */
  cgroup: string;
  capacity: Capacity;
  /** Entries of each reverse-translation LRU map (one per balanced socket). */
  reverseEntries: number;
  /** Entries of the session-affinity LRU map (one per client and affinity service). */
  affinityEntries?: number;
  /** What the kernel offers (default: probed from its BTF, src/agent/features.ts). */
  features?: Features;
  /** Balance traffic from outside the node in XDP on these devices (absent: socket hooks only). */
  xdp?: XdpOptions;
}

/**
 * Sized so the datapath's maps, XDP's included, take at most 64 MiB of kernel memory when full on a
 * host of 128 possible CPUs (docs/operating.md has the formula): 32,768 frontends and 65,536
 * backends per family, two backend slots per frontend on average.
 */
export const DEFAULT_CAPACITY: Capacity = capacityOf({ services: 32768, backends: 65536, slots: 131072 });

/** The capacity for frontends and backends per family and backend slots in all. */
export function capacityOf(o: { services: number; backends: number; slots: number }): Capacity {
  // Ids index the counter arrays; both families share one id space.
  return { ...o, serviceIds: 2 * o.services + 1, backendIds: 2 * o.backends + 1 };
}

export const DEFAULT_REVERSE_ENTRIES = 32768;
/** One entry per client network namespace and ClientIP-affinity service it dials. */
export const DEFAULT_AFFINITY_ENTRIES = 16384;
/** Entries of each XDP connection and reverse NAT table: one per flow from outside the node. */
export const DEFAULT_XDP_FLOW_ENTRIES = 32768;
/** Entries of each loadBalancerSourceRanges trie: one per service and range. */
export const DEFAULT_SOURCE_RANGE_ENTRIES = 4096;

/** Every map's max_entries for these options. */
export function mapSizes(o: DatapathOptions): Record<MapName, number> {
  return {
    [MapNames.lb4Services]: o.capacity.services,
    [MapNames.lb6Services]: o.capacity.services,
    [MapNames.slots]: o.capacity.slots,
    [MapNames.lb4Backends]: o.capacity.backends,
    [MapNames.lb6Backends]: o.capacity.backends,
    [MapNames.lb4Reverse]: o.reverseEntries,
    [MapNames.lb6Reverse]: o.reverseEntries,
    [MapNames.serviceStats]: o.capacity.serviceIds,
    [MapNames.backendStats]: o.capacity.backendIds,
    [MapNames.sockStats]: SOCK_REASONS.length,
    [MapNames.affinity]: o.affinityEntries ?? DEFAULT_AFFINITY_ENTRIES,
    [MapNames.tables]: o.capacity.serviceIds,
    [MapNames.lb4Destroy]: DESTROY_MAP_ENTRIES,
    [MapNames.lb6Destroy]: DESTROY_MAP_ENTRIES,
    [MapNames.lb4Ct]: DEFAULT_XDP_FLOW_ENTRIES,
    [MapNames.lb6Ct]: DEFAULT_XDP_FLOW_ENTRIES,
    [MapNames.lb4Rnat]: DEFAULT_XDP_FLOW_ENTRIES,
    [MapNames.lb6Rnat]: DEFAULT_XDP_FLOW_ENTRIES,
    [MapNames.lb4SrcRanges]: DEFAULT_SOURCE_RANGE_ENTRIES,
    [MapNames.lb6SrcRanges]: DEFAULT_SOURCE_RANGE_ENTRIES,
    [MapNames.nodeConfig]: 1,
    [MapNames.xdpStats]: XDP_REASONS.length,
    [MapNames.frontendFilter]: filterWords(o.capacity.services),
    // Entry 0 is the "counting" switch; backend ids start at 1.
    [MapNames.backendConns]: o.capacity.backendIds,
    // Socket-local storage has no size: an element lives on each counted socket.
    [MapNames.sockConn]: 0,
    [MapNames.backendFlows]: o.capacity.backendIds,
  };
}

/** What the start-up did to the pinned maps of an earlier agent. */
export interface MigrationReport {
  /** Maps made anew because no map was pinned under their name or the pinned one differs. */
  created: string[];
  /** Entries carried from an earlier agent's pinned map into a new one. */
  copied: { from: string; to: string; entries: number; dropped: number }[];
  /** Pins of earlier maps removed once the programs use the new ones (at commit). */
  removed: string[];
}

/** A loaded, attached datapath: the maps by name, and the UDP socket destroyer when the kernel has it. */
export class Datapath {
  readonly maps: ServiceMapSet;
  readonly options: DatapathOptions;
  /** Ends UDP sockets still connected to removed backends. */
  readonly destroyer: UdpSocketDestroyer;
  /** Why the BPF way of destroying sockets is not used here (sock_diag is), if it is not. */
  readonly bpfDestroyUnavailable: string | undefined;
  /**
   * errno a connect()/sendmsg() to a service without backends gets: ECONNREFUSED, or 0 where the
   * kernel has no bpf_set_retval (before 5.18) and the caller sees the hook's default, EPERM.
   */
  readonly refuseErrno: number;
  /**
   * Why open connections are not counted here, if they are not: the least-connection schedulers
   * (lc, wlc, sed, nq) then pick at random.
   */
  readonly connsUnavailable: string | undefined;
  /** True when every hook was already attached by an earlier agent, to be taken over at commit. */
  readonly adopted: boolean;
  readonly migration: MigrationReport;
  /** Kept with every write of an in-cluster frontend (KernelMaps does it); filled on open. */
  readonly frontendFilter: FrontendFilter;
  /** The XDP program's own maps, when it is loaded. */
  readonly xdpMaps: Partial<Record<XdpMapName, BpfMap>>;
  /** Which counter maps this start made empty (none pinned or copied): their fresh ids need no reset. */
  readonly countersStartZero: CountersStartZero;
  /** Where the XDP program runs, once committed. */
  xdpAttachments: XdpAttachment[] = [];
  readonly #objects: BpfObject[];
  readonly #xdp: BpfObject | undefined;
  readonly #sock: BpfObject;
  readonly #release: BpfObject | undefined;
  /** Maps made anew, to pin (over the earlier agent's pin) once the hooks use them. */
  readonly #unpinned: Map<MapName, BpfMap>;
  /** Pins of earlier layouts that nothing reads after commit. */
  readonly #obsolete: string[];
  #committed = false;

  private constructor(init: {
    maps: ServiceMapSet;
    options: DatapathOptions;
    destroyer: UdpSocketDestroyer;
    bpfDestroyUnavailable: string | undefined;
    refuseErrno: number;
    connsUnavailable: string | undefined;
    adopted: boolean;
    migration: MigrationReport;
    objects: BpfObject[];
    release: BpfObject | undefined;
    xdp: { object: BpfObject; maps: Record<XdpMapName, BpfMap> } | undefined;
    unpinned: Map<MapName, BpfMap>;
    obsolete: string[];
    frontendFilter: FrontendFilter;
  }) {
    this.maps = init.maps;
    this.options = init.options;
    this.destroyer = init.destroyer;
    this.bpfDestroyUnavailable = init.bpfDestroyUnavailable;
    this.refuseErrno = init.refuseErrno;
    this.connsUnavailable = init.connsUnavailable;
    this.#release = init.release;
    this.adopted = init.adopted;
    this.migration = init.migration;
    this.#objects = init.objects;
    this.#sock = init.objects[0]!;
    this.#xdp = init.xdp?.object;
    this.xdpMaps = init.xdp?.maps ?? {};
    this.#unpinned = init.unpinned;
    this.#obsolete = init.obsolete;
    this.frontendFilter = init.frontendFilter;
    const madeEmpty = (name: MapName) => init.migration.created.includes(name) && !init.migration.copied.some((c) => c.to === name);
    this.countersStartZero = { services: madeEmpty(MapNames.serviceStats), backends: madeEmpty(MapNames.backendStats) };
  }

  /**
   * Loads the programs over the maps an earlier agent pinned, reusing each pinned map that matches
   * MAP_DEFINITIONS and the sizes asked for, and filling a new map from it where it does not. The
   * hooks are not touched: an earlier agent's programs keep serving until commit(), which the agent
   * calls once its first full sync is in the maps. The verifier runs on a worker thread, so the
   * event loop keeps serving health checks meanwhile.
   */
  static async open(options: DatapathOptions): Promise<Datapath> {
    // Decided before anything touches the kernel: a missing hook is one clear error, not a verifier dump.
    const plan = planDatapath(options.features ?? probeFeatures());
    if (plan.unsupported) throw new SocklbError(ErrorCodes.HOST, plan.unsupported);
    prepareBpffs(options.bpffs);
    mkdirSync(join(options.bpffs, 'maps'), { recursive: true });
    mkdirSync(join(options.bpffs, 'links'), { recursive: true });
    const sizes = mapSizes(options);
    const migration: MigrationReport = { created: [], copied: [], removed: [] };

    const sock = await loadObject(SOCK_OBJECT, options.bpffs, SOCK_MAPS, sizes, (obj) => {
      // socklb_cfg is the only constant of sock.bpf.c, so it is the whole of .rodata.
      const rodata = obj.initialValue('.rodata');
      if (rodata?.length !== Layouts.config.size) {
        throw new SocklbError(ErrorCodes.BPF, `${SOCK_OBJECT}: .rodata is ${rodata?.length} bytes, expected struct socklb_config alone`);
      }
      // refuse_errno 0 makes the bpf_set_retval call dead code, which the verifier drops: kernels
      // before 5.18 do not know the helper and would reject the program.
      obj.setInitialValue(
        '.rodata',
        encode(Layouts.config, {
          abi_version: ABI_VERSION,
          refuse_errno: plan.refuseErrno,
          filter_word_mask: sizes[MapNames.frontendFilter] - 1,
        }),
      );
    });
    const unpinned = new Map<MapName, BpfMap>();
    const obsolete: string[] = [];
    const maps = {} as ServiceMapSet;
    let frontendFilter: FrontendFilter;
    try {
      for (const name of SOCK_MAPS) maps[name] = sock.object.map(name);
      for (const name of sock.created) {
        unpinned.set(name, maps[name]);
        migration.created.push(name);
        // The filter's bits depend on its size: it is rebuilt from the service maps below, never copied.
        if (name !== MapNames.frontendFilter) obsolete.push(...migrateInto(maps[name], name, options.bpffs, migration));
      }
      frontendFilter = new FrontendFilter(maps[MapNames.frontendFilter], sizes[MapNames.frontendFilter]);
      frontendFilter.rebuild(frontendsIn(maps));
    } catch (err) {
      for (const m of Object.values(maps)) m.close();
      sock.object.close();
      throw err;
    }

    // The BPF way where the kernel has bpf_sock_destroy, sock_diag's SOCK_DESTROY elsewhere.
    let destroy: LoadedObject<(typeof DESTROY_MAPS)[number]> | undefined;
    let destroyer: UdpSocketDestroyer = new SockDiagDestroyer();
    let bpfDestroyUnavailable = plan.destroyUnavailable;
    if (plan.socketDestroy) {
      try {
        destroy = await loadObject(DESTROY_OBJECT, options.bpffs, DESTROY_MAPS, sizes, () => {});
        const v4 = destroy.object.map(MapNames.lb4Destroy);
        const v6 = destroy.object.map(MapNames.lb6Destroy);
        // The destroy maps hold marks only while a destroy runs: nothing to carry over.
        for (const name of destroy.created) {
          unpinned.set(name, destroy.object.map(name));
          migration.created.push(name);
        }
        destroyer = new SocketDestroyer(destroy.object.attachIter('sock_destroy_udp'), v4, v6, DESTROY_MAP_ENTRIES);
      } catch (err) {
        destroy?.object.close();
        destroy = undefined;
        bpfDestroyUnavailable = `${DESTROY_OBJECT} did not load: ${(err as Error).message.split('\n')[0]}`;
      }
    }
    // Optional like the destroyer: without it nothing would take a count down, so nothing counts up.
    let release: BpfObject | undefined;
    let connsUnavailable = plan.connsUnavailable;
    if (!connsUnavailable) {
      try {
        release = (
          await loadObject(RELEASE_OBJECT, options.bpffs, [], sizes, (obj) => {
            for (const name of [MapNames.backendConns, MapNames.sockConn] as const) obj.reuseMap(name, maps[name]);
          })
        ).object;
      } catch (err) {
        connsUnavailable = `open connections are not counted on this kernel, so lc, wlc, sed and nq pick at random: ${RELEASE_OBJECT} did not load: ${(err as Error).message.split('\n')[0]}`;
      }
    }
    const xdp = options.xdp ? await loadXdp(options, options.xdp, maps, sizes, unpinned, migration) : undefined;
    const objects = [sock.object, ...(destroy ? [destroy.object] : []), ...(release ? [release] : []), ...(xdp ? [xdp.object] : [])];
    return new Datapath({
      maps,
      options,
      destroyer,
      bpfDestroyUnavailable,
      refuseErrno: plan.refuseErrno,
      connsUnavailable,
      adopted: hooksPinnedOn(options),
      migration,
      objects,
      release,
      xdp,
      unpinned,
      obsolete,
      frontendFilter,
    });
  }

  /** Whether the hooks run this agent's programs (commit() was called). */
  get committed(): boolean {
    return this.#committed;
  }

  /**
   * Puts this agent's programs in the hooks: swaps them into the links an earlier agent pinned on
   * the same cgroup (atomically: no connect sees no program), or attaches and pins new links. Then
   * pins the maps made anew over the earlier ones and removes the pins of older layouts, which no
   * program reads any more. Called once the maps hold the first full sync; later calls do nothing.
   */
  commit(): void {
    if (this.#committed) return;
    // Release first: a socket counted once the switch is on must find the hook that uncounts it.
    if (this.#release) attachHooks(this.#release, [RELEASE_PROGRAM], this.options);
    attachHooks(this.#sock, Object.keys(SOCK_PROGRAMS), this.options);
    this.maps[MapNames.backendConns].update(u32Bytes(0), s64Bytes(this.#release ? 1n : 0n));
    if (this.#xdp && this.options.xdp) this.xdpAttachments = attachXdp(this.#xdp, this.options.bpffs, this.options.xdp);
    for (const [name, map] of this.#unpinned) {
      const pin = join(this.options.bpffs, 'maps', name);
      rmSync(pin, { force: true });
      map.pin(pin);
      if (!isHeld(name)) map.close();
    }
    this.#unpinned.clear();
    for (const pin of this.#obsolete) {
      rmSync(pin, { force: true });
      this.migration.removed.push(pin);
    }
    this.#committed = true;
  }

  /** Closes our fds; pinned maps and links stay, so the datapath keeps working without us. */
  close(): void {
    this.destroyer.close();
    for (const [name, map] of this.#unpinned) if (!isHeld(name)) map.close();
    for (const m of Object.values(this.maps)) m.close();
    for (const m of Object.values(this.xdpMaps)) m.close();
    for (const o of this.#objects) o.close();
  }
}

/** Maps whose fds the Datapath keeps open (and closes) itself, so an unpinned one is not closed twice. */
function isHeld(name: MapName): boolean {
  return (SOCK_MAPS as readonly string[]).includes(name) || (XDP_MAPS as readonly string[]).includes(name);
}

/**
 * Loads bpf/xdp.bpf.o over the socket hooks' service maps (reused by fd: they may be new and not
 * yet pinned), with its own maps pinned or migrated like the others, and writes the node's config.
 */
async function loadXdp(
  options: DatapathOptions,
  xdp: XdpOptions,
  shared: ServiceMapSet,
  sizes: Record<MapName, number>,
  unpinned: Map<MapName, BpfMap>,
  migration: MigrationReport,
): Promise<{ object: BpfObject; maps: Record<XdpMapName, BpfMap> }> {
  const loaded = await loadObject(XDP_OBJECT, options.bpffs, XDP_MAPS, sizes, (obj) => {
    for (const name of obj.mapNames()) {
      if (name in shared) obj.reuseMap(name, shared[name as SockMapName]);
    }
  });
  const maps = {} as Record<XdpMapName, BpfMap>;
  try {
    for (const name of XDP_MAPS) maps[name] = loaded.object.map(name);
    for (const name of loaded.created) {
      unpinned.set(name, maps[name]);
      migration.created.push(name);
      migrateInto(maps[name], name, options.bpffs, migration);
    }
    writeNodeConfig(maps[MapNames.nodeConfig], xdp);
  } catch (err) {
    for (const m of Object.values(maps)) m.close();
    loaded.object.close();
    throw err;
  }
  return { object: loaded.object, maps };
}

/** The marks of one destroy run: removed backends beyond it are destroyed in further runs. */
const DESTROY_MAP_ENTRIES = 1024;

function prepareBpffs(dir: string): void {
  if (bpffsRootOf(dir)) return;
  if (dir === '/sys/fs/bpf' || dir.startsWith('/sys/fs/bpf/')) {
    ensureBpffs('/sys/fs/bpf');
    return;
  }
  throw new SocklbError(ErrorCodes.HOST, `${dir} is not on a bpf file system (mount -t bpf bpf <dir>)`);
}

interface LoadedObject<N extends MapName> {
  object: BpfObject;
  /** Its maps that were not taken from a pin: new, unpinned until commit. */
  created: N[];
}

/** Whether the map pinned at `pin` is the one this agent would make: same definition and size. */
function pinMatches(pin: string, name: MapName, maxEntries: number): boolean {
  const map = BpfMap.fromPin(pin);
  try {
    const info = map.info();
    const want = MAP_DEFINITIONS[name];
    return (
      info.type === want.type &&
      info.keySize === want.keySize &&
      info.valueSize === want.valueSize &&
      info.flags === want.flags &&
      info.maxEntries === maxEntries
    );
  } finally {
    map.close();
  }
}

async function loadObject<N extends MapName>(
  path: string,
  bpffs: string,
  maps: readonly N[],
  sizes: Record<MapName, number>,
  configure: (obj: BpfObject) => void,
): Promise<LoadedObject<N>> {
  if (!existsSync(path)) {
    throw new SocklbError(ErrorCodes.HOST, `${path} is missing: build socklb first (npm run build)`);
  }
  const obj = BpfObject.open(path);
  const created: N[] = [];
  try {
    for (const name of maps) {
      obj.setMaxEntries(name, sizes[name]);
      const pin = join(bpffs, 'maps', name);
      // libbpf reuses a pinned map given as pin path; any other map it creates anew, unpinned.
      if (existsSync(pin) && pinMatches(pin, name, sizes[name])) obj.setPinPath(name, pin);
      else created.push(name);
    }
    configure(obj);
    await obj.loadAsync();
    return { object: obj, created };
  } catch (err) {
    obj.close();
    if (err instanceof BpfError && err.operation.includes('load')) {
      throw new SocklbError(ErrorCodes.BPF, `loading ${path} failed (${err.code}): ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/**
 * Fills a new map from what an earlier agent pinned: a pin of the same name (another size) as it
 * is, or a pin of an older layout through its conversion. Returns the pins it read, to remove at
 * commit (a same-name pin is replaced by the new map's pin anyway).
 */
function migrateInto(target: BpfMap, name: MapName, bpffs: string, report: MigrationReport): string[] {
  // Its entries read back as map ids, not fds: the first sync writes every table afresh instead.
  // Socket-local storage cannot be listed, and lives on the sockets themselves anyway.
  if (name === MapNames.tables || name === MapNames.sockConn) return [];
  const sources = [
    { from: name, convert: (e: MapEntry) => e as MapEntry | undefined },
    ...migrationsInto(name).map((m) => ({ from: m.from, convert: m.convert })),
  ];
  const read: string[] = [];
  for (const { from, convert } of sources) {
    const pin = join(bpffs, 'maps', from);
    if (!existsSync(pin)) continue;
    const source = BpfMap.fromPin(pin);
    try {
      report.copied.push({ from, to: name, ...copyEntries(source, target, convert) });
    } finally {
      source.close();
    }
    if (from !== name) read.push(pin);
  }
  return read;
}

function copyEntries(source: BpfMap, target: BpfMap, convert: (e: MapEntry) => MapEntry | undefined): { entries: number; dropped: number } {
  let entries = 0;
  let dropped = 0;
  let cursor: Buffer | undefined;
  do {
    const page = source.lookupBatch(cursor, 4096);
    for (let i = 0; i < page.count; i++) {
      const key = page.keys.subarray(i * source.keySize, (i + 1) * source.keySize);
      const value = page.values.subarray(i * source.valueBufferSize, (i + 1) * source.valueBufferSize);
      const entry = convert({ key, value });
      if (!entry) continue;
      try {
        target.update(entry.key, entry.value);
        entries++;
      } catch (err) {
        // A smaller map than before: what does not fit is left to the first sync, which reports it.
        if ((err as BpfError).code !== 'E2BIG') throw err;
        dropped++;
      }
    }
    cursor = page.nextCursor;
  } while (cursor);
  return { entries, dropped };
}

/** Whether every hook already has a link pinned on this cgroup by an earlier agent. */
function hooksPinnedOn(o: DatapathOptions): boolean {
  const wantCgroup = cgroupId(o.cgroup);
  return Object.keys(SOCK_PROGRAMS).every((program) => {
    const pin = join(o.bpffs, 'links', program);
    if (!existsSync(pin)) return false;
    const link = BpfLink.fromPin(pin);
    try {
      return link.info().cgroupId === wantCgroup;
    } finally {
      link.close();
    }
  });
}

/**
 * Attaches each hook through a pinned link, or, where an earlier agent's link is pinned on the
 * same cgroup, swaps the new program into it atomically: no moment without a hook.
 */
function attachHooks(obj: BpfObject, programs: readonly string[], o: DatapathOptions): void {
  const wantCgroup = cgroupId(o.cgroup);
  for (const program of programs) {
    const pin = join(o.bpffs, 'links', program);
    if (existsSync(pin)) {
      const link = BpfLink.fromPin(pin);
      try {
        if (link.info().cgroupId === wantCgroup) {
          link.updateProgram(obj.programFd(program));
          continue;
        }
        link.unpin(pin);
      } finally {
        link.close();
      }
    }
    const link = obj.attachCgroup(program, o.cgroup);
    try {
      link.pin(pin);
    } finally {
      link.close();
    }
  }
}

/** Detaches and unpins everything an agent made under `bpffs`. Returns what it removed. */
export function cleanup(bpffs: string): string[] {
  const removed: string[] = [];
  if (!existsSync(bpffs)) return removed;
  for (const sub of ['links', 'maps']) {
    const dir = join(bpffs, sub);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      rmSync(join(dir, name));
      removed.push(join(dir, name));
    }
    rmdirSync(dir);
  }
  rmdirSync(bpffs);
  return removed;
}
