// kube-proxy's iptables mode, written as its proxier writes it (pkg/proxy/iptables/proxier.go):
// KUBE-SERVICES matches each ClusterIP:port and jumps to KUBE-SVC-<hash>, which marks off-cluster
// sources for masquerade and picks an endpoint with `-m statistic --mode random --probability 1/k`
// (k = endpoints still to choose from); each KUBE-SEP-<hash> marks hairpin traffic and DNATs.
// The same text loads with the legacy and the nft back end of iptables-restore, and with
// ip6tables-restore when the services' addresses are IPv6 (give that family's clusterCidr).
//
// Traffic from outside (the cluster lab's NodePort baseline), as kube-proxy >= 1.27 writes it:
// NodePorts (KUBE-NODEPORTS), externalIPs and LoadBalancer IPs (KUBE-SERVICES) jump to
// KUBE-EXT-<hash>, which masquerades and goes to KUBE-SVC-<hash> (`externalTrafficPolicy: Cluster`)
// or, for `Local`, goes to KUBE-SVL-<hash> over this node's endpoints only and keeps the client's
// address; with no local endpoint the filter table drops it. loadBalancerSourceRanges: the filter
// table's KUBE-PROXY-FIREWALL sends the LoadBalancer IP's traffic to KUBE-FW-<hash>, which RETURNs
// the allowed sources and drops the rest.

import { type BenchService, POD_CIDR } from '../services.ts';
import { endpointText, iptSepChain, iptSvcChain, servicePortName } from './chain-names.ts';

/** kube-proxy drops per-endpoint comments above this many endpoints (largeClusterEndpointsThreshold). */
const LARGE_CLUSTER_ENDPOINTS = 1000;
const MASQ_MARK = '0x4000';

/**
 * The built-in chains' jumps into kube-proxy's chains, per table. kube-proxy installs these once at
 * start-up (iptables -I); a full-table restore (see `full`) carries them along.
 */
const HOOKS = {
  filter: [
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  ],
  nat: [
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  ],
};

/** Empties both tables (what a teardown restores). */
export const IPTABLES_EMPTY = '*filter\nCOMMIT\n*nat\nCOMMIT\n';

export interface IptablesRestoreOptions {
  /** Chains to delete (-X), e.g. the endpoint chain of a removed endpoint. */
  staleChains?: string[];
  /**
   * Write only the top-level chains plus these services' chains, as kube-proxy's partial sync
   * (MinimizeIPTablesRestore) does; default: every chain (a full sync).
   */
  onlyServices?: BenchService[];
  /**
   * Replace both tables whole, built-in chains and their jumps included (plain iptables-restore).
   * Without it the text is for `iptables-restore --noflush`, as kube-proxy runs it.
   */
  full?: boolean;
  /** The node the rules are written for: `externalTrafficPolicy: Local` chooses its endpoints only. */
  nodeName?: string;
  /** The cluster's pod CIDR of the services' family (default POD_CIDR): other sources are masqueraded. */
  clusterCidr?: string;
}

function probability(k: number): string {
  return (1 / k).toFixed(10);
}

/** KUBE-EXT-, KUBE-SVL-, KUBE-FW-: the same hash as the service's KUBE-SVC- chain. */
function siblingChain(svc: string, prefix: string): string {
  return svc.replace('KUBE-SVC-', prefix);
}

/** The `-m statistic` jumps that pick one of `endpoints` uniformly, each to its KUBE-SEP chain. */
function pickRules(chain: string, s: BenchService, endpoints: BenchService['endpoints'], comments: boolean): string[] {
  const name = servicePortName(s);
  return endpoints.map((e, i) => {
    const left = endpoints.length - i;
    const comment = comments ? `-m comment --comment "${name} -> ${endpointText(e)}" ` : '';
    const pick = left > 1 ? `-m statistic --mode random --probability ${probability(left)} ` : '';
    return `-A ${chain} ${comment}${pick}-j ${iptSepChain(s, e)}`;
  });
}

interface ExternalLines {
  filterChains: string[];
  filterRules: string[];
  natChains: string[];
  /** Jumps from the top-level chains (written on every sync, as the ClusterIP jumps are). */
  natJumps: string[];
  /** The service's own KUBE-EXT/KUBE-SVL chains (written with its other chains). */
  natRules: string[];
}

/** NodePort, externalIPs, LoadBalancer IPs and their source ranges of one service port. */
function externalLines(s: BenchService, svc: string, clusterCidr: string, nodeName: string | undefined, comments: boolean): ExternalLines {
  const out: ExternalLines = { filterChains: [], filterRules: [], natChains: [], natJumps: [], natRules: [] };
  const externalIps = [...(s.externalIPs ?? []), ...(s.loadBalancerIPs ?? [])];
  if (s.nodePort === undefined && externalIps.length === 0) return out;
  const name = servicePortName(s);
  const proto = s.protocol.toLowerCase();
  const match = `-m ${proto} -p ${proto}`;
  const local = s.externalTrafficPolicy === 'Local';
  const localEndpoints = s.endpoints.filter((e) => e.nodeName !== undefined && e.nodeName === nodeName);
  const ranges = s.loadBalancerSourceRanges ?? [];
  if (ranges.length > 0 && (s.loadBalancerIPs ?? []).length > 0) {
    const fw = siblingChain(svc, 'KUBE-FW-');
    out.filterChains.push(`:${fw} - [0:0]`);
    for (const lb of s.loadBalancerIPs ?? []) {
      // Matched on the original destination: in FORWARD and INPUT the packet is already DNATed.
      out.filterRules.push(
        `-A KUBE-PROXY-FIREWALL -m comment --comment "${name} traffic not accepted by ${fw}" -p ${proto} -m conntrack --ctorigdst ${lb} --ctorigdstport ${s.port} -j ${fw}`,
      );
    }
    for (const r of ranges) out.filterRules.push(`-A ${fw} -s ${r} -j RETURN`);
    out.filterRules.push(`-A ${fw} -m comment --comment "other traffic to ${name} loadbalancer IP" -j DROP`);
  }
  if (local && localEndpoints.length === 0) {
    // kube-proxy's verdict for a Local service without an endpoint here: drop, in the filter table.
    const why = `-m comment --comment "${name} has no local endpoints"`;
    for (const ip of externalIps) out.filterRules.push(`-A KUBE-EXTERNAL-SERVICES ${why} ${match} -d ${ip} --dport ${s.port} -j DROP`);
    if (s.nodePort !== undefined) {
      out.filterRules.push(`-A KUBE-EXTERNAL-SERVICES ${why} -m addrtype --dst-type LOCAL ${match} --dport ${s.nodePort} -j DROP`);
    }
    return out;
  }
  const ext = siblingChain(svc, 'KUBE-EXT-');
  out.natChains.push(`:${ext} - [0:0]`);
  for (const ip of s.externalIPs ?? []) {
    out.natJumps.push(`-A KUBE-SERVICES -m comment --comment "${name} external IP" ${match} -d ${ip} --dport ${s.port} -j ${ext}`);
  }
  for (const ip of s.loadBalancerIPs ?? []) {
    out.natJumps.push(`-A KUBE-SERVICES -m comment --comment "${name} loadbalancer IP" ${match} -d ${ip} --dport ${s.port} -j ${ext}`);
  }
  if (s.nodePort !== undefined)
    out.natJumps.push(`-A KUBE-NODEPORTS -m comment --comment ${name} ${match} --dport ${s.nodePort} -j ${ext}`);
  if (!local) {
    out.natRules.push(
      `-A ${ext} -m comment --comment "masquerade traffic for ${name} external destinations" -j KUBE-MARK-MASQ`,
      `-A ${ext} -j ${svc}`,
    );
    return out;
  }
  const svl = siblingChain(svc, 'KUBE-SVL-');
  out.natChains.push(`:${svl} - [0:0]`);
  out.natRules.push(
    `-A ${ext} -m comment --comment "pod traffic for ${name} external destinations" -s ${clusterCidr} -j ${svc}`,
    `-A ${ext} -m comment --comment "masquerade LOCAL traffic for ${name} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
    `-A ${ext} -m comment --comment "route LOCAL traffic for ${name} external destinations" -m addrtype --src-type LOCAL -j ${svc}`,
    `-A ${ext} -j ${svl}`,
    ...pickRules(svl, s, localEndpoints, comments),
  );
  return out;
}

/** The `iptables-restore --noflush` input of one sync. */
export function iptablesRestore(cluster: BenchService[], opts: IptablesRestoreOptions = {}): string {
  const endpoints = cluster.reduce((n, s) => n + s.endpoints.length, 0);
  const large = endpoints > LARGE_CLUSTER_ENDPOINTS;
  const write = opts.onlyServices ? new Set(opts.onlyServices.map(servicePortName)) : undefined;
  const filterChains = [
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
  ];
  const filterRules = [
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT`,
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  ];
  const natChains = [':KUBE-NODEPORTS - [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-POSTROUTING - [0:0]'];
  const natRules: string[] = [
    `-A KUBE-POSTROUTING -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${MASQ_MARK}`,
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${MASQ_MARK}`,
  ];
  const svcRules: string[] = [];
  const clusterCidr = opts.clusterCidr ?? POD_CIDR;
  for (const s of cluster) {
    const name = servicePortName(s);
    const svc = iptSvcChain(s);
    const proto = s.protocol.toLowerCase();
    const clusterIpComment = `-m comment --comment "${name} cluster IP"`;
    natRules.push(`-A KUBE-SERVICES ${clusterIpComment} -m ${proto} -p ${proto} -d ${s.clusterIP} --dport ${s.port} -j ${svc}`);
    const ext = externalLines(s, svc, clusterCidr, opts.nodeName, !large);
    filterChains.push(...ext.filterChains);
    filterRules.push(...ext.filterRules);
    natRules.push(...ext.natJumps);
    if (write && !write.has(name)) continue;
    natChains.push(`:${svc} - [0:0]`, ...ext.natChains);
    svcRules.push(
      `-A ${svc} ${clusterIpComment} -m ${proto} -p ${proto} -d ${s.clusterIP} --dport ${s.port} ! -s ${clusterCidr} -j KUBE-MARK-MASQ`,
    );
    const picks = pickRules(svc, s, s.endpoints, !large);
    s.endpoints.forEach((e, i) => {
      const sep = iptSepChain(s, e);
      svcRules.push(picks[i]!);
      natChains.push(`:${sep} - [0:0]`);
      const sepComment = large ? '' : `-m comment --comment ${name} `;
      svcRules.push(`-A ${sep} ${sepComment}-s ${e.ip} -j KUBE-MARK-MASQ`);
      svcRules.push(`-A ${sep} ${sepComment}-m ${proto} -p ${proto} -j DNAT --to-destination ${endpointText(e)}`);
    });
    svcRules.push(...ext.natRules);
  }
  natRules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  // A stale chain is declared (so flushed) and then deleted, as kube-proxy writes it.
  for (const c of opts.staleChains ?? []) natChains.push(`:${c} - [0:0]`);
  const stale = (opts.staleChains ?? []).map((c) => `-X ${c}`);
  const hooks = opts.full ? HOOKS : { filter: [], nat: [] };
  const declared = (lines: string[]) => lines.filter((l) => l.startsWith(':'));
  const rules = (lines: string[]) => lines.filter((l) => !l.startsWith(':'));
  return [
    '*filter',
    ...declared(hooks.filter),
    ...filterChains,
    ...rules(hooks.filter),
    ...filterRules,
    'COMMIT',
    '*nat',
    ...declared(hooks.nat),
    ...natChains,
    ...rules(hooks.nat),
    ...natRules,
    ...svcRules,
    ...stale,
    'COMMIT',
    '',
  ].join('\n');
}
