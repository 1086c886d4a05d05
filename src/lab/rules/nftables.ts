// kube-proxy's nftables mode, written as its proxier writes it (pkg/proxy/nftables/proxier.go):
// one `ip kube-proxy` table; the `services` chain looks up daddr . proto . dport in the
// `service-ips` verdict map (one hash lookup, whatever the number of services), each service
// chain picks an endpoint with `numgen random mod n vmap`, each endpoint chain DNATs.
// IPv6 services go to an `ip6 kube-proxy` table of the same shape (family: 6).
//
// Traffic from outside (the cluster lab's NodePort baseline): `nodeport-ips` holds the node's
// addresses and `service-nodeports` maps proto . nodePort, `service-ips` also maps the externalIPs
// and LoadBalancer IPs, each to the service's `external-` chain: masquerade and on to the
// `service-` chain (`externalTrafficPolicy: Cluster`), or for `Local` on to a `local-` chain over
// this node's endpoints (none here: a drop verdict in the no-endpoint maps). LoadBalancer source
// ranges: `firewall-ips` sends the LoadBalancer IP to a `firewall-` chain before DNAT, which drops
// other sources.

import { type BenchService, POD_CIDR, SERVICE_CIDR } from '../services.ts';
import { endpointText, nftEndpointChain, nftServiceChain } from './chain-names.ts';

const MASQ_MARK = '0x4000';

export interface NftablesOptions {
  /** 4 (default): `ip kube-proxy`; 6: `ip6 kube-proxy`. The services' addresses must be of it. */
  family?: 4 | 6;
  /** The node the rules are written for: `externalTrafficPolicy: Local` chooses its endpoints only. */
  nodeName?: string;
  /** The node's addresses that accept NodePort traffic (kube-proxy's --nodeport-addresses). */
  nodePortAddresses?: string[];
  /** Pod CIDR of the family (default POD_CIDR): other sources are masqueraded. */
  clusterCidr?: string;
  /** Service CIDR of the family (default SERVICE_CIDR): unallocated ClusterIPs are dropped. */
  serviceCidr?: string;
}

interface Ctx {
  /** `ip kube-proxy` / `ip6 kube-proxy`. */
  t: string;
  /** `ip` / `ip6`: the address match keyword. */
  ip: string;
  addr: string;
  nodeName: string | undefined;
  nodePortAddresses: string[];
  clusterCidr: string;
  serviceCidr: string;
}

function ctx(o: NftablesOptions = {}): Ctx {
  const v6 = o.family === 6;
  return {
    t: v6 ? 'ip6 kube-proxy' : 'ip kube-proxy',
    ip: v6 ? 'ip6' : 'ip',
    addr: v6 ? 'ipv6_addr' : 'ipv4_addr',
    nodeName: o.nodeName,
    nodePortAddresses: o.nodePortAddresses ?? [],
    clusterCidr: o.clusterCidr ?? POD_CIDR,
    serviceCidr: o.serviceCidr ?? SERVICE_CIDR,
  };
}

/** The fixed part of the table: base chains, helper chains, the maps and sets (empty). */
function base(c: Ctx): string[] {
  const T = c.t;
  const key = `${c.addr} . inet_proto . inet_service : verdict`;
  return [
    `add table ${T} { comment "rules for kube-proxy" ; }`,
    `add set ${T} cluster-ips { type ${c.addr} ; comment "Active ClusterIPs" ; }`,
    `add set ${T} nodeport-ips { type ${c.addr} ; comment "IPs that accept NodePort traffic" ; }`,
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
    `add rule ${T} cluster-ips-check ${c.ip} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
    `add rule ${T} cluster-ips-check ${c.ip} daddr { ${c.serviceCidr} } drop comment "Drop traffic to unallocated ClusterIPs"`,
    `add rule ${T} filter-prerouting-pre-dnat ct state new jump firewall-check`,
    `add rule ${T} filter-forward ct state new jump service-endpoints-check`,
    `add rule ${T} filter-forward ct state new jump cluster-ips-check`,
    `add rule ${T} filter-input ct state new jump nodeport-endpoints-check`,
    `add rule ${T} filter-input ct state new jump service-endpoints-check`,
    `add rule ${T} filter-output ct state new jump service-endpoints-check`,
    `add rule ${T} filter-output-pre-dnat ct state new jump firewall-check`,
    `add rule ${T} filter-output ct state new jump cluster-ips-check`,
    `add rule ${T} firewall-check ${c.ip} daddr . meta l4proto . th dport vmap @firewall-ips`,
    `add rule ${T} mark-for-masquerade mark set mark or ${MASQ_MARK}`,
    `add rule ${T} masquerading mark and ${MASQ_MARK} == 0 return`,
    `add rule ${T} masquerading mark set mark xor ${MASQ_MARK}`,
    `add rule ${T} masquerading masquerade fully-random`,
    `add rule ${T} nat-output jump services`,
    `add rule ${T} nat-postrouting jump masquerading`,
    `add rule ${T} nat-prerouting jump services`,
    `add rule ${T} nodeport-endpoints-check ${c.ip} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`,
    `add rule ${T} reject-chain reject`,
    `add rule ${T} services ${c.ip} daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${T} services ${c.ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`,
    `add rule ${T} service-endpoints-check ${c.ip} daddr . meta l4proto . th dport vmap @no-endpoint-services`,
    ...c.nodePortAddresses.map((a) => `add element ${T} nodeport-ips { ${a} }`),
  ];
}

interface Lines {
  /** `add chain` (and `flush chain`) lines: a transaction declares every chain before a rule jumps to it. */
  chains: string[];
  rules: string[];
}

/** `external-`, `local-`, `firewall-`: the service chain's hash and name with another prefix. */
function siblingChain(s: BenchService, prefix: string): string {
  return nftServiceChain(s).replace(/^service-/, prefix);
}

function pickRule(c: Ctx, chain: string, s: BenchService, endpoints: BenchService['endpoints']): string {
  const picks = endpoints.map((e, i) => `${i} : goto ${nftEndpointChain(s, e)}`).join(' , ');
  return `add rule ${c.t} ${chain} numgen random mod ${endpoints.length} vmap { ${picks} }`;
}

const hasExternal = (s: BenchService): boolean =>
  s.nodePort !== undefined || (s.externalIPs ?? []).length > 0 || (s.loadBalancerIPs ?? []).length > 0;
const localEndpoints = (c: Ctx, s: BenchService): BenchService['endpoints'] =>
  s.endpoints.filter((e) => e.nodeName !== undefined && e.nodeName === c.nodeName);
/** A Local service without an endpoint on this node: its external traffic is dropped. */
const dropsExternal = (c: Ctx, s: BenchService): boolean => s.externalTrafficPolicy === 'Local' && localEndpoints(c, s).length === 0;

function serviceLines(c: Ctx, s: BenchService): Lines {
  const T = c.t;
  const chain = nftServiceChain(s);
  const proto = s.protocol.toLowerCase();
  const out: Lines = {
    chains: [`add chain ${T} ${chain}`, `flush chain ${T} ${chain}`],
    rules: [
      `add rule ${T} ${chain} ${c.ip} daddr ${s.clusterIP} ${c.ip} saddr != ${c.clusterCidr} jump mark-for-masquerade`,
      pickRule(c, chain, s, s.endpoints),
    ],
  };
  for (const e of s.endpoints) {
    const ep = nftEndpointChain(s, e);
    out.chains.push(`add chain ${T} ${ep}`, `flush chain ${T} ${ep}`);
    out.rules.push(
      `add rule ${T} ${ep} ${c.ip} saddr ${e.ip} jump mark-for-masquerade`,
      `add rule ${T} ${ep} meta l4proto ${proto} dnat to ${endpointText(e)}`,
    );
  }
  const ranges = s.loadBalancerSourceRanges ?? [];
  if (ranges.length > 0 && (s.loadBalancerIPs ?? []).length > 0) {
    const fw = siblingChain(s, 'firewall-');
    out.chains.push(`add chain ${T} ${fw}`, `flush chain ${T} ${fw}`);
    out.rules.push(`add rule ${T} ${fw} ${c.ip} saddr != { ${ranges.join(', ')} } drop`);
  }
  if (!hasExternal(s) || dropsExternal(c, s)) return out;
  const ext = siblingChain(s, 'external-');
  out.chains.push(`add chain ${T} ${ext}`, `flush chain ${T} ${ext}`);
  if (s.externalTrafficPolicy !== 'Local') {
    out.rules.push(`add rule ${T} ${ext} jump mark-for-masquerade`, `add rule ${T} ${ext} goto ${chain}`);
    return out;
  }
  const local = siblingChain(s, 'local-');
  out.chains.push(`add chain ${T} ${local}`, `flush chain ${T} ${local}`);
  out.rules.push(
    `add rule ${T} ${ext} ${c.ip} saddr ${c.clusterCidr} goto ${chain} comment "short-circuit pod traffic"`,
    `add rule ${T} ${ext} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`,
    `add rule ${T} ${ext} fib saddr type local goto ${chain} comment "short-circuit local traffic"`,
    `add rule ${T} ${ext} goto ${local}`,
    pickRule(c, local, s, localEndpoints(c, s)),
  );
  return out;
}

function elementLines(c: Ctx, s: BenchService): string[] {
  const T = c.t;
  const proto = s.protocol.toLowerCase();
  const out = [
    `add element ${T} cluster-ips { ${s.clusterIP} }`,
    `add element ${T} service-ips { ${s.clusterIP} . ${proto} . ${s.port} : goto ${nftServiceChain(s)} }`,
  ];
  if (!hasExternal(s)) return out;
  const externalIps = [...(s.externalIPs ?? []), ...(s.loadBalancerIPs ?? [])];
  const verdict = dropsExternal(c, s) ? 'drop' : `goto ${siblingChain(s, 'external-')}`;
  const services = dropsExternal(c, s) ? 'no-endpoint-services' : 'service-ips';
  const nodeports = dropsExternal(c, s) ? 'no-endpoint-nodeports' : 'service-nodeports';
  for (const ip of externalIps) out.push(`add element ${T} ${services} { ${ip} . ${proto} . ${s.port} : ${verdict} }`);
  if (s.nodePort !== undefined) out.push(`add element ${T} ${nodeports} { ${proto} . ${s.nodePort} : ${verdict} }`);
  if ((s.loadBalancerSourceRanges ?? []).length > 0) {
    for (const ip of s.loadBalancerIPs ?? []) {
      out.push(`add element ${T} firewall-ips { ${ip} . ${proto} . ${s.port} : goto ${siblingChain(s, 'firewall-')} }`);
    }
  }
  return out;
}

/** The `nft -f` input of a full sync from nothing: one transaction. */
export function nftablesRuleset(cluster: BenchService[], opts: NftablesOptions = {}): string {
  const c = ctx(opts);
  const chains: string[] = [];
  const rules: string[] = [];
  for (const s of cluster) {
    const l = serviceLines(c, s);
    for (const line of l.chains) chains.push(line);
    for (const line of l.rules) rules.push(line);
  }
  const elements = cluster.flatMap((s) => elementLines(c, s));
  return `${[...base(c), ...chains, ...rules, ...elements].join('\n')}\n`;
}

/**
 * The transaction of a partial sync after one endpoint changed, as kube-proxy writes it: the new
 * endpoint chain, the service chain rewritten, the old endpoint chain deleted once unreferenced.
 */
export function nftablesEndpointChange(before: BenchService, after: BenchService, opts: NftablesOptions = {}): string {
  const c = ctx(opts);
  const old = new Set(after.endpoints.map((e) => `${e.ip}:${e.port}`));
  const removed = before.endpoints.filter((e) => !old.has(`${e.ip}:${e.port}`));
  const l = serviceLines(c, after);
  const deletes = removed.map((e) => `delete chain ${c.t} ${nftEndpointChain(before, e)}`);
  return `${[...l.chains, ...l.rules, ...deletes].join('\n')}\n`;
}

export const NFT_TABLE = ctx().t;
