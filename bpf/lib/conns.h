/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Open connections per backend, for the least-connection schedulers: the connect hook adds one
 * when it sends a TCP socket of such a service to a backend and remembers the backend in the
 * socket's local storage; cgroup/sock_release (sock_release.bpf.c) takes it off when the socket
 * goes, whoever closes it (close(), exit, kill -9: the kernel releases the file either way).
 */
#ifndef SOCKLB_CONNS_H
#define SOCKLB_CONNS_H

#include "common.h"

/*
 * By backend id; signed, as a count read between a release and a re-used id's first connect may
 * dip below zero. Entry 0 (no backend has id 0) is 1 while the agent has the release hook
 * attached: without it nothing would take a count down, so nothing is counted up.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __s64);
	__uint(max_entries, 1);
} lb_be_conns_v1 SEC(".maps");

/* Lives and dies with each socket: no entry outlives a socket, and none needs a size. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__type(key, int);
	__type(value, struct lb_sock_conn);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_sock_conn_v1 SEC(".maps");

static __always_inline bool lb_conns_counted(void)
{
	__u32 key = 0;
	__s64 *on = bpf_map_lookup_elem(&lb_be_conns_v1, &key);

	return on && *on;
}

#endif /* SOCKLB_CONNS_H */
