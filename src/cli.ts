// socklb's command line: `socklb agent | demo | cleanup`.

import { hostname } from 'node:os';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type Logger, pino } from 'pino';
import { capacityOf, cleanup, DEFAULT_BPFFS, DEFAULT_CAPACITY, DEFAULT_REVERSE_ENTRIES } from './agent/datapath.ts';
import { chooseDevices, deviceNodeAddresses, listDevices, nodePortAddresses, parseNodePortCidrs } from './agent/devices.ts';
import { cgroup2Mount } from './agent/host.ts';
import { DEFAULT_NAT_PORTS, DEFAULT_SYSCTL_NET, type XdpOptions } from './agent/xdp.ts';
import { inspectCommand } from './cli/inspect.ts';
import { runAgent } from './daemon/main.ts';
import { DEFAULT_TABLE_POSITIONS, DEFAULT_TABLES } from './datapath/maps.ts';
import { DEFAULT_DEBUG_ADDRESS } from './debug/server.ts';
import { runDemo } from './demo/demo.ts';
import { ErrorCodes, SocklbError } from './errors.ts';
import type { ParsedCidr } from './model/ip.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE } from './model/maglev.ts';
import { parseMaglevTableSize, parseScheduler } from './model/scheduler.ts';
import type { SchedulerDefaults } from './reconcile/plan.ts';

const USAGE = `usage:
  socklb agent [--manifests FILE | --kubeconfig FILE] [--cgroup PATH] [--bpffs DIR] [--node-name NAME]
               [--min-sync-period MS] [--max-services N] [--max-backends N] [--max-slots N]
               [--scheduler random|rr|wrr|sh|maglev|lc|wlc|sed|nq] [--maglev-table-size PRIME]
               [--max-scheduler-tables N] [--max-table-positions N]
               [--health-address HOST:PORT] [--health-timeout MS]
               [--xdp-mode native|generic|off] [--devices IF[,IF]] [--nodeport-addresses CIDR[,CIDR]]
               [--nodeport-mode snat|dsr] [--sysctl-net DIR]
               [--debug-address HOST:PORT] [--debug-allow-remote --debug-token-file FILE]
               [--metrics-per-backend]
  socklb demo
  socklb cleanup [--bpffs DIR]
  socklb services | backends | maps | map dump NAME | status  [--address HOST:PORT] [--json]

  agent    program the node's socket load balancer from Services and EndpointSlices: from a
           manifest file, else from the API server (in-cluster config, or --kubeconfig)
  demo     build a lab in network namespaces, balance a ClusterIP over three pods, clean up
  cleanup  detach and unpin everything the agent made under --bpffs (default ${DEFAULT_BPFFS})
  services, backends, maps, map dump, status
           ask a running agent's debug endpoint (default ${DEFAULT_DEBUG_ADDRESS}) what it holds`;

const AGENT_OPTIONS = {
  manifests: { type: 'string' },
  kubeconfig: { type: 'string' },
  'health-address': { type: 'string', default: '0.0.0.0:10256' },
  'health-timeout': { type: 'string', default: '60000' },
  cgroup: { type: 'string' },
  bpffs: { type: 'string', default: DEFAULT_BPFFS },
  'node-name': { type: 'string' },
  'min-sync-period': { type: 'string', default: '100' },
  'max-services': { type: 'string', default: String(DEFAULT_CAPACITY.services) },
  'max-backends': { type: 'string', default: String(DEFAULT_CAPACITY.backends) },
  'max-slots': { type: 'string', default: String(DEFAULT_CAPACITY.slots) },
  scheduler: { type: 'string', default: 'random' },
  'maglev-table-size': { type: 'string', default: String(DEFAULT_MAGLEV_TABLE_SIZE) },
  'max-scheduler-tables': { type: 'string', default: String(DEFAULT_TABLES) },
  'max-table-positions': { type: 'string', default: String(DEFAULT_TABLE_POSITIONS) },
  'debug-address': { type: 'string', default: DEFAULT_DEBUG_ADDRESS },
  'debug-allow-remote': { type: 'boolean', default: false },
  'debug-token-file': { type: 'string' },
  'xdp-mode': { type: 'string', default: 'native' },
  devices: { type: 'string', default: '' },
  'nodeport-addresses': { type: 'string', default: '' },
  'nodeport-mode': { type: 'string', default: 'snat' },
  'sysctl-net': { type: 'string', default: DEFAULT_SYSCTL_NET },
  'metrics-per-backend': { type: 'boolean', default: false },
} satisfies ParseArgsConfig['options'];

function listOption(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * The XDP side from the flags: the devices traffic from outside arrives on and the node addresses
 * NodePorts listen on (in manifest mode the devices'; from the API server the Node object replaces
 * them), or undefined with --xdp-mode off.
 */
function xdpFromFlags(
  values: { 'xdp-mode': string; devices: string; 'nodeport-mode': string; 'sysctl-net': string },
  nodePortCidrs: ParsedCidr[],
) {
  const mode = values['xdp-mode'];
  if (mode !== 'native' && mode !== 'generic' && mode !== 'off') {
    throw new SocklbError(ErrorCodes.BAD_OPTION, `--xdp-mode must be native, generic or off, got ${JSON.stringify(mode)}`);
  }
  const nodePortMode = values['nodeport-mode'];
  if (nodePortMode !== 'snat' && nodePortMode !== 'dsr') {
    throw new SocklbError(ErrorCodes.BAD_OPTION, `--nodeport-mode must be snat or dsr, got ${JSON.stringify(nodePortMode)}`);
  }
  const all = listDevices();
  const addresses = nodePortAddresses(deviceNodeAddresses(all), nodePortCidrs);
  if (mode === 'off') return { xdp: undefined, addresses };
  const devices = chooseDevices(all, listOption(values.devices), addresses);
  const chosen = devices.flatMap((d) => d.addresses);
  const xdp: XdpOptions = {
    devices,
    mode,
    snatAddresses: { v4: chosen.find((a) => !a.includes(':')), v6: chosen.find((a) => a.includes(':')) },
    natPorts: DEFAULT_NAT_PORTS,
    nodePortMode,
    sysctlNet: values['sysctl-net'],
  };
  return { xdp, addresses };
}

/** --scheduler and --maglev-table-size, read as the annotations they stand in for are. */
function schedulerDefaults(values: { scheduler: string; 'maglev-table-size': string }): SchedulerDefaults {
  const scheduler = parseScheduler(values.scheduler);
  if ('error' in scheduler) throw new SocklbError(ErrorCodes.BAD_OPTION, `--scheduler ${scheduler.error}`);
  const size = parseMaglevTableSize(values['maglev-table-size']);
  if ('error' in size) throw new SocklbError(ErrorCodes.BAD_OPTION, `--maglev-table-size ${size.error}`);
  return { scheduler: scheduler.value, maglevTableSize: size.value };
}

function integerOption(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new SocklbError(ErrorCodes.BAD_OPTION, `--${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

async function agentCommand(argv: string[], log: Logger): Promise<void> {
  const { values } = parseArgs({ args: argv, options: AGENT_OPTIONS, strict: true });
  const nodePortCidrs = parseNodePortCidrs(listOption(values['nodeport-addresses']));
  const { xdp, addresses } = xdpFromFlags(values, nodePortCidrs);
  const services = integerOption('max-services', values['max-services'], 1, 1 << 22);
  const backends = integerOption('max-backends', values['max-backends'], 1, 1 << 22);
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await runAgent(
    {
      bpffs: values.bpffs,
      cgroup: values.cgroup ?? cgroup2Mount(),
      capacity: {
        ...capacityOf({ services, backends, slots: integerOption('max-slots', values['max-slots'], 1, 1 << 24) }),
        tables: integerOption('max-scheduler-tables', values['max-scheduler-tables'], 0, 1 << 16),
        tablePositions: integerOption('max-table-positions', values['max-table-positions'], 0, 1 << 26),
      },
      schedulerDefaults: schedulerDefaults(values),
      reverseEntries: DEFAULT_REVERSE_ENTRIES,
      ...(xdp ? { xdp } : {}),
      nodePortCidrs,
      nodeAddresses: addresses,
      nodeName: values['node-name'] ?? process.env.NODE_NAME ?? hostname(),
      minSyncPeriodMs: integerOption('min-sync-period', values['min-sync-period'], 0, 60_000),
      ...(values.manifests ? { manifests: values.manifests } : {}),
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
      healthAddress: values['health-address'],
      healthTimeoutMs: integerOption('health-timeout', values['health-timeout'], 1000, 3_600_000),
      debug: {
        address: values['debug-address'],
        allowRemote: values['debug-allow-remote'],
        ...(values['debug-token-file'] ? { tokenFile: values['debug-token-file'] } : {}),
      },
      metricsPerBackend: values['metrics-per-backend'],
      log,
    },
    stopped,
  );
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
      case 'services':
      case 'backends':
      case 'maps':
      case 'map':
      case 'status':
        return await inspectCommand(command, rest);
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
