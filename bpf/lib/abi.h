/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The map layouts shared by the BPF programs and the agent (src/datapath/abi.ts mirrors them). */
#ifndef SOCKLB_ABI_H
#define SOCKLB_ABI_H

/*
 * Every struct has explicit padding so its layout is the same in BPF, C and TypeScript.
 * "net order" fields are big-endian as on the wire; everything else is host order.
 * A map name gets a new _vN suffix whenever its key or value layout changes, so an upgraded
 * agent never reads a pinned map of the old layout as if it were new.
 */

#define SOCKLB_ABI_VERSION 2

/* An IPv6 address, net order; the words view lets BPF copy it with 4-byte loads and stores. */
union v6addr {
	__u8 addr[16];
	__u32 words[4];
};

/* Service flags (struct lb_service.flags). */
#define LB_SVC_F_NONE 0
/* sessionAffinity: ClientIP; affinity_timeout holds its timeout. */
#define LB_SVC_F_AFFINITY 1
/*
 * External frontends only. LOCAL: externalTrafficPolicy: Local; the entry lists only this node's
 * backends, the client's source is always kept, and no backend means drop (its health check node
 * port already tells the load balancer), not reject. SOURCE_RANGES: loadBalancerSourceRanges;
 * only sources in lb4_src_ranges_v1/lb6_src_ranges_v1 under this service_id get in.
 */
#define LB_SVC_F_LOCAL	       2
#define LB_SVC_F_SOURCE_RANGES 4

/*
 * Who a frontend entry serves (struct lb4_key.scope). A NodePort, LoadBalancer or external IP has
 * an entry of each scope: with externalTrafficPolicy: Local the external one lists only the
 * backends on this node, while clients on the node still reach every backend.
 */
enum lb_scope {
	LB_SCOPE_INTERNAL = 0, /* dialled by a process on this node: the socket hooks */
	LB_SCOPE_EXTERNAL = 1, /* arrived from outside the node: the XDP program */
};

/* How a service picks a backend (struct lb_service.scheduler). Append only. */
enum lb_scheduler {
	LB_SCHED_RANDOM = 0, /* uniform over the slots, as kube-proxy's iptables mode */
	LB_SCHED_RR = 1,     /* round robin over the slots (the service's connect count) */
	LB_SCHED_WRR = 2,    /* round robin over the service's table: a weighted sequence */
	LB_SCHED_SH = 3,     /* hash of the client over the slots */
	LB_SCHED_MAGLEV = 4, /* hash of the client (XDP: the flow) into its Maglev table */
	LB_SCHED_LC = 5,     /* fewer open connections of two random slots (socket path) */
	LB_SCHED_WLC = 6,    /* fewer open connections per weight of two random slots */
	LB_SCHED_SED = 7,    /* lower (connections + 1) / weight of two random slots */
	LB_SCHED_NQ = 8,     /* an idle one of two random slots, else as sed */
};

/*
 * One element of a service's table (lb_tables_v1 holds one array map of these per service that
 * schedules through a table). Element 0 holds the table's length in positions; element 1 + p / 4
 * holds the slots of positions p to p + 3. The agent fills a new array and swaps it in whole, so a
 * pick never sees a table half written.
 */
union lb_table_elem {
	__u32 length;	/* element 0: positions in the table */
	__u16 slots[4]; /* other elements: slot numbers (lb_slot_key.slot) of four positions; for
			 * wlc, sed and nq position p is slot p + 1 and holds its weight + 1 */
};

/*
 * What a counted socket remembers (socket-local storage, lb_sock_conn_v1): the backend whose
 * open-connection count (lb_be_conns_v1, by backend id) it holds one of until it is released.
 */
struct lb_sock_conn {
	__u32 backend_id; /* 0: counted nowhere */
};

/* Frontend of an IPv4 service: a ClusterIP (or other VIP) with port, protocol and scope. */
struct lb4_key {
	__be32 address; /* VIP, net order */
	__be16 dport;	/* service port, net order */
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;	/* enum lb_scope */
};

/* Frontend of an IPv6 service. */
struct lb6_key {
	union v6addr address; /* VIP, net order */
	__be16 dport;	      /* service port, net order */
	__u8 proto;	      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;	      /* enum lb_scope */
};

/* What a frontend maps to: its id (slot and counter index) and how many backend slots it has. */
struct lb_service {
	__u32 service_id;	/* index into lb_slots keys and lb_service_stats, 1..max-1 */
	__u16 backend_count;	/* slots 1..backend_count are valid; 0 means refuse */
	__u16 flags;		/* LB_SVC_F_* */
	__u32 affinity_timeout; /* seconds a client sticks to its backend, with LB_SVC_F_AFFINITY */
	__u8 scheduler;		/* enum lb_scheduler */
	__u8 pad[3];
};

/* One backend slot of a service: slot n of service_id holds a backend id. */
struct lb_slot_key {
	__u32 service_id; /* lb_service.service_id */
	__u32 slot;	  /* 1..backend_count */
};

struct lb_slot {
	__u32 backend_id; /* key into lb4_backends or lb6_backends */
};

/* Backend flags (struct lb4_backend.flags). */
#define LB_BE_F_LOCAL 1 /* the endpoint runs on this node */

/*
 * An IPv4 backend: a pod address and the resolved target port, and the address of the node it
 * runs on, where direct server return sends the packet (0 when unknown).
 */
struct lb4_backend {
	__be32 address;	     /* net order */
	__be16 port;	     /* target port, net order */
	__u8 proto;	     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;	     /* LB_BE_F_* */
	__be32 node_address; /* the backend's node, net order; 0 when unknown */
};

/* An IPv6 backend. */
struct lb6_backend {
	union v6addr address;	   /* net order */
	__be16 port;		   /* target port, net order */
	__u8 proto;		   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;		   /* LB_BE_F_* */
	union v6addr node_address; /* the backend's node, net order; :: when unknown */
};

/*
 * Reverse translation for one socket: a socket (by cookie) that was sent to a backend shows the
 * VIP it asked for in getpeername() and as the source of the replies recvmsg() returns. The cookie
 * keeps two services that share a backend apart.
 */
struct lb4_reverse_key {
	__u64 cookie;	/* bpf_get_socket_cookie() */
	__be32 address; /* backend address, net order */
	__be16 port;	/* backend port, net order */
	__u16 pad;
};

struct lb4_reverse {
	__be32 address; /* VIP, net order */
	__be16 port;	/* service port, net order */
	__u16 pad;
};

struct lb6_reverse_key {
	__u64 cookie;	      /* bpf_get_socket_cookie() */
	union v6addr address; /* backend address, net order */
	__be16 port;	      /* backend port, net order */
	__u8 pad[6];
};

struct lb6_reverse {
	union v6addr address; /* VIP, net order */
	__be16 port;	      /* service port, net order */
	__u16 pad;
};

/*
 * Session affinity: which backend a client last reached through a service. A client on this node
 * is known by its network namespace (at connect() there is no source address yet).
 */
struct lb_affinity_key {
	__u64 client;	  /* bpf_get_netns_cookie() of the client's socket */
	__u32 service_id; /* lb_service.service_id */
	__u32 pad;
};

struct lb_affinity {
	__u64 last_used_ns; /* bpf_ktime_get_ns() of the client's latest connect */
	__u32 backend_id;   /* the backend it reached */
	__u32 slot;	    /* the slot that held it: the entry counts only while it still does */
};

/*
 * Counters of one frontend (lb_svc_stats, indexed by service_id). Shared by all CPUs and added to
 * atomically: per-CPU copies would make their memory grow with the host's CPU count.
 */
struct lb_service_stats {
	__u64 connects; /* connect() or sendmsg() balanced to a backend */
	__u64 refused;	/* refused because the service had no backend */
};

/* Counters of one backend (lb_be_stats, indexed by backend_id), shared like lb_service_stats. */
struct lb_backend_stats {
	__u64 connects; /* connect() or sendmsg() sent to this backend */
};

/*
 * Why a hook did or did not balance (sock_stats, indexed by reason). Append only: the agent reads
 * the counters by these numbers.
 */
enum sock_reason {
	SOCK_BALANCED = 0,	  /* destination rewritten to a backend */
	SOCK_NOT_SERVICE = 1,	  /* destination is not a service: passed untouched */
	SOCK_NO_BACKEND = 2,	  /* service with no backend: refused */
	SOCK_SLOT_MISSING = 3,	  /* no slot found even after picking again: passed */
	SOCK_BACKEND_MISSING = 4, /* no backend found even after picking again: passed */
	SOCK_REVERSE_FULL =
		5,	   /* the reverse map refused the entry: replies keep the backend address */
	SOCK_REVERSED = 6, /* recvmsg/getpeername address turned back into the VIP */
	SOCK_AFFINITY_HIT = 7, /* session affinity sent the client to its previous backend */
	SOCK_PICK_RETRIED = 8, /* a lookup missed mid-update; picked again */
	SOCK_REASON_MAX = 9,
};

/* Load-time configuration, set by the agent between open and load (.rodata). */
struct socklb_config {
	__u32 abi_version;	/* SOCKLB_ABI_VERSION the agent was built for */
	__u32 refuse_errno;	/* errno a refused connect()/sendmsg() gets (ECONNREFUSED) */
	__u32 filter_word_mask; /* lb_frontend_filter_v1's max_entries - 1 (a power of two less one)
				 */
};

/* Key of lb4_destroy_targets / lb6_destroy_targets: a removed backend whose UDP sockets must die.
 */
struct lb4_destroy_key {
	__be32 address; /* backend address, net order */
	__be16 port;	/* backend port, net order */
	__u16 pad;
};

struct lb6_destroy_key {
	union v6addr address; /* backend address, net order */
	__be16 port;	      /* backend port, net order */
	__u16 pad;
};

/*
 * The XDP side (bpf/xdp.bpf.c): traffic that reaches the node's devices from outside.
 */

/* The node's own settings, written by the agent (lb_node_config_v1, a one-entry array, key 0). */
struct lb_node_config {
	__be32 snat_address4;	    /* this node's IPv4 address for SNAT, net order; 0: no SNAT */
	__u16 nat_port_min;	    /* SNAT source ports, host order, inclusive; keep them out of */
	__u16 nat_port_max;	    /* ip_local_port_range and the NodePort range */
	union v6addr snat_address6; /* this node's IPv6 address for SNAT; :: for none */
	__u32 flags;		    /* LB_CFG_F_* */
	__be16 dsr_port;	    /* UDP port of DSR encapsulation, net order; 0: no DSR */
	__u16 pad;
	/*
	 * How long a flow may go unseen before its entries (and SNAT port) may be taken over, in
	 * ms; 0 for the default (CT_*_LIFETIME_MS in lib/conntrack.h).
	 */
	__u32 tcp_syn_lifetime_ms;	   /* TCP before the client's first segment after its SYN */
	__u32 tcp_established_lifetime_ms; /* TCP after it */
	__u32 tcp_closed_lifetime_ms; /* TCP after both FINs or a RST: the TIME_WAIT-like grace */
	__u32 udp_lifetime_ms;	      /* UDP */
};

/* struct lb_node_config.flags */
/* After translation, hand every packet to the stack (XDP_PASS) instead of redirecting it. */
#define LB_CFG_F_STACK_FORWARD 1
/*
 * --nodeport-mode dsr: a backend on another node (with a node_address) gets the client's packet
 * encapsulated to its node (struct lb4_dsr_hdr, lb6_dsr_hdr) instead of SNAT, and answers the
 * client directly.
 * Every node decapsulates what arrives on dsr_port whatever its own mode.
 */
#define LB_CFG_F_DSR 2

/*
 * DSR encapsulation (IPv4): outer IPv4 (node -> backend's node, DF) + UDP (a per-flow source port
 * for ECMP and RSS, dst lb_node_config.dsr_port, checksum 0) + this header + the client's packet
 * with its destination already the backend. The backend's node strips the outer headers and
 * remembers the frontend so that tc egress gives the backend's replies the address the client
 * dialled. Not IPIP: this kernel has no ipip devices anyway, and IPIP has no room for the
 * frontend's address and port, which the backend's node needs for the replies.
 */
struct lb4_dsr_hdr {
	__u8 version;		 /* LB_DSR_VERSION */
	__u8 proto;		 /* IPPROTO_IPIP: an IPv4 packet follows */
	__be16 frontend_port;	 /* the port the client dialled, net order */
	__be32 frontend_address; /* the address the client dialled, net order */
};

/* The same for IPv6: outer IPv6 + UDP (checksum 0, read only by the receiving XDP) + this header.
 */
struct lb6_dsr_hdr {
	__u8 version;		       /* LB_DSR_VERSION */
	__u8 proto;		       /* IPPROTO_IPV6: an IPv6 packet follows */
	__be16 frontend_port;	       /* the port the client dialled, net order */
	union v6addr frontend_address; /* the address the client dialled, net order */
};

#define LB_DSR_VERSION 1

/*
 * A flow as one packet shows it: source and destination as on the wire. Key of the connection
 * tables (the client's packet to the frontend) and of the reverse NAT tables (a reply).
 */
struct lb4_tuple {
	__be32 saddr; /* net order */
	__be32 daddr; /* net order */
	__be16 sport; /* net order */
	__be16 dport; /* net order */
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3];
};

struct lb6_tuple {
	union v6addr saddr; /* net order */
	union v6addr daddr; /* net order */
	__be16 sport;	    /* net order */
	__be16 dport;	    /* net order */
	__u8 proto;	    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3];
};

/* struct lb4_ct.flags, struct lb4_rnat.flags */
#define LB_CT_F_SNAT  1 /* source rewritten to the node: XDP turns the replies back */
#define LB_CT_F_LOCAL 2 /* backend on this node, client source kept: tc egress turns them back */
#define LB_CT_F_DSR   4 /* encapsulated to the backend's node (nat_address), replies go direct */
/*
 * lb4_ct only: the flow holds one of its backend's lb_be_flows_v1 count (least-connection
 * services) until either side's first FIN or RST, or until its entry goes
 */
#define LB_CT_F_COUNTED 8

/*
 * struct lb4_ct.state, struct lb4_rnat.state: what one direction of a TCP flow has sent, each
 * written only by its own direction (the connection entry by the client's packets, the reverse
 * entry by the backend's), so that no CPU overwrites another's bit. A flow is closed once either
 * side sent a RST or both sent a FIN.
 */
#define LB_CT_S_ESTABLISHED 1 /* a segment without SYN: the handshake is done */
#define LB_CT_S_FIN	    2 /* a FIN */
#define LB_CT_S_RST	    4 /* a RST */

/*
 * A balanced flow (lb4_ct_v1, LRU, keyed by the client's lb4_tuple to the frontend): it keeps its
 * backend while that backend exists, whatever else changes in the service.
 */
struct lb4_ct {
	__u64 last_seen_ns;	/* bpf_ktime_get_ns() at the client's latest packet */
	__u32 backend_id;	/* key into lb4_backends_v2 */
	__u32 service_id;	/* lb_service.service_id at the flow's first packet */
	__be32 backend_address; /* the backend at the first packet: an id reused for another */
	__be16 backend_port;	/* backend no longer matches, and the flow ends */
	__be16 nat_port;	/* SNAT source port (DSR: the outer UDP source port), net order */
	__be32 nat_address;	/* SNAT source address (DSR: the backend's node), net order */
	__u8 flags;		/* LB_CT_F_* */
	__u8 state;		/* LB_CT_S_*: what the client sent (TCP) */
	__u8 pad[2];
};

struct lb6_ct {
	__u64 last_seen_ns;
	__u32 backend_id;
	__u32 service_id;
	union v6addr backend_address;
	__be16 backend_port;
	__be16 nat_port;
	union v6addr nat_address;
	__u8 flags;
	__u8 state;
	__u8 pad[2];
};

/*
 * How to turn a reply back (lb4_rnat_v1, LRU, keyed by the reply's lb4_tuple: backend to node for
 * SNAT, backend to client for a local backend): its source becomes the frontend the client
 * dialled, its destination the client.
 */
struct lb4_rnat {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() at the backend's latest reply (or the flow's
			       start) */
	__be32 address;	    /* frontend address, net order */
	__be32 client;	    /* client address, net order */
	__be16 port;	    /* frontend port, net order */
	__be16 client_port; /* client port, net order */
	__u8 flags;	    /* LB_CT_F_SNAT or LB_CT_F_LOCAL: which hook owns the entry */
	__u8 state;	    /* LB_CT_S_*: what the backend sent (TCP) */
	__u8 pad[2];
};

struct lb6_rnat {
	__u64 last_seen_ns;
	union v6addr address;
	union v6addr client;
	__be16 port;
	__be16 client_port;
	__u8 flags;
	__u8 state;
	__u8 pad[2];
};

/*
 * loadBalancerSourceRanges (lb4_src_ranges_v1, LPM trie): a source prefix allowed into a service.
 * prefixlen counts service_id too: 32 + the source prefix length.
 */
struct lb4_src_range_key {
	__u32 prefixlen;  /* 32 + prefix length */
	__u32 service_id; /* host order: always matched whole, before any bit of the address */
	__be32 address;	  /* source prefix, net order */
};

struct lb6_src_range_key {
	__u32 prefixlen;
	__u32 service_id;
	union v6addr address;
};

/*
 * Why the XDP program (and its tc egress partner) did what it did (xdp_stats_v1, per-CPU, indexed
 * by reason). Append only.
 */
enum xdp_reason {
	XDP_R_BALANCED = 0,    /* first packet of a flow sent to a backend */
	XDP_R_ESTABLISHED = 1, /* later packet of a flow sent to its backend */
	XDP_R_REPLY = 2,       /* reply of a SNAT flow turned back to the client */
	XDP_R_NOT_SERVICE = 3, /* to no external frontend: passed */
	XDP_R_FRAGMENT = 4,    /* IP fragment: passed */
	XDP_R_OTHER_PROTO = 5, /* not IPv4/IPv6 TCP/UDP: passed */
	XDP_R_MALFORMED = 6,   /* truncated or invalid header: passed */
	XDP_R_REJECTED = 7,    /* no backend: TCP RST or ICMP unreachable sent back */
	XDP_R_NO_LOCAL_BACKEND =
		8,		 /* externalTrafficPolicy: Local without a local backend: dropped */
	XDP_R_SOURCE_DENIED = 9, /* not in loadBalancerSourceRanges: dropped */
	XDP_R_BACKEND_GONE = 10, /* the flow's backend was removed: TCP reset, UDP rebalanced */
	XDP_R_NAT_EXHAUSTED = 11,   /* no free SNAT port: dropped */
	XDP_R_CT_FAILED = 12,	    /* the connection table refused the flow: dropped */
	XDP_R_STACK_FORWARD = 13,   /* translated, then passed: the stack forwards it */
	XDP_R_FIB_DROP = 14,	    /* translated, but the FIB has no way there: dropped */
	XDP_R_ICMP_ERROR = 15,	    /* ICMP error about a SNAT flow turned back to the client */
	XDP_R_NO_SNAT_ADDRESS = 16, /* SNAT needed but no node address is configured: dropped */
	XDP_R_PICK_MISS = 17,	    /* slot or backend missing even after a second pick: passed */
	XDP_R_TC_REVERSED = 18,	    /* tc egress: reply of a local backend turned back */
	XDP_R_DSR_DECAP = 19, /* DSR packet from another node decapsulated for a local backend */
	XDP_R_NAT_RECLAIMED =
		20,		/* SNAT port of a closed flow, past its grace, taken by a new one */
	XDP_R_CT_EXPIRED = 21,	/* SNAT port of a flow idle past its lifetime taken by a new one */
	XDP_R_CT_REOPENED = 22, /* SYN on the tuple of a closed flow: balanced as a new flow */
	XDP_R_MAX = 23,
};

#endif /* SOCKLB_ABI_H */
