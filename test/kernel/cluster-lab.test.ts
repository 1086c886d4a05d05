// The cluster lab (client, two nodes on a switch, routed pods) with kube-proxy's NodePort,
// LoadBalancer and externalIP rules as the baseline the XDP datapath will be compared with: the
// iptables (nft back end) and the nftables rules, IPv4 and IPv6, Cluster and Local policies.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cgroup2Mount } from '../../src/agent/host.ts';
import {
  CLIENT_IPV4,
  CLIENT_IPV6,
  ClusterLab,
  hostPort,
  type NodeName,
  type ProbeResult,
  parseWrk,
  type RulesMode,
} from '../../src/lab/cluster-lab.ts';
import { listNetns } from '../../src/lab/netns-base.ts';
import type { BenchService } from '../../src/lab/services.ts';
import { manifest, service, slice } from '../support/objects.ts';

const TCP = 8080;
const UDP = 5353;
const IPERF = 5201;
const NGINX = 8081;
const NP = { tcp: 30080, udp: 30053, localTcp: 30081, localUdp: 30054, lb: 30082, denied: 30083, iperf: 30201, nginx: 30090 };

let lab: ClusterLab;

/** One family's services: every pod an endpoint, its node recorded for the Local policy. */
function services(v6: boolean): BenchService[] {
  const ip = (v4: string, six: string): string => (v6 ? six : v4);
  const endpoints = (port: number) => lab.pods.map((p) => ({ ip: (v6 ? p.ipv6 : p.ipv4)!, port, nodeName: p.node as string }));
  const onB0 = (port: number) => ({ ip: (v6 ? lab.pod('pod-b0').ipv6 : lab.pod('pod-b0').ipv4)!, port, nodeName: 'node-b' });
  const svc = (
    name: string,
    last: number,
    protocol: 'TCP' | 'UDP',
    port: number,
    target: number,
    extra: Partial<BenchService>,
  ): BenchService => ({
    namespace: 'lab',
    name,
    portName: protocol.toLowerCase(),
    clusterIP: ip(`10.96.0.${last}`, `fd00:10:96::${last}`),
    port,
    protocol,
    endpoints: endpoints(target),
    ...extra,
  });
  return [
    svc('web', 10, 'TCP', 80, TCP, { nodePort: NP.tcp }),
    svc('dns', 11, 'UDP', 53, UDP, { nodePort: NP.udp }),
    svc('web-local', 12, 'TCP', 80, TCP, { nodePort: NP.localTcp, externalTrafficPolicy: 'Local' }),
    svc('dns-local', 13, 'UDP', 53, UDP, { nodePort: NP.localUdp, externalTrafficPolicy: 'Local' }),
    svc('lb', 14, 'TCP', 80, TCP, {
      nodePort: NP.lb,
      loadBalancerIPs: [ip('192.168.78.10', 'fd00:78::10')],
      loadBalancerSourceRanges: [ip(`${CLIENT_IPV4}/32`, `${CLIENT_IPV6}/128`)],
      externalIPs: [ip('192.168.78.20', 'fd00:78::20')],
    }),
    // Documentation ranges only: the client is never among the allowed sources.
    svc('lb-denied', 15, 'TCP', 80, TCP, {
      nodePort: NP.denied,
      loadBalancerIPs: [ip('192.168.78.11', 'fd00:78::11')],
      loadBalancerSourceRanges: [ip('192.0.2.0/24', '2001:db8::/32')],
    }),
    // The load helpers' servers run in pod-b0 only: these two lead there, across node-a's SNAT.
    { ...svc('iperf', 16, 'TCP', IPERF, IPERF, { nodePort: NP.iperf }), endpoints: [onB0(IPERF)] },
    { ...svc('nginx', 17, 'TCP', 80, NGINX, { nodePort: NP.nginx }), endpoints: [onB0(NGINX)] },
  ];
}

async function install(mode: RulesMode): Promise<void> {
  const all = [...services(false), ...services(true)];
  for (const n of ['node-a', 'node-b'] as NodeName[]) await lab.installKubeProxyRules(n, all, mode);
}

const names = (r: ProbeResult): string[] => Object.keys(r.byBackend).sort();
const podsOn = (node: NodeName): string[] => lab.podsOn(node).map((p) => p.name);

/** Every backend that answered saw `want(backend)` as the client address, and only that. */
function assertSources(r: ProbeResult, want: (backend: string) => string): void {
  for (const [backend, seen] of Object.entries(r.sources)) {
    assert.equal(Object.keys(seen), [want(backend)], `${backend} saw ${JSON.stringify(seen)}`);
  }
  assert.equal(Object.keys(r.sources).sort(), names(r), 'every reply said what the backend saw');
}

async function probe(mode: 'tcp' | 'udp', address: string, port: number, count = 40): Promise<ProbeResult> {
  // UDP: a new socket per datagram, else one 5-tuple is one conntrack flow and one backend.
  const fresh = mode === 'udp' ? ['--new-socket'] : [];
  return lab.runProbe([mode, '--target', hostPort(address, port), '--count', String(count), '--timeout-ms', '1000', ...fresh], {
    timeoutMs: 60_000,
  });
}

test.before(async () => {
  lab = await ClusterLab.create({ prefix: ClusterLab.uniquePrefix('clus') });
  await Promise.all(lab.pods.map((p) => lab.startServer(p.name, { tcp: [TCP], udp: [UDP] })));
  await lab.startIperfServer('pod-b0', IPERF);
  await lab.startNginx('pod-b0', NGINX);
});

test.after(async () => {
  await lab?.destroy();
});

test('the stage: the client reaches pods on both nodes through their node, and the nodes reach each other', async () => {
  assert.equal(podsOn('node-a'), ['pod-a0', 'pod-a1']);
  assert.equal(podsOn('node-b'), ['pod-b0', 'pod-b1']);
  for (const p of lab.pods) {
    for (const addr of [p.ipv4, p.ipv6!]) {
      const r = await probe('tcp', addr, TCP, 1);
      assert.equal(r.byBackend, { [p.name]: 1 }, `${addr}: ${JSON.stringify(r)}`);
      // Routed, not NATed: the pod sees the client itself.
      assert.equal(r.sources[p.name], { [addr.includes(':') ? CLIENT_IPV6 : CLIENT_IPV4]: 1 });
    }
  }
  const b0 = lab.pod('pod-b0');
  for (const addr of [b0.ipv4, b0.ipv6!]) {
    const r = await probe('tcp', addr, NGINX, 2);
    assert.equal(r.byBackend, { 'pod-b0': 2 }, `nginx at ${addr}: ${JSON.stringify(r)}`);
    assert.equal(r.sources['pod-b0'], { [addr.includes(':') ? CLIENT_IPV6 : CLIENT_IPV4]: 2 });
  }
  const fromA = await lab.runProbe(['udp', '--target', hostPort(b0.ipv4, UDP), '--count', '2'], { ns: lab.node('node-a').ns });
  assert.equal(fromA.byBackend, { 'pod-b0': 2 });
  assert.equal(fromA.sources['pod-b0'], { [lab.node('node-a').ipv4]: 2 }, 'node-a reaches node-b pods via node-b');
  const agent = lab.agentArgv('node-b');
  assert.ok(agent.includes(lab.node('node-b').cgroupPath) && agent.includes(lab.node('node-b').bpffs));
  const { stdout } = await lab.exec(lab.node('node-a').ns, ['ethtool', '-k', 'eth0']);
  assert.match(stdout, /tx-checksumming: off/);
});

test('an agent per node: socklb on node-a (nsenter, its own cgroup and bpffs) balances node-a only', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-cluster-'));
  try {
    const file = path.join(dir, 'services.yaml');
    const a0 = lab.pod('pod-a0');
    const b0 = lab.pod('pod-b0');
    fs.writeFileSync(
      file,
      manifest([
        service({ name: 'web', clusterIPs: ['10.96.1.10'], ports: [{ port: 80, targetPort: TCP }] }),
        slice({
          service: 'web',
          ports: [{ port: TCP }],
          endpoints: [
            { address: a0.ipv4, nodeName: 'node-a' },
            { address: b0.ipv4, nodeName: 'node-b' },
          ],
        }),
      ]),
    );
    const agent = lab.startAgent('node-a', ['--manifests', file]);
    let r: ProbeResult | undefined;
    // Bounded: the agent loads and syncs within seconds; 60 tries of 0.5 s at most.
    for (let i = 0; i < 60 && !(r && r.ok === 10); i++) {
      if (i > 0) await new Promise((res) => setTimeout(res, 500));
      r = await lab.runProbe(['tcp', '--target', '10.96.1.10:80', '--count', '10', '--timeout-ms', '500'], { ns: lab.node('node-a').ns });
    }
    assert.is(r?.ok, 10, `agent output: ${agent.output().slice(-2000)}`);
    assert.ok(
      names(r!).every((n) => n === 'pod-a0' || n === 'pod-b0'),
      JSON.stringify(r!.byBackend),
    );
    assert.ok(fs.existsSync(lab.node('node-a').bpffs), "the agent pins under its node's bpffs directory");
    assert.not.ok(fs.existsSync(lab.node('node-b').bpffs));
    // node-b's cgroup has no agent: the ClusterIP means nothing there.
    const b = await lab.runProbe(['tcp', '--target', '10.96.1.10:80', '--count', '1', '--timeout-ms', '300'], {
      ns: lab.node('node-b').ns,
    });
    assert.is(b.ok, 0);
    const code = await agent.stop();
    assert.ok(code === 0 || code === 'SIGTERM', `agent exit: ${code}: ${agent.output().slice(-1000)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const mode of ['iptables', 'nftables'] as const) {
  test(`${mode}: rules install in both nodes`, async () => {
    await install(mode);
    const { stdout } = await lab.exec(lab.node('node-a').ns, ['nft', 'list', 'ruleset']);
    assert.match(stdout, mode === 'iptables' ? /KUBE-NODEPORTS/ : /table ip6 kube-proxy/);
  });

  for (const v6 of [false, true]) {
    const fam = v6 ? 'IPv6' : 'IPv4';
    const nodeA = () => (v6 ? lab.node('node-a').ipv6! : lab.node('node-a').ipv4);
    const client = v6 ? CLIENT_IPV6 : CLIENT_IPV4;

    for (const proto of ['tcp', 'udp'] as const) {
      test(`${mode} ${fam} ${proto}: a NodePort on node-a reaches pods on both nodes; remote pods see node-a (MASQUERADE)`, async () => {
        const port = proto === 'tcp' ? NP.tcp : NP.udp;
        const r = await probe(proto, nodeA(), port);
        assert.is(r.failed, 0, JSON.stringify(r.errors));
        assert.equal(names(r), [...podsOn('node-a'), ...podsOn('node-b')]);
        // Replies come from the address and port the client dialled.
        assert.equal(Object.keys(r.peers), [hostPort(nodeA(), port)]);
        // Masqueraded to the outgoing device's address: node-a's own on the switch for a remote
        // pod, its pod gateway for a local one (IPv6: the lxc device has only fe80::1, so node-a's).
        const gateway = v6 ? nodeA() : lab.node('node-a').gateway4;
        assertSources(r, (b) => (b.startsWith('pod-b') ? nodeA() : gateway));
      });

      test(`${mode} ${fam} ${proto}: externalTrafficPolicy Local answers from node-a's pods only, which see the client`, async () => {
        const port = proto === 'tcp' ? NP.localTcp : NP.localUdp;
        const r = await probe(proto, nodeA(), port, 20);
        assert.is(r.failed, 0, JSON.stringify(r.errors));
        assert.equal(names(r), podsOn('node-a'));
        assert.equal(Object.keys(r.peers), [hostPort(nodeA(), port)]);
        assertSources(r, () => client);
      });
    }

    test(`${mode} ${fam}: LoadBalancer IP within its source ranges and an externalIP answer; outside the ranges is dropped`, async () => {
      const lb = v6 ? 'fd00:78::10' : '192.168.78.10';
      const ext = v6 ? 'fd00:78::20' : '192.168.78.20';
      const denied = v6 ? 'fd00:78::11' : '192.168.78.11';
      for (const addr of [lb, ext]) {
        const r = await probe('tcp', addr, 80, 10);
        assert.is(r.failed, 0, `${addr}: ${JSON.stringify(r.errors)}`);
        assert.equal(Object.keys(r.peers), [hostPort(addr, 80)]);
      }
      const no = await lab.runProbe(['tcp', '--target', hostPort(denied, 80), '--count', '2', '--timeout-ms', '300']);
      assert.is(no.ok, 0, JSON.stringify(no.byBackend));
      assert.equal(no.errors, { ETIMEDOUT: 2 });
      // Its NodePort is not a LoadBalancer IP: the source ranges do not apply there.
      const np = await probe('tcp', nodeA(), NP.denied, 2);
      assert.is(np.ok, 2);
    });

    test(`${mode} ${fam}: Local on a node without local endpoints drops; Cluster on node-b balances too`, async () => {
      // Take node-b's pods out of the Local services on node-b only: kube-proxy there sees none.
      const all = [...services(false), ...services(true)].map((s) =>
        s.externalTrafficPolicy === 'Local' ? { ...s, endpoints: s.endpoints.filter((e) => e.nodeName === 'node-a') } : s,
      );
      await lab.installKubeProxyRules('node-b', all, mode);
      const nodeB = v6 ? lab.node('node-b').ipv6! : lab.node('node-b').ipv4;
      const no = await lab.runProbe(['tcp', '--target', hostPort(nodeB, NP.localTcp), '--count', '2', '--timeout-ms', '300']);
      assert.is(no.ok, 0, JSON.stringify(no.byBackend));
      const yes = await probe('tcp', nodeB, NP.tcp, 40);
      assert.equal(names(yes), [...podsOn('node-a'), ...podsOn('node-b')]);
      assertSources(yes, (b) => (b.startsWith('pod-a') || v6 ? nodeB : lab.node('node-b').gateway4));
      await install(mode);
    });
  }

  test(`${mode}: request rate and throughput through node-a's NodePort (bounded; the figures are logged)`, async () => {
    const a = lab.node('node-a').ipv4;
    const http = await lab.measureHttp(a, NP.nginx, { seconds: 2 });
    const tput = await lab.measureThroughput(a, NP.iperf, { seconds: 2 });
    console.log(
      `  ${mode} NodePort: ${http.requestsPerSec.toFixed(0)} req/s, ${(http.bytesPerSec / 1e6).toFixed(2)} MB/s of responses, ` +
        `${http.errors} errors (${http.command}); ${(tput.bitsPerSec / 1e9).toFixed(2)} Gbit/s (${tput.command})`,
    );
    assert.ok(http.requestsPerSec > 0 && http.requests > 0, JSON.stringify(http));
    assert.ok(http.errors <= http.requests / 100, `${http.errors} errors in ${http.requests} requests`);
    assert.ok(tput.bitsPerSec > 0);
  });

  test(`${mode}: removing the rules closes the NodePort again`, async () => {
    for (const n of ['node-a', 'node-b'] as NodeName[]) await lab.removeKubeProxyRules(n);
    const r = await lab.runProbe(['tcp', '--target', hostPort(lab.node('node-a').ipv4, NP.tcp), '--count', '1', '--timeout-ms', '500']);
    assert.is(r.ok, 0);
    assert.equal(Object.keys(r.errors), ['ECONNREFUSED']);
  });
}

test('parseWrk reads the rate, the bytes, the errors and the latency', () => {
  const out = `Running 2s test @ http://192.168.77.11:30080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.50ms    1.00ms  20.00ms   90.00%
    Req/Sec     6.40k   300.00     7.00k    80.00%
  12800 requests in 2.00s, 1.50MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
Requests/sec:   6400.00
Transfer/sec:    768.00KB
`;
  assert.equal(parseWrk(out), { requestsPerSec: 6400, bytesPerSec: 768 * 1024, requests: 12800, errors: 4, latencyAvgMs: 2.5 });
  assert.throws(() => parseWrk('unable to connect'), /Requests\/sec/);
});

test('a killed owner leaves the lab behind, and the next lab sweeps it (namespaces, cgroups, bpffs)', async () => {
  const module = fileURLToPath(new URL('../../src/lab/cluster-lab.ts', import.meta.url));
  const script = `const { ClusterLab } = await import(${JSON.stringify(module)});
    const fs = await import('node:fs');
    const lab = await ClusterLab.create({ prefix: ClusterLab.uniquePrefix('clusk'), pods: { 'node-a': 1, 'node-b': 0 }, ipv6: false });
    if (fs.existsSync('/sys/fs/bpf')) fs.mkdirSync(lab.node('node-a').bpffs, { recursive: true });
    console.log(lab.prefix);
    setTimeout(() => {}, 60000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise((r) => child.once('exit', r));
  for (let i = 0; i < 300 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
  const prefix = out.trim();
  assert.match(prefix, /^slb-clusk-[0-9a-f]{4}$/, 'the child made its lab');
  child.kill('SIGKILL');
  await exited;
  const left = listNetns().filter((n) => n.startsWith(prefix));
  const swept = ClusterLab.sweep(prefix);
  // Any lab created meanwhile (another suite on this machine) sweeps dead owners too: then only
  // the end state can be checked.
  if (left.length > 0) {
    assert.equal(left.sort(), [`${prefix}-client`, `${prefix}-node-a`, `${prefix}-node-b`, `${prefix}-pod-a0`, `${prefix}-sw`]);
    assert.equal(swept.namespaces.sort(), left);
    assert.equal(swept.cgroups.sort(), [
      `${prefix}-client`,
      `${prefix}-node-a`,
      `${prefix}-node-a-srv`,
      `${prefix}-node-b`,
      `${prefix}-node-b-srv`,
    ]);
    if (fs.existsSync('/sys/fs/bpf')) assert.equal(swept.bpffs, [`${prefix}-node-a`]);
  }
  assert.not.ok(fs.existsSync(path.join('/sys/fs/bpf', `${prefix}-node-a`)));
  assert.equal(
    fs.readdirSync(cgroup2Mount()).filter((n) => n.startsWith(prefix)),
    [],
  );
  assert.equal(
    listNetns().filter((n) => n.startsWith(prefix)),
    [],
  );
});

test('destroy removes every namespace, cgroup and bpffs directory of the run', async () => {
  const prefix = lab.prefix;
  // An agent's bpffs directory, as a socklb agent would leave it.
  const bpffs = lab.node('node-a').bpffs;
  if (fs.existsSync('/sys/fs/bpf')) fs.mkdirSync(bpffs, { recursive: true });
  await lab.destroy();
  assert.equal(
    listNetns().filter((n) => n.startsWith(prefix)),
    [],
  );
  assert.equal(
    fs.readdirSync(cgroup2Mount()).filter((n) => n.startsWith(prefix)),
    [],
  );
  assert.not.ok(fs.existsSync(bpffs));
  assert.not.ok(fs.existsSync(`/run/socklb-lab/${prefix}.json`));
});

test.run();
