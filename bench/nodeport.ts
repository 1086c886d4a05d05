// `node bench/nodeport.ts [--seconds N] [--connections N]`: the NodePort baseline on the cluster
// lab (src/lab/cluster-lab.ts), the figures socklb's XDP NodePort will be set against in one run:
// HTTP requests per second (wrk against nginx in a pod; every request a new connection, so a new
// NAT flow) and TCP
// throughput (iperf3), from the outside client to node-a's NodePort, with kube-proxy's iptables
// (nft back end) and nftables rules; next to them the same pod dialled directly (routed through
// its node, no NAT). Bounded: each run lasts --seconds (1..60, default 5). Prints one table and
// a JSON line; writes nothing.

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

export async function runNodePortBench(seconds: number, connections: number, log: (s: string) => void): Promise<NodePortRow[]> {
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
    await measure('direct', b0, HTTP_PORT, IPERF_PORT);
    for (const mode of ['iptables', 'nftables'] as const) {
      await lab.installKubeProxyRules('node-a', services(lab), mode);
      await measure(mode, a, NODEPORT_HTTP, NODEPORT_IPERF);
      await lab.removeKubeProxyRules('node-a');
    }
    return rows;
  } finally {
    await lab.destroy();
  }
}

export function renderRows(rows: NodePortRow[]): string {
  const lines = ['| system | target | requests/s | errors | mean latency | throughput |', '| --- | --- | ---: | ---: | ---: | ---: |'];
  for (const r of rows) {
    lines.push(
      `| ${r.system} | ${r.target} | ${r.http.requestsPerSec.toFixed(0)} | ${r.http.errors} | ${r.http.latencyAvgMs.toFixed(2)} ms | ${(r.throughput.bitsPerSec / 1e9).toFixed(2)} Gbit/s |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, connections: { type: 'string', default: '16' } } });
  const rows = await runNodePortBench(Number(values.seconds), Number(values.connections), (s) => process.stderr.write(`nodeport: ${s}\n`));
  process.stdout.write(
    `${renderRows(rows)}\n\ncommands:\n${rows.map((r) => `  ${r.http.command}\n  ${r.throughput.command}`).join('\n')}\n`,
  );
  process.stdout.write(`${JSON.stringify(rows)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`nodeport: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
