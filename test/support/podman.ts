// podman for the image test: the flags this kind of host needs (tools/podman-flags.sh, shared
// with tools/image.sh), commands with a time limit, and the removal of test containers, which
// outlive a test process that dies (conmon is their parent): each carries its owner's pid and
// start time, and a later run removes those of dead owners.

import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { startTime } from '../../src/lab/netns-base.ts';
import { ROOT } from './agent-process.ts';

/** What `npm run image` (tools/image.sh) builds. */
export const IMAGE = 'localhost/socklb:dev';

const OWNER_LABEL = 'socklb.test.owner';

/** runc and ulimits, as tools/podman-flags.sh decides them for this host. */
export function hostFlags(): string[] {
  return execFileSync('bash', [join(ROOT, 'tools/podman-flags.sh')], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '');
}

/** Labels that tie a container to this test process. */
export function ownerLabels(): string[] {
  return [`--label=${OWNER_LABEL}=${process.pid}:${startTime(process.pid) ?? ''}`];
}

export interface PodmanResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `podman ARGS`, killed after `timeoutMs`; never throws on a non-zero exit. */
export function podman(args: string[], timeoutMs = 60_000): Promise<PodmanResult> {
  return new Promise((resolve) => {
    const child = spawn('podman', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like podman(), but throws with the output unless it exits 0. */
export async function podmanOk(args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await podman(args, timeoutMs);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Removes the containers of test processes that are gone (a run killed before its cleanup). */
export async function sweepDeadOwners(): Promise<string[]> {
  const out = await podmanOk(['ps', '--all', '--filter', `label=${OWNER_LABEL}`, '--format', `{{.ID}} {{index .Labels "${OWNER_LABEL}"}}`]);
  const dead = out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ') as [string, string])
    .filter(([, owner]) => {
      const [pid, start] = owner.split(':');
      return startTime(Number(pid)) !== start;
    })
    .map(([id]) => id);
  if (dead.length > 0) await podmanOk(['rm', '--force', '--volumes', ...dead]);
  return dead;
}

export const DAEMONSET = join(ROOT, 'deploy/daemonset.yaml');
