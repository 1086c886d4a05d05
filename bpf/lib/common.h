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

#endif /* SOCKLB_COMMON_H */
