/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The cgroup sock_addr side: reading and writing the address in a bpf_sock_addr context. */
#ifndef SOCKLB_SOCK_H
#define SOCKLB_SOCK_H

#include "lb.h"

/* ::ffff:a.b.c.d: a dual-stack socket dialling an IPv4 address goes through the IPv6 hooks. */
static __always_inline bool sock6_is_v4mapped(const union v6addr *address)
{
	return address->words[0] == 0 && address->words[1] == 0 &&
	       address->words[2] == bpf_htonl(0x0000ffff);
}

/* Maps a translation result to the hook's verdict; traffic that is not ours passes untouched. */
static __always_inline int sock_verdict(int ret)
{
	if (ret != -ECONNREFUSED)
		return SYS_PROCEED;
	if (socklb_cfg.refuse_errno)
		bpf_set_retval(-(int)socklb_cfg.refuse_errno);
	return SYS_REJECT;
}

static __always_inline int __sock4_fwd(struct bpf_sock_addr *ctx)
{
	__be32 address = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	int ret;

	ret = __lb4_xlate_fwd(bpf_get_socket_cookie(ctx), bpf_get_netns_cookie(ctx), &address,
			      &port, ctx->protocol);
	if (ret == -ENXIO)
		sock_count(SOCK_NOT_SERVICE);
	if (ret)
		return ret;
	ctx->user_ip4 = address;
	ctx->user_port = port;
	return 0;
}

static __always_inline void __sock4_rev(struct bpf_sock_addr *ctx)
{
	__be32 address = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;

	__lb4_xlate_rev(bpf_get_socket_cookie(ctx), &address, &port);
	ctx->user_ip4 = address;
	ctx->user_port = port;
}

static __always_inline void sock6_read(const struct bpf_sock_addr *ctx, union v6addr *address)
{
	address->words[0] = ctx->user_ip6[0];
	address->words[1] = ctx->user_ip6[1];
	address->words[2] = ctx->user_ip6[2];
	address->words[3] = ctx->user_ip6[3];
}

static __always_inline void sock6_write(struct bpf_sock_addr *ctx, const union v6addr *address)
{
	ctx->user_ip6[0] = address->words[0];
	ctx->user_ip6[1] = address->words[1];
	ctx->user_ip6[2] = address->words[2];
	ctx->user_ip6[3] = address->words[3];
}

static __always_inline int __sock6_fwd(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u64 client = bpf_get_netns_cookie(ctx);
	__be16 port = (__be16)ctx->user_port;
	union v6addr address;
	int ret;

	sock6_read(ctx, &address);
	if (sock6_is_v4mapped(&address))
		ret = __lb4_xlate_fwd(cookie, client, &address.words[3], &port, ctx->protocol);
	else
		ret = __lb6_xlate_fwd(cookie, client, &address, &port, ctx->protocol);
	if (ret == -ENXIO)
		sock_count(SOCK_NOT_SERVICE);
	if (ret)
		return ret;
	sock6_write(ctx, &address);
	ctx->user_port = port;
	return 0;
}

static __always_inline void __sock6_rev(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__be16 port = (__be16)ctx->user_port;
	union v6addr address;

	sock6_read(ctx, &address);
	if (sock6_is_v4mapped(&address))
		__lb4_xlate_rev(cookie, &address.words[3], &port);
	else
		__lb6_xlate_rev(cookie, &address, &port);
	sock6_write(ctx, &address);
	ctx->user_port = port;
}

#endif /* SOCKLB_SOCK_H */
