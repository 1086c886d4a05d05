// kube-proxy's rules for traffic from outside, as the generators write them (the cluster lab's
// kernel test proves they forward; these pin the shape cheaply).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { iptSvcChain, nftEndpointChain } from '../../../src/lab/rules/chain-names.ts';
import { iptablesRestore } from '../../../src/lab/rules/iptables.ts';
import { nftablesRuleset } from '../../../src/lab/rules/nftables.ts';
import { type BenchService, clusterOf, dialledService } from '../../../src/lab/services.ts';

function nodePort(extra: Partial<BenchService> = {}): BenchService {
  return {
    namespace: 'lab',
    name: 'web',
    portName: 'http',
    clusterIP: '10.96.0.10',
    port: 80,
    protocol: 'TCP',
    endpoints: [
      { ip: '10.244.1.11', port: 8080, nodeName: 'node-a' },
      { ip: '10.244.2.11', port: 8080, nodeName: 'node-b' },
    ],
    nodePort: 30080,
    ...extra,
  };
}

const lines = (text: string, re: RegExp): string[] => text.split('\n').filter((l) => re.test(l));

test('iptables: a NodePort jumps to KUBE-EXT, which masquerades and goes to KUBE-SVC (same hash)', () => {
  const s = nodePort();
  const svc = iptSvcChain(s);
  const ext = svc.replace('KUBE-SVC-', 'KUBE-EXT-');
  const text = iptablesRestore([s], { nodeName: 'node-a' });
  assert.equal(lines(text, /^-A KUBE-NODEPORTS /), [
    `-A KUBE-NODEPORTS -m comment --comment lab/web:http -m tcp -p tcp --dport 30080 -j ${ext}`,
  ]);
  assert.equal(lines(text, new RegExp(`^-A ${ext} `)), [
    `-A ${ext} -m comment --comment "masquerade traffic for lab/web:http external destinations" -j KUBE-MARK-MASQ`,
    `-A ${ext} -j ${svc}`,
  ]);
});

test('iptables: Local picks among this node’s endpoints only, without masquerade; none here: dropped', () => {
  const s = nodePort({ externalTrafficPolicy: 'Local' });
  const svl = iptSvcChain(s).replace('KUBE-SVC-', 'KUBE-SVL-');
  const onA = iptablesRestore([s], { nodeName: 'node-a' });
  const picks = lines(onA, new RegExp(`^-A ${svl} `));
  assert.is(picks.length, 1);
  assert.match(picks[0]!, /10\.244\.1\.11:8080/);
  const onC = iptablesRestore([{ ...s, endpoints: s.endpoints.filter((e) => e.nodeName === 'node-b') }], { nodeName: 'node-a' });
  assert.equal(lines(onC, /KUBE-EXT-|KUBE-SVL-/), []);
  assert.is(lines(onC, /^-A KUBE-EXTERNAL-SERVICES .*--dport 30080 -j DROP$/).length, 1);
});

test('iptables: source ranges drop other sources of the LoadBalancer IP, matched before DNAT', () => {
  const s = nodePort({ loadBalancerIPs: ['192.168.78.10'], loadBalancerSourceRanges: ['192.168.77.100/32'] });
  const fw = iptSvcChain(s).replace('KUBE-SVC-', 'KUBE-FW-');
  const text = iptablesRestore([s]);
  assert.is(lines(text, new RegExp(`^-A KUBE-PROXY-FIREWALL .*--ctorigdst 192\\.168\\.78\\.10 --ctorigdstport 80 -j ${fw}$`)).length, 1);
  assert.equal(lines(text, new RegExp(`^-A ${fw} `)), [
    `-A ${fw} -s 192.168.77.100/32 -j RETURN`,
    `-A ${fw} -m comment --comment "other traffic to lab/web:http loadbalancer IP" -j DROP`,
  ]);
});

test('nftables IPv6: an ip6 table, chain names without colons, bracketed DNAT targets, the node’s NodePort address', () => {
  const s = nodePort({ clusterIP: 'fd00:10:96::10', endpoints: [{ ip: 'fd00:10:244:1::11', port: 8080, nodeName: 'node-a' }] });
  const text = nftablesRuleset([s], {
    family: 6,
    nodePortAddresses: ['fd00:77::11'],
    clusterCidr: 'fd00:10:244::/56',
    serviceCidr: 'fd00:10:96::/112',
  });
  assert.ok(text.split('\n').every((l) => l === '' || l.includes('ip6 kube-proxy')));
  assert.not.match(nftEndpointChain(s, s.endpoints[0]!), /:/);
  assert.match(text, /dnat to \[fd00:10:244:1::11\]:8080/);
  assert.match(text, /add element ip6 kube-proxy nodeport-ips \{ fd00:77::11 \}/);
  assert.match(text, /add element ip6 kube-proxy service-nodeports \{ tcp \. 30080 : goto external-/);
});

test('ClusterIP-only services: the external options change nothing', () => {
  const cluster = clusterOf(3, [dialledService('target', '10.96.0.10', ['10.244.0.11', '10.244.0.12'])]);
  assert.is(iptablesRestore(cluster, { nodeName: 'node-a' }), iptablesRestore(cluster));
  assert.not.match(nftablesRuleset(cluster), /external-|add element [^\n]*nodeport-ips/);
});

test.run();
