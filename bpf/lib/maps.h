/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The service maps every datapath reads (frontends, slots, backends, affinity, counters); the
 * agent sizes them before load (max_entries 1 = placeholder).
 */
#ifndef SOCKLB_MAPS_H
#define SOCKLB_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb_service);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_key);
	__type(value, struct lb_service);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_slot_key);
	__type(value, struct lb_slot);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_slots_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb4_backends_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb6_backend);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb6_backends_v2 SEC(".maps");

/* LRU: a client that stops connecting is forgotten first; its affinity would have expired anyway.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity);
	__uint(max_entries, 1);
} lb_affinity_v1 SEC(".maps");

/*
 * The template of a service's table; the agent makes each of its own length (BPF_F_INNER_MAP). Its
 * values are union lb_table_elem, declared as __u64: a type named only here would reach BTF as a
 * bare forward declaration, whose size libbpf cannot tell.
 */
struct lb_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
};

/*
 * Tables of the services that schedule through one (wrr, maglev), by service_id. Each is its own
 * array, so one service's table costs what its length needs and a swap replaces it atomically.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 1);
	__array(values, struct lb_table);
} lb_tables_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_service_stats);
	__uint(max_entries, 1);
} lb_svc_stats_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_backend_stats);
	__uint(max_entries, 1);
} lb_be_stats_v2 SEC(".maps");

#endif /* SOCKLB_MAPS_H */
