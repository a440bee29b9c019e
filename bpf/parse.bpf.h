/* SPDX-License-Identifier: MIT */
/*
 * parse.bpf.h - packet parsing. Used ONLY by the BPF programs.
 * One cursor; one helper per header, each bounds-checked against data_end,
 * returning the next protocol or -1 (the xdp-tools parsing_helpers pattern).
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

#define LT_VLAN_MAX 2

struct lt_cursor {
	void *pos;
	void *end;
};

struct lt_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Returns the ethertype (network order) after up to two VLAN tags, or -1. */
static __always_inline int lt_parse_eth(struct lt_cursor *c)
{
	struct ethhdr *eth = c->pos;
	struct lt_vlan_hdr *vh;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > c->end)
		return -1;
	c->pos = eth + 1;
	proto = eth->h_proto;
#pragma unroll
	for (i = 0; i < LT_VLAN_MAX; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return -1;
		c->pos = vh + 1;
		proto = vh->proto;
	}
	return proto;
}

/*
 * IPv4: returns the L4 protocol, -1 if truncated/bad, or -2 for a non-first
 * fragment (no L4 header to read). saddr gets the v4-mapped source.
 */
static __always_inline int lt_parse_ipv4(struct lt_cursor *c, __u8 saddr[16])
{
	struct iphdr *ip = c->pos;
	__u32 hlen;

	if ((void *)(ip + 1) > c->end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	hlen = ip->ihl * 4;
	if (c->pos + hlen > c->end)
		return -1;
	__builtin_memset(saddr, 0, 10);
	saddr[10] = 0xff;
	saddr[11] = 0xff;
	__builtin_memcpy(saddr + 12, &ip->saddr, 4);
	c->pos += hlen;
	if (ip->frag_off & bpf_htons(0x1fff))
		return -2;
	return ip->protocol;
}

#define LT_IPV6_EXT_MAX 4 /* extension headers walked before giving up */

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

/*
 * IPv6: returns the L4 protocol after up to LT_IPV6_EXT_MAX extension headers
 * (so a hop-by-hop or destination-options header cannot carry a packet past
 * the meter), -1 if truncated/bad or the chain is longer, -2 for a non-first
 * fragment.
 */
static __always_inline int lt_parse_ipv6(struct lt_cursor *c, __u8 saddr[16])
{
	struct ipv6hdr *ip6 = c->pos;
	struct lt_ipv6_frag *fh;
	struct lt_ipv6_opt *oh;
	int nh, i;

	if ((void *)(ip6 + 1) > c->end)
		return -1;
	if (ip6->version != 6)
		return -1;
	__builtin_memcpy(saddr, &ip6->saddr, 16);
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
				return -1;
			nh = oh->nexthdr;
			c->pos += (oh->len + 1) * 8;
			break;
		case IPPROTO_AH:
			oh = c->pos;
			if ((void *)(oh + 1) > c->end)
				return -1;
			nh = oh->nexthdr;
			c->pos += (oh->len + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			fh = c->pos;
			if ((void *)(fh + 1) > c->end)
				return -1;
			if (fh->frag_off & bpf_htons(0xfff8))
				return -2;
			nh = fh->nexthdr;
			c->pos = fh + 1;
			break;
		default:
			return nh;
		}
	}
	/* still an extension header after the limit: refuse to guess */
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
			       nh == IPPROTO_AH || nh == IPPROTO_FRAGMENT ?
		       -1 :
		       nh;
}

/* TCP: destination port (host order) and whether it opens a connection. */
static __always_inline int lt_parse_tcp(struct lt_cursor *c, __u16 *dport, __u8 *syn)
{
	struct tcphdr *th = c->pos;

	if ((void *)(th + 1) > c->end)
		return -1;
	if (th->doff < 5)
		return -1;
	*dport = bpf_ntohs(th->dest);
	*syn = th->syn && !th->ack;
	return 0;
}

static __always_inline int lt_parse_udp(struct lt_cursor *c, __u16 *dport)
{
	struct udphdr *uh = c->pos;

	if ((void *)(uh + 1) > c->end)
		return -1;
	*dport = bpf_ntohs(uh->dest);
	return 0;
}

#endif /* LT_PARSE_BPF_H */
