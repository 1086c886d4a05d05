// The NodePort chart as a self-contained SVG: for each system, its median request rate and
// throughput as ratios to the pod dialled directly in the same run (bars), so runs on machines of
// any speed read alike.

import type { NodePortRow } from './nodeport.ts';

const SYSTEMS = [
  { system: 'direct', label: 'direct to the pod', color: '#555555' },
  { system: 'iptables', label: 'kube-proxy iptables', color: '#c0392b' },
  { system: 'nftables', label: 'kube-proxy nftables', color: '#1f5fbf' },
  { system: 'socklb', label: 'socklb (XDP)', color: '#1b7f3b' },
] as const;

const W = 760;
const H = 400;
const M = { left: 60, right: 20, top: 56, bottom: 70 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median request rate and throughput of each system, as ratios to direct. */
export function nodePortRatios(rows: NodePortRow[]): { system: string; requests: number; throughput: number }[] {
  const of = (system: string) => rows.filter((r) => r.system === system);
  const rate = (system: string) => median(of(system).map((r) => r.http.requestsPerSec));
  const bits = (system: string) => median(of(system).map((r) => r.throughput.bitsPerSec));
  if (of('direct').length === 0) throw new Error('no direct rounds: the ratios have no baseline');
  return SYSTEMS.filter((s) => of(s.system).length > 0).map((s) => ({
    system: s.system,
    requests: rate(s.system) / rate('direct'),
    throughput: bits(s.system) / bits('direct'),
  }));
}

export function renderNodePortChart(rows: NodePortRow[], subtitle: string): string {
  const ratios = nodePortRatios(rows);
  const groups = ['requests', 'throughput'] as const;
  const titles = { requests: 'requests/s, a new connection each', throughput: 'throughput, one TCP stream' };
  const top = Math.max(1.2, Math.ceil(Math.max(...ratios.flatMap((r) => [r.requests, r.throughput])) * 5) / 5);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const y = (v: number) => M.top + ph - (ph * v) / top;
  const groupWidth = pw / groups.length;
  const bar = (groupWidth * 0.7) / ratios.length;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">NodePort from outside the node, to a pod on another node (ratio to the pod dialled directly)</text>`,
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`,
  ];
  for (let v = 0; v <= top + 1e-9; v += 0.2) {
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(1)}x</text>`);
  }
  groups.forEach((group, g) => {
    const x0 = M.left + g * groupWidth + groupWidth * 0.15;
    ratios.forEach((r, i) => {
      const style = SYSTEMS.find((s) => s.system === r.system)!;
      const value = r[group];
      const x = x0 + i * bar;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y(value).toFixed(1)}" width="${(bar * 0.9).toFixed(1)}" height="${(y(0) - y(value)).toFixed(1)}" fill="${style.color}"><title>${esc(`${style.label}: ${value.toFixed(2)}x`)}</title></rect>`,
      );
      parts.push(
        `<text x="${(x + bar * 0.45).toFixed(1)}" y="${(y(value) - 4).toFixed(1)}" text-anchor="middle">${value.toFixed(2)}</text>`,
      );
    });
    parts.push(
      `<text x="${(M.left + (g + 0.5) * groupWidth).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${titles[group]}</text>`,
    );
  });
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  ratios.forEach((r, i) => {
    const style = SYSTEMS.find((s) => s.system === r.system)!;
    const lx = M.left + i * (pw / ratios.length);
    parts.push(`<rect x="${lx}" y="${H - 28}" width="14" height="10" fill="${style.color}"/>`);
    parts.push(`<text x="${lx + 20}" y="${H - 19}">${esc(style.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
