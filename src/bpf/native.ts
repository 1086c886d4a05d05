// The raw libbpf addon (build/Release/socklb_bpf.node) as TypeScript sees it. Only binding.ts uses
// it: every call returns a negative errno on failure, and buffer sizes are the caller's contract.
import { createRequire } from 'node:module';

/** An fd the addon opened; closed by close() or when the object is collected. */
export interface NativeFd {
  readonly fd: number;
  close(): void;
}

/** A negative errno. */
export type Status = number;

export interface NativeMapInfo {
  id: number;
  type: number;
  typeName: string;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface NativeLinkInfo {
  id: number;
  progId: number;
  type: number;
  cgroupId?: number;
}

export interface NativeProgInfo {
  id: number;
  type: number;
  name: string;
  tag: string;
  runTimeNs: number;
  runCount: number;
}

export interface NativeBpfObject {
  open(path: string): Status;
  mapNames(): string[];
  programNames(): string[];
  setMaxEntries(map: string, n: number): Status;
  setPinPath(map: string, path: string): Status;
  initialValue(map: string): Buffer | Status;
  setInitialValue(map: string, data: Buffer): Status;
  load(): Status;
  mapFd(map: string): NativeFd | Status;
  programFd(program: string): number;
  attachCgroup(program: string, cgroupPath: string): NativeFd | Status;
  attachIter(program: string): NativeFd | Status;
  close(): void;
}

/** A peer whose connected UDP sockets destroyUdpSockets() ends; address in network order (4 or 16 bytes). */
export interface NativeUdpTarget {
  family: 4 | 6;
  address: Buffer;
  port: number;
}

export interface NativeDestroyCounts {
  destroyed: number;
  errors: number;
}

/** One BPF_PROG_TEST_RUN: the verdict, the packet as the program left it, the average ns per run. */
export interface NativeTestRun {
  retval: number;
  data: Buffer;
  durationNs: number;
  ctx?: Buffer;
}

/** A tc filter on a clsact qdisc, as bpf_tc_attach reports it. */
export interface NativeTcFilter {
  handle: number;
  priority: number;
}

/** [status, elements done]. */
export type BatchResult = [Status, number];

export interface Native {
  takeLog(): string;
  possibleCpus(): number;
  mapCreate(type: string, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number): NativeFd | Status;
  mapLookup(fd: number, key: Buffer, valueOut: Buffer): Status;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): Status;
  mapDelete(fd: number, key: Buffer): Status;
  mapGetNextKey(fd: number, key: Buffer | null, nextOut: Buffer): Status;
  mapLookupBatch(fd: number, inBatch: Buffer | null, outBatch: Buffer, keysOut: Buffer, valuesOut: Buffer, count: number): BatchResult;
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, elemFlags: number): BatchResult;
  mapDeleteBatch(fd: number, keys: Buffer, count: number): BatchResult;
  mapInfo(fd: number): NativeMapInfo | Status;
  objPin(fd: number, path: string): Status;
  objGet(path: string): NativeFd | Status;
  linkUpdate(linkFd: number, programFd: number): Status;
  linkInfo(fd: number): NativeLinkInfo | Status;
  iterRead(linkFd: number, netnsPath?: string): string | Status;
  progQuery(cgroupPath: string, attachType: string): number[] | Status;
  progInfo(fd: number): NativeProgInfo | Status;
  progGetFdById(id: number): NativeFd | Status;
  enableRunTimeStats(): NativeFd | Status;
  progTestRun(progFd: number, data: Buffer, repeat: number, ctxIn: Buffer | null, outSize: number, netns?: string): NativeTestRun | Status;
  xdpAttach(progFd: number, ifindex: number, xdpFlags: number, netns?: string): NativeFd | Status;
  tcxAttach(progFd: number, ifindex: number, egress: boolean, netns?: string): NativeFd | Status;
  clsactAttach(progFd: number, ifindex: number, egress: boolean, netns?: string): NativeTcFilter | Status;
  clsactDetach(ifindex: number, egress: boolean, handle: number, priority: number, netns?: string): Status;
  destroyUdpSockets(targets: readonly NativeUdpTarget[], netnsPath?: string): NativeDestroyCounts | Status;
  BpfObject: new () => NativeBpfObject;
}

const require = createRequire(import.meta.url);

export const native = require('../../build/Release/socklb_bpf.node') as Native;
