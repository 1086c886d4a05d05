/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters: why each hook call was or was not balanced, and connects per service/backend.
 */
#ifndef SOCKLB_STATS_H
#define SOCKLB_STATS_H

#include "maps.h"

static __always_inline void sock_count(enum sock_reason reason)
{
	__u32 key = reason;
	__u64 *count = bpf_map_lookup_elem(&sock_stats_v1, &key);

	if (count)
		*count += 1;
}

static __always_inline void lb_count_connect(__u32 service_id, __u32 backend_id)
{
	struct lb_service_stats *svc = bpf_map_lookup_elem(&lb_svc_stats_v1, &service_id);
	struct lb_backend_stats *be = bpf_map_lookup_elem(&lb_be_stats_v1, &backend_id);

	if (svc)
		svc->connects += 1;
	if (be)
		be->connects += 1;
}

static __always_inline void lb_count_refused(__u32 service_id)
{
	struct lb_service_stats *svc = bpf_map_lookup_elem(&lb_svc_stats_v1, &service_id);

	if (svc)
		svc->refused += 1;
}

#endif /* SOCKLB_STATS_H */
