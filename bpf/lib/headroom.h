/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Growing and shrinking an XDP packet: headers pushed or popped between the Ethernet header (with
 * its VLAN tag) and the IP header, and the tail cut.
 */
#ifndef SOCKLB_HEADROOM_H
#define SOCKLB_HEADROOM_H

#include "parse.h"

/* Trims the packet to len bytes (it only ever shrinks here). */
static __always_inline int xdp_trim(struct xdp_md *ctx, __u32 len)
{
	__u32 cur = xdp_data_end(ctx) - xdp_data(ctx);

	if (len > cur)
		return -1;
	return len == cur ? 0 : bpf_xdp_adjust_tail(ctx, (int)len - (int)cur);
}

/*
 * Makes room for len bytes of headers before the IP header, from XDP's headroom: the Ethernet
 * header moves to the new front. The caller writes all len bytes from l3_off on (18 bytes are
 * copied whatever the tag: those past l3_off are the caller's to overwrite).
 */
static __always_inline int xdp_push_l3(struct xdp_md *ctx, const struct pkt *p, __u32 len)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	__u8 eth[ETH_HLEN + 4];

	if (data + sizeof(eth) > data_end)
		return -1;
	__builtin_memcpy(eth, data, sizeof(eth));
	if (bpf_xdp_adjust_head(ctx, -(int)len))
		return -1;
	data = xdp_data(ctx);
	data_end = xdp_data_end(ctx);
	if (data + sizeof(eth) > data_end)
		return -1;
	__builtin_memcpy(data, eth, sizeof(eth));
	return 0;
}

/* Removes len bytes after the Ethernet header (and tag): a tunnel's outer headers. */
static __always_inline int xdp_pop_l3(struct xdp_md *ctx, const struct pkt *p, __u32 len)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	__u8 eth[ETH_HLEN + 4];

	if (data + sizeof(eth) > data_end)
		return -1;
	__builtin_memcpy(eth, data, sizeof(eth));
	if (bpf_xdp_adjust_head(ctx, len))
		return -1;
	data = xdp_data(ctx);
	data_end = xdp_data_end(ctx);
	if (data + sizeof(eth) > data_end)
		return -1;
	/* Exactly the Ethernet header (and tag): the inner IP header follows it now. */
	__builtin_memcpy(data, eth, ETH_HLEN);
	if (p->vlan)
		__builtin_memcpy(data + ETH_HLEN, eth + ETH_HLEN, 4);
	return 0;
}

#endif /* SOCKLB_HEADROOM_H */
