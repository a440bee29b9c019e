// SPDX-License-Identifier: MIT
/*
 * fuzz_llm_body.c - libFuzzer: an LLM request body through the gateway's
 * parser, reservation and rewrite (gateway/llm_body.c). The first byte picks
 * the provider and shape; the rest is the body. Beyond "no crash, no leak",
 * it checks that the allocation-free path reads chat bodies as jansson does,
 * and the rewrite's promises: the new body parses again, with the
 * output limit set to the allowance, stream usage asked for, and a prompt
 * bound no smaller than before.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "llm_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_llm_parse_opts o = { 0 };
	struct lt_llm_req r, r2;
	struct lt_llm_resv v;
	char *out = NULL;
	size_t len = 0;

	if (!size || size > 65536)
		return 0;
	o.shape = (enum lt_llm_shape)(data[0] % 6);
	o.provider = (enum lt_llm_provider)((data[0] / 6) % 4);
	o.path_model = "gemini-2.0-flash";
	o.path_stream = data[0] & 0x80;
	o.image_tokens = data[0] & 0x40 ? 1000 : 0;
	if (lt_llm_parse(&o, data + 1, size - 1, &r)) {
		if (!r.err[0])
			__builtin_trap(); /* every refusal says why */
		lt_llm_req_release(&r);
		return 0;
	}
	if (r.fast) {
		/* the allocation-free path must read what jansson reads */
		o.use_jansson = true;
		if (lt_llm_parse(&o, data + 1, size - 1, &r2) || strcmp(r.model, r2.model) ||
		    r.stream != r2.stream || r.has_limit != r2.has_limit ||
		    r.limit_tokens != r2.limit_tokens || strcmp(r.limit_field, r2.limit_field) ||
		    r.completions != r2.completions || r.include_usage != r2.include_usage ||
		    r.prompt_bound != r2.prompt_bound || r.messages != r2.messages ||
		    r.so_state != r2.so_state)
			__builtin_trap();
		lt_llm_req_release(&r2);
		o.use_jansson = false;
	}
	lt_llm_reserve(&r, 777, &v);
	if (v.total_tokens < v.prompt_tokens || v.total_tokens < v.output_tokens)
		__builtin_trap();
	if (lt_llm_rewrite(&r, &v, data + 1, size - 1, &out, &len) == 0 && out) {
		if (lt_llm_parse(&o, out, len, &r2))
			__builtin_trap(); /* the rewrite broke the body */
		if (r.shape != LT_LLM_EMBEDDINGS &&
		    (!r2.has_limit || r2.limit_tokens != (r.has_limit ? r.limit_tokens : 777)))
			__builtin_trap();
		if (r.usage_injected && !r2.include_usage)
			__builtin_trap();
		if (r2.prompt_bound < r.prompt_bound)
			__builtin_trap();
		lt_llm_req_release(&r2);
		free(out);
	}
	lt_llm_req_release(&r);
	return 0;
}
