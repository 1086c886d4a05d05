// The connect-cost chart as a self-contained SVG (no browser, no dependency): microseconds per
// connect() against the number of other services, both axes logarithmic, one line per system.

import type { BenchResults, SystemName } from './types.ts';

const STYLE: Record<SystemName, { color: string; dash: string; label: string }> = {
  direct: { color: '#555555', dash: '4 3', label: 'direct to the pod (floor)' },
  socklb: { color: '#1b7f3b', dash: '', label: 'socklb' },
  nftables: { color: '#1f5fbf', dash: '', label: 'kube-proxy nftables' },
  'iptables-nft': { color: '#c0392b', dash: '', label: 'kube-proxy iptables (nft back end)' },
  'iptables-legacy': { color: '#e67e22', dash: '', label: 'kube-proxy iptables (legacy)' },
};

const W = 760;
const H = 460;
const M = { left: 70, right: 20, top: 50, bottom: 120 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  return out;
}

export function renderChart(r: BenchResults): string {
  const points = r.connect.filter((p) => Number.isFinite(p.meanNs) && p.meanNs > 0);
  const us = points.map((p) => p.meanNs / 1000);
  const ns = [...new Set(points.map((p) => p.n))].sort((a, b) => a - b);
  const xLo = Math.max(1, Math.min(...ns, 1));
  const xHi = Math.max(...ns, 10) * 1.5;
  const yLo = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...us)) * 0.9));
  const yHi = 10 ** Math.ceil(Math.log10(Math.max(...us, 10) * 1.1));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (n: number) => M.left + (pw * Math.log10(n / xLo)) / Math.log10(xHi / xLo);
  const y = (v: number) => M.top + ph - (ph * Math.log10(v / yLo)) / Math.log10(yHi / yLo);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Cost of one connect() to a ClusterIP vs. other services programmed</text>`,
  );
  parts.push(
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`kernel ${r.host.kernel}, ${r.host.cpus} CPUs, ${r.mode} run ${r.startedAt.slice(0, 10)}; median of ${String(r.params.rounds)} rounds`)}</text>`,
  );
  // Grid and axes.
  for (const v of niceTicks(yLo, yHi)) {
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1 ? v : v.toPrecision(1)}</text>`);
  }
  for (let e = 0; 10 ** e <= xHi; e++) {
    const v = 10 ** e;
    if (v < xLo) continue;
    parts.push(`<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${M.top}" y2="${M.top + ph}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${x(v).toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle">${v.toLocaleString('en-US')}</text>`);
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 34}" text-anchor="middle">other services programmed (N, log scale)</text>`);
  parts.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">µs per connect() (log scale)</text>`);
  // One line per system.
  const systems = (Object.keys(STYLE) as SystemName[]).filter((s) => points.some((p) => p.system === s));
  for (const s of systems) {
    const st = STYLE[s];
    const ps = points.filter((p) => p.system === s).sort((a, b) => a.n - b.n);
    const d = ps.map((p, i) => `${i ? 'L' : 'M'}${x(p.n).toFixed(1)} ${y(p.meanNs / 1000).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${st.color}" stroke-width="2.5"${st.dash ? ` stroke-dasharray="${st.dash}"` : ''}/>`);
    for (const p of ps) {
      parts.push(
        `<circle cx="${x(p.n).toFixed(1)}" cy="${y(p.meanNs / 1000).toFixed(1)}" r="4" fill="${st.color}"><title>${esc(`${st.label}, N=${p.n}: ${(p.meanNs / 1000).toFixed(1)} µs (${p.ratio.toFixed(2)}x direct)`)}</title></circle>`,
      );
    }
  }
  // Legend below the plot, two columns.
  systems.forEach((s, i) => {
    const st = STYLE[s];
    const lx = M.left + (i % 2) * (pw / 2);
    const ly = M.top + ph + 58 + Math.floor(i / 2) * 18;
    parts.push(
      `<line x1="${lx}" x2="${lx + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${st.color}" stroke-width="2.5"${st.dash ? ` stroke-dasharray="${st.dash}"` : ''}/>`,
    );
    parts.push(`<text x="${lx + 36}" y="${ly}">${esc(st.label)}</text>`);
  });
  const missing = r.programming.filter((p) => p.status === 'timeout');
  if (missing.length) {
    const note = missing.map((p) => `${p.system} at N=${p.n}`).join(', ');
    parts.push(
      `<text x="${M.left}" y="${H - 8}" fill="#a00" font-size="11">${esc(`not plotted: loading the rules took longer than ${Math.round(Number(r.params.capMs) / 1000)} s (${note})`)}</text>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
