/* SPDX-License-Identifier: MIT */
/*
 * parse.bpf.h - packet parsing. Used ONLY by the BPF programs.
 * One cursor; one helper per header, each bounds-checked against data_end,
 * returning the next protocol or a negative LT_P_* (the xdp-tools
 * parsing_helpers pattern).
 *
 * What this parser must not get wrong (issue #7): a frame the Linux stack
 * would still deliver must never look "malformed" or "non-IP" here. So the
 * walks go at least as deep as the stack's for the shapes it delivers on the
 * device the program is attached to (VLAN tags, IPv4 options, IPv6 extension
 * headers), and when a walk stops early the caller treats the frame as
 * addressed to a protected port instead of passing it.
 */
#ifndef LT_PARSE_BPF_H
#define LT_PARSE_BPF_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/*
 * VLAN tags walked. Linux strips 802.1Q/802.1ad tags one after another as
 * long as they have VID 0 or a VLAN device takes them (another_round in
 * __netif_receive_skb_core), so there is no depth at which it stops. Beyond
 * this many the source cannot be read and the frame is dropped
 * (drop_unparseable): no real network stacks eight tags.
 */
#define LT_VLAN_MAX 8
/* IPv6 extension headers walked; a longer chain is metered as port-unknown. */
#define LT_IPV6_EXT_MAX 8

/* Negative results of the helpers. */
#define LT_P_TRUNC (-1) /* header cut short by the readable bytes */
#define LT_P_BAD (-2) /* a header the stack drops (bad version, ihl < 5) */
#define LT_P_DEEP (-3) /* more VLAN tags than LT_VLAN_MAX */
#define LT_P_TINY (-4) /* IPv4 first fragment too short for its L4 header */
#define LT_P_OVERLAP (-5) /* IPv4 TCP fragment at offset 1 (8 bytes) */

/* Why the destination port is not known (lt_pkt.noport). */
enum lt_noport {
	LT_PORT_KNOWN = 0,
	LT_NOPORT_FRAGMENT, /* non-first fragment: no L4 header here */
	LT_NOPORT_HEADERS, /* more IPv6 extension headers than walked, or ESP/AH */
	LT_NOPORT_TRUNCATED, /* L4 header cut short */
	LT_NOPORT_NONE, /* not a ported protocol (ICMP, GRE, ...): nothing to protect */
};

struct lt_cursor {
	void *pos;
	void *end;
};

struct lt_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Returns the ethertype (network order) after the VLAN tags, or LT_P_*. */
static __always_inline int lt_parse_eth(struct lt_cursor *c)
{
	struct ethhdr *eth = c->pos;
	struct lt_vlan_hdr *vh;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > c->end)
		return LT_P_TRUNC;
	c->pos = eth + 1;
	/* one 16-bit load: h_proto of the packed struct would be two byte loads */
	proto = *(const __be16 *)((const __u8 *)eth + 12);
#pragma unroll
	for (i = 0; i < LT_VLAN_MAX; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			return proto;
		vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return LT_P_TRUNC;
		c->pos = vh + 1;
		proto = vh->proto;
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return LT_P_DEEP;
	return proto;
}

/* ::ffff:a.b.c.d as the two 64-bit words of its 16 network-order bytes. */
static __always_inline __u64 lt_v4_mapped_w1(__be32 saddr)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (__u64)saddr << 32 | 0xffff0000ULL;
#else
	return 0xffffULL << 32 | saddr;
#endif
}

/*
 * IPv4: returns the L4 protocol, or LT_P_*. Sets the source (w[0], w[1]:
 * the v4-mapped address) and, for a non-first fragment, *noport.
 */
static __always_inline int lt_parse_ipv4(struct lt_cursor *c, __u64 w[2], __u8 *noport)
{
	struct iphdr *ip = c->pos;
	__u32 hlen, l4len;
	__u16 frag;

	if ((void *)(ip + 1) > c->end)
		return LT_P_TRUNC;
	/* ip_rcv_core() drops both (inhdr_error): the stack never delivers them. */
	if (ip->version != 4 || ip->ihl < 5)
		return LT_P_BAD;
	hlen = ip->ihl * 4;
	if (c->pos + hlen > c->end)
		return LT_P_TRUNC;
	w[0] = 0;
	w[1] = lt_v4_mapped_w1(ip->saddr);
	c->pos += hlen;
	frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x1fff) {
		/* RFC 3128: offset 1 can only serve to rewrite TCP flags. */
		if ((frag & 0x1fff) == 1 && ip->protocol == IPPROTO_TCP)
			return LT_P_OVERLAP;
		*noport = LT_NOPORT_FRAGMENT;
		return ip->protocol;
	}
	if (frag & 0x2000) {
		/*
		 * A first fragment must hold the whole L4 header (RFC 1858): a
		 * shorter one hides the port and flags in a later fragment.
		 * tot_len, not the frame: padding is not part of the datagram.
		 */
		l4len = bpf_ntohs(ip->tot_len) - hlen;
		if ((ip->protocol == IPPROTO_TCP && (__s32)l4len < (__s32)sizeof(struct tcphdr)) ||
		    (ip->protocol == IPPROTO_UDP && (__s32)l4len < (__s32)sizeof(struct udphdr)))
			return LT_P_TINY;
	}
	return ip->protocol;
}

struct lt_ipv6_opt {
	__u8 nexthdr;
	__u8 len; /* hop-by-hop, routing, dest opts: 8-byte units after the first 8 */
};

struct lt_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3 | flags */
	__be32 id;
};

static __always_inline int lt_v6_ext(int nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_AH || nh == IPPROTO_FRAGMENT;
}

/*
 * IPv6: returns the L4 protocol after up to LT_IPV6_EXT_MAX extension
 * headers, or LT_P_*. Sets the source and *noport when the port cannot be
 * known (non-first fragment, longer chain, or a truncated extension header:
 * the caller tells apart a frame cut short from bytes not yet pulled).
 */
static __always_inline int lt_parse_ipv6(struct lt_cursor *c, __u64 w[2], __u8 *noport)
{
	struct ipv6hdr *ip6 = c->pos;
	struct lt_ipv6_frag *fh;
	struct lt_ipv6_opt *oh;
	int nh, i;

	if ((void *)(ip6 + 1) > c->end)
		return LT_P_TRUNC;
	/* ipv6_rcv() drops it. */
	if (ip6->version != 6)
		return LT_P_BAD;
	__builtin_memcpy(w, &ip6->saddr, 16);
	c->pos = ip6 + 1;
	nh = ip6->nexthdr;
#pragma unroll
	for (i = 0; i < LT_IPV6_EXT_MAX; i++) {
		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			oh = c->pos;
			if ((void *)(oh + 1) > c->end)
				goto trunc;
			nh = oh->nexthdr;
			c->pos += (oh->len + 1) * 8;
			break;
		case IPPROTO_AH:
			oh = c->pos;
			if ((void *)(oh + 1) > c->end)
				goto trunc;
			nh = oh->nexthdr;
			c->pos += (oh->len + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			fh = c->pos;
			if ((void *)(fh + 1) > c->end)
				goto trunc;
			nh = fh->nexthdr;
			if (fh->frag_off & bpf_htons(0xfff8)) {
				*noport = LT_NOPORT_FRAGMENT;
				return nh;
			}
			c->pos = fh + 1; /* first or atomic fragment: walk on */
			break;
		default:
			return nh;
		}
	}
	if (lt_v6_ext(nh))
		*noport = LT_NOPORT_HEADERS; /* refuse to guess: meter it */
	return nh;
trunc:
	*noport = LT_NOPORT_TRUNCATED;
	return nh;
}

/*
 * L4: destination port (host order) and, for TCP, whether it opens a
 * connection. TCP, UDP, UDP-Lite, SCTP and DCCP all carry the destination
 * port in bytes 2-3. Returns 0, LT_P_TRUNC, or 1 for a protocol without
 * ports (ICMP, GRE, ...). ESP/AH over IPv4 hide the port: *noport.
 */
static __always_inline int lt_parse_l4(struct lt_cursor *c, int proto, __u16 *dport, __u8 *syn,
				       __u8 *noport)
{
	struct tcphdr *th = c->pos;
	struct udphdr *uh = c->pos;

	if (proto == IPPROTO_TCP) {
		if ((void *)(th + 1) > c->end)
			return LT_P_TRUNC;
		*dport = bpf_ntohs(th->dest);
		/* doff < 5: tcp_v4_rcv/tcp_v6_rcv drop it (bad_packet) */
		*syn = th->syn && !th->ack && th->doff >= 5;
		return 0;
	}
	if (proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE || proto == IPPROTO_SCTP ||
	    proto == IPPROTO_DCCP) {
		if ((void *)(uh + 1) > c->end)
			return LT_P_TRUNC;
		*dport = bpf_ntohs(uh->dest);
		return 0;
	}
	if (proto == IPPROTO_ESP || proto == IPPROTO_AH) {
		/* with an SA, xfrm decrypts it and delivers the inner L4 */
		*noport = LT_NOPORT_HEADERS;
		return 0;
	}
	return 1;
}

#endif /* LT_PARSE_BPF_H */
