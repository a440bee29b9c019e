// SPDX-License-Identifier: MIT
/*
 * llm_body.c - parse, bound, reserve and rewrite an LLM request body (the
 * contract is in llm_body.h). Wire formats relied on:
 *   OpenAI chat/completions, completions, embeddings, responses: the API
 *     reference (platform.openai.com/docs/api-reference; stream_options:
 *     "If set, an additional chunk will be streamed before the data: [DONE]
 *     message ... the choices field will always be an empty array").
 *   Qwen: DashScope compatible mode is the OpenAI chat shape at
 *     https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions,
 *     max_tokens and stream_options.include_usage as in OpenAI.
 *   Gemini native: GenerateContentRequest {contents, systemInstruction,
 *     tools, toolConfig, generationConfig{maxOutputTokens, candidateCount},
 *     cachedContent} (ai.google.dev/api/generate-content); proto3 JSON, so
 *     each field is also accepted in snake_case, and both spellings are
 *     read here. Its OpenAI endpoint (generativelanguage.googleapis.com/
 *     v1beta/openai/chat/completions, ai.google.dev/api/compatibility) is the
 *     chat shape.
 *   Anthropic: /v1/messages {model, max_tokens, system, messages, tools,
 *     stream} (docs.anthropic.com/en/api/messages); tool-use system prompt
 *     sizes from docs.anthropic.com/en/docs/tool-use-pricing-and-tokens.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm_body.h"
#include "llm_json.h"

static int fail(struct lt_llm_req *r, int rc, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct lt_llm_req *r, int rc, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0]) /* keep the first error */
		return rc;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->err_field = field;
	return rc;
}

/* Both proto3 JSON spellings of a Gemini field; both at once is ambiguous. */
static int get2(struct lt_llm_req *r, json_t *obj, const char *camel, const char *snake,
		json_t **out, const char **name)
{
	json_t *a = json_object_get(obj, camel), *b = json_object_get(obj, snake);

	if (a && b)
		return fail(r, -EINVAL, camel, "%s and %s are the same field; send one", camel,
			    snake);
	*out = a ? a : b;
	if (name)
		*name = a ? camel : b ? snake : camel;
	return 0;
}

/* --- the prompt bound --------------------------------------------------- */

struct walk {
	struct lt_llm_req *r;
	uint64_t image_tokens;
	int rc;
};

enum media { M_NONE, M_IMAGE, M_REFUSE };

static bool str_eq(json_t *v, const char *s)
{
	return json_is_string(v) && !strcmp(json_string_value(v), s);
}

static bool is_image_mime(json_t *blob)
{
	json_t *m = json_object_get(blob, "mimeType");

	if (!m)
		m = json_object_get(blob, "mime_type");
	return json_is_string(m) && !strncmp(json_string_value(m), "image/", 6);
}

/*
 * A content part whose tokens are not its bytes. Images are bounded per
 * image (llm_body.h); audio, video, files, references and non-text
 * documents are refused: their cost is not in the body.
 */
static enum media media_kind(struct walk *w, json_t *o)
{
	static const char *const refused[] = {
		"input_audio", "audio",	    "file",	      "input_file",
		"video",       "video_url", "item_reference", "container_upload",
	};
	json_t *t = json_object_get(o, "type"), *blob;
	const char *ts;
	unsigned i;

	if (json_is_string(t)) {
		ts = json_string_value(t);
		if (!strcmp(ts, "image_url") || !strcmp(ts, "input_image") || !strcmp(ts, "image"))
			return M_IMAGE;
		if (!strcmp(ts, "document")) {
			json_t *src = json_object_get(json_object_get(o, "source"), "type");

			/* plain-text and content-block documents are text; PDFs are pages of images */
			if (str_eq(src, "text") || str_eq(src, "content"))
				return M_NONE;
			fail(w->r, -EOPNOTSUPP, "document",
			     "a document part other than plain text cannot be bounded by the gateway");
			return M_REFUSE;
		}
		for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
			if (!strcmp(ts, refused[i])) {
				fail(w->r, -EOPNOTSUPP, "type",
				     "a \"%s\" part cannot be bounded by the gateway (only text and "
				     "images are admitted)",
				     ts);
				return M_REFUSE;
			}
		return M_NONE;
	}
	/* Gemini parts: {"inlineData": {"mimeType", "data"}} or {"fileData": {...}} */
	blob = json_object_get(o, "inlineData");
	if (!blob)
		blob = json_object_get(o, "inline_data");
	if (!blob)
		blob = json_object_get(o, "fileData");
	if (!blob)
		blob = json_object_get(o, "file_data");
	if (!json_is_object(blob))
		return M_NONE;
	if (is_image_mime(blob))
		return M_IMAGE;
	fail(w->r, -EOPNOTSUPP, "parts",
	     "an inline or file part that is not an image cannot be bounded by the gateway");
	return M_REFUSE;
}

/*
 * Upper bound, in tokens, of the text a JSON value becomes in the prompt:
 * a string its decoded bytes plus 2 (quotes, or SentencePiece's dummy prefix);
 * a number its printed length; true/false/null 5; an object or array 2 for its
 * brackets, plus per member the key's bytes and 4 (quotes, colon, space) and
 * 2 (comma, space) per element. Every byte that can reach the tokenizer is
 * counted once, and each token covers at least one byte. media: the value is
 * message content, where image parts cost w->image_tokens instead of their
 * bytes (a base64 image's bytes are not its tokens).
 */
static uint64_t lt_llm_bound_value(struct walk *w, json_t *v, bool media)
{
	uint64_t sum;
	const char *k;
	json_t *e;
	size_t i;
	char num[32];

	if (w->rc)
		return 0;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return (uint64_t)json_string_length(v) + 2;
	case JSON_INTEGER:
		return (uint64_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
					  json_integer_value(v));
	case JSON_REAL:
		return 24; /* %.17g of a double is at most 24 characters */
	case JSON_ARRAY:
		sum = 2;
		json_array_foreach(v, i, e)
			sum = lt_llm_sat_add(sum, lt_llm_bound_value(w, e, media) + 2);
		return sum;
	case JSON_OBJECT:
		if (media) {
			switch (media_kind(w, v)) {
			case M_IMAGE:
				w->r->images++;
				return w->image_tokens;
			case M_REFUSE:
				w->rc = -EOPNOTSUPP;
				return 0;
			default:
				break;
			}
		}
		sum = 2;
		json_object_foreach(v, k, e) {
			sum = lt_llm_sat_add(sum, strlen(k) + 4 + 2);
			sum = lt_llm_sat_add(sum, lt_llm_bound_value(w, e, media));
		}
		return sum;
	default:
		return 5;
	}
}

/* A list of messages / contents / input items: each one's bound plus its overhead. */
static int bound_items(struct walk *w, json_t *arr, const char *field)
{
	struct lt_llm_req *r = w->r;
	json_t *e;
	size_t i;

	if (!json_is_array(arr))
		return fail(r, -EINVAL, field, "%s must be an array", field);
	json_array_foreach(arr, i, e) {
		if (json_is_object(e) && json_object_get(e, "audio") &&
		    !json_is_null(json_object_get(e, "audio")))
			/* chat: an assistant message that points at an earlier audio answer */
			return fail(r, -EOPNOTSUPP, field,
				    "%s[%zu].audio refers to audio the gateway cannot bound", field,
				    i);
		r->messages++;
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, LT_LLM_MSG_OVERHEAD);
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, lt_llm_bound_value(w, e, true));
		if (w->rc)
			return w->rc;
	}
	return 0;
}

/* One counted field, optional: media-free (definitions, schemas, choices). */
static int bound_field(struct walk *w, json_t *root, const char *key)
{
	json_t *v = json_object_get(root, key);

	if (v && !json_is_null(v))
		w->r->prompt_bound =
			lt_llm_sat_add(w->r->prompt_bound, lt_llm_bound_value(w, v, false));
	return w->rc;
}

/*
 * tools: an array of definitions the model reads (counted as JSON, plus the
 * tool-use system prompt once). Only client-executed custom functions are
 * admitted: a built-in tool (web search, file search, code execution, MCP,
 * Gemini grounding...) runs at the provider and feeds its results back as
 * input tokens that nothing in the body bounds.
 */
static int bound_tools(struct walk *w, json_t *root, const char *key)
{
	struct lt_llm_req *r = w->r;
	json_t *tools = json_object_get(root, key), *t, *ty;
	const char *k;
	json_t *x;
	size_t i;

	if (!tools || json_is_null(tools))
		return 0;
	if (!json_is_array(tools))
		return fail(r, -EINVAL, key, "%s must be an array", key);
	json_array_foreach(tools, i, t) {
		if (!json_is_object(t))
			return fail(r, -EINVAL, key, "%s[%zu] must be an object", key, i);
		ty = json_object_get(t, "type");
		switch (r->shape) {
		case LT_LLM_GEMINI:
			json_object_foreach(t, k, x) {
				if (strcmp(k, "functionDeclarations") &&
				    strcmp(k, "function_declarations"))
					return fail(
						r, -EOPNOTSUPP, key,
						"%s[%zu].%s: a built-in tool adds input the "
						"gateway cannot bound; only functionDeclarations "
						"are admitted",
						key, i, k);
			}
			break;
		case LT_LLM_ANTHROPIC:
			if (ty && !str_eq(ty, "custom"))
				return fail(r, -EOPNOTSUPP, key,
					    "%s[%zu].type %s: only custom tools are admitted (a "
					    "built-in tool adds input the gateway cannot bound)",
					    key, i,
					    json_is_string(ty) ? json_string_value(ty) : "?");
			break;
		default:
			if (key[0] == 'f') /* legacy "functions": bare definitions */
				break;
			if (!str_eq(ty, "function") && !str_eq(ty, "custom"))
				return fail(r, -EOPNOTSUPP, key,
					    "%s[%zu].type %s: only function and custom tools are "
					    "admitted (a built-in tool adds input the gateway "
					    "cannot bound)",
					    key, i,
					    json_is_string(ty) ? json_string_value(ty) : "?");
		}
	}
	if (json_array_size(tools))
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, LT_LLM_TOOLS_OVERHEAD);
	return bound_field(w, root, key);
}

/* Fields that make the provider add input the body does not contain. */
static int refuse_present(struct lt_llm_req *r, json_t *root, const char *const *keys,
			  const char *why)
{
	json_t *v;

	for (; *keys; keys++) {
		v = json_object_get(root, *keys);
		if (v && !json_is_null(v) && !json_is_false(v) &&
		    !(json_is_array(v) && !json_array_size(v)))
			return fail(r, -EOPNOTSUPP, *keys, "%s: %s", *keys, why);
	}
	return 0;
}

/* --- scalar fields ------------------------------------------------------ */

/* An output limit: absent or null = not set; else an integer 1..MAX. */
static int get_limit(struct lt_llm_req *r, json_t *obj, const char *key, const char *field,
		     bool *set, uint64_t *val)
{
	json_t *v = json_object_get(obj, key);
	json_int_t x;

	*set = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return fail(r, -EINVAL, field, "%s must be an integer", field);
	x = json_integer_value(v);
	if (x <= 0)
		return fail(r, -EINVAL, field, "%s must be at least 1", field);
	if ((uint64_t)x > LT_LLM_MAX_OUTPUT_TOKENS)
		return fail(r, -EINVAL, field, "%s must be at most %llu", field,
			    LT_LLM_MAX_OUTPUT_TOKENS);
	*set = true;
	*val = (uint64_t)x;
	return 0;
}

/* A count such as n: absent or null = 1; else an integer 1..LT_LLM_MAX_CHOICES. */
static int get_count(struct lt_llm_req *r, json_t *obj, const char *key, const char *field,
		     uint64_t *val)
{
	json_t *v = json_object_get(obj, key);
	json_int_t x;

	*val = 1;
	if (!v || json_is_null(v))
		return 0;
	x = json_is_integer(v) ? json_integer_value(v) : 0;
	if (x < 1 || x > LT_LLM_MAX_CHOICES)
		return fail(r, -EINVAL, field, "%s must be an integer from 1 to %d", field,
			    LT_LLM_MAX_CHOICES);
	*val = (uint64_t)x;
	return 0;
}

static int get_bool(struct lt_llm_req *r, json_t *obj, const char *key, const char *field,
		    bool *val)
{
	json_t *v = json_object_get(obj, key);

	*val = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(r, -EINVAL, field, "%s must be a boolean (true or false)", field);
	*val = json_is_true(v);
	return 0;
}

static int set_model(struct lt_llm_req *r, const char *m, size_t len)
{
	if (!len)
		return fail(r, -EINVAL, "model", "model must not be empty");
	if (len >= sizeof(r->model))
		return fail(r, -EINVAL, "model", "model is longer than %zu bytes",
			    sizeof(r->model) - 1);
	if (memchr(m, 0, len))
		return fail(r, -EINVAL, "model", "model must not contain NUL");
	memcpy(r->model, m, len);
	r->model[len] = 0;
	return 0;
}

/* --- per shape ---------------------------------------------------------- */

static int parse_chat(struct walk *w, json_t *root)
{
	static const char *const unbounded[] = { "web_search_options", "enable_search", NULL };
	struct lt_llm_req *r = w->r;
	bool a, b;
	uint64_t x = 0, y = 0;
	json_t *so;
	int rc;

	if ((rc = refuse_present(r, root, unbounded,
				 "a search adds input the gateway cannot bound")))
		return rc;
	if ((rc = get_limit(r, root, "max_tokens", "max_tokens", &a, &x)) ||
	    (rc = get_limit(r, root, "max_completion_tokens", "max_completion_tokens", &b, &y)))
		return rc;
	r->has_limit = a || b;
	r->limit_tokens = x > y ? x : y; /* both set: the provider may honour either */
	if (b)
		r->limit_field = "max_completion_tokens";
	else if (a || json_object_get(root, "max_tokens"))
		r->limit_field = "max_tokens";
	else if (json_object_get(root, "max_completion_tokens"))
		r->limit_field = "max_completion_tokens";
	else /* OpenAI deprecated max_tokens (o-series refuse it); Gemini and Qwen document it */
		r->limit_field =
			r->provider == LT_LLM_P_OPENAI ? "max_completion_tokens" : "max_tokens";
	if ((rc = get_count(r, root, "n", "n", &r->completions)))
		return rc;
	so = json_object_get(root, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return fail(r, -EINVAL, "stream_options",
				    "stream_options must be an object");
		if ((rc = get_bool(r, so, "include_usage", "stream_options.include_usage",
				   &r->include_usage)))
			return rc;
	}
	if (!json_object_get(root, "messages"))
		return fail(r, -EINVAL, "messages", "messages is required");
	if ((rc = bound_items(w, json_object_get(root, "messages"), "messages")) ||
	    (rc = bound_tools(w, root, "tools")) || (rc = bound_tools(w, root, "functions")) ||
	    (rc = bound_field(w, root, "tool_choice")) ||
	    (rc = bound_field(w, root, "function_call")) ||
	    (rc = bound_field(w, root, "response_format")) ||
	    (rc = bound_field(w, root, "prediction")))
		return rc;
	return 0;
}

/* Legacy completions: prompt is a string, or a batch (strings / token arrays). */
static int parse_completions(struct walk *w, json_t *root)
{
	struct lt_llm_req *r = w->r;
	json_t *p = json_object_get(root, "prompt"), *so, *e;
	uint64_t n, best, prompts = 1;
	size_t i, strs = 0, ints = 0, arrs = 0;
	int rc;

	if ((rc = get_limit(r, root, "max_tokens", "max_tokens", &r->has_limit, &r->limit_tokens)))
		return rc;
	r->limit_field = "max_tokens";
	if ((rc = get_count(r, root, "n", "n", &n)) ||
	    (rc = get_count(r, root, "best_of", "best_of", &best)))
		return rc;
	so = json_object_get(root, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return fail(r, -EINVAL, "stream_options",
				    "stream_options must be an object");
		if ((rc = get_bool(r, so, "include_usage", "stream_options.include_usage",
				   &r->include_usage)))
			return rc;
	}
	if (!p || json_is_null(p))
		return fail(r, -EINVAL, "prompt", "prompt is required");
	if (json_is_array(p)) {
		json_array_foreach(p, i, e) {
			strs += json_is_string(e);
			ints += json_is_integer(e);
			arrs += json_is_array(e);
		}
		if (!json_array_size(p) || (strs + ints + arrs) != json_array_size(p) ||
		    (!!strs + !!ints + !!arrs) != 1)
			return fail(r, -EINVAL, "prompt",
				    "prompt must be a string, or a non-empty array of strings, "
				    "of integers or of integer arrays");
		if (!ints) /* a batch: one completion set per prompt */
			prompts = json_array_size(p);
		r->messages = (uint32_t)prompts;
	} else if (!json_is_string(p)) {
		return fail(r, -EINVAL, "prompt", "prompt must be a string or an array");
	} else {
		r->messages = 1;
	}
	/* best_of completions are generated (and billed) server-side, n returned */
	r->completions = lt_llm_sat_mul(n > best ? n : best, prompts);
	r->prompt_bound =
		lt_llm_sat_add(r->prompt_bound, lt_llm_sat_mul(prompts, LT_LLM_MSG_OVERHEAD));
	if ((rc = bound_field(w, root, "prompt")) || (rc = bound_field(w, root, "suffix")))
		return rc;
	return 0;
}

static int parse_embeddings(struct walk *w, json_t *root)
{
	struct lt_llm_req *r = w->r;
	json_t *in = json_object_get(root, "input");

	r->completions = 0;
	if (!in || json_is_null(in))
		return fail(r, -EINVAL, "input", "input is required");
	if (!json_is_string(in) && !json_is_array(in))
		return fail(r, -EINVAL, "input", "input must be a string or an array");
	r->messages = json_is_array(in) ? (uint32_t)json_array_size(in) : 1;
	r->prompt_bound =
		lt_llm_sat_add(r->prompt_bound, lt_llm_sat_mul(r->messages, LT_LLM_MSG_OVERHEAD));
	return bound_field(w, root, "input");
}

static int parse_responses(struct walk *w, json_t *root)
{
	static const char *const unbounded[] = { "previous_response_id", "conversation", "prompt",
						 NULL };
	struct lt_llm_req *r = w->r;
	json_t *in = json_object_get(root, "input");
	int rc;

	if ((rc = refuse_present(r, root, unbounded,
				 "the provider adds stored input the gateway cannot bound")))
		return rc;
	if ((rc = get_limit(r, root, "max_output_tokens", "max_output_tokens", &r->has_limit,
			    &r->limit_tokens)))
		return rc;
	r->limit_field = "max_output_tokens";
	if (!in || json_is_null(in))
		return fail(r, -EINVAL, "input", "input is required");
	if (json_is_string(in)) {
		r->messages = 1;
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, LT_LLM_MSG_OVERHEAD);
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, lt_llm_bound_value(w, in, false));
	} else if ((rc = bound_items(w, in, "input"))) {
		return rc;
	}
	if ((rc = bound_field(w, root, "instructions")) || (rc = bound_tools(w, root, "tools")) ||
	    (rc = bound_field(w, root, "tool_choice")) || (rc = bound_field(w, root, "text")))
		return rc;
	return 0;
}

static int parse_anthropic(struct walk *w, json_t *root)
{
	static const char *const unbounded[] = { "mcp_servers", "container", NULL };
	struct lt_llm_req *r = w->r;
	json_t *sys = json_object_get(root, "system");
	int rc;

	if ((rc = refuse_present(r, root, unbounded,
				 "server-side tools add input the gateway cannot bound")))
		return rc;
	if ((rc = get_limit(r, root, "max_tokens", "max_tokens", &r->has_limit, &r->limit_tokens)))
		return rc;
	r->limit_field = "max_tokens";
	if (!json_object_get(root, "messages"))
		return fail(r, -EINVAL, "messages", "messages is required");
	if ((rc = bound_items(w, json_object_get(root, "messages"), "messages")))
		return rc;
	if (sys && !json_is_null(sys)) {
		if (!json_is_string(sys) && !json_is_array(sys))
			return fail(r, -EINVAL, "system", "system must be a string or an array");
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, LT_LLM_MSG_OVERHEAD);
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, lt_llm_bound_value(w, sys, true));
		if (w->rc)
			return w->rc;
	}
	if ((rc = bound_tools(w, root, "tools")) || (rc = bound_field(w, root, "tool_choice")))
		return rc;
	return 0;
}

static int parse_gemini(struct walk *w, json_t *root)
{
	struct lt_llm_req *r = w->r;
	json_t *gc, *v, *sys;
	const char *gcname;
	int rc;

	if ((rc = get2(r, root, "cachedContent", "cached_content", &v, NULL)))
		return rc;
	if (v && !json_is_null(v))
		return fail(r, -EOPNOTSUPP, "cachedContent",
			    "cachedContent: cached input is not in the body, so the gateway "
			    "cannot bound it");
	if ((rc = get2(r, root, "generationConfig", "generation_config", &gc, &gcname)))
		return rc;
	r->limit_field = "generationConfig.maxOutputTokens";
	r->completions = 1;
	if (gc && !json_is_null(gc)) {
		if (!json_is_object(gc))
			return fail(r, -EINVAL, "generationConfig",
				    "generationConfig must be an object");
		if ((rc = get2(r, gc, "maxOutputTokens", "max_output_tokens", &v, NULL)) ||
		    (rc = get_limit(r, gc,
				    json_object_get(gc, "maxOutputTokens") ? "maxOutputTokens" :
									     "max_output_tokens",
				    "generationConfig.maxOutputTokens", &r->has_limit,
				    &r->limit_tokens)))
			return rc;
		if ((rc = get2(r, gc, "candidateCount", "candidate_count", &v, NULL)) ||
		    (rc = get_count(r, gc,
				    json_object_get(gc, "candidateCount") ? "candidateCount" :
									    "candidate_count",
				    "generationConfig.candidateCount", &r->completions)))
			return rc;
		/* responseSchema and friends are injected into the prompt: count it all */
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, lt_llm_bound_value(w, gc, false));
	}
	v = json_object_get(root, "contents");
	if (!v)
		return fail(r, -EINVAL, "contents", "contents is required");
	if ((rc = bound_items(w, v, "contents")))
		return rc;
	if ((rc = get2(r, root, "systemInstruction", "system_instruction", &sys, NULL)))
		return rc;
	if (sys && !json_is_null(sys)) {
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, LT_LLM_MSG_OVERHEAD);
		r->prompt_bound = lt_llm_sat_add(r->prompt_bound, lt_llm_bound_value(w, sys, true));
		if (w->rc)
			return w->rc;
	}
	if ((rc = get2(r, root, "toolConfig", "tool_config", &v, NULL)))
		return rc;
	if ((rc = bound_tools(w, root, "tools")) || (rc = bound_field(w, root, "toolConfig")) ||
	    (rc = bound_field(w, root, "tool_config")))
		return rc;
	return 0;
}

/* What the rewrite needs later, so the tree can go now. */
static void rewrite_facts(struct lt_llm_req *r, json_t *root)
{
	json_t *so = json_object_get(root, "stream_options"), *gc;

	r->so_state = !so ? 0 : json_is_null(so) ? 1 : 2;
	r->gc_key = json_object_get(root, "generationConfig")  ? "generationConfig" :
		    json_object_get(root, "generation_config") ? "generation_config" :
								 NULL;
	gc = r->gc_key ? json_object_get(root, r->gc_key) : NULL;
	r->gc_null = json_is_null(gc);
	r->gc_snake_limit = json_object_get(gc, "max_output_tokens") != NULL;
}

static int parse_tree(const struct lt_llm_parse_opts *o, json_t *root, struct lt_llm_req *r);

static int parse_jansson(const struct lt_llm_parse_opts *o, const void *body, size_t len,
			 struct lt_llm_req *r)
{
	json_error_t jerr;
	json_t *root;
	int rc;
	/*
	 * Duplicate keys are refused: jansson would keep one copy, the provider
	 * may keep the other. NUL in strings is refused (no JSON_ALLOW_NUL), and
	 * jansson refuses invalid UTF-8 and trailing bytes.
	 */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (strstr(jerr.text, "duplicate"))
			return fail(r, -EINVAL, "body", "request body: %s", jerr.text);
		return fail(r, -EINVAL, "body", "request body is not valid JSON: %s (at byte %d)",
			    jerr.text, jerr.position);
	}
	rc = parse_tree(o, root, r);
	if (!rc)
		rewrite_facts(r, root);
	json_decref(root);
	return rc;
}

static int parse_tree(const struct lt_llm_parse_opts *o, json_t *root, struct lt_llm_req *r)
{
	struct walk w = { .r = r };
	json_t *m;
	int rc;

	w.image_tokens = o->image_tokens ? o->image_tokens : LT_LLM_IMAGE_TOKENS;
	if (!json_is_object(root))
		return fail(r, -EINVAL, "body", "request body must be a JSON object");

	if (o->shape == LT_LLM_GEMINI) {
		if (!o->path_model)
			return fail(r, -EINVAL, "model", "model is required (in the path)");
		if ((rc = set_model(r, o->path_model, strlen(o->path_model))))
			return rc;
		r->stream = o->path_stream;
	} else {
		m = json_object_get(root, "model");
		if (!m || json_is_null(m))
			return fail(r, -EINVAL, "model", "model is required");
		if (!json_is_string(m))
			return fail(r, -EINVAL, "model", "model must be a string");
		if ((rc = set_model(r, json_string_value(m), json_string_length(m))))
			return rc;
		if (o->shape != LT_LLM_EMBEDDINGS &&
		    (rc = get_bool(r, root, "stream", "stream", &r->stream)))
			return rc;
	}
	r->prompt_bound = LT_LLM_REQ_OVERHEAD;
	switch (o->shape) {
	case LT_LLM_CHAT:
		rc = parse_chat(&w, root);
		break;
	case LT_LLM_COMPLETIONS:
		rc = parse_completions(&w, root);
		break;
	case LT_LLM_EMBEDDINGS:
		rc = parse_embeddings(&w, root);
		break;
	case LT_LLM_RESPONSES:
		rc = parse_responses(&w, root);
		break;
	case LT_LLM_ANTHROPIC:
		rc = parse_anthropic(&w, root);
		break;
	case LT_LLM_GEMINI:
		rc = parse_gemini(&w, root);
		break;
	default:
		rc = fail(r, -EINVAL, "body", "unknown request shape");
	}
	if (!rc && w.rc)
		rc = w.rc;
	if (!rc && !r->stream)
		r->include_usage = false;
	return rc;
}

static int parse_fast(const struct lt_llm_parse_opts *o, const char *body, size_t len,
		      struct lt_llm_req *r);

int lt_llm_parse(const struct lt_llm_parse_opts *o, const void *body, size_t len,
		 struct lt_llm_req *r)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->provider = o->provider;
	r->shape = o->shape;
	r->completions = 1;
	/*
	 * A raw NUL is never JSON (in a string it must be \u0000). jansson read
	 * past one between two members while the rewrite's key scan stopped at
	 * it: "max_tokens":null after a NUL was not replaced, and the rewritten
	 * body held the key twice (fuzz_llm_body).
	 */
	if (memchr(body, 0, len))
		return fail(r, -EINVAL, "body", "request body is not valid JSON: a NUL byte");
	if (!o->use_jansson && o->shape == LT_LLM_CHAT && !parse_fast(o, body, len, r)) {
		r->fast = true;
		r->parsed = true;
		return 0;
	}
	memset(r, 0, sizeof(*r));
	r->provider = o->provider;
	r->shape = o->shape;
	r->completions = 1;
	rc = parse_jansson(o, body, len, r);
	r->parsed = !rc;
	return rc;
}

void lt_llm_req_release(struct lt_llm_req *r)
{
	(void)r;
}

void lt_llm_reserve(const struct lt_llm_req *r, uint64_t tier_default_output, struct lt_llm_resv *v)
{
	uint64_t per = r->has_limit ? r->limit_tokens : tier_default_output;

	if (!per)
		per = 1;
	if (per > LT_LLM_MAX_OUTPUT_TOKENS)
		per = LT_LLM_MAX_OUTPUT_TOKENS;
	v->prompt_tokens = r->prompt_bound;
	v->output_per_completion = r->shape == LT_LLM_EMBEDDINGS ? 0 : per;
	v->output_tokens = lt_llm_sat_mul(v->output_per_completion, r->completions);
	v->total_tokens = lt_llm_sat_add(v->prompt_tokens, v->output_tokens);
}

/* --- the rewrite: a byte splice over text jansson has already validated ---- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* i at the opening quote; returns the index after the closing one. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n;
}

static size_t skip_value(const char *s, size_t n, size_t i)
{
	unsigned depth = 0;

	if (i < n && s[i] == '"')
		return skip_string(s, n, i);
	if (i < n && s[i] != '{' && s[i] != '[') {
		while (i < n && !strchr(",}] \t\r\n", s[i]))
			i++;
		return i;
	}
	while (i < n) {
		if (s[i] == '"') {
			i = skip_string(s, n, i);
			continue;
		}
		if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
		i++;
	}
	return n;
}

/* The key text s[a, b) (with its quotes) equals key, escapes decoded. */
static bool key_eq(const char *s, size_t a, size_t b, const char *key)
{
	json_t *k;
	bool eq;

	if (b - a < 2)
		return false;
	if (!memchr(s + a, '\\', b - a))
		return b - a - 2 == strlen(key) && !memcmp(s + a + 1, key, b - a - 2);
	k = json_loadb(s + a, b - a, JSON_DECODE_ANY, NULL);
	eq = json_is_string(k) && !strcmp(json_string_value(k), key);
	json_decref(k);
	return eq;
}

/*
 * In the object that opens at s[obj] ('{'), the value of member key:
 * [*vs, *ve). 1 if found, 0 if not.
 */
static int find_member(const char *s, size_t n, size_t obj, const char *key, size_t *vs, size_t *ve)
{
	size_t i = obj + 1, ks, ke;

	for (;;) {
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != '"')
			return 0;
		ks = i;
		ke = i = skip_string(s, n, i);
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != ':')
			return 0;
		i = skip_ws(s, n, i + 1);
		*vs = i;
		*ve = i = skip_value(s, n, i);
		if (key_eq(s, ks, ke, key))
			return 1;
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != ',')
			return 0;
		i++;
	}
}

struct edit {
	size_t at, del;
	unsigned seq; /* insertions at one offset keep their order */
	char ins[96];
};

struct edits {
	struct edit e[4];
	unsigned n;
};

static void add_edit(struct edits *E, size_t at, size_t del, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_edit(struct edits *E, size_t at, size_t del, const char *fmt, ...)
{
	struct edit *e = &E->e[E->n++];
	va_list ap;

	e->at = at;
	e->del = del;
	e->seq = E->n - 1;
	va_start(ap, fmt);
	vsnprintf(e->ins, sizeof(e->ins), fmt, ap);
	va_end(ap);
}

/*
 * Sets member key of the object at s[obj] to the JSON text val: replaces its
 * value when present (null: the client did not set it), else inserts it as
 * the first member.
 */
static void set_member(struct edits *E, const char *s, size_t n, size_t obj, const char *key,
		       const char *val)
{
	size_t vs, ve, first = skip_ws(s, n, obj + 1);
	bool empty = first < n && s[first] == '}', after = false;
	unsigned i;

	if (find_member(s, n, obj, key, &vs, &ve)) {
		add_edit(E, vs, ve - vs, "%s", val);
		return;
	}
	for (i = 0; i < E->n; i++)
		after |= E->e[i].at == obj + 1 && !E->e[i].del;
	/* {} gets "k":v; a second insertion there follows the first with a comma */
	add_edit(E, obj + 1, 0, "%s\"%s\":%s%s", empty && after ? "," : "", key, val,
		 empty ? "" : ",");
}

static int cmp_edit(const void *a, const void *b)
{
	const struct edit *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int lt_llm_rewrite(struct lt_llm_req *r, const struct lt_llm_resv *v, const void *body, size_t len,
		   char **out, size_t *out_len)
{
	const char *s = body;
	struct edits E = { .n = 0 };
	size_t top, vs, ve, grow = 0, pos = 0, o = 0;
	char num[32], *buf;
	unsigned i;

	*out = NULL;
	*out_len = 0;
	r->usage_injected = false;
	if (!r->parsed)
		return -EINVAL;
	top = skip_ws(s, len, 0);
	if (top >= len || s[top] != '{')
		return -EINVAL;
	snprintf(num, sizeof(num), "%" PRIu64, v->output_per_completion);

	if (!r->has_limit && r->shape != LT_LLM_EMBEDDINGS) {
		if (r->shape == LT_LLM_GEMINI) {
			char val[64];

			snprintf(val, sizeof(val), "{\"maxOutputTokens\":%s}", num);
			if (!r->gc_key)
				set_member(&E, s, len, top, "generationConfig", val);
			else if (r->gc_null)
				set_member(&E, s, len, top, r->gc_key, val);
			else if (find_member(s, len, top, r->gc_key, &vs, &ve))
				set_member(&E, s, len, vs,
					   r->gc_snake_limit ? "max_output_tokens" :
							       "maxOutputTokens",
					   num);
		} else {
			set_member(&E, s, len, top, r->limit_field, num);
		}
	}

	if (r->stream && !r->include_usage &&
	    (r->shape == LT_LLM_CHAT || r->shape == LT_LLM_COMPLETIONS)) {
		if (r->so_state < 2)
			set_member(&E, s, len, top, "stream_options", "{\"include_usage\":true}");
		else if (find_member(s, len, top, "stream_options", &vs, &ve))
			set_member(&E, s, len, vs, "include_usage", "true");
		r->usage_injected = true;
	}

	if (!E.n)
		return 0;
	qsort(E.e, E.n, sizeof(E.e[0]), cmp_edit);
	for (i = 0; i < E.n; i++)
		grow += strlen(E.e[i].ins);
	buf = malloc(len + grow + 1);
	if (!buf) {
		r->usage_injected = false;
		return -ENOMEM;
	}
	for (i = 0; i < E.n; i++) {
		memcpy(buf + o, s + pos, E.e[i].at - pos);
		o += E.e[i].at - pos;
		memcpy(buf + o, E.e[i].ins, strlen(E.e[i].ins));
		o += strlen(E.e[i].ins);
		pos = E.e[i].at + E.e[i].del;
	}
	memcpy(buf + o, s + pos, len - pos);
	o += len - pos;
	buf[o] = 0;
	*out = buf;
	*out_len = o;
	return 0;
}

/* --- Gemini native paths ------------------------------------------------ */

int lt_llm_gemini_path(const char *path, size_t len, char *model, size_t model_len, bool *stream,
		       bool *sse)
{
	const char *end = path + len, *q, *m = NULL, *colon, *p;
	size_t mlen, vlen;

	*stream = *sse = false;
	q = memchr(path, '?', len);
	if (!q)
		q = end;
	for (p = path; p + 7 <= q; p++)
		if (!memcmp(p, "models/", 7) && (p == path || p[-1] == '/')) {
			m = p + 7;
			break;
		}
	if (!m)
		return -EINVAL;
	colon = memchr(m, ':', (size_t)(q - m));
	if (!colon || colon == m || memchr(m, '/', (size_t)(colon - m)))
		return -EINVAL;
	mlen = (size_t)(colon - m);
	if (mlen >= model_len)
		return -EINVAL;
	vlen = (size_t)(q - colon - 1);
	if (vlen == 15 && !memcmp(colon + 1, "generateContent", 15))
		*stream = false;
	else if (vlen == 21 && !memcmp(colon + 1, "streamGenerateContent", 21))
		*stream = true;
	else
		return -EINVAL;
	memcpy(model, m, mlen);
	model[mlen] = 0;
	/* the query: alt=sse among &-separated parameters */
	for (p = q; p < end;) {
		const char *a = p + 1, *b = memchr(a, '&', (size_t)(end - a));

		if (!b)
			b = end;
		if (b - a == 7 && !memcmp(a, "alt=sse", 7))
			*sse = true;
		p = b;
	}
	return 0;
}

/* --- the fast path: common chat bodies without a tree -------------------- */

/*
 * Most chat requests are a model, some scalars and messages of role and
 * string content. Those are read here by the allocation-free scanner
 * (llm_json.h) with exactly the numbers the jansson path gives (the fuzz
 * harness compares both); anything else (content parts, tools, an error to
 * report, duplicate or escaped keys) returns -1 and goes the jansson way.
 */
#define FAST_DEPTH 6
#define FAST_KEYS 32

struct fast {
	struct lt_llm_req *r;
	bool bail;
	unsigned nkeys[FAST_DEPTH];
	bool model_set, stream, usage, msgs;
	bool a_set, b_set, a_seen, b_seen;
	uint64_t a, b, n, bound, msg;
	unsigned char so_state;
	struct {
		const char *k;
		size_t l;
	} keys[FAST_DEPTH][FAST_KEYS]; /* last: not zeroed, nkeys says what is set */
};

static bool fkey(const struct lt_jcomp *c, const char *k)
{
	return c->key && c->klen == strlen(k) && !memcmp(c->key, k, c->klen);
}

/* An output limit or n: an integer in [1, max], or null (absent). */
static bool fast_count(const struct lt_jscan *j, enum lt_jtok t, uint64_t max, bool *set,
		       uint64_t *v)
{
	if (t == LT_J_NULL)
		return true;
	if (t != LT_J_INT || j->ival < 1 || (uint64_t)j->ival > max)
		return false;
	*set = true;
	*v = (uint64_t)j->ival;
	return true;
}

static void fast_cb(void *ctx, const struct lt_jscan *j, enum lt_jtok t)
{
	static const char *const slow[] = { "tools",
					    "functions",
					    "tool_choice",
					    "function_call",
					    "response_format",
					    "prediction",
					    "web_search_options",
					    "enable_search",
					    NULL };
	struct fast *f = ctx;
	unsigned d = j->depth, i;
	const struct lt_jcomp *c = d ? &j->path[d - 1] : NULL;
	const char *const *k;
	bool ok = true, dummy;

	if (f->bail || d >= FAST_DEPTH) {
		f->bail = true;
		return;
	}
	if (t != LT_J_END && c && c->key) {
		/* a member: escaped or repeated keys are the jansson path's to judge */
		if (c->esc || f->nkeys[d - 1] >= FAST_KEYS) {
			f->bail = true;
			return;
		}
		for (i = 0; i < f->nkeys[d - 1]; i++)
			if (f->keys[d - 1][i].l == c->klen &&
			    !memcmp(f->keys[d - 1][i].k, c->key, c->klen)) {
				f->bail = true;
				return;
			}
		f->keys[d - 1][i].k = c->key;
		f->keys[d - 1][i].l = c->klen;
		f->nkeys[d - 1]++;
	}
	if (t == LT_J_OBJ)
		f->nkeys[d] = 0;
	if (d == 0) {
		f->bail = t == LT_J_ARR;
		return;
	}
	if (d == 1 && t == LT_J_END)
		return; /* a top-level container closed */
	if (d == 1) {
		if (fkey(c, "model")) {
			ok = t == LT_J_STR && j->vlen == j->dlen && !set_model(f->r, j->v, j->vlen);
			f->model_set = ok;
		} else if (fkey(c, "stream")) {
			ok = t == LT_J_BOOL || t == LT_J_NULL;
			f->stream = t == LT_J_BOOL && j->bval;
		} else if (fkey(c, "stream_options")) {
			ok = t == LT_J_OBJ || t == LT_J_NULL;
			f->so_state = t == LT_J_OBJ ? 2 : 1;
		} else if (fkey(c, "max_tokens")) {
			f->a_seen = true;
			ok = fast_count(j, t, LT_LLM_MAX_OUTPUT_TOKENS, &f->a_set, &f->a);
		} else if (fkey(c, "max_completion_tokens")) {
			f->b_seen = true;
			ok = fast_count(j, t, LT_LLM_MAX_OUTPUT_TOKENS, &f->b_set, &f->b);
		} else if (fkey(c, "n")) {
			ok = fast_count(j, t, LT_LLM_MAX_CHOICES, &dummy, &f->n);
		} else if (fkey(c, "messages")) {
			ok = t == LT_J_ARR;
			f->msgs = ok;
		} else {
			for (k = slow; *k; k++)
				ok &= !fkey(c, *k);
		}
		f->bail = !ok;
		return;
	}
	if (d == 2 && fkey(&j->path[0], "stream_options")) {
		if (fkey(c, "include_usage") && t != LT_J_END) {
			f->bail = t != LT_J_BOOL && t != LT_J_NULL;
			f->usage = t == LT_J_BOOL && j->bval;
		}
		return;
	}
	if (!fkey(&j->path[0], "messages"))
		return; /* inside a member nobody reads */
	if (d == 2) {
		if (t == LT_J_OBJ) {
			f->msg = 2;
			f->r->messages++;
		} else if (t == LT_J_END) {
			f->bound = lt_llm_sat_add(f->bound, LT_LLM_MSG_OVERHEAD);
			f->bound = lt_llm_sat_add(f->bound, f->msg);
		} else {
			f->bail = true;
		}
		return;
	}
	/* d == 3: a message's member, as lt_llm_bound_value counts it */
	if (t == LT_J_STR && (fkey(c, "role") || fkey(c, "name") || fkey(c, "content")))
		f->msg = lt_llm_sat_add(f->msg, c->klen + 6 + j->dlen + 2);
	else if (t == LT_J_NULL && fkey(c, "content"))
		f->msg = lt_llm_sat_add(f->msg, c->klen + 6 + 5);
	else
		f->bail = true;
}

static int parse_fast(const struct lt_llm_parse_opts *o, const char *body, size_t len,
		      struct lt_llm_req *r)
{
	struct fast f; /* about 3 KiB of stack, no allocation */

	(void)o;
	memset(&f, 0, offsetof(struct fast, keys));
	f.r = r;
	f.n = 1;
	if (lt_jscan(body, len, fast_cb, &f) || f.bail || !f.model_set || !f.msgs)
		return -1;
	r->stream = f.stream;
	r->has_limit = f.a_set || f.b_set;
	r->limit_tokens = f.a > f.b ? f.a : f.b;
	if (f.b_set)
		r->limit_field = "max_completion_tokens";
	else if (f.a_set || f.a_seen)
		r->limit_field = "max_tokens";
	else if (f.b_seen)
		r->limit_field = "max_completion_tokens";
	else
		r->limit_field =
			r->provider == LT_LLM_P_OPENAI ? "max_completion_tokens" : "max_tokens";
	r->completions = f.n;
	r->include_usage = f.stream && f.usage;
	r->prompt_bound = lt_llm_sat_add(LT_LLM_REQ_OVERHEAD, f.bound);
	r->so_state = f.so_state;
	return 0;
}
