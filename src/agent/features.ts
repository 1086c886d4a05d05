// What the running kernel offers socklb, read from its BTF (/sys/kernel/btf/vmlinux): the cgroup
// sock_addr attach types, cgroup bpf_links, bpf_set_retval, the bpf_sock_destroy kfunc and the UDP
// socket iterator. Reading BTF costs a few milliseconds and loads nothing; when the kernel has no
// BTF, the kernel version decides. `node src/agent/features.ts [--json]` prints the result.

import { readFileSync } from 'node:fs';
import { release } from 'node:os';

export interface Feature {
  available: boolean;
  /** Why it is absent (or how it was decided, when it was not read from BTF). */
  reason?: string;
}

export const FEATURE_NAMES = [
  'btf',
  'connect',
  'sendmsg',
  'recvmsg',
  'getpeername',
  'cgroup_link',
  'set_retval',
  'iter_udp',
  'sock_destroy',
  'sock_release',
] as const;

export type FeatureName = (typeof FEATURE_NAMES)[number];
export type Features = Record<FeatureName, Feature>;

/** What each feature needs, and the first mainline release that has it. */
const NEEDS: Record<Exclude<FeatureName, 'btf'>, { what: string; since: [number, number]; btf: BtfNeed }> = {
  connect: {
    what: 'cgroup/connect4 and connect6 (BPF_CGROUP_INET4_CONNECT)',
    since: [4, 17],
    btf: { enumerator: 'BPF_CGROUP_INET6_CONNECT' },
  },
  sendmsg: {
    what: 'cgroup/sendmsg4 and sendmsg6 (BPF_CGROUP_UDP4_SENDMSG)',
    since: [4, 18],
    btf: { enumerator: 'BPF_CGROUP_UDP6_SENDMSG' },
  },
  recvmsg: {
    what: 'cgroup/recvmsg4 and recvmsg6 (BPF_CGROUP_UDP4_RECVMSG)',
    since: [5, 2],
    btf: { enumerator: 'BPF_CGROUP_UDP6_RECVMSG' },
  },
  getpeername: {
    what: 'cgroup/getpeername4 and getpeername6 (BPF_CGROUP_INET4_GETPEERNAME)',
    since: [5, 8],
    btf: { enumerator: 'BPF_CGROUP_INET6_GETPEERNAME' },
  },
  cgroup_link: {
    what: 'bpf_link for cgroup programs (BPF_LINK_TYPE_CGROUP, BPF_LINK_UPDATE)',
    since: [5, 7],
    btf: { enumerator: 'BPF_LINK_TYPE_CGROUP' },
  },
  set_retval: {
    what: 'the bpf_set_retval helper in cgroup programs (BPF_FUNC_set_retval)',
    since: [5, 18],
    btf: { enumerator: 'BPF_FUNC_set_retval' },
  },
  iter_udp: { what: 'the UDP socket iterator (iter/udp)', since: [5, 9], btf: { func: 'bpf_iter_udp' } },
  sock_destroy: { what: 'the bpf_sock_destroy kfunc', since: [6, 5], btf: { func: 'bpf_sock_destroy' } },
  // Socket-local storage in cgroup/sock programs came in the same release as the hook.
  sock_release: {
    what: 'cgroup/sock_release (BPF_CGROUP_INET_SOCK_RELEASE)',
    since: [5, 9],
    btf: { enumerator: 'BPF_CGROUP_INET_SOCK_RELEASE' },
  },
};

type BtfNeed = { enumerator: string } | { func: string };

/** The names in a BTF blob that the probe asks about: enumerators and functions. */
export interface BtfNames {
  enumerators: Set<string>;
  funcs: Set<string>;
}

const BTF_MAGIC = 0xeb9f;
const KIND = { ENUM: 6, FUNC: 12, ENUM64: 19 } as const;

/**
 * Reads the enumerator and function names of a raw BTF blob (the format of /sys/kernel/btf/*).
 * Only the sizes of the other kinds matter here, to step over them.
 */
export function parseBtfNames(buf: Buffer): BtfNames {
  if (buf.length < 24 || buf.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not a little-endian BTF blob');
  const hdrLen = buf.readUInt32LE(4);
  const typeOff = hdrLen + buf.readUInt32LE(8);
  const typeLen = buf.readUInt32LE(12);
  const strOff = hdrLen + buf.readUInt32LE(16);
  const strLen = buf.readUInt32LE(20);
  const name = (off: number): string => {
    if (off >= strLen) return '';
    const start = strOff + off;
    const end = buf.indexOf(0, start);
    return buf.toString('latin1', start, end < 0 ? strOff + strLen : end);
  };
  const out: BtfNames = { enumerators: new Set(), funcs: new Set() };
  let p = typeOff;
  const endOfTypes = typeOff + typeLen;
  while (p + 12 <= endOfTypes) {
    const nameOff = buf.readUInt32LE(p);
    const info = buf.readUInt32LE(p + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    p += 12;
    switch (kind) {
      case 1:
        p += 4;
        break; // INT
      case 3:
        p += 12;
        break; // ARRAY
      case 4:
      case 5:
        p += 12 * vlen;
        break; // STRUCT, UNION
      case KIND.ENUM:
        for (let i = 0; i < vlen; i++) out.enumerators.add(name(buf.readUInt32LE(p + 8 * i)));
        p += 8 * vlen;
        break;
      case KIND.ENUM64:
        for (let i = 0; i < vlen; i++) out.enumerators.add(name(buf.readUInt32LE(p + 12 * i)));
        p += 12 * vlen;
        break;
      case KIND.FUNC:
        out.funcs.add(name(nameOff));
        break;
      case 13:
        p += 8 * vlen;
        break; // FUNC_PROTO
      case 14:
        p += 4;
        break; // VAR
      case 15:
        p += 12 * vlen;
        break; // DATASEC
      case 17:
        p += 4;
        break; // DECL_TAG
      case 2:
      case 7:
      case 8:
      case 9:
      case 10:
      case 11:
      case 16:
      case 18:
        break; // no trailing data
      default:
        throw new Error(`unknown BTF kind ${kind} at offset ${p - 12}`);
    }
  }
  return out;
}

/** "6.1.0-50-cloud-amd64" -> [6, 1]. */
export function kernelVersion(text = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function atLeast(v: [number, number], want: [number, number]): boolean {
  return v[0] > want[0] || (v[0] === want[0] && v[1] >= want[1]);
}

/**
 * Decides each feature from the kernel's BTF when given (the authority: distributions backport),
 * from the release otherwise.
 */
export function decideFeatures(btf: BtfNames | Error, kernelRelease = release()): Features {
  const version = kernelVersion(kernelRelease);
  const out = {} as Features;
  out.btf =
    btf instanceof Error
      ? { available: false, reason: `no kernel BTF (${btf.message}); deciding by the release ${kernelRelease}` }
      : { available: true };
  for (const [name, need] of Object.entries(NEEDS) as [Exclude<FeatureName, 'btf'>, (typeof NEEDS)[keyof typeof NEEDS]][]) {
    const since = `Linux ${need.since[0]}.${need.since[1]}`;
    if (btf instanceof Error) {
      const ok = atLeast(version, need.since);
      out[name] = ok
        ? { available: true, reason: `by release: ${kernelRelease} >= ${since}` }
        : { available: false, reason: `${need.what} needs ${since}; this kernel is ${kernelRelease}` };
      continue;
    }
    const found = 'enumerator' in need.btf ? btf.enumerators.has(need.btf.enumerator) : btf.funcs.has(need.btf.func);
    const symbol = 'enumerator' in need.btf ? need.btf.enumerator : need.btf.func;
    out[name] = found
      ? { available: true }
      : { available: false, reason: `${need.what} needs ${since}: ${symbol} is not in this kernel's BTF (${kernelRelease})` };
  }
  return out;
}

/** Probes the running kernel. */
export function probeFeatures(btfPath = '/sys/kernel/btf/vmlinux'): Features {
  let btf: BtfNames | Error;
  try {
    btf = parseBtfNames(readFileSync(btfPath));
  } catch (err) {
    btf = err instanceof Error ? err : new Error(String(err));
  }
  return decideFeatures(btf);
}

/** What the datapath loads and how, given the features. */
export interface DatapathPlan {
  /** errno for a refused connect()/sendmsg() (socklb_config.refuse_errno); 0 = no bpf_set_retval call, the caller sees EPERM. */
  refuseErrno: number;
  /** Load sock_destroy.bpf.o (UDP sockets of removed backends are destroyed). */
  socketDestroy: boolean;
  /** Why sock_destroy.bpf.o is not loaded, when it is not (the probe's reason, for the agent's status). */
  destroyUnavailable?: string;
  /** Why sock_release.bpf.o is not loaded (open connections not counted: lc, wlc, sed, nq pick at random), when it is not. */
  connsUnavailable?: string;
  /** Why the datapath cannot run at all here, if it cannot: every hook it attaches is required. */
  unsupported?: string;
  /** One line per degradation, for the agent's log and debug endpoint. */
  notes: string[];
}

const ECONNREFUSED = 111;

/** Features without which socklb does not start: every program of sock.bpf.o is attached through a cgroup bpf_link. */
const REQUIRED = ['connect', 'sendmsg', 'recvmsg', 'getpeername', 'cgroup_link'] as const;

export function planDatapath(f: Features, kernelRelease = release()): DatapathPlan {
  const notes: string[] = [];
  const missing = REQUIRED.filter((n) => !f[n].available);
  const destroyMissing = (['sock_destroy', 'iter_udp'] as const).filter((n) => !f[n].available);
  const plan: DatapathPlan = {
    refuseErrno: f.set_retval.available ? ECONNREFUSED : 0,
    socketDestroy: destroyMissing.length === 0,
    notes,
  };
  if (missing.length) {
    plan.unsupported = `socklb cannot run on Linux ${kernelRelease}: it needs ${missing.map((n) => NEEDS[n].what).join(', ')} (${missing.map((n) => f[n].reason).join('; ')})`;
  }
  if (!f.set_retval.available)
    notes.push(`a connect() or sendmsg() to a service without backends fails with EPERM, not ECONNREFUSED (${f.set_retval.reason})`);
  if (destroyMissing.length) {
    plan.destroyUnavailable = `UDP sockets of removed backends cannot be destroyed on this kernel; they keep sending to the old backend until the application reconnects: ${destroyMissing.map((n) => f[n].reason).join('; ')}`;
    notes.push(plan.destroyUnavailable);
  }
  if (!f.sock_release.available) {
    plan.connsUnavailable = `open connections are not counted on this kernel, so lc, wlc, sed and nq pick at random: ${f.sock_release.reason}`;
    notes.push(plan.connsUnavailable);
  }
  return plan;
}

function renderTable(f: Features, plan: DatapathPlan): string {
  const w = Math.max(...FEATURE_NAMES.map((n) => n.length));
  const lines = [`kernel ${release()}`];
  for (const n of FEATURE_NAMES) lines.push(`${n.padEnd(w)}  ${f[n].available ? 'yes' : 'no '}  ${f[n].reason ?? ''}`.trimEnd());
  lines.push('', `datapath: refuse_errno=${plan.refuseErrno} socket_destroy=${plan.socketDestroy}`);
  if (plan.unsupported) lines.push(`unsupported: ${plan.unsupported}`);
  for (const n of plan.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

if (import.meta.main) {
  const features = probeFeatures();
  const plan = planDatapath(features);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ kernel: release(), features, plan }, null, 2));
  else console.log(renderTable(features, plan));
  process.exitCode = plan.unsupported ? 1 : 0;
}
