// SPDX-License-Identifier: MIT
/*
 * leaky-stub: the provider stub (issue #9). Answers OpenAI, Gemini, DashScope and Anthropic
 * shapes with deterministic output and honest usage (stub.h says how it counts). The options
 * are the table in opts.c; each is overridden per request by its x-stub-* header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stub.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: leaky-stub [OPTION]...\n"
		"A provider stub: OpenAI, Gemini, DashScope and Anthropic wire shapes, JSON and SSE,\n"
		"with deterministic usage. Options (each default is overridden per request by the\n"
		"header named after it):\n");
	for (size_t i = 0; i < stub_nopts; i++) {
		char left[48];

		snprintf(left, sizeof(left), "--%s%s%s", stub_opt_table[i].name,
			 stub_opt_table[i].arg ? " " : "",
			 stub_opt_table[i].arg ? stub_opt_table[i].arg : "");
		fprintf(f, "  %-26s %s\n", left, stub_opt_table[i].help);
		if (stub_opt_table[i].hdr)
			fprintf(f, "  %-26s   per request: %s\n", "", stub_opt_table[i].hdr);
	}
	fprintf(f,
		"  %-26s %s\n"
		"Endpoints (POST): /v1/chat/completions /v1/completions /v1/embeddings /v1/responses\n"
		"  /v1beta/models/MODEL:generateContent  /v1beta/models/MODEL:streamGenerateContent[?alt=sse]\n"
		"  /v1beta/openai/chat/completions  /compatible-mode/v1/chat/completions  /v1/messages\n"
		"Control: GET /stub/stats (usage reported, per shape), POST /stub/reset,\n"
		"  GET|POST /stub/config (the runtime options above, '_' for '-', e.g.\n"
		"  {\"status\":503,\"latency_ms\":0}), /stub/echo (the request head as JSON), GET /healthz.\n"
		"Usage: prompt tokens = ceil(prompt text bytes / 4); completion tokens = the tokens\n"
		"  generated, each the 4 bytes \"tok \", N = min(output limit, --tokens).\n",
		"--help", "this text");
}

int main(int argc, char **argv)
{
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		const struct stub_opt *o = NULL;
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
		for (size_t k = 0; k < stub_nopts; k++)
			if (strlen(stub_opt_table[k].name) == nlen &&
			    !strncmp(stub_opt_table[k].name, a, nlen))
				o = &stub_opt_table[k];
		if (!o) {
			fprintf(stderr, "leaky-stub: unknown option '%s' (see --help)\n", argv[i]);
			return 2;
		}
		if (o->type != STUB_OPT_FLAG) {
			val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val) {
				fprintf(stderr, "leaky-stub: --%s needs %s\n", o->name, o->arg);
				return 2;
			}
		} else if (eq) {
			fprintf(stderr, "leaky-stub: --%s takes no value\n", o->name);
			return 2;
		}
		if (stub_opt_set(o, val)) {
			fprintf(stderr, "leaky-stub: --%s %s: expected %s in [%lld, %lld]\n",
				o->name, val, o->arg, (long long)o->lo, (long long)o->hi);
			return 2;
		}
	}
	if (stub_opts.quiet && freopen("/dev/null", "w", stdout) == NULL)
		return 1;
	rc = stub_serve();
	if (rc)
		fprintf(stderr, "leaky-stub: %s\n", strerror(-rc));
	return rc ? 1 : 0;
}
