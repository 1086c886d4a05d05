// Turns what guest-run.sh wrote ("@@LAB" markers around uvu output and the feature probe's JSON)
// into a kernel x test matrix. A feature a kernel lacks is no reason to excuse a failure here: the
// tests assert the probed behaviour themselves, and the matrix shows the probe and the decisions.

export type FeatureReport = Record<string, { available: boolean; reason?: string }>;

/** What the agent decided from the probe (features.ts planDatapath), as `features.ts --json` prints it. */
export interface PlanReport {
  refuseErrno: number;
  socketDestroy: boolean;
  destroyUnavailable?: string;
  unsupported?: string;
  notes: string[];
}

export type CellStatus = 'pass' | 'fail' | 'timeout' | 'missing' | 'not-run';

export interface TestCell {
  file: string;
  status: CellStatus;
  passed: number;
  total: number;
  ms: number;
  /** Each failed test: its suite and name, then the first line of its error. */
  failures: string[];
  /** Why the file was not run ('not-run'). */
  reason?: string;
  /** The tail of the output, for failures. */
  output: string;
}

export interface KernelRun {
  kernel: string;
  release?: string;
  features?: FeatureReport;
  plan?: PlanReport;
  featuresError?: string;
  tests: Map<string, TestCell>;
  /** Output of --diag. */
  diag?: string;
  /** Set when the guest never printed "@@LAB done". */
  incomplete?: string;
  seconds: number;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the colour codes this strips
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Reads what guest-run.sh wrote. `notRun` turns the file names the guest skipped into a reason
 * (e.g. "not in the CI subset"), so the matrix says what did not run instead of leaving it out.
 */
export function parseResults(
  kernel: string,
  text: string,
  seconds: number,
  timedOut: boolean,
  notRun: (file: string, why: string) => string = (_f, why) => why,
): KernelRun {
  const run: KernelRun = { kernel, tests: new Map(), seconds };
  // The serial port turns "\n" into "\r\n".
  const lines = text.replace(ANSI, '').split(/\r?\n/);
  let block: { kind: 'features' | 'test' | 'diag'; name: string; body: string[] } | undefined;
  let done = false;
  for (const line of lines) {
    const kernelLine = /^@@LAB kernel (\S+)/.exec(line);
    if (kernelLine) {
      run.release = kernelLine[1];
      continue;
    }
    const skip = /^@@LAB skip (\S+) (.*)$/.exec(line);
    if (skip) {
      run.tests.set(skip[1]!, {
        file: skip[1]!,
        status: 'not-run',
        passed: 0,
        total: 0,
        ms: 0,
        failures: [],
        reason: notRun(skip[1]!, skip[2]!),
        output: '',
      });
      continue;
    }
    const begin = /^@@LAB begin (features|test|diag)(?: (\S+))?/.exec(line);
    if (begin) {
      block = { kind: begin[1] as 'features' | 'test' | 'diag', name: begin[2] ?? begin[1]!, body: [] };
      continue;
    }
    const end = /^@@LAB end (features|test|diag)(?: (\S+))? rc=(\d+) ms=(\d+)/.exec(line);
    if (end && block) {
      const rc = Number(end[3]);
      const ms = Number(end[4]);
      if (block.kind === 'diag') {
        run.diag = `${block.body.join('\n')}\n(rc=${rc})`;
      } else if (block.kind === 'features') {
        try {
          const json = block.body.join('\n');
          const report = JSON.parse(json.slice(json.indexOf('{'), json.lastIndexOf('}') + 1)) as {
            features: FeatureReport;
            plan: PlanReport;
          };
          run.features = report.features;
          run.plan = report.plan;
        } catch {
          run.featuresError = `feature probe failed (rc=${rc}): ${block.body.slice(-5).join(' | ')}`;
        }
      } else {
        run.tests.set(block.name, testCell(block.name, block.body, rc, ms));
      }
      block = undefined;
      continue;
    }
    if (line.startsWith('@@LAB done')) {
      done = true;
      continue;
    }
    block?.body.push(line);
  }
  if (block?.kind === 'test') {
    const cell = testCell(block.name, block.body, -1, 0);
    cell.status = timedOut ? 'timeout' : 'missing';
    run.tests.set(block.name, cell);
  }
  if (!done) run.incomplete = timedOut ? 'the guest timed out' : 'the guest stopped before the end (see its console.log)';
  return run;
}

/** uvu's summary of one file: "Total:", "Passed:", and per failure "FAIL  suite  "name"" then its message. */
export function testCell(file: string, body: string[], rc: number, ms: number): TestCell {
  const text = body.join('\n');
  const total = Number(/^\s*Total:\s+(\d+)/m.exec(text)?.[1] ?? 0);
  const passed = Number(/^\s*Passed:\s+(\d+)/m.exec(text)?.[1] ?? 0);
  const failures: string[] = [];
  body.forEach((line, i) => {
    const m = /^\s*FAIL\s+(.+?)\s*$/.exec(line);
    if (!m) return;
    const message =
      body
        .slice(i + 1)
        .find((l) => l.trim() !== '')
        ?.trim() ?? '';
    failures.push(`${m[1]!.replace(/\s{2,}/g, ' ')}: ${message}`);
  });
  // uvu exits 0 when a before/after hook throws, and prints neither the error nor a FAIL line
  // (its runner returns from `finally`): only all-passed, with a summary, counts as a pass.
  let status: CellStatus = rc === 0 && total > 0 && passed === total ? 'pass' : 'fail';
  if (status === 'fail' && (total === 0 || failures.length < total - passed)) {
    failures.push(
      total === 0
        ? `no uvu summary (rc=${rc}${rc > 128 ? `: killed by signal ${rc - 128}` : ''}): the file did not load or crashed`
        : `${total - passed - failures.length} of ${total} tests did not run: a before/after hook threw (uvu hides the error; run the file alone)`,
    );
  }
  if (rc === 124 || rc === 137) status = 'timeout';
  return { file, status, passed, total, ms, failures, output: body.slice(-60).join('\n') };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => pad(c, widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function cellText(c: TestCell | undefined): string {
  if (!c) return '-';
  const secs = `${(c.ms / 1000).toFixed(0)}s`;
  switch (c.status) {
    case 'pass':
      return `pass ${c.passed}/${c.total} ${secs}`;
    case 'fail':
      return `FAIL ${c.passed}/${c.total} ${secs}`;
    case 'not-run':
      return 'not run';
    case 'timeout':
      return `TIMEOUT ${secs}`;
    case 'missing':
      return 'NO RESULT';
  }
}

export function renderFeatures(runs: KernelRun[]): string {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.features ?? {})))];
  const rows = names.map((n) => [
    n,
    ...runs.map((r) => {
      const f = r.features?.[n];
      return f === undefined ? '?' : f.available ? 'yes' : 'no';
    }),
  ]);
  rows.push([
    '=> refuse errno',
    ...runs.map((r) => (r.plan ? (r.plan.unsupported ? 'REFUSED' : r.plan.refuseErrno ? 'ECONNREFUSED' : 'EPERM') : '?')),
  ]);
  rows.push(['=> UDP destroy', ...runs.map((r) => (r.plan ? (r.plan.socketDestroy ? 'bpf_sock_destroy' : 'sock_diag') : '?'))]);
  return table(['feature', ...runs.map((r) => r.kernel)], rows);
}

export function renderMatrix(runs: KernelRun[]): string {
  const files = [...new Set(runs.flatMap((r) => [...r.tests.keys()]))].sort();
  const rows = files.map((f) => [f, ...runs.map((r) => cellText(r.tests.get(f)))]);
  rows.push(['(guest total)', ...runs.map((r) => `${r.seconds.toFixed(0)}s${r.incomplete ? ' INCOMPLETE' : ''}`)]);
  return table(['test file', ...runs.map((r) => `${r.kernel}${r.release ? ` (${r.release})` : ''}`)], rows);
}

/** Per kernel: the datapath decisions, what is absent and why, what did not run, and each failure. */
export function renderDetails(runs: KernelRun[]): string {
  const out: string[] = [];
  for (const r of runs) {
    if (r.featuresError) out.push(`${r.kernel}: ${r.featuresError}`);
    if (r.incomplete) out.push(`${r.kernel}: ${r.incomplete}`);
    if (r.plan) {
      const p = r.plan;
      out.push(
        `${r.kernel}: datapath: ${p.unsupported ? `REFUSED: ${p.unsupported}` : `refuse_errno=${p.refuseErrno} (${p.refuseErrno ? 'ECONNREFUSED' : 'no bpf_set_retval: EPERM'}), sock_destroy.bpf.o ${p.socketDestroy ? 'loaded' : 'not loaded'}`}`,
      );
    }
    for (const n of Object.keys(r.features ?? {})) {
      const f = r.features![n]!;
      if (!f.available) out.push(`${r.kernel}: feature ${n} absent: ${f.reason ?? ''}`);
    }
    const notRun = [...r.tests.values()].filter((c) => c.status === 'not-run');
    if (notRun.length) out.push(`${r.kernel}: not run: ${notRun.map((c) => `${c.file} (${c.reason})`).join(', ')}`);
    for (const c of r.tests.values()) {
      if (c.status === 'pass' || c.status === 'not-run') continue;
      out.push(`${r.kernel} ${c.file}: ${c.status}`);
      for (const f of c.failures) out.push(`    FAIL ${f}`);
      if (c.status !== 'fail' || c.failures.length === 0)
        out.push(
          c.output
            .split('\n')
            .slice(-25)
            .map((l) => `    | ${l}`)
            .join('\n'),
        );
    }
  }
  return out.join('\n');
}

/** True when something failed (a file that did not run on purpose is not a failure; it is listed). */
export function failed(runs: KernelRun[]): boolean {
  return runs.some(
    (r) =>
      r.incomplete !== undefined ||
      r.featuresError !== undefined ||
      [...r.tests.values()].some((c) => c.status !== 'pass' && c.status !== 'not-run'),
  );
}
