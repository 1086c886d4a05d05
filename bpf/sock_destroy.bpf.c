// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Destroys UDP sockets connected to a backend that went away. A connected UDP socket keeps the
 * backend address connect() gave it; without this a DNS client stays stuck on a dead backend.
 * Kept apart from sock.bpf.c because bpf_sock_destroy needs Linux 6.5: on older kernels only this
 * object fails to load, and the agent says so. It shares the destroy maps through their pins.
 */
#include "lib/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_destroy_key);
	__type(value, __u8);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_destroy_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_destroy_key);
	__type(value, __u8);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_destroy_v1 SEC(".maps");

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

static __always_inline bool sock_targets_removed_backend(const struct sock_common *skc)
{
	if (skc->skc_family == AF_INET) {
		struct lb4_destroy_key key = {
			.address = skc->skc_daddr,
			.port = skc->skc_dport,
		};

		return bpf_map_lookup_elem(&lb4_destroy_v1, &key) != NULL;
	}
	if (skc->skc_family == AF_INET6) {
		struct lb6_destroy_key key = { .port = skc->skc_dport };

		__builtin_memcpy(key.address.addr, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
		return bpf_map_lookup_elem(&lb6_destroy_v1, &key) != NULL;
	}
	return false;
}

SEC("iter/udp")
int sock_destroy_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp_sk = ctx->udp_sk;
	struct sock_common *skc;

	if (!udp_sk)
		return 0;
	skc = &udp_sk->inet.sk.__sk_common;
	if (!sock_targets_removed_backend(skc))
		return 0;
	/* One line per destroyed socket: the agent counts them. */
	if (!bpf_sock_destroy(skc))
		BPF_SEQ_PRINTF(ctx->meta->seq, "destroyed\n");
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
