// An agent started without a capability it needs stops at once with one line naming it, having
// loaded, pinned and attached nothing; with every capability the same command line goes in sync.
// The capability is taken away with setpriv (util-linux): dropped from the bounding set, a root
// process's exec leaves it out of the permitted and effective sets, as a container runtime does.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SOCK_PROGRAMS } from '../../src/agent/datapath.ts';
import { cgroupPrograms } from '../../src/bpf/binding.ts';
import { agentArgs, ROOT, startAgentProcess, stopAgentProcess } from '../support/agent-process.ts';
import { manifest, service, slice } from '../support/objects.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled } from '../support/time-scale.ts';

interface Ctx {
  sl: SockLab;
  agents: ChildProcess[];
}

function attachedPrograms(cgroup: string): number {
  return Object.values(SOCK_PROGRAMS).reduce((n, type) => n + cgroupPrograms(cgroup, type).length, 0);
}

/** Runs the agent without `capability` until it exits; its output and exit code. */
async function agentWithout(ctx: Ctx, capability: string): Promise<{ code: number | null; lines: string[]; ms: number }> {
  const started = Date.now();
  const child = spawn('setpriv', [`--bounding-set=-${capability.toLowerCase()}`, '--', join(ROOT, 'bin/socklb'), ...agentArgs(ctx.sl)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ctx.agents.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d));
  child.stderr!.on('data', (d: Buffer) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), scaled(20_000));
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, lines: output.split('\n').filter((l) => l.trim() !== ''), ms: Date.now() - started };
}

const caps = suite<Ctx>('the agent without a capability it needs');

caps.before(async (ctx) => {
  ctx.sl = await SockLab.create('caps', 1);
  ctx.agents = [];
  const pod = ctx.sl.lab.pods[0]!;
  await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
  writeFileSync(
    ctx.sl.manifestPath,
    manifest([
      service({ name: 'web', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: pod.ipv4 }] }),
    ]),
  );
});

caps.after(async (ctx) => {
  for (const a of ctx.agents) a.kill('SIGKILL');
  await ctx.sl?.close();
});

for (const capability of ['BPF', 'SYS_ADMIN']) {
  caps(`without CAP_${capability}: one line naming it, exit 1, nothing pinned or attached`, async (ctx) => {
    const run = await agentWithout(ctx, capability);
    assert.is(run.code, 1, run.lines.join('\n'));
    assert.is(run.lines.length, 1, `expected one line, got:\n${run.lines.join('\n')}`);
    const record = JSON.parse(run.lines[0]!) as { level: number; code: string; msg: string };
    assert.is(record.code, 'SOCKLB_ERR_CAPABILITY');
    assert.match(record.msg, new RegExp(`^missing CAP_${capability} \\(`));
    assert.is(record.msg.match(/CAP_[A-Z_]+/g)!.length, 1, record.msg);
    assert.not.ok(existsSync(ctx.sl.bpffs), `${ctx.sl.bpffs} was made`);
    assert.is(attachedPrograms(ctx.sl.lab.cgroupPath), 0);
    console.log(`  without CAP_${capability}: exited in ${run.ms} ms`);
  });
}

caps('with every capability the same command line programs the datapath (the check is not what stops it)', async (ctx) => {
  const agent = await startAgentProcess(ctx.sl, ctx.agents);
  assert.ok(attachedPrograms(ctx.sl.lab.cgroupPath) > 0);
  await stopAgentProcess(agent);
  const after = await ctx.sl.lab.runProbe(['tcp', '--target', '10.96.0.10:80', '--count', '1']);
  assert.is(after.failed, 0, 'connects still reach the pod through the pinned datapath');
});

caps.run();
