/* SPDX-License-Identifier: MIT */
/*
 * llm_body.h - the request side of the gateway's LLM routes (issue 9 item 4):
 * pure functions, no I/O, no maps, no globals. The proxy hands over a whole
 * request body; these say what it asks for, what its worst case costs, and
 * give back the body the provider must see. Used by gateway/llm_route.c
 * (the lead's glue) and by the unit tests and fuzz harness.
 *
 * The contract, in the order the glue calls it:
 *
 *   struct lt_llm_parse_opts o = { .provider, .shape, .path_model, ... };
 *   struct lt_llm_req r;
 *   int rc = lt_llm_parse(&o, body, len, &r);
 *	rc == 0             the request is understood; r is filled.
 *	rc == -EINVAL       malformed (bad JSON, a missing model, a field of
 *	                    the wrong type or out of range): answer 400 with
 *	                    r.err, one line that names the field (r.err_field).
 *	rc == -EOPNOTSUPP   well-formed, but it asks for something whose input
 *	                    the gateway cannot bound (a built-in web search, a
 *	                    previous_response_id, an audio or file part...):
 *	                    answer 400 with r.err as well. Nothing is reserved.
 *	rc == -ENOMEM       answer 500/503.
 *   Either way call lt_llm_req_release(&r) once (nothing is held today; the
 *   call stays so a later version may hold something).
 *
 *   struct lt_llm_resv v;
 *   lt_llm_reserve(&r, tier_default_output_tokens, &v);
 *	v.total_tokens is what admission reserves (saturating u64, never
 *	wraps); v.output_tokens is the output allowance the stream cut-off in
 *	llm_usage.h enforces.
 *
 *   char *nb; size_t nlen;
 *   rc = lt_llm_rewrite(&r, &v, body, len, &nb, &nlen);
 *	0 and nb == NULL: forward the original bytes unchanged.
 *	0 and nb != NULL: forward nb (nlen bytes, Content-Length changes),
 *	then free(nb). -ENOMEM otherwise.
 *	r.usage_injected tells the SSE side (llm_usage.h) that the usage chunk
 *	is the gateway's, not the client's, so it can be dropped.
 *
 * Cost: common chat bodies (model, scalars, messages of role/name and string
 * content) are read by an allocation-free scanner (llm_json.h), about 3 us
 * CPU for parse + reserve + rewrite of a 323-byte body here; everything else
 * goes through jansson (about 10-12 us), with identical results (the fuzz
 * harness compares the two).
 *
 * The rewrite is a byte splice: the original text is kept byte for byte
 * (key order, spacing, number spelling, escapes), and only the inserted
 * or replaced member differs. Nothing is re-serialised.
 *
 * Why the prompt bound is safe (issue 9 item 4): a byte-level tokenizer
 * (BPE over bytes: OpenAI's tiktoken, Qwen's; SentencePiece with byte
 * fallback: Gemini, Llama) never emits more tokens than its input has
 * bytes, because every token covers at least one byte. So the bound counts
 * the bytes of every string that reaches the model, decoded (an escape like
 * \u00e9 counts the 2 UTF-8 bytes it stands for, never fewer), plus the
 * JSON punctuation of structured parts (tool calls, tool definitions and
 * schemas reach the model as rendered JSON or a JSON-like text): see
 * lt_llm_bound_value in llm_body.c for the exact per-value costs. Then
 * fixed overheads for what the provider adds around them:
 *   LT_LLM_MSG_OVERHEAD per message (OpenAI's cookbook counts 3 tokens per
 *	message plus 1 per name; ChatML <|im_start|>role\n..<|im_end|>\n is 4
 *	special tokens around the role, whose bytes are counted anyway);
 *   LT_LLM_REQ_OVERHEAD per request (OpenAI primes the reply with 3
 *	tokens; BOS/EOS and a generation prompt are a handful more);
 *   LT_LLM_TOOLS_OVERHEAD once when tools are declared (Anthropic documents
 *	its tool-use system prompt at up to 530 tokens, Claude 3 Opus "auto",
 *	docs.anthropic.com/en/docs/tool-use-pricing-and-tokens);
 *   opts.image_tokens (default LT_LLM_IMAGE_TOKENS) per image: an image's
 *	cost depends on its pixels, not its bytes, and the providers resize
 *	to a maximum first. The largest per-image costs found documented:
 *	Anthropic ~1,600 tokens (long edge 1568 px, width*height/750,
 *	docs.anthropic.com/claude/docs/vision) and ~4,800 on Claude Opus 4.7
 *	(2576 px edge); OpenAI 85 + 170 per 512-px tile, at most 1,445 at
 *	high detail (gpt-4o), and a 10,000-patch budget for detail
 *	"original" (openai/codex PR 19865); Gemini 258 per tile. 16,384 is
 *	above all of them; a route may pass a smaller value per provider.
 * Parts the gateway cannot bound from the body are refused (-EOPNOTSUPP),
 * never guessed: audio, files and documents other than plain text, video,
 * Gemini cachedContent, Responses previous_response_id / conversation /
 * prompt templates / item references, built-in (server-side) tools such as
 * web search, code execution or MCP, whose results enter the prompt.
 *
 * Output allowance: the client's limit when set (max_tokens,
 * max_completion_tokens, max_output_tokens, generationConfig.maxOutputTokens;
 * if a chat body sets both max_tokens and max_completion_tokens, the larger),
 * else the tier default, times the number of completions the request makes
 * (n, best_of, candidateCount, and the number of prompts in a legacy
 * completions batch). Embeddings have no output.
 *
 * Limits: an output limit must be an integer 1..LT_LLM_MAX_OUTPUT_TOKENS.
 * JSON with duplicate keys is refused: the provider's parser might keep the
 * other copy (a max_tokens smuggled past the reservation).
 */
#ifndef LT_LLM_BODY_H
#define LT_LLM_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum lt_llm_provider {
	LT_LLM_P_OPENAI,
	LT_LLM_P_GEMINI, /* native, or its OpenAI-compatible endpoint (shape says which) */
	LT_LLM_P_QWEN, /* DashScope compatible mode: the OpenAI shapes */
	LT_LLM_P_ANTHROPIC,
};

enum lt_llm_shape {
	LT_LLM_CHAT, /* POST .../chat/completions (openai, qwen, gemini /v1beta/openai/) */
	LT_LLM_COMPLETIONS, /* POST /v1/completions (legacy) */
	LT_LLM_EMBEDDINGS, /* POST /v1/embeddings */
	LT_LLM_RESPONSES, /* POST /v1/responses */
	LT_LLM_GEMINI, /* POST /v1beta/models/M:generateContent | :streamGenerateContent */
	LT_LLM_ANTHROPIC, /* POST /v1/messages */
};

#define LT_LLM_MODEL_MAX 256 /* bytes with the NUL; longer model names are refused */
#define LT_LLM_ERR_MAX 192
#define LT_LLM_MAX_OUTPUT_TOKENS (1ULL << 24) /* tokens; the largest real limits are ~128k */
#define LT_LLM_MAX_CHOICES 128 /* n (OpenAI's own maximum) */
#define LT_LLM_MSG_OVERHEAD 16 /* tokens per message / content / input item */
#define LT_LLM_REQ_OVERHEAD 32 /* tokens per request */
#define LT_LLM_TOOLS_OVERHEAD 1024 /* tokens, once, when tools are declared */
#define LT_LLM_IMAGE_TOKENS 16384 /* tokens per image, default */

struct lt_llm_parse_opts {
	enum lt_llm_provider provider;
	enum lt_llm_shape shape;
	const char *path_model; /* LT_LLM_GEMINI: the model from the path (lt_llm_gemini_path) */
	bool path_stream; /* LT_LLM_GEMINI: :streamGenerateContent */
	uint64_t image_tokens; /* tokens per image; 0 = LT_LLM_IMAGE_TOKENS */
	bool use_jansson; /* tests: skip the fast path, read everything with jansson */
};

struct lt_llm_req {
	enum lt_llm_provider provider;
	enum lt_llm_shape shape;
	char model[LT_LLM_MODEL_MAX];
	bool stream;
	bool has_limit; /* the client set an output limit */
	uint64_t limit_tokens; /* that limit, per completion (tokens) */
	const char *limit_field; /* the field it was read from, or the one the rewrite sets */
	uint64_t completions; /* completions the request makes (>= 1; 0 for embeddings) */
	bool include_usage; /* the client set stream_options.include_usage = true */
	bool usage_injected; /* set by lt_llm_rewrite: the gateway asked for stream usage */
	uint64_t prompt_bound; /* tokens, the safe upper bound on the prompt */
	uint32_t messages; /* messages / contents / input items counted */
	uint32_t images; /* image parts counted at image_tokens each */
	const char *err_field; /* on error: the field at fault (static text) */
	char err[LT_LLM_ERR_MAX]; /* on error: one line for the 400 body */
	/* private: what lt_llm_rewrite needs to know of the body */
	bool parsed;
	unsigned char so_state; /* stream_options: 0 absent, 1 null, 2 an object */
	const char *gc_key; /* Gemini: the generationConfig spelling present, or NULL */
	bool gc_null; /* ... and it is null */
	bool gc_snake_limit; /* ... and it has max_output_tokens (null) */
	bool fast; /* read by the allocation-free path (tests) */
};

struct lt_llm_resv {
	uint64_t prompt_tokens; /* = req.prompt_bound */
	uint64_t output_per_completion; /* the limit the provider sees (tokens) */
	uint64_t output_tokens; /* allowance: per completion x completions (saturating) */
	uint64_t total_tokens; /* prompt + output (saturating): what admission reserves */
};

int lt_llm_parse(const struct lt_llm_parse_opts *o, const void *body, size_t len,
		 struct lt_llm_req *r);
void lt_llm_req_release(struct lt_llm_req *r);

/*
 * tier_default_output: the tier's output allowance in tokens when the client
 * set none; 0 is taken as 1 and larger than LT_LLM_MAX_OUTPUT_TOKENS as that.
 */
void lt_llm_reserve(const struct lt_llm_req *r, uint64_t tier_default_output,
		    struct lt_llm_resv *v);

int lt_llm_rewrite(struct lt_llm_req *r, const struct lt_llm_resv *v, const void *body, size_t len,
		   char **out, size_t *out_len);

/*
 * Gemini native paths: ".../models/MODEL:generateContent" or
 * ".../models/MODEL:streamGenerateContent[?alt=sse]" (any prefix before
 * "models/", query after '?'). Fills model (NUL-terminated) and *stream,
 * *sse (alt=sse asked: server-sent events; without it Gemini streams a JSON
 * array, which llm_usage.h does not parse). 0, or -EINVAL if it is not one.
 */
int lt_llm_gemini_path(const char *path, size_t len, char *model, size_t model_len, bool *stream,
		       bool *sse);

/* Saturating u64 arithmetic, shared with llm_usage.c. */
static inline uint64_t lt_llm_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline uint64_t lt_llm_sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

#endif /* LT_LLM_BODY_H */
