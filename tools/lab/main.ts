// npm run lab / tools/lab/run.sh: fetch the kernels, build the guest, boot each kernel in turn,
// print the feature table, the datapath decisions and the kernel x test matrix. Exits 1 when a
// test fails (or a guest does not finish) on any kernel, 2 on a usage or setup error.
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { boot, buildInitramfs, buildRootImage, ensureHostPackages, fetchKernel, type GuestParams, KERNELS, runOnHost } from './lab.ts';
import { failed, type KernelRun, parseResults, renderDetails, renderFeatures, renderMatrix } from './matrix.ts';

/**
 * Test files the lab leaves out unless --exclude says otherwise (the matrix lists them as not run):
 * lab.test.ts tests the netns harness itself, no BPF, and costs 3-4 minutes per TCG guest;
 * bench.test.ts, xdp-bench.test.ts and responsive.test.ts time things, which means nothing under an
 * emulated CPU;
 * migration.test.ts builds an earlier release from git, and the guest has neither the history nor
 * a compiler; memory.test.ts checks the kernel's map accounting of 6.5 and later (map_mem_usage).
 * cluster-lab.test.ts is the two-node stage and kube-proxy's iptables/nftables baseline, no BPF of
 * ours to speak of, with wrk, iperf3, nginx and nft, which the guest root does not carry, and a
 * load measurement; until the XDP tests run on that stage, it stays on the host.
 */
const DEFAULT_EXCLUDE = '^(lab|cluster-lab|bench|xdp-bench|responsive|migration|memory)\\.test\\.ts$';

/**
 * --ci: the 6.1 column within the 40 minutes tools/test.sh gives it on a 2-core machine. Every BPF program, map and hook
 * is still exercised; left out, besides the default exclusions, are the Kubernetes source feeding
 * the same datapath (k8s-e2e, k8s-node-addresses: 6 minutes under TCG, nothing kernel-specific that
 * sock-lb does not cover), the XDP files that pass real traffic between namespaces (xdp-agent,
 * xdp-dsr-agent, xdp-lc-agent, xdp-veth, xdp-dsr-veth: their packet programs are exercised by the
 * xdp-packets and xdp-lc files, which stay), the agent's capability check (capabilities: the same on every kernel) and
 * the frontend filter's restart and resize (frontend-filter: the hook reads the filter on every
 * connect of sock-lb, which stays). A new test file is in CI unless added here. The full lab runs
 * them all.
 */
const CI_EXCLUDE =
  '^(k8s-e2e|k8s-node-addresses|xdp-agent|xdp-dsr-agent|xdp-lc-agent|xdp-veth|xdp-dsr-veth|capabilities|frontend-filter)\\.test\\.ts$';

/** Default SOCKLB_TEST_TIME_SCALE in TCG guests (test/support/time-scale.ts). */
const GUEST_TIME_SCALE = 10;

const USAGE = `usage: tools/lab/run.sh [--kernels 5.10,6.1,6.12,host] [--ci] [--tests REGEX] [--exclude REGEX]
                       [--timeout SECONDS] [--file-timeout SECONDS] [--time-scale N] [--jobs N] [--refresh]
  --kernels       columns to run (default 5.10,6.1,6.12,host); "host" runs on this machine's kernel, no VM
  --ci            CI's subset (default kernels 6.1; also excludes ${CI_EXCLUDE}), listed as not run
  --time-scale    SOCKLB_TEST_TIME_SCALE in the guests (default ${GUEST_TIME_SCALE}; the host column uses 1)
  --tests         regex over test/kernel file names (default: every *.test.ts)
  --exclude       regex of file names to leave out (default ${DEFAULT_EXCLUDE}; '' runs all)
  --diag          a shell command to run in each guest after the probe (from the repo root); its
                  output is printed, e.g. --diag 'node tools/lab/verifier-log.ts' --tests '^$'
  --jobs          guests booted at once (default 1; each takes 2 vCPUs and 2 GiB)
  --timeout       per guest, from boot to power-off (default 1800)
  --file-timeout  per test file inside a guest (default 900)
  --refresh       re-resolve the kernel packages now (otherwise weekly)`;

const LAB_OPTIONS = {
  kernels: { type: 'string' },
  ci: { type: 'boolean', default: false },
  'time-scale': { type: 'string', default: String(GUEST_TIME_SCALE) },
  tests: { type: 'string', default: '' },
  exclude: { type: 'string', default: DEFAULT_EXCLUDE },
  jobs: { type: 'string', default: '1' },
  diag: { type: 'string', default: '' },
  timeout: { type: 'string', default: '1800' },
  'file-timeout': { type: 'string', default: '900' },
  refresh: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const satisfies ParseArgsOptionsConfig;

async function main(): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ options: typeof LAB_OPTIONS }>>['values'];
  try {
    ({ values } = parseArgs({
      options: LAB_OPTIONS,
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const kernels = values.kernels ?? (values.ci ? '6.1' : [...KERNELS.map((k) => k.name), 'host'].join(','));
  if (values.ci && values.tests) {
    console.error(`--ci chooses the test files itself; drop --tests\n${USAGE}`);
    return 2;
  }
  const wanted = kernels
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const unknown = wanted.filter((k) => k !== 'host' && !KERNELS.some((s) => s.name === k));
  if (unknown.length) {
    console.error(`unknown kernel ${unknown.join(', ')}; known: ${KERNELS.map((k) => k.name).join(', ')}, host`);
    return 2;
  }
  const timeoutS = Number(values.timeout);
  const params: GuestParams = {
    tests: values.tests,
    exclude: values.ci ? [values.exclude, CI_EXCLUDE].filter(Boolean).join('|') : values.exclude,
    diag: values.diag,
    fileTimeoutS: Number(values['file-timeout']),
    timeScale: Number(values['time-scale']),
  };
  const jobs = Number(values.jobs);
  if (!(timeoutS > 0) || !(params.fileTimeoutS > 0) || !(jobs >= 1) || !(params.timeScale >= 1)) {
    console.error(`--timeout, --file-timeout, --jobs and --time-scale take a positive number (--time-scale >= 1)\n${USAGE}`);
    return 2;
  }

  const notRun = (file: string, why: string): string =>
    values.ci && new RegExp(CI_EXCLUDE).test(file)
      ? 'not in the CI subset: npm run lab runs it'
      : why === 'excluded' && values.exclude === DEFAULT_EXCLUDE
        ? "excluded by default (--exclude '' runs it)"
        : why;
  const guests = KERNELS.filter((k) => wanted.includes(k.name));
  let image = '';
  if (guests.length) {
    ensureHostPackages();
    const t0 = Date.now();
    image = buildRootImage();
    process.stderr.write(`lab: guest root image built in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  }
  const slots: (KernelRun | undefined)[] = wanted.map(() => undefined);
  // Fetch and build everything first (cheap, and a missing package fails before any boot).
  const prepared = wanted.map((name) => {
    const spec = guests.find((k) => k.name === name);
    if (!spec) return undefined;
    const k = fetchKernel(spec, values.refresh);
    return { spec, k, initrd: buildInitramfs(spec, k.dir, k.release, params) };
  });
  const queue = wanted.map((_, i) => i).filter((i) => prepared[i]);
  const worker = async (): Promise<void> => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      const { spec, k, initrd } = prepared[i]!;
      const r = await boot(spec, k.vmlinuz, initrd, image, timeoutS);
      const parsed = parseResults(spec.name, r.results, r.seconds, r.timedOut, notRun);
      if (parsed.incomplete) parsed.incomplete += ` (${r.consoleLog})`;
      slots[i] = parsed;
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, queue.length)) }, worker));
  // The host column last, so it never competes with a guest for the CPUs.
  wanted.forEach((name, i) => {
    if (name !== 'host') return;
    const r = runOnHost(params);
    slots[i] = parseResults('host', r.results, r.seconds, false, notRun);
  });
  const runs = slots.filter((r): r is KernelRun => r !== undefined);

  console.log('\nFeatures (src/agent/features.ts, probed in each kernel) and the datapath decisions\n');
  console.log(renderFeatures(runs));
  console.log('\nKernel tests (test/kernel), one uvu run per file\n');
  console.log(renderMatrix(runs));
  const details = renderDetails(runs);
  if (details) console.log(`\n${details}`);
  for (const r of runs) if (r.diag !== undefined) console.log(`\n--- diag on ${r.kernel} ---\n${r.diag}`);
  const bad = failed(runs);
  // uvu's summary lines, summed over kernels and files, so tools/test.sh counts the lab's tests.
  const cells = runs.flatMap((r) => [...r.tests.values()]);
  console.log(`\n  Total:     ${cells.reduce((n, c) => n + c.total, 0)}\n  Passed:    ${cells.reduce((n, c) => n + c.passed, 0)}`);
  console.log(`\nlab: ${bad ? 'FAILED' : 'ok'}`);
  return bad ? 1 : 0;
}

process.exitCode = await main();
