// Malformed and odd Services and EndpointSlices, generated from good templates by a seeded PRNG, with
// what socklb must make of each (issue 9, item 9). Every mutation knows the object and the field it
// breaks, so a check can demand a problem naming exactly those; harmless oddities (unknown fields,
// huge annotations, duplicate endpoints, YAML anchors) must come out served exactly as the template
// would be. The runners (test/support/fuzz-run.ts) feed a case through the manifest source and the
// fake API server.

import { type ErrorCode, ErrorCodes } from '../../src/errors.ts';
import { rng } from './rng.ts';

export const FUZZ_NAMESPACE = 'fuzz';

/** A problem a check demands: the object (or, for `Document`, the item's document index) and field. */
export interface WantedProblem {
  kind: 'Service' | 'EndpointSlice' | 'Document';
  namespace: string;
  /** For `Document`: filled in by the runner as `file#index`. */
  name: string;
  /** For `Document`: which of the item's docs. */
  doc?: number;
  field: string;
  code: ErrorCode;
}

/**
 * What must be served for the item's service: exactly these frontends (endpointKey -> sorted
 * `address/port` backends), none at all, or, for random havoc, either served or named by a problem
 * (never silently dropped).
 */
export type Serve = { exact: Record<string, string[]> } | 'none' | 'either';

export interface FuzzItem {
  /** The mutation, for reports. */
  label: string;
  /** The service whose frontends are checked. */
  service: { namespace: string; name: string };
  /** Names of the item's EndpointSlices, so a check can tell that no problem names a good one. */
  slices: string[];
  /** Objects, or raw YAML documents (manifest only). */
  docs: (Record<string, unknown> | string)[];
  /** Only the manifest can carry it (no name, YAML syntax, a duplicate the API server would refuse). */
  manifestOnly: boolean;
  /** Must be the file's last document (a truncated one). */
  last?: boolean;
  problems: WantedProblem[];
  serve: Serve;
}

export interface FuzzCase {
  seed: number;
  items: FuzzItem[];
  /** Write the manifest with CRLF line ends and a byte-order mark, as Windows editors do (kubectl reads it). */
  crlf: boolean;
}

export interface FuzzOptions {
  /** Mutated or odd items per case (good ones are mixed in on top, about one per three). */
  items: number;
  /** Size of the huge strings (bytes). */
  hugeBytes: number;
  /** Endpoints of the one big slice per case (0: none). */
  manyEndpoints: number;
  /** Pad the manifest with good services carrying big annotations until it holds this many bytes (0: none). */
  manifestBytes: number;
  /** Include every mutation once (else eight chosen by the seed). */
  everyMutation?: boolean;
}

export const CI_OPTIONS: FuzzOptions = { items: 40, hugeBytes: 64 * 1024, manyEndpoints: 10_000, manifestBytes: 0, everyMutation: true };

type Rand = () => number;

function pick<T>(r: Rand, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)]!;
}

function int(r: Rand, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** A good service and its slices, with the fields the expected frontends are computed from. */
interface Template {
  name: string;
  ip4: string;
  ip6: string | undefined;
  /** Service port -> target port, by port name. */
  ports: { name: string; port: number; protocol: 'TCP' | 'UDP'; target: number }[];
  addrs4: string[];
  addrs6: string[];
  /** Whether a family's slice still yields backends. */
  sliceOk: { 4: boolean; 6: boolean };
  svc: Record<string, any>;
  slices: Record<string, any>[];
}

function template(k: number, r: Rand): Template {
  const name = `svc-${k}`;
  const ip4 = `10.96.${(k >> 8) & 255}.${k & 255}`;
  const ip6 = r() < 0.3 ? `fd00:96::${k.toString(16)}` : undefined;
  const ports: Template['ports'] = [{ name: 'http', port: 80, protocol: 'TCP', target: 8080 }];
  if (r() < 0.4) ports.push({ name: 'dns', port: 53, protocol: 'UDP', target: 5353 });
  const n = int(r, 1, 4);
  const addrs4 = Array.from({ length: n }, (_, i) => `10.${100 + ((k >> 8) & 127)}.${k & 255}.${i + 1}`);
  const addrs6 = ip6 ? Array.from({ length: n }, (_, i) => `fd00:244::${k.toString(16)}:${i + 1}`) : [];
  const ips = ip6 ? [ip4, ip6] : [ip4];
  const svc = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: FUZZ_NAMESPACE,
      uid: `00000000-0000-4000-8000-${k.toString(16).padStart(12, '0')}`,
      creationTimestamp: '2025-03-04T09:21:17Z',
      labels: { app: name },
    },
    spec: {
      type: 'ClusterIP',
      clusterIP: ip4,
      clusterIPs: ips,
      ipFamilies: ips.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      ipFamilyPolicy: ip6 ? 'PreferDualStack' : 'SingleStack',
      ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, targetPort: p.target })),
      selector: { app: name },
      sessionAffinity: 'None',
    },
  };
  const sliceOf = (family: 4 | 6, addrs: string[]): Record<string, any> => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${name}-ipv${family}`,
      namespace: FUZZ_NAMESPACE,
      labels: { 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: family === 4 ? 'IPv4' : 'IPv6',
    ports: ports.map((p) => ({ name: p.name, port: p.target, protocol: p.protocol })),
    endpoints: addrs.map((a, i) => ({
      addresses: [a],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: i % 2 === 0 ? 'node-a' : 'node-b',
    })),
  });
  const slices = [sliceOf(4, addrs4)];
  if (ip6) slices.push(sliceOf(6, addrs6));
  return { name, ip4, ip6, ports, addrs4, addrs6, sliceOk: { 4: true, 6: true }, svc, slices };
}

/** The frontends the template is served as, in endpointKey form, each with its `address/port` backends. */
function exact(t: Template): Serve {
  const out: Record<string, string[]> = {};
  for (const [family, ip, addrs] of [
    [4, t.ip4, t.addrs4],
    [6, t.ip6, t.addrs6],
  ] as const) {
    if (ip === undefined) continue;
    for (const p of t.ports) {
      const host = family === 6 ? `[${ip}]` : ip;
      out[`${p.protocol}/${host}:${p.port}`] = t.sliceOk[family] ? addrs.map((a) => `${a}/${p.target}`).sort() : [];
    }
  }
  return { exact: out };
}

function item(label: string, t: Template, rest: Partial<FuzzItem>): FuzzItem {
  return {
    label,
    service: { namespace: FUZZ_NAMESPACE, name: t.name },
    slices: t.slices.flatMap((s) => (typeof s.metadata?.name === 'string' ? [s.metadata.name] : [])),
    docs: [t.svc, ...t.slices],
    manifestOnly: false,
    problems: [],
    serve: exact(t),
    ...rest,
  };
}

function svcProblem(t: Template, field: string, code: ErrorCode): WantedProblem {
  return { kind: 'Service', namespace: FUZZ_NAMESPACE, name: t.name, field, code };
}

function sliceProblem(t: Template, slice: number, field: string, code: ErrorCode): WantedProblem {
  return { kind: 'EndpointSlice', namespace: FUZZ_NAMESPACE, name: t.slices[slice]!.metadata.name, field, code };
}

function docProblem(doc: number, field: string, code: ErrorCode): WantedProblem {
  return { kind: 'Document', namespace: '', name: '', doc, field, code };
}

/** A manifest-only item of one document that is rejected whole, at that document. */
function lone(label: string, t: Template, doc: FuzzItem['docs'][number], field: string, code: ErrorCode, last = false): FuzzItem {
  const problems = [docProblem(0, field, code)];
  return item(label, t, { docs: [doc], slices: [], manifestOnly: true, problems, serve: 'none', ...(last ? { last } : {}) });
}

interface Ctx {
  r: Rand;
  o: FuzzOptions;
  /** The IPv4 cluster IPs of the good services so far, for a newer service to collide with. */
  goodIps: string[];
}

type Mutation = (t: Template, c: Ctx) => FuzzItem;

const huge = (c: Ctx, ch = 'x'): string => ch.repeat(c.o.hugeBytes);

/** Each takes a fresh good template and breaks (or oddly dresses) one thing in it. */
const MUTATIONS: Record<string, Mutation> = {
  // ---- Services the API server would refuse: rejected whole, named by field ----------------------
  'service/ports-wrong-type': (t, { r }) => {
    t.svc.spec.ports = pick(r, ['80', 42, { port: 80 }, true]);
    return item('service/ports-wrong-type', t, { problems: [svcProblem(t, 'spec.ports', ErrorCodes.INVALID_FIELD)], serve: 'none' });
  },
  'service/port-out-of-range': (t, { r }) => {
    t.svc.spec.ports[0].port = pick(r, [0, 65536, -1, 99_999_999]);
    return item('service/port-out-of-range', t, { problems: [svcProblem(t, 'spec.ports[0].port', ErrorCodes.PORT_RANGE)], serve: 'none' });
  },
  'service/port-wrong-type': (t, { r }) => {
    t.svc.spec.ports[0].port = pick(r, ['80', 1.5, true, [80], { value: 80 }]);
    return item('service/port-wrong-type', t, { problems: [svcProblem(t, 'spec.ports[0].port', ErrorCodes.INVALID_FIELD)], serve: 'none' });
  },
  'service/port-missing': (t) => {
    delete t.svc.spec.ports[0].port;
    return item('service/port-missing', t, { problems: [svcProblem(t, 'spec.ports[0].port', ErrorCodes.MISSING_FIELD)], serve: 'none' });
  },
  'service/port-not-object': (t, { r }) => {
    t.svc.spec.ports[0] = pick(r, ['http', 80, null, ['a']]);
    return item('service/port-not-object', t, { problems: [svcProblem(t, 'spec.ports[0]', ErrorCodes.INVALID_FIELD)], serve: 'none' });
  },
  'service/node-port-out-of-range': (t, { r }) => {
    t.svc.spec.type = 'NodePort';
    t.svc.spec.ports[0].nodePort = pick(r, [65536, -5, 100_000]);
    return item('service/node-port-out-of-range', t, {
      problems: [svcProblem(t, 'spec.ports[0].nodePort', ErrorCodes.PORT_RANGE)],
      serve: 'none',
    });
  },
  'service/cluster-ip-bad': (t, c) => {
    const bad = pick(c.r, ['not-an-ip', '10.96.0.300', '010.96.0.1', 'fe80::1%eth0', ' 10.96.0.1', '10.96.0', huge(c, '9')]);
    t.svc.spec.clusterIP = bad;
    t.svc.spec.clusterIPs[0] = bad;
    return item('service/cluster-ip-bad', t, { problems: [svcProblem(t, 'spec.clusterIPs[0]', ErrorCodes.INVALID_IP)], serve: 'none' });
  },
  'service/cluster-ip-v4-mapped': (t) => {
    // Kubernetes refuses IPv4-mapped IPv6 addresses in new objects (1.33): they alias an IPv4 address.
    const mapped = `::ffff:${t.ip4}`;
    t.svc.spec.clusterIP = mapped;
    t.svc.spec.clusterIPs = [mapped];
    t.svc.spec.ipFamilies = ['IPv6'];
    return item('service/cluster-ip-v4-mapped', t, {
      problems: [svcProblem(t, 'spec.clusterIPs[0]', ErrorCodes.INVALID_IP)],
      serve: 'none',
    });
  },
  'service/cluster-ip-missing': (t) => {
    delete t.svc.spec.clusterIP;
    delete t.svc.spec.clusterIPs;
    return item('service/cluster-ip-missing', t, { problems: [svcProblem(t, 'spec.clusterIP', ErrorCodes.MISSING_FIELD)], serve: 'none' });
  },
  'service/cluster-ips-wrong-type': (t, { r }) => {
    t.svc.spec.clusterIPs = pick(r, [t.ip4, 5, { ip: t.ip4 }]);
    return item('service/cluster-ips-wrong-type', t, {
      problems: [svcProblem(t, 'spec.clusterIPs', ErrorCodes.INVALID_FIELD)],
      serve: 'none',
    });
  },
  'service/cluster-ips-duplicate': (t) => {
    t.svc.spec.clusterIPs = [t.ip4, t.ip4];
    t.svc.spec.ipFamilies = ['IPv4', 'IPv4'];
    return item('service/cluster-ips-duplicate', t, {
      problems: [svcProblem(t, 'spec.clusterIPs', ErrorCodes.INVALID_FIELD)],
      serve: 'none',
    });
  },
  'service/spec-wrong-type': (t, { r }) => {
    t.svc.spec = pick(r, ['ClusterIP', 5, [1, 2]]);
    return item('service/spec-wrong-type', t, { problems: [svcProblem(t, 'spec', ErrorCodes.INVALID_FIELD)], serve: 'none' });
  },
  'service/type-bad': (t, c) => {
    t.svc.spec.type = pick(c.r, ['Foo', 5, 'clusterip', huge(c, 'T')]);
    return item('service/type-bad', t, { problems: [svcProblem(t, 'spec.type', ErrorCodes.INVALID_FIELD)], serve: 'none' });
  },
  'service/affinity-timeout-bad': (t, { r }) => {
    t.svc.spec.sessionAffinity = 'ClientIP';
    t.svc.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: pick(r, [0, 86_401, '60', 1.5]) } };
    return item('service/affinity-timeout-bad', t, {
      problems: [svcProblem(t, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', ErrorCodes.INVALID_FIELD)],
      serve: 'none',
    });
  },
  'service/duplicate-port': (t) => {
    t.svc.spec.ports.push({ name: 'http-again', port: t.ports[0]!.port, protocol: 'TCP', targetPort: 8081 });
    const i = t.svc.spec.ports.length - 1;
    return item('service/duplicate-port', t, {
      problems: [svcProblem(t, `spec.ports[${i}].port`, ErrorCodes.INVALID_FIELD)],
      serve: 'none',
    });
  },
  'service/duplicate-port-name': (t) => {
    t.svc.spec.ports.push({ name: 'http', port: 8443, protocol: 'TCP', targetPort: 8443 });
    const i = t.svc.spec.ports.length - 1;
    return item('service/duplicate-port-name', t, {
      problems: [svcProblem(t, `spec.ports[${i}].name`, ErrorCodes.INVALID_FIELD)],
      serve: 'none',
    });
  },
  'service/namespace-wrong-type': (t, { r }) => {
    t.svc.metadata.namespace = pick(r, [5, true]);
    const p = { ...svcProblem(t, 'metadata.namespace', ErrorCodes.INVALID_FIELD), namespace: '' };
    return item('service/namespace-wrong-type', t, { problems: [p], serve: 'none' });
  },
  'service/steals-frontend': (t, c) => {
    // A newer service claiming a good one's frontend loses it; the good one stays served as it was.
    const victim = c.goodIps.length > 0 ? pick(c.r, c.goodIps) : undefined;
    if (!victim) return MUTATIONS['service/port-out-of-range']!(t, c);
    t.svc.metadata.creationTimestamp = '2026-01-01T00:00:00Z';
    t.svc.spec.clusterIP = victim;
    t.svc.spec.clusterIPs = [victim];
    t.svc.spec.ipFamilies = ['IPv4'];
    t.svc.spec.ports.length = 1;
    return item('service/steals-frontend', t, {
      problems: [svcProblem(t, 'spec.ports[0]', ErrorCodes.FRONTEND_CONFLICT)],
      serve: 'none',
    });
  },
  'service/protocol-unsupported': (t, { r }) => {
    // Only the port is dropped, as kube-proxy ignores it; the other ports are served.
    t.svc.spec.ports.push({ name: 'sctp', port: 9, protocol: pick(r, ['SCTP', 'tcp', 'ICMP', 7]), targetPort: 9 });
    const i = t.svc.spec.ports.length - 1;
    return item('service/protocol-unsupported', t, {
      problems: [svcProblem(t, `spec.ports[${i}].protocol`, ErrorCodes.UNSUPPORTED_PROTOCOL)],
    });
  },
  'service/external-ip-bad': (t, { r }) => {
    t.svc.spec.externalIPs = [pick(r, ['bogus', '::ffff:192.0.2.1', '192.0.2.300', 7])];
    return item('service/external-ip-bad', t, { problems: [svcProblem(t, 'spec.externalIPs[0]', ErrorCodes.INVALID_IP)] });
  },
  // ---- Slices with a bad part: the part is skipped and named, the rest served -------------------
  'slice/address-bad': (t, { r }) => {
    const j = int(r, 0, t.addrs4.length - 1);
    const v4 = t.slices[0]!;
    v4.endpoints[j].addresses[0] = pick(r, ['x', '10.244.0.256', 'fd00::1', 5, `::ffff:${t.addrs4[j]}`, '']);
    t.addrs4.splice(j, 1);
    return item('slice/address-bad', t, { problems: [sliceProblem(t, 0, `endpoints[${j}].addresses[0]`, ErrorCodes.INVALID_IP)] });
  },
  'slice/v6-address-v4-mapped': (t, { r }) => {
    if (!t.ip6) return MUTATIONS['slice/address-bad']!(t, { r, o: CI_OPTIONS, goodIps: [] });
    const j = int(r, 0, t.addrs6.length - 1);
    t.slices[1]!.endpoints[j].addresses[0] = `::ffff:${t.addrs4[j]}`;
    t.addrs6.splice(j, 1);
    return item('slice/v6-address-v4-mapped', t, {
      problems: [sliceProblem(t, 1, `endpoints[${j}].addresses[0]`, ErrorCodes.INVALID_IP)],
    });
  },
  'slice/addresses-missing': (t, { r }) => {
    const j = int(r, 0, t.addrs4.length - 1);
    const ep = t.slices[0]!.endpoints[j];
    const bad = pick(r, [undefined, [], 'x', 5]);
    if (bad === undefined) delete ep.addresses;
    else ep.addresses = bad;
    t.addrs4.splice(j, 1);
    const code = bad === undefined || Array.isArray(bad) ? ErrorCodes.MISSING_FIELD : ErrorCodes.INVALID_FIELD;
    return item('slice/addresses-missing', t, { problems: [sliceProblem(t, 0, `endpoints[${j}].addresses`, code)] });
  },
  'slice/endpoint-not-object': (t, { r }) => {
    const j = int(r, 0, t.addrs4.length - 1);
    t.slices[0]!.endpoints[j] = pick(r, ['10.244.0.1', 5, null, [1]]);
    t.addrs4.splice(j, 1);
    return item('slice/endpoint-not-object', t, { problems: [sliceProblem(t, 0, `endpoints[${j}]`, ErrorCodes.INVALID_FIELD)] });
  },
  'slice/endpoints-wrong-type': (t, { r }) => {
    t.slices[0]!.endpoints = pick(r, ['x', 5, { addresses: ['10.244.0.1'] }]);
    t.sliceOk[4] = false;
    return item('slice/endpoints-wrong-type', t, { problems: [sliceProblem(t, 0, 'endpoints', ErrorCodes.INVALID_FIELD)] });
  },
  'slice/port-out-of-range': (t, { r }) => {
    for (const p of t.slices[0]!.ports) p.port = pick(r, [0, 65536]);
    t.sliceOk[4] = false;
    return item('slice/port-out-of-range', t, { problems: [sliceProblem(t, 0, 'ports[0].port', ErrorCodes.PORT_RANGE)] });
  },
  'slice/ports-wrong-type': (t, { r }) => {
    t.slices[0]!.ports = pick(r, ['http', 8080, { port: 8080 }]);
    t.sliceOk[4] = false;
    return item('slice/ports-wrong-type', t, { problems: [sliceProblem(t, 0, 'ports', ErrorCodes.INVALID_FIELD)] });
  },
  'slice/address-type-bad': (t, { r }) => {
    const bad = pick(r, ['IPv5', 5, null, 'ipv4']);
    if (bad === null) delete t.slices[0]!.addressType;
    else t.slices[0]!.addressType = bad;
    t.sliceOk[4] = false;
    const code = bad === null ? ErrorCodes.MISSING_FIELD : ErrorCodes.INVALID_FIELD;
    return item('slice/address-type-bad', t, { problems: [sliceProblem(t, 0, 'addressType', code)] });
  },
  // ---- Harmless oddities: served exactly as the template, no problem ----------------------------
  'odd/unknown-fields': (t, c) => {
    t.svc.surprise = { nested: [1, 'two', { three: 3 }] };
    t.svc.spec.futureField = huge(c, 'f');
    t.svc.spec.ports[0].appProtocol = 'kubernetes.io/h2c';
    t.svc.spec.ports[0].extra = [null, true];
    const s = t.slices[0]!;
    s.extra = 42;
    s.endpoints[0].conditions.alsoUnknown = 'yes';
    s.endpoints[0].deprecatedTopology = { 'kubernetes.io/hostname': 'node-a' };
    return item('odd/unknown-fields', t, {});
  },
  'odd/huge-metadata': (t, c) => {
    t.svc.metadata.annotations = { 'example.com/huge': huge(c, 'a') };
    t.svc.metadata.labels.big = huge(c, 'l');
    t.slices[0]!.metadata.annotations = { 'endpoints.kubernetes.io/last-change-trigger-time': huge(c, 'z') };
    return item('odd/huge-metadata', t, {});
  },
  'odd/bad-creation-timestamp': (t, { r }) => {
    // Unreadable timestamps only matter to frontend conflicts, where such a service counts as newest.
    t.svc.metadata.creationTimestamp = pick(r, ['garbage', 5, { when: 'now' }, '2025-13-45T99:99:99Z']);
    return item('odd/bad-creation-timestamp', t, {});
  },
  'odd/duplicate-endpoints': (t) => {
    const s = t.slices[0]!;
    s.endpoints.push(structuredClone(s.endpoints[0]));
    const copy = structuredClone(s);
    copy.metadata.name = `${t.name}-copy`;
    t.slices.push(copy);
    return item('odd/duplicate-endpoints', t, {});
  },
  'odd/no-endpoints': (t, { r }) => {
    if (r() < 0.5) delete t.slices[0]!.endpoints;
    else t.slices[0]!.endpoints = [];
    t.addrs4 = [];
    return item('odd/no-endpoints', t, {});
  },
  'odd/orphan-slice': (t, { r }) => {
    // A slice of a service that does not exist (here), as during a delete: ignored, never a problem.
    const orphan = structuredClone(t.slices[0]!);
    orphan.metadata.name = `${t.name}-orphan`;
    if (r() < 0.5) orphan.metadata.labels['kubernetes.io/service-name'] = `${t.name}-gone`;
    else orphan.metadata.namespace = `${FUZZ_NAMESPACE}-elsewhere`;
    orphan.endpoints[0].addresses = ['10.250.0.1'];
    t.slices.push(orphan);
    return item('odd/orphan-slice', t, {});
  },
  'odd/no-slices': (t) => {
    t.slices = [];
    t.addrs4 = [];
    t.addrs6 = [];
    return item('odd/no-slices', t, {});
  },
  // ---- Manifest only: what an API server would refuse to store, and YAML itself ----------------
  'manifest/name-missing': (t, { r }) => {
    const how = pick(r, ['no-name', 'empty', 'no-metadata', 'null-metadata']);
    if (how === 'no-name') delete t.svc.metadata.name;
    else if (how === 'empty') t.svc.metadata.name = '';
    else t.svc.metadata = how === 'no-metadata' ? undefined : null;
    return lone('manifest/name-missing', t, t.svc, 'metadata.name', ErrorCodes.MISSING_FIELD);
  },
  'manifest/name-wrong-type': (t, { r }) => {
    t.svc.metadata.name = pick(r, [5, true, ['a'], { n: 1 }]);
    return lone('manifest/name-wrong-type', t, t.svc, 'metadata.name', ErrorCodes.INVALID_FIELD);
  },
  'manifest/name-too-long': (t, c) => {
    if (c.r() < 0.5) t.svc.metadata.name = huge(c, 'n');
    else t.svc.metadata.namespace = 'n'.repeat(64);
    const field = typeof t.svc.metadata.name === 'string' && t.svc.metadata.name.length > 253 ? 'metadata.name' : 'metadata.namespace';
    return lone('manifest/name-too-long', t, t.svc, field, ErrorCodes.INVALID_FIELD);
  },
  'manifest/metadata-wrong-type': (t, { r }) => {
    t.slices[0]!.metadata = pick(r, ['web', 5, ['a']]);
    t.sliceOk[4] = false;
    return item('manifest/metadata-wrong-type', t, {
      manifestOnly: true,
      problems: [docProblem(1, 'metadata', ErrorCodes.INVALID_FIELD)],
    });
  },
  'manifest/duplicate-name': (t, { r }) => {
    // The later document wins: a broken first version must not leave a trace but the repeat itself.
    const first = structuredClone(t.svc);
    first.spec.ports[0].port = pick(r, [0, 65536]);
    const out = item('manifest/duplicate-name', t, {
      manifestOnly: true,
      problems: [docProblem(1, 'metadata.name', ErrorCodes.INVALID_FIELD)],
    });
    out.docs = [first, ...out.docs];
    return out;
  },
  'manifest/not-an-object': (t, { r }) => {
    const text = pick(r, ['- just\n- a list\n', 'a plain string\n', '42\n', '"quoted"\n']);
    return lone('manifest/not-an-object', t, text, '', ErrorCodes.MANIFEST_KIND);
  },
  'manifest/other-kind': (t, { r }) => {
    t.svc.kind = pick(r, ['ConfigMap', 'Endpoints', 'service']);
    return lone('manifest/other-kind', t, t.svc, '', ErrorCodes.MANIFEST_KIND);
  },
  'manifest/anchors-and-aliases': (t) => {
    // Anchors, aliases and `<<` merge keys, as kubectl (go-yaml, YAML 1.1) reads them.
    const ports = t.ports.map((p) => `  - {name: ${p.name}, port: ${p.port}, protocol: ${p.protocol}, targetPort: ${p.target}}`).join('\n');
    const ips = t.ip6 ? `[${t.ip4}, "${t.ip6}"]` : `[${t.ip4}]`;
    const fams = t.ip6 ? '[IPv4, IPv6]' : '[IPv4]';
    const svc = `apiVersion: v1
kind: Service
metadata: {name: ${t.name}, namespace: ${FUZZ_NAMESPACE}, labels: &labels {app: ${t.name}}}
defaults: &defaults
  type: ClusterIP
  ports:
${ports}
spec:
  <<: *defaults
  clusterIP: &ip ${t.ip4}
  clusterIPs: ${ips}
  ipFamilies: ${fams}
  selector: *labels
`;
    const slicePorts = t.ports.map((p) => `{name: ${p.name}, port: ${p.target}, protocol: ${p.protocol}}`).join(', ');
    const eps = t.addrs4.map((a, i) =>
      i === 0 ? `  - &ep {addresses: ["${a}"], conditions: &ready {ready: true, serving: true}}` : `  - {<<: *ep, addresses: ["${a}"]}`,
    );
    const slice = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: &name ${t.slices[0]!.metadata.name}
  namespace: ${FUZZ_NAMESPACE}
  labels: {kubernetes.io/service-name: ${t.name}}
  annotations: {copy-of-name: *name}
addressType: IPv4
ports: [${slicePorts}]
endpoints:
${eps.join('\n')}
`;
    const docs: (string | Record<string, unknown>)[] = [svc, slice, ...t.slices.slice(1)];
    return item('manifest/anchors-and-aliases', t, { docs, manifestOnly: true });
  },
  'manifest/alias-bomb': (t) => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (const [i, c] of [...'bcdefgh'].entries()) rows.push(`${c}: &${c} [${Array(10).fill(`*${'abcdefg'[i]}`).join(', ')}]`);
    const text = `apiVersion: v1\nkind: Service\nmetadata: {name: ${t.name}, namespace: ${FUZZ_NAMESPACE}}\nbomb:\n  ${rows.join('\n  ')}\n`;
    return lone('manifest/alias-bomb', t, text, '', ErrorCodes.MANIFEST_SYNTAX);
  },
  'manifest/deep-nesting': (t, { r }) => {
    const depth = pick(r, [2_000, 20_000]);
    const text = `apiVersion: v1\nkind: Service\nmetadata: {name: ${t.name}}\nspec: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
    return lone('manifest/deep-nesting', t, text, '', ErrorCodes.MANIFEST_SYNTAX);
  },
  'manifest/truncated': (t) => {
    const text = `apiVersion: v1\nkind: Service\nmetadata: {name: "${t.name}", namespace: ${FUZZ_NAMESPACE}, labels: {app: `;
    return lone('manifest/truncated', t, text, '', ErrorCodes.MANIFEST_SYNTAX, true);
  },
};

export const MUTATION_NAMES = Object.keys(MUTATIONS);

/** Random damage at a random path: only "no crash, and served or named by a problem" is demanded. */
const HAVOC_SERVICE_PATHS = [
  'spec',
  'spec.type',
  'spec.clusterIP',
  'spec.clusterIPs',
  'spec.clusterIPs.0',
  'spec.ipFamilies',
  'spec.ipFamilies.0',
  'spec.ports',
  'spec.ports.0',
  'spec.ports.0.port',
  'spec.ports.0.name',
  'spec.ports.0.protocol',
  'spec.ports.0.nodePort',
  'spec.ports.0.targetPort',
  'spec.sessionAffinity',
  'spec.sessionAffinityConfig',
  'spec.sessionAffinityConfig.clientIP',
  'spec.externalIPs',
  'spec.externalTrafficPolicy',
  'spec.internalTrafficPolicy',
  'spec.healthCheckNodePort',
  'spec.publishNotReadyAddresses',
  'status',
  'status.loadBalancer',
  'status.loadBalancer.ingress',
  'status.loadBalancer.ingress.0',
  'status.loadBalancer.ingress.0.ip',
  'metadata.creationTimestamp',
  'metadata.annotations',
  'metadata.labels',
  'metadata.labels.app',
];
const HAVOC_SLICE_PATHS = [
  'addressType',
  'ports',
  'ports.0',
  'ports.0.port',
  'ports.0.name',
  'ports.0.protocol',
  'endpoints',
  'endpoints.0',
  'endpoints.0.addresses',
  'endpoints.0.addresses.0',
  'endpoints.0.conditions',
  'endpoints.0.conditions.ready',
  'endpoints.0.conditions.terminating',
  'endpoints.0.nodeName',
  'endpoints.0.hints',
  'endpoints.0.hints.forZones',
  'endpoints.0.hints.forNodes',
  'metadata.annotations',
  'metadata.labels',
];

function havocValue(c: Ctx): unknown {
  return pick(c.r, [
    null,
    0,
    -1,
    65_536,
    1.5,
    1e300,
    '',
    'x',
    'TCP',
    'Local',
    'LoadBalancer',
    'NodePort',
    '10.0.0.1',
    '::ffff:10.0.0.1',
    'fd00::1',
    huge(c, 'h'),
    true,
    [],
    {},
    [1, 'a', null],
    { a: { b: [] } },
  ]);
}

/** Sets obj[path] (dots separate keys; numeric keys index arrays), creating objects on the way. */
function setPath(obj: Record<string, any>, path: string, value: unknown): void {
  const keys = path.split('.');
  let at: any = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== 'object' || at[k] === null) at[k] = {};
    at = at[k];
  }
  at[keys.at(-1)!] = value;
}

function havoc(t: Template, c: Ctx): FuzzItem {
  const n = int(c.r, 1, 3);
  const where: string[] = [];
  for (let i = 0; i < n; i++) {
    const onSlice = c.r() < 0.4 && t.slices.length > 0;
    const path = pick(c.r, onSlice ? HAVOC_SLICE_PATHS : HAVOC_SERVICE_PATHS);
    const value = havocValue(c);
    setPath(onSlice ? t.slices[0]! : t.svc, path, value);
    const shown = typeof value === 'string' && value.length > 20 ? `<${value.length} chars>` : JSON.stringify(value);
    where.push(`${onSlice ? 'slice' : 'service'}.${path}=${shown}`);
  }
  return item(`havoc ${where.join(' ')}`, t, { serve: 'either' });
}

/** One big slice (10,000 endpoints): served up to the per-service limit, with a problem naming the port. */
function manyEndpoints(t: Template, count: number, max: number): FuzzItem {
  t.ports.length = 1;
  t.svc.spec.ports.length = 1;
  const s = t.slices[0]!;
  s.ports.length = 1;
  const template = s.endpoints[0];
  t.addrs4 = Array.from({ length: count }, (_, i) => `10.200.${i >> 8}.${i & 255}`);
  s.endpoints = t.addrs4.map((a) => ({ ...structuredClone(template), addresses: [a] }));
  // desired() keeps the first `max` by address; these addresses sort in index order.
  t.addrs4 = t.addrs4.slice(0, max);
  return item('odd/many-endpoints', t, { problems: [svcProblem(t, 'spec.ports[0]', ErrorCodes.TOO_MANY_BACKENDS)] });
}

export const MAX_BACKENDS = 1024;

/** A case: `o.items` mutated or odd items, good services in between, from one seed. */
export function generateCase(seed: number, o: FuzzOptions): FuzzCase {
  const r = rng(seed);
  const c: Ctx = { r, o, goodIps: [] };
  const items: FuzzItem[] = [];
  let k = 1;
  if (o.manyEndpoints > 0) items.push(manyEndpoints(template(k++, r), o.manyEndpoints, MAX_BACKENDS));
  for (let i = 0; i < o.items; i++) {
    if (r() < 0.3) {
      const good = template(k++, r);
      c.goodIps.push(good.ip4);
      items.push(item('good', good, {}));
    }
    const t = template(k++, r);
    items.push(r() < 0.25 ? havoc(t, c) : MUTATIONS[pick(r, MUTATION_NAMES)]!(t, c));
  }
  // Every mutation once (CI), or a seed-chosen eight, so a long run covers all of them often.
  const first = seed % MUTATION_NAMES.length;
  const extra = o.everyMutation ? MUTATION_NAMES.length : Math.min(8, MUTATION_NAMES.length);
  for (let i = 0; i < extra; i++) {
    const name = MUTATION_NAMES[(first + i * (o.everyMutation ? 1 : 7)) % MUTATION_NAMES.length]!;
    items.push(MUTATIONS[name]!(template(k++, r), c));
  }
  // Only one document can be cut off at the end of the file: keep the last truncated item.
  const truncated = items.filter((i) => i.last);
  for (const extra of truncated.slice(0, -1)) items.splice(items.indexOf(extra), 1);
  if (o.manifestBytes > 0) {
    // Good services carrying 1 MB annotations until the manifest is about the size asked for.
    const chunk = Math.min(1 << 20, o.manifestBytes);
    for (let bytes = 0; bytes < o.manifestBytes; bytes += chunk) {
      const t = template(k++, r);
      t.svc.metadata.annotations = { 'example.com/padding': 'p'.repeat(chunk) };
      items.push(item('good/padded', t, { manifestOnly: true }));
    }
  }
  return { seed, items, crlf: r() < 0.3 };
}
