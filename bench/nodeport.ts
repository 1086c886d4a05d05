// `node bench/nodeport.ts [--seconds N] [--connections N]`: the NodePort baseline on the cluster
// lab (src/lab/cluster-lab.ts), the figures socklb's XDP NodePort will be set against in one run:
// HTTP requests per second (wrk against nginx in a pod; every request a new connection, so a new
// NAT flow) and TCP
// throughput (iperf3), from the outside client to node-a's NodePort, with kube-proxy's iptables
// (nft back end) and nftables rules; next to them the same pod dialled directly (routed through
// its node, no NAT). Bounded: --rounds (1..20, default 3) rounds of every system, each run
// --seconds (1..60, default 3). Prints a table of medians and a JSON line; writes nothing.

import { parseArgs } from 'node:util';
import { ClusterLab, type HttpLoadResult, type RulesMode, type ThroughputResult } from '../src/lab/cluster-lab.ts';
import type { BenchService } from './services.ts';

const HTTP_PORT = 8081;
const IPERF_PORT = 5201;
const NODEPORT_HTTP = 30080;
const NODEPORT_IPERF = 30201;

export interface NodePortRow {
  system: 'direct' | RulesMode;
  target: string;
  http: HttpLoadResult;
  throughput: ThroughputResult;
}

/**
 * Both NodePorts lead to pod-b0 alone, behind node-b: every request crosses node-a's DNAT and
 * MASQUERADE (kube-proxy's SNAT path), and direct and NodePort runs hit the same server.
 */
function services(lab: ClusterLab): BenchService[] {
  const b0 = lab.pod('pod-b0');
  const one = (name: string, last: number, port: number, nodePort: number): BenchService => ({
    namespace: 'bench',
    name,
    portName: 'tcp',
    clusterIP: `10.96.0.${last}`,
    port,
    protocol: 'TCP',
    endpoints: [{ ip: b0.ipv4, port, nodeName: 'node-b' }],
    nodePort,
  });
  return [one('web', 10, HTTP_PORT, NODEPORT_HTTP), one('iperf', 11, IPERF_PORT, NODEPORT_IPERF)];
}

/** Each round measures every system once, in the same order; the report takes the median per system. */
export async function runNodePortBench(
  seconds: number,
  connections: number,
  rounds: number,
  log: (s: string) => void,
): Promise<NodePortRow[]> {
  const lab = await ClusterLab.create({ prefix: ClusterLab.uniquePrefix('npbench'), pods: { 'node-a': 0, 'node-b': 1 }, ipv6: false });
  try {
    await lab.startNginx('pod-b0', HTTP_PORT);
    await lab.startIperfServer('pod-b0', IPERF_PORT);
    const rows: NodePortRow[] = [];
    const b0 = lab.pod('pod-b0').ipv4;
    const a = lab.node('node-a').ipv4;
    const measure = async (system: NodePortRow['system'], host: string, httpPort: number, iperfPort: number): Promise<void> => {
      log(`${system}: ${host}`);
      const http = await lab.measureHttp(host, httpPort, { seconds, connections });
      const throughput = await lab.measureThroughput(host, iperfPort, { seconds });
      rows.push({ system, target: host, http, throughput });
    };
    for (let round = 0; round < rounds; round++) {
      await measure('direct', b0, HTTP_PORT, IPERF_PORT);
      for (const mode of ['iptables', 'nftables'] as const) {
        await lab.installKubeProxyRules('node-a', services(lab), mode);
        await measure(mode, a, NODEPORT_HTTP, NODEPORT_IPERF);
        await lab.removeKubeProxyRules('node-a');
      }
    }
    return rows;
  } finally {
    await lab.destroy();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One line per system: medians over the rounds, the ratio to direct, every round's figures. */
export function renderRows(rows: NodePortRow[]): string {
  const lines = [
    '| system | target | requests/s (median) | vs direct | throughput (median) | vs direct | errors | rounds: requests/s |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  const of = (system: string) => rows.filter((r) => r.system === system);
  const rate = (system: string) => median(of(system).map((r) => r.http.requestsPerSec));
  const bits = (system: string) => median(of(system).map((r) => r.throughput.bitsPerSec));
  for (const system of ['direct', 'iptables', 'nftables']) {
    const rs = of(system);
    if (rs.length === 0) continue;
    const errors = rs.reduce((n, r) => n + r.http.errors, 0);
    lines.push(
      `| ${system} | ${rs[0]!.target} | ${rate(system).toFixed(0)} | ${(rate(system) / rate('direct')).toFixed(2)}x | ` +
        `${(bits(system) / 1e9).toFixed(2)} Gbit/s | ${(bits(system) / bits('direct')).toFixed(2)}x | ${errors} | ` +
        `${rs.map((r) => r.http.requestsPerSec.toFixed(0)).join(', ')} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '3' },
    },
  });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new RangeError('--rounds must be an integer in 1..20');
  const log = (s: string): void => {
    process.stderr.write(`nodeport: ${s}\n`);
  };
  const rows = await runNodePortBench(Number(values.seconds), Number(values.connections), rounds, log);
  const commands = [...new Set(rows.flatMap((r) => [r.http.command, r.throughput.command]))];
  process.stdout.write(`${renderRows(rows)}\n\ncommands:\n${commands.map((c) => `  ${c}`).join('\n')}\n`);
  process.stdout.write(`${JSON.stringify(rows)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`nodeport: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
