// Node objects in, node addresses out; an endpoint's nodeName through them to the backend's node
// address, and that to the bytes of the backend's map entry (struct lb4_backend, lb6_backend).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, Layouts } from '../../../src/datapath/abi.ts';
import { backendValue } from '../../../src/datapath/kernel-maps.ts';
import { MemoryMaps } from '../../../src/datapath/maps.ts';
import { ErrorCodes } from '../../../src/errors.ts';
import { desired } from '../../../src/model/desired.ts';
import { nodeAddressBook, nodeAddressOf, readNode, sameBook } from '../../../src/model/node-read.ts';
import type { Backend } from '../../../src/model/types.ts';
import { Reconciler } from '../../../src/reconcile/reconciler.ts';

function node(name: string, addresses: unknown): object {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'topology.kubernetes.io/zone': 'z1' } }, status: { addresses } };
}

test('readNode: InternalIP before ExternalIP, canonical, deduplicated; other types skipped', () => {
  const r = readNode(
    node('n1', [
      { type: 'Hostname', address: 'n1' },
      { type: 'ExternalIP', address: '203.0.113.1' },
      { type: 'InternalIP', address: 'FD00:0:0::1' },
      { type: 'InternalIP', address: '192.168.0.1' },
      { type: 'InternalIP', address: '192.168.0.1' },
    ]),
  );
  assert.equal(r, { name: 'n1', zone: 'z1', addresses: ['fd00::1', '192.168.0.1', '203.0.113.1'], problems: [] });
});

test('readNode: a bad address is a problem naming the node and index; the other addresses still count', () => {
  const r = readNode(
    node('n2', [
      { type: 'InternalIP', address: '10.0.0.300' },
      { type: 'InternalIP', address: 42 },
      { type: 'ExternalIP', address: '198.51.100.2' },
    ]),
  );
  assert.equal(r.addresses, ['198.51.100.2']);
  assert.equal(
    r.problems.map((p) => [p.kind, p.name, p.field, p.code]),
    [
      ['Node', 'n2', 'status.addresses[0].address', ErrorCodes.INVALID_IP],
      ['Node', 'n2', 'status.addresses[1].address', ErrorCodes.INVALID_IP],
    ],
  );
});

test('readNode: addresses that are no list, and a Node without a name, are reported', () => {
  const listless = readNode(node('n3', { type: 'InternalIP' }));
  assert.equal(listless.addresses, []);
  assert.equal(
    listless.problems.map((p) => [p.name, p.field, p.code]),
    [['n3', 'status.addresses', ErrorCodes.INVALID_FIELD]],
  );
  const nameless = readNode({ kind: 'Node', metadata: {}, status: { addresses: [] } });
  assert.is(nameless.name, undefined);
  assert.equal(
    nameless.problems.map((p) => [p.field, p.code]),
    [['metadata.name', ErrorCodes.MISSING_FIELD]],
  );
  assert.equal(readNode(node('n4', undefined)), { name: 'n4', zone: 'z1', addresses: [], problems: [] });
});

test('nodeAddressOf picks the first address of the family; sameBook compares books', () => {
  const addresses = ['fd00::1', '192.168.0.1', '203.0.113.1', 'fd00::2'];
  assert.is(nodeAddressOf(addresses, 4), '192.168.0.1');
  assert.is(nodeAddressOf(addresses, 6), 'fd00::1');
  assert.is(nodeAddressOf(['192.168.0.1'], 6), undefined);
  assert.is(nodeAddressOf(undefined, 4), undefined);
  const { book } = nodeAddressBook([node('a', [{ type: 'InternalIP', address: '10.0.0.1' }])]);
  assert.ok(sameBook(book, new Map([['a', ['10.0.0.1']]])));
  assert.not.ok(sameBook(book, new Map([['a', ['10.0.0.2']]])));
  assert.not.ok(sameBook(book, new Map([['b', ['10.0.0.1']]])));
});

const SERVICE = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'default' },
  spec: {
    type: 'NodePort',
    clusterIP: '10.96.0.20',
    ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080, protocol: 'TCP' }],
  },
};

function slice(endpoints: object[]): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
  };
}

function externalBackends(peers: Map<string, readonly string[]>): Backend[] {
  const slices = [
    slice([
      { addresses: ['10.244.1.11'], conditions: { ready: true }, nodeName: 'node-a' },
      { addresses: ['10.244.2.11'], conditions: { ready: true }, nodeName: 'node-b' },
      { addresses: ['10.244.3.11'], conditions: { ready: true }, nodeName: 'node-gone' },
    ]),
  ];
  const table = desired([SERVICE as never], slices as never, { name: 'node-a', addresses: ['192.168.0.2'], peers });
  const nodePort = table.frontends.find((f) => f.kind === 'NodePort');
  return nodePort?.externalBackends ?? [];
}

test("an endpoint's nodeName gives its backend that node's address; local and unknown nodes get none", () => {
  const peers = new Map<string, readonly string[]>([
    ['node-a', ['192.168.0.2']],
    ['node-b', ['fd00::3', '192.168.0.3']],
  ]);
  assert.equal(externalBackends(peers), [
    { family: 4, address: '10.244.1.11', port: 8080, protocol: 'TCP', local: true },
    { family: 4, address: '10.244.2.11', port: 8080, protocol: 'TCP', node: '192.168.0.3' },
    { family: 4, address: '10.244.3.11', port: 8080, protocol: 'TCP' },
  ]);
});

test("the backend's map entry carries its node's address (0 when unknown), as the datapath reads it", () => {
  const v4 = decode(
    Layouts.lb4Backend,
    backendValue({ family: 4, address: '10.244.2.11', port: 8080, protocol: 'TCP', node: '192.168.0.3' }),
  );
  assert.is(v4.node_address, '192.168.0.3');
  assert.is(v4.address, '10.244.2.11');
  const raw = backendValue({ family: 4, address: '10.244.2.11', port: 8080, protocol: 'TCP', node: '192.168.0.3' });
  assert.equal([...raw.subarray(8, 12)], [192, 168, 0, 3], 'node_address at offset 8, network order');
  const none = decode(Layouts.lb4Backend, backendValue({ family: 4, address: '10.244.3.11', port: 8080, protocol: 'TCP' }));
  assert.is(none.node_address, '0.0.0.0');
  const v6 = decode(
    Layouts.lb6Backend,
    backendValue({ family: 6, address: 'fd00:10:244:2::11', port: 80, protocol: 'UDP', node: 'fd00::3' }),
  );
  assert.is(v6.node_address, 'fd00::3');
});

test('a node address that changes rewrites the backend in place: same id, no removal, flows keep it', () => {
  const capacity = { services: 8, slots: 32, backends: 8, serviceIds: 8, backendIds: 8 };
  const maps = new MemoryMaps(capacity);
  const r = new Reconciler(maps);
  const table = (node: string | undefined) => {
    const b: Backend = { family: 4, address: '10.244.2.11', port: 8080, protocol: 'TCP', ...(node ? { node } : {}) };
    return [
      {
        frontend: { family: 4 as const, address: '192.168.0.2', port: 30080, protocol: 'TCP' as const, scope: 'external' as const },
        service: { namespace: 'default', name: 'web' },
        portName: '',
        backends: [b],
      },
    ];
  };
  r.reconcile(table(undefined));
  const [before] = maps.dump().backends;
  const result = r.reconcile(table('192.168.0.3'));
  assert.is(result.writes, 1, 'one backend write');
  assert.equal(result.removedBackends, []);
  const [after] = maps.dump().backends;
  assert.is(after!.id, before!.id);
  assert.is(after!.backend.node, '192.168.0.3');
  assert.is(r.reconcile(table('192.168.0.3')).writes, 0, 'the same table again writes nothing');
  // The same endpoint from a slice without a nodeName (another frontend) neither clears nor flips it.
  const mixed = [...table('192.168.0.3'), { ...table(undefined)[0]!, frontend: { ...table(undefined)[0]!.frontend, port: 30081 } }];
  r.reconcile(mixed);
  assert.is(r.reconcile(mixed).writes, 0, 'stable across syncs');
  assert.is(maps.dump().backends[0]!.backend.node, '192.168.0.3');
});

test.run();
