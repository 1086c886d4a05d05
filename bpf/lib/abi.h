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

#define SOCKLB_ABI_VERSION 1

/* An IPv6 address, net order; the words view lets BPF copy it with 4-byte loads and stores. */
union v6addr {
	__u8 addr[16];
	__u32 words[4];
};

/* Service flags (struct lb_service.flags). */
#define LB_SVC_F_NONE 0
/* sessionAffinity: ClientIP; affinity_timeout holds its timeout. */
#define LB_SVC_F_AFFINITY 1

/* Frontend of an IPv4 service: a ClusterIP (or other VIP) with port and protocol. */
struct lb4_key {
	__be32 address; /* VIP, net order */
	__be16 dport;	/* service port, net order */
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/* Frontend of an IPv6 service. */
struct lb6_key {
	union v6addr address; /* VIP, net order */
	__be16 dport;	      /* service port, net order */
	__u8 proto;	      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/* What a frontend maps to: its id (slot and counter index) and how many backend slots it has. */
struct lb_service {
	__u32 service_id;	/* index into lb_slots keys and lb_service_stats, 1..max-1 */
	__u16 backend_count;	/* slots 1..backend_count are valid; 0 means refuse */
	__u16 flags;		/* LB_SVC_F_* */
	__u32 affinity_timeout; /* seconds a client sticks to its backend, with LB_SVC_F_AFFINITY */
};

/* One backend slot of a service: slot n of service_id holds a backend id. */
struct lb_slot_key {
	__u32 service_id; /* lb_service.service_id */
	__u32 slot;	  /* 1..backend_count */
};

struct lb_slot {
	__u32 backend_id; /* key into lb4_backends or lb6_backends */
};

/* An IPv4 backend: a pod address and the resolved target port. */
struct lb4_backend {
	__be32 address; /* net order */
	__be16 port;	/* target port, net order */
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;	/* reserved, 0 */
};

/* An IPv6 backend. */
struct lb6_backend {
	union v6addr address; /* net order */
	__be16 port;	      /* target port, net order */
	__u8 proto;	      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;	      /* reserved, 0 */
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

/* Per-CPU counters of one frontend (lb_service_stats, indexed by service_id). */
struct lb_service_stats {
	__u64 connects; /* connect() or sendmsg() balanced to a backend */
	__u64 refused;	/* refused because the service had no backend */
};

/* Per-CPU counters of one backend (lb_backend_stats, indexed by backend_id). */
struct lb_backend_stats {
	__u64 connects; /* connect() or sendmsg() sent to this backend */
};

/*
 * Why a hook did or did not balance (sock_stats, indexed by reason). Append only: the agent reads
 * the counters by these numbers.
 */
enum sock_reason {
	SOCK_BALANCED = 0,    /* destination rewritten to a backend */
	SOCK_NOT_SERVICE = 1, /* destination is not a service: passed untouched */
	SOCK_NO_BACKEND = 2,  /* service with no backend: refused */
	SOCK_SLOT_MISSING =
		3, /* a slot below backend_count was absent (racing an update): passed */
	SOCK_BACKEND_MISSING = 4, /* a slot named a backend id that is absent: passed */
	SOCK_REVERSE_FULL =
		5,	   /* the reverse map refused the entry: replies keep the backend address */
	SOCK_REVERSED = 6, /* recvmsg/getpeername address turned back into the VIP */
	SOCK_AFFINITY_HIT = 7, /* session affinity sent the client to its previous backend */
	SOCK_REASON_MAX = 8,
};

/* Load-time configuration, set by the agent between open and load (.rodata). */
struct socklb_config {
	__u32 abi_version;  /* SOCKLB_ABI_VERSION the agent was built for */
	__u32 refuse_errno; /* errno a refused connect()/sendmsg() gets (ECONNREFUSED) */
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

#endif /* SOCKLB_ABI_H */
