import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodePortRow } from '../../../bench/nodeport.ts';
import { nodePortRatios, renderNodePortChart } from '../../../bench/nodeport-chart.ts';

function row(system: NodePortRow['system'], requestsPerSec: number, bitsPerSec: number): NodePortRow {
  return {
    system,
    target: 'x',
    http: { command: 'wrk', requestsPerSec, bytesPerSec: 0, requests: 0, errors: 0, latencyAvgMs: 0 },
    throughput: { command: 'iperf3', bitsPerSec, retransmits: 0 },
  };
}

test('ratios are medians over the rounds against the direct median', () => {
  const rows = [
    row('direct', 1000, 2e9),
    row('direct', 3000, 2e9),
    row('direct', 2000, 2e9),
    row('socklb', 1500, 1e9),
    row('socklb', 500, 1e9),
    row('socklb', 1000, 3e9),
  ];
  assert.equal(nodePortRatios(rows), [
    { system: 'direct', requests: 1, throughput: 1 },
    { system: 'socklb', requests: 0.5, throughput: 0.5 },
  ]);
  assert.throws(() => nodePortRatios([row('socklb', 1, 1)]), /no direct rounds/);
});

test('the chart has a bar per system and measure, labelled with its ratio', () => {
  const svg = renderNodePortChart([row('direct', 2000, 2e9), row('iptables', 1600, 1e9), row('socklb', 1800, 1.5e9)], 'test run');
  assert.is(svg.match(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="#[0-9a-f]{6}"><title>/g)?.length, 6);
  for (const label of ['socklb (XDP): 0.90x', 'socklb (XDP): 0.75x', 'kube-proxy iptables: 0.80x', 'kube-proxy iptables: 0.50x']) {
    assert.ok(svg.includes(label), label);
  }
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>'));
});

test.run();
