// `socklb demo`: a ClusterIP service over three pods in network namespaces, balanced by socklb,
// with the spread of a few hundred requests printed; everything it made is removed at the end.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../agent/agent.ts';
import { capacityOf, cleanup } from '../agent/datapath.ts';
import { NetnsLab, type ProbeResult } from '../lab/netns-lab.ts';
import { ManifestSource } from '../sources/manifest.ts';

const CLUSTER_IPV4 = '10.96.0.10';
const CLUSTER_IPV6 = 'fd00:10:96::10';
const REQUESTS = 300;

function demoManifest(lab: NetnsLab): string {
  const endpoints = (family: 'ipv4' | 'ipv6') =>
    lab.pods
      .map((p) => `  - addresses: ["${p[family]}"]\n    conditions: {ready: true}\n    targetRef: {kind: Pod, name: ${p.name}}`)
      .join('\n');
  return `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  type: ClusterIP
  ipFamilyPolicy: PreferDualStack
  ipFamilies: [IPv4, IPv6]
  clusterIP: ${CLUSTER_IPV4}
  clusterIPs: ["${CLUSTER_IPV4}", "${CLUSTER_IPV6}"]
  ports:
  - {name: http, port: 80, targetPort: http, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-ipv4
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
${endpoints('ipv4')}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-ipv6
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv6
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
${endpoints('ipv6')}
`;
}

function printSpread(title: string, result: ProbeResult): void {
  console.log(`\n${title}: ${result.ok} ok, ${result.failed} failed in ${result.elapsedMs.toFixed(0)} ms`);
  const total = Math.max(1, result.ok);
  for (const [name, count] of Object.entries(result.byBackend).sort()) {
    const bar = '#'.repeat(Math.round((40 * count) / total));
    console.log(`  ${name.padEnd(6)} ${String(count).padStart(4)}  ${((100 * count) / total).toFixed(1).padStart(5)}%  ${bar}`);
  }
  console.log(`  the client saw its peer as: ${Object.keys(result.peers).join(', ')}`);
}

export async function runDemo(argv: string[]): Promise<number> {
  if (argv.length > 0) throw new TypeError(`socklb demo takes no arguments, got ${argv.join(' ')}`);
  const prefix = NetnsLab.uniquePrefix('demo');
  const bpffs = `/sys/fs/bpf/${prefix}`;
  const workDir = mkdtempSync(join(tmpdir(), 'socklb-demo-'));
  let lab: NetnsLab | undefined;
  let agent: Agent | undefined;
  let source: ManifestSource | undefined;
  const tearDown = async () => {
    await source?.stop();
    await agent?.close();
    cleanup(bpffs);
    await lab?.destroy();
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = () => {
    void tearDown().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(`socklb demo: building a lab (namespaces ${prefix}-*) with three pods...`);
    lab = await NetnsLab.create({ prefix, backends: 3 });
    for (const pod of lab.pods) await lab.startServer(pod.index, { tcp: [8080] });
    const manifest = join(workDir, 'services.yaml');
    writeFileSync(manifest, demoManifest(lab));
    console.log(
      `service demo/web: ClusterIPs ${CLUSTER_IPV4}, ${CLUSTER_IPV6} port 80 -> pods ${lab.pods.map((p) => p.ipv4).join(', ')} port 8080`,
    );

    agent = await Agent.create({
      bpffs,
      cgroup: lab.cgroupPath,
      capacity: capacityOf({ services: 1024, backends: 1024, slots: 4096 }),
      reverseEntries: 4096,
      node: { name: 'demo-node' },
      log: pino({ level: 'warn' }),
      minSyncPeriodMs: 0,
    });
    const a = agent;
    source = new ManifestSource(manifest, { onChange: (s) => a.update(s) });
    await source.start();
    await agent.whenSynced();
    console.log(`agent: hooks attached to ${lab.cgroupPath}, ${agent.status().frontends} frontends programmed`);

    const v4 = await lab.runProbe(['tcp', '--target', `${CLUSTER_IPV4}:80`, '--count', String(REQUESTS)]);
    printSpread(`${REQUESTS} HTTP requests to ${CLUSTER_IPV4}:80 from the client namespace`, v4);
    const v6 = await lab.runProbe(['tcp', '--target', `[${CLUSTER_IPV6}]:80`, '--count', String(REQUESTS)]);
    printSpread(`${REQUESTS} HTTP requests to [${CLUSTER_IPV6}]:80`, v6);
    const ok = v4.failed === 0 && v6.failed === 0 && Object.keys(v4.byBackend).length === 3;
    console.log(ok ? '\ndemo ok: every request reached a pod, no DNAT rule or conntrack entry involved' : '\ndemo FAILED');
    return ok ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await tearDown();
    console.log('cleaned up: namespaces, cgroup, pins and attachments removed');
  }
}
