/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, constants and small helpers every socklb BPF program uses. */
#ifndef SOCKLB_COMMON_H
#define SOCKLB_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"

/* Not in vmlinux.h: these are macros in the kernel's headers. */
#define AF_INET	     2
#define AF_INET6     10
#define ENOENT	     2
#define ESRCH	     3
#define ENXIO	     6
#define ECONNREFUSED 111

/* What a cgroup sock_addr program returns: 1 lets the call go on, 0 fails it. */
#define SYS_PROCEED 1
#define SYS_REJECT  0

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/*
 * Adds to a count (__s64) shared by all CPUs, an array map's entry: an atomic add without the
 * result, which every kernel has (5.10 lacks the fetch variants).
 */
static __always_inline void count_add(void *counts, __u32 key, __s64 delta)
{
	__s64 *count = bpf_map_lookup_elem(counts, &key);

	if (count)
		__sync_fetch_and_add(count, delta);
}

#endif /* SOCKLB_COMMON_H */
