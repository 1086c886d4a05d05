// `npm run bench -- --quick` end to end: the harness runs, writes its files, and what it wrote is
// sane. Never asserts a speed: the figures are the benchmark's business, not the test's.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BenchResults, SystemName } from '../../bench/types.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SYSTEMS: SystemName[] = ['direct', 'socklb', 'nftables', 'iptables-nft', 'iptables-legacy'];

function netns(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

let out: string;
let results: BenchResults;
let files: string[];

test.before(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'socklb-bench-test-'));
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bench/run.ts'), '--quick', '--out', out], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
    killSignal: 'SIGINT',
  });
  if (r.status !== 0) throw new Error(`bench --quick exited ${r.status ?? r.signal}: ${r.stderr.slice(-3000)}`);
  files = fs.readdirSync(out);
  const json = files.find((f) => f.endsWith('.json'));
  if (!json) throw new Error(`no JSON written to ${out}: ${files.join(', ')}`);
  results = JSON.parse(fs.readFileSync(path.join(out, json), 'utf8')) as BenchResults;
});

test.after(() => {
  if (out) fs.rmSync(out, { recursive: true, force: true });
});

test('writes the JSON, the SVG chart and the markdown table', () => {
  const base = files.find((f) => f.endsWith('.json'))!.slice(0, -'.json'.length);
  assert.match(base, new RegExp(`^\\d{4}-\\d{2}-\\d{2}-${os.release().replace(/[.+]/g, '\\$&')}-quick$`));
  for (const ext of ['json', 'svg', 'md']) assert.ok(files.includes(`${base}.${ext}`), `${base}.${ext}`);
  const svg = fs.readFileSync(path.join(out, `${base}.svg`), 'utf8');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
  assert.is(svg.match(/<path /g)?.length, SYSTEMS.length, 'one line per system');
  assert.is(svg.match(/<circle /g)?.length, SYSTEMS.length * 2, 'one point per system and N');
  const md = fs.readFileSync(path.join(out, `${base}.md`), 'utf8');
  assert.ok(md.includes('npm run bench -- --quick'), 'the table names the command that produced it');
  for (const s of SYSTEMS) assert.ok(md.includes(`| ${s} |`), `table row for ${s}`);
});

test('every system has connect samples at every N, with finite positive ratios to direct', () => {
  assert.equal(results.mode, 'quick');
  const ns = results.params.ns as number[];
  assert.equal(ns, [1, 1000]);
  for (const n of ns) {
    for (const s of SYSTEMS) {
      const p = results.connect.find((c) => c.n === n && c.system === s);
      assert.ok(p, `${s} at N=${n}`);
      const rounds = results.params.rounds as number;
      // direct is measured before the first system and again after each (but the last) one.
      if (s === 'direct') assert.is(p.runs.length, rounds * 4, 'direct: one raw sample per round of each baseline');
      else assert.is(p.runs.length, rounds, `${s} at N=${n}: one raw sample per round`);
      for (const r of p.runs) {
        assert.ok(r.ok > 0, `${s} at N=${n}: connects succeeded`);
        assert.ok(r.mean_ns > 0 && Number.isFinite(r.mean_ns));
        assert.ok(r.ok + r.failed <= r.count);
      }
      assert.ok(Number.isFinite(p.ratio) && p.ratio > 0, `${s} at N=${n}: ratio ${p.ratio}`);
    }
    assert.is(results.connect.find((c) => c.n === n && c.system === 'direct')!.ratio, 1);
  }
});

test('a socklb /metrics scrape is timed at every N, with and without per-backend series', () => {
  for (const n of results.params.ns as number[]) {
    const p = results.scrape?.find((c) => c.n === n);
    assert.ok(p, `scrape at N=${n}`);
    assert.is(p.frontends, n + 1);
    assert.ok(p.ms > 0 && p.cpuMs > 0 && p.perBackendMs > 0, `N=${n}: ${p.ms} / ${p.perBackendMs} ms`);
    assert.ok(p.perBackendBytes > p.bytes, 'per-backend series make the scrape longer');
  }
});

test('programming and memory are recorded for every system that programs rules', () => {
  for (const n of results.params.ns as number[]) {
    for (const s of SYSTEMS.filter((x) => x !== 'direct')) {
      const p = results.programming.find((c) => c.n === n && c.system === s);
      assert.ok(p && p.status === 'ok', `${s} programmed at N=${n}`);
      assert.ok(p.programMs > 0 && p.changeMs !== null && p.changeMs > 0, `${s} at N=${n}: ${p.programMs} / ${p.changeMs} ms`);
      const m = results.memory.find((c) => c.n === n && c.system === s);
      assert.ok(m, `${s} memory at N=${n}`);
      if (s === 'socklb') {
        assert.ok(m.kernelBytes !== null && m.kernelBytes > 0, 'socklb map memory');
        assert.ok(m.processRssBytes !== null && m.processRssBytes > 0, 'socklb RSS');
      } else {
        assert.ok(m.textBytes !== null && m.textBytes > 0, `${s} ruleset text size`);
      }
    }
  }
});

test('balance counts add up to the connections made, over every backend', () => {
  const want = [
    ['socklb', 3],
    ['socklb', 10],
    ['iptables-legacy', 3],
    ['iptables-legacy', 10],
  ] as const;
  for (const [system, backends] of want) {
    const b = results.balance.find((x) => x.system === system && x.backends === backends);
    assert.ok(b, `${system} over ${backends}`);
    const sum = Object.values(b.counts).reduce((a, c) => a + c, 0);
    assert.is(sum, b.ok, `${system} over ${backends}: counts sum to the successful connections`);
    assert.is(b.ok + b.failed, b.connections);
    assert.is(b.failed, 0, `${system} over ${backends}: no failed connection`);
    assert.is(Object.keys(b.counts).length, backends, `${system}: every backend reached`);
    assert.ok(Number.isFinite(b.maxMinRatio) && b.maxMinRatio >= 1, `${system}: max/min ${b.maxMinRatio}`);
  }
});

test('leaves no namespace, pin or temporary directory behind', () => {
  const labs = results.made.labs;
  assert.ok(labs.length >= 3, 'one lab per N plus the balance lab');
  const mine = (name: string) => labs.some((p) => name === p || name.startsWith(`${p}-`));
  assert.equal(netns().filter(mine), []);
  assert.equal(fs.readdirSync('/sys/fs/bpf').filter(mine), []);
  assert.ok(!fs.existsSync(results.made.workDir), `${results.made.workDir} removed`);
});

test.run();
