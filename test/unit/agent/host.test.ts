import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bpffsRootOf, cgroup2Mount, readMounts } from '../../../src/agent/host.ts';

const HYBRID = `sysfs /sys sysfs rw,nosuid 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
bpf /sys/fs/bpf bpf rw,relatime 0 0
bpf /run/my\\040bpf bpf rw 0 0
`;

test('cgroup2 is found where a hybrid layout mounts it, not at /sys/fs/cgroup', () => {
  assert.is(cgroup2Mount(readMounts(HYBRID)), '/sys/fs/cgroup/unified');
});

test('no cgroup2 mount is a clear host error', () => {
  assert.throws(() => cgroup2Mount(readMounts('proc /proc proc rw 0 0\n')), /no cgroup2 file system/);
});

test('mount points with escaped spaces are decoded', () => {
  assert.ok(readMounts(HYBRID).some((m) => m.target === '/run/my bpf'));
});

test('the bpffs holding a pin directory is the longest matching bpf mount', () => {
  const mounts = readMounts(HYBRID);
  assert.is(bpffsRootOf('/sys/fs/bpf/socklb', mounts), '/sys/fs/bpf');
  assert.is(bpffsRootOf('/run/my bpf/x', mounts), '/run/my bpf');
  assert.is(bpffsRootOf('/sys/fs/bpfx/socklb', mounts), undefined);
  assert.is(bpffsRootOf('/tmp/socklb', mounts), undefined);
});

test.run();
