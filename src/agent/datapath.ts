// Loads socklb's BPF objects, attaches them to a cgroup through pinned bpf_links, and adopts the
// pinned maps and links an earlier agent left, so a restart never interrupts the datapath.

import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfError, BpfLink, BpfObject } from '../bpf/binding.ts';
import { ABI_VERSION, DESTROY_MAPS, encode, Layouts, type MapName, MapNames, SOCK_MAPS } from '../datapath/abi.ts';
import type { ServiceMapSet } from '../datapath/kernel-maps.ts';
import type { Capacity } from '../datapath/maps.ts';
import { ErrorCodes, SocklbError } from '../errors.ts';
import { type Features, planDatapath, probeFeatures } from './features.ts';
import { bpffsRootOf, cgroupId, ensureBpffs } from './host.ts';
import { SockDiagDestroyer, SocketDestroyer, type UdpSocketDestroyer } from './socket-destroyer.ts';

const OBJECT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../bpf/out');
export const SOCK_OBJECT = join(OBJECT_DIR, 'sock.bpf.o');
export const DESTROY_OBJECT = join(OBJECT_DIR, 'sock_destroy.bpf.o');

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
}

export const DEFAULT_CAPACITY: Capacity = {
  services: 65536,
  slots: 262144,
  backends: 65536,
  serviceIds: 65536,
  backendIds: 65536,
};

export const DEFAULT_REVERSE_ENTRIES = 65536;
export const DEFAULT_AFFINITY_ENTRIES = 65536;

function mapSizes(o: DatapathOptions): Record<MapName, number> {
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
    [MapNames.sockStats]: 0,
    [MapNames.affinity]: o.affinityEntries ?? DEFAULT_AFFINITY_ENTRIES,
    [MapNames.lb4Destroy]: 1024,
    [MapNames.lb6Destroy]: 1024,
  };
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
  /** True when every hook was already attached by an earlier agent and was taken over. */
  readonly adopted: boolean;
  readonly #objects: BpfObject[];

  private constructor(init: {
    maps: ServiceMapSet;
    options: DatapathOptions;
    destroyer: UdpSocketDestroyer;
    bpfDestroyUnavailable: string | undefined;
    refuseErrno: number;
    adopted: boolean;
    objects: BpfObject[];
  }) {
    this.maps = init.maps;
    this.options = init.options;
    this.destroyer = init.destroyer;
    this.bpfDestroyUnavailable = init.bpfDestroyUnavailable;
    this.refuseErrno = init.refuseErrno;
    this.adopted = init.adopted;
    this.#objects = init.objects;
  }

  static open(options: DatapathOptions): Datapath {
    // Decided before anything touches the kernel: a missing hook is one clear error, not a verifier dump.
    const plan = planDatapath(options.features ?? probeFeatures());
    if (plan.unsupported) throw new SocklbError(ErrorCodes.HOST, plan.unsupported);
    prepareBpffs(options.bpffs);
    mkdirSync(join(options.bpffs, 'maps'), { recursive: true });
    mkdirSync(join(options.bpffs, 'links'), { recursive: true });
    const sizes = mapSizes(options);

    const sock = loadObject(SOCK_OBJECT, options.bpffs, SOCK_MAPS, sizes, (obj) => {
      // socklb_cfg is the only constant of sock.bpf.c, so it is the whole of .rodata.
      const rodata = obj.initialValue('.rodata');
      if (rodata?.length !== Layouts.config.size) {
        throw new SocklbError(ErrorCodes.BPF, `${SOCK_OBJECT}: .rodata is ${rodata?.length} bytes, expected struct socklb_config alone`);
      }
      // refuse_errno 0 makes the bpf_set_retval call dead code, which the verifier drops: kernels
      // before 5.18 do not know the helper and would reject the program.
      obj.setInitialValue('.rodata', encode(Layouts.config, { abi_version: ABI_VERSION, refuse_errno: plan.refuseErrno }));
    });
    const adopted = attachHooks(sock, options);
    const maps = {} as ServiceMapSet;
    for (const name of SOCK_MAPS) maps[name] = sock.map(name);

    // The BPF way where the kernel has bpf_sock_destroy, sock_diag's SOCK_DESTROY elsewhere.
    let destroy: BpfObject | undefined;
    let destroyer: UdpSocketDestroyer = new SockDiagDestroyer();
    let bpfDestroyUnavailable = plan.destroyUnavailable;
    if (plan.socketDestroy) {
      try {
        destroy = loadObject(DESTROY_OBJECT, options.bpffs, DESTROY_MAPS, sizes, () => {});
        destroyer = new SocketDestroyer(
          destroy.attachIter('sock_destroy_udp'),
          destroy.map(MapNames.lb4Destroy),
          destroy.map(MapNames.lb6Destroy),
        );
      } catch (err) {
        destroy?.close();
        destroy = undefined;
        bpfDestroyUnavailable = `${DESTROY_OBJECT} did not load: ${(err as Error).message.split('\n')[0]}`;
      }
    }
    return new Datapath({
      maps,
      options,
      destroyer,
      bpfDestroyUnavailable,
      refuseErrno: plan.refuseErrno,
      adopted,
      objects: destroy ? [sock, destroy] : [sock],
    });
  }

  /** Closes our fds; pinned maps and links stay, so the datapath keeps working without us. */
  close(): void {
    this.destroyer.close();
    for (const m of Object.values(this.maps)) m.close();
    for (const o of this.#objects) o.close();
  }
}

function prepareBpffs(dir: string): void {
  if (bpffsRootOf(dir)) return;
  if (dir === '/sys/fs/bpf' || dir.startsWith('/sys/fs/bpf/')) {
    ensureBpffs('/sys/fs/bpf');
    return;
  }
  throw new SocklbError(ErrorCodes.HOST, `${dir} is not on a bpf file system (mount -t bpf bpf <dir>)`);
}

function loadObject(
  path: string,
  bpffs: string,
  maps: readonly MapName[],
  sizes: Record<MapName, number>,
  configure: (obj: BpfObject) => void,
): BpfObject {
  if (!existsSync(path)) {
    throw new SocklbError(ErrorCodes.HOST, `${path} is missing: build socklb first (npm run build)`);
  }
  const obj = BpfObject.open(path);
  try {
    for (const name of maps) {
      if (sizes[name] > 0) obj.setMaxEntries(name, sizes[name]);
      obj.setPinPath(name, join(bpffs, 'maps', name));
    }
    configure(obj);
    obj.load();
    return obj;
  } catch (err) {
    obj.close();
    if (err instanceof BpfError && err.operation.includes('load')) {
      throw new SocklbError(
        ErrorCodes.BPF,
        `loading ${path} failed (${err.code}): ${err.message}. If the pinned maps under ${bpffs}/maps were made with other sizes or by another version, run 'socklb cleanup --bpffs ${bpffs}' first.`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Attaches each hook through a pinned link, or, where an earlier agent's link is pinned on the
 * same cgroup, swaps the new program into it atomically: no moment without a hook.
 */
function attachHooks(obj: BpfObject, o: DatapathOptions): boolean {
  const wantCgroup = cgroupId(o.cgroup);
  let adoptedAll = true;
  for (const program of Object.keys(SOCK_PROGRAMS)) {
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
    adoptedAll = false;
    const link = obj.attachCgroup(program, o.cgroup);
    try {
      link.pin(pin);
    } finally {
      link.close();
    }
  }
  return adoptedAll;
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
