// socklb's command line: `socklb agent | demo | cleanup`.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino, type Logger } from 'pino';
import { Agent } from './agent/agent.ts';
import { cleanup, DEFAULT_BPFFS, DEFAULT_CAPACITY, DEFAULT_REVERSE_ENTRIES } from './agent/datapath.ts';
import { cgroup2Mount } from './agent/host.ts';
import { runDemo } from './demo/demo.ts';
import { ErrorCodes, SocklbError } from './errors.ts';
import { ManifestSource } from './sources/manifest.ts';
import { hostname } from 'node:os';

const USAGE = `usage:
  socklb agent [--manifests FILE] [--cgroup PATH] [--bpffs DIR] [--node-name NAME]
               [--min-sync-period MS] [--max-services N] [--max-backends N] [--max-slots N]
  socklb demo
  socklb cleanup [--bpffs DIR]

  agent    program the node's socket load balancer from Services and EndpointSlices
  demo     build a lab in network namespaces, balance a ClusterIP over three pods, clean up
  cleanup  detach and unpin everything the agent made under --bpffs (default ${DEFAULT_BPFFS})`;

const AGENT_OPTIONS = {
  manifests: { type: 'string' },
  cgroup: { type: 'string' },
  bpffs: { type: 'string', default: DEFAULT_BPFFS },
  'node-name': { type: 'string' },
  'min-sync-period': { type: 'string', default: '100' },
  'max-services': { type: 'string', default: String(DEFAULT_CAPACITY.services) },
  'max-backends': { type: 'string', default: String(DEFAULT_CAPACITY.backends) },
  'max-slots': { type: 'string', default: String(DEFAULT_CAPACITY.slots) },
} satisfies ParseArgsConfig['options'];

function integerOption(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new SocklbError(ErrorCodes.BAD_OPTION, `--${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

async function agentCommand(argv: string[], log: Logger): Promise<void> {
  const { values } = parseArgs({ args: argv, options: AGENT_OPTIONS, strict: true });
  if (!values.manifests) {
    throw new SocklbError(ErrorCodes.BAD_OPTION, 'no source of services: give --manifests FILE');
  }
  const services = integerOption('max-services', values['max-services'], 1, 1 << 22);
  const backends = integerOption('max-backends', values['max-backends'], 1, 1 << 22);
  const agent = new Agent({
    bpffs: values.bpffs,
    cgroup: values.cgroup ?? cgroup2Mount(),
    capacity: {
      services,
      backends,
      slots: integerOption('max-slots', values['max-slots'], 1, 1 << 24),
      // Ids index the per-CPU counter arrays; both families share one id space.
      serviceIds: 2 * services + 1,
      backendIds: 2 * backends + 1,
    },
    reverseEntries: DEFAULT_REVERSE_ENTRIES,
    node: { name: values['node-name'] ?? process.env.NODE_NAME ?? hostname() },
    log,
    minSyncPeriodMs: integerOption('min-sync-period', values['min-sync-period'], 0, 60_000),
  });
  const source = new ManifestSource(values.manifests, {
    onChange: (snapshot) => agent.update(snapshot),
    onError: (err) => log.error(err.message),
  });
  await source.start();
  await agent.whenSynced();
  log.info({ ...agent.status(), objectProblems: undefined, programProblems: undefined }, 'in sync');

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await source.stop();
  agent.close();
  log.info('stopped; the pinned datapath keeps balancing (socklb cleanup removes it)');
}

function cleanupCommand(argv: string[], log: Logger): void {
  const { values } = parseArgs({
    args: argv,
    options: { bpffs: { type: 'string', default: DEFAULT_BPFFS } },
    strict: true,
  });
  const removed = cleanup(values.bpffs);
  log.info({ removed: removed.length, bpffs: values.bpffs }, 'detached and unpinned');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const log = pino({ base: undefined, level: process.env.SOCKLB_LOG_LEVEL ?? 'info' });
  try {
    switch (command) {
      case 'agent':
        await agentCommand(rest, log);
        return 0;
      case 'demo':
        return await runDemo(rest);
      case 'cleanup':
        cleanupCommand(rest, log);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        console.error(`socklb: unknown command ${JSON.stringify(command)}\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      console.error(`socklb ${command}: ${e.message}\n${USAGE}`);
      return 2;
    }
    log.fatal({ code: e.code }, e.message);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
