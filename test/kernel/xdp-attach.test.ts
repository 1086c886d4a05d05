// Attaching packet programs through the addon: XDP through a bpf_link in native and generic mode,
// tc through tcx and through the clsact fallback older kernels (before 6.6) get, and that closing
// each one detaches it. In a namespace the test makes and removes.

import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BpfObject } from '../../src/bpf/binding.ts';
import { throwsBpf } from '../support/assert-bpf.ts';
import type { XdpMaps } from '../support/xdp-fixture.ts';
import { tcKindHere, XdpLab } from '../support/xdp-lab.ts';

/** enum bpf_link_type (kernel 6.6+). */
const BPF_LINK_TYPE_TCX = 11;

const lab = new XdpLab();
let ns: string;
let maps: XdpMaps;
let obj: BpfObject;

function link(dev: string): string {
  return execFileSync('ip', ['-n', ns, '-d', 'link', 'show', dev], { encoding: 'utf8' });
}

function tcFilters(dev: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'tc', 'filter', 'show', 'dev', dev, 'egress'], { encoding: 'utf8' });
}

test.before(() => {
  ns = lab.netns('attach');
  const peer = lab.netns('peer');
  lab.veth(ns, 'v0', '192.0.2.1/24', peer, 'v1', '192.0.2.2/24');
  maps = lab.loadXdp();
  obj = maps.obj;
});

test.after(() => lab.close());

test('attachXdp: native and generic links; closing a link detaches the program', () => {
  const netns = `/run/netns/${ns}`;
  for (const [mode, shown] of [
    ['native', /mtu \d+ xdp /],
    ['generic', /mtu \d+ xdpgeneric /],
  ] as const) {
    const l = obj.attachXdp('xdp_lb', lab.ifindex(ns, 'v0'), mode, netns);
    try {
      assert.match(link('v0'), shown, mode);
    } finally {
      l.close();
    }
    assert.not.match(link('v0'), /prog\/xdp/, `${mode}: detached`);
  }
});

test('attachXdp: a second program on the same device fails with EBUSY; a missing device with EINVAL', () => {
  const netns = `/run/netns/${ns}`;
  const l = obj.attachXdp('xdp_lb', lab.ifindex(ns, 'v0'), 'native', netns);
  try {
    throwsBpf(() => obj.attachXdp('xdp_pass', lab.ifindex(ns, 'v0'), 'native', netns), 'EBUSY', 'bpf_link_create');
  } finally {
    l.close();
  }
  // The kernel's answer for an ifindex with no device behind it (bpf_xdp_link_attach).
  throwsBpf(() => obj.attachXdp('xdp_lb', 99999, 'native', netns), 'EINVAL', 'bpf_link_create');
});

test('attachTc: tcx from Linux 6.6 (a bpf_link, gone on close), clsact before, or when asked; both detach on close', () => {
  const netns = `/run/netns/${ns}`;
  const auto = obj.attachTc('tc_lb_egress', lab.ifindex(ns, 'v0'), 'egress', netns);
  assert.is(auto.kind, tcKindHere());
  if (auto.kind === 'tcx') {
    const info = auto.link!.info();
    assert.is(info.type, BPF_LINK_TYPE_TCX);
    const linkExists = () => spawnSync('bpftool', ['link', 'show', 'id', String(info.id)]).status === 0;
    assert.ok(linkExists());
    auto.close();
    assert.not.ok(linkExists(), 'the tcx link is gone');
  } else {
    auto.close();
  }

  const cls = obj.attachTc('tc_lb_egress', lab.ifindex(ns, 'v0'), 'egress', netns, 'clsact');
  assert.is(cls.kind, 'clsact');
  assert.is(cls.link, undefined);
  assert.match(tcFilters('v0'), /tc_lb_egress/);
  cls.close();
  assert.not.match(tcFilters('v0'), /tc_lb_egress/);
});

test.run();
