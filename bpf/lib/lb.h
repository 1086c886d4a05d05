/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service lookup, backend selection and reverse translation for the socket hooks. */
#ifndef SOCKLB_LB_H
#define SOCKLB_LB_H

#include "common.h"
#include "maps.h"
#include "stats.h"

/* Set by the agent before load; see struct socklb_config. */
const volatile struct socklb_config socklb_cfg = {
	.abi_version = SOCKLB_ABI_VERSION,
	.refuse_errno = ECONNREFUSED,
};

/*
 * The backend a client reached through this service within the affinity timeout, if that backend
 * still holds the same slot: a backend removed from the service (or moved to another slot when one
 * before it was removed) no longer matches, and the client is balanced afresh.
 */
static __always_inline int lb_affinity_backend(const struct lb_service *svc,
					       const struct lb_affinity_key *key, __u64 now,
					       __u32 *backend_id)
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
	*backend_id = aff->backend_id;
	sock_count(SOCK_AFFINITY_HIT);
	return 0;
}

/*
 * Picks one of a service's slots uniformly at random (kube-proxy's iptables mode gives each ready
 * endpoint the same chance), unless session affinity sends the client back to its backend. The
 * modulo bias is below 2^-16 for any count a service can have.
 */
static __always_inline int lb_select_backend(const struct lb_service *svc, __u64 client,
					     __u32 *backend_id)
{
	struct lb_affinity_key aff_key = { .client = client, .service_id = svc->service_id };
	struct lb_slot_key key = {
		.service_id = svc->service_id,
		.slot = (bpf_get_prandom_u32() % svc->backend_count) + 1,
	};
	struct lb_slot *slot;
	__u64 now = 0;

	if (svc->flags & LB_SVC_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		if (!lb_affinity_backend(svc, &aff_key, now, backend_id))
			return 0;
	}
	slot = bpf_map_lookup_elem(&lb_slots_v1, &key);
	if (!slot) {
		sock_count(SOCK_SLOT_MISSING);
		return -ENOENT;
	}
	*backend_id = slot->backend_id;
	if (svc->flags & LB_SVC_F_AFFINITY) {
		struct lb_affinity aff = { .last_used_ns = now,
					   .backend_id = slot->backend_id,
					   .slot = key.slot };

		bpf_map_update_elem(&lb_affinity_v1, &aff_key, &aff, BPF_ANY);
	}
	return 0;
}

/*
 * The backend a new connection to `svc` goes to. A service with no backend refuses at once, as
 * kube-proxy's REJECT rule does.
 */
static __always_inline int lb_choose(const struct lb_service *svc, __u64 client, __u32 *backend_id)
{
	if (!svc->backend_count) {
		sock_count(SOCK_NO_BACKEND);
		lb_count_refused(svc->service_id);
		return -ECONNREFUSED;
	}
	return lb_select_backend(svc, client, backend_id);
}

/* Counts a connection sent to a backend; `reverse_err` is how recording its VIP went. */
static __always_inline void lb_count_balanced(const struct lb_service *svc, __u32 backend_id,
					      long reverse_err)
{
	if (reverse_err)
		sock_count(SOCK_REVERSE_FULL);
	sock_count(SOCK_BALANCED);
	lb_count_connect(svc->service_id, backend_id);
}

/*
 * Rewrites an IPv4 destination that is a service frontend into one of its backends, and records
 * the VIP for this socket so replies and getpeername() show it. `client` identifies the client for
 * session affinity. Returns 0 when rewritten, -ENXIO when the destination is no service, another
 * -errno when the service cannot take the connection.
 */
static __always_inline int __lb4_xlate_fwd(__u64 cookie, __u64 client, __be32 *address,
					   __be16 *port, __u8 proto)
{
	struct lb4_key key = { .address = *address, .dport = *port, .proto = proto };
	struct lb4_reverse_key rev_key = { .cookie = cookie };
	struct lb4_reverse rev = { .address = *address, .port = *port };
	const struct lb4_backend *backend;
	const struct lb_service *svc;
	__u32 backend_id;
	int ret;

	svc = bpf_map_lookup_elem(&lb4_services_v1, &key);
	if (!svc)
		return -ENXIO;
	ret = lb_choose(svc, client, &backend_id);
	if (ret)
		return ret;
	backend = bpf_map_lookup_elem(&lb4_backends_v1, &backend_id);
	if (!backend) {
		sock_count(SOCK_BACKEND_MISSING);
		return -ENOENT;
	}
	rev_key.address = backend->address;
	rev_key.port = backend->port;
	ret = bpf_map_update_elem(&lb4_reverse_v1, &rev_key, &rev, BPF_ANY);
	lb_count_balanced(svc, backend_id, ret);
	*address = backend->address;
	*port = backend->port;
	return 0;
}

/* Turns a backend address seen by this socket back into the VIP it dialled, if it dialled one. */
static __always_inline void __lb4_xlate_rev(__u64 cookie, __be32 *address, __be16 *port)
{
	struct lb4_reverse_key key = { .cookie = cookie, .address = *address, .port = *port };
	const struct lb4_reverse *rev = bpf_map_lookup_elem(&lb4_reverse_v1, &key);

	if (!rev)
		return;
	*address = rev->address;
	*port = rev->port;
	sock_count(SOCK_REVERSED);
}

static __always_inline int __lb6_xlate_fwd(__u64 cookie, __u64 client, union v6addr *address,
					   __be16 *port, __u8 proto)
{
	struct lb6_key key = { .address = *address, .dport = *port, .proto = proto };
	struct lb6_reverse_key rev_key = { .cookie = cookie };
	struct lb6_reverse rev = { .address = *address, .port = *port };
	const struct lb6_backend *backend;
	const struct lb_service *svc;
	__u32 backend_id;
	int ret;

	svc = bpf_map_lookup_elem(&lb6_services_v1, &key);
	if (!svc)
		return -ENXIO;
	ret = lb_choose(svc, client, &backend_id);
	if (ret)
		return ret;
	backend = bpf_map_lookup_elem(&lb6_backends_v1, &backend_id);
	if (!backend) {
		sock_count(SOCK_BACKEND_MISSING);
		return -ENOENT;
	}
	rev_key.address = backend->address;
	rev_key.port = backend->port;
	ret = bpf_map_update_elem(&lb6_reverse_v1, &rev_key, &rev, BPF_ANY);
	lb_count_balanced(svc, backend_id, ret);
	*address = backend->address;
	*port = backend->port;
	return 0;
}

static __always_inline void __lb6_xlate_rev(__u64 cookie, union v6addr *address, __be16 *port)
{
	struct lb6_reverse_key key = { .cookie = cookie, .address = *address, .port = *port };
	const struct lb6_reverse *rev = bpf_map_lookup_elem(&lb6_reverse_v1, &key);

	if (!rev)
		return;
	*address = rev->address;
	*port = rev->port;
	sock_count(SOCK_REVERSED);
}

#endif /* SOCKLB_LB_H */
