// lb_frontend_filter_v1 on the real hook: the bit the agent sets for a frontend is the one the
// connect hook reads (else the frontend would not be balanced), a bit two frontends share stays
// set until the last of them goes, and a restart or a resize rebuilds the filter from the pinned
// service maps.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { capacityOf } from '../../src/agent/datapath.ts';
import { MapNames } from '../../src/datapath/abi.ts';
import { filterBit, filterWords } from '../../src/datapath/frontend-filter.ts';
import type { Frontend } from '../../src/model/types.ts';
import { service, slice } from '../support/objects.ts';
import { SockLab } from '../support/sock-lab.ts';
import { scaled } from '../support/time-scale.ts';

// 8 frontends per family: an 8-word filter, small enough that two ClusterIPs share a bit.
const TINY = capacityOf({ services: 8, backends: 16, slots: 32 });
const WORDS = filterWords(TINY.services);

const filter = suite<{ sl: SockLab }>('frontend filter');

filter.before(async (ctx) => {
  ctx.sl = await SockLab.create('filter', 2);
  for (const pod of ctx.sl.lab.pods) await ctx.sl.lab.startServer(pod.index, { tcp: [8080] });
});

filter.after(async (ctx) => {
  await ctx.sl?.close();
});

const tcp80 = (address: string): Frontend => ({ family: 4, address, port: 80, protocol: 'TCP' });

/** Two ClusterIPs whose port-80 TCP frontends share a bit of the tiny filter. */
function sharingPair(): [string, string, { word: number; bit: number }] {
  const seen = new Map<number, string>();
  for (let i = 1; i < 4096; i++) {
    const vip = `10.96.${i >> 8}.${i & 255}`;
    const b = filterBit(tcp80(vip), WORDS);
    const other = seen.get(b.word * 64 + b.bit);
    if (other) return [other, vip, b];
    seen.set(b.word * 64 + b.bit, vip);
  }
  throw new Error('no two ClusterIPs share a bit');
}

function docs(sl: SockLab, vips: string[]): object[] {
  return vips.flatMap((vip, i) => [
    service({ name: `svc${i}`, clusterIPs: [vip], ports: [{ port: 80, targetPort: 8080 }] }),
    slice({ service: `svc${i}`, ports: [{ port: 8080 }], endpoints: [{ address: sl.lab.pods[i % 2]!.ipv4 }] }),
  ]);
}

function bitSet(sl: SockLab, at: { word: number; bit: number }): boolean {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(at.word);
  const value = sl.agent.datapath.maps[MapNames.frontendFilter].lookup(key)!;
  return ((value.readBigUInt64LE(0) >> BigInt(at.bit)) & 1n) === 1n;
}

function words(sl: SockLab): string {
  const map = sl.agent.datapath.maps[MapNames.frontendFilter];
  return [...map.entries()].map(([, v]) => v.toString('hex')).join(' ');
}

async function reaches(sl: SockLab, vip: string): Promise<boolean> {
  const r = await sl.lab.runProbe(['tcp', '--target', `${vip}:80`, '--count', '3', '--timeout-ms', String(scaled(2000))]);
  return r.ok === 3;
}

filter('a shared bit stays set until its last frontend goes; a restart and a resize rebuild the filter', async ({ sl }) => {
  const [a, b, shared] = sharingPair();
  const lone = '10.96.200.1';
  await sl.startAgent(docs(sl, [a, b, lone]), TINY);
  assert.is(sl.agent.datapath.frontendFilter.words, WORDS);
  for (const vip of [a, b, lone]) assert.ok(await reaches(sl, vip), `${vip} before any change`);
  assert.ok(bitSet(sl, shared));

  await sl.apply(docs(sl, [b, lone]));
  assert.ok(bitSet(sl, shared), 'the bit of a removed frontend that another shares stays set');
  assert.ok(await reaches(sl, b), `${b} after the frontend sharing its bit went`);

  await sl.apply(docs(sl, [lone]));
  assert.not.ok(bitSet(sl, shared), 'the bit is cleared with the last frontend on it');
  assert.ok(await reaches(sl, lone));

  const before = words(sl);
  await sl.stopAgent();
  await sl.startAgent(docs(sl, [a, lone]), TINY);
  assert.ok(bitSet(sl, shared));
  assert.ok(await reaches(sl, a), `${a} after a restart`);
  await sl.apply(docs(sl, [lone]));
  assert.is(words(sl), before, 'after a restart the filter holds what it held');

  // Another capacity is another filter size: a new map, filled from the pinned service maps.
  await sl.stopAgent();
  await sl.startAgent(docs(sl, [lone]), capacityOf({ services: 64, backends: 16, slots: 32 }));
  assert.is(sl.agent.datapath.frontendFilter.words, filterWords(64));
  assert.is(sl.agent.datapath.frontendFilter.setBits, 1);
  assert.ok(await reaches(sl, lone), `${lone} after a resize`);
});

filter.run();
