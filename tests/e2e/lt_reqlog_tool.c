// SPDX-License-Identifier: MIT
/*
 * lt_reqlog_tool.c - a gateway stand-in for the usage-record suites, linked
 * with liblt only: it writes records into the agent's pinned lt_reqlog ring
 * exactly as leaky-gateway does (lt_reqlog_put), and reads the ring's counters.
 *   lt_reqlog_tool put PIN_DIR N [key=value...]
 *     writes N records; keys: provider, model, in, out (tokens; either sets
 *     F_USAGE), reserved, status, outcome, latency_us, ttft_us, id (request
 *     id prefix; the record number is appended), user, org, tier, keyid,
 *     route, method, limit (the limit that refused it), stream=1, age_s (arrived
 *     that long ago). Prints "put N published P busy B us U".
 *   lt_reqlog_tool ctl PIN_DIR
 *     prints "head H tail T consumed C lapped L unpublished U died D gave_up G
 *     overwritten O".
 *   lt_reqlog_tool die PIN_DIR
 *     claims a slot, writes half a record and kills itself with SIGKILL.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "reqlog.h"

static __u64 mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000ULL + (__u64)ts.tv_nsec / 1000;
}

static int put(struct lt_reqlog *rl, long n, char **kv, int nkv)
{
	static const __u8 addr[16] = {
		[10] = 0xff, [11] = 0xff, [12] = 192, [13] = 0, [14] = 2, [15] = 7
	};
	struct lt_reqlog_in in = { .method = "POST",
				   .route = "/v1/chat/completions",
				   .status = 200,
				   .client_addr = addr,
				   .client_port = 40000 };
	const char *idp = "req";
	unsigned long long age_s = 0;
	struct timespec now;
	char id[64];
	long i, ok = 0, busy = 0;
	__u64 t0;
	int j;

	for (j = 0; j < nkv; j++) {
		char *v = strchr(kv[j], '=');
		unsigned long long x;

		if (!v) {
			fprintf(stderr, "lt_reqlog_tool: %s: want key=value\n", kv[j]);
			return 2;
		}
		*v++ = '\0';
		x = strtoull(v, NULL, 10);
		if (!strcmp(kv[j], "provider"))
			in.provider = v;
		else if (!strcmp(kv[j], "model"))
			in.model_requested = in.model_served = v;
		else if (!strcmp(kv[j], "in"))
			in.tokens_in = x, in.flags |= LT_REQLOG_F_USAGE;
		else if (!strcmp(kv[j], "out"))
			in.tokens_out = x, in.flags |= LT_REQLOG_F_USAGE;
		else if (!strcmp(kv[j], "reserved"))
			in.tokens_reserved = x;
		else if (!strcmp(kv[j], "status"))
			in.status = (__u16)x;
		else if (!strcmp(kv[j], "outcome"))
			in.outcome = (__u32)x;
		else if (!strcmp(kv[j], "latency_us"))
			in.latency_ns = x * 1000;
		else if (!strcmp(kv[j], "ttft_us"))
			in.ttft_ns = x * 1000;
		else if (!strcmp(kv[j], "id"))
			idp = v;
		else if (!strcmp(kv[j], "user"))
			in.user = v;
		else if (!strcmp(kv[j], "org"))
			in.org = v;
		else if (!strcmp(kv[j], "tier"))
			in.tier = v;
		else if (!strcmp(kv[j], "keyid"))
			in.key_id = v;
		else if (!strcmp(kv[j], "route"))
			in.route = v;
		else if (!strcmp(kv[j], "method"))
			in.method = v;
		else if (!strcmp(kv[j], "limit"))
			in.limit = v;
		else if (!strcmp(kv[j], "age_s"))
			age_s = x;
		else if (!strcmp(kv[j], "stream"))
			in.flags |= x ? LT_REQLOG_F_STREAM : 0;
		else {
			fprintf(stderr, "lt_reqlog_tool: unknown key %s\n", kv[j]);
			return 2;
		}
	}
	in.request_id = id;
	if (age_s) { /* arrived age_s seconds ago */
		clock_gettime(CLOCK_REALTIME, &now);
		in.start_ns = ((__u64)now.tv_sec - age_s) * 1000000000ULL;
	}
	t0 = mono_us();
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%s-%ld", idp, i);
		if (lt_reqlog_put(rl, &in) == 0)
			ok++;
		else
			busy++;
	}
	printf("put %ld published %ld busy %ld us %llu\n", n, ok, busy,
	       (unsigned long long)(mono_us() - t0));
	return 0;
}

int main(int argc, char **argv)
{
	struct lt_reqlog rl;
	char err[512];
	int rc = 2;

	if (argc < 3) {
		fprintf(stderr, "usage: lt_reqlog_tool put|ctl|die PIN_DIR [N key=value...]\n");
		return 2;
	}
	if (lt_reqlog_open(&rl, argv[2], err, sizeof(err))) {
		fprintf(stderr, "lt_reqlog_tool: %s\n", err);
		return 1;
	}
	if (!strcmp(argv[1], "put") && argc >= 4) {
		rc = put(&rl, strtol(argv[3], NULL, 10), argv + 4, argc - 4);
	} else if (!strcmp(argv[1], "ctl")) {
		const struct lt_reqlog_ctl *c = rl.ctl;

		printf("head %llu tail %llu consumed %llu lapped %llu unpublished %llu died %llu "
		       "gave_up %llu overwritten %llu\n",
		       (unsigned long long)c->head, (unsigned long long)c->tail,
		       (unsigned long long)c->consumed, (unsigned long long)c->dropped_lapped,
		       (unsigned long long)c->dropped_unpublished,
		       (unsigned long long)c->dropped_died, (unsigned long long)c->gave_up,
		       (unsigned long long)c->overwritten);
		rc = 0;
	} else if (!strcmp(argv[1], "die")) {
		struct lt_reqlog_rec *r;
		__u64 pos;

		r = lt_reqlog_claim(&rl, &pos);
		if (r) {
			memset(r->user, 'X', sizeof(r->user)); /* half a record */
			raise(SIGKILL);
		}
		rc = 1;
	}
	lt_reqlog_close(&rl);
	return rc;
}
