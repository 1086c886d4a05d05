// The XDP program attached natively to veth devices, with real traffic: a client namespace dials
// a NodePort on a "node" namespace, which balances to a backend on another node (SNAT, redirect)
// or on itself (DNAT, reply reversed by the tc egress program). Unmodified curl and a UDP socket
// are the clients; the lab's backend server reports the source address it saw.
//
//   client  c0 198.51.100.10 ── ext0 198.51.100.1   node    int0 10.1.0.1 ── b0 10.1.0.2  nodeb
//                                pod0 10.244.0.1 ── eth0 10.244.0.7  pod                lo 10.244.1.5
//
// xdp_lb runs on ext0 and int0; xdp_pass on c0 and b0, the veth peers it redirects into;
// tc_lb_egress on ext0's egress. Everything is removed after the tests, also when one fails.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { XDP_OBJECT } from '../../src/agent/datapath.ts';
import { type BpfLink, BpfObject, type TcAttachment } from '../../src/bpf/binding.ts';
import { BackendFlags } from '../../src/datapath/abi.ts';
import { PROTO } from '../support/packets.ts';
import { XdpMaps } from '../support/xdp-fixture.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const P = `sxv-${randomBytes(2).toString('hex')}`;
const NS = { client: `${P}-client`, node: `${P}-node`, nodeb: `${P}-nodeb`, pod: `${P}-pod` };
const NODE = '198.51.100.1';

let obj: BpfObject | undefined;
let maps: XdpMaps | undefined;
const links: BpfLink[] = [];
let tc: TcAttachment | undefined;
const servers: ChildProcess[] = [];

function cleanup(): void {
  for (const s of servers.splice(0)) s.kill('SIGKILL');
  tc?.close();
  tc = undefined;
  for (const l of links.splice(0)) l.close();
  maps?.closeMaps();
  obj?.close();
  obj = undefined;
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}
process.on('exit', cleanup);

function ip(ns: string, ...args: string[]): void {
  execFileSync('ip', ['-n', ns, ...args]);
}

function inNs(ns: string, cmd: string, args: string[], timeout = 10_000): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout });
}

function ifindex(ns: string, dev: string): number {
  return (JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', dev], { encoding: 'utf8' })) as { ifindex: number }[])[0]!.ifindex;
}

async function startServer(ns: string, name: string): Promise<void> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, resolve(ROOT, 'src/lab/backend-server.ts'), '--name', name, '--tcp', '8080', '--udp', '5353'],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  servers.push(child);
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.once('exit', (code) => fail(new Error(`${name} exited ${code}`)));
  });
}

test.before(async () => {
  for (const ns of Object.values(NS)) execFileSync('ip', ['netns', 'add', ns]);
  ip(NS.node, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'c0', 'netns', NS.client);
  ip(NS.node, 'link', 'add', 'int0', 'type', 'veth', 'peer', 'name', 'b0', 'netns', NS.nodeb);
  ip(NS.node, 'link', 'add', 'pod0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.pod);
  const addrs: [string, string, string][] = [
    [NS.node, 'ext0', '198.51.100.1/24'],
    [NS.node, 'int0', '10.1.0.1/24'],
    [NS.node, 'pod0', '10.244.0.1/24'],
    [NS.client, 'c0', '198.51.100.10/24'],
    [NS.nodeb, 'b0', '10.1.0.2/24'],
    [NS.nodeb, 'lo', '10.244.1.5/32'],
    [NS.pod, 'eth0', '10.244.0.7/24'],
  ];
  for (const [ns, dev, cidr] of addrs) ip(ns, 'addr', 'add', cidr, 'dev', dev);
  for (const [ns, dev] of [...addrs.map(([n, d]) => [n, d]), ...Object.values(NS).map((n) => [n, 'lo'])])
    ip(ns!, 'link', 'set', dev!, 'up');
  ip(NS.node, 'route', 'add', '10.244.1.0/24', 'via', '10.1.0.2');
  // Node B stands in for a backend pod too: its replies must leave from the pod's address.
  ip(NS.nodeb, 'route', 'replace', '10.1.0.0/24', 'dev', 'b0', 'src', '10.244.1.5');
  ip(NS.pod, 'route', 'add', 'default', 'via', '10.244.0.1');
  // A SNAT packet XDP leaves to the stack (neighbour not resolved yet) has a node address as its
  // source: accept_local lets the stack forward it.
  inNs(NS.node, 'sysctl', [
    '-qw',
    'net.ipv4.ip_forward=1',
    'net.ipv4.conf.all.accept_local=1',
    'net.ipv4.conf.ext0.accept_local=1',
    'net.ipv4.conf.int0.accept_local=1',
  ]);
  // Locally made TCP/UDP leaves a veth with a partial checksum, which a rewrite would not fix.
  for (const [ns, dev] of [
    [NS.client, 'c0'],
    [NS.nodeb, 'b0'],
    [NS.pod, 'eth0'],
  ] as const)
    inNs(ns, 'ethtool', ['-K', dev, 'tx', 'off']);

  obj = BpfObject.open(XDP_OBJECT);
  for (const m of [
    'lb4_services_v2',
    'lb6_services_v2',
    'lb_slots_v1',
    'lb4_backends_v2',
    'lb6_backends_v2',
    'lb_affinity_v1',
    'lb_svc_stats_v2',
    'lb_be_stats_v2',
  ])
    obj.setMaxEntries(m, 64);
  for (const m of ['lb4_ct_v1', 'lb6_ct_v1', 'lb4_rnat_v1', 'lb6_rnat_v1']) obj.setMaxEntries(m, 1024);
  for (const m of ['lb4_src_ranges_v1', 'lb6_src_ranges_v1']) obj.setMaxEntries(m, 16);
  obj.setMaxEntries('xdp_stats_v1', 32);
  obj.load();
  maps = new XdpMaps(obj);
  maps.config({ snat4: '10.1.0.1', portMin: 40000, portMax: 40999 });
  maps.backend({ id: 1, address: '10.244.1.5', port: 8080, proto: PROTO.TCP });
  maps.backend({ id: 2, address: '10.244.1.5', port: 5353, proto: PROTO.UDP });
  maps.backend({ id: 3, address: '10.244.0.7', port: 8080, proto: PROTO.TCP, flags: BackendFlags.local });
  maps.frontend({ serviceId: 1, address: NODE, port: 30080, proto: PROTO.TCP, backends: [1] });
  maps.frontend({ serviceId: 2, address: NODE, port: 30053, proto: PROTO.UDP, backends: [2] });
  maps.frontend({ serviceId: 3, address: NODE, port: 30081, proto: PROTO.TCP, backends: [3] });
  maps.frontend({ serviceId: 4, address: NODE, port: 30090, proto: PROTO.TCP, backends: [] });

  const nodeNetns = `/run/netns/${NS.node}`;
  links.push(obj.attachXdp('xdp_lb', ifindex(NS.node, 'ext0'), 'native', nodeNetns));
  links.push(obj.attachXdp('xdp_lb', ifindex(NS.node, 'int0'), 'native', nodeNetns));
  links.push(obj.attachXdp('xdp_pass', ifindex(NS.client, 'c0'), 'native', `/run/netns/${NS.client}`));
  links.push(obj.attachXdp('xdp_pass', ifindex(NS.nodeb, 'b0'), 'native', `/run/netns/${NS.nodeb}`));
  tc = obj.attachTc('tc_lb_egress', ifindex(NS.node, 'ext0'), 'egress', nodeNetns);
  await startServer(NS.nodeb, 'remote');
  await startServer(NS.pod, 'local');
});

test.after(cleanup);

/** curl from the client: status, the backend's name and the source address the backend saw. */
function curl(port: number): { code: number; body: string; client: string } {
  const r = spawnSync('ip', ['netns', 'exec', NS.client, 'curl', '-sS', '-D', '-', '--max-time', '5', `http://${NODE}:${port}/`], {
    encoding: 'utf8',
  });
  const client = /^x-client: (.*)\r$/m.exec(r.stdout)?.[1] ?? '';
  return { code: r.status ?? -1, body: r.stdout.split('\r\n\r\n')[1] ?? '', client };
}

test('the XDP program attaches natively through bpf_links, the tc program through tcx', () => {
  const out = execFileSync('ip', ['-n', NS.node, '-d', 'link', 'show', 'ext0'], { encoding: 'utf8' });
  assert.match(out, /xdp /, 'native ("xdp"), not generic ("xdpgeneric")');
  assert.is(tc?.kind, 'tcx');
});

test('TCP through a NodePort to a backend on another node: the backend sees the node (SNAT), curl sees the NodePort', () => {
  for (let i = 0; i < 3; i++) {
    const r = curl(30080);
    assert.is(r.code, 0, 'curl succeeded');
    assert.is(r.body, 'remote');
    assert.match(r.client, /^10\.1\.0\.1:40\d\d\d$/, `source ${r.client} is the node with a NAT port`);
  }
});

test('UDP through a NodePort: the reply comes from the NodePort the client sent to', () => {
  const script = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>{console.log(r.address+':'+r.port+' '+m);process.exit(0)});s.send('hi',30053,'${NODE}');setTimeout(()=>process.exit(3),4000)`;
  const out = inNs(NS.client, process.execPath, ['-e', script]).trim();
  assert.is(out, `${NODE}:30053 remote hi`);
});

test('TCP through a NodePort to a backend on this node: the backend sees the client, the reply is reversed at egress', () => {
  const r = curl(30081);
  assert.is(r.code, 0, 'curl succeeded');
  assert.is(r.body, 'local');
  assert.match(r.client, /^198\.51\.100\.10:\d+$/, `source ${r.client} is the client`);
});

test('a NodePort without endpoints refuses at once (RST from XDP)', () => {
  const started = Date.now();
  const r = curl(30090);
  assert.is(r.code, 7, 'curl: failed to connect');
  assert.ok(Date.now() - started < 2000, 'failed fast');
});

test('the traffic took the XDP paths: flows balanced and established, replies and local replies reversed, RST sent', () => {
  const count = maps!.stats();
  for (const reason of ['balanced', 'established', 'reply', 'tc_reversed', 'rejected'] as const) assert.ok(count[reason] > 0n, reason);
  assert.ok(count.reply > count.stack_forward, 'most packets were forwarded by XDP itself');
});

test.run();
