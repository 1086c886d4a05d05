// kube-proxy's nftables mode, written as its proxier writes it (pkg/proxy/nftables/proxier.go):
// one `ip kube-proxy` table; the `services` chain looks up daddr . proto . dport in the
// `service-ips` verdict map (one hash lookup, whatever the number of services), each service
// chain picks an endpoint with `numgen random mod n vmap`, each endpoint chain DNATs.

import { type BenchService, POD_CIDR, SERVICE_CIDR } from '../services.ts';
import { nftEndpointChain, nftServiceChain } from './chain-names.ts';

const T = 'ip kube-proxy';
const MASQ_MARK = '0x4000';

/** The fixed part of the table: base chains, helper chains, the maps and sets (empty). */
function base(): string[] {
  const key = 'ipv4_addr . inet_proto . inet_service : verdict';
  return [
    `add table ${T} { comment "rules for kube-proxy" ; }`,
    `add set ${T} cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`,
    `add set ${T} nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`,
    `add map ${T} firewall-ips { type ${key} ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
    `add map ${T} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
    `add map ${T} no-endpoint-services { type ${key} ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
    `add map ${T} service-ips { type ${key} ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${T} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add chain ${T} cluster-ips-check`,
    `add chain ${T} filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }`,
    `add chain ${T} filter-output-pre-dnat { type filter hook output priority -110 ; }`,
    `add chain ${T} filter-forward { type filter hook forward priority 0 ; }`,
    `add chain ${T} filter-input { type filter hook input priority 0 ; }`,
    `add chain ${T} filter-output { type filter hook output priority 0 ; }`,
    `add chain ${T} firewall-check`,
    `add chain ${T} mark-for-masquerade`,
    `add chain ${T} masquerading`,
    `add chain ${T} nat-output { type nat hook output priority -100 ; }`,
    `add chain ${T} nat-postrouting { type nat hook postrouting priority 100 ; }`,
    `add chain ${T} nat-prerouting { type nat hook prerouting priority -100 ; }`,
    `add chain ${T} nodeport-endpoints-check`,
    `add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`,
    `add chain ${T} services`,
    `add chain ${T} service-endpoints-check`,
    `add rule ${T} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
    `add rule ${T} cluster-ips-check ip daddr { ${SERVICE_CIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`,
    `add rule ${T} filter-prerouting-pre-dnat ct state new jump firewall-check`,
    `add rule ${T} filter-forward ct state new jump service-endpoints-check`,
    `add rule ${T} filter-forward ct state new jump cluster-ips-check`,
    `add rule ${T} filter-input ct state new jump nodeport-endpoints-check`,
    `add rule ${T} filter-input ct state new jump service-endpoints-check`,
    `add rule ${T} filter-output ct state new jump service-endpoints-check`,
    `add rule ${T} filter-output-pre-dnat ct state new jump firewall-check`,
    `add rule ${T} filter-output ct state new jump cluster-ips-check`,
    `add rule ${T} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips`,
    `add rule ${T} mark-for-masquerade mark set mark or ${MASQ_MARK}`,
    `add rule ${T} masquerading mark and ${MASQ_MARK} == 0 return`,
    `add rule ${T} masquerading mark set mark xor ${MASQ_MARK}`,
    `add rule ${T} masquerading masquerade fully-random`,
    `add rule ${T} nat-output jump services`,
    `add rule ${T} nat-postrouting jump masquerading`,
    `add rule ${T} nat-prerouting jump services`,
    `add rule ${T} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`,
    `add rule ${T} reject-chain reject`,
    `add rule ${T} services ip daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${T} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`,
    `add rule ${T} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services`,
  ];
}

interface Lines {
  /** `add chain` (and `flush chain`) lines: a transaction declares every chain before a rule jumps to it. */
  chains: string[];
  rules: string[];
}

function serviceLines(s: BenchService): Lines {
  const chain = nftServiceChain(s);
  const proto = s.protocol.toLowerCase();
  const picks = s.endpoints.map((e, i) => `${i} : goto ${nftEndpointChain(s, e)}`).join(' , ');
  const out: Lines = {
    chains: [`add chain ${T} ${chain}`, `flush chain ${T} ${chain}`],
    rules: [
      `add rule ${T} ${chain} ip daddr ${s.clusterIP} ip saddr != ${POD_CIDR} jump mark-for-masquerade`,
      `add rule ${T} ${chain} numgen random mod ${s.endpoints.length} vmap { ${picks} }`,
    ],
  };
  for (const e of s.endpoints) {
    const ep = nftEndpointChain(s, e);
    out.chains.push(`add chain ${T} ${ep}`, `flush chain ${T} ${ep}`);
    out.rules.push(
      `add rule ${T} ${ep} ip saddr ${e.ip} jump mark-for-masquerade`,
      `add rule ${T} ${ep} meta l4proto ${proto} dnat to ${e.ip}:${e.port}`,
    );
  }
  return out;
}

function elementLines(s: BenchService): string[] {
  const proto = s.protocol.toLowerCase();
  return [
    `add element ${T} cluster-ips { ${s.clusterIP} }`,
    `add element ${T} service-ips { ${s.clusterIP} . ${proto} . ${s.port} : goto ${nftServiceChain(s)} }`,
  ];
}

/** The `nft -f` input of a full sync from nothing: one transaction. */
export function nftablesRuleset(cluster: BenchService[]): string {
  const chains: string[] = [];
  const rules: string[] = [];
  for (const s of cluster) {
    const l = serviceLines(s);
    for (const line of l.chains) chains.push(line);
    for (const line of l.rules) rules.push(line);
  }
  const elements = cluster.flatMap(elementLines);
  return `${[...base(), ...chains, ...rules, ...elements].join('\n')}\n`;
}

/**
 * The transaction of a partial sync after one endpoint changed, as kube-proxy writes it: the new
 * endpoint chain, the service chain rewritten, the old endpoint chain deleted once unreferenced.
 */
export function nftablesEndpointChange(before: BenchService, after: BenchService): string {
  const old = new Set(after.endpoints.map((e) => `${e.ip}:${e.port}`));
  const removed = before.endpoints.filter((e) => !old.has(`${e.ip}:${e.port}`));
  const l = serviceLines(after);
  const deletes = removed.map((e) => `delete chain ${T} ${nftEndpointChain(before, e)}`);
  return `${[...l.chains, ...l.rules, ...deletes].join('\n')}\n`;
}

export const NFT_TABLE = T;
