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
