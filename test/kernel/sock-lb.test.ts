// The socket load balancer end to end: real BPF hooks on a lab cgroup, clients and pods in
// network namespaces, services from a manifest file.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { probeFeatures } from '../../src/agent/features.ts';
import type { ProbeResult } from '../../src/lab/netns-lab.ts';
import { type EndpointSpec, service, slice } from '../support/objects.ts';
import { chiSquareUniform, SockLab } from '../support/sock-lab.ts';
import { scaled } from '../support/time-scale.ts';

const VIP4 = '10.96.0.10';
const VIP6 = 'fd00:10:96::10';
const DNS4 = '10.96.0.53';
const DNS6 = 'fd00:10:96::53';
const NOEP = '10.96.0.30';
const NAMED = '10.96.0.80';
const STICKY = '10.96.0.90';
// Critical chi-square value for 2 degrees of freedom at p = 1e-4: a fair pick exceeds it once in
// 10,000 runs, a pick biased by even 40/30/30 over 3,300 connects exceeds it by far.
const CHI2_CRITICAL_2DOF = 18.42;
// What this kernel offers (src/agent/features.ts): the tests below assert the probed behaviour.
const FEATURES = probeFeatures();

const lb = suite<{ sl: SockLab }>('socket load balancing');

function ready(...addresses: string[]): EndpointSpec[] {
  return addresses.map((address) => ({ address }));
}

function objects(sl: SockLab): object[] {
  const pods = sl.lab.pods;
  const v4 = pods.map((p) => p.ipv4);
  const v6 = pods.map((p) => p.ipv6!);
  return [
    service({ name: 'web', clusterIPs: [VIP4, VIP6], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: ready(...v4) }),
    slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: ready(...v6) }),
    service({
      name: 'dns',
      clusterIPs: [DNS4, DNS6],
      ports: [
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 8080 },
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
      ],
    }),
    // TCP on pod0 only, UDP on pod1 only: each protocol must reach its own backends.
    slice({ service: 'dns', name: 'dns-tcp4', ports: [{ name: 'dns-tcp', port: 8080 }], endpoints: ready(v4[0]!) }),
    slice({ service: 'dns', name: 'dns-udp4', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: ready(v4[1]!) }),
    slice({ service: 'dns', name: 'dns-tcp6', ports: [{ name: 'dns-tcp', port: 8080 }], endpoints: ready(v6[0]!) }),
    slice({ service: 'dns', name: 'dns-udp6', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: ready(v6[1]!) }),
    service({ name: 'noep', clusterIPs: [NOEP], ports: [{ port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
    service({ name: 'named', clusterIPs: [NAMED], ports: [{ name: 'web', port: 80, targetPort: 'http-alt' }] }),
    // The EndpointSlice controller resolves a named targetPort per pod and names the slice port after the service port.
    slice({ service: 'named', ports: [{ name: 'web', port: 8081 }], endpoints: ready(v4[2]!) }),
    service({ name: 'sticky', clusterIPs: [STICKY], ports: [{ name: 'http', port: 80, targetPort: 8080 }], affinitySeconds: 1 }),
    slice({ service: 'sticky', ports: [{ name: 'http', port: 8080 }], endpoints: ready(...v4) }),
  ];
}

lb.before(async (ctx) => {
  ctx.sl = await SockLab.create('lb', 3);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080], udp: [5353] });
  await ctx.sl.lab.startServer(2, { tcp: [8081], name: 'alt2' });
  await ctx.sl.startAgent(objects(ctx.sl));
});

lb.after(async (ctx) => {
  await ctx.sl?.close();
});

function only(result: ProbeResult): string[] {
  return Object.keys(result.byBackend).sort();
}

lb('a TCP connect to the ClusterIP reaches a backend, and getpeername shows the ClusterIP', async ({ sl }) => {
  const r = await sl.lab.runProbe(['tcp', '--target', `${VIP4}:80`, '--count', '20']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.is(r.ok, 20);
  assert.ok(
    only(r).every((name) => ['pod0', 'pod1', 'pod2'].includes(name)),
    only(r).join(),
  );
  assert.equal(r.peers, { [`${VIP4}:80`]: 20 });
});

lb('3,300 connects spread evenly over 3 backends (chi-square below the p=1e-4 bound)', async ({ sl }) => {
  const r = await sl.lab.runProbe(['tcp', '--target', `${VIP4}:80`, '--count', '3300'], { timeoutMs: scaled(120_000) });
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  const counts = ['pod0', 'pod1', 'pod2'].map((p) => r.byBackend[p] ?? 0);
  const chi2 = chiSquareUniform(counts);
  assert.ok(chi2 < CHI2_CRITICAL_2DOF, `spread ${counts.join('/')} has chi-square ${chi2.toFixed(1)}`);
});

lb('UDP through an unconnected socket: the reply comes from the ClusterIP', async ({ sl }) => {
  const r = await sl.lab.runProbe(['udp', '--target', `${DNS4}:53`, '--count', '20']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.equal(r.byBackend, { pod1: 20 });
  assert.equal(r.peers, { [`${DNS4}:53`]: 20 });
});

lb('UDP through a connected socket: replies come from the ClusterIP', async ({ sl }) => {
  const r = await sl.lab.runProbe(['udp', '--target', `${DNS4}:53`, '--count', '20', '--connected']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.equal(r.byBackend, { pod1: 20 });
  assert.equal(r.peers, { [`${DNS4}:53`]: 20 });
});

lb('TCP and UDP services on one port reach their own backends', async ({ sl }) => {
  const tcp = await sl.lab.runProbe(['tcp', '--target', `${DNS4}:53`, '--count', '20']);
  const udp = await sl.lab.runProbe(['udp', '--target', `${DNS4}:53`, '--count', '20']);
  assert.equal(tcp.byBackend, { pod0: 20 });
  assert.equal(udp.byBackend, { pod1: 20 });
});

lb('IPv6: TCP spreads over the backends with the ClusterIP as peer; UDP and TCP on one port stay apart', async ({ sl }) => {
  const web = await sl.lab.runProbe(['tcp', '--target', `[${VIP6}]:80`, '--count', '60']);
  assert.is(web.failed, 0, JSON.stringify(web.errors));
  assert.equal(only(web), ['pod0', 'pod1', 'pod2']);
  assert.equal(web.peers, { [`[${VIP6}]:80`]: 60 });
  const tcp = await sl.lab.runProbe(['tcp', '--target', `[${DNS6}]:53`, '--count', '10']);
  const udp = await sl.lab.runProbe(['udp', '--target', `[${DNS6}]:53`, '--count', '10']);
  const connected = await sl.lab.runProbe(['udp', '--target', `[${DNS6}]:53`, '--count', '10', '--connected']);
  assert.equal(tcp.byBackend, { pod0: 10 });
  assert.equal(udp.byBackend, { pod1: 10 });
  assert.equal(udp.peers, { [`[${DNS6}]:53`]: 10 });
  assert.equal(connected.peers, { [`[${DNS6}]:53`]: 10 });
});

lb('a dual-stack socket dialling the IPv4-mapped ClusterIP is balanced too', async ({ sl }) => {
  const r = await sl.lab.runProbe(['tcp', '--target', `[::ffff:${VIP4}]:80`, '--count', '10']);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
  assert.is(r.ok, 10);
});

lb('a named targetPort reaches the port the EndpointSlice resolved it to', async ({ sl }) => {
  const r = await sl.lab.runProbe(['tcp', '--target', `${NAMED}:80`, '--count', '10']);
  assert.equal(r.byBackend, { alt2: 10 });
});

lb('a service without endpoints refuses at once: ECONNREFUSED (EPERM before Linux 5.18) for TCP connect and UDP send', async ({ sl }) => {
  // Without bpf_set_retval the hook can only reject, and the caller sees EPERM.
  const code = FEATURES.set_retval.available ? 'ECONNREFUSED' : 'EPERM';
  assert.is(sl.agent.status().refuseErrno, FEATURES.set_retval.available ? 111 : 0);
  const tcp = await sl.lab.runProbe(['tcp', '--target', `${NOEP}:80`, '--count', '5']);
  assert.equal(tcp.errors, { [code]: 5 });
  assert.ok(tcp.elapsedMs < scaled(1000), `refusal took ${tcp.elapsedMs} ms`);
  const udp = await sl.lab.runProbe(['udp', '--target', `${NOEP}:53`, '--count', '3']);
  assert.equal(Object.keys(udp.errors), [code]);
});

lb('the per-service and per-backend counters count the connects', async ({ sl }) => {
  const agent = sl.agent;
  const svc = agent.reconciler.state.services.get(`TCP/${NAMED}:80`)!;
  const maps = agent.reconciler.maps;
  const before = maps.serviceCounters(svc.serviceId).connects;
  await sl.lab.runProbe(['tcp', '--target', `${NAMED}:80`, '--count', '7']);
  assert.is(maps.serviceCounters(svc.serviceId).connects - before, 7n);
  const noep = agent.reconciler.state.services.get(`TCP/${NOEP}:80`)!;
  assert.ok(maps.serviceCounters(noep.serviceId).refused >= 5n);
});

lb('a bad document leaves the other services working; a bad edit keeps the last good version', async ({ sl }) => {
  const bad = `apiVersion: v1
kind: Service
metadata: {name: broken, namespace: default}
spec:
  clusterIP: 10.96.0.99
  ports: [{port: 70000}]
`;
  await sl.apply([...objects(sl), bad, 'apiVersion: v1\nkind: Service\nmetadata: {name: cut']);
  const problems = sl.agent.status().objectProblems.map((p) => `${p.code} ${p.kind} ${p.name} ${p.field}`);
  assert.ok(problems.includes('SOCKLB_ERR_PORT_RANGE Service broken spec.ports[0].port'), problems.join('\n'));
  assert.ok(
    problems.some((p) => p.startsWith('SOCKLB_ERR_MANIFEST_SYNTAX')),
    problems.join('\n'),
  );
  const r = await sl.lab.runProbe(['tcp', '--target', `${VIP4}:80`, '--count', '10']);
  assert.is(r.ok, 10);

  const edited = objects(sl).map((o) =>
    (o as { kind: string; metadata: { name: string } }).kind === 'Service' &&
    (o as { metadata: { name: string } }).metadata.name === 'named'
      ? { ...o, spec: { ...(o as { spec: object }).spec, clusterIP: '10.96.0.300', clusterIPs: ['10.96.0.300'] } }
      : o,
  );
  await sl.apply(edited);
  const named = sl.agent.status().objectProblems.find((p) => p.name === 'named');
  assert.is(named?.code, 'SOCKLB_ERR_INVALID_IP');
  assert.ok(named?.field.startsWith('spec.clusterIP'), named?.field);
  const still = await sl.lab.runProbe(['tcp', '--target', `${NAMED}:80`, '--count', '5']);
  assert.equal(still.byBackend, { alt2: 5 });
  await sl.apply(objects(sl));
});

lb('a connected UDP socket whose backend is removed fails its next call; a new one reaches a live backend', async ({ sl }) => {
  // Linux 6.5+ destroys through the bpf_sock_destroy kfunc, older kernels through sock_diag.
  assert.is(sl.agent.status().destroyMethod, FEATURES.sock_destroy.available ? 'bpf_sock_destroy' : 'sock_diag');
  const pods = sl.lab.pods;
  const only0 = (backend: string) =>
    objects(sl).map((o) =>
      (o as { metadata: { name: string } }).metadata.name === 'dns-udp4'
        ? slice({ service: 'dns', name: 'dns-udp4', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: ready(backend) })
        : o,
    );
  await sl.apply(only0(pods[0]!.ipv4));
  const probe = sl.lab.spawnProbe([
    'udp',
    '--target',
    `${DNS4}:53`,
    '--connected',
    '--stop-on-error',
    '--count',
    '2000',
    '--interval-ms',
    '10',
    '--duration-ms',
    '20000',
  ]);
  await sl.waitForBackendUse({ family: 4, address: pods[0]!.ipv4, port: 5353, protocol: 'UDP' });
  await sl.apply(only0(pods[2]!.ipv4));
  const stuck = await probe.result();
  assert.is(stuck.stopped, 'error', JSON.stringify(stuck));
  assert.ok((stuck.byBackend.pod0 ?? 0) > 0);
  assert.is(stuck.byBackend.pod2, undefined);
  const fresh = await sl.lab.runProbe(['udp', '--target', `${DNS4}:53`, '--count', '5', '--connected']);
  assert.equal(fresh.byBackend, { pod2: 5 });
  await sl.apply(objects(sl));
});

lb('session affinity holds a client to one backend, then expires after its timeout', async ({ sl }) => {
  const held = await sl.lab.runProbe(['tcp', '--target', `${STICKY}:80`, '--count', '30', '--interval-ms', '20']);
  assert.is(held.ok, 30);
  assert.is(Object.keys(held.byBackend).length, 1, JSON.stringify(held.byBackend));
  // After each pause longer than the 1 s timeout the client is balanced afresh: 8 picks all
  // landing on one of 3 backends would happen once in 2,000 runs.
  const seen = new Set<string>();
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 1200));
    const once = await sl.lab.runProbe(['tcp', '--target', `${STICKY}:80`, '--count', '1']);
    seen.add(Object.keys(once.byBackend)[0]!);
  }
  assert.ok(seen.size > 1, `every pick after expiry went to ${[...seen].join()}`);
});

lb('applying the same manifest again writes nothing', async ({ sl }) => {
  const result = sl.agent.reconciler.reconcile(sl.agent.table.frontends);
  assert.is(result.writes, 0);
});

lb.run();
