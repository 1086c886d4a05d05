/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP side's own maps: connection and reverse NAT tables, source ranges, the node's
 * configuration and the per-reason counters.
 */
#ifndef SOCKLB_CONNTRACK_H
#define SOCKLB_CONNTRACK_H

#include "common.h"

/*
 * LRU: a flow nobody sends on is the one forgotten when the table is full, never a new one
 * refused. Pinned by the agent, so flows keep their backend across an agent restart.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_tuple);
	__type(value, struct lb4_ct);
	__uint(max_entries, 1);
} lb4_ct_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_tuple);
	__type(value, struct lb6_ct);
	__uint(max_entries, 1);
} lb6_ct_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_tuple);
	__type(value, struct lb4_rnat);
	__uint(max_entries, 1);
} lb4_rnat_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_tuple);
	__type(value, struct lb6_rnat);
	__uint(max_entries, 1);
} lb6_rnat_v1 SEC(".maps");

/* An LPM trie answers "is this source in any range of the service" in one lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb4_src_range_key);
	__type(value, __u8);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_src_ranges_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb6_src_range_key);
	__type(value, __u8);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_src_ranges_v1 SEC(".maps");

/* A map rather than .rodata: a node address that changes needs no reload. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_node_config);
	__uint(max_entries, 1);
} lb_node_config_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XDP_R_MAX);
} xdp_stats_v1 SEC(".maps");

static __always_inline void xdp_count(enum xdp_reason reason)
{
	__u32 key = reason;
	__u64 *count = bpf_map_lookup_elem(&xdp_stats_v1, &key);

	if (count)
		*count += 1;
}

static __always_inline const struct lb_node_config *node_config(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&lb_node_config_v1, &key);
}

/* SNAT ports tried before a new flow is given up: each try is one NOEXIST insert. */
#define NAT_PORT_TRIES 8

/*
 * Claims a free SNAT port for a reply tuple whose dport is still to choose: writes the reverse
 * entry under the first port in the range no other flow holds. Every try draws a new port: with
 * consecutive ports from one draw, taken ports would cluster (as in linear probing) and a table a
 * sixth full already failed one new flow in half a million in the bench. Returns the port (net
 * order) or 0.
 */
static __always_inline __be16 nat_claim_port(void *rnat_map, void *rkey, __be16 *dport,
					     const void *rnat, const struct lb_node_config *cfg)
{
	__u32 span = (__u32)cfg->nat_port_max - cfg->nat_port_min + 1;
	__u32 i;

	if (cfg->nat_port_min == 0 || cfg->nat_port_max < cfg->nat_port_min)
		return 0;
#pragma unroll
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		*dport = bpf_htons(cfg->nat_port_min + bpf_get_prandom_u32() % span);
		if (!bpf_map_update_elem(rnat_map, rkey, rnat, BPF_NOEXIST))
			return *dport;
	}
	return 0;
}

#endif /* SOCKLB_CONNTRACK_H */
