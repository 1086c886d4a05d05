/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The cgroup sock_addr side: reading and writing the address in a bpf_sock_addr context, the
 * reverse translation that makes a socket see the VIP it dialled, and the socket hooks' counters.
 */
#ifndef SOCKLB_SOCK_H
#define SOCKLB_SOCK_H

#include "conns.h"
#include "lb.h"

/* LRU: an entry per balanced socket, forgotten when space runs out rather than refusing new ones.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_reverse_key);
	__type(value, struct lb4_reverse);
	__uint(max_entries, 1);
} lb4_reverse_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_reverse_key);
	__type(value, struct lb6_reverse);
	__uint(max_entries, 1);
} lb6_reverse_v1 SEC(".maps");

/* Per-CPU, and only SOCK_REASON_MAX entries: its memory stays negligible on any host. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, SOCK_REASON_MAX);
} sock_stats_v1 SEC(".maps");

/*
 * A bit per hash of each in-cluster frontend's (address, port, protocol): set by the agent before
 * the frontend's entry is written, cleared once no frontend of that bit is left. A connect whose
 * bit is clear is no service and skips the hash lookup: every connect on the node that is not to a
 * service pays an inlined array read instead of the hash lookup's calls. A set bit only says
 * "maybe" (another frontend may share it); the lookup decides.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} lb_frontend_filter_v1 SEC(".maps");

/* Set by the agent before load; see struct socklb_config. */
const volatile struct socklb_config socklb_cfg = {
	.abi_version = SOCKLB_ABI_VERSION,
	.refuse_errno = ECONNREFUSED,
};

static __always_inline __u32 filter_tail(__be16 port, __u8 proto)
{
	return lb_mix32(((__u32)port << 8) | proto);
}

/* False when no frontend has this hash: the destination is certainly no service. */
static __always_inline bool filter_may_match(__u32 hash)
{
	__u32 word = (hash >> 6) & socklb_cfg.filter_word_mask;
	const __u64 *bits = bpf_map_lookup_elem(&lb_frontend_filter_v1, &word);

	/* No word (cannot happen below max_entries): look the key up. */
	return !bits || (*bits >> (hash & 63)) & 1;
}

static __always_inline void sock_count(enum sock_reason reason)
{
	__u32 key = reason;
	__u64 *count = bpf_map_lookup_elem(&sock_stats_v1, &key);

	if (count)
		*count += 1;
}

/*
 * Counts how a pick for a new connection went. Returns the pick's result, with a miss that even
 * the second pick could not resolve turned into "pass" (-ENOENT): the connect goes on untouched.
 */
static __always_inline int sock_count_pick(int ret, const struct lb_pick *pick)
{
	if (pick->retried)
		sock_count(SOCK_PICK_RETRIED);
	switch (ret) {
	case 0:
		if (pick->affinity)
			sock_count(SOCK_AFFINITY_HIT);
		sock_count(SOCK_BALANCED);
		lb_count_connect(pick->service_id, pick->backend_id);
		return 0;
	case -ECONNREFUSED:
		sock_count(SOCK_NO_BACKEND);
		lb_count_refused(pick->service_id);
		return ret;
	case -ENXIO:
		sock_count(SOCK_NOT_SERVICE);
		return ret;
	case -ESRCH:
		sock_count(SOCK_BACKEND_MISSING);
		return -ENOENT;
	default:
		sock_count(SOCK_SLOT_MISSING);
		return -ENOENT;
	}
}

/* The client session affinity remembers (its netns), read only for a service with affinity. */
static __always_inline __u64 sock_client(struct bpf_sock_addr *ctx, const struct lb_service *svc)
{
	return svc->flags & LB_SVC_F_AFFINITY ? bpf_get_netns_cookie(ctx) : 0;
}

/*
 * The client as sh and maglev hash it, 0 for the other schedulers: its bound source address when it
 * has one, else its network namespace (`netns`, when sock_client already read it), so that clients
 * sharing a namespace but bound to different addresses spread. ctx->sk is readable from Linux 5.3.
 */
static __always_inline __u32 sock_client_hash(struct bpf_sock_addr *ctx,
					      const struct lb_service *svc, __u64 netns)
{
	struct bpf_sock *sk = ctx->sk;
	union v6addr src;

	if (svc->scheduler != LB_SCHED_SH && svc->scheduler != LB_SCHED_MAGLEV)
		return 0;
	if (!netns)
		netns = bpf_get_netns_cookie(ctx);
	if (!sk)
		return lb_hash_add((__u32)netns, (__u32)(netns >> 32));
	if (ctx->family == AF_INET && sk->src_ip4)
		return lb_hash_add(0, sk->src_ip4);
	if (ctx->family == AF_INET6) {
		src.words[0] = sk->src_ip6[0];
		src.words[1] = sk->src_ip6[1];
		src.words[2] = sk->src_ip6[2];
		src.words[3] = sk->src_ip6[3];
		if (src.words[0] | src.words[1] | src.words[2] | src.words[3])
			return lb6_addr_hash(0, &src);
	}
	return lb_hash_add((__u32)netns, (__u32)(netns >> 32));
}

/*
 * Counts a TCP socket of a least-connection service as open on its backend until it is released.
 * Only those services count, so the other schedulers' connects pay nothing for it; a socket that
 * connects again (after a failed attempt) moves its count to the new backend. Connected UDP is not
 * counted: a UDP socket's "connection" says nothing about the backend's load.
 */
static __always_inline void sock_count_open(struct bpf_sock_addr *ctx, const struct lb_service *svc,
					    __u32 backend_id)
{
	struct lb_sock_conn *conn;

	if (ctx->protocol != IPPROTO_TCP || !lb_sched_counts_conns(svc) || !ctx->sk ||
	    !lb_conns_counted())
		return;
	conn = bpf_sk_storage_get(&lb_sock_conn_v1, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!conn)
		return;
	if (conn->backend_id)
		count_add(&lb_be_conns_v1, conn->backend_id, -1);
	conn->backend_id = backend_id;
	count_add(&lb_be_conns_v1, backend_id, 1);
}

/*
 * Rewrites an IPv4 destination that is a service frontend into one of its backends, and records
 * the VIP for this socket so replies and getpeername() show it. Returns 0 when rewritten, -ENXIO
 * when the destination is no service, another -errno when the service cannot take the connection.
 * The socket and netns cookies are read only once the destination is known to be a service: every
 * other connect on the node pays for the filter (and, for a few, the lookup) alone.
 */
static __always_inline int __lb4_xlate_fwd(struct bpf_sock_addr *ctx, __be32 *address, __be16 *port)
{
	struct lb4_key key = { .address = *address,
			       .dport = *port,
			       .proto = ctx->protocol,
			       .scope = LB_SCOPE_INTERNAL };
	struct lb4_reverse rev = { .address = *address, .port = *port };
	struct lb4_reverse_key rev_key = {};
	const struct lb4_backend *backend;
	const struct lb_service *svc;
	struct lb_pick pick = {};
	__u64 client;
	__u32 hash;
	int ret;

	if (!filter_may_match(lb_hash_add(filter_tail(key.dport, key.proto), key.address)))
		svc = NULL;
	else
		svc = bpf_map_lookup_elem(&lb4_services_v2, &key);
	if (!svc) {
		sock_count(SOCK_NOT_SERVICE);
		return -ENXIO;
	}
	client = sock_client(ctx, svc);
	hash = sock_client_hash(ctx, svc, client);
	ret = lb_pick(&lb4_services_v2, &key, svc, &lb4_backends_v2, client, hash, hash,
		      &lb_be_conns_v1, &pick, (const void **)&backend);
	ret = sock_count_pick(ret, &pick);
	if (ret)
		return ret;
	sock_count_open(ctx, svc, pick.backend_id);
	rev_key.cookie = bpf_get_socket_cookie(ctx);
	rev_key.address = backend->address;
	rev_key.port = backend->port;
	if (bpf_map_update_elem(&lb4_reverse_v1, &rev_key, &rev, BPF_ANY))
		sock_count(SOCK_REVERSE_FULL);
	*address = backend->address;
	*port = backend->port;
	return 0;
}

/* Turns a backend address seen by this socket back into the VIP it dialled, if it dialled one. */
static __always_inline void __lb4_xlate_rev(__u64 cookie, __be32 *address, __be16 *port)
{
	struct lb4_reverse_key key = { .cookie = cookie, .address = *address, .port = *port };
	const struct lb4_reverse *rev = bpf_map_lookup_elem(&lb4_reverse_v1, &key);

	if (!rev)
		return;
	*address = rev->address;
	*port = rev->port;
	sock_count(SOCK_REVERSED);
}

static __always_inline int __lb6_xlate_fwd(struct bpf_sock_addr *ctx, union v6addr *address,
					   __be16 *port)
{
	struct lb6_key key = { .address = *address,
			       .dport = *port,
			       .proto = ctx->protocol,
			       .scope = LB_SCOPE_INTERNAL };
	struct lb6_reverse rev = { .address = *address, .port = *port };
	struct lb6_reverse_key rev_key = {};
	const struct lb6_backend *backend;
	const struct lb_service *svc;
	struct lb_pick pick = {};
	__u64 client;
	__u32 hash;
	int ret;

	if (!filter_may_match(lb6_addr_hash(filter_tail(key.dport, key.proto), &key.address)))
		svc = NULL;
	else
		svc = bpf_map_lookup_elem(&lb6_services_v2, &key);
	if (!svc) {
		sock_count(SOCK_NOT_SERVICE);
		return -ENXIO;
	}
	client = sock_client(ctx, svc);
	hash = sock_client_hash(ctx, svc, client);
	ret = lb_pick(&lb6_services_v2, &key, svc, &lb6_backends_v2, client, hash, hash,
		      &lb_be_conns_v1, &pick, (const void **)&backend);
	ret = sock_count_pick(ret, &pick);
	if (ret)
		return ret;
	sock_count_open(ctx, svc, pick.backend_id);
	rev_key.cookie = bpf_get_socket_cookie(ctx);
	rev_key.address = backend->address;
	rev_key.port = backend->port;
	if (bpf_map_update_elem(&lb6_reverse_v1, &rev_key, &rev, BPF_ANY))
		sock_count(SOCK_REVERSE_FULL);
	*address = backend->address;
	*port = backend->port;
	return 0;
}

static __always_inline void __lb6_xlate_rev(__u64 cookie, union v6addr *address, __be16 *port)
{
	struct lb6_reverse_key key = { .cookie = cookie, .address = *address, .port = *port };
	const struct lb6_reverse *rev = bpf_map_lookup_elem(&lb6_reverse_v1, &key);

	if (!rev)
		return;
	*address = rev->address;
	*port = rev->port;
	sock_count(SOCK_REVERSED);
}

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

	ret = __lb4_xlate_fwd(ctx, &address, &port);
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
	__be16 port = (__be16)ctx->user_port;
	union v6addr address;
	int ret;

	sock6_read(ctx, &address);
	if (sock6_is_v4mapped(&address))
		ret = __lb4_xlate_fwd(ctx, &address.words[3], &port);
	else
		ret = __lb6_xlate_fwd(ctx, &address, &port);
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
