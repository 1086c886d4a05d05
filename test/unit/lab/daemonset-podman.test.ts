import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { podmanRunFor, quantityBytes, quantityMillicores, setFlag } from '../../../src/lab/daemonset-podman.ts';

const DAEMONSET = readFileSync(join(import.meta.dirname, '../../../deploy/daemonset.yaml'), 'utf8');
const NODE = { 'spec.nodeName': 'node-a' };

/** A small DaemonSet whose pod spec is `pod` (YAML, indented under spec.template.spec). */
function daemonSet(pod: string): string {
  const indented = pod
    .trim()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
  return `apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n${indented}\n`;
}

test("deploy/daemonset.yaml's agent: host namespaces, capabilities, security options, volumes, args", () => {
  const run = podmanRunFor(DAEMONSET, 'agent', NODE);
  const at = run.args.indexOf(run.image);
  const options = run.args.slice(0, at);
  for (const expected of [
    '--network=host',
    '--pid=host',
    '--user=0',
    '--read-only',
    '--read-only-tmpfs=false',
    '--security-opt=no-new-privileges',
    '--cap-drop=all',
    '--cap-add=CAP_BPF',
    '--cap-add=CAP_SYS_ADMIN',
    '--security-opt=seccomp=unconfined',
    '--env=NODE_NAME=node-a',
    '--volume=/sys/fs/bpf:/sys/fs/bpf:rw,rslave',
    '--volume=/sys/fs/cgroup:/run/socklb/cgroupv2:ro,rprivate',
    '--volume=/proc/sys/net:/host/proc/sys/net:rw,rprivate',
    `--tmpfs=/tmp:rw,size=${16 * 2 ** 20}`,
    `--memory=${512 * 2 ** 20}`,
    '--cpu-shares=51',
    '--stop-timeout=30',
    '--pull=missing',
  ]) {
    assert.ok(options.includes(expected), `${expected} not in ${options.join(' ')}`);
  }
  assert.not.ok(options.includes('--privileged'));
  assert.equal(run.args.slice(at + 1), [
    'agent',
    '--cgroup=/run/socklb/cgroupv2',
    '--bpffs=/sys/fs/bpf/socklb',
    '--sysctl-net=/host/proc/sys/net',
  ]);
  assert.equal(run.overrides, []);
  assert.equal(run.mustExist, ['/sys/fs/cgroup', '/proc/sys/net']);
  assert.equal(run.liveness, { path: '/livez', port: 10256 });
  assert.equal(run.hostPorts, [10256]);
});

test("deploy/daemonset.yaml's init container: its command replaces the entrypoint", () => {
  const run = podmanRunFor(DAEMONSET, 'mount-bpffs', {});
  const entrypoint = run.args.find((a) => a.startsWith('--entrypoint='))!;
  assert.equal(JSON.parse(entrypoint.slice('--entrypoint='.length)), [
    'nsenter',
    '--target=1',
    '--mount',
    '--',
    'sh',
    '-c',
    'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf',
  ]);
  assert.ok(run.args.includes('--cap-add=CAP_SYS_PTRACE'));
  assert.is(run.args.at(-1), run.image);
});

test("the test's overrides change only what they name, and are listed", () => {
  const run = podmanRunFor(DAEMONSET, 'agent', NODE, {
    hostNetworkNamespace: '/run/netns/lab-node',
    hostPaths: { cgroup2: '/sys/fs/cgroup/unified/lab' },
    flags: { '--bpffs': '/sys/fs/bpf/lab', '--manifests': '/etc/socklb/m.yaml' },
    extraMounts: [{ source: '/tmp/m.yaml', destination: '/etc/socklb/m.yaml', readOnly: true }],
    withoutCapabilities: ['BPF'],
  });
  assert.ok(run.args.includes('--network=ns:/run/netns/lab-node'));
  assert.not.ok(run.args.includes('--network=host'));
  assert.ok(run.args.includes('--volume=/sys/fs/cgroup/unified/lab:/run/socklb/cgroupv2:ro,rprivate'));
  assert.ok(run.args.includes('--volume=/tmp/m.yaml:/etc/socklb/m.yaml:ro'));
  assert.not.ok(run.args.includes('--cap-add=CAP_BPF'));
  assert.ok(run.args.includes('--cap-add=CAP_SYS_ADMIN'));
  assert.equal(run.args.slice(run.args.indexOf(run.image) + 1), [
    'agent',
    '--cgroup=/run/socklb/cgroupv2',
    '--bpffs=/sys/fs/bpf/lab',
    '--sysctl-net=/host/proc/sys/net',
    '--manifests=/etc/socklb/m.yaml',
  ]);
  assert.is(run.overrides.length, 6);
  assert.ok(run.overrides.includes('securityContext.capabilities.add: without BPF'));
});

test('args replaced wholesale (socklb cleanup from the image)', () => {
  const run = podmanRunFor(DAEMONSET, 'agent', NODE, { args: ['cleanup'], flags: { '--bpffs': '/sys/fs/bpf/x' } });
  assert.equal(run.args.slice(run.args.indexOf(run.image) + 1), ['cleanup', '--bpffs=/sys/fs/bpf/x']);
});

test('a field the converter does not translate is an error naming it, not skipped', () => {
  const pod = (extra: string) => daemonSet(`hostNetwork: true\n${extra}\ncontainers:\n  - name: a\n    image: i`);
  assert.throws(
    () => podmanRunFor(pod('dnsPolicy: ClusterFirstWithHostNet'), 'a', {}),
    /spec\.template\.spec\.dnsPolicy: not translated to podman/,
  );
  const container = (extra: string) => daemonSet(`containers:\n  - name: a\n    image: i\n${extra}`);
  assert.throws(() => podmanRunFor(container('    workingDir: /x'), 'a', {}), /containers\[0\]\.workingDir: not translated/);
  assert.throws(
    () => podmanRunFor(container('    securityContext:\n      runAsNonRoot: true'), 'a', {}),
    /securityContext\.runAsNonRoot: not translated/,
  );
  assert.throws(
    () =>
      podmanRunFor(
        daemonSet(
          'containers:\n  - name: a\n    image: i\n    volumeMounts: [{name: v, mountPath: /v}]\nvolumes:\n  - name: v\n    configMap: {name: c}',
        ),
        'a',
        {},
      ),
    /volumes\[v\]\.configMap: not translated/,
  );
});

test('what the kubelet would refuse or fill in is checked', () => {
  const env = daemonSet('containers:\n  - name: a\n    image: i\n    env: [{name: N, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]');
  assert.throws(() => podmanRunFor(env, 'a', {}), /N needs spec\.nodeName/);
  assert.ok(podmanRunFor(env, 'a', NODE).args.includes('--env=N=node-a'));
  const bidirectional = daemonSet(
    'containers:\n  - name: a\n    image: i\n    volumeMounts: [{name: v, mountPath: /v, mountPropagation: Bidirectional}]\nvolumes:\n  - {name: v, hostPath: {path: /v}}',
  );
  assert.throws(() => podmanRunFor(bidirectional, 'a', {}), /Bidirectional needs a privileged container/);
  const ports = daemonSet(
    'hostNetwork: true\ncontainers:\n  - name: a\n    image: i\n    ports: [{containerPort: 10256, hostPort: 10257}]',
  );
  assert.throws(() => podmanRunFor(ports, 'a', {}), /hostPort equal to containerPort/);
  assert.throws(() => podmanRunFor(DAEMONSET, 'nope', {}), /no container or init container named "nope"/);
});

test('quantities and flags', () => {
  assert.is(quantityBytes('16Mi', 'x'), 16 * 2 ** 20);
  assert.is(quantityBytes('1G', 'x'), 1e9);
  assert.is(quantityBytes('1.5Gi', 'x'), 1.5 * 2 ** 30);
  assert.throws(() => quantityBytes('16MB', 'limits.memory'), /limits\.memory: "16MB" is not a byte quantity/);
  assert.is(quantityMillicores('50m', 'x'), 50);
  assert.is(quantityMillicores('1.5', 'x'), 1500);
  assert.equal(setFlag(['a', '--x=1'], '--x', '2'), ['a', '--x=2']);
  assert.equal(setFlag(['a', '--x', '1'], '--x', '2'), ['a', '--x', '2']);
  assert.equal(setFlag(['a', '--xy=1'], '--x', '2'), ['a', '--xy=1', '--x=2']);
});

test.run();
