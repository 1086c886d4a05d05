// The dialler of bench/agent-start.ts, run by it in a lab's node namespace and client cgroup (never
// the root namespace): one HTTP request at a time to a ClusterIP, every --interval-ms, until one
// gets a pod's answer or --cap-ms passes. Prints `dialling` once its first attempt has failed
// (nothing serves the address yet), then one JSON line. `answeredNs` is process.hrtime (the
// machine's CLOCK_MONOTONIC, the same in every process), so the parent subtracts its own spawn time.
//
//   node bench/first-answer.ts --target 10.96.0.10:80 [--interval-ms 20] [--cap-ms 180000]

import { parseArgs } from 'node:util';
import { parseProbeArgs, probe } from '../src/lab/probe.ts';

export interface FirstAnswer {
  /** CLOCK_MONOTONIC ns of the first answer, as a decimal string; null when none came within the cap. */
  answeredNs: string | null;
  attempts: number;
  /** The pod that answered first. */
  backend?: string;
  /** Why the attempts before it failed: error code -> count. */
  errors: Record<string, number>;
}

export const DIALLING = 'dialling';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      'interval-ms': { type: 'string', default: '20' },
      'cap-ms': { type: 'string', default: '180000' },
    },
    strict: true,
  });
  const intervalMs = Number(values['interval-ms']);
  const capMs = Number(values['cap-ms']);
  // One attempt: connect, GET /, the pod's name back; an unprogrammed ClusterIP fails at once (no route).
  const once = parseProbeArgs(['tcp', '--target', values.target ?? '', '--count', '1', '--timeout-ms', '1000']);
  const out: FirstAnswer = { answeredNs: null, attempts: 0, errors: {} };
  const deadline = performance.now() + capMs;
  while (performance.now() < deadline) {
    const r = await probe(once);
    out.attempts++;
    if (r.ok > 0) {
      out.answeredNs = String(process.hrtime.bigint());
      out.backend = Object.keys(r.byBackend)[0];
      break;
    }
    for (const [code, n] of Object.entries(r.errors)) out.errors[code] = (out.errors[code] ?? 0) + n;
    if (out.attempts === 1) process.stdout.write(`${DIALLING}\n`);
    await sleep(intervalMs);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  // A first attempt that succeeded means something already served the address: not a start-up figure.
  return out.answeredNs !== null && out.attempts > 1 ? 0 : 1;
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`first-answer: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
