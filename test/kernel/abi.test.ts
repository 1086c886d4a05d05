// The TypeScript mirror of bpf/lib/abi.h must match what clang laid out: every struct's size and
// every field's offset and size are read from the BTF of the compiled objects.

import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DESTROY_OBJECT, RELEASE_OBJECT, SOCK_OBJECT, XDP_OBJECT } from '../../src/agent/datapath.ts';
import { planDatapath, probeFeatures } from '../../src/agent/features.ts';
import { BpfObject } from '../../src/bpf/binding.ts';
import { ABI_VERSION, encode, fieldSize, type Layout, Layouts, MAP_DEFINITIONS, type MapName } from '../../src/datapath/abi.ts';

interface BtfMember {
  name: string;
  offset: number;
  typeId: number;
}
interface BtfType {
  kind: string;
  name: string;
  size: number;
  members: BtfMember[];
}

/** Parses `bpftool btf dump ... format raw` into types by id. */
function readBtf(object: string): Map<number, BtfType> {
  const text = execFileSync('bpftool', ['btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8' });
  const types = new Map<number, BtfType>();
  let current: BtfType | undefined;
  for (const line of text.split('\n')) {
    const head = /^\[(\d+)\] (\w+) '([^']*)'(?: size=(\d+))?/.exec(line);
    if (head) {
      current = { kind: head[2]!, name: head[3]!, size: Number(head[4] ?? 0), members: [] };
      types.set(Number(head[1]), current);
      continue;
    }
    const member = /^\t'([^']*)' type_id=(\d+) bits_offset=(\d+)/.exec(line);
    if (member && current) {
      current.members.push({ name: member[1]!, typeId: Number(member[2]), offset: Number(member[3]) / 8 });
    }
  }
  return types;
}

/** Byte size of a BTF type, following typedefs, modifiers and arrays. */
function sizeOf(types: Map<number, BtfType>, id: number, raw: string): number {
  const t = types.get(id)!;
  if (t.size > 0) return t.size;
  const next = new RegExp(`^\\[${id}\\] \\w+ '[^']*' type_id=(\\d+)(?:.*nr_elems=(\\d+))?`, 'm').exec(raw);
  if (!next) return 0;
  return sizeOf(types, Number(next[1]), raw) * Number(next[2] ?? 1);
}

function check(object: string, layouts: Layout[]): void {
  const types = readBtf(object);
  const raw = execFileSync('bpftool', ['btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8' });
  for (const l of layouts) {
    const struct = [...types.values()].find((t) => t.kind === 'STRUCT' && t.name === l.name);
    assert.ok(struct, `struct ${l.name} is not in ${object}`);
    assert.is(struct!.size, l.size, `sizeof(struct ${l.name})`);
    assert.equal(
      l.fields.map((f) => f.name),
      struct!.members.map((m) => m.name),
      `fields of struct ${l.name}`,
    );
    for (const f of l.fields) {
      const m = struct!.members.find((x) => x.name === f.name)!;
      assert.is(m.offset, f.offset, `offsetof(struct ${l.name}, ${f.name})`);
      assert.is(sizeOf(types, m.typeId, raw), fieldSize(f), `sizeof(struct ${l.name}.${f.name})`);
    }
  }
}

const {
  lb4DestroyKey,
  lb6DestroyKey,
  backendId,
  nodeConfig,
  lb4Tuple,
  lb6Tuple,
  lb4Ct,
  lb6Ct,
  lb4Rnat,
  lb6Rnat,
  lb4SrcRangeKey,
  lb6SrcRangeKey,
  lb4DsrHdr,
  lb6DsrHdr,
  ...sockLayouts
} = Layouts;

test('every map struct of sock.bpf.o has the layout src/datapath/abi.ts encodes', () => {
  check(SOCK_OBJECT, Object.values(sockLayouts));
});

test('every map struct of xdp.bpf.o, its own and the shared service ones, has the layout abi.ts encodes', () => {
  const { lb4Key, lb6Key, service, slotKey, slot, lb4Backend, lb6Backend } = Layouts;
  // lb4DsrHdr and lb6DsrHdr are wire formats, absent from the BTF (no map holds it): the DSR packet tests check it byte for byte.
  const own = [nodeConfig, lb4Tuple, lb6Tuple, lb4Ct, lb6Ct, lb4Rnat, lb6Rnat, lb4SrcRangeKey, lb6SrcRangeKey];
  check(XDP_OBJECT, [...own, lb4Key, lb6Key, service, slotKey, slot, lb4Backend, lb6Backend]);
});

test('the destroy keys of sock_destroy.bpf.o have the layout src/datapath/abi.ts encodes', () => {
  check(DESTROY_OBJECT, [Layouts.lb4DestroyKey, Layouts.lb6DestroyKey]);
});

test('sock_release.bpf.o reads the socket storage sock.bpf.o writes', () => {
  check(RELEASE_OBJECT, [Layouts.sockConn]);
});

test('MAP_DEFINITIONS, which decides whether a pinned map is reused, matches every map the objects create', () => {
  // sock_destroy.bpf.o loads only where the kernel has bpf_sock_destroy; elsewhere its maps never exist.
  // sock_release.bpf.o declares only maps of sock.bpf.o, checked there.
  const plan = planDatapath(probeFeatures());
  const objects = plan.socketDestroy ? [SOCK_OBJECT, DESTROY_OBJECT, XDP_OBJECT] : [SOCK_OBJECT, XDP_OBJECT];
  for (const path of objects) {
    const obj = BpfObject.open(path);
    try {
      // As the agent loads it: no bpf_set_retval call where the kernel lacks the helper (< 5.18).
      if (path === SOCK_OBJECT)
        obj.setInitialValue('.rodata', encode(Layouts.config, { abi_version: ABI_VERSION, refuse_errno: plan.refuseErrno }));
      obj.load();
      for (const name of obj.mapNames().filter((n) => !n.includes('.'))) {
        const want = MAP_DEFINITIONS[name as MapName];
        assert.ok(want, `${name} of ${path} is in MAP_DEFINITIONS`);
        const map = obj.map(name);
        const info = map.info();
        map.close();
        assert.equal(
          { type: info.type, keySize: info.keySize, valueSize: info.valueSize, flags: info.flags },
          { type: want.type, keySize: want.keySize, valueSize: want.valueSize, flags: want.flags },
          name,
        );
      }
    } finally {
      obj.close();
    }
  }
});

test.run();
