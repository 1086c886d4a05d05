/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP load balancer for traffic from outside the node: external frontends to backends (SNAT,
 * DSR, or DNAT only for local ones), replies and ICMP errors of translated flows, DSR
 * decapsulation, and the tc egress reverse translation for replies of local backends.
 */
#ifndef SOCKLB_NODEPORT_H
#define SOCKLB_NODEPORT_H

#include "conntrack.h"
#include "fib.h"
#include "lb.h"
#include "nat.h"
#include "reply.h"

#define ICMP_TIME_EXCEEDED 11
#define ICMPV6_PKT_TOOBIG  2
#define ICMPV6_TIME_EXCEED 3
#define TC_ACT_OK	   0
/*
 * Header field offsets for the skb helpers. Not offsetof(): vmlinux.h's structs carry CO-RE
 * relocations, which clang turned into a load from a computed address here.
 */
#define IP_CSUM_OFF   10
#define IP_SADDR_OFF  12
#define TCP_CSUM_OFF  16
#define UDP_CSUM_OFF  6
#define IP6_SADDR_OFF 8

/*
 * Session affinity knows a client on the node by its netns cookie (a small counter) and one
 * outside by its address: the top bit keeps the two apart.
 */
#define LB_CLIENT_EXTERNAL (1ULL << 63)

static __always_inline bool tcp_is_syn(void *data, void *data_end, const struct pkt *p)
{
	struct tcphdr *th = l4_hdr(data, p);

	return (void *)(th + 1) <= data_end && th->syn && !th->ack;
}

/*
 * A frontend without backends: externalTrafficPolicy: Local drops (the load balancer's health
 * check already steers away from this node), Cluster rejects as kube-proxy does, so the client
 * fails at once instead of retrying into silence.
 */
static __always_inline int xdp_no_backend(struct xdp_md *ctx, const struct pkt *p, __u16 svc_flags,
					  __u32 service_id)
{
	if (svc_flags & LB_SVC_F_LOCAL) {
		xdp_count(XDP_R_NO_LOCAL_BACKEND);
		return XDP_DROP;
	}
	xdp_count(XDP_R_REJECTED);
	lb_count_refused(service_id);
	if (p->proto == IPPROTO_TCP)
		return p->family == 4 ? reply4_rst(ctx, p) : reply6_rst(ctx, p);
	return p->family == 4 ? reply4_unreach(ctx, p) : reply6_unreach(ctx, p);
}

/* What lb_pick's failures mean here; XDP_ABORTED stands for "go on, a backend was picked". */
static __always_inline int xdp_pick_failed(struct xdp_md *ctx, const struct pkt *p, int ret,
					   const struct lb_service *svc, const struct lb_pick *pick)
{
	switch (ret) {
	case 0:
		return XDP_ABORTED;
	case -ECONNREFUSED:
		return xdp_no_backend(ctx, p, svc->flags, pick->service_id);
	case -ENXIO: /* the frontend went away meanwhile */
		xdp_count(XDP_R_NOT_SERVICE);
		return XDP_PASS;
	default:
		xdp_count(XDP_R_PICK_MISS);
		return XDP_PASS;
	}
}

/*
 * A new flow's entry counts when it is TCP of a least-connection service and open (a first packet
 * that ends it, a stray FIN or RST, does not); a flow whose entry another CPU's pick of the same
 * tuple writes over keeps its count, for the agent's recount to drop.
 */
static __always_inline void ct_mark_counted(const struct lb_service *svc, __u8 proto, __u8 state,
					    __u8 *flags)
{
	if (proto == IPPROTO_TCP && lb_sched_counts_conns(svc) &&
	    !(state & (LB_CT_S_FIN | LB_CT_S_RST)))
		*flags |= LB_CT_F_COUNTED;
}

/*
 * A flow whose backend is gone ends: a TCP segment other than a SYN gets a reset, so the client
 * fails now rather than after minutes of retransmissions into a backend that will never answer;
 * a SYN (a new connection reusing the tuple) and UDP (no connection to end; kube-proxy flushes
 * such conntrack entries for the same reason) are balanced afresh. Returns XDP_ABORTED for the
 * latter.
 */
static __always_inline int xdp_backend_gone(struct xdp_md *ctx, const struct pkt *p, void *ct_map,
					    const void *tuple, __u8 *ct_flags,
					    const __u32 *backend_id)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);

	xdp_count(XDP_R_BACKEND_GONE);
	ct_uncount(ct_flags, backend_id);
	bpf_map_delete_elem(ct_map, tuple);
	if (p->proto != IPPROTO_TCP || tcp_is_syn(data, data_end, p))
		return XDP_ABORTED;
	return p->family == 4 ? reply4_rst(ctx, p) : reply6_rst(ctx, p);
}

/* ---- IPv4 ---- */

/*
 * A SYN on the tuple of a flow that its client ended (FIN or RST) or its backend reset: the client
 * opens a new connection from the same port, and it is balanced as one. Returns -1 while the flow
 * is open (a retransmitted SYN); else forgets the flow and returns its SNAT port (net order; 0
 * for none), which the new flow takes again if it goes to the same backend: the backend then sees
 * the client reuse its port, as it would without NAT, and accepts the SYN even while it holds the
 * old connection in TIME_WAIT (a higher sequence number), which another client's SYN on that port
 * need not have.
 */
static __noinline int xdp_reopen4(const struct lb4_tuple *t, struct lb4_ct *ct)
{
	struct lb4_tuple rkey = { .saddr = ct->backend_address,
				  .daddr = t->saddr,
				  .sport = ct->backend_port,
				  .dport = t->sport,
				  .proto = t->proto };
	struct lb4_rnat *rn = NULL;
	__u8 backend = 0;
	int port = 0;

	if (ct->flags & LB_CT_F_SNAT) {
		rkey.daddr = ct->nat_address;
		rkey.dport = ct->nat_port;
		port = ct->nat_port;
	}
	if (ct->flags & (LB_CT_F_SNAT | LB_CT_F_LOCAL))
		rn = bpf_map_lookup_elem(&lb4_rnat_v1, &rkey);
	if (rn && rn->client == t->saddr && rn->client_port == t->sport)
		backend = rn->state;
	if (!(ct->state & (LB_CT_S_FIN | LB_CT_S_RST)) && !(backend & LB_CT_S_RST))
		return -1;
	ct_uncount(&ct->flags, &ct->backend_id);
	bpf_map_delete_elem(&lb4_ct_v1, t);
	xdp_count(XDP_R_CT_REOPENED);
	return port;
}

static __always_inline bool src4_allowed(__u32 service_id, __be32 saddr)
{
	struct lb4_src_range_key key = { .prefixlen = 64,
					 .service_id = service_id,
					 .address = saddr };

	return bpf_map_lookup_elem(&lb4_src_ranges_v1, &key);
}

/* The flow replying to an inner packet (a DSR or ICMP-quoted one) whose ports are at ports. */
static __always_inline void tuple4_reverse(const struct iphdr *in, const __be16 *ports,
					   struct lb4_tuple *r)
{
	r->saddr = in->daddr;
	r->daddr = in->saddr;
	r->sport = ports[1];
	r->dport = ports[0];
	r->proto = in->protocol;
}

/* The outer UDP source port of a DSR flow: fixed per flow, spread over flows for ECMP and RSS. */
static __always_inline __be16 dsr4_entropy_port(const struct lb4_tuple *t)
{
	return bpf_htons(0xc000 | ((bpf_ntohl(t->saddr) ^ bpf_ntohs(t->sport)) & 0x3fff));
}

/*
 * Wraps the packet (already sent to the backend) for the backend's node: outer IPv4, UDP and
 * struct lb4_dsr_hdr go between the Ethernet header and the packet's own. *p then describes the
 * outer packet.
 */
static __always_inline int dsr4_encap(struct xdp_md *ctx, struct pkt *p, const struct lb4_ct *ct,
				      const struct lb4_tuple *t)
{
	const __u32 hdr_len =
		sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct lb4_dsr_hdr);
	const struct lb_node_config *cfg = node_config();
	void *data, *data_end;
	struct lb4_dsr_hdr *dsr;
	struct udphdr *udp;
	struct iphdr *ip;
	__u32 inner_len;

	if (!cfg)
		return -1;
	inner_len = xdp_data_end(ctx) - xdp_data(ctx) - p->l3_off;
	if (xdp_push_l3(ctx, p, hdr_len))
		return -1;
	data = xdp_data(ctx);
	data_end = xdp_data_end(ctx);
	ip = l3_hdr(data, p);
	udp = (void *)(ip + 1);
	dsr = (void *)(udp + 1);
	if ((void *)(dsr + 1) > data_end)
		return -1;
	ip4_write(ip, cfg->snat_address4, ct->nat_address, hdr_len + inner_len, IPPROTO_UDP);
	udp->source = ct->nat_port;
	udp->dest = cfg->dsr_port;
	udp->len = bpf_htons(hdr_len - sizeof(*ip) + inner_len);
	udp->check = 0;
	dsr->version = LB_DSR_VERSION;
	dsr->proto = IPPROTO_IPIP;
	dsr->frontend_port = t->dport;
	dsr->frontend_address = t->daddr;
	p->l4_off = p->l3_off + sizeof(*ip);
	p->proto = IPPROTO_UDP;
	return 0;
}

/* Rewrites a packet of a flow as its entry says, then sends it on. */
static __always_inline int xdp_fwd4(struct xdp_md *ctx, const struct pkt *p,
				    const struct lb4_tuple *t, const struct lb4_ct *ct)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct lb4_tuple to = *t;
	struct pkt outer = *p;

	to.daddr = ct->backend_address;
	to.dport = ct->backend_port;
	if (ct->flags & LB_CT_F_SNAT) {
		to.saddr = ct->nat_address;
		to.sport = ct->nat_port;
	}
	if (nat4_rewrite(data, data_end, p, &to))
		return XDP_DROP;
	/* A local backend is a pod behind a veth: the stack routes it there. */
	if (ct->flags & LB_CT_F_LOCAL)
		return XDP_PASS;
	if ((ct->flags & LB_CT_F_DSR) && dsr4_encap(ctx, &outer, ct, t))
		return XDP_DROP;
	return fib_forward4(ctx, &outer);
}

/*
 * A DSR packet from another node for a backend on this one: strips the encapsulation, records
 * the frontend for tc egress to give the replies, and lets the stack deliver the packet.
 * XDP_ABORTED when the packet is no DSR packet for this node.
 */
static __always_inline int xdp_dsr4_decap(struct xdp_md *ctx, const struct pkt *p,
					  const struct lb4_tuple *t)
{
	const __u32 hdr_len =
		sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct lb4_dsr_hdr);
	const struct lb_node_config *cfg = node_config();
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct lb4_rnat rnat = { .last_seen_ns = ct_now(), .flags = LB_CT_F_LOCAL }, *old;
	struct lb4_tuple rkey = {};
	struct iphdr *outer, *in;
	struct lb4_dsr_hdr *dsr;
	__be16 *ports;

	if (!cfg || !cfg->dsr_port || t->dport != cfg->dsr_port || t->daddr != cfg->snat_address4)
		return XDP_ABORTED;
	outer = l3_hdr(data, p);
	dsr = l4_hdr(data, p) + sizeof(struct udphdr);
	in = (void *)(dsr + 1);
	ports = (void *)(in + 1);
	if ((void *)(outer + 1) > data_end || (void *)(ports + 2) > data_end)
		goto malformed;
	/* What dsr4_encap writes: no IP options, outside or inside. */
	if (outer->ihl != 5 || dsr->version != LB_DSR_VERSION || dsr->proto != IPPROTO_IPIP ||
	    in->version != 4 || in->ihl != 5 ||
	    (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
		goto malformed;
	tuple4_reverse(in, ports, &rkey);
	rnat.address = dsr->frontend_address;
	rnat.port = dsr->frontend_port;
	rnat.client = in->saddr;
	rnat.client_port = ports[0];
	/* Written once per flow, not per packet. */
	old = bpf_map_lookup_elem(&lb4_rnat_v1, &rkey);
	if (!old || old->address != rnat.address || old->port != rnat.port ||
	    !(old->flags & LB_CT_F_LOCAL))
		bpf_map_update_elem(&lb4_rnat_v1, &rkey, &rnat, BPF_ANY);
	if (xdp_pop_l3(ctx, p, hdr_len))
		return XDP_DROP;
	xdp_count(XDP_R_DSR_DECAP);
	return XDP_PASS;
malformed:
	xdp_count(XDP_R_MALFORMED);
	return XDP_DROP;
}

/*
 * A reopened flow's SNAT port (xdp_reopen4), taken again when the new flow goes to the same
 * backend and the reverse entry is still this client's. Returns the port or 0.
 */
static __always_inline __be16 nat_reuse_port4(struct lb4_tuple *rkey, __be16 port,
					      const struct lb4_rnat *rnat)
{
	struct lb4_rnat *old;

	if (!port)
		return 0;
	rkey->dport = port;
	old = bpf_map_lookup_elem(&lb4_rnat_v1, rkey);
	if (!old || old->client != rnat->client || old->client_port != rnat->client_port ||
	    bpf_map_update_elem(&lb4_rnat_v1, rkey, rnat, BPF_EXIST))
		return 0;
	return port;
}

/*
 * What maglev hashes for a flow from outside: its 5-tuple, hashed alike on every node so that any
 * node the flow reaches picks the same backend. sh hashes the source address alone.
 */
static __always_inline __u32 lb4_flow_hash(const struct lb4_tuple *t)
{
	__u32 h = lb_hash_add(lb_hash_add(0, t->saddr), t->daddr);

	return lb_hash_add(lb_hash_add(h, ((__u32)t->sport << 16) | t->dport), t->proto);
}

/*
 * The one hash the service's scheduler reads (sh the source, maglev the 5-tuple): one value, not
 * both, kept across the pick's helper calls, which is stack the IPv6 path has none of to spare.
 */
static __always_inline __u32 lb4_sched_hash(const struct lb_service *svc, const struct lb4_tuple *t)
{
	return svc->scheduler == LB_SCHED_MAGLEV ? lb4_flow_hash(t) : lb_hash_add(0, t->saddr);
}

/* The first packet of a flow: pick a backend, record the flow (and its SNAT port), send it. */
static __always_inline int xdp_new4(struct xdp_md *ctx, const struct pkt *p,
				    const struct lb4_tuple *t, const struct lb4_key *key,
				    const struct lb_service *svc, __be16 reuse_port)
{
	__u64 now = ct_now();
	struct lb4_rnat rnat = { .last_seen_ns = now,
				 .address = t->daddr,
				 .client = t->saddr,
				 .port = t->dport,
				 .client_port = t->sport };
	const struct lb_node_config *cfg;
	struct lb4_tuple rkey = { .proto = t->proto };
	const struct lb4_backend *be;
	struct lb_pick pick = {};
	struct lb4_ct ct = { .last_seen_ns = now };
	__u32 hash;
	int ret;

	hash = lb4_sched_hash(svc, t);
	ret = lb_pick(&lb4_services_v2, key, svc, &lb4_backends_v2,
		      LB_CLIENT_EXTERNAL | bpf_ntohl(t->saddr), hash, hash, &lb_be_flows_v1, &pick,
		      (const void **)&be);
	ret = xdp_pick_failed(ctx, p, ret, svc, &pick);
	if (ret != XDP_ABORTED)
		return ret;
	ct.backend_id = pick.backend_id;
	ct.service_id = pick.service_id;
	ct.backend_address = be->address;
	ct.backend_port = be->port;
	ct.state = ct_state_of(xdp_data(ctx), xdp_data_end(ctx), p);
	rkey.saddr = be->address;
	rkey.sport = be->port;
	if ((svc->flags & LB_SVC_F_LOCAL) || (be->flags & LB_BE_F_LOCAL)) {
		ct.flags = rnat.flags = LB_CT_F_LOCAL;
		rkey.daddr = t->saddr;
		rkey.dport = t->sport;
		if (bpf_map_update_elem(&lb4_rnat_v1, &rkey, &rnat, BPF_ANY)) {
			xdp_count(XDP_R_CT_FAILED);
			return XDP_DROP;
		}
	} else {
		cfg = node_config();
		if (!cfg || !cfg->snat_address4) {
			xdp_count(XDP_R_NO_SNAT_ADDRESS);
			return XDP_DROP;
		}
		if ((cfg->flags & LB_CFG_F_DSR) && cfg->dsr_port && be->node_address) {
			/* The backend's node answers the client: nothing to remember for replies.
			 */
			ct.flags = LB_CT_F_DSR;
			ct.nat_address = be->node_address;
			ct.nat_port = dsr4_entropy_port(t);
			goto record;
		}
		ct.flags = rnat.flags = LB_CT_F_SNAT;
		ct.nat_address = rkey.daddr = cfg->snat_address4;
		ct.nat_port = nat_reuse_port4(&rkey, reuse_port, &rnat)
				      ?: nat_claim_port(4, &rkey, &rkey.dport, &rnat, cfg, now);
		if (!ct.nat_port) {
			xdp_count(XDP_R_NAT_EXHAUSTED);
			return XDP_DROP;
		}
	}
record:
	ct_mark_counted(svc, p->proto, ct.state, &ct.flags);
	/* The reverse entry goes first: no reply can come before the flow's first packet leaves. */
	if (bpf_map_update_elem(&lb4_ct_v1, t, &ct, BPF_ANY)) {
		bpf_map_delete_elem(&lb4_rnat_v1, &rkey);
		xdp_count(XDP_R_CT_FAILED);
		return XDP_DROP;
	}
	xdp_count(XDP_R_BALANCED);
	lb_count_connect(pick.service_id, pick.backend_id);
	if (ct.flags & LB_CT_F_COUNTED)
		count_add(&lb_be_flows_v1, ct.backend_id, 1);
	return xdp_fwd4(ctx, p, t, &ct);
}

/*
 * Rewrites an ICMP error's quoted packet to the flow `in_to` and its outer addresses to saddr ->
 * daddr. Every checksum this touches is updated: quoted IP and transport (where the quote reaches
 * it), ICMP, outer IP.
 */
static __always_inline void icmp4_rewrite(struct iphdr *ip, struct icmphdr *icmp, struct iphdr *in,
					  __be16 *ports, void *data_end,
					  const struct lb4_tuple *in_to, __be32 saddr, __be32 daddr)
{
	__u32 in_diff, icmp_diff, l4_diff;
	__sum16 *l4_check;
	__be16 in_check;

	in_diff = csum_diff4(csum_diff4(0, in->saddr, in_to->saddr), in->daddr, in_to->daddr);
	in_check = in->check;
	in->check = csum_apply(in->check, in_diff);
	icmp_diff = csum_diff2(in_diff, in_check, in->check);
	l4_diff = csum_diff2(csum_diff2(in_diff, ports[0], in_to->sport), ports[1], in_to->dport);
	icmp_diff =
		csum_diff2(csum_diff2(icmp_diff, ports[0], in_to->sport), ports[1], in_to->dport);
	/* The transport checksum, where the quote reaches it (UDP's always, TCP's at byte 16). */
	l4_check = in->protocol == IPPROTO_UDP ? (void *)&ports[3] : (void *)&ports[8];
	if ((void *)(l4_check + 1) <= data_end) {
		__sum16 old = *l4_check;

		*l4_check = in->protocol == IPPROTO_UDP ? csum_apply_udp(old, l4_diff)
							: csum_apply(old, l4_diff);
		icmp_diff = csum_diff2(icmp_diff, old, *l4_check);
	}
	in->saddr = in_to->saddr;
	in->daddr = in_to->daddr;
	ports[0] = in_to->sport;
	ports[1] = in_to->dport;
	icmp->checksum = csum_apply(icmp->checksum, icmp_diff);
	ip->check = csum_apply(ip->check,
			       csum_diff4(csum_diff4(0, ip->saddr, saddr), ip->daddr, daddr));
	ip->saddr = saddr;
	ip->daddr = daddr;
}

/*
 * An ICMP error (destination unreachable, fragmentation needed, time exceeded) about a translated
 * flow, both ways:
 * - about a packet the node sent a backend (SNAT), from the backend or a router on the way: the
 *   quoted packet becomes the one the client sent (client -> frontend), the error goes to the
 *   client, from the frontend when the backend itself sent it;
 * - about a reply the node sent a client (a router towards the client, say, with a smaller MTU):
 *   the quoted packet becomes the one the backend sent, the error goes to the backend, so the
 *   backend's socket learns the path MTU.
 */
static __noinline int xdp_icmp4(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct iphdr *ip = l3_hdr(data, p), *in;
	struct icmphdr *icmp = l4_hdr(data, p);
	struct lb4_tuple rkey = {}, to;
	struct lb4_rnat *rn;
	struct lb4_ct *ct;
	__be16 *ports;

	if ((void *)(ip + 1) > data_end || (void *)(icmp + 1) > data_end)
		return XDP_PASS;
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED)
		goto pass;
	in = (void *)(icmp + 1);
	ports = (void *)(in + 1);
	/* A quoted packet with IP options is rare enough to leave to the stack. */
	if ((void *)(ports + 4) > data_end || in->ihl != 5 ||
	    (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
		goto pass;
	tuple4_reverse(in, ports, &rkey);
	rn = bpf_map_lookup_elem(&lb4_rnat_v1, &rkey);
	if (rn && (rn->flags & LB_CT_F_SNAT)) {
		to = (struct lb4_tuple){ .saddr = rn->client,
					 .daddr = rn->address,
					 .sport = rn->client_port,
					 .dport = rn->port };
		icmp4_rewrite(ip, icmp, in, ports, data_end, &to,
			      ip->saddr == rkey.saddr ? rn->address : ip->saddr, rn->client);
		xdp_count(XDP_R_ICMP_ERROR);
		return fib_forward4(ctx, p);
	}
	/* The reverse of the quoted reply is the client's flow: rkey is its connection key. */
	ct = bpf_map_lookup_elem(&lb4_ct_v1, &rkey);
	if (!ct || !(ct->flags & (LB_CT_F_SNAT | LB_CT_F_LOCAL)))
		goto pass;
	to = (struct lb4_tuple){ .saddr = ct->backend_address,
				 .daddr = in->daddr,
				 .sport = ct->backend_port,
				 .dport = ports[1] };
	if (ct->flags & LB_CT_F_SNAT) {
		to.daddr = ct->nat_address;
		to.dport = ct->nat_port;
	}
	icmp4_rewrite(ip, icmp, in, ports, data_end, &to, ip->saddr, ct->backend_address);
	xdp_count(XDP_R_ICMP_ERROR);
	/* A local backend's error is delivered by the stack, like the flow's packets. */
	if (ct->flags & LB_CT_F_LOCAL)
		return XDP_PASS;
	return fib_forward4(ctx, p);
pass:
	xdp_count(XDP_R_NOT_SERVICE);
	return XDP_PASS;
}

/*
 * Out of line, as __xdp_lb6, the ICMP handlers, fib_forward4/6 and the rare reopen and reclaim
 * paths: inlined into one frame, the program needed more than BPF's 512 bytes of stack, while a
 * frame of its own adds only to the frames on its call chain.
 */
static __noinline int __xdp_lb4(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct lb4_key key = { .scope = LB_SCOPE_EXTERNAL };
	const struct lb4_backend *be;
	struct lb_service *svc;
	struct lb4_tuple t = {};
	struct lb4_rnat *rn;
	struct lb4_ct *ct;
	int reopened = -1;
	int ret;

	if (tuple4_of(data, data_end, p, &t)) {
		xdp_count(XDP_R_MALFORMED);
		return XDP_PASS;
	}
	if (t.proto == IPPROTO_UDP) {
		ret = xdp_dsr4_decap(ctx, p, &t);
		if (ret != XDP_ABORTED)
			return ret;
	}
	rn = bpf_map_lookup_elem(&lb4_rnat_v1, &t);
	if (rn && (rn->flags & LB_CT_F_SNAT)) {
		struct lb4_tuple to = { .saddr = rn->address,
					.daddr = rn->client,
					.sport = rn->port,
					.dport = rn->client_port };

		__u8 bits = ct_state_of(data, data_end, p);

		if (ct_backend_ending(rn->state, bits))
			ct4_backend_closed(&t, rn);
		ct_touch(&rn->last_seen_ns, &rn->state, bits, ct_now());
		if (nat4_rewrite(data, data_end, p, &to))
			return XDP_DROP;
		xdp_count(XDP_R_REPLY);
		return fib_forward4(ctx, p);
	}
	key.address = t.daddr;
	key.dport = t.dport;
	key.proto = t.proto;
	svc = bpf_map_lookup_elem(&lb4_services_v2, &key);
	if (!svc) {
		xdp_count(XDP_R_NOT_SERVICE);
		return XDP_PASS;
	}
	if ((svc->flags & LB_SVC_F_SOURCE_RANGES) && !src4_allowed(svc->service_id, t.saddr)) {
		xdp_count(XDP_R_SOURCE_DENIED);
		return XDP_DROP;
	}
	ct = bpf_map_lookup_elem(&lb4_ct_v1, &t);
	if (ct && tcp_is_syn(data, data_end, p)) {
		reopened = xdp_reopen4(&t, ct);
		if (reopened >= 0)
			ct = NULL;
	}
	if (ct) {
		be = bpf_map_lookup_elem(&lb4_backends_v2, &ct->backend_id);
		if (be && be->address == ct->backend_address && be->port == ct->backend_port) {
			ct_touch_client(&ct->flags, &ct->backend_id, &ct->state,
					ct_state_of(data, data_end, p), &ct->last_seen_ns,
					ct_now());
			xdp_count(XDP_R_ESTABLISHED);
			return xdp_fwd4(ctx, p, &t, ct);
		}
		ret = xdp_backend_gone(ctx, p, &lb4_ct_v1, &t, &ct->flags, &ct->backend_id);
		if (ret != XDP_ABORTED)
			return ret;
	}
	return xdp_new4(ctx, p, &t, &key, svc, reopened > 0 ? reopened : 0);
}

/* tc egress: the reply of a local backend leaves with the frontend as its source. */
static __always_inline int __tc_rev4(struct __sk_buff *skb, const struct pkt *p)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	__u32 csum_off = p->l4_off + (p->proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	struct lb4_tuple t = {};
	struct lb4_rnat *rn, r;
	__u8 bits;

	if (tuple4_of(data, data_end, p, &t))
		return TC_ACT_OK;
	rn = bpf_map_lookup_elem(&lb4_rnat_v1, &t);
	if (!rn || !(rn->flags & LB_CT_F_LOCAL))
		return TC_ACT_OK;
	bits = ct_state_of(data, data_end, p);
	if (ct_backend_ending(rn->state, bits))
		ct4_backend_closed(&t, rn);
	ct_touch(&rn->last_seen_ns, &rn->state, bits, ct_now());
	r = *rn;
	bpf_l4_csum_replace(skb, csum_off, t.saddr, r.address, BPF_F_PSEUDO_HDR | mangled | 4);
	bpf_l3_csum_replace(skb, p->l3_off + IP_CSUM_OFF, t.saddr, r.address, 4);
	bpf_skb_store_bytes(skb, p->l3_off + IP_SADDR_OFF, &r.address, 4, 0);
	bpf_l4_csum_replace(skb, csum_off, t.sport, r.port, mangled | 2);
	bpf_skb_store_bytes(skb, p->l4_off, &r.port, 2, 0);
	xdp_count(XDP_R_TC_REVERSED);
	return TC_ACT_OK;
}

/* ---- IPv6 ---- */

static __always_inline bool src6_allowed(__u32 service_id, const union v6addr *saddr)
{
	struct lb6_src_range_key key = { .prefixlen = 160,
					 .service_id = service_id,
					 .address = *saddr };

	return bpf_map_lookup_elem(&lb6_src_ranges_v1, &key);
}

/* Session affinity's id of an IPv6 client: its address folded to 63 bits. */
static __always_inline __u64 client6_id(const union v6addr *a)
{
	return LB_CLIENT_EXTERNAL | ((__u64)(a->words[0] ^ a->words[2]) << 32) |
	       (a->words[1] ^ a->words[3]);
}

/* xdp_reopen4 for IPv6. */
static __noinline int xdp_reopen6(const struct lb6_tuple *t, struct lb6_ct *ct)
{
	struct lb6_tuple rkey = { .saddr = ct->backend_address,
				  .daddr = t->saddr,
				  .sport = ct->backend_port,
				  .dport = t->sport,
				  .proto = t->proto };
	struct lb6_rnat *rn = NULL;
	__u8 backend = 0;
	int port = 0;

	if (ct->flags & LB_CT_F_SNAT) {
		rkey.daddr = ct->nat_address;
		rkey.dport = ct->nat_port;
		port = ct->nat_port;
	}
	if (ct->flags & (LB_CT_F_SNAT | LB_CT_F_LOCAL))
		rn = bpf_map_lookup_elem(&lb6_rnat_v1, &rkey);
	if (rn && rn->client_port == t->sport && v6addr_equal(&rn->client, &t->saddr))
		backend = rn->state;
	if (!(ct->state & (LB_CT_S_FIN | LB_CT_S_RST)) && !(backend & LB_CT_S_RST))
		return -1;
	ct_uncount(&ct->flags, &ct->backend_id);
	bpf_map_delete_elem(&lb6_ct_v1, t);
	xdp_count(XDP_R_CT_REOPENED);
	return port;
}

/* lb4_flow_hash for IPv6. */
static __always_inline __u32 lb6_flow_hash(const struct lb6_tuple *t)
{
	__u32 h = lb6_addr_hash(lb6_addr_hash(0, &t->saddr), &t->daddr);

	return lb_hash_add(lb_hash_add(h, ((__u32)t->sport << 16) | t->dport), t->proto);
}

/* The outer UDP source port of an IPv6 DSR flow (see dsr4_entropy_port). */
static __always_inline __be16 dsr6_entropy_port(const struct lb6_tuple *t)
{
	__u32 h = bpf_ntohl(t->saddr.words[0] ^ t->saddr.words[1] ^ t->saddr.words[2] ^
			    t->saddr.words[3]);

	return bpf_htons(0xc000 | ((h ^ (h >> 16) ^ bpf_ntohs(t->sport)) & 0x3fff));
}

/* dsr4_encap for IPv6: outer IPv6, UDP and struct lb6_dsr_hdr. */
static __always_inline int dsr6_encap(struct xdp_md *ctx, struct pkt *p, const struct lb6_ct *ct,
				      const struct lb6_tuple *t)
{
	const __u32 hdr_len =
		sizeof(struct ipv6hdr) + sizeof(struct udphdr) + sizeof(struct lb6_dsr_hdr);
	const struct lb_node_config *cfg = node_config();
	void *data, *data_end;
	struct lb6_dsr_hdr *dsr;
	struct ipv6hdr *ip6;
	struct udphdr *udp;
	__u32 inner_len;

	if (!cfg)
		return -1;
	inner_len = xdp_data_end(ctx) - xdp_data(ctx) - p->l3_off;
	if (xdp_push_l3(ctx, p, hdr_len))
		return -1;
	data = xdp_data(ctx);
	data_end = xdp_data_end(ctx);
	ip6 = l3_hdr(data, p);
	udp = (void *)(ip6 + 1);
	dsr = (void *)(udp + 1);
	if ((void *)(dsr + 1) > data_end)
		return -1;
	ip6_write(ip6, &cfg->snat_address6, &ct->nat_address, hdr_len - sizeof(*ip6) + inner_len,
		  IPPROTO_UDP);
	udp->source = ct->nat_port;
	udp->dest = cfg->dsr_port;
	udp->len = bpf_htons(hdr_len - sizeof(*ip6) + inner_len);
	udp->check = 0;
	dsr->version = LB_DSR_VERSION;
	dsr->proto = IPPROTO_IPV6;
	dsr->frontend_port = t->dport;
	dsr->frontend_address = t->daddr;
	p->l4_off = p->l3_off + sizeof(*ip6);
	p->proto = IPPROTO_UDP;
	return 0;
}

static __always_inline int xdp_fwd6(struct xdp_md *ctx, const struct pkt *p,
				    const struct lb6_tuple *t, const struct lb6_ct *ct)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct lb6_tuple to = *t;
	struct pkt outer = *p;

	to.daddr = ct->backend_address;
	to.dport = ct->backend_port;
	if (ct->flags & LB_CT_F_SNAT) {
		to.saddr = ct->nat_address;
		to.sport = ct->nat_port;
	}
	if (nat6_rewrite(data, data_end, p, &to))
		return XDP_DROP;
	if (ct->flags & LB_CT_F_LOCAL)
		return XDP_PASS;
	if ((ct->flags & LB_CT_F_DSR) && dsr6_encap(ctx, &outer, ct, t))
		return XDP_DROP;
	return fib_forward6(ctx, &outer);
}

/* xdp_dsr4_decap for IPv6. The inner packet must carry no extension headers. */
static __always_inline int xdp_dsr6_decap(struct xdp_md *ctx, const struct pkt *p,
					  const struct lb6_tuple *t)
{
	const __u32 hdr_len =
		sizeof(struct ipv6hdr) + sizeof(struct udphdr) + sizeof(struct lb6_dsr_hdr);
	const struct lb_node_config *cfg = node_config();
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct lb6_rnat rnat = { .last_seen_ns = ct_now(), .flags = LB_CT_F_LOCAL }, *old;
	struct lb6_tuple rkey = {};
	struct lb6_dsr_hdr *dsr;
	struct ipv6hdr *in;
	__be16 *ports;

	if (!cfg || !cfg->dsr_port || t->dport != cfg->dsr_port ||
	    !v6addr_equal(&t->daddr, &cfg->snat_address6))
		return XDP_ABORTED;
	/* The outer header is ours (dsr6_encap): no extension headers before UDP. */
	dsr = l4_hdr(data, p) + sizeof(struct udphdr);
	in = (void *)(dsr + 1);
	ports = (void *)(in + 1);
	if ((void *)(ports + 2) > data_end)
		goto malformed;
	if (p->l4_off != p->l3_off + sizeof(struct ipv6hdr) || dsr->version != LB_DSR_VERSION ||
	    dsr->proto != IPPROTO_IPV6 || in->version != 6 ||
	    (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP))
		goto malformed;
	__builtin_memcpy(&rkey.saddr, &in->daddr, sizeof(rkey.saddr));
	__builtin_memcpy(&rkey.daddr, &in->saddr, sizeof(rkey.daddr));
	rkey.sport = ports[1];
	rkey.dport = ports[0];
	rkey.proto = in->nexthdr;
	rnat.address = dsr->frontend_address;
	rnat.port = dsr->frontend_port;
	rnat.client = rkey.daddr;
	rnat.client_port = ports[0];
	old = bpf_map_lookup_elem(&lb6_rnat_v1, &rkey);
	if (!old || old->port != rnat.port || !v6addr_equal(&old->address, &rnat.address) ||
	    !(old->flags & LB_CT_F_LOCAL))
		bpf_map_update_elem(&lb6_rnat_v1, &rkey, &rnat, BPF_ANY);
	if (xdp_pop_l3(ctx, p, hdr_len))
		return XDP_DROP;
	xdp_count(XDP_R_DSR_DECAP);
	return XDP_PASS;
malformed:
	xdp_count(XDP_R_MALFORMED);
	return XDP_DROP;
}

/* nat_reuse_port4 for IPv6. */
static __always_inline __be16 nat_reuse_port6(struct lb6_tuple *rkey, __be16 port,
					      const struct lb6_rnat *rnat)
{
	struct lb6_rnat *old;

	if (!port)
		return 0;
	rkey->dport = port;
	old = bpf_map_lookup_elem(&lb6_rnat_v1, rkey);
	if (!old || old->client_port != rnat->client_port ||
	    !v6addr_equal(&old->client, &rnat->client) ||
	    bpf_map_update_elem(&lb6_rnat_v1, rkey, rnat, BPF_EXIST))
		return 0;
	return port;
}

/* lb4_sched_hash for IPv6. */
static __always_inline __u32 lb6_sched_hash(const struct lb_service *svc, const struct lb6_tuple *t)
{
	return svc->scheduler == LB_SCHED_MAGLEV ? lb6_flow_hash(t) : lb6_addr_hash(0, &t->saddr);
}

static __always_inline int xdp_new6(struct xdp_md *ctx, const struct pkt *p,
				    const struct lb6_tuple *t, const struct lb6_key *key,
				    const struct lb_service *svc, __be16 reuse_port)
{
	__u64 now = ct_now();
	struct lb6_rnat rnat = { .last_seen_ns = now,
				 .address = t->daddr,
				 .client = t->saddr,
				 .port = t->dport,
				 .client_port = t->sport };
	const struct lb_node_config *cfg;
	struct lb6_tuple rkey = { .proto = t->proto };
	const struct lb6_backend *be;
	struct lb_pick pick = {};
	struct lb6_ct ct = { .last_seen_ns = now };
	__u32 hash;
	int ret;

	hash = lb6_sched_hash(svc, t);
	ret = lb_pick(&lb6_services_v2, key, svc, &lb6_backends_v2, client6_id(&t->saddr), hash,
		      hash, &lb_be_flows_v1, &pick, (const void **)&be);
	ret = xdp_pick_failed(ctx, p, ret, svc, &pick);
	if (ret != XDP_ABORTED)
		return ret;
	ct.backend_id = pick.backend_id;
	ct.service_id = pick.service_id;
	ct.backend_address = be->address;
	ct.backend_port = be->port;
	ct.state = ct_state_of(xdp_data(ctx), xdp_data_end(ctx), p);
	rkey.saddr = be->address;
	rkey.sport = be->port;
	if ((svc->flags & LB_SVC_F_LOCAL) || (be->flags & LB_BE_F_LOCAL)) {
		ct.flags = rnat.flags = LB_CT_F_LOCAL;
		rkey.daddr = t->saddr;
		rkey.dport = t->sport;
		if (bpf_map_update_elem(&lb6_rnat_v1, &rkey, &rnat, BPF_ANY)) {
			xdp_count(XDP_R_CT_FAILED);
			return XDP_DROP;
		}
	} else {
		cfg = node_config();
		if (!cfg || v6addr_is_zero(&cfg->snat_address6)) {
			xdp_count(XDP_R_NO_SNAT_ADDRESS);
			return XDP_DROP;
		}
		if ((cfg->flags & LB_CFG_F_DSR) && cfg->dsr_port &&
		    !v6addr_is_zero(&be->node_address)) {
			ct.flags = LB_CT_F_DSR;
			ct.nat_address = be->node_address;
			ct.nat_port = dsr6_entropy_port(t);
			goto record;
		}
		ct.flags = rnat.flags = LB_CT_F_SNAT;
		ct.nat_address = rkey.daddr = cfg->snat_address6;
		ct.nat_port = nat_reuse_port6(&rkey, reuse_port, &rnat)
				      ?: nat_claim_port(6, &rkey, &rkey.dport, &rnat, cfg, now);
		if (!ct.nat_port) {
			xdp_count(XDP_R_NAT_EXHAUSTED);
			return XDP_DROP;
		}
	}
record:
	ct_mark_counted(svc, p->proto, ct.state, &ct.flags);
	if (bpf_map_update_elem(&lb6_ct_v1, t, &ct, BPF_ANY)) {
		bpf_map_delete_elem(&lb6_rnat_v1, &rkey);
		xdp_count(XDP_R_CT_FAILED);
		return XDP_DROP;
	}
	xdp_count(XDP_R_BALANCED);
	lb_count_connect(pick.service_id, pick.backend_id);
	if (ct.flags & LB_CT_F_COUNTED)
		count_add(&lb_be_flows_v1, ct.backend_id, 1);
	return xdp_fwd6(ctx, p, t, &ct);
}

/*
 * icmp4_rewrite for ICMPv6: the quoted packet to the flow `in_to`, the outer addresses to saddr ->
 * daddr; the ICMPv6 checksum covers the outer addresses too (pseudo-header).
 */
static __always_inline void icmp6_rewrite(struct ipv6hdr *ip6, struct icmp6hdr *icmp6,
					  struct ipv6hdr *in, __be16 *ports, void *data_end,
					  const struct lb6_tuple *in_to, const union v6addr *saddr,
					  const union v6addr *daddr)
{
	union v6addr *in_saddr = (union v6addr *)&in->saddr, *in_daddr = (union v6addr *)&in->daddr;
	union v6addr *out_saddr = (union v6addr *)&ip6->saddr;
	union v6addr *out_daddr = (union v6addr *)&ip6->daddr;
	__u32 l4_diff, icmp_diff;
	__sum16 *l4_check;

	l4_diff = csum_diff16(csum_diff16(0, in_saddr, &in_to->saddr), in_daddr, &in_to->daddr);
	l4_diff = csum_diff2(csum_diff2(l4_diff, ports[0], in_to->sport), ports[1], in_to->dport);
	icmp_diff = l4_diff;
	l4_check = in->nexthdr == IPPROTO_UDP ? (void *)&ports[3] : (void *)&ports[8];
	if ((void *)(l4_check + 1) <= data_end) {
		__sum16 old = *l4_check;

		*l4_check = in->nexthdr == IPPROTO_UDP ? csum_apply_udp(old, l4_diff)
						       : csum_apply(old, l4_diff);
		icmp_diff = csum_diff2(icmp_diff, old, *l4_check);
	}
	*in_saddr = in_to->saddr;
	*in_daddr = in_to->daddr;
	ports[0] = in_to->sport;
	ports[1] = in_to->dport;
	icmp_diff = csum_diff16(csum_diff16(icmp_diff, out_saddr, saddr), out_daddr, daddr);
	*out_saddr = *saddr;
	*out_daddr = *daddr;
	icmp6->icmp6_cksum = csum_apply(icmp6->icmp6_cksum, icmp_diff);
}

/*
 * An ICMPv6 error (packet too big, destination unreachable, time exceeded) about a translated
 * flow, both ways, as xdp_icmp4 does for IPv4.
 */
static __noinline int xdp_icmp6(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct ipv6hdr *ip6 = l3_hdr(data, p), *in;
	struct icmp6hdr *icmp6 = l4_hdr(data, p);
	union v6addr saddr, backend;
	struct lb6_tuple rkey = {}, to;
	struct lb6_rnat *rn;
	struct lb6_ct *ct;
	__be16 *ports;

	if ((void *)(ip6 + 1) > data_end || (void *)(icmp6 + 1) > data_end)
		return XDP_PASS;
	if (icmp6->icmp6_type != ICMPV6_DEST_UNREACH && icmp6->icmp6_type != ICMPV6_PKT_TOOBIG &&
	    icmp6->icmp6_type != ICMPV6_TIME_EXCEED)
		goto pass;
	in = (void *)(icmp6 + 1);
	ports = (void *)(in + 1);
	/* A quoted packet with extension headers is rare enough to leave to the stack. */
	if ((void *)(ports + 4) > data_end ||
	    (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP))
		goto pass;
	__builtin_memcpy(&rkey.saddr, &in->daddr, sizeof(rkey.saddr));
	__builtin_memcpy(&rkey.daddr, &in->saddr, sizeof(rkey.daddr));
	rkey.sport = ports[1];
	rkey.dport = ports[0];
	rkey.proto = in->nexthdr;
	__builtin_memcpy(&saddr, &ip6->saddr, sizeof(saddr));
	rn = bpf_map_lookup_elem(&lb6_rnat_v1, &rkey);
	if (rn && (rn->flags & LB_CT_F_SNAT)) {
		to = (struct lb6_tuple){ .saddr = rn->client,
					 .daddr = rn->address,
					 .sport = rn->client_port,
					 .dport = rn->port };
		if (v6addr_equal(&saddr, &rkey.saddr))
			saddr = rn->address;
		icmp6_rewrite(ip6, icmp6, in, ports, data_end, &to, &saddr, &rn->client);
		xdp_count(XDP_R_ICMP_ERROR);
		return fib_forward6(ctx, p);
	}
	ct = bpf_map_lookup_elem(&lb6_ct_v1, &rkey);
	if (!ct || !(ct->flags & (LB_CT_F_SNAT | LB_CT_F_LOCAL)))
		goto pass;
	to = (struct lb6_tuple){ .saddr = ct->backend_address,
				 .daddr = rkey.saddr,
				 .sport = ct->backend_port,
				 .dport = ports[1] };
	if (ct->flags & LB_CT_F_SNAT) {
		to.daddr = ct->nat_address;
		to.dport = ct->nat_port;
	}
	backend = ct->backend_address;
	icmp6_rewrite(ip6, icmp6, in, ports, data_end, &to, &saddr, &backend);
	xdp_count(XDP_R_ICMP_ERROR);
	if (ct->flags & LB_CT_F_LOCAL)
		return XDP_PASS;
	return fib_forward6(ctx, p);
pass:
	xdp_count(XDP_R_NOT_SERVICE);
	return XDP_PASS;
}

static __noinline int __xdp_lb6(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct lb6_key key = { .scope = LB_SCOPE_EXTERNAL };
	const struct lb6_backend *be;
	struct lb_service *svc;
	struct lb6_tuple t = {};
	struct lb6_rnat *rn;
	struct lb6_ct *ct;
	int reopened = -1;
	int ret;

	if (tuple6_of(data, data_end, p, &t)) {
		xdp_count(XDP_R_MALFORMED);
		return XDP_PASS;
	}
	if (t.proto == IPPROTO_UDP) {
		ret = xdp_dsr6_decap(ctx, p, &t);
		if (ret != XDP_ABORTED)
			return ret;
	}
	rn = bpf_map_lookup_elem(&lb6_rnat_v1, &t);
	if (rn && (rn->flags & LB_CT_F_SNAT)) {
		struct lb6_tuple to = { .saddr = rn->address,
					.daddr = rn->client,
					.sport = rn->port,
					.dport = rn->client_port };

		__u8 bits = ct_state_of(data, data_end, p);

		if (ct_backend_ending(rn->state, bits))
			ct6_backend_closed(&t, rn);
		ct_touch(&rn->last_seen_ns, &rn->state, bits, ct_now());
		if (nat6_rewrite(data, data_end, p, &to))
			return XDP_DROP;
		xdp_count(XDP_R_REPLY);
		return fib_forward6(ctx, p);
	}
	key.address = t.daddr;
	key.dport = t.dport;
	key.proto = t.proto;
	svc = bpf_map_lookup_elem(&lb6_services_v2, &key);
	if (!svc) {
		xdp_count(XDP_R_NOT_SERVICE);
		return XDP_PASS;
	}
	if ((svc->flags & LB_SVC_F_SOURCE_RANGES) && !src6_allowed(svc->service_id, &t.saddr)) {
		xdp_count(XDP_R_SOURCE_DENIED);
		return XDP_DROP;
	}
	ct = bpf_map_lookup_elem(&lb6_ct_v1, &t);
	if (ct && tcp_is_syn(data, data_end, p)) {
		reopened = xdp_reopen6(&t, ct);
		if (reopened >= 0)
			ct = NULL;
	}
	if (ct) {
		be = bpf_map_lookup_elem(&lb6_backends_v2, &ct->backend_id);
		if (be && be->port == ct->backend_port &&
		    v6addr_equal(&be->address, &ct->backend_address)) {
			ct_touch_client(&ct->flags, &ct->backend_id, &ct->state,
					ct_state_of(data, data_end, p), &ct->last_seen_ns,
					ct_now());
			xdp_count(XDP_R_ESTABLISHED);
			return xdp_fwd6(ctx, p, &t, ct);
		}
		ret = xdp_backend_gone(ctx, p, &lb6_ct_v1, &t, &ct->flags, &ct->backend_id);
		if (ret != XDP_ABORTED)
			return ret;
	}
	return xdp_new6(ctx, p, &t, &key, svc, reopened > 0 ? reopened : 0);
}

static __always_inline int __tc_rev6(struct __sk_buff *skb, const struct pkt *p)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	__u32 csum_off = p->l4_off + (p->proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	struct lb6_tuple t = {};
	struct lb6_rnat *rn, r;
	__u8 bits;
	int i;

	if (tuple6_of(data, data_end, p, &t))
		return TC_ACT_OK;
	rn = bpf_map_lookup_elem(&lb6_rnat_v1, &t);
	if (!rn || !(rn->flags & LB_CT_F_LOCAL))
		return TC_ACT_OK;
	bits = ct_state_of(data, data_end, p);
	if (ct_backend_ending(rn->state, bits))
		ct6_backend_closed(&t, rn);
	ct_touch(&rn->last_seen_ns, &rn->state, bits, ct_now());
	r = *rn;
#pragma unroll
	for (i = 0; i < 4; i++)
		bpf_l4_csum_replace(skb, csum_off, t.saddr.words[i], r.address.words[i],
				    BPF_F_PSEUDO_HDR | mangled | 4);
	bpf_skb_store_bytes(skb, p->l3_off + IP6_SADDR_OFF, &r.address, 16, 0);
	bpf_l4_csum_replace(skb, csum_off, t.sport, r.port, mangled | 2);
	bpf_skb_store_bytes(skb, p->l4_off, &r.port, 2, 0);
	xdp_count(XDP_R_TC_REVERSED);
	return TC_ACT_OK;
}

/* The XDP program: what parse_pkt cannot place passes untouched, counted by reason. */
static __always_inline int __xdp_lb(struct xdp_md *ctx)
{
	void *data = xdp_data(ctx), *data_end = xdp_data_end(ctx);
	struct pkt p = {};
	int reason = parse_pkt(data, data_end, &p);

	if (reason) {
		xdp_count(reason);
		return XDP_PASS;
	}
	if (p.family == 4 && p.proto == IPPROTO_ICMP)
		return xdp_icmp4(ctx, &p);
	if (p.family == 6 && p.proto == NEXTHDR_ICMP)
		return xdp_icmp6(ctx, &p);
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP) {
		xdp_count(XDP_R_OTHER_PROTO);
		return XDP_PASS;
	}
	if (p.family == 4)
		return __xdp_lb4(ctx, &p);
	return __xdp_lb6(ctx, &p);
}

/* The tc egress program: replies of local backends; everything else leaves untouched. */
static __always_inline int __tc_lb_egress(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct pkt p = {};

	/* Direct access reaches only the linear part: make the headers linear first. */
	bpf_skb_pull_data(skb, skb->len < 128 ? skb->len : 128);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (parse_pkt(data, data_end, &p))
		return TC_ACT_OK;
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP)
		return TC_ACT_OK;
	if (p.family == 4)
		return __tc_rev4(skb, &p);
	return __tc_rev6(skb, &p);
}

#endif /* SOCKLB_NODEPORT_H */
