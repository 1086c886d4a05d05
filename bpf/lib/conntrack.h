/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP side's own maps (connection and reverse NAT tables, source ranges, the node's
 * configuration, the per-reason counters), and the flows' TCP state, lifetimes and SNAT ports.
 */
#ifndef SOCKLB_CONNTRACK_H
#define SOCKLB_CONNTRACK_H

#include <bpf/bpf_core_read.h>

#include "common.h"
#include "parse.h"

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

/*
 * Open TCP flows per backend id (__s64) for the least-connection schedulers' XDP picks: one per
 * connection entry that a pick created (LB_CT_F_COUNTED) until the flow's first FIN or RST from
 * either side, IPVS's "active" connection, or until its entry is deleted. Apart from the socket
 * hooks' lb_be_conns_v1 because this figure can be recounted from the connection tables (the
 * agent does so on its periodic pass, for the open entries the LRU evicts without a word), where
 * the sockets' can only be kept by the release hook: one shared figure could be neither recounted
 * nor corrected without losing the sockets' share. Each path thus balances its own connections,
 * and two balanced shares add up to a balanced whole.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __s64);
	__uint(max_entries, 1);
} lb_be_flows_v1 SEC(".maps");

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

static __always_inline bool v6addr_is_zero(const union v6addr *a)
{
	return !(a->words[0] | a->words[1] | a->words[2] | a->words[3]);
}

static __always_inline bool v6addr_equal(const union v6addr *a, const union v6addr *b)
{
	return !((a->words[0] ^ b->words[0]) | (a->words[1] ^ b->words[1]) |
		 (a->words[2] ^ b->words[2]) | (a->words[3] ^ b->words[3]));
}

#define NSEC_PER_MSEC 1000000ULL

/*
 * Lifetimes where lb_node_config leaves them 0, in ms. A flow's entries stay while the LRU keeps
 * them; past its lifetime a flow only gives up its SNAT port to a new flow that draws it. SYN and
 * UDP as Cilium's defaults, established as Cilium's too (Linux keeps 5 days, but a SNAT port held
 * that long by a vanished client is a port lost). Closed: after both FINs only a lost last ACK is
 * left, answered by the peer sending its FIN again after an RTO (at least 200 ms on Linux, then
 * 400 ms), and each such packet starts the grace again, so 500 ms lets two of them through. It
 * bounds the new connections one node can open to one backend at about the NAT range over the
 * grace (4,536 ports: some 5,000 a second at most), where Linux's 2 minutes of TIME_WAIT would
 * allow a few dozen.
 */
#define CT_TCP_SYN_LIFETIME_MS	       60000
#define CT_TCP_ESTABLISHED_LIFETIME_MS 21600000
#define CT_TCP_CLOSED_LIFETIME_MS      500
#define CT_UDP_LIFETIME_MS	       60000

/*
 * The clock of last_seen_ns: the coarse one (a tick's resolution, plenty for lifetimes in
 * seconds) where the kernel has it (5.11 on), as reading the precise one took about 90 ns of an
 * established packet's 500 here; bpf_ktime_get_ns before. Both are CLOCK_MONOTONIC.
 */
static __always_inline __u64 ct_now(void)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_ktime_get_coarse_ns))
		return bpf_ktime_get_coarse_ns();
	return bpf_ktime_get_ns();
}

/* The LB_CT_S_* bits a packet gives its direction's entry (none for UDP). */
static __always_inline __u8 ct_state_of(void *data, void *data_end, const struct pkt *p)
{
	struct tcphdr *th = l4_hdr(data, p);
	__u8 bits = 0;

	if (p->proto != IPPROTO_TCP || (void *)(th + 1) > data_end)
		return 0;
	if (!th->syn)
		bits |= LB_CT_S_ESTABLISHED;
	if (th->fin)
		bits |= LB_CT_S_FIN;
	if (th->rst)
		bits |= LB_CT_S_RST;
	return bits;
}

/* A packet of one direction, in that direction's entry: what it adds to the state, and when. */
static __always_inline void ct_touch(__u64 *last_seen_ns, __u8 *state, __u8 bits, __u64 now)
{
	/* Written only when it changes: most packets add nothing. */
	if (bits & ~*state)
		*state |= bits;
	*last_seen_ns = now;
}

/*
 * Takes a counted flow (its entry's flags and backend id) off its backend's count, once. Two CPUs
 * may both find the flag set only when the client's and the backend's first FIN or RST meet within
 * nanoseconds on different CPUs (5.10 has no exchange to settle it): the count then dips one low,
 * and the agent's recount puts it right.
 */
static __always_inline void ct_uncount(__u8 *flags, const __u32 *backend_id)
{
	if (!(*flags & LB_CT_F_COUNTED))
		return;
	*flags &= ~LB_CT_F_COUNTED;
	count_add(&lb_be_flows_v1, *backend_id, -1);
}

/* A client packet's state bits: a first FIN or RST ends the flow's count. */
static __always_inline void ct_touch_client(__u8 *flags, const __u32 *backend_id, __u8 *state,
					    __u8 bits, __u64 *last_seen_ns, __u64 now)
{
	if (bits & (LB_CT_S_FIN | LB_CT_S_RST))
		ct_uncount(flags, backend_id);
	ct_touch(last_seen_ns, state, bits, now);
}

static __always_inline bool ct_closed(__u8 client, __u8 backend)
{
	return ((client | backend) & LB_CT_S_RST) || (client & backend & LB_CT_S_FIN);
}

static __always_inline __u64 ct_lifetime_ns(const struct lb_node_config *cfg, __u8 proto,
					    __u8 client, __u8 backend)
{
	__u32 ms;

	if (proto != IPPROTO_TCP)
		ms = cfg->udp_lifetime_ms ?: CT_UDP_LIFETIME_MS;
	else if (ct_closed(client, backend))
		ms = cfg->tcp_closed_lifetime_ms ?: CT_TCP_CLOSED_LIFETIME_MS;
	else if ((client | backend) & LB_CT_S_ESTABLISHED)
		ms = cfg->tcp_established_lifetime_ms ?: CT_TCP_ESTABLISHED_LIFETIME_MS;
	else
		ms = cfg->tcp_syn_lifetime_ms ?: CT_TCP_SYN_LIFETIME_MS;
	return ms * NSEC_PER_MSEC;
}

/*
 * Whether a flow (client and backend state, last seen at last_ns by either side) is over:
 * XDP_R_NAT_RECLAIMED when closed and past its grace, XDP_R_CT_EXPIRED when idle past its
 * lifetime, 0 while it lives.
 */
static __always_inline int ct_over(const struct lb_node_config *cfg, __u8 proto, __u8 client,
				   __u8 backend, __u64 last_ns, __u64 now)
{
	/* Signed: another CPU may have seen the flow after this one read the clock. */
	if ((__s64)(now - last_ns) <= (__s64)ct_lifetime_ns(cfg, proto, client, backend))
		return 0;
	return proto == IPPROTO_TCP && ct_closed(client, backend) ? XDP_R_NAT_RECLAIMED
								  : XDP_R_CT_EXPIRED;
}

/*
 * How long a backend that closed first keeps the connection in TIME_WAIT (Linux's
 * TCP_TIMEWAIT_LEN). A port reused sooner meets that socket, which refuses the new SYN when its
 * timestamp looks older (PAWS), and the client tries again a second later; so a closed flow's
 * port is taken sooner only when the draws found nothing better.
 */
#define CT_BACKEND_TIME_WAIT_NS (60 * 1000 * NSEC_PER_MSEC)

/*
 * Whether the flow holding a reverse SNAT entry is over, judged on both of its entries (either
 * side may be the only one still sending): 0 while it lives; else the counter of its reclaim,
 * negated when the flow closed within the backend's TIME_WAIT (take its port only as a last
 * resort). With take, the flow's connection entry goes too: should its client send again, that
 * starts a new flow instead of using the port the caller takes over. A reverse entry whose
 * connection entry is gone or is another flow's (evicted, reopened, its backend removed) has no
 * flow left to wait for: it is judged as closed, for the replies still on the way.
 */
static __noinline int rnat4_reclaim(const struct lb4_tuple *rkey, const struct lb4_rnat *rn,
				    const struct lb_node_config *cfg, __u64 now, bool take)
{
	struct lb4_tuple ckey = { .saddr = rn->client,
				  .daddr = rn->address,
				  .sport = rn->client_port,
				  .dport = rn->port,
				  .proto = rkey->proto };
	struct lb4_ct *ct = bpf_map_lookup_elem(&lb4_ct_v1, &ckey);
	__u64 last = rn->last_seen_ns;
	__u8 client = LB_CT_S_RST;
	int over;

	if (ct && (ct->flags & LB_CT_F_SNAT) && ct->nat_port == rkey->dport &&
	    ct->nat_address == rkey->daddr) {
		client = ct->state;
		if (ct->last_seen_ns > last)
			last = ct->last_seen_ns;
	} else {
		ct = NULL;
	}
	over = ct_over(cfg, rkey->proto, client, rn->state, last, now);
	if (!over || take) {
		if (over && ct) {
			ct_uncount(&ct->flags, &ct->backend_id);
			bpf_map_delete_elem(&lb4_ct_v1, &ckey);
		}
		return over;
	}
	return over == XDP_R_NAT_RECLAIMED && now - last < CT_BACKEND_TIME_WAIT_NS ? -over : over;
}

static __noinline int rnat6_reclaim(const struct lb6_tuple *rkey, const struct lb6_rnat *rn,
				    const struct lb_node_config *cfg, __u64 now, bool take)
{
	struct lb6_tuple ckey = { .saddr = rn->client,
				  .daddr = rn->address,
				  .sport = rn->client_port,
				  .dport = rn->port,
				  .proto = rkey->proto };
	struct lb6_ct *ct = bpf_map_lookup_elem(&lb6_ct_v1, &ckey);
	__u64 last = rn->last_seen_ns;
	__u8 client = LB_CT_S_RST;
	int over;

	if (ct && (ct->flags & LB_CT_F_SNAT) && ct->nat_port == rkey->dport &&
	    v6addr_equal(&ct->nat_address, &rkey->daddr)) {
		client = ct->state;
		if (ct->last_seen_ns > last)
			last = ct->last_seen_ns;
	} else {
		ct = NULL;
	}
	over = ct_over(cfg, rkey->proto, client, rn->state, last, now);
	if (!over || take) {
		if (over && ct) {
			ct_uncount(&ct->flags, &ct->backend_id);
			bpf_map_delete_elem(&lb6_ct_v1, &ckey);
		}
		return over;
	}
	return over == XDP_R_NAT_RECLAIMED && now - last < CT_BACKEND_TIME_WAIT_NS ? -over : over;
}

/*
 * The backend's first FIN or RST on the flow of a reverse entry (`reply` its tuple, backend first):
 * the flow's connection entry, if it is still this flow's (same backend), stops counting. Out of
 * line: taken once per flow, and the reply path has no stack for the key.
 */
static __noinline void ct4_backend_closed(const struct lb4_tuple *reply, const struct lb4_rnat *rn)
{
	struct lb4_tuple ckey = { .saddr = rn->client,
				  .daddr = rn->address,
				  .sport = rn->client_port,
				  .dport = rn->port,
				  .proto = reply->proto };
	struct lb4_ct *ct = bpf_map_lookup_elem(&lb4_ct_v1, &ckey);

	if (ct && ct->backend_address == reply->saddr && ct->backend_port == reply->sport)
		ct_uncount(&ct->flags, &ct->backend_id);
}

static __noinline void ct6_backend_closed(const struct lb6_tuple *reply, const struct lb6_rnat *rn)
{
	struct lb6_tuple ckey = { .saddr = rn->client,
				  .daddr = rn->address,
				  .sport = rn->client_port,
				  .dport = rn->port,
				  .proto = reply->proto };
	struct lb6_ct *ct = bpf_map_lookup_elem(&lb6_ct_v1, &ckey);

	if (ct && ct->backend_port == reply->sport &&
	    v6addr_equal(&ct->backend_address, &reply->saddr))
		ct_uncount(&ct->flags, &ct->backend_id);
}

/* Whether a backend packet's state bits end its flow's count: its first FIN or RST. */
static __always_inline bool ct_backend_ending(__u8 state, __u8 bits)
{
	return bits & ~state & (LB_CT_S_FIN | LB_CT_S_RST);
}

/*
 * SNAT ports tried before a new flow is given up: each try is one NOEXIST insert. A port is
 * unusable while its flow is open or within its closed grace, about R/2 of the range at R new
 * flows a second to one backend: with 8 tries, 3,000 a second through the 4,536 default ports lost
 * SYNs to nat_exhausted every few thousand flows (each then waits a 1 s retransmission); 16 make
 * that about 1e-5. A loop, not unrolled: each try is a helper call or two, and unrolled copies
 * would only cost the verifier more.
 */
#define NAT_PORT_TRIES 16

/*
 * Claims a SNAT port for a reply tuple (struct lb4_tuple or lb6_tuple, by family) whose dport is
 * still to choose: writes the reverse entry under the first port drawn that no flow holds or
 * whose flow is well over (idle past its lifetime, or closed longer than the backend's
 * TIME_WAIT); failing that, under the first drawn port of a flow closed past its grace. A port
 * taken over counts as reclaimed or expired. Every try draws a new port: with consecutive ports
 * from one draw, taken ports would cluster (as in linear probing) and a table a sixth full
 * already failed one new flow in half a million in the bench. Two CPUs taking over the same port
 * at the same instant both succeed and the earlier flow's replies go to the later one's client:
 * that needs the same draw from thousands of ports within a few hundred nanoseconds, and costs
 * one connection attempt. Returns the port (net order) or 0.
 */
static __always_inline __be16 nat_claim_port(int family, void *rkey, __be16 *dport,
					     const void *rnat, const struct lb_node_config *cfg,
					     __u64 now)
{
	void *map = family == 4 ? (void *)&lb4_rnat_v1 : (void *)&lb6_rnat_v1;
	__u32 span = (__u32)cfg->nat_port_max - cfg->nat_port_min + 1;
	__be16 fallback = 0;
	void *old;
	__u32 i;
	int over;

	if (cfg->nat_port_min == 0 || cfg->nat_port_max < cfg->nat_port_min)
		return 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		*dport = bpf_htons(cfg->nat_port_min + bpf_get_prandom_u32() % span);
		if (!bpf_map_update_elem(map, rkey, rnat, BPF_NOEXIST))
			return *dport;
		old = bpf_map_lookup_elem(map, rkey);
		if (!old)
			continue;
		over = family == 4 ? rnat4_reclaim(rkey, old, cfg, now, false)
				   : rnat6_reclaim(rkey, old, cfg, now, false);
		if (over > 0)
			goto take;
		if (over < 0 && !fallback)
			fallback = *dport;
	}
	if (!fallback)
		return 0;
	*dport = fallback;
take:
	old = bpf_map_lookup_elem(map, rkey);
	if (!old)
		return bpf_map_update_elem(map, rkey, rnat, BPF_NOEXIST) ? 0 : *dport;
	over = family == 4 ? rnat4_reclaim(rkey, old, cfg, now, true)
			   : rnat6_reclaim(rkey, old, cfg, now, true);
	if (!over || bpf_map_update_elem(map, rkey, rnat, BPF_EXIST))
		return 0;
	xdp_count(over);
	return *dport;
}

#endif /* SOCKLB_CONNTRACK_H */
