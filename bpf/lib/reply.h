/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Answers XDP sends back to a client in place of its packet: a TCP reset, or ICMP (ICMPv6) port
 * unreachable carrying the start of the packet, as kube-proxy's REJECT rules do.
 */
#ifndef SOCKLB_REPLY_H
#define SOCKLB_REPLY_H

#include "csum.h"
#include "headroom.h"
#include "parse.h"

#define ICMP_DEST_UNREACH   3
#define ICMP_PORT_UNREACH   3
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PORT_UNREACH 4
#define REPLY_TTL	    64
/* The most of the offending packet an ICMP error quotes: the verifier wants a bound. */
#define ICMP_QUOTE_MAX 160

/* What a reset says, computed from the segment it answers (RFC 9293 3.10.7.1). */
struct rst_fields {
	__be16 sport, dport; /* of the reset: the segment's ports swapped */
	__be32 seq, ack;
	__u8 flags;
};

/* Returns -1 when the segment is itself a reset (never answered) or its header is invalid. */
static __always_inline int rst_fields_of(const struct tcphdr *th, __u32 payload,
					 struct rst_fields *r)
{
	if (th->rst || th->doff < 5)
		return -1;
	r->sport = th->dest;
	r->dport = th->source;
	if (th->ack) {
		r->seq = th->ack_seq;
		r->ack = 0;
		r->flags = TCP_FLAG_RST;
	} else {
		r->seq = 0;
		r->ack = bpf_htonl(bpf_ntohl(th->seq) + payload + th->syn + th->fin);
		r->flags = TCP_FLAG_RST | TCP_FLAG_ACK;
	}
	return 0;
}

/* Writes the 20-byte reset at th; sum holds the pseudo-header's sum. */
static __always_inline void rst_write(struct tcphdr *th, const struct rst_fields *r, __u32 sum)
{
	__builtin_memset(th, 0, sizeof(*th));
	th->source = r->sport;
	th->dest = r->dport;
	th->seq = r->seq;
	th->ack_seq = r->ack;
	th->doff = 5;
	((__u8 *)th)[13] = r->flags;
	sum = csum_add(sum, csum_pseudo_len_proto(sizeof(*th), IPPROTO_TCP));
#pragma unroll
	for (int i = 0; i < 5; i++)
		sum = csum_add(sum, ((__u32 *)th)[i]);
	th->check = csum_fold(sum);
}

/* Swaps the MAC addresses: the answer goes back the way the packet came (VLAN tag kept). */
static __always_inline int eth_swap(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return 0;
}

/* A fresh IPv4 header of tot_len bytes from saddr to daddr, with its checksum. */
static __always_inline void ip4_write(struct iphdr *ip, __be32 saddr, __be32 daddr, __u16 tot_len,
				      __u8 proto)
{
	__u32 sum = 0;

	__builtin_memset(ip, 0, sizeof(*ip));
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = bpf_htons(tot_len);
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = REPLY_TTL;
	ip->protocol = proto;
	ip->saddr = saddr;
	ip->daddr = daddr;
#pragma unroll
	for (int i = 0; i < 5; i++)
		sum = csum_add(sum, ((__u32 *)ip)[i]);
	ip->check = csum_fold(sum);
}

static __always_inline void ip6_write(struct ipv6hdr *ip6, const union v6addr *saddr,
				      const union v6addr *daddr, __u16 payload_len, __u8 nexthdr)
{
	__builtin_memset(ip6, 0, sizeof(*ip6));
	ip6->version = 6;
	ip6->payload_len = bpf_htons(payload_len);
	ip6->nexthdr = nexthdr;
	ip6->hop_limit = REPLY_TTL;
	__builtin_memcpy(&ip6->saddr, saddr, sizeof(*saddr));
	__builtin_memcpy(&ip6->daddr, daddr, sizeof(*daddr));
}

/* Sum of an IPv6 pseudo-header's addresses. */
static __always_inline __u32 csum_addrs6(const union v6addr *a, const union v6addr *b)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 4; i++)
		sum = csum_add(csum_add(sum, a->words[i]), b->words[i]);
	return sum;
}

/* Turns an IPv4 TCP segment into the reset that answers it, in place; XDP_TX or XDP_DROP. */
static __always_inline int reply4_rst(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct iphdr *ip = l3_hdr(data, p);
	struct tcphdr *th = l4_hdr(data, p);
	struct rst_fields r;
	__be32 saddr, daddr;
	__u32 payload;

	if ((void *)(ip + 1) > data_end || (void *)(th + 1) > data_end)
		return XDP_DROP;
	payload = bpf_ntohs(ip->tot_len) - ip->ihl * 4 - th->doff * 4;
	if (rst_fields_of(th, payload, &r) || eth_swap(data, data_end))
		return XDP_DROP;
	saddr = ip->daddr;
	daddr = ip->saddr;
	/* The reset is never longer than the segment: write it over the start, then cut the rest.
	 */
	th = (void *)(ip + 1);
	if ((void *)(th + 1) > data_end)
		return XDP_DROP;
	ip4_write(ip, saddr, daddr, sizeof(*ip) + sizeof(*th), IPPROTO_TCP);
	rst_write(th, &r, csum_add(saddr, daddr));
	if (xdp_trim(ctx, p->l3_off + sizeof(*ip) + sizeof(*th)))
		return XDP_DROP;
	return XDP_TX;
}

static __always_inline int reply6_rst(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct ipv6hdr *ip6 = l3_hdr(data, p);
	struct tcphdr *th = l4_hdr(data, p);
	union v6addr saddr, daddr;
	struct rst_fields r;
	__u32 payload;

	if ((void *)(ip6 + 1) > data_end || (void *)(th + 1) > data_end)
		return XDP_DROP;
	payload =
		bpf_ntohs(ip6->payload_len) - (p->l4_off - p->l3_off - sizeof(*ip6)) - th->doff * 4;
	if (rst_fields_of(th, payload, &r) || eth_swap(data, data_end))
		return XDP_DROP;
	__builtin_memcpy(&saddr, &ip6->daddr, sizeof(saddr));
	__builtin_memcpy(&daddr, &ip6->saddr, sizeof(daddr));
	th = (void *)(ip6 + 1); /* extension headers are not echoed */
	if ((void *)(th + 1) > data_end)
		return XDP_DROP;
	ip6_write(ip6, &saddr, &daddr, sizeof(*th), IPPROTO_TCP);
	rst_write(th, &r, csum_addrs6(&saddr, &daddr));
	if (xdp_trim(ctx, p->l3_off + sizeof(*ip6) + sizeof(*th)))
		return XDP_DROP;
	return XDP_TX;
}

/*
 * Prepends Ethernet (with the VLAN tag, MACs swapped), a new IP header of hdr_len bytes and an
 * ICMP header before the packet's IP header, and cuts what follows the quote. The room comes from
 * XDP's headroom; the old packet's IP header ends up exactly after the new ICMP header.
 */
static __always_inline int icmp_prepend(struct xdp_md *ctx, const struct pkt *p, __u32 hdr_len,
					__u32 quote)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);

	if (eth_swap(data, data_end) || xdp_push_l3(ctx, p, hdr_len + 8))
		return -1;
	return xdp_trim(ctx, p->l3_off + hdr_len + 8 + quote);
}

/* Answers an IPv4 packet with ICMP port unreachable quoting its headers; XDP_TX or XDP_DROP. */
static __always_inline int reply4_unreach(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct iphdr *ip = l3_hdr(data, p);
	struct icmphdr *icmp;
	__be32 saddr, daddr;
	__u32 quote, sum = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	saddr = ip->daddr;
	daddr = ip->saddr;
	/* The IP header and the first 8 bytes of its payload (RFC 792). */
	quote = p->l4_off - p->l3_off + 8;
	if (quote > ICMP_QUOTE_MAX || icmp_prepend(ctx, p, sizeof(*ip), quote))
		return XDP_DROP;
	data = xdp_data(ctx);
	data_end = xdp_data_end(ctx);
	ip = l3_hdr(data, p);
	icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end)
		return XDP_DROP;
	ip4_write(ip, saddr, daddr, sizeof(*ip) + sizeof(*icmp) + quote, IPPROTO_ICMP);
	__builtin_memset(icmp, 0, sizeof(*icmp));
	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_PORT_UNREACH;
	if (csum_packet(data, data_end, p->l3_off + sizeof(*ip), (sizeof(*icmp) + quote) / 4, &sum))
		return XDP_DROP;
	icmp->checksum = csum_fold(sum);
	return XDP_TX;
}

static __always_inline int reply6_unreach(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct ipv6hdr *ip6 = l3_hdr(data, p);
	union v6addr saddr, daddr;
	struct icmp6hdr *icmp6;
	__u32 quote, sum;

	if ((void *)(ip6 + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(&saddr, &ip6->daddr, sizeof(saddr));
	__builtin_memcpy(&daddr, &ip6->saddr, sizeof(daddr));
	/* Headers up to the first 8 bytes of the transport header, as far as the bound allows. */
	quote = p->l4_off - p->l3_off + 8;
	if (quote > ICMP_QUOTE_MAX)
		quote = ICMP_QUOTE_MAX;
	if (icmp_prepend(ctx, p, sizeof(*ip6), quote))
		return XDP_DROP;
	data = xdp_data(ctx);
	data_end = xdp_data_end(ctx);
	ip6 = l3_hdr(data, p);
	icmp6 = (void *)(ip6 + 1);
	if ((void *)(icmp6 + 1) > data_end)
		return XDP_DROP;
	ip6_write(ip6, &saddr, &daddr, sizeof(*icmp6) + quote, NEXTHDR_ICMP);
	__builtin_memset(icmp6, 0, sizeof(*icmp6));
	icmp6->icmp6_type = ICMPV6_DEST_UNREACH;
	icmp6->icmp6_code = ICMPV6_PORT_UNREACH;
	sum = csum_add(csum_addrs6(&saddr, &daddr),
		       csum_pseudo_len_proto(sizeof(*icmp6) + quote, NEXTHDR_ICMP));
	if (csum_packet(data, data_end, p->l3_off + sizeof(*ip6), (sizeof(*icmp6) + quote) / 4,
			&sum))
		return XDP_DROP;
	icmp6->icmp6_cksum = csum_fold(sum);
	return XDP_TX;
}

#endif /* SOCKLB_REPLY_H */
