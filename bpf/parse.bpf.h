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

/* IPv6 (no extension headers are walked): returns next header or -1. */
static __always_inline int lt_parse_ipv6(struct lt_cursor *c, __u8 saddr[16])
{
	struct ipv6hdr *ip6 = c->pos;

	if ((void *)(ip6 + 1) > c->end)
		return -1;
	if (ip6->version != 6)
		return -1;
	__builtin_memcpy(saddr, &ip6->saddr, 16);
	c->pos = ip6 + 1;
	return ip6->nexthdr;
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
