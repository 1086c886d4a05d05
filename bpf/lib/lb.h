/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Frontend lookup and backend choice, shared by the socket hooks and the XDP program: given a
 * service entry, which backend a new connection goes to. Counting why is left to the caller.
 */
#ifndef SOCKLB_LB_H
#define SOCKLB_LB_H

#include "common.h"
#include "maps.h"
#include "stats.h"

/*
 * A 32-bit finaliser (multiply-xorshift): every input bit moves every output bit, which a modulo
 * then reads. The agent computes the same for the socket hooks' frontend filter
 * (src/datapath/frontend-filter.ts) on the words as the CPU loads them.
 */
static __always_inline __u32 lb_mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

/* Folds one more 32-bit word into a hash. */
static __always_inline __u32 lb_hash_add(__u32 h, __u32 word)
{
	return lb_mix32(h ^ (word + 0x9e3779b9 + (h << 6) + (h >> 2)));
}

/* Folds an IPv6 address (its words as the CPU loads them) into a hash. */
static __always_inline __u32 lb6_addr_hash(__u32 h, const union v6addr *a)
{
	h = lb_hash_add(h, a->words[0]);
	h = lb_hash_add(h, a->words[1]);
	h = lb_hash_add(h, a->words[2]);
	return lb_hash_add(h, a->words[3]);
}

/* What lb_pick chose, and how. */
struct lb_pick {
	__u32 service_id; /* the entry the pick was made from (a re-read may find a newer one) */
	__u32 backend_id;
	__u32 slot;
	bool affinity; /* session affinity sent the client back to its previous backend */
	bool retried;  /* a slot or backend lookup missed, and the pick was made again */
};

/*
 * The service's table (lb_tables_v1) and its length in positions, or NULL when it has none (the
 * agent has not written it yet, or the service just switched scheduler). The lookup keys live in
 * *pick (service_id, and slot as scratch): the XDP program has no stack to spare for keys of its
 * own.
 */
static __always_inline void *lb_table_of(struct lb_pick *pick, __u32 *length)
{
	union lb_table_elem *elem;
	void *table;

	table = bpf_map_lookup_elem(&lb_tables_v1, &pick->service_id);
	if (!table)
		return NULL;
	pick->slot = 0;
	elem = bpf_map_lookup_elem(table, &pick->slot);
	if (!elem || !elem->length)
		return NULL;
	*length = elem->length;
	return table;
}

/* What position `pos` (below the length) of a table holds. */
static __always_inline __u32 lb_table_at(void *table, __u32 pos, struct lb_pick *pick)
{
	union lb_table_elem *elem;

	pick->slot = 1 + pos / 4;
	elem = bpf_map_lookup_elem(table, &pick->slot);
	return elem ? elem->slots[pos & 3] : 0;
}

/* The slot at position `pos` of the service's table, or 0 when it has none: the caller then falls
 * back to the slots. */
static __always_inline __u32 lb_table_slot(struct lb_pick *pick, __u32 pos)
{
	__u32 length = 0;
	void *table = lb_table_of(pick, &length);

	return table ? lb_table_at(table, pos % length, pick) : 0;
}

/* A slot's backend's open connections (0 when unknown or below zero). */
static __always_inline __s64 lb_slot_conns(__u32 service_id, __u32 slot, void *conns)
{
	struct lb_slot_key key = { .service_id = service_id, .slot = slot };
	struct lb_slot *s = bpf_map_lookup_elem(&lb_slots_v1, &key);
	__s64 *count;

	if (!s)
		return 0;
	count = bpf_map_lookup_elem(conns, &s->backend_id);
	return count && *count > 0 ? *count : 0;
}

/* A uniform draw among the slots other than `other` (1..n, n > 1). */
static __always_inline __u32 lb_other_slot(__u32 other, __u32 n)
{
	return (other + bpf_get_prandom_u32() % (n - 1)) % n + 1;
}

/*
 * A candidate of a weighted least-connection pick, not `other` (0 for none) where there is a
 * choice, and its weight in *weight: a slot drawn in proportion to its weight from the table's
 * weighted sequence (positions n onwards, so a weight-0 slot is never drawn), its weight read from
 * positions 0 to n - 1 (weight + 1 each). Without a table (or a sequence: every weight 0), or when
 * the draw hit `other`, a uniform draw.
 */
static __always_inline __u32 lb_weighted_candidate(void *table, __u32 n, __u32 length, __u32 other,
						   struct lb_pick *pick, __s64 *weight)
{
	__u32 slot = 0;
	__u32 held = 0;

	if (table && length > n)
		slot = lb_table_at(table, n + bpf_get_prandom_u32() % (length - n), pick);
	if (!slot || slot > n)
		slot = bpf_get_prandom_u32() % n + 1;
	if (slot == other && n > 1)
		slot = lb_other_slot(other, n);
	if (table)
		held = lb_table_at(table, slot - 1, pick);
	*weight = held ? held - 1 : 1;
	return slot;
}

/*
 * Two random slots, and the one with fewer connections (lc) or the lower cost by weight (wlc,
 * sed, nq, as IPVS defines them): the power of two choices, which keeps the busiest backend within
 * a small margin of the least busy for the price of two lookups each, where a true minimum needs a
 * scan or a structure every connect and release would have to keep ordered. Two distinct slots
 * where there are two: lc draws them uniformly, the weighted ones in proportion to weight, so a
 * heavy backend is compared as often as its share. Products instead of quotients: counts and
 * weights stay far from overflow. Out of line: inlined, its keys took the IPv6 XDP program's frame
 * 40 bytes past the 512 its call chain may use.
 */
static __noinline __u32 lb_least_conn_slot(const struct lb_service *svc, void *conns,
					   struct lb_pick *pick)
{
	__u32 n = svc->backend_count;
	__u32 length = 0;
	__s64 ca, cb, wa, wb;
	__u32 a, b;
	void *table;

	if (svc->scheduler == LB_SCHED_LC) {
		a = bpf_get_prandom_u32() % n + 1;
		b = n > 1 ? lb_other_slot(a, n) : a;
		ca = lb_slot_conns(svc->service_id, a, conns);
		cb = lb_slot_conns(svc->service_id, b, conns);
		return cb < ca ? b : a;
	}
	table = lb_table_of(pick, &length);
	a = lb_weighted_candidate(table, n, length, 0, pick, &wa);
	b = lb_weighted_candidate(table, n, length, a, pick, &wb);
	ca = lb_slot_conns(svc->service_id, a, conns);
	cb = lb_slot_conns(svc->service_id, b, conns);
	if (!wa || !wb)
		return wa ? a : b;
	if (svc->scheduler == LB_SCHED_NQ && (!ca || !cb))
		return ca ? b : a;
	if (svc->scheduler != LB_SCHED_WLC) {
		ca++;
		cb++;
	}
	return cb * wa < ca * wb ? b : a;
}

/* Whether the service's scheduler compares open connections (lc, wlc, sed, nq). */
static __always_inline bool lb_sched_counts_conns(const struct lb_service *svc)
{
	return svc->scheduler >= LB_SCHED_LC && svc->scheduler <= LB_SCHED_NQ;
}

/*
 * The slot a new connection starts from under the service's scheduler. Round robin reads the
 * service's connect count as its position: every CPU adds to that one counter atomically, so the
 * turns are global; two connects at the same instant may read the same count and share a turn,
 * the price of staying lock-free (and of needing no BPF_FETCH atomics, which 5.10 lacks).
 * `conns` is the open-connection counts by backend id (lb_be_conns_v1 for sockets, lb_be_flows_v1
 * for XDP flows), NULL where nothing counts them: then the least-connection schedulers pick at
 * random, and the compiler drops their code.
 */
static __always_inline __u32 lb_first_slot(const struct lb_service *svc, __u32 client_hash,
					   __u32 flow_hash, void *conns, struct lb_pick *pick)
{
	__u32 n = svc->backend_count;
	__u32 slot = 0;
	__u32 pos;

	switch (svc->scheduler) {
	case LB_SCHED_RR:
		return (__u32)(lb_service_connects(svc->service_id) % n) + 1;
	case LB_SCHED_WRR:
		pos = (__u32)lb_service_connects(svc->service_id);
		slot = lb_table_slot(pick, pos);
		break;
	case LB_SCHED_SH:
		return client_hash % n + 1;
	case LB_SCHED_MAGLEV:
		pos = flow_hash;
		slot = lb_table_slot(pick, pos);
		break;
	case LB_SCHED_LC:
	case LB_SCHED_WLC:
	case LB_SCHED_SED:
	case LB_SCHED_NQ:
		if (conns)
			return lb_least_conn_slot(svc, conns, pick);
		return bpf_get_prandom_u32() % n + 1;
	default:
		return bpf_get_prandom_u32() % n + 1;
	}
	return slot ? slot : pos % n + 1;
}

/*
 * The backend a client reached through this service within the affinity timeout, if that backend
 * still holds the same slot: a backend removed from the service (or moved to another slot when one
 * before it was removed) no longer matches, and the client is balanced afresh.
 */
static __always_inline int lb_affinity_backend(const struct lb_service *svc,
					       const struct lb_affinity_key *key, __u64 now,
					       struct lb_pick *pick)
{
	struct lb_affinity *aff = bpf_map_lookup_elem(&lb_affinity_v1, key);
	struct lb_slot_key slot_key = { .service_id = svc->service_id };
	struct lb_slot *slot;

	/* Written so a newer last_used_ns from another CPU cannot wrap into "expired". */
	if (!aff || aff->last_used_ns + (__u64)svc->affinity_timeout * 1000000000ULL < now)
		return -ENOENT;
	if (aff->slot == 0 || aff->slot > svc->backend_count)
		return -ENOENT;
	slot_key.slot = aff->slot;
	slot = bpf_map_lookup_elem(&lb_slots_v1, &slot_key);
	if (!slot || slot->backend_id != aff->backend_id)
		return -ENOENT;
	/* Each connect renews the timeout, as kube-proxy's "recent" match does. */
	aff->last_used_ns = now;
	pick->backend_id = aff->backend_id;
	pick->slot = aff->slot;
	return 0;
}

/*
 * Picks a backend of the service `key` names (`svc` is its entry, `backends` the backend map of
 * its family) and returns it in *backend. The slot is the service's scheduler's (lb_first_slot;
 * random by default, uniform as kube-proxy's iptables mode, the modulo bias below 2^-16 for any
 * count a service can have), unless session affinity sends the client back to its backend.
 * `client` is affinity's key for the client (a netns cookie, or an outside source address),
 * `client_hash` what sh hashes (the client), `flow_hash` what maglev hashes (in XDP the 5-tuple,
 * equal on every node for one flow; on the socket path the client again), `conns` what lc and its
 * kin compare (see lb_first_slot).
 *
 * A slot or backend lookup can miss while the agent rewrites a service; the connection must not
 * then go on to the frontend address, which nothing routes without kube-proxy. So a miss reads the
 * entry afresh and takes its slot 1, which every entry with a backend has (the agent writes slots
 * before the entry covers them and deletes them after it stops). Returns 0, -ECONNREFUSED for a
 * service without backends, -ENXIO when the entry vanished, -ENOENT (slot) or -ESRCH (backend)
 * when even the second pick missed.
 */
static __always_inline int lb_pick(void *services, const void *key, const struct lb_service *svc,
				   void *backends, __u64 client, __u32 client_hash, __u32 flow_hash,
				   void *conns, struct lb_pick *pick, const void **backend)
{
	struct lb_affinity_key aff_key = { .client = client, .service_id = svc->service_id };
	bool affinity = svc->flags & LB_SVC_F_AFFINITY;
	__u64 now = 0;
	int ret = -ENOENT;
	int attempt;

	pick->service_id = svc->service_id;
	if (!svc->backend_count)
		return -ECONNREFUSED;
	if (affinity) {
		now = bpf_ktime_get_ns();
		if (!lb_affinity_backend(svc, &aff_key, now, pick)) {
			*backend = bpf_map_lookup_elem(backends, &pick->backend_id);
			if (*backend) {
				pick->affinity = true;
				return 0;
			}
		}
	}
	for (attempt = 0; attempt < 2; attempt++) {
		struct lb_slot_key slot_key = { .service_id = svc->service_id, .slot = 1 };
		struct lb_slot *slot;

		if (attempt) {
			pick->retried = true;
			svc = bpf_map_lookup_elem(services, key);
			if (!svc)
				return -ENXIO;
			if (!svc->backend_count)
				return -ECONNREFUSED;
			slot_key.service_id = svc->service_id;
			pick->service_id = svc->service_id;
		} else {
			slot_key.slot = lb_first_slot(svc, client_hash, flow_hash, conns, pick);
		}
		slot = bpf_map_lookup_elem(&lb_slots_v1, &slot_key);
		if (!slot) {
			ret = -ENOENT;
			continue;
		}
		*backend = bpf_map_lookup_elem(backends, &slot->backend_id);
		if (!*backend) {
			ret = -ESRCH;
			continue;
		}
		pick->backend_id = slot->backend_id;
		pick->slot = slot_key.slot;
		if (affinity) {
			struct lb_affinity aff = { .last_used_ns = now,
						   .backend_id = slot->backend_id,
						   .slot = slot_key.slot };

			aff_key.service_id = svc->service_id;
			bpf_map_update_elem(&lb_affinity_v1, &aff_key, &aff, BPF_ANY);
		}
		return 0;
	}
	return ret;
}

#endif /* SOCKLB_LB_H */
