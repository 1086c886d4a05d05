// What a node throws at the agent: a change that removes thousands of UDP backends at once, a first
// start (hooks must not go live over empty maps), and lookups that miss while a service is being
// rewritten (the connect must still reach a backend).

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from '../../src/agent/agent.ts';
import { cleanup, Datapath, SOCK_PROGRAMS } from '../../src/agent/datapath.ts';
import { cgroupPrograms } from '../../src/bpf/binding.ts';
import { MapNames, SOCK_REASONS } from '../../src/datapath/abi.ts';
import { KernelMaps } from '../../src/datapath/kernel-maps.ts';
import { NetnsLab } from '../../src/lab/netns-lab.ts';
import { service, slice } from '../support/objects.ts';
import { SMALL_CAPACITY, SockLab } from '../support/sock-lab.ts';
import { waitUntil } from '../support/time-scale.ts';

function attachedPrograms(cgroup: string): number {
  return Object.values(SOCK_PROGRAMS).reduce((n, type) => n + cgroupPrograms(cgroup, type).length, 0);
}

function sockReasons(maps: Record<string, { lookup(key: Buffer): Buffer | undefined }>): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  SOCK_REASONS.forEach((reason, i) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(i);
    const value = maps[MapNames.sockStats]!.lookup(key)!;
    let sum = 0n;
    for (let at = 0; at < value.length; at += 8) sum += value.readBigUInt64LE(at);
    out[reason] = sum;
  });
  return out;
}

// ---- a change that removes 2,000 UDP backends at once ------------------------------------------

const BACKENDS_PER_SERVICE = 1000;
const UDP_VIPS = ['10.96.5.1', '10.96.5.2'];

/** The i-th backend of service s: 10.250.s.x addresses, never dialled (only connected UDP sockets). */
function backendAddress(s: number, i: number): string {
  return `10.250.${s * 4 + (i >> 8)}.${i & 255}`;
}

function udpServices(withEndpoints: boolean): object[] {
  return UDP_VIPS.flatMap((vip, s) => [
    service({ name: `dns${s}`, clusterIPs: [vip], ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }),
    slice({
      service: `dns${s}`,
      ports: [{ name: 'dns', port: 53, protocol: 'UDP' }],
      endpoints: withEndpoints ? Array.from({ length: BACKENDS_PER_SERVICE }, (_, i) => ({ address: backendAddress(s, i) })) : [],
    }),
  ]);
}

/**
 * One connected UDP socket per backend address, in the lab's node namespace. connect() sends
 * nothing; a socket the agent destroys reports its error (ECONNABORTED) without being used.
 */
const HOLDER_SCRIPT = `
const dgram = require('node:dgram');
const addresses = JSON.parse(process.env.ADDRESSES);
const out = (...w) => process.stdout.write(w.join(' ') + '\\n');
let connected = 0;
addresses.forEach((address, i) => {
  const s = dgram.createSocket('udp4');
  s.on('error', (e) => out('error', i, e.code));
  s.connect(53, address, () => { if (++connected === addresses.length) out('ready'); });
});
`;

const bigChange = suite<{ sl: SockLab; holder?: ChildProcess }>('a big change');

bigChange.before(async (ctx) => {
  ctx.sl = await SockLab.create('big', 1);
});

bigChange.after(async (ctx) => {
  ctx.holder?.kill('SIGKILL');
  await ctx.sl?.close();
});

bigChange('emptying two UDP services of 1,000 backends each destroys every connected socket; no error escapes', async (ctx) => {
  const { sl } = ctx;
  const capacity = { ...SMALL_CAPACITY, slots: 4096, backends: 4096, backendIds: 4097 };
  await sl.startAgent(udpServices(true), capacity);
  assert.is(sl.agent.reconciler.state.backends.size, 2 * BACKENDS_PER_SERVICE);

  // A route makes connect() to the never-dialled backend range succeed inside the namespace.
  await sl.lab.exec(sl.lab.nodeNs, ['ip', 'route', 'add', '10.250.0.0/16', 'dev', 'lo']);
  const addresses = UDP_VIPS.flatMap((_, s) => Array.from({ length: BACKENDS_PER_SERVICE }, (_, i) => backendAddress(s, i)));
  const holder = spawn('ip', ['netns', 'exec', sl.lab.nodeNs, process.execPath, '-e', HOLDER_SCRIPT], {
    env: { ...process.env, ADDRESSES: JSON.stringify(addresses) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  ctx.holder = holder;
  const errors = new Map<number, string>();
  let ready = false;
  createInterface({ input: holder.stdout! }).on('line', (line) => {
    const [what, index, code] = line.split(' ');
    if (what === 'ready') ready = true;
    if (what === 'error') errors.set(Number(index), code!);
  });
  await waitUntil('the sockets to connect', () => ready, 20_000);
  assert.is(errors.size, 0);

  await sl.apply(udpServices(false), 30_000);
  await waitUntil('every socket to get its error', () => errors.size === addresses.length, 30_000);
  assert.equal(new Set(errors.values()), new Set(['ECONNABORTED']));
  const status = sl.agent.status();
  assert.equal(status.syncErrors, []);
  assert.is(status.pendingDestroy, 0);
  assert.is(sl.agent.reconciler.state.backends.size, 0);
  holder.kill('SIGKILL');
  await once(holder, 'exit');
});

bigChange.run();

// ---- a first start -----------------------------------------------------------------------------

const VIP = '10.96.0.10';

function webObjects(addresses: string[]): object[] {
  return [
    service({ name: 'web', clusterIPs: [VIP], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: addresses.map((address) => ({ address })) }),
  ];
}

const firstStart = suite<{ lab: NetnsLab; bpffs: string; agent?: Agent }>('a first start');

firstStart.before(async (ctx) => {
  ctx.lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('first'), backends: 1 });
  ctx.bpffs = `/sys/fs/bpf/${ctx.lab.prefix}`;
  await ctx.lab.startServer(0, { tcp: [8080] });
});

firstStart.after(async (ctx) => {
  await ctx.agent?.close();
  cleanup(ctx.bpffs);
  await ctx.lab?.destroy();
});

firstStart('the hooks attach only once the first full sync is in the maps', async (ctx) => {
  const { pino } = await import('pino');
  const agent = await Agent.create({
    bpffs: ctx.bpffs,
    cgroup: ctx.lab.cgroupPath,
    capacity: SMALL_CAPACITY,
    reverseEntries: 64,
    node: { name: 'node-a' },
    log: pino({ level: 'silent' }),
    minSyncPeriodMs: 0,
  });
  ctx.agent = agent;
  // Loaded, but nothing attached: a connect now would meet an empty service map.
  assert.is(attachedPrograms(ctx.lab.cgroupPath), 0);
  assert.is(agent.status().committed, false);

  const { services, slices } = (() => {
    const [svc, sl] = webObjects([ctx.lab.pod(0).ipv4]);
    return { services: [svc as never], slices: [sl as never] };
  })();
  agent.update({ services, slices });
  await agent.whenSynced();
  assert.is(attachedPrograms(ctx.lab.cgroupPath), Object.keys(SOCK_PROGRAMS).length);
  assert.is(agent.status().committed, true);
  const probe = await ctx.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '5']);
  assert.is(probe.ok, 5, JSON.stringify(probe.errors));
});

firstStart.run();

// ---- lookups that miss mid-update --------------------------------------------------------------

const miss = suite<{ lab: NetnsLab; bpffs: string; datapath?: Datapath }>('a lookup that misses');

miss.before(async (ctx) => {
  ctx.lab = await NetnsLab.create({ prefix: NetnsLab.uniquePrefix('miss'), backends: 1 });
  ctx.bpffs = `/sys/fs/bpf/${ctx.lab.prefix}`;
  await ctx.lab.startServer(0, { tcp: [8080] });
});

miss.after(async (ctx) => {
  ctx.datapath?.close();
  cleanup(ctx.bpffs);
  await ctx.lab?.destroy();
});

miss('a missing slot or backend is picked again from slot 1: every connect reaches a backend', async (ctx) => {
  const datapath = await Datapath.open({ bpffs: ctx.bpffs, cgroup: ctx.lab.cgroupPath, capacity: SMALL_CAPACITY, reverseEntries: 64 });
  ctx.datapath = datapath;
  const maps = new KernelMaps(datapath.maps, SMALL_CAPACITY, datapath.frontendFilter);
  const pod = ctx.lab.pod(0);
  // What an interrupted or racing update can leave: slot 1 holds the pod, slot 2 is absent and
  // slot 3 names a backend id that is not there, while the entry covers all three.
  maps.putBackend(1, { family: 4, address: pod.ipv4, port: 8080, protocol: 'TCP' });
  maps.putSlot({ serviceId: 1, slot: 1, backendId: 1 });
  maps.putSlot({ serviceId: 1, slot: 3, backendId: 99 });
  maps.putService({ family: 4, address: VIP, port: 80, protocol: 'TCP' }, { serviceId: 1, backendCount: 3, flags: 0, affinityTimeout: 0 });
  datapath.commit();

  const probe = await ctx.lab.runProbe(['tcp', '--target', `${VIP}:80`, '--count', '60']);
  assert.is(probe.failed, 0, JSON.stringify(probe.errors));
  assert.equal(Object.keys(probe.byBackend), [pod.name]);
  const reasons = sockReasons(datapath.maps);
  assert.ok(reasons.pick_retried! > 0n, `pick_retried ${reasons.pick_retried}`);
  assert.is(reasons.slot_missing, 0n);
  assert.is(reasons.backend_missing, 0n);
  assert.is(reasons.balanced, 60n);
});

miss("counters are known zero only in maps this start made: not over an earlier agent's pins", async (ctx) => {
  const bpffs = `${ctx.bpffs}-counters`;
  try {
    const first = await Datapath.open({ bpffs, cgroup: ctx.lab.cgroupPath, capacity: SMALL_CAPACITY, reverseEntries: 64 });
    first.commit();
    first.close();
    assert.equal(first.countersStartZero, { services: true, backends: true });
    const second = await Datapath.open({ bpffs, cgroup: ctx.lab.cgroupPath, capacity: SMALL_CAPACITY, reverseEntries: 64 });
    second.close();
    assert.equal(second.countersStartZero, { services: false, backends: false });
  } finally {
    cleanup(bpffs);
  }
});

miss.run();
