// The Linux capabilities `socklb agent` needs, checked before it touches the kernel. Without one the
// agent would fail halfway (maps pinned, hooks not attached) or serve the node only in part (no
// socket destroys in pods' namespaces), so it stops at once and names what is missing. The list is
// the one deploy/daemonset.yaml grants, each argued there.

import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { ErrorCodes, SocklbError } from '../errors.ts';
import { kernelVersion } from './features.ts';

export interface CapabilityNeed {
  /** The name without CAP_, as Kubernetes securityContext.capabilities spells it. */
  name: string;
  bit: number;
  why: string;
  /** Needed only on kernels older than this (the need went away upstream). */
  before?: [number, number];
  /** Not a capability of kernels older than this: CAP_SYS_ADMIN covers it there. */
  since?: [number, number];
}

export const AGENT_CAPABILITIES: readonly CapabilityNeed[] = [
  { name: 'BPF', bit: 39, why: 'bpf(2): load programs, create and pin maps', since: [5, 8] },
  { name: 'PERFMON', bit: 38, why: 'the socket iterator and programs reading kernel memory', since: [5, 8] },
  { name: 'NET_ADMIN', bit: 12, why: 'attaching cgroup and XDP programs, destroying sockets' },
  { name: 'SYS_ADMIN', bit: 21, why: "setns(2) into pods' network namespaces, mounting bpffs" },
  { name: 'SYS_PTRACE', bit: 19, why: "opening /proc/PID/ns/net of other users' processes" },
  { name: 'SYS_RESOURCE', bit: 24, why: 'raising RLIMIT_MEMLOCK, which map memory is charged to', before: [5, 11] },
];

/** The effective capability set from /proc/self/status (the CapEff line, hexadecimal). */
export function effectiveCapabilities(status: string): bigint {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status)?.[1];
  if (hex === undefined) throw new SocklbError(ErrorCodes.HOST, 'no CapEff line in /proc/self/status');
  return BigInt(`0x${hex}`);
}

const older = (v: [number, number], than: [number, number]) => v[0] < than[0] || (v[0] === than[0] && v[1] < than[1]);

/** The needs this kernel has that the effective set lacks. */
export function missingCapabilities(effective: bigint, kernel: [number, number], needs = AGENT_CAPABILITIES): CapabilityNeed[] {
  return needs.filter((n) => {
    if (n.before && !older(kernel, n.before)) return false;
    if (n.since && older(kernel, n.since)) return false;
    return (effective & (1n << BigInt(n.bit))) === 0n;
  });
}

/** Throws SOCKLB_ERR_CAPABILITY naming every missing capability, in one line. */
export function checkAgentCapabilities(status = readFileSync('/proc/self/status', 'utf8'), kernelRelease = release()): void {
  const missing = missingCapabilities(effectiveCapabilities(status), kernelVersion(kernelRelease));
  if (missing.length === 0) return;
  const list = missing.map((n) => `CAP_${n.name} (${n.why})`).join(', ');
  throw new SocklbError(
    ErrorCodes.CAPABILITY,
    `missing ${list}: add ${missing.map((n) => n.name).join(', ')} to the container's securityContext.capabilities (deploy/daemonset.yaml lists them), or run as root with every capability; nothing was loaded or attached`,
  );
}
