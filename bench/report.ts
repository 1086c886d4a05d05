// The markdown tables of a run (for bench/results/*.md and docs/benchmarks.md).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { BenchResults, SystemName } from './types.ts';
import { renderXdpPacket } from './xdp-packet.ts';

const ORDER: SystemName[] = ['direct', 'socklb', 'nftables', 'iptables-nft', 'iptables-legacy'];
const BEGIN = '<!-- bench:begin (written by npm run bench; edits between the markers are overwritten) -->';
const END = '<!-- bench:end -->';

const fmtN = (n: number): string => n.toLocaleString('en-US');
const fmtMs = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(0);
const fmtMiB = (b: number | null | undefined): string => (b === null || b === undefined ? '–' : (b / 1048576).toFixed(1));

/** A table with a row per system and a column per N; `cell` fills each. */
function perNTable(out: string[], title: string, ns: number[], systems: SystemName[], cell: (s: SystemName, n: number) => string): void {
  out.push(title);
  out.push('');
  out.push(`| system | ${ns.map((n) => `N = ${fmtN(n)}`).join(' | ')} |`);
  out.push(`|---|${ns.map(() => '---:').join('|')}|`);
  for (const s of systems) out.push(`| ${s} | ${ns.map((n) => cell(s, n)).join(' | ')} |`);
  out.push('');
}

export function renderMarkdown(r: BenchResults, chartPath: string): string {
  const ns = [...new Set(r.connect.map((p) => p.n))].sort((a, b) => a - b);
  const systems = ORDER.filter((s) => r.connect.some((p) => p.system === s) || r.programming.some((p) => p.system === s));
  const out: string[] = [];
  out.push(
    `Produced by \`${r.command}\` on ${r.startedAt.slice(0, 10)}: kernel ${r.host.kernel}, ${r.host.cpus} CPUs (${r.host.cpuModel}), ${r.host.iptables}, ${r.host.nft}.`,
  );
  out.push('');
  out.push(`![connect cost vs. number of services](${chartPath})`);
  out.push('');
  perNTable(
    out,
    '**Connect cost, as a ratio to a direct connect to the pod** (median of per-round means; µs in brackets; lower is better)',
    ns,
    systems,
    (s, n) => {
      const p = r.connect.find((c) => c.n === n && c.system === s);
      if (!p) return r.programming.find((c) => c.n === n && c.system === s && c.status === 'timeout') ? 'load timed out' : '–';
      return `${p.ratio.toFixed(2)}× (${(p.meanNs / 1000).toFixed(1)} µs)${p.failed ? ` ⚠ ${p.failed} failed` : ''}`;
    },
  );
  const balanced = systems.filter((x) => x !== 'direct');
  perNTable(
    out,
    '**Programming cost, ms** (program N+1 services from nothing / apply one endpoint change with them present)',
    ns,
    balanced,
    (s, n) => {
      const p = r.programming.find((c) => c.n === n && c.system === s);
      if (!p) return '–';
      if (p.status === 'timeout') return `> ${fmtMs(p.programMs)} (timed out)`;
      const partial = p.details.partialChangeMs as number | null | undefined;
      return `${fmtMs(p.programMs)} / ${fmtMs(p.changeMs)}${partial !== undefined ? ` (partial ${fmtMs(partial)})` : ''}`;
    },
  );
  perNTable(
    out,
    "**Memory, MiB** (socklb: map memory as bpftool reports it (memlock) + the programming process's RSS; rulesets: size of `iptables-save` / `nft list ruleset` text + peak RSS of `iptables-restore` / `nft`)",
    ns,
    balanced,
    (s, n) => {
      const m = r.memory.find((c) => c.n === n && c.system === s);
      if (!m) return '–';
      return s === 'socklb'
        ? `maps ${fmtMiB(m.kernelBytes)} + RSS ${fmtMiB(m.processRssBytes)}`
        : `text ${fmtMiB(m.textBytes)} + RSS ${fmtMiB(m.processRssBytes)}`;
    },
  );
  if (r.scrape?.length) {
    perNTable(
      out,
      '**Metrics scrape, ms** (socklb: `GET /metrics` over loopback with N+1 services programmed, median of 5 scrapes, CPU ms in brackets; then with `--metrics-per-backend`)',
      ns,
      ['socklb'],
      (_s, n) => {
        const p = r.scrape?.find((c) => c.n === n);
        return p ? `${fmtMs(p.ms)} (${fmtMs(p.cpuMs)}) / ${fmtMs(p.perBackendMs)} (${fmtMs(p.perBackendCpuMs)})` : '–';
      },
    );
  }
  if (r.hook?.length) {
    const features = r.hook[0]!.features.join(' ');
    perNTable(
      out,
      `**The connect hook's own cost, ns per run** (\`bpf_enable_stats\`: run_time_ns / run_cnt of cgroup/connect4 for a balanced connect / a connect to an address that is no service; in brackets, less an empty connect4 program's cost over the same connects, measured beside it; kernel features: ${features})`,
      ns,
      ['socklb'],
      (_s, n) => {
        const p = r.hook?.find((c) => c.n === n);
        if (!p) return '–';
        const net = (ns: number) => (ns - p.floorNs).toFixed(0);
        return `${p.balancedNs.toFixed(0)} (${net(p.balancedNs)}) / ${p.missNs.toFixed(0)} (${net(p.missNs)})`;
      },
    );
  }
  out.push('**Balance** (connections per backend; max/min ratio, 1.00 is perfect)');
  out.push('');
  out.push('| system | backends | connections | max/min | per backend |');
  out.push('|---|---:|---:|---:|---|');
  for (const b of r.balance) {
    const counts = Object.entries(b.counts)
      .sort(([a], [c]) => a.localeCompare(c, 'en', { numeric: true }))
      .map(([, v]) => v)
      .join(' ');
    out.push(
      `| ${b.system} | ${b.backends} | ${fmtN(b.ok)}${b.failed ? ` (+${b.failed} failed)` : ''} | ${b.maxMinRatio.toFixed(2)} | ${counts} |`,
    );
  }
  out.push('');
  if (r.xdp) out.push(renderXdpPacket(r.xdp));
  return `${out.join('\n')}\n`;
}

/** Replaces the generated section of docs/benchmarks.md (between the markers), or appends one. */
export function updateDocs(path: string, section: string): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const block = `${BEGIN}\n${section}${END}\n`;
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + END.length + 1) : `${text.trimEnd()}\n\n${block}`;
  writeFileSync(path, next);
}
