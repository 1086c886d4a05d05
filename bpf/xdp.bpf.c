// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Service traffic from outside the node: NodePorts, LoadBalancer IPs and external IPs balanced in
 * XDP on the node's devices, and the tc egress program that turns replies of local backends back.
 */
#include "lib/nodeport.h"

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct pkt p = {};
	int reason = parse_pkt(data, data_end, &p);

	if (reason) {
		xdp_count(reason);
		return XDP_PASS;
	}
	if (p.family == 4)
		return __xdp_lb4(ctx, &p);
	return __xdp_lb6(ctx, &p);
}

SEC("tc")
int tc_lb_egress(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct pkt p = {};

	/* Direct access reaches only the linear part: make the headers linear first. */
	bpf_skb_pull_data(skb, skb->len < 128 ? skb->len : 128);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (parse_pkt(data, data_end, &p))
		return TC_ACT_OK;
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP)
		return TC_ACT_OK;
	if (p.family == 4)
		return __tc_rev4(skb, &p);
	return __tc_rev6(skb, &p);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
