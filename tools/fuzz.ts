// The long fuzz run of malformed Services and EndpointSlices (issue 9, item 9):
//   npm run fuzz -- --count N --seed S [--items M] [--huge-kb K] [--endpoints E] [--manifest-mb MB]
//                   [--every] [--only manifest|apiserver]
// Case i uses seed S+i; a failing case prints its seed, and `--count 1 --seed <that seed>` (same other
// options) replays it. test/unit/sources/fuzz.test.ts runs the same cases, fewer and smaller, in CI.

import { parseArgs } from 'node:util';
import { CI_OPTIONS, type FuzzOptions, generateCase } from '../test/support/fuzz.ts';
import { type FuzzPath, runCase } from '../test/support/fuzz-run.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '100' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    items: { type: 'string', default: String(CI_OPTIONS.items) },
    'huge-kb': { type: 'string', default: '1024' },
    endpoints: { type: 'string', default: String(CI_OPTIONS.manyEndpoints) },
    'manifest-mb': { type: 'string', default: '0' },
    every: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});

function count(name: string, text: string | undefined, min = 0): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    console.error(`fuzz: --${name} must be an integer >= ${min}, got ${String(text)}`);
    process.exit(2);
  }
  return n;
}

const runs = count('count', values.count, 1);
const seed = count('seed', values.seed);
const options: FuzzOptions = {
  items: count('items', values.items, 1),
  hugeBytes: count('huge-kb', values['huge-kb']) * 1024,
  manyEndpoints: count('endpoints', values.endpoints),
  manifestBytes: count('manifest-mb', values['manifest-mb']) * 1024 * 1024,
  everyMutation: values.every,
};
if (values.only !== undefined && values.only !== 'manifest' && values.only !== 'apiserver') {
  console.error(`fuzz: --only must be manifest or apiserver, got ${values.only}`);
  process.exit(2);
}
const paths: FuzzPath[] = values.only ? [values.only as FuzzPath] : ['manifest', 'apiserver'];

console.log(`fuzz: ${runs} cases from seed ${seed}, ${JSON.stringify(options)}, through ${paths.join(' and ')}`);
const started = Date.now();
const failed: number[] = [];
let objects = 0;
for (let i = 0; i < runs; i++) {
  const caseSeed = seed + i;
  const c = generateCase(caseSeed, options);
  objects += c.items.reduce((n, item) => n + item.docs.length, 0);
  for (const via of paths) {
    const r = await runCase(c, via);
    if (r.failures.length === 0) continue;
    if (!failed.includes(caseSeed)) failed.push(caseSeed);
    console.log(`FAIL seed ${caseSeed} via ${via} (${r.ms} ms): replay with --count 1 --seed ${caseSeed}`);
    for (const f of r.failures.slice(0, 20)) console.log(`  ${f.split('\n').slice(0, 6).join('\n    ')}`);
    if (r.failures.length > 20) console.log(`  ... ${r.failures.length - 20} more`);
  }
  if ((i + 1) % 10 === 0 || i + 1 === runs) {
    console.log(
      `fuzz: ${i + 1}/${runs} cases, ${objects} documents, ${failed.length} failing, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }
}
if (failed.length > 0) {
  console.log(`fuzz: FAILED seeds ${failed.join(' ')}`);
  process.exit(1);
}
console.log(`fuzz: ok, ${runs} cases (seeds ${seed}-${seed + runs - 1}), 0 failures, ${((Date.now() - started) / 1000).toFixed(1)} s`);
