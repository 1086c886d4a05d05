// The CI-sized fuzz run of malformed Services and EndpointSlices (issue 9, item 9): fixed seeds, every
// mutation at least once, 10,000 endpoints and a 2 MB manifest, through the manifest source and the
// fake API server. `npm run fuzz -- --count N --seed S` runs the same cases long (tools/fuzz.ts).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CI_OPTIONS, type FuzzOptions, generateCase, MUTATION_NAMES } from '../../support/fuzz.ts';
import { type FuzzPath, runCase } from '../../support/fuzz-run.ts';

const CASES: { seed: number; options: FuzzOptions; flags: string }[] = [
  { seed: 9, options: { ...CI_OPTIONS, manifestBytes: 2 << 20 }, flags: '--every --huge-kb 64 --manifest-mb 2' },
  { seed: 10, options: { ...CI_OPTIONS, manyEndpoints: 0 }, flags: '--every --huge-kb 64 --endpoints 0' },
];

test('a CI case holds every mutation, each naming the object and field it breaks', () => {
  const c = generateCase(CASES[0]!.seed, CASES[0]!.options);
  const labels = new Set(c.items.map((i) => i.label));
  for (const name of MUTATION_NAMES) assert.ok(labels.has(name) || name === 'slice/v6-address-v4-mapped', `${name} missing`);
  for (const item of c.items) {
    for (const p of item.problems) assert.ok(p.field !== '' || p.kind === 'Document', `${item.label}: a wanted problem names no field`);
  }
  assert.ok(
    c.items.some((i) => i.label === 'good'),
    'good services are mixed in',
  );
  assert.equal(generateCase(9, CASES[0]!.options), c, 'the same seed gives the same case');
});

for (const { seed, options, flags } of CASES) {
  for (const via of ['manifest', 'apiserver'] as FuzzPath[]) {
    test(`seed ${seed} via ${via}: no crash, every bad object named with its field, every good service served`, async () => {
      const r = await runCase(generateCase(seed, options), via);
      assert.equal(r.failures, [], `replay: npm run fuzz -- --count 1 --seed ${seed} ${flags} --only ${via}`);
    });
  }
}

test('the checks have teeth: a good service demanded absent, or a field named wrongly, fails the case', async () => {
  const c = generateCase(11, { ...CI_OPTIONS, items: 10, manyEndpoints: 0, everyMutation: false });
  const good = c.items.find((i) => typeof i.serve === 'object' && i.problems.length === 0)!;
  const bad = c.items.find((i) => i.problems.some((p) => p.kind === 'Service'))!;
  good.serve = 'none';
  bad.problems = bad.problems.map((p) => ({ ...p, field: `${p.field}.nope` }));
  const r = await runCase(c, 'manifest');
  const id = (i: typeof good): string => `${i.service.namespace}/${i.service.name} (${i.label})`;
  assert.ok(
    r.failures.some((f) => f.startsWith(`${id(good)}: must not be served`)),
    r.failures.join('\n'),
  );
  assert.ok(
    r.failures.some((f) => f.startsWith(`${id(bad)}: no `)),
    r.failures.join('\n'),
  );
});

test.run();
