// Golden cases: test/golden/<case>.yaml (Kubernetes objects) in, test/golden/<case>.txt (the table
// dump) out. UPDATE_GOLDEN=1 rewrites the .txt files from the current output.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { desired } from '../../../src/model/desired.ts';
import { formatTable } from '../../../src/model/format.ts';
import { nodeAddressBook } from '../../../src/model/node-read.ts';
import { parseManifest } from '../../../src/sources/manifest.ts';

const dir = path.resolve(import.meta.dirname, '../../golden');
const update = process.env.UPDATE_GOLDEN === '1';
const cases = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/**
 * Parses a case as the manifest source would and dumps the table, manifest and Node problems first.
 * Node documents give the other nodes' addresses (a remote backend's `@node`).
 */
function render(yamlFile: string): string {
  const parsed = parseManifest(fs.readFileSync(yamlFile, 'utf8'), path.basename(yamlFile));
  const nodes = nodeAddressBook(parsed.nodes);
  // The node of every case: zone-a, one address per family (NodePort frontends appear on both).
  const node = { name: 'node-a', zone: 'zone-a', addresses: ['192.168.0.2', 'fd00:192::2'], peers: nodes.book };
  const table = desired(parsed.services, parsed.slices, node);
  return formatTable({ ...table, problems: [...parsed.problems, ...nodes.problems, ...table.problems] });
}

test('there are golden cases', () => {
  assert.ok(cases.length >= 7);
});

for (const c of cases) {
  test(`golden ${c}`, () => {
    const want = path.join(dir, c.replace(/\.yaml$/, '.txt'));
    const got = render(path.join(dir, c));
    if (update) fs.writeFileSync(want, got);
    assert.ok(fs.existsSync(want), `${want} is missing: run with UPDATE_GOLDEN=1`);
    assert.fixture(got, fs.readFileSync(want, 'utf8'));
  });
}

test.run();
