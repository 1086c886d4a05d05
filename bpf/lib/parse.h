/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing shared by XDP and tc: Ethernet with at most one 802.1Q tag, IPv4 with options,
 * IPv6 with a bounded run of extension headers, and the first bytes of TCP, UDP and ICMP.
 */
#ifndef SOCKLB_PARSE_H
#define SOCKLB_PARSE_H

#include "common.h"

/* Macros in the kernel's headers, so not in vmlinux.h. */
#define ETH_ALEN	 6
#define ETH_HLEN	 14
#define ETH_P_IP	 0x0800
#define ETH_P_IPV6	 0x86DD
#define ETH_P_8021Q	 0x8100
#define IP_MF		 0x2000
#define IP_OFFSET	 0x1fff
#define IP_DF		 0x4000
#define NEXTHDR_HOP	 0
#define NEXTHDR_ROUTING	 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH	 51
#define NEXTHDR_DEST	 60
#define NEXTHDR_ICMP	 58
#define TCP_FLAG_FIN	 0x01
#define TCP_FLAG_SYN	 0x02
#define TCP_FLAG_RST	 0x04
#define TCP_FLAG_ACK	 0x10

/* Extension headers skipped before giving up (passing the packet): Cilium and Katran use 4 too. */
#define IPV6_MAX_EXT_HEADERS 4
/* Headers past this offset are not ours to parse: it bounds every offset for the verifier. */
#define PARSE_MAX_L4_OFF 255

/*
 * ctx->data and ctx->data_end, each read by its own instruction: clang otherwise merges reads in
 * different branches into one load from a computed ctx offset, which the verifier refuses.
 */
static __always_inline void *xdp_data(struct xdp_md *ctx)
{
	void *data;

	asm volatile("%0 = *(u32 *)(%1 + 0)" : "=r"(data) : "r"(ctx));
	return data;
}

static __always_inline void *xdp_data_end(struct xdp_md *ctx)
{
	void *data_end;

	asm volatile("%0 = *(u32 *)(%1 + 4)" : "=r"(data_end) : "r"(ctx));
	return data_end;
}

/* Where a parsed packet's headers are, as offsets from its start. */
struct pkt {
	__u32 l3_off; /* IPv4 or IPv6 header */
	__u32 l4_off; /* TCP, UDP or ICMP header */
	__u8 family;  /* 4 or 6 */
	__u8 proto;   /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or NEXTHDR_ICMP */
	__u8 vlan;    /* one 802.1Q tag sits between the MAC addresses and the EtherType */
	__u8 pad;
};

/*
 * The headers as pointers. The masks restate bounds parse_pkt checked (l3_off <= 18, l4_off <=
 * PARSE_MAX_L4_OFF), which the verifier forgets once the offsets sit in a struct on the stack.
 */
static __always_inline void *l3_hdr(void *data, const struct pkt *p)
{
	return data + (p->l3_off & 0x1f);
}

static __always_inline void *l4_hdr(void *data, const struct pkt *p)
{
	return data + (p->l4_off & PARSE_MAX_L4_OFF);
}

/* The bytes of each transport header the datapath reads (ports, checksum; ICMP type to id). */
static __always_inline __u32 l4_min_len(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return sizeof(struct tcphdr);
	case IPPROTO_UDP:
		return sizeof(struct udphdr);
	default:
		return 8; /* ICMP and ICMPv6: type, code, checksum and 4 bytes */
	}
}

static __always_inline int parse_ipv4(void *data, void *data_end, struct pkt *p)
{
	struct iphdr *ip = data + p->l3_off;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end)
		return XDP_R_MALFORMED;
	hlen = ip->ihl * 4;
	if (ip->version != 4 || hlen < sizeof(*ip))
		return XDP_R_MALFORMED;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return XDP_R_FRAGMENT;
	p->family = 4;
	p->proto = ip->protocol;
	p->l4_off = p->l3_off + hlen;
	return 0;
}

static __always_inline int parse_ipv6(void *data, void *data_end, struct pkt *p)
{
	struct ipv6hdr *ip6 = data + p->l3_off;
	__u32 off = p->l3_off + sizeof(*ip6);
	__u8 nexthdr;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return XDP_R_MALFORMED;
	if (ip6->version != 6)
		return XDP_R_MALFORMED;
	nexthdr = ip6->nexthdr;
#pragma unroll
	for (i = 0; i <= IPV6_MAX_EXT_HEADERS; i++) {
		struct ipv6_opt_hdr *opt;

		if (nexthdr == NEXTHDR_FRAGMENT)
			return XDP_R_FRAGMENT;
		if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING &&
		    nexthdr != NEXTHDR_DEST && nexthdr != NEXTHDR_AUTH)
			break;
		if (i == IPV6_MAX_EXT_HEADERS)
			return XDP_R_OTHER_PROTO; /* more extension headers than we skip */
		opt = data + (off & 0xff);
		if ((void *)(opt + 1) > data_end)
			return XDP_R_MALFORMED;
		/* AH counts its length in 4-byte words less 2, the others in 8-byte words less 1.
		 */
		off += nexthdr == NEXTHDR_AUTH ? (opt->hdrlen + 2) * 4 : (opt->hdrlen + 1) * 8;
		nexthdr = opt->nexthdr;
		if (off > PARSE_MAX_L4_OFF)
			return XDP_R_OTHER_PROTO;
	}
	p->family = 6;
	p->proto = nexthdr;
	p->l4_off = off;
	return 0;
}

/*
 * Finds the headers of an IPv4 or IPv6 TCP, UDP or ICMP packet. Returns 0, or the enum
 * xdp_reason the packet is passed untouched for: every header it reports is in the packet.
 */
static __always_inline int parse_pkt(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;
	__be16 proto;
	int ret;

	if ((void *)(eth + 1) > data_end)
		return XDP_R_MALFORMED;
	proto = eth->h_proto;
	p->l3_off = sizeof(*eth);
	p->vlan = 0;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > data_end)
			return XDP_R_MALFORMED;
		proto = vh->h_vlan_encapsulated_proto;
		p->l3_off += sizeof(*vh);
		p->vlan = 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		ret = parse_ipv4(data, data_end, p);
	else if (proto == bpf_htons(ETH_P_IPV6))
		ret = parse_ipv6(data, data_end, p);
	else
		return XDP_R_OTHER_PROTO;
	if (ret)
		return ret;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_ICMP &&
	    p->proto != NEXTHDR_ICMP)
		return XDP_R_OTHER_PROTO;
	if (p->l4_off > PARSE_MAX_L4_OFF)
		return XDP_R_OTHER_PROTO;
	if (data + p->l4_off + l4_min_len(p->proto) > data_end)
		return XDP_R_MALFORMED;
	return 0;
}

#endif /* SOCKLB_PARSE_H */
