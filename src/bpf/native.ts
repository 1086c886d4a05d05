// The raw libbpf addon (build/Release/socklb_bpf.node) as TypeScript sees it. Only binding.ts uses
// it (and the tests of the addon itself): every call returns a negative errno on failure; a Buffer
// whose size does not fit the map throws a BpfError (EINVAL) once binding.ts has set the class.
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
  // While loadAsync() runs, every call of the object (close() included) returns -EBUSY.
  mapNames(): string[] | Status;
  programNames(): string[] | Status;
  setMaxEntries(map: string, n: number): Status;
  setPinPath(map: string, path: string): Status;
  reuseMapFd(map: string, fd: number): Status;
  initialValue(map: string): Buffer | Status;
  setInitialValue(map: string, data: Buffer): Status;
  load(): Status;
  /** bpf_object__load on a worker thread: [status, what libbpf printed during this load]. */
  loadAsync(): Promise<[Status, string]>;
  mapFd(map: string): NativeFd | Status;
  programFd(program: string): number;
  attachCgroup(program: string, cgroupPath: string): NativeFd | Status;
  attachIter(program: string): NativeFd | Status;
  /** -EBUSY (and nothing closed) while loadAsync() runs. */
  close(): Status;
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
  /** Makes the addon's own errors (a Buffer of the wrong size) instances of cls. */
  setErrorClass(cls: new (operation: string, status: number, detail?: string) => Error): void;
  // The map calls take the map's Fd object, from which the addon learns (once) the sizes to check.
  mapLookup(map: NativeFd, key: Buffer, valueOut: Buffer): Status;
  mapUpdate(map: NativeFd, key: Buffer, value: Buffer, flags: number): Status;
  mapDelete(map: NativeFd, key: Buffer): Status;
  mapGetNextKey(map: NativeFd, key: Buffer | null, nextOut: Buffer): Status;
  mapLookupBatch(map: NativeFd, inBatch: Buffer | null, outBatch: Buffer, keysOut: Buffer, valuesOut: Buffer, count: number): BatchResult;
  mapUpdateBatch(map: NativeFd, keys: Buffer, values: Buffer, count: number, elemFlags: number): BatchResult;
  mapDeleteBatch(map: NativeFd, keys: Buffer, count: number): BatchResult;
  mapInfo(fd: number): NativeMapInfo | Status;
  objPin(fd: number, path: string): Status;
  objGet(path: string): NativeFd | Status;
  linkUpdate(linkFd: number, programFd: number): Status;
  linkInfo(fd: number): NativeLinkInfo | Status;
  iterRead(linkFd: number, netnsPath?: string): string | Status;
  /** iterRead on a worker thread, through a dup of linkFd (the link may be closed meanwhile). */
  iterReadAsync(linkFd: number, netnsPath?: string): Promise<string | Status>;
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
  /** destroyUdpSockets on a worker thread (targets are copied before it starts). */
  destroyUdpSocketsAsync(targets: readonly NativeUdpTarget[], netnsPath?: string): Promise<NativeDestroyCounts | Status>;
  BpfObject: new () => NativeBpfObject;
}

const require = createRequire(import.meta.url);

export const native = require('../../build/Release/socklb_bpf.node') as Native;
