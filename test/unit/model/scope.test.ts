import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withExternalScope } from '../../../src/model/scope.ts';
import type { Backend, DesiredFrontend } from '../../../src/model/types.ts';

const backend = (address: string, local = false): Backend => ({
  family: 4,
  address,
  port: 8080,
  protocol: 'TCP',
  ...(local ? { local: true } : {}),
});

const clusterIp: DesiredFrontend = {
  frontend: { family: 4, address: '10.96.0.10', port: 80, protocol: 'TCP' },
  service: { namespace: 'default', name: 'web' },
  portName: 'http',
  kind: 'ClusterIP',
  backends: [backend('10.244.1.5', true), backend('10.244.2.5')],
};

const nodePortLocal: DesiredFrontend = {
  frontend: { family: 4, address: '192.168.10.2', port: 30080, protocol: 'TCP' },
  service: { namespace: 'default', name: 'web' },
  portName: 'http',
  kind: 'NodePort',
  backends: [backend('10.244.1.5', true), backend('10.244.2.5')],
  externalBackends: [backend('10.244.1.5', true)],
  affinityTimeoutSeconds: 60,
};

test('a ClusterIP gets one entry; a NodePort a second one of external scope with the outside backends', () => {
  const entries = withExternalScope([clusterIp, nodePortLocal]);
  assert.is(entries.length, 3);
  assert.is(entries[0], clusterIp);
  assert.is(entries[1], nodePortLocal);
  const external = entries[2]!;
  assert.equal(external.frontend, { ...nodePortLocal.frontend, scope: 'external' });
  assert.equal(external.backends, [backend('10.244.1.5', true)]);
  assert.is(external.affinityTimeoutSeconds, undefined, 'affinity keys on a netns, which outside clients lack');
  assert.is(nodePortLocal.frontend.scope, undefined, 'the input is left as it was');
});

test('a frontend reachable from outside with no backend for outside traffic still gets its entry (it refuses)', () => {
  const entries = withExternalScope([{ ...nodePortLocal, externalBackends: [] }]);
  assert.is(entries.length, 2);
  assert.equal(entries[1]!.backends, []);
});

test.run();
