// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Service traffic from outside the node: NodePorts, LoadBalancer IPs and external IPs balanced in
 * XDP on the node's devices, and the tc egress program that turns replies of local backends back.
 *
 * Interface for the agent
 * -----------------------
 * Programs: "xdp_lb" (SEC "xdp") on every device that receives service traffic from outside,
 * native or generic (BpfObject.attachXdp); "tc_lb_egress" (SEC "tc") on the egress of the same
 * devices (BpfObject.attachTc: tcx, else clsact), for replies of backends on this node. Both
 * live in this one object, so they share its maps; pin the links like the socket hooks'.
 * "xdp_pass" is for the peer of a veth that xdp_lb redirects into (see below).
 *
 * Shared maps (lib/maps.h): reuse the socket hooks' pins. The XDP program reads only the
 * external-scope frontends: for each NodePort (one entry per node address), LoadBalancer ingress
 * IP and externalIP the agent writes an lb4_key/lb6_key with scope LB_SCOPE_EXTERNAL and its own
 * lb_service (with externalTrafficPolicy: Local, a service_id whose slots list only backends with
 * LB_BE_F_LOCAL, and flag LB_SVC_F_LOCAL). LB_SVC_F_SOURCE_RANGES turns on the source check.
 * Backends on this node carry LB_BE_F_LOCAL: they get DNAT only, the others SNAT, or with
 * LB_CFG_F_DSR DSR to their node_address (of the same family), which must then be set.
 *
 * Own maps (lib/conntrack.h), pinned by the agent, sized before load:
 *   lb_node_config_v1   array[1] of struct lb_node_config; the agent writes it (SNAT addresses,
 *                       NAT port range, flags, DSR port; flow lifetimes, 0 for the defaults) and
 *                       may rewrite it at any time. Every node of a DSR cluster sets the same
 *                       dsr_port: it is what they decapsulate.
 *   lb4_src_ranges_v1,  LPM tries of struct lb4/lb6_src_range_key -> __u8 (1): the agent writes
 *   lb6_src_ranges_v1   one entry per service_id and loadBalancerSourceRanges prefix.
 *   lb4_ct_v1, lb6_ct_v1       LRU, flows (struct lb4/lb6_ct) with their TCP state and the time
 *   lb4_rnat_v1, lb6_rnat_v1   each side last sent; the programs write them, the agent only reads
 *                              (and may delete) them; keep them pinned across restarts. A SNAT port
 *                              comes back when a new flow draws it after its flow closed or idled
 *                              past its lifetime: no sweeper is needed.
 *   xdp_stats_v1        per-CPU counters indexed by enum xdp_reason.
 *
 * Host settings the datapath relies on: IP forwarding on (the stack forwards what XDP passes);
 * accept_local=1 on the devices when a SNAT packet may be passed to the stack (VLAN, unresolved
 * neighbour, LB_CFG_F_STACK_FORWARD); a device XDP redirects into must take XDP frames (a veth
 * needs an XDP program on its peer); the NAT port range outside ip_local_port_range; for DSR, a
 * node-to-node MTU 36 (IPv4) or 68 (IPv6) bytes above the clients' (sent with DF), and on each
 * node snat_address4/6 equal to the node_address the other nodes write for its backends: a node
 * decapsulates only what is sent to that address and dsr_port.
 */
#include "lib/nodeport.h"

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	return __xdp_lb(ctx);
}

/*
 * For the far end of a veth that xdp_lb redirects into (a pod, a lab's other namespace): veth
 * delivers a redirected frame only to a peer with an XDP program of its own.
 */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int tc_lb_egress(struct __sk_buff *skb)
{
	return __tc_lb_egress(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
