// SPDX-License-Identifier: MIT
/*
 * opts.c - leaky-stub's options: one table for the command line, --help and the runtime
 * POST /stub/config, so the three cannot drift apart (redis config.c style).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stub.h"

/* The defaults. Here rather than in main.c so that tests linking libstub.a have them. */
struct stub_opts stub_opts = {
	.listen = "127.0.0.1:9100",
	.threads = 2,
	.tokens = 16,
	.retry_after_s = 1,
	.embed_dims = 8,
	.event_tokens = 1,
	.max_body = 4u << 20,
	.disconnect_after = -1,
	.error_after = -1,
};

#define O(n, a, h, t, f, lo, hi, hdr, rt)                            \
	{                                                            \
		n, a, h, STUB_OPT_##t, &stub_opts.f, lo, hi, hdr, rt \
	}
const struct stub_opt stub_opt_table[] = {
	{ "listen", "ADDR",
	  "HOST:PORT to listen on (default 127.0.0.1:9100, beside the agent's API on 9090; port 0 picks a free one and prints it)",
	  STUB_OPT_STR, stub_opts.listen, 0, sizeof(stub_opts.listen), NULL, false },
	O("threads", "N", "worker threads (default 2)", U32, threads, 1, 64, NULL, false),
	{ "content-type", "TYPE",
	  "label every 200 LLM answer with this Content-Type instead of the shape's (a provider that mislabels its stream)",
	  STUB_OPT_STR, stub_opts.content_type, 0, sizeof(stub_opts.content_type),
	  "x-stub-content-type: TYPE", false },
	O("tokens", "N", "output length in tokens when the request's limit allows (default 16)",
	  U32, tokens, 0, STUB_MAX_TOKENS, "x-stub-tokens: N", true),
	O("ignore-max-tokens", NULL, "generate --tokens whatever the request's output limit", FLAG,
	  ignore_max_tokens, 0, 1, "x-stub-ignore-max-tokens: 1|0", true),
	O("gemini-array", NULL,
	  "answer a Gemini streamGenerateContent as one JSON array even with ?alt=sse (a provider that reads the query otherwise)",
	  FLAG, gemini_array, 0, 1, "x-stub-gemini-array: 1|0", true),
	O("event-tokens", "K",
	  "output tokens packed into each stream event (default 1; a provider that batches its output: K >= 16385 makes an event longer than the gateway's 64 KiB hold)",
	  U32, event_tokens, 1, STUB_MAX_TOKENS, "x-stub-event-tokens: K", true),
	O("chunk-bytes", "N",
	  "send a stream in HTTP chunks of at most N bytes (1: every byte its own chunk, events split anywhere); 0: one chunk per event (default)",
	  U32, chunk_bytes, 0, 1 << 20, "x-stub-chunk-bytes: N", true),
	O("eol", "K",
	  "a stream's line ends: 0 as the provider writes them (default), 1 LF, 2 CRLF, 3 CR", U32,
	  eol, 0, 3, "x-stub-eol: K", true),
	O("gzip", NULL,
	  "compress every 200 LLM answer with gzip (Content-Encoding: gzip), even when the request asked for identity; a stream is then generated whole and sent as one compressed body",
	  FLAG, gzip, 0, 1, "x-stub-gzip: 1|0", true),
	O("latency-ms", "MS", "delay before the response head (default 0)", U32, latency_ms, 0,
	  600000, "x-stub-latency-ms: MS", true),
	O("chunk-delay-ms", "MS", "delay between two SSE events (default 0)", U32, chunk_delay_ms,
	  0, 600000, "x-stub-chunk-delay-ms: MS", true),
	O("status", "CODE",
	  "answer LLM requests with this status and the provider's error body (200: normally)", U32,
	  status, 200, 599, "x-stub-status: CODE", true),
	O("retry-after", "S", "Retry-After of a 429, seconds (default 1)", U32, retry_after_s, 0,
	  86400, "x-stub-retry-after: S", true),
	O("hang", NULL, "never answer LLM requests (the connection stays open)", FLAG, hang, 0, 1,
	  "x-stub-hang: 1|0", true),
	O("disconnect-after", "K",
	  "close after K SSE events (a JSON answer: after K bytes of its body); -1: never", I64,
	  disconnect_after, -1, UINT32_MAX, "x-stub-disconnect-after: K", true),
	O("error-after", "K",
	  "end a stream after K events with the provider's error event; -1: never", I64,
	  error_after, -1, UINT32_MAX, "x-stub-error-after: K", true),
	O("embedding-dims", "N", "floats per embedding when the request sets no dimensions (8)",
	  U32, embed_dims, 1, 4096, NULL, true),
	O("max-body", "BYTES", "largest request body; more is a 413 (default 4194304)", U64,
	  max_body, 1, 1 << 30, NULL, false),
	O("quiet", NULL, "do not print the listening address", FLAG, quiet, 0, 1, NULL, false),
};
const size_t stub_nopts = sizeof(stub_opt_table) / sizeof(stub_opt_table[0]);

static void store(const struct stub_opt *o, int64_t v)
{
	switch (o->type) {
	case STUB_OPT_FLAG:
		__atomic_store_n((bool *)o->ptr, v != 0, __ATOMIC_RELAXED);
		break;
	case STUB_OPT_U32:
		/* status 200 is stored as 0: answer normally */
		if (o->ptr == &stub_opts.status && v == 200)
			v = 0;
		__atomic_store_n((uint32_t *)o->ptr, (uint32_t)v, __ATOMIC_RELAXED);
		break;
	case STUB_OPT_U64:
		__atomic_store_n((uint64_t *)o->ptr, (uint64_t)v, __ATOMIC_RELAXED);
		break;
	case STUB_OPT_I64:
		__atomic_store_n((int64_t *)o->ptr, v, __ATOMIC_RELAXED);
		break;
	default:
		break;
	}
}

int stub_opt_set(const struct stub_opt *o, const char *val)
{
	char *end;
	long long v;

	if (o->type == STUB_OPT_FLAG) {
		store(o, 1);
		return 0;
	}
	if (o->type == STUB_OPT_STR) {
		if (strlen(val) >= (size_t)o->hi)
			return -EINVAL;
		strcpy(o->ptr, val);
		return 0;
	}
	errno = 0;
	v = strtoll(val, &end, 10);
	if (errno || end == val || *end || v < o->lo || v > o->hi)
		return -EINVAL;
	store(o, v);
	return 0;
}

/* The JSON name of an option: its flag name with '_' for '-'. */
static const struct stub_opt *find_json(const char *key)
{
	for (size_t i = 0; i < stub_nopts; i++) {
		const char *a = stub_opt_table[i].name, *b = key;

		while (*a && (*a == *b || (*a == '-' && *b == '_'))) {
			a++;
			b++;
		}
		if (!*a && !*b)
			return &stub_opt_table[i];
	}
	return NULL;
}

int stub_config_apply(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *v;
	const char *key;
	int pass, rc = 0;

	if (!json_is_object(o)) {
		snprintf(err, errlen, "the body must be a JSON object of options");
		rc = -EINVAL;
		goto cleanup;
	}
	/* pass 0 checks everything, pass 1 applies: a bad key changes nothing */
	for (pass = 0; pass < 2; pass++) {
		json_object_foreach(o, key, v) {
			const struct stub_opt *op = find_json(key);
			int64_t n;

			if (!op || !op->runtime) {
				snprintf(err, errlen, "'%s' is not a runtime option", key);
				rc = -EINVAL;
				goto cleanup;
			}
			if (op->type == STUB_OPT_FLAG) {
				if (!json_is_boolean(v)) {
					snprintf(err, errlen, "'%s' must be a boolean", key);
					rc = -EINVAL;
					goto cleanup;
				}
				n = json_is_true(v);
			} else if (op->type == STUB_OPT_I64 && json_is_null(v)) {
				n = -1;
			} else {
				if (!json_is_integer(v) || json_integer_value(v) < op->lo ||
				    json_integer_value(v) > op->hi) {
					snprintf(err, errlen,
						 "'%s' must be an integer in [%lld, %lld]", key,
						 (long long)op->lo, (long long)op->hi);
					rc = -EINVAL;
					goto cleanup;
				}
				n = json_integer_value(v);
			}
			if (pass)
				store(op, n);
		}
	}
cleanup:
	json_decref(o);
	return rc;
}

void stub_config_json(struct stub_buf *b)
{
	const char *sep = "{";

	for (size_t i = 0; i < stub_nopts; i++) {
		const struct stub_opt *o = &stub_opt_table[i];
		long long v;

		if (!o->runtime)
			continue;
		stub_buf_str(b, sep);
		sep = ",";
		stub_buf_add(b, "\"", 1);
		for (const char *c = o->name; *c; c++)
			stub_buf_add(b, *c == '-' ? "_" : c, 1);
		stub_buf_add(b, "\":", 2);
		switch (o->type) {
		case STUB_OPT_FLAG:
			stub_buf_str(b, __atomic_load_n((bool *)o->ptr, __ATOMIC_RELAXED) ?
						"true" :
						"false");
			continue;
		case STUB_OPT_U32:
			v = __atomic_load_n((uint32_t *)o->ptr, __ATOMIC_RELAXED);
			if (o->ptr == &stub_opts.status && v == 0)
				v = 200;
			break;
		case STUB_OPT_U64:
			v = (long long)__atomic_load_n((uint64_t *)o->ptr, __ATOMIC_RELAXED);
			break;
		default:
			v = __atomic_load_n((int64_t *)o->ptr, __ATOMIC_RELAXED);
		}
		stub_buf_printf(b, "%lld", v);
	}
	stub_buf_str(b, "}");
}
