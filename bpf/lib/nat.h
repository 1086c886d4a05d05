/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Address and port rewriting of a parsed XDP packet, with incremental checksum updates. */
#ifndef SOCKLB_NAT_H
#define SOCKLB_NAT_H

#include "csum.h"
#include "parse.h"

/* Applies diff (addresses in the pseudo-header, ports) to the TCP or UDP checksum. */
static __always_inline int l4_csum_update(void *data, void *data_end, const struct pkt *p,
					  __u32 diff)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4_hdr(data, p);

		if ((void *)(th + 1) > data_end)
			return -1;
		th->check = csum_apply(th->check, diff);
	} else {
		struct udphdr *uh = l4_hdr(data, p);

		if ((void *)(uh + 1) > data_end)
			return -1;
		/* Over IPv6 a zero UDP checksum is invalid anyway; it is left as it came. */
		uh->check = csum_apply_udp(uh->check, diff);
	}
	return 0;
}

/* The flow of a TCP or UDP packet as it is on the wire. */
static __always_inline int tuple4_of(void *data, void *data_end, const struct pkt *p,
				     struct lb4_tuple *t)
{
	struct iphdr *ip = l3_hdr(data, p);
	__be16 *ports = l4_hdr(data, p);

	if ((void *)(ip + 1) > data_end || (void *)(ports + 2) > data_end)
		return -1;
	t->saddr = ip->saddr;
	t->daddr = ip->daddr;
	t->sport = ports[0];
	t->dport = ports[1];
	t->proto = p->proto;
	return 0;
}

static __always_inline int tuple6_of(void *data, void *data_end, const struct pkt *p,
				     struct lb6_tuple *t)
{
	struct ipv6hdr *ip6 = l3_hdr(data, p);
	__be16 *ports = l4_hdr(data, p);

	if ((void *)(ip6 + 1) > data_end || (void *)(ports + 2) > data_end)
		return -1;
	__builtin_memcpy(&t->saddr, &ip6->saddr, sizeof(t->saddr));
	__builtin_memcpy(&t->daddr, &ip6->daddr, sizeof(t->daddr));
	t->sport = ports[0];
	t->dport = ports[1];
	t->proto = p->proto;
	return 0;
}

/* Rewrites an IPv4 TCP/UDP packet to the flow `to`, fixing the IPv4 and L4 checksums. */
static __always_inline int nat4_rewrite(void *data, void *data_end, const struct pkt *p,
					const struct lb4_tuple *to)
{
	struct iphdr *ip = l3_hdr(data, p);
	__be16 *ports = l4_hdr(data, p);
	__u32 l3diff, l4diff;

	if ((void *)(ip + 1) > data_end || (void *)(ports + 2) > data_end)
		return -1;
	l3diff = csum_diff4(csum_diff4(0, ip->saddr, to->saddr), ip->daddr, to->daddr);
	l4diff = csum_diff2(csum_diff2(l3diff, ports[0], to->sport), ports[1], to->dport);
	ip->check = csum_apply(ip->check, l3diff);
	ip->saddr = to->saddr;
	ip->daddr = to->daddr;
	ports[0] = to->sport;
	ports[1] = to->dport;
	return l4_csum_update(data, data_end, p, l4diff);
}

/* Rewrites an IPv6 TCP/UDP packet to the flow `to` (IPv6 has no header checksum). */
static __always_inline int nat6_rewrite(void *data, void *data_end, const struct pkt *p,
					const struct lb6_tuple *to)
{
	struct ipv6hdr *ip6 = l3_hdr(data, p);
	__be16 *ports = l4_hdr(data, p);
	union v6addr *saddr, *daddr;
	__u32 diff;

	if ((void *)(ip6 + 1) > data_end || (void *)(ports + 2) > data_end)
		return -1;
	saddr = (union v6addr *)&ip6->saddr;
	daddr = (union v6addr *)&ip6->daddr;
	diff = csum_diff16(csum_diff16(0, saddr, &to->saddr), daddr, &to->daddr);
	diff = csum_diff2(csum_diff2(diff, ports[0], to->sport), ports[1], to->dport);
	*saddr = to->saddr;
	*daddr = to->daddr;
	ports[0] = to->sport;
	ports[1] = to->dport;
	return l4_csum_update(data, data_end, p, diff);
}

#endif /* SOCKLB_NAT_H */
