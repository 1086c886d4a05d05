// Network namespaces joined by veth pairs, with the XDP object loaded and attached natively, and
// real clients and servers: the fixture of the XDP tests that pass traffic. Every namespace,
// server, link and object it makes is removed by close(), and by an exit hook if a test dies first.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_XDP_FLOW_ENTRIES, XDP_OBJECT } from '../../src/agent/datapath.ts';
import { type BpfLink, BpfObject, type TcAttachment } from '../../src/bpf/binding.ts';
import { XDP_REASONS } from '../../src/datapath/abi.ts';
import { XdpMaps } from './xdp-fixture.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Small maps, the agent's sizes not being what these tests are about; but the IPv4 flow tables
 * are the agent's (DEFAULT_XDP_FLOW_ENTRIES), larger than a NAT range, so that a port comes back
 * only when its flow is over, not because the LRU forgot it.
 */
const SIZES: Record<string, number> = {
  lb4_services_v2: 64,
  lb6_services_v2: 64,
  lb_slots_v1: 64,
  lb4_backends_v2: 64,
  lb6_backends_v2: 64,
  lb_affinity_v1: 64,
  lb_svc_stats_v2: 64,
  lb_be_stats_v2: 64,
  lb4_ct_v1: DEFAULT_XDP_FLOW_ENTRIES,
  lb6_ct_v1: 1024,
  lb4_rnat_v1: DEFAULT_XDP_FLOW_ENTRIES,
  lb6_rnat_v1: 1024,
  lb4_src_ranges_v1: 16,
  lb6_src_ranges_v1: 16,
  xdp_stats_v1: XDP_REASONS.length,
};

/** What attachTc picks on the running kernel: tcx from Linux 6.6, clsact before. */
export function tcKindHere(): 'tcx' | 'clsact' {
  const [major, minor] = release().split('.').map(Number) as [number, number];
  return major > 6 || (major === 6 && minor >= 6) ? 'tcx' : 'clsact';
}

const open = new Set<XdpLab>();
process.on('exit', () => {
  for (const lab of open) lab.close();
});

export class XdpLab {
  readonly #namespaces: string[] = [];
  readonly #servers: ChildProcess[] = [];
  readonly #links: BpfLink[] = [];
  readonly #tc: TcAttachment[] = [];
  readonly #objects: { obj: BpfObject; maps: XdpMaps }[] = [];
  readonly prefix = `sxl-${randomBytes(2).toString('hex')}`;

  constructor() {
    open.add(this);
  }

  /** Creates a namespace named `<prefix>-<name>` with lo up; returns its name. */
  netns(name: string): string {
    const ns = `${this.prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', ns]);
    this.#namespaces.push(ns);
    this.ip(ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  ip(ns: string, ...args: string[]): void {
    execFileSync('ip', ['-n', ns, ...args]);
  }

  exec(ns: string, cmd: string, args: string[], timeout = 10_000): string {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout });
  }

  /**
   * A veth pair: devA in nsA with cidrA (if any), devB in nsB with cidrB, both up, and transmit
   * checksum offload off on both (locally made TCP/UDP would otherwise leave with a partial
   * checksum, which a rewrite in XDP does not complete).
   */
  veth(nsA: string, devA: string, cidrA: string | undefined, nsB: string, devB: string, cidrB: string | undefined): void {
    this.ip(nsA, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB);
    for (const [ns, dev, cidr] of [
      [nsA, devA, cidrA],
      [nsB, devB, cidrB],
    ] as const) {
      if (cidr) this.ip(ns, 'addr', 'add', cidr, 'dev', dev);
      this.ip(ns, 'link', 'set', dev, 'up');
      this.exec(ns, 'ethtool', ['-K', dev, 'tx', 'off']);
    }
  }

  ifindex(ns: string, dev: string): number {
    return (JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', dev], { encoding: 'utf8' })) as { ifindex: number }[])[0]!
      .ifindex;
  }

  /** Loads bpf/out/xdp.bpf.o with small maps: one per node, each with its own maps. */
  loadXdp(): XdpMaps {
    const obj = BpfObject.open(XDP_OBJECT);
    try {
      for (const [name, n] of Object.entries(SIZES)) obj.setMaxEntries(name, n);
      obj.load();
    } catch (err) {
      obj.close();
      throw err;
    }
    const maps = new XdpMaps(obj);
    this.#objects.push({ obj, maps });
    return maps;
  }

  attachXdp(maps: XdpMaps, program: 'xdp_lb' | 'xdp_pass', ns: string, dev: string): void {
    this.#links.push(maps.obj.attachXdp(program, this.ifindex(ns, dev), 'native', `/run/netns/${ns}`));
  }

  attachTcEgress(maps: XdpMaps, ns: string, dev: string): TcAttachment {
    const tc = maps.obj.attachTc('tc_lb_egress', this.ifindex(ns, dev), 'egress', `/run/netns/${ns}`);
    this.#tc.push(tc);
    return tc;
  }

  /** The lab's backend server in ns: HTTP on 8080 and UDP on 5353, answering with `name`. */
  async server(ns: string, name: string): Promise<void> {
    const script = resolve(ROOT, 'src/lab/backend-server.ts');
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, '--name', name, '--tcp', '8080', '--udp', '5353'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.#servers.push(child);
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

  /**
   * One HTTP GET from ns (a Node client, which every lab guest has, unlike curl): the backend's
   * name, the source address the backend saw, or the error code (ECONNREFUSED, ...).
   */
  http(ns: string, host: string, port: number): { body: string; client: string; error: string } {
    const script = `const r=require('http').get({host:'${host}',port:${port},path:'/',timeout:4000},(res)=>{let b='';res.on('data',(d)=>b+=d);res.on('end',()=>{console.log(JSON.stringify({body:b,client:res.headers['x-client']??'',error:''}));process.exit(0)})});r.on('timeout',()=>r.destroy(Object.assign(new Error('timeout'),{code:'ETIMEDOUT'})));r.on('error',(e)=>{console.log(JSON.stringify({body:'',client:'',error:e.code??e.message}));process.exit(0)})`;
    return JSON.parse(this.exec(ns, process.execPath, ['-e', script])) as { body: string; client: string; error: string };
  }

  /** One UDP datagram from ns; returns "<reply source> <reply>". */
  udp(ns: string, host: string, port: number, message: string): string {
    const script = `const s=require('dgram').createSocket('${host.includes(':') ? 'udp6' : 'udp4'}');s.on('message',(m,r)=>{console.log(r.address+':'+r.port+' '+m);process.exit(0)});s.send(${JSON.stringify(message)},${port},'${host}');setTimeout(()=>process.exit(3),4000)`;
    return this.exec(ns, process.execPath, ['-e', script]).trim();
  }

  close(): void {
    for (const s of this.#servers.splice(0)) s.kill('SIGKILL');
    for (const t of this.#tc.splice(0)) t.close();
    for (const l of this.#links.splice(0)) l.close();
    for (const { obj, maps } of this.#objects.splice(0)) {
      maps.closeMaps();
      obj.close();
    }
    for (const ns of this.#namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    open.delete(this);
  }
}
