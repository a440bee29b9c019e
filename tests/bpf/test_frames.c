// SPDX-License-Identifier: MIT
/*
 * test_frames.c - issue #7: no frame shape that the Linux stack still accepts
 * carries a banned or rate-limited source past lt_xdp or lt_tc. BPF_PROG_RUN
 * on the real skeleton. Needs root.
 *
 *  1. A fixture per shape (each run through XDP and TC): tiny first
 *     fragments, offset-8 TCP fragments, non-first fragments, long IPv6
 *     extension chains, VLAN stacks, IPv4 options, truncated L4, ESP.
 *  2. A mutation test: thousands of frames derived from valid SYNs of a
 *     banned and of a limited source (truncated at every byte, tagged,
 *     given options and extension headers, fragmented, header fields
 *     corrupted). None may pass unless stack_may_deliver(), a written model
 *     of what Linux's receive path accepts, says the stack drops it.
 *
 * Non-linear skbs (headers in page frags) cannot be made by BPF_PROG_RUN on
 * this kernel: it builds a linear skb, and a ctx with data_end is refused
 * with EINVAL. tests/netns/test_frames.sh covers them with real traffic
 * (packet-socket frames larger than a page arrive with 14 linear bytes).
 */
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include "lt_test.h"
#include "frames.h"
#include "addr.h"
#include "apply.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "maps.h"
#include "penalty.h"

#define SEC 1000000000ULL
#define T0 (1000 * SEC)

static struct lt_admit *skel;
static struct lt_maps M;

/* 10.66/16 and 2001:db8:66::/48 are banned; 10.77/16, 2001:db8:77::/48 limited. */
#define BANNED4 "10.66.0.9"
#define BANNED6 "2001:db8:66::9"
#define LIMITED4 "10.77.0.9"
#define LIMITED6 "2001:db8:77::9"
#define CLEAN4 "10.0.0.9"
#define CLEAN6 "2001:db8:1::9"
#define DST4 "10.255.0.1"
#define DST6 "2001:db8:ffff::1"

static const char config[] =
	"{"
	"\"protected_ports\": [8080],"
	"\"default_policy\": {"
	"  \"connections\": {\"capacity\": 1000000, \"rate\": \"1000000/s\"},"
	"  \"packets\": {\"capacity\": 1000000, \"rate\": \"1000000/s\"}},"
	"\"policies\": [{\"prefix\": \"10.77.0.0/16\","
	"  \"packets\": {\"capacity\": 1, \"rate\": \"1/h\"}},"
	"  {\"prefix\": \"2001:db8:77::/48\", \"packets\": {\"capacity\": 1, \"rate\": \"1/h\"}}],"
	"\"event_sample_every\": 0"
	"}";

static int apply_json(const char *json)
{
	struct lt_agent_config c;
	char err[256];
	int ret;

	ret = lt_config_parse(json, "fixture", &c, err, sizeof(err));
	if (!ret)
		ret = lt_config_apply(&M, &c, err, sizeof(err));
	if (ret)
		printf("# config: %s\n", err);
	lt_config_free(&c);
	return ret;
}

static void zero_map(int fd)
{
	size_t len;
	void *p = lt_map_mmap(fd, &len);

	if (p) {
		memset(p, 0, len);
		munmap(p, len);
	}
}

static void ban(const char *prefix)
{
	struct lt_lpm_key k;
	char err[128];

	CHECK_EQ(lt_prefix_parse(prefix, &k, err, sizeof(err)), 0);
	CHECK_EQ(lt_penalty_ban(M.fd[LT_M_PENALTY], M.fd[LT_M_CONFIG], &k, ~0ULL, LT_PENALTY_MANUAL,
				NULL),
		 0);
}

static void reset(void)
{
	zero_map(M.fd[LT_M_SRC]);
	zero_map(M.fd[LT_M_OVERFLOW]);
	CHECK_EQ(apply_json(config), 0);
	ban("10.66.0.0/16");
	ban("2001:db8:66::/48");
}

/* One frame through prog: 1 pass, 0 drop, -1 error. */
static int run_raw(int is_tc, const unsigned char *frame, int len)
{
	static unsigned char raw[FR_CAP + 8] __attribute__((aligned(8)));
	int prog = bpf_program__fd(is_tc ? skel->progs.lt_tc : skel->progs.lt_xdp);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = raw + 2, .data_size_in = (__u32)len,
		    .repeat = 1);

	memcpy(raw + 2, frame, (size_t)len); /* +2: the IP header is 4-aligned */
	skel->bss->lt_fake_now_ns = T0;
	if (bpf_prog_test_run_opts(prog, &o))
		return -1;
	if (is_tc)
		return o.retval == TC_ACT_OK ? 1 : o.retval == TC_ACT_SHOT ? 0 : -1;
	return o.retval == XDP_PASS ? 1 : o.retval == XDP_DROP ? 0 : -1;
}

static int run_spec(int is_tc, const struct frame_spec *s)
{
	static unsigned char buf[FR_CAP];
	int len = frame_build(s, buf, sizeof(buf));

	if (len < 0) {
		printf("#   frame_build failed\n");
		return -1;
	}
	return run_raw(is_tc, buf, len);
}

/* ---- 1. one fixture per shape --------------------------------------------- */

struct want {
	int stat;
	int n;
};

struct shape {
	const char *name;
	struct frame_spec f[3]; /* f[1], f[2] used when their src is set */
	int trunc; /* cut the last frame to this many bytes */
	int last_pass;
	struct want want[5];
	int dry_run;
};

#define W(s, k)                \
	{                      \
		LT_STAT_##s, k \
	}
#define SYN4(a) .src = a, .dst = DST4, .syn = 1
#define SYN6(a) .v6 = 1, .src = a, .dst = DST6, .syn = 1
#define HBH_4DST                                                                                 \
	.n_ext = 5, .ext = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, \
			     IPPROTO_DSTOPTS }
#define DST9                                                                    \
	.n_ext = 9, .ext = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, \
			     IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, \
			     IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS }

static const struct shape shapes[] = {
	{ "v4 tiny first fragment (8 bytes of TCP) of a banned source: dropped",
	  { { SYN4(BANNED4), .frag = 1, .frag_len = 8, .frag_more = 1 } },
	  0,
	  0,
	  { W(DROP_FRAG_TINY, 1) } },
	{ "v4 tiny first fragment of a clean source: dropped all the same (RFC 1858)",
	  { { SYN4(CLEAN4), .frag = 1, .frag_len = 16, .frag_more = 1 } },
	  0,
	  0,
	  { W(DROP_FRAG_TINY, 1) } },
	{ "v4 tiny UDP first fragment (4 bytes): dropped",
	  { { .src = CLEAN4,
	      .dst = DST4,
	      .proto = IPPROTO_UDP,
	      .payload = 20,
	      .frag = 1,
	      .frag_len = 4,
	      .frag_more = 1 } },
	  0,
	  0,
	  { W(DROP_FRAG_TINY, 1) } },
	{ "v4 TCP fragment at offset 8 bytes: dropped (RFC 3128)",
	  { { SYN4(CLEAN4), .frag = 1, .frag_at = 8, .frag_len = -1 } },
	  0,
	  0,
	  { W(DROP_FRAG_OVERLAP, 1) } },
	{ "v4 second fragment of a banned source: dropped by the penalty",
	  { { SYN4(BANNED4), .payload = 40, .frag = 1, .frag_at = 24, .frag_len = -1 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_FRAGMENT, 1) } },
	{ "v4 first fragment with the whole TCP header, banned: dropped",
	  { { SYN4(BANNED4), .payload = 40, .frag = 1, .frag_len = 24, .frag_more = 1 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "v4 first fragment with the whole TCP header, clean: admitted",
	  { { SYN4(CLEAN4), .payload = 40, .frag = 1, .frag_len = 24, .frag_more = 1 } },
	  0,
	  1,
	  { W(PASS_ADMIT, 1) } },
	{ "v4 non-first fragment of a clean source: metered",
	  { { SYN4(CLEAN4), .payload = 40, .frag = 1, .frag_at = 24, .frag_len = -1 } },
	  0,
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_FRAGMENT, 1) } },
	{ "v6 SYN behind hop-by-hop + 4 dest-opts headers, banned: dropped",
	  { { SYN6(BANNED6), HBH_4DST } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "v6 SYN behind 9 extension headers, banned: dropped",
	  { { SYN6(BANNED6), DST9 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_HEADERS, 1) } },
	{ "v6 SYN behind 9 extension headers, clean: metered",
	  { { SYN6(CLEAN6), DST9 } },
	  0,
	  1,
	  { W(PASS_ADMIT, 1), W(AUX_NOPORT_HEADERS, 1) } },
	{ "v6 non-first fragment of a banned source: dropped",
	  { { SYN6(BANNED6), .payload = 40, .frag = 1, .frag_at = 24, .frag_len = -1 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_FRAGMENT, 1) } },
	{ "v6 tiny first fragment of a banned source: dropped",
	  { { SYN6(BANNED6), .payload = 40, .frag = 1, .frag_len = 8, .frag_more = 1 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_TRUNCATED, 1) } },
	{ "v4 SYN with three VLAN tags (VID 0), banned: dropped",
	  { { SYN4(BANNED4), .nvlan = 3 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "v6 SYN with eight 802.1ad/Q tags, banned: dropped",
	  { { SYN6(BANNED6), .nvlan = 8, .vlan_ad = 1, .vlan_vid = 7 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "nine VLAN tags: source unreadable, dropped",
	  { { SYN4(CLEAN4), .nvlan = 9 } },
	  0,
	  0,
	  { W(DROP_UNPARSEABLE, 1) } },
	{ "v4 SYN with 40 bytes of options, banned: dropped",
	  { { SYN4(BANNED4), .v4_opt = 40 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1) } },
	{ "v4 SYN with 40 bytes of options, clean: admitted",
	  { { SYN4(CLEAN4), .v4_opt = 40 } },
	  0,
	  1,
	  { W(PASS_ADMIT, 1) } },
	{ "v4 SYN cut inside TCP, banned: dropped",
	  { { SYN4(BANNED4) } },
	  14 + 20 + 12,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_TRUNCATED, 1) } },
	{ "v6 SYN cut inside an extension header, banned: dropped",
	  { { SYN6(BANNED6), HBH_4DST } },
	  14 + 40 + 8 + 4,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_TRUNCATED, 1) } },
	{ "ESP from a banned source (xfrm could deliver it): dropped",
	  { { .src = BANNED4, .dst = DST4, .proto = IPPROTO_ESP, .payload = 40 } },
	  0,
	  0,
	  { W(DROP_PENALTY, 1), W(AUX_NOPORT_HEADERS, 1) } },
	{ "ICMP from a banned source: no port, passes",
	  { { .src = BANNED4, .dst = DST4, .proto = IPPROTO_ICMP, .payload = 40 } },
	  0,
	  1,
	  { W(PASS_UNPROTECTED, 1) } },
	{ "limited source: a fragment after the packet bucket is spent is dropped",
	  { { .src = LIMITED4, .dst = DST4, .ack = 1 },
	    { SYN4(LIMITED4), .payload = 40, .frag = 1, .frag_at = 24, .frag_len = -1 } },
	  0,
	  0,
	  { W(PASS_ADMIT, 1), W(DROP_PKT_RATE, 1), W(AUX_NOPORT_FRAGMENT, 1) } },
	{ "limited v6 source: a long chain after the bucket is spent is dropped",
	  { { .v6 = 1, .src = LIMITED6, .dst = DST6, .ack = 1 }, { SYN6(LIMITED6), DST9 } },
	  0,
	  0,
	  { W(PASS_ADMIT, 1), W(DROP_PKT_RATE, 1), W(AUX_NOPORT_HEADERS, 1) } },
	{ "dry-run: a tiny fragment passes, counted as dryrun_frag_tiny",
	  { { SYN4(CLEAN4), .frag = 1, .frag_len = 8, .frag_more = 1 } },
	  0,
	  1,
	  { W(DRYRUN_FRAG_TINY, 1) },
	  1 },
	{ "dry-run: nine VLAN tags pass, counted as dryrun_unparseable",
	  { { SYN4(CLEAN4), .nvlan = 9 } },
	  0,
	  1,
	  { W(DRYRUN_UNPARSEABLE, 1) },
	  1 },
};

static void set_dry_run(void)
{
	struct lt_agent_config c;
	char err[256];

	CHECK_EQ(lt_config_parse(config, "fixture", &c, err, sizeof(err)), 0);
	c.xdp.flags |= LT_CFG_DRY_RUN;
	CHECK_EQ(lt_config_apply(&M, &c, err, sizeof(err)), 0);
	lt_config_free(&c);
}

static int run_shape(const struct shape *sh, int is_tc)
{
	struct lt_stat_val before[LT_STAT__MAX], after[LT_STAT__MAX];
	static unsigned char buf[FR_CAP];
	__u64 want[LT_STAT__MAX] = { 0 };
	int i, n = 0, last = -1, ok = 1, len;

	reset();
	if (sh->dry_run)
		set_dry_run();
	while (n < 3 && sh->f[n].src)
		n++;
	lt_stats_read(M.fd[LT_M_STATS], before);
	for (i = 0; i < n; i++) {
		len = frame_build(&sh->f[i], buf, sizeof(buf));
		if (i == n - 1 && sh->trunc && sh->trunc < len)
			len = sh->trunc;
		last = len < 0 ? -1 : run_raw(is_tc, buf, len);
	}
	lt_stats_read(M.fd[LT_M_STATS], after);
	if (last != sh->last_pass) {
		printf("#   %s: last frame %s, want %s\n", is_tc ? "tc" : "xdp",
		       last == 1 ? "passed" :
		       last == 0 ? "dropped" :
				   "error",
		       sh->last_pass ? "pass" : "drop");
		ok = 0;
	}
	for (i = 0; i < 5 && sh->want[i].n; i++)
		want[sh->want[i].stat] = (__u64)sh->want[i].n;
	for (i = 0; i < LT_STAT__MAX; i++) {
		__u64 d = after[i].packets - before[i].packets;

		if (i == LT_STAT_AUX_EVENT_SENT || i == LT_STAT_AUX_EVENT_LOST)
			continue;
		if (d != want[i]) {
			printf("#   %s: counter %s moved by %llu, want %llu\n",
			       is_tc ? "tc" : "xdp", lt_stat_name((unsigned)i),
			       (unsigned long long)d, (unsigned long long)want[i]);
			ok = 0;
		}
	}
	return ok;
}

static void shape_fixtures(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		lt_t_begin(shapes[i].name);
		if (!run_shape(&shapes[i], 0) || !run_shape(&shapes[i], 1))
			lt_t_cur_failed = 1;
		lt_t_end();
	}
}

/* ---- 2. the oracle and the mutation test -------------------------------------- */

static unsigned be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* What the stack may do with a frame, as far as the protected port goes. */
enum {
	STACK_DROPS = 0, /* certainly dropped */
	STACK_PROTECTED = 1, /* may reach port 8080, or its port cannot be told */
	STACK_OTHER = 2, /* may be delivered, but to another port or protocol */
};

#define PROTECTED_PORT 8080

/*
 * The L4 header of a datagram (whole = not a first fragment: its header
 * must be valid; a first fragment's port is the reassembled datagram's,
 * since Linux discards overlapping fragments).
 */
static int l4_verdict(int proto, const unsigned char *l4, long l4len, int whole)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE ||
	    proto == IPPROTO_SCTP || proto == IPPROTO_DCCP) {
		/* tcp_v{4,6}_rcv: pskb_may_pull(th), doff >= 5, doff*4 <= len */
		if (whole && proto == IPPROTO_TCP &&
		    (l4len < 20 || l4[12] >> 4 < 5 || (l4[12] >> 4) * 4 > l4len))
			return STACK_DROPS;
		/* __udp4_lib_rcv: pskb_may_pull(uh) */
		if (whole && l4len < 8)
			return STACK_DROPS;
		if (l4len < 4)
			return STACK_PROTECTED; /* port in a later fragment */
		return be16(l4 + 2) == PROTECTED_PORT ? STACK_PROTECTED : STACK_OTHER;
	}
	if (proto == IPPROTO_ESP || proto == IPPROTO_AH)
		return STACK_PROTECTED; /* xfrm may hold an SA: port unknown */
	return STACK_OTHER;
}

/*
 * The written model of what Linux 6.x does with a frame on the device the
 * program is attached to (no tunnels; VLAN devices, IPsec SAs possible).
 * It answers "certainly dropped" only where the receive path has an
 * unconditional drop, and is conservative everywhere else:
 *  - Ethernet: < 14 bytes is a runt. 802.1Q/802.1ad tags are stripped one
 *    after another (VID 0, or a VLAN device for the VID): no depth limit; a
 *    frame cut inside a tag has no network header.
 *  - IPv4 (ip_rcv_core): < 20 bytes, version != 4, ihl < 5, header longer
 *    than the frame, bad header checksum, tot_len beyond the frame or below
 *    ihl*4: dropped. Any fragment may be reassembled (Linux keeps tiny first
 *    fragments); a non-first one's port cannot be told.
 *  - IPv6 (ipv6_rcv): < 40 bytes, version != 6, payload beyond the frame:
 *    dropped; payload_len 0 may be a jumbogram. Extension headers are
 *    walked without limit (AH too: xfrm continues after it, or drops it);
 *    one that runs past the payload drops the packet.
 *    A non-first fragment may be reassembled; a first fragment that does not
 *    hold the whole L4 header is dropped (RFC 8200 4.5, ipv6frag_thdr_truncated).
 *  - L4: TCP shorter than 20 bytes, doff < 5 or past the datagram, UDP
 *    shorter than 8: dropped. ESP/AH: may be delivered, port unknown. A
 *    readable port other than 8080, or a protocol without ports, cannot
 *    reach the protected listener.
 */
static int stack_may_deliver(const unsigned char *f, long len)
{
	long off = 14, end, p;
	unsigned type, ihl, tot, fo, plen;
	int nh, i, first_frag = 0, v;

	if (len < 14)
		return STACK_DROPS;
	type = be16(f + 12);
	while (type == 0x8100 || type == 0x88a8) {
		if (off + 4 > len)
			return STACK_DROPS;
		type = be16(f + off + 2);
		off += 4;
	}
	if (type == 0x0800) {
		const unsigned char *ip = f + off;

		if (len - off < 20 || ip[0] >> 4 != 4 || (ip[0] & 15) < 5)
			return STACK_DROPS;
		ihl = (ip[0] & 15) * 4u;
		if ((long)ihl > len - off || fr_fold(fr_sum(ip, (int)ihl, 0)) != 0)
			return STACK_DROPS;
		tot = be16(ip + 2);
		if ((long)tot > len - off || tot < ihl)
			return STACK_DROPS;
		fo = be16(ip + 6);
		if (fo & 0x1fff)
			return STACK_PROTECTED; /* non-first fragment */
		return l4_verdict(ip[9], ip + ihl, (long)(tot - ihl), !(fo & 0x2000));
	}
	if (type != 0x86dd)
		return STACK_OTHER;
	if (len - off < 40 || f[off] >> 4 != 6)
		return STACK_DROPS;
	plen = be16(f + off + 4);
	if (!plen)
		return STACK_PROTECTED; /* maybe a jumbogram: not modelled */
	if (off + 40 + (long)plen > len)
		return STACK_DROPS;
	end = off + 40 + plen;
	nh = f[off + 6];
	p = off + 40;
	for (i = 0; i < 64; i++) {
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			if (p + 2 > end || p + (f[p + 1] + 1) * 8 > end)
				return STACK_DROPS;
			nh = f[p];
			p += (f[p + 1] + 1) * 8;
		} else if (nh == IPPROTO_AH) {
			/* after xfrm authenticates it (without an SA it is dropped) */
			if (p + 2 > end || p + (f[p + 1] + 2) * 4 > end)
				return STACK_DROPS;
			nh = f[p];
			p += (f[p + 1] + 2) * 4;
		} else if (nh == IPPROTO_FRAGMENT) {
			if (p + 8 > end)
				return STACK_DROPS;
			fo = be16(f + p + 2);
			if (fo & 0xfff8)
				return STACK_PROTECTED; /* non-first fragment */
			first_frag |= fo & 1;
			nh = f[p];
			p += 8;
		} else {
			break;
		}
	}
	if (i == 64)
		return STACK_PROTECTED;
	v = l4_verdict(nh, f + p, end - p, 1);
	if (first_frag && v == STACK_DROPS)
		return STACK_DROPS; /* RFC 8200: L4 header not in the first fragment */
	return v;
}

struct mut_stats {
	long frames, may, passed_bad, errors, clean_passed, clean_total;
};

static unsigned char frames_buf[FR_CAP];

static void ipv4_recsum(unsigned char *ip)
{
	unsigned ihl = (ip[0] & 15) * 4u;

	if (ihl < 20)
		return;
	ip[10] = ip[11] = 0;
	fr_put16(ip + 10, fr_fold(fr_sum(ip, (int)ihl, 0)));
}

/*
 * Runs one derived frame of a banned or limited source through both programs;
 * a pass is a failure unless the oracle says the stack drops the frame.
 */
static int cur_k; /* the corruption being checked, for the failure message */
static void mut_check(struct mut_stats *ms, const unsigned char *f, int len, const char *what)
{
	int o = stack_may_deliver(f, len), t, v;

	ms->frames++;
	ms->may += o == STACK_PROTECTED;
	for (t = 0; t < 2; t++) {
		if (len < 14 && t == 1)
			continue; /* BPF_PROG_RUN refuses skbs below ETH_HLEN */
		v = run_raw(t, f, len);
		/* BPF_PROG_RUN builds no skb without a whole IP header */
		if (v < 0 && t == 1 && o == STACK_DROPS)
			continue;
		if (v < 0 && len >= 14) {
			if (ms->errors++ < 5)
				printf("#   %s error %d on %s (%d bytes)\n", t ? "tc" : "xdp",
				       errno, what, len);
			continue;
		}
		if (v == 1 && o == STACK_PROTECTED) {
			if (ms->passed_bad++ < 10)
				printf("#   %s passed %s (%d bytes) k %d\n", t ? "tc" : "xdp", what,
				       len, cur_k);
		}
	}
}

/* Every truncation, then field corruptions, of one frame. */
static void mutate(struct mut_stats *ms, const struct frame_spec *s)
{
	unsigned char f[FR_CAP];
	int len = frame_build(s, f, sizeof(f)), l, k, off = 14 + 4 * s->nvlan;
	char what[96];

	if (len < 0 && s->frag)
		return; /* a fragment offset past a short segment: no such frame */
	if (len < 0) {
		ms->errors++;
		return;
	}
	snprintf(what, sizeof(what), "v%d vlan %d opt %d ext %d frag %d@%d", s->v6 ? 6 : 4,
		 s->nvlan, s->v4_opt, s->n_ext, s->frag, s->frag_at);
	for (l = 0; l <= len; l++)
		mut_check(ms, f, l, what);
	/* header fields: each corruption on a fresh copy */
	for (k = 0; k < 48; k++) {
		memcpy(frames_buf, f, (size_t)len);
		if (!s->v6) {
			unsigned char *ip = frames_buf + off;
			unsigned tot = be16(ip + 2);

			switch (k / 16) {
			case 0: /* ihl, version */
				ip[0] = (unsigned char)(k < 8 ? (ip[0] & 0xf0) | (k + 5) :
								(k % 8) << 4 | (ip[0] & 15));
				break;
			case 1: /* tot_len */
				fr_put16(ip + 2, tot + (unsigned)(k % 16) - 8);
				break;
			default: /* flags/offset, protocol */
				if (k % 2)
					fr_put16(ip + 6, (unsigned)(k % 16) / 2 | 0x2000);
				else
					ip[9] = (unsigned char)(k % 16 == 0 ? IPPROTO_ESP :
								k % 16 == 2 ? IPPROTO_AH :
									      IPPROTO_UDP);
				break;
			}
			ipv4_recsum(ip);
		} else {
			unsigned char *ip = frames_buf + off;
			static const int nhs[] = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS,
						   IPPROTO_ROUTING, IPPROTO_FRAGMENT,
						   IPPROTO_TCP,	    IPPROTO_UDP,
						   IPPROTO_ESP,	    IPPROTO_AH };

			switch (k / 16) {
			case 0: /* payload length */
				fr_put16(ip + 4, be16(ip + 4) + (unsigned)(k % 16) - 8);
				break;
			case 1: /* the first next-header */
				ip[6] = (unsigned char)nhs[k % 8];
				break;
			default: /* hdr ext len of the first extension header */
				if (s->n_ext)
					frames_buf[off + 41] = (unsigned char)(k % 16);
				break;
			}
		}
		cur_k = k;
		mut_check(ms, frames_buf, len, what);
	}
}

static void mutate_all(struct mut_stats *ms, const char *src4, const char *src6)
{
	static const int vlans[] = { 0, 1, 2, 3, 8, 9 };
	static const int opts[] = { 0, 4, 40 };
	static const int exts[][10] = {
		{ 0 },
		{ 1, IPPROTO_HOPOPTS },
		{ 5, IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS,
		  IPPROTO_DSTOPTS },
		{ 3, IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS },
		{ 9, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS,
		  IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS,
		  IPPROTO_DSTOPTS },
	};
	unsigned v, o, e, pl, fa;

	for (v = 0; v < sizeof(vlans) / sizeof(vlans[0]); v++) {
		for (pl = 0; pl < 2; pl++) {
			for (o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
				struct frame_spec s = { .src = src4,
							.dst = DST4,
							.syn = 1,
							.nvlan = vlans[v],
							.v4_opt = opts[o],
							.payload = (int)pl * 40,
							.proto = o == 1 && pl ? IPPROTO_UDP : 0 };

				mutate(ms, &s);
				/* fragments: first [0, fa) and the rest [fa, end) */
				for (fa = 8; fa <= 32; fa += 8) {
					s.frag = 1;
					s.frag_at = 0;
					s.frag_len = (int)fa;
					s.frag_more = 1;
					mutate(ms, &s);
					s.frag_at = (int)fa;
					s.frag_len = -1;
					s.frag_more = 0;
					mutate(ms, &s);
					s.frag = 0;
				}
			}
			for (e = 0; e < sizeof(exts) / sizeof(exts[0]); e++) {
				struct frame_spec s = { .v6 = 1,
							.src = src6,
							.dst = DST6,
							.syn = 1,
							.nvlan = vlans[v],
							.n_ext = exts[e][0],
							.payload = (int)pl * 40 };
				int i;

				for (i = 0; i < s.n_ext; i++)
					s.ext[i] = exts[e][i + 1];
				mutate(ms, &s);
				for (fa = 8; fa <= 32; fa += 8) {
					s.frag = 1;
					s.frag_at = 0;
					s.frag_len = (int)fa;
					s.frag_more = 1;
					mutate(ms, &s);
					s.frag_at = (int)fa;
					s.frag_len = -1;
					s.frag_more = 0;
					mutate(ms, &s);
					s.frag = 0;
				}
			}
		}
	}
}

/*
 * The oracle is not vacuous: the unmutated SYNs it calls deliverable do pass
 * for a clean source, and a banned source's are all dropped.
 */
static void mutation_clean_source_control(void)
{
	static const int vlans[] = { 0, 1, 2, 3, 8 };
	unsigned v, t;
	int passed = 0, total = 0;

	reset();
	for (v = 0; v < sizeof(vlans) / sizeof(vlans[0]); v++) {
		struct frame_spec s4 = { SYN4(CLEAN4), .nvlan = vlans[v], .v4_opt = 40 };
		struct frame_spec s6 = { SYN6(CLEAN6), .nvlan = vlans[v], HBH_4DST };

		for (t = 0; t < 2; t++) {
			passed += run_spec((int)t, &s4) == 1;
			passed += run_spec((int)t, &s6) == 1;
			total += 2;
		}
	}
	CHECK_EQ(passed, total);
}

static void mutation_banned_source_never_passes(void)
{
	struct mut_stats ms = { 0 };

	reset();
	mutate_all(&ms, BANNED4, BANNED6);
	printf("# banned: %ld frames, %ld the stack may deliver, %ld of those passed, %ld errors\n",
	       ms.frames, ms.may, ms.passed_bad, ms.errors);
	CHECK(ms.may >= 1000);
	CHECK_EQ(ms.passed_bad, 0);
	CHECK_EQ(ms.errors, 0);
}

static void mutation_limited_source_never_passes(void)
{
	struct frame_spec a4 = { .src = LIMITED4, .dst = DST4, .ack = 1 };
	struct frame_spec a6 = { .v6 = 1, .src = LIMITED6, .dst = DST6, .ack = 1 };
	struct mut_stats ms = { 0 };

	reset();
	/* spend the packet bucket (capacity 1) of each family's source */
	CHECK_EQ(run_spec(0, &a4), 1);
	CHECK_EQ(run_spec(0, &a6), 1);
	CHECK_EQ(run_spec(1, &a4), 0);
	mutate_all(&ms, LIMITED4, LIMITED6);
	printf("# limited: %ld frames, %ld the stack may deliver, %ld of those passed, %ld errors\n",
	       ms.frames, ms.may, ms.passed_bad, ms.errors);
	CHECK(ms.may >= 1000);
	CHECK_EQ(ms.passed_bad, 0);
	CHECK_EQ(ms.errors, 0);
}

int main(void)
{
	struct lt_load_opts lo = { .fake_clock = 1 };
	char err[256];

	if (geteuid() != 0) {
		printf("1..0 # SKIP BPF_PROG_RUN needs root\n");
		return 77;
	}
	lt_log_level = LT_LOG_WARN;
	lt_log_libbpf();
	skel = lt_skel_load(&lo, err, sizeof(err));
	if (!skel) {
		printf("not ok 1 - load skeleton: %s\n1..1\n", err);
		return 1;
	}
	lt_maps_from_skel(skel, &M);
	shape_fixtures();
	RUN(mutation_clean_source_control);
	RUN(mutation_banned_source_never_passes);
	RUN(mutation_limited_source_never_passes);
	lt_admit__destroy(skel);
	return lt_t_done();
}
