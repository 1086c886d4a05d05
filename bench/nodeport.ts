// `node bench/nodeport.ts [--seconds N] [--connections N]`: the NodePort baseline on the cluster
// lab (src/lab/cluster-lab.ts), the figures socklb's XDP NodePort will be set against in one run:
// HTTP requests per second (wrk against nginx in a pod; every request a new connection, so a new
// NAT flow) and TCP
// throughput (iperf3), from the outside client to node-a's NodePort, with kube-proxy's iptables
// (nft back end) and nftables rules; next to them the same pod dialled directly (routed through
// its node, no NAT). Bounded: --rounds (1..20, default 3) rounds of every system, each run
// --seconds (1..60, default 3). Prints a table of medians and a JSON line; with --out DIR it also
// writes DIR/<date>-nodeport.{json,svg} (the chart: bench/nodeport-chart.ts).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { cleanup as cleanupDatapath, XDP_OBJECT } from '../src/agent/datapath.ts';
import { BpfMap, BpfObject } from '../src/bpf/binding.ts';
import { MapNames, sumPerCpu, XDP_REASONS } from '../src/datapath/abi.ts';
import { ClusterLab, type HttpLoadResult, type RulesMode, type ThroughputResult } from '../src/lab/cluster-lab.ts';
import { type BenchService, toKubernetes } from '../src/lab/services.ts';
import { renderNodePortChart } from './nodeport-chart.ts';

const HTTP_PORT = 8081;
const IPERF_PORT = 5201;
const NODEPORT_HTTP = 30080;
const NODEPORT_IPERF = 30201;

export interface NodePortRow {
  system: 'direct' | RulesMode | 'socklb';
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
      const stop = await startSocklb(lab, services(lab));
      try {
        await measure('socklb', a, NODEPORT_HTTP, NODEPORT_IPERF);
      } finally {
        await stop();
      }
    }
    return rows;
  } finally {
    await lab.destroy();
  }
}

/**
 * socklb's agent on node-a with XDP on its device, over a manifest of the same services; an
 * XDP_PASS program on the switch port its XDP_TX goes out through (a veth delivers XDP frames only
 * then). Resolves once the NodePort answers; the function it returns stops the agent and removes
 * the datapath (pins, links), so the next system meets a clean node.
 */
async function startSocklb(lab: ClusterLab, list: BenchService[]): Promise<() => Promise<void>> {
  const node = lab.node('node-a');
  const dir = mkdtempSync(join(tmpdir(), 'socklb-npbench-'));
  const file = join(dir, 'services.yaml');
  const objects = toKubernetes(list);
  writeFileSync(file, [...objects.services, ...objects.slices].map((o) => stringify(o)).join('---\n'));
  const pass = BpfObject.open(XDP_OBJECT);
  pass.load();
  const index = (
    JSON.parse((await lab.exec(node.peer.ns, ['ip', '-j', 'link', 'show', node.peer.device])).stdout) as { ifindex: number }[]
  )[0]!;
  const link = pass.attachXdp('xdp_pass', index.ifindex, 'native', `/run/netns/${node.peer.ns}`);
  const agent = lab.startAgent('node-a', ['--manifests', file, '--devices', node.device, '--nodeport-addresses', '192.168.77.0/24']);
  const stop = async (): Promise<void> => {
    logXdpCounters(node.bpffs);
    await agent.stop();
    cleanupDatapath(node.bpffs);
    link.close();
    pass.close();
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 60; i++) {
    const r = await lab
      .runProbe(['tcp', '--target', `${node.ipv4}:${NODEPORT_HTTP}`, '--count', '1', '--timeout-ms', '500'])
      .catch(() => undefined);
    if (r?.ok === 1) return stop;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await stop();
  throw new Error(`socklb's NodePort never answered: ${agent.output().slice(-2000)}`);
}

/** The agent's XDP counters that tell whether SNAT ports ran short, for the log. */
function logXdpCounters(bpffs: string): void {
  const stats = BpfMap.fromPin(join(bpffs, 'maps', MapNames.xdpStats));
  try {
    const counter = { name: 'count', size: 8, fields: [{ name: 'n', type: 'u64', offset: 0 }] } as const;
    const n = (reason: (typeof XDP_REASONS)[number]) => {
      const value = stats.lookup(Buffer.from(new Uint32Array([XDP_REASONS.indexOf(reason)]).buffer));
      return value ? sumPerCpu(counter, value).n : 0n;
    };
    const shown = ['balanced', 'nat_exhausted', 'nat_reclaimed', 'ct_expired', 'ct_reopened'] as const;
    process.stderr.write(`nodeport: socklb's XDP counters: ${shown.map((r) => `${r} ${n(r)}`).join(', ')}\n`);
  } finally {
    stats.close();
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
  for (const system of ['direct', 'iptables', 'nftables', 'socklb']) {
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
      out: { type: 'string' },
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
  if (values.out) {
    const started = new Date().toISOString();
    const base = join(values.out, `${started.slice(0, 10)}-nodeport`);
    mkdirSync(values.out, { recursive: true });
    writeFileSync(`${base}.json`, `${JSON.stringify({ startedAt: started, kernel: release(), rounds, rows }, null, 2)}\n`);
    const subtitle = `kernel ${release()}, ${started.slice(0, 16).replace('T', ' ')} UTC; medians of ${rounds} rounds (node bench/nodeport.ts)`;
    writeFileSync(`${base}.svg`, renderNodePortChart(rows, subtitle));
    log(`wrote ${base}.json and ${base}.svg`);
  }
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`nodeport: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
