// SPDX-License-Identifier: MIT
/* escalate.c - 429s -> lt_escal counts -> lt_penalty bans (see escalate.h and lib/escal.h). */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "addr.h"
#include "escalate.h"
#include "log.h"
#include "penalty.h"

#define GW_ESC_RETRY_NS 1000000000ULL /* look for missing pins at most once a second */

/* Per process (set before fork; each worker has its own copy of the fds and the mapping). */
static struct {
	struct gw_esc_opts o;
	char pin_dir[256];
	int on; /* configured */
	int open;
	uint64_t next_try_ns;
	struct lt_escal e;
} E;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

void gw_esc_opts_default(struct gw_esc_opts *o)
{
	char err[64];

	memset(o, 0, sizeof(*o));
	o->pol.rejections = 50;
	o->pol.window_ms = 10 * 1000ULL;
	o->pol.ttl_ms = 30 * 1000ULL;
	o->pol.max_ttl_ms = 3600 * 1000ULL;
	o->pol.decay_ms = 3600 * 1000ULL;
	lt_prefix_parse("127.0.0.0/8", &o->exempt[o->nexempt++], err, sizeof(err));
	lt_prefix_parse("::1/128", &o->exempt[o->nexempt++], err, sizeof(err));
}

static int esc_u32(json_t *a, const char *k, uint32_t lo, uint32_t hi, uint64_t mul, void *out,
		   int is64, char *err, size_t errlen)
{
	json_t *v = json_object_get(a, k);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "/admission/escalation/%s: must be an integer in [%u, %u]", k,
			 lo, hi);
		return -EINVAL;
	}
	if (is64)
		*(uint64_t *)out = (uint64_t)json_integer_value(v) * mul;
	else
		*(uint32_t *)out = (uint32_t)json_integer_value(v);
	return 0;
}

int gw_esc_opts_parse(const void *json_escalation, struct gw_esc_opts *o, char *err, size_t errlen)
{
	static const char *const known[] = { "enabled",	  "rejections", "window_s", "ttl_s",
					     "max_ttl_s", "decay_s",	"exempt",   NULL };
	json_t *a = (json_t *)json_escalation, *v, *x;
	struct lt_lpm_key k;
	const char *key;
	char perr[128];
	size_t i;
	int r = 0;

	gw_esc_opts_default(o);
	if (!a)
		return 0;
	if (!json_is_object(a)) {
		snprintf(err, errlen, "/admission/escalation: must be an object");
		return -EINVAL;
	}
	json_object_foreach(a, key, v) {
		const char *const *p = known;
		while (*p && strcmp(*p, key))
			p++;
		if (!*p) {
			snprintf(err, errlen, "/admission/escalation: unknown key \"%.64s\"", key);
			return -EINVAL;
		}
	}
	r = r ?: esc_u32(a, "rejections", 0, 1000000, 0, &o->pol.rejections, 0, err, errlen);
	r = r ?: esc_u32(a, "window_s", 1, 86400, 1000, &o->pol.window_ms, 1, err, errlen);
	r = r ?: esc_u32(a, "ttl_s", 1, 86400, 1000, &o->pol.ttl_ms, 1, err, errlen);
	r = r ?: esc_u32(a, "max_ttl_s", 1, 30 * 86400, 1000, &o->pol.max_ttl_ms, 1, err, errlen);
	r = r ?: esc_u32(a, "decay_s", 1, 30 * 86400, 1000, &o->pol.decay_ms, 1, err, errlen);
	if (r)
		return r;
	if (o->pol.max_ttl_ms < o->pol.ttl_ms) {
		snprintf(err, errlen, "/admission/escalation/max_ttl_s: must be >= ttl_s");
		return -EINVAL;
	}
	v = json_object_get(a, "enabled");
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "/admission/escalation/enabled: must be true or false");
		return -EINVAL;
	}
	if (v && json_is_false(v))
		o->pol.rejections = 0;
	v = json_object_get(a, "exempt");
	if (v) {
		if (!json_is_array(v) || json_array_size(v) > GW_ESC_EXEMPT_MAX) {
			snprintf(err, errlen,
				 "/admission/escalation/exempt: an array of at most %d prefixes",
				 GW_ESC_EXEMPT_MAX);
			return -EINVAL;
		}
		o->nexempt = 0;
		json_array_foreach(v, i, x) {
			if (!json_is_string(x) ||
			    lt_prefix_parse(json_string_value(x), &k, perr, sizeof(perr))) {
				snprintf(err, errlen,
					 "/admission/escalation/exempt/%zu: an IP prefix like "
					 "10.0.0.0/8",
					 i);
				return -EINVAL;
			}
			o->exempt[o->nexempt++] = k;
		}
	}
	return 0;
}

static int esc_open(void)
{
	char err[320];
	uint64_t now = mono_ns();

	if (E.open)
		return 1;
	if (now < E.next_try_ns)
		return 0;
	E.next_try_ns = now + GW_ESC_RETRY_NS;
	if (lt_escal_open(&E.e, E.pin_dir, err, sizeof(err))) {
		lt_log_rl(LT_LOG_WARN, "gateway: escalation unavailable (%s)", err);
		return 0;
	}
	E.open = 1;
	return 1;
}

void gw_esc_init(const struct gw_esc_opts *o, const char *pin_dir)
{
	gw_esc_fini();
	E.o = *o;
	snprintf(E.pin_dir, sizeof(E.pin_dir), "%s", pin_dir);
	E.on = o->pol.rejections > 0;
	if (E.on)
		esc_open();
	else
		lt_log(LT_LOG_INFO, "gateway: escalation to the kernel is off");
}

void gw_esc_reload(const struct gw_esc_opts *o)
{
	E.o = *o;
	E.on = o->pol.rejections > 0;
}

void gw_esc_fini(void)
{
	if (E.open)
		lt_escal_close(&E.e);
	memset(&E, 0, sizeof(E));
}

/* addr within prefix k (both in the 16-byte form). */
static int esc_in(const __u8 addr[16], const struct lt_lpm_key *k)
{
	__u32 bits = k->prefixlen, full = bits / 8;

	if (memcmp(addr, k->addr, full))
		return 0;
	if (bits % 8) {
		__u8 m = (__u8)(0xff << (8 - bits % 8));
		return (addr[full] & m) == (k->addr[full] & m);
	}
	return 1;
}

void gw_esc_on_429(const struct sockaddr_storage *peer, uint64_t arrival_ns, uint64_t wait_ms)
{
	struct lt_esc_verdict v;
	struct lt_penalty pen;
	char who[64], perr[200];
	__u8 addr[16] = { 0 };
	uint64_t now;
	int r;

	if (!E.on || !esc_open())
		return;
	if (peer->ss_family == AF_INET) {
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	} else if (peer->ss_family == AF_INET6) {
		memcpy(addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
	} else {
		return; /* a unix socket: nothing XDP could drop */
	}
	for (unsigned i = 0; i < E.o.nexempt; i++)
		if (esc_in(addr, &E.o.exempt[i]))
			return;
	now = mono_ns();
	if (lt_escal_rejected(&E.e, &E.o.pol, addr, arrival_ns / 1000000, now / 1000000, wait_ms,
			      &v) ||
	    !v.ban)
		return;
	lt_addr_format(addr, who, sizeof(who));
	r = lt_escal_ban(&E.e, addr, &v, &pen);
	if (r) {
		lt_penalty_strerror(r, perr, sizeof(perr));
		lt_log_rl(LT_LOG_ERROR, "gateway: escalation: cannot ban %s: %s", who, perr);
		return;
	}
	lt_log(LT_LOG_WARN,
	       "gateway: escalation: %s banned for %llu ms (strike %u: %u 429s that ignored "
	       "Retry-After within %llu s)",
	       who, (unsigned long long)v.ttl_ms, v.strikes, E.o.pol.rejections,
	       (unsigned long long)(E.o.pol.window_ms / 1000));
}
