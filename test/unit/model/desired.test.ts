import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../../../src/errors.ts';
import { type DesiredOptions, desired } from '../../../src/model/desired.ts';
import { formatFrontend } from '../../../src/model/format.ts';
import type { DesiredTable } from '../../../src/model/types.ts';

// Builders for the objects the API server would hand us; fields beyond the ones a test cares about
// take the values a plain ClusterIP service has.
interface SvcOpts {
  ns?: string;
  ip?: string | string[] | null;
  ports?: unknown;
  labels?: Record<string, string>;
  type?: string;
  created?: string;
  itp?: string;
  families?: string[];
}

function svc(name: string | undefined, o: SvcOpts = {}): V1Service {
  const ips = o.ip === undefined ? ['10.96.0.10'] : o.ip === null ? [] : Array.isArray(o.ip) ? o.ip : [o.ip];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: o.ns ?? 'default', labels: o.labels, creationTimestamp: o.created },
    spec: {
      type: o.type,
      clusterIP: ips[0],
      clusterIPs: ips.length ? ips : undefined,
      ipFamilies: o.families,
      internalTrafficPolicy: o.itp,
      ports: o.ports === undefined ? [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' }] : o.ports,
    },
  } as unknown as V1Service;
}

interface Ep {
  addresses: unknown[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  nodeName?: string;
}

function ep(address: string, conditions?: Ep['conditions'], nodeName?: string): Ep {
  return { addresses: [address], conditions, nodeName };
}

function slice(name: string, service: string, endpoints: Ep[], o: { ns?: string; type?: string; ports?: unknown[] } = {}): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: o.ns ?? 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: o.type ?? 'IPv4',
    ports: o.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
  } as unknown as V1EndpointSlice;
}

const node = { name: 'node-a' };

function lines(table: DesiredTable): string[] {
  return table.frontends.map(formatFrontend);
}

function run(services: V1Service[], slices: V1EndpointSlice[] = [], options?: DesiredOptions): DesiredTable {
  return desired(services, slices, node, options);
}

function problemsOf(table: DesiredTable): string[] {
  return table.problems.map((p) => `${p.code} ${p.kind} ${p.namespace}/${p.name} ${p.field}`);
}

test('a plain ClusterIP service balances over its ready endpoints', () => {
  const t = run([svc('web')], [slice('web-1', 'web', [ep('10.244.0.12'), ep('10.244.0.11')])]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080 10.244.0.12:8080']);
  assert.equal(t.problems, []);
  assert.equal(t.frontends[0]?.backends[0], { family: 4, address: '10.244.0.11', port: 8080, protocol: 'TCP' });
});

test('headless services (clusterIP None, clusterIPs [None], headless label) are skipped without problems', () => {
  const none = svc('a', { ip: 'None' });
  const noneList = svc('b', { ip: ['None'] });
  const labelled = svc('c', { ip: '10.96.0.12', labels: { 'service.kubernetes.io/headless': '' } });
  const t = run([none, noneList, labelled, svc('web', { ip: '10.96.0.13' })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.13:80 default/web:http -> (no backends)']);
  assert.equal(t.problems, []);
});

test('ExternalName services are skipped', () => {
  const t = run([svc('ext', { type: 'ExternalName', ip: null, ports: [] })]);
  assert.equal(t, { frontends: [], problems: [], healthChecks: [] });
});

test('services labelled with service-proxy-name (any value) belong to another proxy and are skipped', () => {
  const t = run([
    svc('other', { labels: { 'service.kubernetes.io/service-proxy-name': 'elsewhere' } }),
    svc('empty', { ip: '10.96.0.11', labels: { 'service.kubernetes.io/service-proxy-name': '' } }),
  ]);
  assert.equal(t, { frontends: [], problems: [], healthChecks: [] });
});

test('dual-stack: one frontend per family, each with backends of its own family, IPv6 canonical', () => {
  const s = svc('dns', { ip: ['10.96.0.10', 'FD00:0:0::A'], families: ['IPv4', 'IPv6'] });
  const t = run([s], [slice('dns-v4', 'dns', [ep('10.244.0.5')]), slice('dns-v6', 'dns', [ep('FD00:244::5')], { type: 'IPv6' })]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/dns:http -> 10.244.0.5:8080',
    'ClusterIP TCP/[fd00::a]:80 default/dns:http -> [fd00:244::5]:8080',
  ]);
  assert.is(t.frontends[1]?.frontend.family, 6);
});

test('ipFamilies that disagree with the addresses reject the service', () => {
  const t = run([svc('bad', { ip: ['10.96.0.10', 'fd00::a'], families: ['IPv6', 'IPv4'] }), svc('ok', { ip: '10.96.0.11' })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/ok:http -> (no backends)']);
  assert.equal(problemsOf(t), [
    `${ErrorCodes.INVALID_IP} Service default/bad spec.clusterIPs[0]`,
    `${ErrorCodes.INVALID_IP} Service default/bad spec.clusterIPs[1]`,
  ]);
});

test('each service port is its own frontend, matched to the slice port of the same name', () => {
  const ports = [
    { name: 'http', port: 80, targetPort: 'web' },
    { name: 'metrics', port: 9090, targetPort: 9091 },
  ];
  const slicePorts = [
    { name: 'metrics', port: 9091, protocol: 'TCP' },
    { name: 'http', port: 8080, protocol: 'TCP' },
  ];
  const t = run([svc('web', { ports })], [slice('web-1', 'web', [ep('10.244.0.11')], { ports: slicePorts })]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080',
    'ClusterIP TCP/10.96.0.10:9090 default/web:metrics -> 10.244.0.11:9091',
  ]);
});

test('TCP and UDP on the same port are distinct frontends with their own slice ports', () => {
  const ports = [
    { name: 'dns', port: 53, protocol: 'UDP' },
    { name: 'dns-tcp', port: 53, protocol: 'TCP' },
  ];
  const slicePorts = [
    { name: 'dns', port: 5353, protocol: 'UDP' },
    { name: 'dns-tcp', port: 5354, protocol: 'TCP' },
  ];
  const t = run([svc('dns', { ports })], [slice('dns-1', 'dns', [ep('10.244.0.5')], { ports: slicePorts })]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:53 default/dns:dns-tcp -> 10.244.0.5:5354',
    'ClusterIP UDP/10.96.0.10:53 default/dns:dns -> 10.244.0.5:5353',
  ]);
  assert.is(t.frontends[1]?.backends[0]?.protocol, 'UDP');
});

test('a named targetPort resolves per slice: pods in different slices may listen on different ports', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-old', 'web', [ep('10.244.0.11')], { ports: [{ name: 'http', port: 8080 }] }),
      slice('web-new', 'web', [ep('10.244.0.12')], { ports: [{ name: 'http', port: 8443 }] }),
      // A slice port with another name (or protocol) is not this service port's.
      slice('web-x', 'web', [ep('10.244.0.13')], {
        ports: [
          { name: 'admin', port: 9000 },
          { name: 'http', port: 80, protocol: 'UDP' },
        ],
      }),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080 10.244.0.12:8443']);
});

test('an unnamed service port matches the unnamed slice port', () => {
  const t = run([svc('web', { ports: [{ port: 80 }] })], [slice('web-1', 'web', [ep('10.244.0.11')], { ports: [{ port: 8080 }] })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web -> 10.244.0.11:8080']);
  assert.is(t.frontends[0]?.portName, '');
});

test('a slice port with a null port contributes no backends', () => {
  const t = run(
    [svc('web')],
    [slice('web-1', 'web', [ep('10.244.0.11')], { ports: [{ name: 'http', port: null }] }), slice('web-2', 'web', [ep('10.244.0.12')])],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.12:8080']);
  assert.equal(t.problems, []);
});

test('only ready endpoints are used (a missing ready counts as ready)', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-1', 'web', [
        ep('10.244.0.11', { ready: true }),
        ep('10.244.0.12', { ready: false, serving: true, terminating: true }),
        ep('10.244.0.13'),
        ep('10.244.0.14', { ready: false }),
      ]),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080 10.244.0.13:8080']);
});

test('with no ready endpoint, serving and terminating endpoints take the traffic', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-1', 'web', [
        ep('10.244.0.11', { ready: false, serving: true, terminating: true }),
        ep('10.244.0.12', { ready: false, serving: false, terminating: true }),
        ep('10.244.0.13', { ready: false, serving: true }),
        ep('10.244.0.14', { ready: false, terminating: true }),
      ]),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080 10.244.0.14:8080']);
});

test('a service without usable endpoints keeps its frontends with no backends', () => {
  const t = run([svc('web'), svc('idle', { ip: '10.96.0.11' })], [slice('web-1', 'web', [ep('10.244.0.11', { ready: false })])]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 default/web:http -> (no backends)',
    'ClusterIP TCP/10.96.0.11:80 default/idle:http -> (no backends)',
  ]);
  assert.equal(t.frontends[0]?.backends, []);
});

test('FQDN slices are ignored', () => {
  const fqdn = slice('web-f', 'web', [{ addresses: ['web.example.com'] }], { type: 'FQDN' });
  const t = run([svc('web')], [fqdn]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> (no backends)']);
  assert.equal(t.problems, []);
});

test('backends come from every slice of the service (same namespace only), deduplicated and sorted', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-b', 'web', [ep('10.244.0.10'), ep('10.244.1.2')]),
      slice('web-a', 'web', [ep('10.244.0.9'), ep('10.244.0.10')]),
      slice('web-c', 'web', [ep('10.244.9.9')], { ns: 'other' }),
      slice('api-1', 'api', [ep('10.244.8.8')]),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.9:8080 10.244.0.10:8080 10.244.1.2:8080']);
});

test('internalTrafficPolicy Local keeps only endpoints on this node', () => {
  const t = run(
    [svc('web', { itp: 'Local' })],
    [slice('web-1', 'web', [ep('10.244.0.11', {}, 'node-a'), ep('10.244.1.11', {}, 'node-b'), ep('10.244.2.11')])],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080']);
});

test('an invalid clusterIP names the field; other services still appear', () => {
  const t = run([svc('bad', { ip: '010.1.1.1' }), svc('ok', { ip: '10.96.0.11' }), svc('zone', { ip: 'fe80::1%eth0' })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/ok:http -> (no backends)']);
  assert.equal(problemsOf(t), [
    `${ErrorCodes.INVALID_IP} Service default/bad spec.clusterIPs[0]`,
    `${ErrorCodes.INVALID_IP} Service default/zone spec.clusterIPs[0]`,
  ]);
  const single = run([{ metadata: { name: 'x', namespace: 'default' }, spec: { clusterIP: '1.2.3', ports: [{ port: 80 }] } }]);
  assert.equal(problemsOf(single), [`${ErrorCodes.INVALID_IP} Service default/x spec.clusterIP`]);
});

test('a port out of range or not an integer rejects the whole service, naming the field', () => {
  const ports = [
    { name: 'a', port: 80 },
    { name: 'b', port: 70000 },
    { name: 'c', port: 8.5 },
  ];
  const t = run([svc('bad', { ports }), svc('ok', { ip: '10.96.0.11' })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/ok:http -> (no backends)']);
  assert.equal(problemsOf(t), [
    `${ErrorCodes.PORT_RANGE} Service default/bad spec.ports[1].port`,
    `${ErrorCodes.INVALID_FIELD} Service default/bad spec.ports[2].port`,
  ]);
});

test('a missing ports list, name or namespace is a MISSING_FIELD problem', () => {
  const noPorts = svc('noports', { ports: null });
  const noName = svc(undefined, { ip: '10.96.0.12' });
  const noNs = svc('nons', { ip: '10.96.0.13' });
  delete (noNs.metadata as { namespace?: string }).namespace;
  const t = run([noPorts, noName, noNs, svc('ok', { ip: '10.96.0.11' })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/ok:http -> (no backends)']);
  assert.equal(problemsOf(t), [
    `${ErrorCodes.MISSING_FIELD} Service /nons metadata.namespace`,
    `${ErrorCodes.MISSING_FIELD} Service default/ metadata.name`,
    `${ErrorCodes.MISSING_FIELD} Service default/noports spec.ports`,
  ]);
});

test('a spec that is not an object is named as such, not by the fields it lacks', () => {
  const bad = svc('bad');
  (bad as { spec: unknown }).spec = 'ClusterIP';
  const t = run([bad, svc('ok', { ip: '10.96.0.11' })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.11:80 default/ok:http -> (no backends)']);
  assert.equal(problemsOf(t), [`${ErrorCodes.INVALID_FIELD} Service default/bad spec`]);
});

test('a huge value is quoted cut short in a problem message', () => {
  const t = run([svc('bad', { ip: '9'.repeat(100_000) })]);
  const message = t.problems[0]?.message ?? '';
  assert.ok(message.length < 300, `${message.length} characters`);
  assert.match(message, '(100002 characters)');
});

test('an unsupported protocol drops only that port', () => {
  const ports = [
    { name: 'sctp', port: 3868, protocol: 'SCTP' },
    { name: 'http', port: 80 },
  ];
  const t = run([svc('web', { ports })]);
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> (no backends)']);
  assert.equal(problemsOf(t), [`${ErrorCodes.UNSUPPORTED_PROTOCOL} Service default/web spec.ports[0].protocol`]);
});

test('duplicate ports reject the service', () => {
  const ports = [
    { name: 'a', port: 80 },
    { name: 'b', port: 80 },
  ];
  const t = run([svc('dup', { ports })]);
  assert.equal(lines(t), []);
  assert.equal(problemsOf(t), [`${ErrorCodes.INVALID_FIELD} Service default/dup spec.ports[1].port`]);
});

test('a bad endpoint address or slice port is skipped with a problem; the rest of the slice is used', () => {
  const t = run(
    [svc('web')],
    [
      slice('web-1', 'web', [
        ep('10.244.0.11'),
        ep('10.244.0.300'),
        ep('fd00::1'),
        { addresses: [] },
        { addresses: '10.244.0.13' as never },
      ]),
      slice('web-2', 'web', [ep('10.244.0.12')], { ports: [{ name: 'http', port: 0 }] }),
    ],
  );
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080']);
  assert.equal(problemsOf(t), [
    `${ErrorCodes.INVALID_IP} EndpointSlice default/web-1 endpoints[1].addresses[0]`,
    `${ErrorCodes.INVALID_IP} EndpointSlice default/web-1 endpoints[2].addresses[0]`,
    `${ErrorCodes.MISSING_FIELD} EndpointSlice default/web-1 endpoints[3].addresses`,
    `${ErrorCodes.INVALID_FIELD} EndpointSlice default/web-1 endpoints[4].addresses`,
    `${ErrorCodes.PORT_RANGE} EndpointSlice default/web-2 ports[0].port`,
  ]);
});

test('two services claiming one frontend: the older one wins whatever the input order', () => {
  const young = svc('a-young', { created: '2024-05-01T00:00:00Z' });
  const old = svc('z-old', {
    created: '2023-01-01T00:00:00Z',
    ports: [
      { name: 'http', port: 80 },
      { name: 'x', port: 81 },
    ],
  });
  for (const order of [
    [young, old],
    [old, young],
  ]) {
    const t = run(order);
    assert.equal(lines(t), [
      'ClusterIP TCP/10.96.0.10:80 default/z-old:http -> (no backends)',
      'ClusterIP TCP/10.96.0.10:81 default/z-old:x -> (no backends)',
    ]);
    assert.equal(problemsOf(t), [`${ErrorCodes.FRONTEND_CONFLICT} Service default/a-young spec.ports[0]`]);
    assert.match(t.problems[0]?.message ?? '', 'default/z-old');
  }
});

test('a conflict between services without timestamps goes to the first by namespace/name; the loser keeps its other frontends', () => {
  const a = svc('a', { ns: 'beta', ip: ['10.96.0.10', 'fd00::10'] });
  const b = svc('b', { ns: 'alpha' });
  const t = run([a, b]);
  assert.equal(lines(t), [
    'ClusterIP TCP/10.96.0.10:80 alpha/b:http -> (no backends)',
    'ClusterIP TCP/[fd00::10]:80 beta/a:http -> (no backends)',
  ]);
  assert.equal(problemsOf(t), [`${ErrorCodes.FRONTEND_CONFLICT} Service beta/a spec.ports[0]`]);
});

test('more backends than maxBackendsPerService: the first N by address are kept, with a problem', () => {
  const t = run([svc('web')], [slice('web-1', 'web', [ep('10.244.0.3'), ep('10.244.0.1'), ep('10.244.0.2')])], {
    maxBackendsPerService: 2,
  });
  assert.equal(lines(t), ['ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.1:8080 10.244.0.2:8080']);
  assert.equal(
    problemsOf(t),
    [`${ErrorCodes.TOO_MANY_BACKENDS} Service default/web spec.ports[0]`],
    'names the port whose frontend is cut',
  );
  assert.throws(() => run([], [], { maxBackendsPerService: 0 }), RangeError);
  assert.throws(() => run([], [], { maxBackendsPerService: 1.5 }), RangeError);
});

test('the table does not depend on input order, and equal input gives an equal table', () => {
  const services = [
    svc('b', { ip: '10.96.0.2' }),
    svc('a', { ip: '10.96.0.1', ports: [{ name: 'http', port: 70000 }] }),
    svc('c', { ip: '10.96.0.3' }),
  ];
  const slices = [
    slice('b-1', 'b', [ep('10.244.0.2'), ep('bad')]),
    slice('c-1', 'c', [ep('10.244.0.3')]),
    slice('b-2', 'b', [ep('10.244.0.1')]),
  ];
  const first = run(services, slices);
  const reversed = run([...services].reverse(), [...slices].reverse());
  assert.equal(reversed, first);
  assert.equal(run(services, slices), first);
  assert.is(first.frontends.length, 2);
});

test('objects too malformed to read are problems, not exceptions', () => {
  const junk = [
    null,
    'x',
    { metadata: 'x', spec: 7 },
    { metadata: { name: 'y', namespace: 'default' }, spec: { clusterIPs: '10.0.0.1', ports: {} } },
  ];
  const t = run(
    junk as unknown as V1Service[],
    [null, { metadata: { namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } } }] as unknown as V1EndpointSlice[],
  );
  assert.equal(t.frontends, []);
  assert.ok(t.problems.length >= 4);
});

test.run();
