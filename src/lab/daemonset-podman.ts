// deploy/daemonset.yaml as `podman run` arguments: the image test runs socklb's image with the
// DaemonSet's own settings (namespaces, capabilities, security options, volumes and their mount
// propagation, command, args, env, limits) read from the manifest, so the test fails when the
// DaemonSet and the image drift apart. A field this file does not translate is an error naming
// it, never skipped. What the kubelet decides alone (scheduling, probes, ports under host network)
// is returned for the caller to check; the test's own changes are Overrides, each listed in
// `overrides` so the test can say what differs from a node.

import { parseAllDocuments } from 'yaml';

export interface Overrides {
  /** The network namespace (/run/netns/NAME) standing in for the host's under hostNetwork. */
  hostNetworkNamespace?: string;
  /** The PID namespace (/proc/PID/ns/pid) standing in for the host's under hostPID. */
  hostPidNamespace?: string;
  /** hostPath volume name -> the host path to mount instead. */
  hostPaths?: Record<string, string>;
  /** Replaces the container's args entirely (e.g. `cleanup`); applied before `flags`. */
  args?: string[];
  /** `--flag` -> value: replaces the flag's value in the args, or appends `--flag=value`. */
  flags?: Record<string, string>;
  /** Bind mounts the test adds (a manifest file). */
  extraMounts?: { source: string; destination: string; readOnly: boolean }[];
  /** Capabilities taken out of securityContext.capabilities.add (the capability test). */
  withoutCapabilities?: string[];
}

export interface PodmanRun {
  /** Arguments after `podman run` and its own options: options, image, command arguments. */
  args: string[];
  image: string;
  /** The test's overrides, one readable line each (empty for a node's exact settings). */
  overrides: string[];
  /** hostPath volumes of `type: Directory`: the kubelet refuses to start the pod when one is missing. */
  mustExist: string[];
  /** The liveness probe, which podman does not run: the caller asks it. */
  liveness?: { path: string; port: number };
  /** Ports under hostNetwork: the container listens on the node's (no publishing). */
  hostPorts: number[];
}

type Obj = Record<string, unknown>;

/** Fields the kubelet uses to place and admit the pod, not to run its containers. */
const SCHEDULING_FIELDS = new Set(['serviceAccountName', 'priorityClassName', 'tolerations', 'nodeSelector', 'affinity']);
const POD_FIELDS = new Set([
  ...SCHEDULING_FIELDS,
  'hostNetwork',
  'hostPID',
  'containers',
  'initContainers',
  'volumes',
  'terminationGracePeriodSeconds',
]);
const CONTAINER_FIELDS = new Set([
  'name',
  'image',
  'imagePullPolicy',
  'command',
  'args',
  'env',
  'securityContext',
  'ports',
  'livenessProbe',
  'resources',
  'volumeMounts',
]);
const SECURITY_FIELDS = new Set([
  'runAsUser',
  'readOnlyRootFilesystem',
  'allowPrivilegeEscalation',
  'privileged',
  'capabilities',
  'seccompProfile',
  'appArmorProfile',
]);

class ManifestError extends Error {
  constructor(where: string, message: string) {
    super(`deploy/daemonset.yaml: ${where}: ${message}`);
    this.name = 'ManifestError';
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, where: string): Obj {
  if (!isObj(v)) throw new ManifestError(where, 'expected a mapping');
  return v;
}

function list(v: unknown, where: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ManifestError(where, 'expected a list');
  return v;
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string') throw new ManifestError(where, 'expected a string');
  return v;
}

function strings(v: unknown, where: string): string[] {
  return list(v, where).map((s, i) => str(s, `${where}[${i}]`));
}

function onlyKnown(o: Obj, known: Set<string>, where: string): void {
  for (const key of Object.keys(o)) {
    if (!known.has(key)) throw new ManifestError(`${where}.${key}`, 'not translated to podman (teach src/lab/daemonset-podman.ts)');
  }
}

const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
const DECIMAL_SUFFIX: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9 };

/** A Kubernetes quantity of bytes (`16Mi`, `512M`, `1Gi`, `1000`) in bytes. */
export function quantityBytes(text: unknown, where: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G|)$/.exec(String(text));
  if (!m) throw new ManifestError(where, `${JSON.stringify(text)} is not a byte quantity this converter reads (e.g. 512Mi)`);
  return Math.round(Number(m[1]) * (BINARY_SUFFIX[m[2]!] ?? DECIMAL_SUFFIX[m[2]!]!));
}

/** A Kubernetes CPU quantity (`50m`, `0.5`, `2`) in millicores. */
export function quantityMillicores(text: unknown, where: string): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(String(text));
  if (!m) throw new ManifestError(where, `${JSON.stringify(text)} is not a CPU quantity (e.g. 50m)`);
  return m[2] === 'm' ? Number(m[1]) : Math.round(Number(m[1]) * 1000);
}

/** The DaemonSet document of a manifest, its pod spec checked to hold only translated fields. */
export function daemonSetPodSpec(yamlText: string): Obj {
  const docs = parseAllDocuments(yamlText).map((d) => d.toJS() as unknown);
  const ds = docs.find((d) => isObj(d) && d.kind === 'DaemonSet');
  if (!ds) throw new ManifestError('kind', 'no DaemonSet document');
  const spec = obj(obj(obj(obj(ds, 'DaemonSet').spec, 'spec').template, 'spec.template').spec, 'spec.template.spec');
  onlyKnown(spec, POD_FIELDS, 'spec.template.spec');
  return spec;
}

const PROPAGATION: Record<string, string> = { None: 'rprivate', HostToContainer: 'rslave', Bidirectional: 'rshared' };
const PULL: Record<string, string> = { IfNotPresent: 'missing', Always: 'always', Never: 'never' };

/** Replaces `--flag=value` / `--flag value` in args, or appends `--flag=value`. */
export function setFlag(args: readonly string[], flag: string, value: string): string[] {
  const out = [...args];
  const at = out.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (at < 0) return [...out, `${flag}=${value}`];
  if (out[at] === flag) out[at + 1] = value;
  else out[at] = `${flag}=${value}`;
  return out;
}

/**
 * `podman run` arguments for the container `name` (a container or an init container) of the
 * DaemonSet in `yamlText`. `fieldRefs` gives what the kubelet would fill in from the pod
 * (`spec.nodeName`).
 */
export function podmanRunFor(yamlText: string, name: string, fieldRefs: Record<string, string>, o: Overrides = {}): PodmanRun {
  const pod = daemonSetPodSpec(yamlText);
  const overrides: string[] = [];
  const containers = [
    ...list(pod.containers, 'spec.template.spec.containers').map((c, i) => ({ c, where: `containers[${i}]` })),
    ...list(pod.initContainers, 'spec.template.spec.initContainers').map((c, i) => ({ c, where: `initContainers[${i}]` })),
  ];
  const found = containers.find(({ c }) => isObj(c) && c.name === name);
  if (!found) throw new ManifestError('spec.template.spec', `no container or init container named ${JSON.stringify(name)}`);
  const where = `spec.template.spec.${found.where}`;
  const c = obj(found.c, where);
  onlyKnown(c, CONTAINER_FIELDS, where);
  const args: string[] = [];

  // Namespaces: the node's, or the one the test stands in for it.
  for (const [field, flag, override] of [
    ['hostNetwork', 'network', o.hostNetworkNamespace],
    ['hostPID', 'pid', o.hostPidNamespace],
  ] as const) {
    if (pod[field] !== true) continue;
    if (override) overrides.push(`${field}: the namespace ${override} stands for the node's`);
    args.push(`--${flag}=${override ? `ns:${override}` : 'host'}`);
  }
  if (pod.terminationGracePeriodSeconds !== undefined) args.push(`--stop-timeout=${Number(pod.terminationGracePeriodSeconds)}`);

  // Image and command: `command` replaces the image's ENTRYPOINT, `args` its CMD.
  const image = str(c.image, `${where}.image`);
  const pull = PULL[String(c.imagePullPolicy ?? 'IfNotPresent')];
  if (!pull) throw new ManifestError(`${where}.imagePullPolicy`, `unknown policy ${JSON.stringify(c.imagePullPolicy)}`);
  args.push(`--pull=${pull}`);
  if (c.command !== undefined) args.push(`--entrypoint=${JSON.stringify(strings(c.command, `${where}.command`))}`);

  // Environment.
  for (const [i, e] of list(c.env, `${where}.env`).entries()) {
    const env = obj(e, `${where}.env[${i}]`);
    const key = str(env.name, `${where}.env[${i}].name`);
    if (env.value !== undefined) {
      args.push(`--env=${key}=${String(env.value)}`);
      continue;
    }
    const path = str(
      obj(obj(env.valueFrom, `${where}.env[${i}].valueFrom`).fieldRef, `${where}.env[${i}].valueFrom.fieldRef`).fieldPath,
      key,
    );
    const value = fieldRefs[path];
    if (value === undefined) throw new ManifestError(`${where}.env[${i}]`, `${key} needs ${path}, which the caller did not give`);
    args.push(`--env=${key}=${value}`);
  }

  // Security context.
  const sc = obj(c.securityContext ?? {}, `${where}.securityContext`);
  onlyKnown(sc, SECURITY_FIELDS, `${where}.securityContext`);
  if (sc.runAsUser !== undefined) args.push(`--user=${Number(sc.runAsUser)}`);
  // Kubernetes mounts no tmpfs of its own over a read-only root; podman would (/tmp, /run, /var/tmp).
  if (sc.readOnlyRootFilesystem === true) args.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt=no-new-privileges');
  if (sc.privileged === true) args.push('--privileged');
  const caps = obj(sc.capabilities ?? {}, `${where}.securityContext.capabilities`);
  onlyKnown(caps, new Set(['add', 'drop']), `${where}.securityContext.capabilities`);
  for (const cap of strings(caps.drop, `${where}.securityContext.capabilities.drop`)) {
    args.push(`--cap-drop=${cap === 'ALL' ? 'all' : `CAP_${cap}`}`);
  }
  const without = new Set(o.withoutCapabilities ?? []);
  for (const cap of strings(caps.add, `${where}.securityContext.capabilities.add`)) {
    if (without.has(cap)) overrides.push(`securityContext.capabilities.add: without ${cap}`);
    else args.push(`--cap-add=CAP_${cap}`);
  }
  for (const [field, opt] of [
    ['seccompProfile', 'seccomp'],
    ['appArmorProfile', 'apparmor'],
  ] as const) {
    if (sc[field] === undefined) continue;
    const type = obj(sc[field], `${where}.securityContext.${field}`).type;
    if (type === 'Unconfined') args.push(`--security-opt=${opt}=unconfined`);
    else if (type !== 'RuntimeDefault') throw new ManifestError(`${where}.securityContext.${field}.type`, `${String(type)} not translated`);
  }

  // Resources: limits are the container's; requests place the pod, except the CPU request the
  // kubelet turns into cgroup CPU shares.
  const resources = obj(c.resources ?? {}, `${where}.resources`);
  const limits = obj(resources.limits ?? {}, `${where}.resources.limits`);
  const requests = obj(resources.requests ?? {}, `${where}.resources.requests`);
  if (limits.memory !== undefined) args.push(`--memory=${quantityBytes(limits.memory, `${where}.resources.limits.memory`)}`);
  if (limits.cpu !== undefined) args.push(`--cpus=${quantityMillicores(limits.cpu, `${where}.resources.limits.cpu`) / 1000}`);
  if (requests.cpu !== undefined) {
    const shares = Math.max(2, Math.floor((quantityMillicores(requests.cpu, `${where}.resources.requests.cpu`) * 1024) / 1000));
    args.push(`--cpu-shares=${shares}`);
  }

  // Volumes.
  const volumes = new Map<string, Obj>();
  for (const [i, v] of list(pod.volumes, 'spec.template.spec.volumes').entries()) {
    const vol = obj(v, `spec.template.spec.volumes[${i}]`);
    volumes.set(str(vol.name, `spec.template.spec.volumes[${i}].name`), vol);
  }
  const mustExist: string[] = [];
  for (const [i, m] of list(c.volumeMounts, `${where}.volumeMounts`).entries()) {
    const mw = `${where}.volumeMounts[${i}]`;
    const mount = obj(m, mw);
    onlyKnown(mount, new Set(['name', 'mountPath', 'readOnly', 'mountPropagation']), mw);
    const volName = str(mount.name, `${mw}.name`);
    const target = str(mount.mountPath, `${mw}.mountPath`);
    const vol = volumes.get(volName);
    if (!vol) throw new ManifestError(mw, `no volume named ${volName}`);
    const vw = `spec.template.spec.volumes[${volName}]`;
    onlyKnown(vol, new Set(['name', 'hostPath', 'emptyDir']), vw);
    if (vol.hostPath !== undefined) {
      const hp = obj(vol.hostPath, `${vw}.hostPath`);
      let source = str(hp.path, `${vw}.hostPath.path`);
      const override = o.hostPaths?.[volName];
      if (override !== undefined) {
        overrides.push(`volume ${volName}: ${override} in place of ${source}`);
        source = override;
      }
      const type = String(hp.type ?? '');
      if (type === 'Directory') mustExist.push(source);
      else if (type !== 'DirectoryOrCreate' && type !== '') throw new ManifestError(`${vw}.hostPath.type`, `${type} not translated`);
      const propagation = PROPAGATION[String(mount.mountPropagation ?? 'None')];
      if (!propagation) throw new ManifestError(`${mw}.mountPropagation`, `unknown ${JSON.stringify(mount.mountPropagation)}`);
      if (propagation === 'rshared' && sc.privileged !== true) {
        throw new ManifestError(`${mw}.mountPropagation`, 'Bidirectional needs a privileged container');
      }
      // -v, not --mount: it creates a missing source directory, as DirectoryOrCreate does.
      args.push(`--volume=${source}:${target}:${mount.readOnly === true ? 'ro' : 'rw'},${propagation}`);
    } else if (vol.emptyDir !== undefined) {
      const ed = obj(vol.emptyDir, `${vw}.emptyDir`);
      if (ed.medium !== 'Memory') throw new ManifestError(`${vw}.emptyDir.medium`, 'only Memory (a tmpfs) is translated');
      const size = ed.sizeLimit === undefined ? '' : `,size=${quantityBytes(ed.sizeLimit, `${vw}.emptyDir.sizeLimit`)}`;
      args.push(`--tmpfs=${target}:${mount.readOnly === true ? 'ro' : 'rw'}${size}`);
    } else {
      throw new ManifestError(vw, 'neither hostPath nor emptyDir');
    }
  }
  for (const m of o.extraMounts ?? []) {
    args.push(`--volume=${m.source}:${m.destination}:${m.readOnly ? 'ro' : 'rw'}`);
    overrides.push(`mount ${m.source} at ${m.destination}`);
  }

  // Ports: under host network the container binds the node's ports itself.
  const hostPorts: number[] = [];
  for (const [i, p] of list(c.ports, `${where}.ports`).entries()) {
    const port = obj(p, `${where}.ports[${i}]`);
    if (pod.hostNetwork !== true) throw new ManifestError(`${where}.ports[${i}]`, 'ports are translated under hostNetwork only');
    if (port.hostPort !== undefined && port.hostPort !== port.containerPort) {
      throw new ManifestError(`${where}.ports[${i}]`, 'hostNetwork needs hostPort equal to containerPort');
    }
    hostPorts.push(Number(port.containerPort));
  }
  let liveness: PodmanRun['liveness'];
  if (c.livenessProbe !== undefined) {
    const get = obj(obj(c.livenessProbe, `${where}.livenessProbe`).httpGet, `${where}.livenessProbe.httpGet`);
    liveness = { path: str(get.path, `${where}.livenessProbe.httpGet.path`), port: Number(get.port) };
  }

  // The image's arguments.
  let cmdArgs = strings(c.args, `${where}.args`);
  if (o.args) {
    overrides.push(`args: ${o.args.join(' ')} in place of ${cmdArgs.join(' ') || '(none)'}`);
    cmdArgs = [...o.args];
  }
  for (const [flag, value] of Object.entries(o.flags ?? {})) {
    overrides.push(`args: ${flag}=${value}`);
    cmdArgs = setFlag(cmdArgs, flag, value);
  }

  return { args: [...args, image, ...cmdArgs], image, overrides, mustExist, ...(liveness ? { liveness } : {}), hostPorts };
}
