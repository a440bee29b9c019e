// SPDX-License-Identifier: MIT
/*
 * fuzz_sse_usage.c - libFuzzer: a provider's SSE stream through the
 * gateway's incremental usage parser (gateway/llm_usage.c), and the same
 * bytes as a JSON answer. data[0] picks the shape and whether the usage chunk
 * is dropped and the stream cut; data[1] seeds where the stream is split into
 * pieces, and its top bit makes a Gemini stream one JSON array (no alt=sse). Beyond "no crash, no leak" it checks the parser's promises: split
 * anywhere, the results are those of one piece; with nothing to drop or cut,
 * the client gets the upstream bytes unchanged; a cut ends with its event;
 * the allocation-free scanner reads what jansson reads (streams without
 * duplicate keys); the reconcile arithmetic adds up.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "llm_usage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed_all(struct lt_llm_sse *s, const struct lt_llm_sse_opts *o, const uint8_t *p,
		     size_t n, uint32_t seed, struct lt_llm_buf *out)
{
	size_t at = 0, step;

	lt_llm_sse_init(s, o);
	while (at < n) {
		seed = seed * 1103515245u + 12345u;
		step = seed ? 1 + (seed >> 16) % 97 : n;
		if (step > n - at)
			step = n - at;
		if (lt_llm_sse_feed(s, p + at, step, out) < 0)
			__builtin_trap(); /* no allocation fails here */
		at += step;
	}
	lt_llm_sse_finish(s, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum lt_llm_shape shapes[] = { LT_LLM_CHAT, LT_LLM_COMPLETIONS,
						    LT_LLM_RESPONSES, LT_LLM_GEMINI,
						    LT_LLM_ANTHROPIC };
	struct lt_llm_sse_opts o = { 0 };
	struct lt_llm_buf a = { 0 }, b = { 0 }, cut = { 0 };
	struct lt_llm_sse s1, s2, s3;
	struct lt_llm_buf c = { 0 };
	struct lt_llm_settle st;
	struct lt_llm_usage u;
	const uint8_t *p;
	size_t n;

	if (size < 2 || size > 300000)
		return 0;
	o.shape = shapes[data[0] % 5];
	o.drop_usage_chunk = data[0] & 0x08;
	o.cut = (enum lt_llm_cut)((data[0] >> 4) % 3);
	/* Gemini without alt=sse: the stream is one JSON array (data[1]'s top bit) */
	o.json_array = o.shape == LT_LLM_GEMINI && (data[1] & 0x80);
	o.resv.prompt_tokens = 100;
	o.resv.output_tokens = (data[0] >> 6) * 7;
	o.resv.total_tokens = o.resv.prompt_tokens + o.resv.output_tokens;
	p = data + 2;
	n = size - 2;

	feed_all(&s1, &o, p, n, 0, &a); /* one piece */
	feed_all(&s2, &o, p, n, data[1] | 1u, &b); /* many */
	if (a.len != b.len || (a.len && memcmp(a.p, b.p, a.len)) || s1.out_bytes != s2.out_bytes ||
	    s1.out_deltas != s2.out_deltas || s1.usage.final != s2.usage.final ||
	    s1.usage.input_tokens != s2.usage.input_tokens ||
	    s1.usage.output_tokens != s2.usage.output_tokens || s1.cut != s2.cut ||
	    s1.done != s2.done)
		__builtin_trap(); /* the split changed something */
	o.use_jansson = true;
	feed_all(&s3, &o, p, n, data[1] | 1u, &c); /* the reference */
	o.use_jansson = false;
	if (!s3.ref_dups &&
	    (a.len != c.len || (a.len && memcmp(a.p, c.p, a.len)) || s1.out_bytes != s3.out_bytes ||
	     s1.out_deltas != s3.out_deltas || s1.usage.final != s3.usage.final ||
	     s1.usage.has_input != s3.usage.has_input ||
	     s1.usage.input_tokens != s3.usage.input_tokens ||
	     s1.usage.output_tokens != s3.usage.output_tokens || s1.cut != s3.cut ||
	     s1.done != s3.done || s1.upstream_error != s3.upstream_error || s1.seq != s3.seq))
		__builtin_trap(); /* the scanner and jansson disagree */
	lt_llm_sse_release(&s3);
	free(c.p);
	if (!o.drop_usage_chunk && o.cut == LT_LLM_CUT_OFF &&
	    (a.len != n || (n && memcmp(a.p, p, n))))
		__builtin_trap(); /* a pure observer changed the bytes */
	if (s1.cut) {
		/* Responses number their events: the cut's number was the one at the cut */
		s1.seq = -2;
		lt_llm_cut_event(&s1, &cut);
		if (o.shape != LT_LLM_RESPONSES &&
		    (a.len < cut.len || memcmp(a.p + a.len - cut.len, cut.p, cut.len)))
			__builtin_trap();
		if (!memmem(a.p, a.len, "output_limit_reached", 20) &&
		    !memmem(a.p, a.len, "RESOURCE_EXHAUSTED", 18) &&
		    !memmem(a.p, a.len, "rate_limit_error", 16))
			__builtin_trap();
	}
	lt_llm_reconcile(&o.resv, &s1.usage, s1.out_bytes, &st);
	if ((st.refund && st.excess) ||
	    (st.used <= o.resv.total_tokens && st.used + st.refund != o.resv.total_tokens) ||
	    (st.used > o.resv.total_tokens && o.resv.total_tokens + st.excess != st.used))
		__builtin_trap();
	lt_llm_sse_release(&s1);
	lt_llm_sse_release(&s2);
	free(a.p);
	free(b.p);
	free(cut.p);
	lt_llm_usage_json(o.shape, p, n, &u);
	return 0;
}
