/* SPDX-License-Identifier: MIT */
/*
 * frames.h - builds whole, valid frames of any header shape (VLAN stacks,
 * IPv4 options, IPv6 extension chains, fragments) with correct IPv4 header
 * and TCP/UDP checksums, so that the Linux stack accepts them: the frames the
 * data plane must not let through (issue #7). Used by tests/bpf/test_frames.c
 * (BPF_PROG_RUN) and tests/netns/lt_rawsend.c (sent over a veth).
 */
#ifndef LT_FRAMES_H
#define LT_FRAMES_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>

#define FR_MAX_VLAN 16
#define FR_MAX_EXT 16
#define FR_CAP 9216

struct frame_spec {
	int v6; /* 0: IPv4 */
	const char *src, *dst; /* addresses of the family */
	unsigned char smac[6], dmac[6];
	int nvlan; /* tags before the ethertype */
	int vlan_vid; /* VID of every tag; 0 is a priority tag, which Linux strips */
	int vlan_ad; /* outer tag 802.1ad (0x88a8) */
	int v4_opt; /* IPv4 option bytes (NOPs), multiple of 4, <= 40 */
	int n_ext; /* IPv6 extension headers before L4, in order */
	int ext[FR_MAX_EXT]; /* IPPROTO_HOPOPTS, _DSTOPTS, _ROUTING (segments left 0) */
	int ext_len8[FR_MAX_EXT]; /* hdr ext len: 8 * (len + 1) bytes */
	int proto; /* IPPROTO_TCP (default) or IPPROTO_UDP */
	int sport, dport;
	int syn, ack;
	int payload; /* L4 payload bytes (pattern) */
	/*
	 * Fragment: this frame carries bytes [frag_at, frag_at + frag_len) of
	 * the L4 segment (frag_len < 0: to its end); frag_more sets MF. The L4
	 * checksum is the whole segment's. IPv6: a fragment header follows the
	 * extension headers.
	 */
	int frag;
	int frag_at, frag_len, frag_more;
	uint32_t frag_id;
	int pad; /* Ethernet padding after the datagram (not in tot_len) */
};

static inline uint32_t fr_sum(const unsigned char *p, int n, uint32_t s)
{
	int i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	return s;
}

static inline uint16_t fr_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static inline void fr_put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* The L4 segment (header + payload) with its checksum; returns its length. */
static inline int fr_l4(const struct frame_spec *s, const unsigned char *sa,
			const unsigned char *da, unsigned char *seg)
{
	int proto = s->proto ? s->proto : IPPROTO_TCP, hl = proto == IPPROTO_TCP ? 20 : 8, i,
	    alen = s->v6 ? 16 : 4, n = hl + s->payload;
	uint32_t sum;

	memset(seg, 0, (size_t)hl);
	fr_put16(seg, (unsigned)(s->sport ? s->sport : 40000));
	fr_put16(seg + 2, (unsigned)(s->dport ? s->dport : 8080));
	for (i = 0; i < s->payload; i++)
		seg[hl + i] = (unsigned char)('a' + i % 26);
	if (proto == IPPROTO_TCP) {
		seg[4] = 0x12; /* seq */
		seg[12] = 5 << 4; /* doff */
		seg[13] = (unsigned char)((s->syn ? 0x02 : 0) | (s->ack ? 0x10 : 0));
		fr_put16(seg + 14, 64240); /* window */
	} else {
		fr_put16(seg + 4, (unsigned)n);
	}
	/* pseudo-header */
	sum = fr_sum(sa, alen, 0);
	sum = fr_sum(da, alen, sum);
	sum += (uint32_t)proto + (uint32_t)n;
	sum = fr_sum(seg, n, sum);
	fr_put16(seg + (proto == IPPROTO_TCP ? 16 : 6), fr_fold(sum));
	return n;
}

/* Builds the frame into buf (cap bytes); returns its length or -1. */
static inline int frame_build(const struct frame_spec *s, unsigned char *buf, int cap)
{
	static unsigned char seg[FR_CAP];
	unsigned char sa[16], da[16], *p = buf, *nh = NULL, *ip;
	int proto = s->proto ? s->proto : IPPROTO_TCP, i, n, at, len;
	static const unsigned char dmac[6] = { 2, 0, 0, 0, 0, 2 }, smac[6] = { 2, 0, 0, 0, 0, 1 };
	const unsigned char zero[6] = { 0 };

	if (cap > FR_CAP || s->nvlan > FR_MAX_VLAN || s->n_ext > FR_MAX_EXT)
		return -1;
	memset(buf, 0, (size_t)cap);
	if (inet_pton(s->v6 ? AF_INET6 : AF_INET, s->src, sa) != 1 ||
	    inet_pton(s->v6 ? AF_INET6 : AF_INET, s->dst, da) != 1)
		return -1;
	n = fr_l4(s, sa, da, seg);
	at = s->frag ? s->frag_at : 0;
	len = s->frag && s->frag_len >= 0 ? s->frag_len : n - at;
	if (at > n || len < 0 || at + len > n)
		return -1;
	memcpy(p, memcmp(s->dmac, zero, 6) ? s->dmac : dmac, 6);
	memcpy(p + 6, memcmp(s->smac, zero, 6) ? s->smac : smac, 6);
	p += 12;
	for (i = 0; i < s->nvlan; i++) {
		fr_put16(p, i == 0 && s->vlan_ad ? 0x88a8 : 0x8100);
		fr_put16(p + 2, (unsigned)s->vlan_vid & 0xfff);
		p += 4;
	}
	fr_put16(p, s->v6 ? 0x86dd : 0x0800);
	p += 2;
	ip = p;
	if (!s->v6) {
		int hl = 20 + s->v4_opt;

		if (p + hl + len > buf + cap)
			return -1;
		p[0] = (unsigned char)(0x40 | hl / 4);
		fr_put16(p + 2, (unsigned)(hl + len));
		fr_put16(p + 4, s->frag_id & 0xffff);
		fr_put16(p + 6, (unsigned)(at / 8) | (s->frag && s->frag_more ? 0x2000 : 0));
		p[8] = 64;
		p[9] = (unsigned char)proto;
		memcpy(p + 12, sa, 4);
		memcpy(p + 16, da, 4);
		memset(p + 20, 1, (size_t)s->v4_opt); /* NOP options */
		fr_put16(p + 10, fr_fold(fr_sum(p, hl, 0)));
		p += hl;
	} else {
		p[0] = 0x60;
		p[7] = 64;
		memcpy(p + 8, sa, 16);
		memcpy(p + 24, da, 16);
		nh = p + 6;
		p += 40;
		for (i = 0; i < s->n_ext; i++) {
			int el = 8 * (s->ext_len8[i] + 1);

			if (p + el > buf + cap)
				return -1;
			*nh = (unsigned char)s->ext[i];
			nh = p;
			memset(p, 0, (size_t)el);
			p[1] = (unsigned char)s->ext_len8[i];
			if (s->ext[i] == IPPROTO_ROUTING) {
				/* type 0, segments left 0: Linux skips it (3 and 4 it would parse) */
				p[2] = 0;
			} else {
				p[2] = 1; /* PadN over the rest */
				p[3] = (unsigned char)(el - 4);
			}
			p += el;
		}
		if (s->frag) {
			*nh = IPPROTO_FRAGMENT;
			nh = p;
			fr_put16(p + 2, (unsigned)at | (s->frag_more ? 1 : 0));
			p[4] = (unsigned char)(s->frag_id >> 24);
			p[5] = (unsigned char)(s->frag_id >> 16);
			p[6] = (unsigned char)(s->frag_id >> 8);
			p[7] = (unsigned char)s->frag_id;
			p += 8;
		}
		*nh = (unsigned char)proto;
		if (p + len > buf + cap)
			return -1;
		fr_put16(ip + 4, (unsigned)(p - ip - 40 + len));
	}
	memcpy(p, seg + at, (size_t)len);
	p += len;
	if (p + s->pad > buf + cap)
		return -1;
	p += s->pad; /* zeroed above */
	return (int)(p - buf);
}

#endif /* LT_FRAMES_H */
