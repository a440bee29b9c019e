// SPDX-License-Identifier: MIT
/*
 * leaky-stub: the provider stub (issue #9). Answers OpenAI, Gemini, DashScope and Anthropic
 * shapes with deterministic output and honest usage (stub.h says how it counts); every
 * default below is overridden per request by its x-stub-* header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stub.h"

enum opt_type { OPT_U32, OPT_U64, OPT_STR, OPT_FLAG };

/* One table for parsing and --help, so the two cannot drift apart. */
static const struct opt {
	const char *name, *arg, *help;
	enum opt_type type;
	void *ptr;
	uint64_t lo, hi;
	const char *hdr; /* the per-request header that overrides it */
} opts[] = {
	{ "listen", "ADDR",
	  "HOST:PORT to listen on (default 127.0.0.1:9090; port 0 picks one and "
	  "prints it)",
	  OPT_STR, stub_opts.listen, 0, sizeof(stub_opts.listen), NULL },
	{ "threads", "N", "worker threads (default 2)", OPT_U32, &stub_opts.threads, 1, 64, NULL },
	{ "tokens", "N", "output length in tokens when the request's limit allows (default 16)",
	  OPT_U32, &stub_opts.tokens, 0, STUB_MAX_TOKENS, "x-stub-tokens: N" },
	{ "ignore-max-tokens", NULL, "generate --tokens whatever the request's output limit",
	  OPT_FLAG, &stub_opts.ignore_max_tokens, 0, 1, "x-stub-ignore-max-tokens: 1|0" },
	{ "latency-ms", "MS", "delay before the response head (default 0)", OPT_U32,
	  &stub_opts.latency_ms, 0, 600000, "x-stub-latency-ms: MS" },
	{ "chunk-delay-ms", "MS", "delay between two SSE events (default 0)", OPT_U32,
	  &stub_opts.chunk_delay_ms, 0, 600000, "x-stub-chunk-delay-ms: MS" },
	{ "status", "CODE",
	  "answer every LLM request with this status and the provider's error "
	  "body (default: answer normally)",
	  OPT_U32, &stub_opts.status, 200, 599, "x-stub-status: CODE" },
	{ "retry-after", "S", "Retry-After of a 429, seconds (default 1)", OPT_U32,
	  &stub_opts.retry_after_s, 0, 86400, "x-stub-retry-after: S" },
	{ "embedding-dims", "N",
	  "floats per embedding when the request sets no dimensions "
	  "(default 8)",
	  OPT_U32, &stub_opts.embed_dims, 1, 4096, NULL },
	{ "max-body", "BYTES", "largest request body; more is a 413 (default 4194304)", OPT_U64,
	  &stub_opts.max_body, 1, 1u << 30, NULL },
	{ "quiet", NULL, "do not print the listening address", OPT_FLAG, &stub_opts.quiet, 0, 1,
	  NULL },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: leaky-stub [OPTION]...\n"
		"A provider stub: OpenAI, Gemini, DashScope and Anthropic wire shapes, JSON and SSE,\n"
		"with deterministic usage. Options (each default is overridden per request by the\n"
		"header named after it):\n");
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		char left[48];

		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
			 opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-26s %s\n", left, opts[i].help);
		if (opts[i].hdr)
			fprintf(f, "  %-26s   per request: %s\n", "", opts[i].hdr);
	}
	fprintf(f,
		"  %-26s %s\n"
		"Per request only:\n"
		"  x-stub-hang: 1              never answer (the connection stays open)\n"
		"  x-stub-disconnect-after: K  close after K SSE events (a JSON answer: after K bytes\n"
		"                              of its body)\n"
		"  x-stub-error-after: K       end a stream after K events with the provider's error\n"
		"                              event (a failure in the middle of a stream)\n"
		"Endpoints (POST): /v1/chat/completions /v1/completions /v1/embeddings /v1/responses\n"
		"  /v1beta/models/MODEL:generateContent  /v1beta/models/MODEL:streamGenerateContent[?alt=sse]\n"
		"  /v1beta/openai/chat/completions  /compatible-mode/v1/chat/completions  /v1/messages\n"
		"Control: GET /stub/stats (usage reported, per shape), POST /stub/reset, /stub/echo,\n"
		"  GET /healthz.\n"
		"Usage: prompt tokens = ceil(prompt text bytes / 4); completion tokens = the tokens\n"
		"  generated, each the 4 bytes \"tok \", N = min(output limit, --tokens).\n",
		"--help", "this text");
}

static int set_opt(const struct opt *o, const char *val)
{
	char *end;
	unsigned long long v;

	switch (o->type) {
	case OPT_FLAG:
		*(bool *)o->ptr = true;
		return 0;
	case OPT_STR:
		if (strlen(val) >= o->hi)
			return -EINVAL;
		strcpy(o->ptr, val);
		return 0;
	default:
		errno = 0;
		v = strtoull(val, &end, 10);
		if (errno || end == val || *end || val[0] == '-' || v < o->lo || v > o->hi)
			return -EINVAL;
		if (o->type == OPT_U32)
			*(uint32_t *)o->ptr = (uint32_t)v;
		else
			*(uint64_t *)o->ptr = v;
		return 0;
	}
}

int main(int argc, char **argv)
{
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		const struct opt *o = NULL;
		size_t nlen;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (strncmp(a, "--", 2)) {
			fprintf(stderr, "leaky-stub: unexpected argument '%s' (see --help)\n", a);
			return 2;
		}
		a += 2;
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, a, nlen))
				o = &opts[k];
		if (!o) {
			fprintf(stderr, "leaky-stub: unknown option '%s' (see --help)\n", argv[i]);
			return 2;
		}
		if (o->type != OPT_FLAG) {
			val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val) {
				fprintf(stderr, "leaky-stub: --%s needs %s\n", o->name, o->arg);
				return 2;
			}
		} else if (eq) {
			fprintf(stderr, "leaky-stub: --%s takes no value\n", o->name);
			return 2;
		}
		if (set_opt(o, val)) {
			fprintf(stderr, "leaky-stub: --%s %s: expected %s in [%llu, %llu]\n",
				o->name, val, o->arg, (unsigned long long)o->lo,
				(unsigned long long)o->hi);
			return 2;
		}
	}
	if (stub_opts.status == 200)
		stub_opts.status = 0;
	if (stub_opts.quiet && freopen("/dev/null", "w", stdout) == NULL)
		return 1;
	rc = stub_serve();
	if (rc)
		fprintf(stderr, "leaky-stub: %s\n", strerror(-rc));
	return rc ? 1 : 0;
}
