/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Forwarding a translated packet out of XDP: FIB lookup, TTL, MAC addresses, redirect. */
#ifndef SOCKLB_FIB_H
#define SOCKLB_FIB_H

#include "conntrack.h"
#include "csum.h"
#include "parse.h"

/*
 * The stack forwards the packet instead: counted, and passed as translated. The stack does what
 * XDP cannot (resolve a neighbour, send ICMP time exceeded, reach a VLAN device); a SNAT packet
 * then carries a node address as its source, which the stack accepts with accept_local=1.
 */
static __always_inline int fib_stack(void)
{
	xdp_count(XDP_R_STACK_FORWARD);
	return XDP_PASS;
}

/* Sends the packet where the FIB said: the same device (XDP_TX) or another one (redirect). */
static __always_inline int fib_send(struct xdp_md *ctx, const struct pkt *p,
				    const struct bpf_fib_lookup *fib)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib->ifindex, 0);
}

/* What a FIB answer other than success means for the packet. */
static __always_inline int fib_failed(long rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		xdp_count(XDP_R_FIB_DROP);
		return XDP_DROP;
	default: /* no neighbour yet, forwarding off, not forwarded, ... */
		return fib_stack();
	}
}

/* Whether every translated packet goes to the stack (LB_CFG_F_STACK_FORWARD) or has a VLAN tag. */
static __always_inline bool fib_use_stack(const struct pkt *p)
{
	const struct lb_node_config *cfg = node_config();

	return p->vlan || (cfg && (cfg->flags & LB_CFG_F_STACK_FORWARD));
}

static __always_inline int fib_forward4(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct bpf_fib_lookup fib = {};
	struct iphdr *ip = l3_hdr(data, p);
	__be16 *ports = l4_hdr(data, p), old_ttl;
	long rc;

	if (fib_use_stack(p))
		return fib_stack();
	if ((void *)(ip + 1) > data_end || (void *)(ports + 2) > data_end)
		return XDP_DROP;
	if (ip->ttl <= 1)
		return fib_stack();
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.sport = ports[0];
	fib.dport = ports[1];
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failed(rc);
	/* A router decrements the TTL; ttl and protocol share one checksummed 16-bit word. */
	old_ttl = *(__be16 *)&ip->ttl;
	ip->ttl--;
	ip->check = csum_apply(ip->check, csum_diff2(0, old_ttl, *(__be16 *)&ip->ttl));
	return fib_send(ctx, p, &fib);
}

static __noinline int fib_forward6(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct bpf_fib_lookup fib = {};
	struct ipv6hdr *ip6 = l3_hdr(data, p);
	__be16 *ports = l4_hdr(data, p);
	long rc;

	if (fib_use_stack(p))
		return fib_stack();
	if ((void *)(ip6 + 1) > data_end || (void *)(ports + 2) > data_end)
		return XDP_DROP;
	if (ip6->hop_limit <= 1)
		return fib_stack();
	fib.family = AF_INET6;
	fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
	fib.l4_protocol = p->proto;
	fib.sport = ports[0];
	fib.dport = ports[1];
	fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	__builtin_memcpy(fib.ipv6_src, &ip6->saddr, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, sizeof(fib.ipv6_dst));
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failed(rc);
	ip6->hop_limit--;
	return fib_send(ctx, p, &fib);
}

#endif /* SOCKLB_FIB_H */
