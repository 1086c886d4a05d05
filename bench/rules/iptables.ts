// kube-proxy's iptables mode, written as its proxier writes it (pkg/proxy/iptables/proxier.go):
// KUBE-SERVICES matches each ClusterIP:port and jumps to KUBE-SVC-<hash>, which marks off-cluster
// sources for masquerade and picks an endpoint with `-m statistic --mode random --probability 1/k`
// (k = endpoints still to choose from); each KUBE-SEP-<hash> marks hairpin traffic and DNATs.
// The same text loads with the legacy and the nft back end of iptables-restore.

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
}

function probability(k: number): string {
  return (1 / k).toFixed(10);
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
  for (const s of cluster) {
    const name = servicePortName(s);
    const svc = iptSvcChain(s);
    const proto = s.protocol.toLowerCase();
    const clusterIpComment = `-m comment --comment "${name} cluster IP"`;
    natRules.push(`-A KUBE-SERVICES ${clusterIpComment} -m ${proto} -p ${proto} -d ${s.clusterIP} --dport ${s.port} -j ${svc}`);
    if (write && !write.has(name)) continue;
    natChains.push(`:${svc} - [0:0]`);
    svcRules.push(
      `-A ${svc} ${clusterIpComment} -m ${proto} -p ${proto} -d ${s.clusterIP} --dport ${s.port} ! -s ${POD_CIDR} -j KUBE-MARK-MASQ`,
    );
    s.endpoints.forEach((e, i) => {
      const sep = iptSepChain(s, e);
      const left = s.endpoints.length - i;
      const comment = large ? '' : `-m comment --comment "${name} -> ${endpointText(e)}" `;
      const pick = left > 1 ? `-m statistic --mode random --probability ${probability(left)} ` : '';
      svcRules.push(`-A ${svc} ${comment}${pick}-j ${sep}`);
      natChains.push(`:${sep} - [0:0]`);
      const sepComment = large ? '' : `-m comment --comment ${name} `;
      svcRules.push(`-A ${sep} ${sepComment}-s ${e.ip} -j KUBE-MARK-MASQ`);
      svcRules.push(`-A ${sep} ${sepComment}-m ${proto} -p ${proto} -j DNAT --to-destination ${endpointText(e)}`);
    });
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
