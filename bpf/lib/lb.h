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

/* What lb_pick chose, and how. */
struct lb_pick {
	__u32 service_id; /* the entry the pick was made from (a re-read may find a newer one) */
	__u32 backend_id;
	__u32 slot;
	bool affinity; /* session affinity sent the client back to its previous backend */
	bool retried;  /* a slot or backend lookup missed, and the pick was made again */
};

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
 * its family) and returns it in *backend. The slot is uniform at random (kube-proxy's iptables mode
 * gives each ready endpoint the same chance; the modulo bias is below 2^-16 for any count a service
 * can have), unless session affinity sends the client back to its backend.
 *
 * A slot or backend lookup can miss while the agent rewrites a service; the connection must not
 * then go on to the frontend address, which nothing routes without kube-proxy. So a miss reads the
 * entry afresh and takes its slot 1, which every entry with a backend has (the agent writes slots
 * before the entry covers them and deletes them after it stops). Returns 0, -ECONNREFUSED for a
 * service without backends, -ENXIO when the entry vanished, -ENOENT (slot) or -ESRCH (backend)
 * when even the second pick missed.
 */
static __always_inline int lb_pick(void *services, const void *key, const struct lb_service *svc,
				   void *backends, __u64 client, struct lb_pick *pick,
				   const void **backend)
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
			slot_key.slot = (bpf_get_prandom_u32() % svc->backend_count) + 1;
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
