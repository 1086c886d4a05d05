// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Takes a counted socket's connection off its backend's count when the socket is released. Kept
 * apart from sock.bpf.c because it needs the release hook and bpf_sk_storage_get in cgroup/sock
 * programs (both Linux 5.9, one release above the oldest socklb runs on, 5.10): where only this
 * object fails to load (a kernel built without them), the agent counts nothing and says the
 * least-connection schedulers pick at random. It shares the counting maps with sock.bpf.o.
 */
#include "lib/conns.h"

SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	struct lb_sock_conn *conn;

	/* Only TCP sockets are counted; others leave without a storage lookup. */
	if (ctx->protocol != IPPROTO_TCP)
		return SYS_PROCEED;
	conn = bpf_sk_storage_get(&lb_sock_conn_v1, ctx, 0, 0);
	if (!conn || !conn->backend_id)
		return SYS_PROCEED;
	count_add(&lb_be_conns_v1, conn->backend_id, -1);
	conn->backend_id = 0;
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
