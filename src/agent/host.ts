// What the agent needs from the host before it loads anything: bpffs and the cgroup2 mount.

import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { ErrorCodes, SocklbError } from '../errors.ts';

export interface Mount {
  source: string;
  target: string;
  fstype: string;
}

/** /proc/mounts, with the octal escapes of paths (\040 for a space) decoded. */
export function readMounts(text = readFileSync('/proc/mounts', 'utf8')): Mount[] {
  const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [source = '', target = '', fstype = ''] = line.split(' ');
      return { source: unescapeOctal(source), target: unescapeOctal(target), fstype };
    });
}

/** The cgroup2 mount point; on a hybrid layout it is not /sys/fs/cgroup itself. */
export function cgroup2Mount(mounts = readMounts()): string {
  const found = mounts.find((m) => m.fstype === 'cgroup2');
  if (!found) throw new SocklbError(ErrorCodes.HOST, 'no cgroup2 file system is mounted (see /proc/mounts)');
  return found.target;
}

/** Mounts bpffs at `root` unless a bpf file system is already there; pins need it. */
export function ensureBpffs(root = '/sys/fs/bpf', mounts = readMounts()): void {
  if (mounts.some((m) => m.fstype === 'bpf' && m.target === root)) return;
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', root], { stdio: 'pipe' });
  } catch (err) {
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
    throw new SocklbError(ErrorCodes.HOST, `cannot mount bpffs at ${root}: ${detail}`);
  }
}

/** The bpffs mount that holds `path` (the longest bpf mount point that is a prefix of it). */
export function bpffsRootOf(path: string, mounts = readMounts()): string | undefined {
  return mounts
    .filter((m) => m.fstype === 'bpf' && (path === m.target || path.startsWith(`${m.target}/`)))
    .map((m) => m.target)
    .sort((a, b) => b.length - a.length)[0];
}

/** A cgroup v2 directory's id is its inode number: what a cgroup bpf_link reports. */
export function cgroupId(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) throw new SocklbError(ErrorCodes.HOST, `${path} is not a cgroup directory`);
  return st.ino;
}
