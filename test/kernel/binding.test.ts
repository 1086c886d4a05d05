// The libbpf addon against the real kernel: maps, pins, object loading, cgroup links, iterators.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BpfLink,
  BpfMap,
  BpfObject,
  cgroupPrograms,
  destroyUdpSockets,
  destroyUdpSocketsAsync,
  enableRunTimeStats,
  possibleCpus,
  programStats,
  readIterator,
  readIteratorAsync,
} from '../../src/bpf/binding.ts';
import { type NativeFd, native } from '../../src/bpf/native.ts';
import { rejectsBpf, throwsBpf } from '../support/assert-bpf.ts';
import { scaled, waitUntil } from '../support/time-scale.ts';

const FIXTURE = fileURLToPath(new URL('../../bpf/out/binding_fixture.bpf.o', import.meta.url));
const REJECTED = fileURLToPath(new URL('../../bpf/out/binding_rejected.bpf.o', import.meta.url));
const SUFFIX = randomBytes(4).toString('hex');

function mountPoint(fstype: string): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === fstype) return dir;
  }
  return undefined;
}

function ensureBpffs(): void {
  const mounted = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf');
  if (!mounted) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}

ensureBpffs();
// A run killed outright (SIGKILL, a CI timeout) leaves its directory behind: an hour-old one is no
// run's any more.
for (const name of readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('socklb-test-'))) {
  const dir = `/sys/fs/bpf/${name}`;
  if (Date.now() - statSync(dir).mtimeMs > 3_600_000) rmSync(dir, { recursive: true, force: true });
}
const PIN_DIR = `/sys/fs/bpf/socklb-test-${SUFFIX}`;
mkdirSync(PIN_DIR);
process.once('exit', () => rmSync(PIN_DIR, { recursive: true, force: true }));
const CGROUP_ROOT = mountPoint('cgroup2');
if (!CGROUP_ROOT) throw new Error('no cgroup2 mount in /proc/mounts');

test.after(() => {
  rmSync(PIN_DIR, { recursive: true, force: true });
});

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

/** The fixture's .rodata with fixture_cfg (increment, tag) replaced; the rest (format strings) kept. */
function configuredRodata(obj: BpfObject, increment: number, tag: number): Buffer {
  const rodata = obj.initialValue('.rodata');
  assert.ok(rodata && rodata.length >= 8);
  assert.is(rodata.readUInt32LE(0), 1, 'compiled-in increment');
  rodata.writeUInt32LE(increment, 0);
  rodata.writeUInt32LE(tag, 4);
  return rodata;
}

test('hash map: update, lookup, delete and keys() round trip', () => {
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8, name: 'test_hash' });
  try {
    for (const k of [1, 2, 3]) map.update(u32(k), u64(k * 100));
    assert.equal(map.lookup(u32(2)), u64(200));
    assert.is(map.lookup(u32(9)), undefined);
    throwsBpf(() => map.update(u32(1), u64(0), 'noexist'), 'EEXIST', 'bpf_map_update_elem');
    throwsBpf(() => map.update(u32(7), u64(0), 'exist'), 'ENOENT', 'bpf_map_update_elem');
    assert.is(map.delete(u32(2)), true);
    assert.is(map.delete(u32(2)), false);
    const keys = [...map.keys()].map((k) => k.readUInt32LE()).sort();
    assert.equal(keys, [1, 3]);
    const info = map.info();
    assert.is(info.typeName, 'hash');
    assert.is(info.name, 'test_hash');
    assert.is(info.keySize, 4);
    assert.is(info.valueSize, 8);
    assert.is(info.maxEntries, 8);
    assert.ok(info.id > 0);
    assert.ok((info.memlock ?? 0) > 0, 'memlock read from fdinfo');
  } finally {
    map.close();
  }
  assert.is(map.fd, -1);
  throwsBpf(() => map.lookup(u32(1)), 'EBADF', 'bpf_map_lookup_elem');
});

test('lru_hash map evicts instead of failing when full', () => {
  const map = BpfMap.create({ type: 'lru_hash', keySize: 4, valueSize: 4, maxEntries: 16 });
  try {
    for (let k = 0; k < 100; k++) map.update(u32(k), u32(k));
    const keys = [...map.keys()].map((k) => k.readUInt32LE());
    assert.ok(keys.length > 0 && keys.length <= 16, `${keys.length} keys`);
    assert.ok(keys.includes(99), 'the newest key survives');
    assert.equal(map.lookup(u32(99)), u32(99));
    assert.is(map.delete(u32(99)), true);
    assert.is(map.lookup(u32(99)), undefined);
  } finally {
    map.close();
  }
});

test('percpu_array map: values span possibleCpus() 8-byte slots', () => {
  const cpus = possibleCpus();
  assert.ok(cpus >= 1);
  const map = BpfMap.create({ type: 'percpu_array', keySize: 4, valueSize: 4, maxEntries: 4 });
  try {
    assert.is(map.valueBufferSize, cpus * 8);
    const value = Buffer.alloc(cpus * 8);
    for (let c = 0; c < cpus; c++) value.writeUInt32LE(10 + c, c * 8);
    map.update(u32(1), value);
    assert.equal(map.lookup(u32(1)), value);
    assert.equal(map.lookup(u32(0)), Buffer.alloc(cpus * 8), 'arrays are zero-filled');
    assert.equal(
      [...map.keys()].map((k) => k.readUInt32LE()),
      [0, 1, 2, 3],
    );
    throwsBpf(() => map.update(u32(1), Buffer.alloc(4)), 'EINVAL', 'bpf_map_update_elem');
    throwsBpf(() => map.update(u32(4), value), 'E2BIG', 'bpf_map_update_elem');
    throwsBpf(() => map.delete(u32(1)), 'EINVAL', 'bpf_map_delete_elem');
  } finally {
    map.close();
  }
});

test('update on a full hash map fails with E2BIG', () => {
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 2 });
  try {
    map.update(u32(1), u32(1));
    map.update(u32(2), u32(2));
    const err = throwsBpf(() => map.update(u32(3), u32(3)), 'E2BIG', 'bpf_map_update_elem');
    assert.is(err.errno, 7);
    map.update(u32(2), u32(20)); // replacing an existing key still works
    assert.equal(map.lookup(u32(2)), u32(20));
  } finally {
    map.close();
  }
});

/** A map call that must refuse a Buffer of the wrong size: what, the call, the message's tail. */
type SizeCase = [what: string, call: () => unknown, operation: string, sizes: RegExp];

function assertSizeCases(cases: SizeCase[], mapName: string): void {
  for (const [what, call, operation, sizes] of cases) {
    const err = throwsBpf(call, 'EINVAL', operation);
    assert.match(err.message, new RegExp(`map ${mapName} id \\d+: `), what);
    assert.match(err.message, sizes, what);
  }
}

test('every map call refuses a key or value Buffer of the wrong size, naming call, map and sizes', () => {
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8, name: 'sized_hash' });
  // The raw addon too, for the Buffers the wrapper always allocates itself.
  const raw = native.mapCreate('hash', 'sized_raw', 4, 8, 8, 0) as NativeFd;
  try {
    map.update(u32(1), u64(1));
    const key = (n: number) => Buffer.alloc(n);
    const keyIs = (n: number) => new RegExp(`key is ${n} bytes, expected 4 \\(key_size\\)`);
    const valueIs = (n: number) => new RegExp(`value is ${n} bytes, expected 8 \\(value_size\\)`);
    const updateBatch = (keys: number, values: number) => () => map.updateBatch(key(keys), Buffer.alloc(values), 2);
    assertSizeCases(
      [
        ['lookup, short key', () => map.lookup(key(3)), 'bpf_map_lookup_elem', keyIs(3)],
        ['lookup, long key', () => map.lookup(key(5)), 'bpf_map_lookup_elem', keyIs(5)],
        ['update, short key', () => map.update(key(3), u64(2)), 'bpf_map_update_elem', keyIs(3)],
        ['update, long key', () => map.update(key(8), u64(2)), 'bpf_map_update_elem', keyIs(8)],
        ['update, short value', () => map.update(u32(2), u32(2)), 'bpf_map_update_elem', valueIs(4)],
        ['update, long value', () => map.update(u32(2), Buffer.alloc(9)), 'bpf_map_update_elem', valueIs(9)],
        ['delete, short key', () => map.delete(key(0)), 'bpf_map_delete_elem', keyIs(0)],
        ['delete, long key', () => map.delete(u64(1)), 'bpf_map_delete_elem', keyIs(8)],
        ['updateBatch, short keys', updateBatch(7, 16), 'bpf_map_update_batch', /keys is 7 bytes, expected 8 \(2 x key_size\)/],
        ['updateBatch, long keys', updateBatch(12, 16), 'bpf_map_update_batch', /keys is 12 bytes, expected 8 /],
        ['updateBatch, short values', updateBatch(8, 15), 'bpf_map_update_batch', /values is 15 bytes, expected 16 \(2 x value_size\)/],
        ['updateBatch, long values', updateBatch(8, 24), 'bpf_map_update_batch', /values is 24 bytes, expected 16 /],
        ['deleteBatch, short keys', () => map.deleteBatch(key(7), 2), 'bpf_map_delete_batch', /keys is 7 bytes, expected 8 /],
        ['deleteBatch, long keys', () => map.deleteBatch(key(6)), 'bpf_map_delete_batch', /keys is 6 bytes, expected 4 \(1 x key_size\)/],
        ['lookupBatch, short cursor', () => map.lookupBatch(key(3)), 'bpf_map_lookup_batch', /in_batch is 3 bytes, expected at least 4 /],
      ],
      'sized_hash',
    );
    const batch = (inBatch: Buffer | null, outBatch: number, keys: number, values: number) => () =>
      native.mapLookupBatch(raw, inBatch, Buffer.alloc(outBatch), Buffer.alloc(keys), Buffer.alloc(values), 2);
    assertSizeCases(
      [
        ['raw lookup, short value', () => native.mapLookup(raw, u32(1), Buffer.alloc(7)), 'bpf_map_lookup_elem', valueIs(7)],
        ['raw lookup, long value', () => native.mapLookup(raw, u32(1), Buffer.alloc(16)), 'bpf_map_lookup_elem', valueIs(16)],
        ['get_next_key, short key', () => native.mapGetNextKey(raw, key(2), key(4)), 'bpf_map_get_next_key', keyIs(2)],
        ['get_next_key, long key', () => native.mapGetNextKey(raw, key(6), key(4)), 'bpf_map_get_next_key', keyIs(6)],
        [
          'get_next_key, short next',
          () => native.mapGetNextKey(raw, null, key(3)),
          'bpf_map_get_next_key',
          /next key is 3 bytes, expected 4 /,
        ],
        ['get_next_key, long next', () => native.mapGetNextKey(raw, key(4), key(5)), 'bpf_map_get_next_key', /next key is 5 bytes/],
        ['lookupBatch, short out_batch', batch(null, 2, 8, 16), 'bpf_map_lookup_batch', /out_batch is 2 bytes, expected at least 4 /],
        ['lookupBatch, short keys', batch(null, 8, 7, 16), 'bpf_map_lookup_batch', /keys is 7 bytes, expected 8 /],
        ['lookupBatch, long keys', batch(null, 8, 9, 16), 'bpf_map_lookup_batch', /keys is 9 bytes, expected 8 /],
        ['lookupBatch, short values', batch(null, 8, 8, 15), 'bpf_map_lookup_batch', /values is 15 bytes, expected 16 /],
        ['lookupBatch, long values', batch(null, 8, 8, 17), 'bpf_map_lookup_batch', /values is 17 bytes, expected 16 /],
      ],
      'sized_raw',
    );
    assert.equal(
      [...map.keys()].map((k) => k.readUInt32LE()),
      [1],
      'no refused call reached the map',
    );
    assert.equal(map.lookup(u32(1)), u64(1));
    const [rc, count] = native.mapLookupBatch(raw, null, Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(16), 2);
    assert.equal([rc, count], [-constants.errno.ENOENT, 0], 'exact sizes reach the kernel (an empty map)');
  } finally {
    map.close();
    raw.close();
  }
});

test('a per-CPU value Buffer must hold round_up(value_size, 8) bytes for every possible CPU', () => {
  const map = BpfMap.create({ type: 'percpu_hash', keySize: 4, valueSize: 4, maxEntries: 4, name: 'sized_percpu' });
  try {
    const full = possibleCpus() * 8;
    const why = `expected ${full} \\(value_size 4 rounded up to 8, times the possible CPUs\\)`;
    assertSizeCases(
      [
        ['update, one CPU', () => map.update(u32(1), Buffer.alloc(4)), 'bpf_map_update_elem', new RegExp(`value is 4 bytes, ${why}`)],
        [
          'update, short',
          () => map.update(u32(1), Buffer.alloc(full - 1)),
          'bpf_map_update_elem',
          new RegExp(`value is ${full - 1} bytes`),
        ],
        ['update, long', () => map.update(u32(1), Buffer.alloc(full + 8)), 'bpf_map_update_elem', new RegExp(`value is ${full + 8} bytes`)],
        ['updateBatch, one CPU each', () => map.updateBatch(u32(1), Buffer.alloc(4)), 'bpf_map_update_batch', /values is 4 bytes/],
      ],
      'sized_percpu',
    );
    map.update(u32(1), Buffer.alloc(full, 1));
    assert.equal(map.lookup(u32(1)), Buffer.alloc(full, 1));
  } finally {
    map.close();
  }
});

test('batch update, paged lookup and delete round trip', () => {
  const n = 100;
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 128 });
  try {
    const keys = Buffer.concat(Array.from({ length: n }, (_, i) => u32(i)));
    const values = Buffer.concat(Array.from({ length: n }, (_, i) => u64(i * 3)));
    map.updateBatch(keys, values, n);
    assert.equal(map.lookup(u32(42)), u64(126));

    const seen = new Map<number, number>();
    let pages = 0;
    let cursor: Buffer | undefined;
    do {
      const page = map.lookupBatch(cursor, 16);
      assert.ok(page.count <= 32, 'a page stays near the asked size');
      for (let i = 0; i < page.count; i++) {
        seen.set(page.keys.readUInt32LE(i * 4), Number(page.values.readBigUInt64LE(i * 8)));
      }
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    assert.ok(pages > 1, `${pages} pages`);
    assert.is(seen.size, n);
    for (const [k, v] of seen) assert.is(v, k * 3);
    assert.is([...map.entries()].length, n);

    map.deleteBatch(keys.subarray(0, 50 * 4), 50);
    assert.is(map.lookup(u32(10)), undefined);
    assert.is([...map.keys()].length, 50);
    throwsBpf(() => map.deleteBatch(u32(10)), 'ENOENT', 'bpf_map_delete_batch');
    throwsBpf(() => map.updateBatch(keys, values.subarray(0, 8), n), 'EINVAL', 'bpf_map_update_batch');
  } finally {
    map.close();
  }
});

test('a pinned map reopened with fromPin sees the same data', () => {
  const path = `${PIN_DIR}/pinned_map`;
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 });
  try {
    map.pin(path);
    map.update(u32(5), u32(55));
    const id = map.info().id;
    map.close();
    const again = BpfMap.fromPin(path);
    try {
      assert.is(again.info().id, id);
      assert.equal(again.lookup(u32(5)), u32(55));
      again.update(u32(6), u32(66));
    } finally {
      again.close();
    }
    throwsBpf(() => BpfLink.fromPin(path), 'EINVAL', 'bpf_obj_get');
    throwsBpf(() => BpfMap.fromPin(`${PIN_DIR}/missing`), 'ENOENT', 'bpf_obj_get');
  } finally {
    map.close();
    rmSync(path, { force: true });
  }
});

test('fixture object: configured before load, pinned map reused by a second load', () => {
  const pin = `${PIN_DIR}/fixture_calls`;
  const first = BpfObject.open(FIXTURE);
  let second: BpfObject | undefined;
  try {
    assert.equal(first.programNames().sort(), ['fixture_connect4', 'fixture_connect4_alt', 'fixture_udp']);
    assert.ok(first.mapNames().includes('fixture_calls'));
    first.setMaxEntries('fixture_calls', 64);
    first.setPinPath('fixture_calls', pin);
    first.setInitialValue('.rodata', configuredRodata(first, 5, 77));
    throwsBpf(() => first.setInitialValue('.rodata', Buffer.alloc(3)), 'EINVAL', 'bpf_map__set_initial_value');
    throwsBpf(() => first.setMaxEntries('no_such_map', 1), 'ENOENT', 'bpf_map__set_max_entries');
    throwsBpf(() => first.map('fixture_calls'), 'EBADF', 'bpf_map__fd');
    first.load();
    assert.ok(existsSync(pin), 'libbpf pinned the map at load');

    const calls = first.map('fixture_calls');
    const info = calls.info();
    assert.is(info.maxEntries, 64);
    calls.update(u32(80), u64(1));
    calls.close();
    assert.ok(first.programFd('fixture_connect4') > 0);
    throwsBpf(() => first.programFd('nope'), 'ENOENT', 'bpf_program__fd');

    second = BpfObject.open(FIXTURE);
    second.setMaxEntries('fixture_calls', 64);
    second.setPinPath('fixture_calls', pin);
    second.load();
    const reused = second.map('fixture_calls');
    try {
      assert.is(reused.info().id, info.id, 'the pinned map was reused');
      assert.equal(reused.lookup(u32(80)), u64(1));
    } finally {
      reused.close();
    }
  } finally {
    first.close();
    second?.close();
    rmSync(pin, { force: true });
  }
});

test('load failures carry the libbpf/verifier log', () => {
  const rejected = BpfObject.open(REJECTED);
  try {
    const err = throwsBpf(() => rejected.load(), 'EACCES', 'bpf_object__load');
    assert.ok(err.log && err.log.length > 0, 'log present');
    assert.match(err.log!, /invalid mem access/);
  } finally {
    rejected.close();
  }

  const zero = BpfObject.open(FIXTURE);
  try {
    zero.setMaxEntries('fixture_calls', 0);
    const err = throwsBpf(() => zero.load(), 'EINVAL', 'bpf_object__load');
    assert.match(err.log ?? '', /fixture_calls/);
  } finally {
    zero.close();
  }

  throwsBpf(() => BpfObject.open('/nonexistent.bpf.o'), 'ENOENT', 'bpf_object__open_file');
});

/** Runs one connect() to 127.0.0.1:port from a fresh process placed in the cgroup. */
function connectFromCgroup(cgroup: string, port: number): void {
  const script = `const s = require('net').connect(${port}, '127.0.0.1', () => s.destroy());
s.on('error', (e) => { console.error(e); process.exit(1); });`;
  execFileSync('bash', ['-c', 'echo $$ > "$CG/cgroup.procs" && exec "$NODE" -e "$SCRIPT"'], {
    env: { ...process.env, CG: cgroup, NODE: process.execPath, SCRIPT: script },
    timeout: scaled(10_000),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

test('cgroup link: counts connects, swaps programs, outlives its fds while pinned', async () => {
  const cgroup = `${CGROUP_ROOT}/socklb-test-${SUFFIX}`;
  const pin = `${PIN_DIR}/connect4_link`;
  const server = createServer((s) => s.destroy());
  let obj: BpfObject | undefined;
  let link: BpfLink | undefined;
  let reopened: BpfLink | undefined;
  const stats = enableRunTimeStats();
  mkdirSync(cgroup);
  try {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;

    obj = BpfObject.open(FIXTURE);
    obj.setInitialValue('.rodata', configuredRodata(obj, 5, 0));
    obj.load();
    const calls = obj.map('fixture_calls');
    try {
      link = obj.attachCgroup('fixture_connect4', cgroup);
      const progId = programStats({ fd: obj.programFd('fixture_connect4') }).id;
      assert.equal(cgroupPrograms(cgroup, 'cgroup_inet4_connect'), [progId]);
      const linkInfo = link.info();
      assert.is(linkInfo.progId, progId);
      assert.is(linkInfo.cgroupId, statSync(cgroup).ino);

      connectFromCgroup(cgroup, port);
      assert.equal(calls.lookup(u32(port)), u64(5), 'one connect, counted with the configured increment');
      const s = programStats({ id: progId });
      assert.is(s.name, 'fixture_connect'); // the kernel keeps 15 characters
      assert.ok(s.runCount >= 1, `runCount ${s.runCount}`);

      const altFd = obj.programFd('fixture_connect4_alt');
      link.updateProgram(altFd);
      const altId = programStats({ fd: altFd }).id;
      assert.is(link.info().progId, altId);
      connectFromCgroup(cgroup, port);
      assert.equal(calls.lookup(u32(0)), u64(5), 'the swapped-in program counted');
      assert.equal(calls.lookup(u32(port)), u64(5), 'the old one no longer runs');

      link.pin(pin);
      link.close();
      obj.close();
      assert.equal(cgroupPrograms(cgroup, 'cgroup_inet4_connect'), [altId], 'pinned link stays attached');
      connectFromCgroup(cgroup, port);
      assert.equal(calls.lookup(u32(0)), u64(10));

      reopened = BpfLink.fromPin(pin);
      assert.is(reopened.info().progId, altId);
      reopened.unpin();
      reopened.close();
      // The pin's reference goes after an RCU grace period (seen taking a while on 5.10 under TCG).
      await waitUntil('unpinned and closed: detached', () => cgroupPrograms(cgroup, 'cgroup_inet4_connect').length === 0, 2000);
      throwsBpf(() => cgroupPrograms(cgroup, 'no_such_type'), 'EINVAL', 'bpf_prog_query');
    } finally {
      calls.close();
    }
  } finally {
    stats.close();
    rmSync(pin, { force: true });
    reopened?.close();
    link?.close();
    obj?.close();
    server.close();
    rmdirSync(cgroup);
  }
});

/** Starts a process bound to UDP port in the netns and resolves once it is bound. */
async function udpListenerInNetns(netns: string, port: number): Promise<ChildProcess> {
  const script = `require('dgram').createSocket('udp4').bind(${port}, () => console.log('bound'));`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.is(line.toString().trim(), 'bound');
  return child;
}

test('readIterator walks the sockets of the caller netns, or of netnsPath', async () => {
  const netns = `socklb-test-${SUFFIX}`;
  const root = createSocket('udp4');
  let obj: BpfObject | undefined;
  let link: BpfLink | undefined;
  let child: ChildProcess | undefined;
  execFileSync('ip', ['netns', 'add', netns]);
  try {
    root.bind(0, '127.0.0.1');
    await once(root, 'listening');
    const rootPort = root.address().port;
    const nsPort = rootPort === 40123 ? 40124 : 40123;
    child = await udpListenerInNetns(netns, nsPort);

    obj = BpfObject.open(FIXTURE);
    obj.setInitialValue('.rodata', configuredRodata(obj, 1, 77));
    obj.load();
    link = obj.attachIter('fixture_udp');

    const here = readIterator(link);
    assert.ok(here.includes(`udp port=${rootPort} tag=77\n`), here);
    assert.not.ok(here.includes(`port=${nsPort} `), here);

    const there = readIterator(link, `/run/netns/${netns}`);
    assert.is(there, `udp port=${nsPort} tag=77\n`);

    assert.is(readIterator(link), here, 'the calling thread stayed in its own netns');
    throwsBpf(() => readIterator(link!, '/run/netns/socklb-no-such-netns'), 'ENOENT', 'bpf_iter_create in netns');
  } finally {
    link?.close();
    obj?.close();
    root.close();
    if (child) {
      child.kill();
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
    execFileSync('ip', ['netns', 'del', netns]);
  }
});

/** Counts the ticks of a 1 ms interval that ran before promise settled. */
async function ticksUntilSettled(promise: Promise<unknown>): Promise<number> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    await promise;
  } finally {
    clearInterval(timer);
  }
  return ticks;
}

/** The fixture opened and configured before load (increment 5, tag 77, 64 call slots). */
function configuredFixture(): BpfObject {
  const obj = BpfObject.open(FIXTURE);
  obj.setMaxEntries('fixture_calls', 64);
  obj.setInitialValue('.rodata', configuredRodata(obj, 5, 77));
  return obj;
}

/** What a loaded fixture holds: its programs' tags, its call map's shape, its frozen .rodata. */
function loadedFixture(obj: BpfObject): unknown {
  const calls = obj.map('fixture_calls');
  const rodata = obj.map('.rodata');
  try {
    const { typeName, keySize, valueSize, maxEntries } = calls.info();
    return {
      programs: obj
        .programNames()
        .sort()
        .map((name) => [name, programStats({ fd: obj.programFd(name) }).tag]),
      calls: { typeName, keySize, valueSize, maxEntries },
      rodata: rodata.lookup(u32(0)),
    };
  } finally {
    calls.close();
    rodata.close();
  }
}

test('loadAsync loads what load() loads on a worker thread: the event loop ticks, the object is busy meanwhile', async () => {
  const sync = configuredFixture();
  const worker = configuredFixture();
  try {
    sync.load();
    const loading = worker.loadAsync();
    throwsBpf(() => worker.close(), 'EBUSY', 'bpf_object__close');
    throwsBpf(() => worker.map('fixture_calls'), 'EBUSY', 'bpf_map__fd');
    throwsBpf(() => worker.setMaxEntries('fixture_calls', 8), 'EBUSY', 'bpf_map__set_max_entries');
    throwsBpf(() => worker.load(), 'EBUSY', 'bpf_object__load');
    await rejectsBpf(worker.loadAsync(), 'EBUSY', 'bpf_object__load');
    const ticks = await ticksUntilSettled(loading);
    assert.ok(ticks > 0, 'the event loop turned while the verifier worked');
    assert.equal(loadedFixture(worker), loadedFixture(sync));
  } finally {
    sync.close();
    worker.close();
  }
});

test('loadAsync rejects with the BpfError load() throws, carrying the log of its own load', async () => {
  const sync = BpfObject.open(REJECTED);
  const worker = BpfObject.open(REJECTED);
  try {
    const thrown = throwsBpf(() => sync.load(), 'EACCES', 'bpf_object__load');
    native.takeLog(); // what a JS-thread call left behind must not reach the worker's error
    const rejected = await rejectsBpf(worker.loadAsync(), 'EACCES', 'bpf_object__load');
    assert.is(rejected.message, thrown.message);
    assert.match(rejected.log ?? '', /invalid mem access/);
    assert.is(native.takeLog(), '', "the worker's log went to its error, not to takeLog()");
  } finally {
    sync.close();
    worker.close();
  }
  await rejectsBpf(worker.loadAsync(), 'EBADF', 'bpf_object__load');
});

test('readIteratorAsync reads what readIterator reads, in many namespaces, and outlives a closed link', async () => {
  const names = Array.from({ length: 6 }, (_, i) => `socklb-test-${SUFFIX}-${i}`);
  const root = createSocket('udp4');
  const children: ChildProcess[] = [];
  let obj: BpfObject | undefined;
  let link: BpfLink | undefined;
  for (const name of names) execFileSync('ip', ['netns', 'add', name]);
  try {
    root.bind(0, '127.0.0.1');
    await once(root, 'listening');
    children.push(await udpListenerInNetns(names[0]!, 40200), await udpListenerInNetns(names[1]!, 40201));
    obj = BpfObject.open(FIXTURE);
    obj.setInitialValue('.rodata', configuredRodata(obj, 1, 77));
    obj.load();
    link = obj.attachIter('fixture_udp');

    const paths = names.map((name) => `/run/netns/${name}`);
    const sync = paths.map((path) => readIterator(link!, path));
    assert.equal(sync.slice(0, 3), ['udp port=40200 tag=77\n', 'udp port=40201 tag=77\n', '']);
    assert.equal(await Promise.all(paths.map((path) => readIteratorAsync(link!, path))), sync);
    assert.ok((await readIteratorAsync(link)).includes(`udp port=${root.address().port} tag=77\n`), 'the caller netns');

    await rejectsBpf(readIteratorAsync(link, '/run/netns/socklb-no-such-netns'), 'ENOENT', 'bpf_iter_create in netns');
    const reading = readIteratorAsync(link, paths[0]);
    link.close(); // the worker reads through a dup of its own
    assert.is(await reading, sync[0]);
    await rejectsBpf(readIteratorAsync(link), 'EBADF', 'bpf_iter_create');
  } finally {
    link?.close();
    obj?.close();
    root.close();
    for (const child of children) {
      child.kill();
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
    for (const name of names) execFileSync('ip', ['netns', 'del', name]);
  }
});

/** Binds a UDP server on 127.0.0.1 and connects n clients to it; errors the clients get are kept. */
async function connectedUdp(n: number): Promise<{ port: number; sockets: Socket[]; errors: string[] }> {
  const server = createSocket('udp4');
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  const port = server.address().port;
  const errors: string[] = [];
  const sockets = [server];
  for (let i = 0; i < n; i++) {
    const client = createSocket('udp4');
    client.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    client.connect(port, '127.0.0.1');
    await once(client, 'connect');
    sockets.push(client);
  }
  return { port, sockets, errors };
}

test('destroyUdpSocketsAsync ends what destroyUdpSockets ends, and rejects with what it throws', async () => {
  const first = await connectedUdp(2);
  const second = await connectedUdp(2);
  try {
    const target = (port: number) => [{ family: 4, address: '127.0.0.1', port }] as const;
    assert.equal(await destroyUdpSocketsAsync(target(first.port)), { destroyed: 2, errors: 0 });
    assert.equal(destroyUdpSockets(target(second.port)), { destroyed: 2, errors: 0 });
    assert.equal(await destroyUdpSocketsAsync(target(first.port)), destroyUdpSockets(target(first.port)), 'none left');
    await waitUntil('the destroyed clients saw their error', () => first.errors.length === 2, 2000);
    assert.equal(first.errors, ['ECONNABORTED', 'ECONNABORTED']);

    const missing = '/run/netns/socklb-no-such-netns';
    const thrown = throwsBpf(() => destroyUdpSockets(target(first.port), missing), 'ENOENT', 'sock_diag');
    const rejected = await rejectsBpf(destroyUdpSocketsAsync(target(first.port), missing), 'ENOENT', 'sock_diag');
    assert.is(rejected.message, thrown.message);
    const badPort = [{ family: 4, address: '127.0.0.1', port: 0 }] as const;
    assert.throws(() => destroyUdpSockets(badPort), /targets\[0\]\.port must be 1\.\.65535/);
    await destroyUdpSocketsAsync(badPort).then(
      () => assert.unreachable('a bad port must reject'),
      (err: unknown) => assert.match(String(err), /RangeError: targets\[0\]\.port must be 1\.\.65535/),
    );
  } finally {
    for (const s of [...first.sockets, ...second.sockets]) s.close();
  }
});

test('readIteratorAsync and destroyUdpSocketsAsync keep the event loop turning while their worker blocks', async () => {
  // Opening a FIFO blocks until a writer opens it, so a worker told the FIFO is a netns waits in
  // open() until the test lets it go; then setns() refuses the FIFO with EINVAL. A writer child
  // lets go on a line from the test, or by itself after a while, so a worker that ran on the JS
  // thread fails the ticks assertion instead of hanging the test.
  const fifo = `/tmp/socklb-test-${SUFFIX}.fifo`;
  const obj = BpfObject.open(FIXTURE);
  let link: BpfLink | undefined;
  execFileSync('mkfifo', [fifo]);
  try {
    obj.load();
    link = obj.attachIter('fixture_udp');
    const calls: [string, () => Promise<unknown>][] = [
      ['bpf_iter_create in netns', () => readIteratorAsync(link!, fifo)],
      ['sock_diag', () => destroyUdpSocketsAsync([{ family: 4, address: '127.0.0.1', port: 9 }], fifo)],
    ];
    for (const [operation, start] of calls) {
      const valve = Math.ceil(scaled(10_000) / 1000);
      const writer = spawn('bash', ['-c', `read -r -t ${valve} _; exec 3>"$FIFO"`], {
        env: { ...process.env, FIFO: fifo },
        stdio: ['pipe', 'ignore', 'inherit'],
      });
      let settled = false;
      const call = start().finally(() => {
        settled = true;
      });
      call.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
      for (let tick = 0; tick < 5; tick++) {
        await sleep(1);
        assert.not.ok(settled, `${operation}: settled before tick ${tick}, so it ran on the JS thread`);
      }
      writer.stdin!.end('go\n');
      await rejectsBpf(call, 'EINVAL', operation);
      if (writer.exitCode === null) await once(writer, 'exit');
    }
  } finally {
    link?.close();
    obj.close();
    rmSync(fifo, { force: true });
  }
});

test.run();
