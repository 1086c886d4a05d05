// The kernel feature probe (src/agent/features.ts) against the running kernel, and the datapath
// decisions it drives: the verifier must agree with what the probe says.

import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Datapath, DEFAULT_CAPACITY, SOCK_OBJECT } from '../../src/agent/datapath.ts';
import {
  decideFeatures,
  FEATURE_NAMES,
  type Features,
  kernelVersion,
  parseBtfNames,
  planDatapath,
  probeFeatures,
} from '../../src/agent/features.ts';
import { BpfError, BpfObject } from '../../src/bpf/binding.ts';
import { ABI_VERSION, encode, Layouts } from '../../src/datapath/abi.ts';
import { SocklbError } from '../../src/errors.ts';

/** First mainline release of each feature: a kernel at least that new must report it. */
const SINCE: Record<string, [number, number]> = {
  connect: [4, 17],
  sendmsg: [4, 18],
  recvmsg: [5, 2],
  getpeername: [5, 8],
  cgroup_link: [5, 7],
  set_retval: [5, 18],
  iter_udp: [5, 9],
  sock_destroy: [6, 5],
};

function all(available: boolean): Features {
  return Object.fromEntries(FEATURE_NAMES.map((n) => [n, { available }])) as Features;
}

test("the probe reads this kernel's BTF and finds every feature its release must have", () => {
  const f = probeFeatures();
  assert.ok(f.btf.available, f.btf.reason);
  const v = kernelVersion();
  for (const [name, since] of Object.entries(SINCE)) {
    const feature = f[name as keyof Features];
    if (v[0] > since[0] || (v[0] === since[0] && v[1] >= since[1]))
      assert.ok(feature.available, `${name} on ${release()}: ${feature.reason}`);
    else if (!feature.available) assert.match(feature.reason ?? '', release());
  }
  const names = parseBtfNames(readFileSync('/sys/kernel/btf/vmlinux'));
  assert.ok(names.enumerators.has('BPF_CGROUP_INET4_CONNECT'), 'the cgroup attach types are enumerators in the BTF');
});

test("the probe's set_retval verdict is the verifier's: refuse_errno 111 loads exactly where the helper exists", () => {
  const f = probeFeatures();
  const plan = planDatapath(f);
  const load = (refuseErrno: number): Error | undefined => {
    const obj = BpfObject.open(SOCK_OBJECT);
    try {
      obj.setInitialValue('.rodata', encode(Layouts.config, { abi_version: ABI_VERSION, refuse_errno: refuseErrno }));
      obj.load();
      return undefined;
    } catch (err) {
      return err as Error;
    } finally {
      obj.close();
    }
  };
  assert.is(load(plan.refuseErrno), undefined, 'the planned configuration loads');
  const withHelper = load(111);
  if (f.set_retval.available) {
    assert.is(plan.refuseErrno, 111);
    assert.is(withHelper, undefined);
  } else {
    assert.is(plan.refuseErrno, 0);
    assert.instance(withHelper, BpfError, 'without bpf_set_retval the verifier rejects refuse_errno 111');
  }
});

test('a kernel without set_retval or sock_destroy gets a degraded plan that says why', () => {
  const f = all(true);
  f.set_retval = { available: false, reason: "BPF_FUNC_set_retval is not in this kernel's BTF (5.10.0-46-cloud-amd64)" };
  f.sock_destroy = { available: false, reason: 'the bpf_sock_destroy kfunc needs Linux 6.5: not in BTF' };
  const plan = planDatapath(f, '5.10.0-46-cloud-amd64');
  assert.is(plan.unsupported, undefined);
  assert.is(plan.refuseErrno, 0);
  assert.is(plan.socketDestroy, false);
  assert.match(plan.destroyUnavailable ?? '', /bpf_sock_destroy/);
  assert.ok(
    plan.notes.some((n) => n.includes('EPERM')),
    plan.notes.join('\n'),
  );
  const full = planDatapath(all(true));
  assert.equal([full.refuseErrno, full.socketDestroy, full.destroyUnavailable, full.notes], [111, true, undefined, []]);
  assert.is(full.connsUnavailable, undefined);
  const noRelease = all(true);
  noRelease.sock_release = { available: false, reason: "BPF_CGROUP_INET_SOCK_RELEASE is not in this kernel's BTF" };
  assert.match(planDatapath(noRelease).connsUnavailable ?? '', /lc, wlc, sed and nq pick at random: .*SOCK_RELEASE/);
});

test('a kernel without a required hook is refused with one clear error naming the feature and the kernel', async () => {
  for (const missing of ['getpeername', 'cgroup_link'] as const) {
    const f = all(true);
    f[missing] = { available: false, reason: `${missing} is not in this kernel's BTF (5.4.0-1-amd64)` };
    const plan = planDatapath(f, '5.4.0-1-amd64');
    assert.match(plan.unsupported ?? '', missing === 'getpeername' ? /getpeername4/ : /BPF_LINK_TYPE_CGROUP/);
    assert.match(plan.unsupported ?? '', /5\.4\.0-1-amd64/);
    // Refused before anything touches the kernel: the bpffs path does not even exist.
    try {
      await Datapath.open({
        bpffs: '/nonexistent/socklb',
        cgroup: '/nonexistent',
        capacity: DEFAULT_CAPACITY,
        reverseEntries: 16,
        features: f,
      });
      assert.unreachable('Datapath.open must refuse');
    } catch (err) {
      assert.instance(err, SocklbError);
      assert.is((err as SocklbError).code, 'SOCKLB_ERR_HOST');
      assert.match((err as Error).message, missing === 'getpeername' ? /getpeername/ : /bpf_link/);
    }
  }
});

test('without BTF the release decides, and says so', () => {
  const old = decideFeatures(new Error('ENOENT'), '5.10.0-46-cloud-amd64');
  assert.is(old.btf.available, false);
  assert.is(old.set_retval.available, false);
  assert.match(old.set_retval.reason ?? '', /5\.18.*5\.10\.0-46/);
  assert.is(old.getpeername.available, true);
  const recent = decideFeatures(new Error('ENOENT'), '6.12.95+deb12-cloud-amd64');
  assert.ok(FEATURE_NAMES.filter((n) => n !== 'btf').every((n) => recent[n].available));
});

test.run();
