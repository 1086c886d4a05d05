/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Internet checksums (RFC 1071) and their incremental update (RFC 1624): a rewrite gathers a
 * one's-complement "diff" of every word it changes and applies it to each checksum covering them.
 */
#ifndef SOCKLB_CSUM_H
#define SOCKLB_CSUM_H

#include "common.h"

/* One's-complement addition: the carry out of bit 31 comes back in at bit 0. */
static __always_inline __u32 csum_add(__u32 csum, __u32 addend)
{
	csum += addend;
	return csum + (csum < addend);
}

/* Folds a 32-bit sum to 16 bits and complements it: the value a checksum field holds. */
static __always_inline __sum16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__sum16)~csum;
}

/* Adds to diff what replacing the 32-bit word `from` with `to` does to a sum. */
static __always_inline __u32 csum_diff4(__u32 diff, __be32 from, __be32 to)
{
	return csum_add(csum_add(diff, ~from), to);
}

static __always_inline __u32 csum_diff2(__u32 diff, __be16 from, __be16 to)
{
	return csum_add(csum_add(diff, (__u16)~from), to);
}

static __always_inline __u32 csum_diff16(__u32 diff, const union v6addr *from,
					 const union v6addr *to)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		diff = csum_diff4(diff, from->words[i], to->words[i]);
	return diff;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with diff holding the ~m + m' terms. */
static __always_inline __sum16 csum_apply(__sum16 check, __u32 diff)
{
	return csum_fold(csum_add(diff, (__u16)~check));
}

/*
 * The same for a UDP checksum over IPv4, where 0 means "none" and stays so, and a computed 0 is
 * sent as 0xffff (RFC 768).
 */
static __always_inline __sum16 csum_apply_udp(__sum16 check, __u32 diff)
{
	if (!check)
		return 0;
	check = csum_apply(check, diff);
	return check ? check : (__sum16)0xffff;
}

/* Sum of the 16-bit words of the IPv4 or IPv6 pseudo-header's length and protocol fields. */
static __always_inline __u32 csum_pseudo_len_proto(__u32 len, __u8 proto)
{
	return csum_add(bpf_htonl(len), bpf_htonl(proto));
}

/*
 * Adds `words` 32-bit words of packet data from off (at most 48: the verifier wants a bound) to
 * *sum; -1 if the packet ends first.
 */
static __always_inline int csum_packet(void *data, void *data_end, __u32 off, __u32 words,
				       __u32 *sum)
{
	__u32 i;

	/*
	 * Hides what the caller knows of words: clang, seeing it below 48, dropped the loop's own
	 * bound, and the verifier, which had lost the caller's, walked the loop thousands of times.
	 */
	asm volatile("" : "+r"(words));
	for (i = 0; i < 48; i++) {
		__u32 *w;

		if (i >= words)
			break;
		w = data + (off & 0x1ff) + i * 4;
		if ((void *)(w + 1) > data_end)
			return -1;
		*sum = csum_add(*sum, *w);
	}
	return 0;
}

#endif /* SOCKLB_CSUM_H */
