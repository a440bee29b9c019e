/* SPDX-License-Identifier: MIT */
/*
 * pktbuild.h - builds test frames: Ethernet, 0-2 VLAN tags, IPv4/IPv6,
 * TCP/UDP/ICMP, with knobs to truncate or corrupt. Used by tests/bpf and bench.
 */
#ifndef LT_PKTBUILD_H
#define LT_PKTBUILD_H

#include <arpa/inet.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

struct pkt_spec {
	const char *src; /* "10.0.0.1" or "2001:db8::1"; default 10.0.0.1 */
	int proto; /* IPPROTO_TCP (default 0 = TCP), IPPROTO_UDP, IPPROTO_ICMP */
	int dport; /* default 8080 */
	int ack; /* TCP: ACK set (not a new connection) */
	int nosyn; /* TCP: no SYN flag */
	int vlans; /* 0..2 */
	int ethertype; /* override (e.g. ETH_P_ARP) */
	int frag; /* IPv4 non-first fragment */
	int bad_ihl; /* IPv4 ihl = 4 */
	int truncate; /* cut the frame to this many bytes */
	int payload; /* payload bytes after L4 */
	int v6_opts; /* IPv6: this many hop-by-hop/dest-opts headers before L4 */
	int v6_frag; /* IPv6: 1 = first fragment header, 2 = non-first fragment */
};

static inline void pkt_put16(unsigned char *p, int v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static inline int pkt_build(const struct pkt_spec *s, unsigned char *buf, int cap)
{
	const char *src = s->src ? s->src : "10.0.0.1";
	int v6 = strchr(src, ':') != NULL, proto = s->proto ? s->proto : IPPROTO_TCP;
	unsigned char *p = buf;
	struct ethhdr *eth = (struct ethhdr *)p;
	int i, l4len, len;
	unsigned char *type; /* where the next ethertype goes (unaligned) */

	memset(buf, 0, (size_t)cap);
	memset(eth->h_dest, 0x02, 6);
	memset(eth->h_source, 0x04, 6);
	type = buf + 12;
	p += sizeof(*eth);
	for (i = 0; i < s->vlans; i++) {
		pkt_put16(type, i == 0 && s->vlans == 2 ? ETH_P_8021AD : ETH_P_8021Q);
		p[0] = 0;
		p[1] = (unsigned char)(10 + i); /* vid */
		type = p + 2;
		p += 4;
	}
	pkt_put16(type, s->ethertype ? s->ethertype : v6 ? ETH_P_IPV6 : ETH_P_IP);
	l4len = proto == IPPROTO_TCP ? (int)sizeof(struct tcphdr) :
		proto == IPPROTO_UDP ? (int)sizeof(struct udphdr) :
				       8;
	if (v6) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)p;

		ip6->version = 6;
		ip6->payload_len = htons((unsigned short)(l4len + s->payload));
		unsigned char *nh = &ip6->nexthdr;

		ip6->hop_limit = 64;
		inet_pton(AF_INET6, src, &ip6->saddr);
		inet_pton(AF_INET6, "2001:db8:ffff::1", &ip6->daddr);
		p += sizeof(*ip6);
		for (i = 0; i < s->v6_opts; i++) {
			*nh = i == 0 ? 0 /* hop-by-hop */ : 60 /* dest opts */;
			nh = p;
			p[1] = 1; /* 16 bytes */
			p += 16;
		}
		if (s->v6_frag) {
			*nh = 44;
			nh = p;
			if (s->v6_frag == 2)
				p[3] = 0x08; /* offset 1 (8 bytes) */
			p += 8;
		}
		*nh = (unsigned char)proto;
		ip6->payload_len = htons(
			(unsigned short)(p - (unsigned char *)(ip6 + 1) + l4len + s->payload));
	} else {
		struct iphdr *ip = (struct iphdr *)p;

		ip->version = 4;
		ip->ihl = s->bad_ihl ? 4 : 5;
		ip->ttl = 64;
		ip->protocol = (unsigned char)proto;
		ip->tot_len = htons((unsigned short)(20 + l4len + s->payload));
		ip->frag_off = s->frag ? htons(185) : 0;
		inet_pton(AF_INET, src, &ip->saddr);
		inet_pton(AF_INET, "10.255.0.1", &ip->daddr);
		p += sizeof(*ip);
	}
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = (struct tcphdr *)p;

		th->source = htons(40000);
		th->dest = htons((unsigned short)(s->dport ? s->dport : 8080));
		th->doff = 5;
		th->syn = !s->nosyn && !s->ack;
		th->ack = !!s->ack;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = (struct udphdr *)p;

		uh->source = htons(40000);
		uh->dest = htons((unsigned short)(s->dport ? s->dport : 8080));
		uh->len = htons((unsigned short)(8 + s->payload));
	} else {
		p[0] = 8; /* ICMP echo request */
	}
	p += l4len + s->payload;
	len = (int)(p - buf);
	if (s->truncate && s->truncate < len)
		len = s->truncate;
	return len;
}

#endif
