import type { V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LastGood } from '../../../src/agent/last-good.ts';
import { DesiredCache, desired } from '../../../src/model/desired.ts';
import { service, slice } from '../../support/objects.ts';

const slices = [slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.0.11' }] })];
const good = service({ name: 'web', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
const other = service({ name: 'other', clusterIPs: ['10.96.0.11'], ports: [{ port: 81 }] });

function broken(s: V1Service): V1Service {
  return { ...s, spec: { ...s.spec, ports: [{ name: 'http', port: 70000 }] } };
}

const compute = (services: V1Service[]) => desired(services, slices, { name: 'node-a' });
const frontends = (t: ReturnType<typeof compute>) => t.frontends.map((f) => `${f.service.name} ${f.frontend.address}:${f.frontend.port}`);

test('a rejected edit of an accepted service keeps the accepted version and reports the problem', () => {
  const lastGood = new LastGood();
  lastGood.resolve([good, other], compute);
  const table = lastGood.resolve([broken(good), other], compute);
  assert.equal(frontends(table), ['web 10.96.0.10:80', 'other 10.96.0.11:81']);
  assert.ok(table.problems.some((p) => p.name === 'web' && p.field === 'spec.ports[0].port'));
});

test('a service rejected from the start is not programmed', () => {
  const table = new LastGood().resolve([broken(good), other], compute);
  assert.equal(frontends(table), ['other 10.96.0.11:81']);
});

test('a service deleted while rejected is gone, and a fixed one replaces the kept version', () => {
  const lastGood = new LastGood();
  lastGood.resolve([good], compute);
  lastGood.resolve([broken(good)], compute);
  assert.equal(frontends(lastGood.resolve([], compute)), []);
  lastGood.resolve([good], compute);
  const moved = service({ name: 'web', clusterIPs: ['10.96.0.12'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  assert.equal(frontends(lastGood.resolve([moved], compute)), ['web 10.96.0.12:80']);
});

test('the kept version holds through several rejected syncs, with a desired cache, until a fix replaces it', () => {
  const cache = new DesiredCache();
  const cached = (services: V1Service[]) => desired(services, slices, { name: 'node-a' }, { cache });
  const lastGood = new LastGood();
  lastGood.resolve([good, other], cached);
  const bad = broken(good);
  for (let i = 0; i < 3; i++) {
    const table = lastGood.resolve([bad, other], cached);
    assert.equal(frontends(table), ['web 10.96.0.10:80', 'other 10.96.0.11:81']);
    assert.equal(table, { ...compute([good, other]), problems: compute([bad, other]).problems });
  }
  const moved = service({ name: 'web', clusterIPs: ['10.96.0.12'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  assert.equal(frontends(lastGood.resolve([moved, other], cached)), ['other 10.96.0.11:81', 'web 10.96.0.12:80']);
  assert.equal(frontends(lastGood.resolve([bad, other], cached)), ['other 10.96.0.11:81', 'web 10.96.0.12:80']);
});

test.run();
