// `socklb agent` as a process of its own, from this checkout or another one (an earlier release
// built in a temporary worktree): what the restart and upgrade tests run and kill.

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { SockLab } from './sock-lab.ts';
import { scaled } from './time-scale.ts';

export const ROOT = join(import.meta.dirname, '../..');

export interface AgentProcess {
  child: ChildProcess;
  /** The agent's "in sync" log record. */
  inSync: Record<string, unknown>;
}

/** `socklb agent`'s arguments on the lab's manifest, cgroup and bpffs, listening on loopback only. */
export function agentArgs(sl: SockLab, o: { root?: string; maxServices?: number } = {}): string[] {
  return [
    'agent',
    '--manifests',
    sl.manifestPath,
    '--cgroup',
    sl.lab.cgroupPath,
    '--bpffs',
    sl.bpffs,
    '--max-services',
    String(o.maxServices ?? 256),
    '--max-backends',
    '256',
    '--max-slots',
    '1024',
    '--health-address',
    '127.0.0.1:0',
    '--debug-address',
    '127.0.0.1:0',
    // The test runs the agent in the machine's own network namespace: its devices are not ours.
    ...(o.root === undefined ? ['--xdp-mode', 'off'] : []),
  ];
}

/** Starts the agent of the checkout at `root` on the lab's manifest; resolves once it logs "in sync". */
export function startAgentProcess(
  sl: SockLab,
  agents: ChildProcess[],
  o: { root?: string; maxServices?: number } = {},
): Promise<AgentProcess> {
  const child = spawn(join(o.root ?? ROOT, 'bin/socklb'), agentArgs(sl, o), { stdio: ['ignore', 'pipe', 'pipe'] });
  agents.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`agent not in sync after ${scaled(20)} s:\n${out}\n${err}`)), scaled(20_000));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      for (const line of out.split('\n')) {
        if (!line.includes('"in sync"')) continue;
        clearTimeout(timer);
        resolve({ child, inSync: JSON.parse(line) as Record<string, unknown> });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code}:\n${out}\n${err}`));
    });
  });
}

/** Stops an agent process the way a DaemonSet update does (SIGTERM) and waits for it to exit. */
export async function stopAgentProcess(agent: AgentProcess): Promise<void> {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) return;
  const exited = new Promise((r) => agent.child.once('exit', r));
  agent.child.kill('SIGTERM');
  await exited;
}
