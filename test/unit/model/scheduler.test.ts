import type { V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ObjectProblem } from '../../../src/errors.ts';
import { DesiredState } from '../../../src/model/desired-state.ts';
import { MAX_WRR_SEQUENCE, parseScheduler, parseWeights, readScheduling, weightTable, wrrSequence } from '../../../src/model/scheduler.ts';
import { runSteps } from '../../../src/model/steps.ts';
import { service, slice } from '../../support/objects.ts';

const who = { kind: 'Service', namespace: 'shop', name: 'cart' };

test('weights: addresses with integer weights, IPv6 canonical, spaces allowed', () => {
  assert.equal(parseWeights('10.244.1.5=3,10.244.2.7=1'), { value: { '10.244.1.5': 3, '10.244.2.7': 1 } });
  assert.equal(parseWeights(' FD00::A = 2 , 10.0.0.1=0'), { value: { 'fd00::a': 2, '10.0.0.1': 0 } });
  assert.equal(parseWeights(''), { value: {} });
});

test('weights: each malformed entry is named', () => {
  const bad: [unknown, RegExp][] = [
    ['10.244.1.5=3,10.244.2.7', /entry 2 "10.244.2.7" is not ADDRESS=WEIGHT/],
    ['10.244.1.5=-1', /entry 1 .* is not ADDRESS=WEIGHT/],
    ['10.244.1.5=1.5', /is not ADDRESS=WEIGHT/],
    ['pod-a=1', /is not ADDRESS=WEIGHT/],
    ['10.244.1.5=1001', /weight must be 0-1000/],
    ['10.244.1.5=1,10.244.1.5=2', /names 10.244.1.5 again/],
    [3, /must be a string/],
  ];
  for (const [text, want] of bad) {
    const r = parseWeights(text);
    assert.ok('error' in r && want.test(r.error), `${String(text)}: ${JSON.stringify(r)}`);
  }
});

test('annotations: scheduler, weights and table size read; errors name the Service and the annotation', () => {
  const problems: ObjectProblem[] = [];
  const ok = readScheduling(
    { 'socklb.io/scheduler': 'maglev', 'socklb.io/weights': '10.0.0.1=2', 'socklb.io/maglev-table-size': '65537', other: 'x' },
    who,
    problems,
  );
  assert.equal(ok, { scheduler: 'maglev', weights: { '10.0.0.1': 2 }, maglevTableSize: 65537 });
  assert.equal(problems, []);
  assert.is(readScheduling({ other: 'x' }, who, problems), undefined);
  assert.is(readScheduling(undefined, who, problems), undefined);

  readScheduling({ 'socklb.io/scheduler': 'fastest', 'socklb.io/maglev-table-size': '16384', 'socklb.io/weights': 'x' }, who, problems);
  assert.equal(
    problems.map((p) => [p.namespace, p.name, p.field, p.code]),
    [
      ['shop', 'cart', 'metadata.annotations["socklb.io/scheduler"]', 'SOCKLB_ERR_INVALID_FIELD'],
      ['shop', 'cart', 'metadata.annotations["socklb.io/weights"]', 'SOCKLB_ERR_INVALID_FIELD'],
      ['shop', 'cart', 'metadata.annotations["socklb.io/maglev-table-size"]', 'SOCKLB_ERR_INVALID_FIELD'],
    ],
  );
  assert.match(problems[0]!.message, /must be one of random, rr, wrr, sh, maglev, lc, wlc, sed, nq, got "fastest"/);
  assert.match(problems[2]!.message, /one of the primes .*16381.*got "16384"/);
});

test('lc, wlc, sed and nq are IPVS names the annotation takes; other spellings are refused', () => {
  for (const name of ['lc', 'wlc', 'sed', 'nq']) assert.equal(parseScheduler(name), { value: name });
  for (const name of ['LC', 'least-conn', 'lblc']) assert.ok('error' in parseScheduler(name), name);
});

test('a wlc/sed/nq table: each slot’s weight + 1, then the weighted sequence of slots, so weight 0 is never drawn', () => {
  assert.equal([...weightTable([3, 1, 0])], [4, 2, 1, 1, 1, 2, 1]);
  assert.equal([...weightTable([1, 1])], [2, 2, 1, 2]);
  assert.equal([...weightTable([0, 0])], [1, 1], 'no sequence: the kernel then draws uniformly');
});

test('wrr sequence: shares equal weights after the gcd, spread out rather than in runs', () => {
  assert.equal([...wrrSequence([3, 1])], [0, 0, 1, 0]);
  assert.equal([...wrrSequence([6, 2])], [0, 0, 1, 0], 'divided by the gcd');
  const seq = wrrSequence([5, 1, 1]);
  assert.equal([...seq], [0, 0, 1, 0, 2, 0, 0]);
  assert.equal([...wrrSequence([1, 0, 1])], [0, 2], 'weight 0 gets no turn');
});

test('wrr sequence: weights too large for one table are scaled down, each keeping a turn', () => {
  const weights = [1000, ...new Array<number>(199).fill(999)];
  const seq = wrrSequence(weights);
  assert.ok(seq.length <= MAX_WRR_SEQUENCE, `${seq.length} turns`);
  const count = new Array<number>(200).fill(0);
  for (const i of seq) count[i]!++;
  assert.ok(count.every((c) => c >= 1));
  assert.ok(Math.abs(count[0]! / count[1]! - 1000 / 999) < 0.01);
});

test('a Service with a bad scheduler annotation keeps its last good scheduler, and the problem names it', () => {
  const slices = [slice({ service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.0.11' }] })];
  const base = service({ name: 'web', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const annotated = (annotations: Record<string, string>): V1Service => ({ ...base, metadata: { ...base.metadata, annotations } });
  const state = new DesiredState({ name: 'node-a' });
  for (const sl of slices) state.putSlice(sl);
  const resolve = (svc: V1Service) => {
    state.putService(svc);
    runSteps(state.flush());
    return state.table();
  };
  const first = resolve(annotated({ 'socklb.io/scheduler': 'maglev', 'socklb.io/weights': '10.244.0.11=2' }));
  assert.equal(first.frontends[0]!.scheduling, { scheduler: 'maglev', weights: { '10.244.0.11': 2 } });
  const bad = resolve(annotated({ 'socklb.io/scheduler': 'magleb' }));
  assert.equal(bad.frontends[0]!.scheduling, { scheduler: 'maglev', weights: { '10.244.0.11': 2 } });
  assert.equal(
    bad.problems.map((p) => `${p.kind} ${p.namespace}/${p.name} ${p.field}`),
    ['Service default/web metadata.annotations["socklb.io/scheduler"]'],
  );
  const fixed = resolve(annotated({ 'socklb.io/scheduler': 'rr' }));
  assert.equal(fixed.frontends[0]!.scheduling, { scheduler: 'rr' });
});

test.run();
