/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connects per service and per backend, shared by every datapath. */
#ifndef SOCKLB_STATS_H
#define SOCKLB_STATS_H

#include "maps.h"

static __always_inline void lb_count_connect(__u32 service_id, __u32 backend_id)
{
	struct lb_service_stats *svc = bpf_map_lookup_elem(&lb_svc_stats_v2, &service_id);
	struct lb_backend_stats *be = bpf_map_lookup_elem(&lb_be_stats_v2, &backend_id);

	if (svc)
		__sync_fetch_and_add(&svc->connects, 1);
	if (be)
		__sync_fetch_and_add(&be->connects, 1);
}

/* Balanced connects of a service so far: round robin's position. */
static __always_inline __u64 lb_service_connects(__u32 service_id)
{
	struct lb_service_stats *svc = bpf_map_lookup_elem(&lb_svc_stats_v2, &service_id);

	return svc ? svc->connects : 0;
}

static __always_inline void lb_count_refused(__u32 service_id)
{
	struct lb_service_stats *svc = bpf_map_lookup_elem(&lb_svc_stats_v2, &service_id);

	if (svc)
		__sync_fetch_and_add(&svc->refused, 1);
}

#endif /* SOCKLB_STATS_H */
