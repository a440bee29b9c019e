// SPDX-License-Identifier: MIT
/*
 * shapes.c - the four providers' wire shapes: request parsing (the prompt's size and the
 * output limit), JSON bodies, SSE events and error bodies. No I/O here: server.c frames and
 * sends what these functions write.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stub.h"

const char *const stub_shape_names[STUB_SHAPES] = {
	[STUB_OPENAI_CHAT] = "openai_chat",
	[STUB_OPENAI_COMPLETIONS] = "openai_completions",
	[STUB_OPENAI_EMBEDDINGS] = "openai_embeddings",
	[STUB_OPENAI_RESPONSES] = "openai_responses",
	[STUB_GEMINI] = "gemini",
	[STUB_GEMINI_OPENAI] = "gemini_openai",
	[STUB_DASHSCOPE] = "dashscope",
	[STUB_ANTHROPIC] = "anthropic",
};

enum stub_family stub_shape_family(enum stub_shape s)
{
	if (s == STUB_GEMINI)
		return STUB_FAM_GEMINI;
	if (s == STUB_ANTHROPIC)
		return STUB_FAM_ANTHROPIC;
	return STUB_FAM_OPENAI;
}

/* --- buffer ---------------------------------------------------------------------------- */

int stub_buf_reserve(struct stub_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		/* The stub is a test tool: running out of memory is not an answer it can give. */
		fprintf(stderr, "leaky-stub: out of memory (%zu bytes)\n", cap);
		abort();
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void stub_buf_add(struct stub_buf *b, const void *p, size_t n)
{
	stub_buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void stub_buf_str(struct stub_buf *b, const char *s)
{
	stub_buf_add(b, s, strlen(s));
}

void stub_buf_printf(struct stub_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	stub_buf_reserve(b, 256);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		stub_buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void stub_buf_json_str(struct stub_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	stub_buf_reserve(b, n + 2);
	b->p[b->len++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			stub_buf_add(b, e, 2);
		} else if (c < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			stub_buf_add(b, e, 6);
		} else {
			stub_buf_add(b, &s[i], 1);
		}
	}
	stub_buf_add(b, "\"", 1);
}

void stub_buf_free(struct stub_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* --- request parsing ------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A string, or an array of parts whose "text" strings count (OpenAI content parts, Anthropic
 * blocks, Gemini parts). Other members of a part (images, tool calls) count nothing. */
static int add_content(const json_t *c, struct stub_req *r, bool null_ok)
{
	size_t i;
	json_t *part;

	if (json_is_string(c)) {
		r->prompt_bytes += json_string_length(c);
		return 0;
	}
	if (json_is_null(c) || !c)
		return null_ok ? 0 : -1;
	if (!json_is_array(c))
		return -1;
	json_array_foreach(c, i, part) {
		json_t *t = json_object_get(part, "text");

		if (!json_is_object(part))
			return -1;
		if (t && !json_is_string(t))
			return -1;
		if (t)
			r->prompt_bytes += json_string_length(t);
	}
	return 0;
}

/* The output limit: a positive integer, or absent/null (-1). */
static int get_limit(const json_t *o, const char *key, int64_t *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return fail(err, errlen, "Invalid '%s': expected an integer of at least 1.", key);
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *o, const char *key, bool *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(err, errlen, "Invalid type for '%s': expected a boolean.", key);
	*out = json_is_true(v);
	return 0;
}

static int get_model(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, "model");

	if (!json_is_string(v) || json_string_length(v) == 0)
		return fail(err, errlen, "you must provide a model parameter");
	if (json_string_length(v) > STUB_MAX_MODEL)
		return fail(err, errlen, "'model' is longer than %d bytes", STUB_MAX_MODEL);
	/* A model with a NUL byte is cut at it: it is echoed, never used as a key. */
	snprintf(r->model, sizeof(r->model), "%s", json_string_value(v));
	return 0;
}

/* A prompt or an embeddings input: a string, an array of strings, an array of token ids or
 * an array of arrays of token ids (each id counts one token). */
static int add_prompt(const json_t *p, struct stub_req *r, uint64_t *ids)
{
	size_t i, j;
	json_t *e, *t;

	if (json_is_string(p)) {
		r->prompt_bytes += json_string_length(p);
		r->n_inputs++;
		return 0;
	}
	if (!json_is_array(p) || json_array_size(p) == 0)
		return -1;
	json_array_foreach(p, i, e) {
		if (json_is_string(e)) {
			r->prompt_bytes += json_string_length(e);
			r->n_inputs++;
		} else if (json_is_integer(e)) {
			if (i == 0)
				r->n_inputs++;
			(*ids)++;
		} else if (json_is_array(e) && json_array_size(e) > 0) {
			r->n_inputs++;
			json_array_foreach(e, j, t) {
				if (!json_is_integer(t))
					return -1;
				(*ids)++;
			}
		} else {
			return -1;
		}
	}
	return 0;
}

static int parse_chat(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	json_t *msgs = json_object_get(o, "messages"), *m, *so;
	size_t i;
	int64_t mct = -1;
	int rc;

	if ((rc = get_model(o, r, err, errlen)))
		return rc;
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return fail(err, errlen, "'messages' must be a non-empty array");
	json_array_foreach(msgs, i, m) {
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
			return fail(err, errlen, "Invalid 'messages[%zu]': an object with a role",
				    i);
		if (add_content(json_object_get(m, "content"), r, true))
			return fail(err, errlen, "Invalid 'messages[%zu].content'", i);
	}
	if ((rc = get_bool(o, "stream", &r->stream, err, errlen)))
		return rc;
	so = json_object_get(o, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return fail(err, errlen,
				    "Invalid type for 'stream_options': expected an object.");
		if ((rc = get_bool(so, "include_usage", &r->include_usage, err, errlen)))
			return rc;
	}
	if ((rc = get_limit(o, "max_tokens", &r->limit, err, errlen)) ||
	    (rc = get_limit(o, "max_completion_tokens", &mct, err, errlen)))
		return rc;
	/* OpenAI's newer name wins when both are set. */
	if (mct > 0)
		r->limit = mct;
	return 0;
}

static int parse_completions(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	uint64_t ids = 0;
	json_t *so;
	int rc;

	if ((rc = get_model(o, r, err, errlen)))
		return rc;
	if (add_prompt(json_object_get(o, "prompt"), r, &ids))
		return fail(err, errlen,
			    "'prompt' must be a string or an array of strings or tokens");
	r->prompt_tokens = ids;
	if ((rc = get_bool(o, "stream", &r->stream, err, errlen)))
		return rc;
	so = json_object_get(o, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return fail(err, errlen,
				    "Invalid type for 'stream_options': expected an object.");
		if ((rc = get_bool(so, "include_usage", &r->include_usage, err, errlen)))
			return rc;
	}
	return get_limit(o, "max_tokens", &r->limit, err, errlen);
}

static int parse_embeddings(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	uint64_t ids = 0;
	json_t *fmt = json_object_get(o, "encoding_format");
	int64_t dims = -1;
	int rc;

	if ((rc = get_model(o, r, err, errlen)))
		return rc;
	if (add_prompt(json_object_get(o, "input"), r, &ids))
		return fail(err, errlen,
			    "'input' must be a string or an array of strings or tokens");
	if (r->n_inputs > 2048)
		return fail(err, errlen, "'input' has more than 2048 items");
	r->prompt_tokens = ids;
	if (fmt && !json_is_null(fmt)) {
		if (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "float") &&
					     strcmp(json_string_value(fmt), "base64")))
			return fail(err, errlen, "'encoding_format' must be 'float' or 'base64'");
		r->emb_base64 = !strcmp(json_string_value(fmt), "base64");
	}
	if ((rc = get_limit(o, "dimensions", &dims, err, errlen)))
		return rc;
	if (dims > 4096)
		return fail(err, errlen, "'dimensions' above 4096");
	r->emb_dims = dims > 0 ? (uint32_t)dims : stub_opt_get(embed_dims);
	return 0;
}

static int parse_responses(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	json_t *in = json_object_get(o, "input"), *ins = json_object_get(o, "instructions"), *it;
	size_t i;
	int rc;

	if ((rc = get_model(o, r, err, errlen)))
		return rc;
	if (json_is_string(in)) {
		r->prompt_bytes += json_string_length(in);
	} else if (json_is_array(in)) {
		json_array_foreach(in, i, it) {
			if (!json_is_object(it) ||
			    add_content(json_object_get(it, "content"), r, true))
				return fail(err, errlen, "Invalid 'input[%zu]'", i);
		}
	} else {
		return fail(err, errlen, "'input' must be a string or an array of items");
	}
	if (ins && !json_is_null(ins)) {
		if (!json_is_string(ins))
			return fail(err, errlen, "'instructions' must be a string");
		r->prompt_bytes += json_string_length(ins);
	}
	if ((rc = get_bool(o, "stream", &r->stream, err, errlen)))
		return rc;
	return get_limit(o, "max_output_tokens", &r->limit, err, errlen);
}

/* Gemini's REST surface takes proto JSON: camelCase or snake_case names. */
static json_t *get2(const json_t *o, const char *camel, const char *snake)
{
	json_t *v = json_object_get(o, camel);

	return v ? v : json_object_get(o, snake);
}

static int parse_gemini(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	json_t *cs = json_object_get(o, "contents"), *c, *gc, *si;
	size_t i;

	if (!json_is_array(cs) || json_array_size(cs) == 0)
		return fail(err, errlen,
			    "* GenerateContentRequest.contents: contents is not specified");
	json_array_foreach(cs, i, c) {
		if (!json_is_object(c) || add_content(json_object_get(c, "parts"), r, false))
			return fail(err, errlen, "Invalid value at 'contents[%zu]'", i);
	}
	si = get2(o, "systemInstruction", "system_instruction");
	if (si && !json_is_null(si) &&
	    (!json_is_object(si) || add_content(json_object_get(si, "parts"), r, false)))
		return fail(err, errlen, "Invalid value at 'system_instruction'");
	gc = get2(o, "generationConfig", "generation_config");
	if (gc && !json_is_null(gc)) {
		json_t *m = get2(gc, "maxOutputTokens", "max_output_tokens");

		if (!json_is_object(gc))
			return fail(err, errlen, "Invalid value at 'generation_config'");
		if (m && !json_is_null(m)) {
			if (!json_is_integer(m) || json_integer_value(m) < 1)
				return fail(
					err, errlen,
					"Invalid value at 'generation_config.max_output_tokens'");
			r->limit = json_integer_value(m);
		}
	}
	return 0;
}

static int parse_anthropic(const json_t *o, struct stub_req *r, char *err, size_t errlen)
{
	json_t *msgs = json_object_get(o, "messages"), *m, *sys;
	size_t i;
	int rc;

	if ((rc = get_model(o, r, err, errlen)))
		return fail(err, errlen, "model: Field required");
	if (!json_object_get(o, "max_tokens"))
		return fail(err, errlen, "max_tokens: Field required");
	if ((rc = get_limit(o, "max_tokens", &r->limit, err, errlen)))
		return rc;
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return fail(err, errlen, "messages: at least one message is required");
	json_array_foreach(msgs, i, m) {
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")) ||
		    add_content(json_object_get(m, "content"), r, false))
			return fail(err, errlen, "messages.%zu: Input should be a valid message",
				    i);
	}
	sys = json_object_get(o, "system");
	if (sys && add_content(sys, r, true))
		return fail(err, errlen,
			    "system: Input should be a valid string or list of blocks");
	return get_bool(o, "stream", &r->stream, err, errlen);
}

int stub_parse(enum stub_shape s, const char *body, size_t len, struct stub_req *r, char *err,
	       size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	int rc;

	r->prompt_bytes = r->prompt_tokens = 0;
	r->n_inputs = 0;
	r->limit = -1;
	r->stream = r->include_usage = r->emb_base64 = false;
	/* JSON_REJECT_DUPLICATES: a body that means two things is refused, as the gateway does. */
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return fail(err, errlen, "We could not parse the JSON body of your request. (%s)",
			    jerr.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return fail(err, errlen, "The request body must be a JSON object.");
	}
	switch (s) {
	case STUB_OPENAI_CHAT:
	case STUB_GEMINI_OPENAI:
	case STUB_DASHSCOPE:
		rc = parse_chat(o, r, err, errlen);
		break;
	case STUB_OPENAI_COMPLETIONS:
		rc = parse_completions(o, r, err, errlen);
		break;
	case STUB_OPENAI_EMBEDDINGS:
		rc = parse_embeddings(o, r, err, errlen);
		r->stream = false;
		break;
	case STUB_OPENAI_RESPONSES:
		rc = parse_responses(o, r, err, errlen);
		break;
	case STUB_GEMINI:
		rc = parse_gemini(o, r, err, errlen);
		break;
	case STUB_ANTHROPIC:
		rc = parse_anthropic(o, r, err, errlen);
		break;
	default:
		rc = fail(err, errlen, "unknown endpoint");
	}
	json_decref(o);
	/* ceil(bytes / 4): at most the bytes, as a byte-level tokenizer's count is. */
	r->prompt_tokens += (r->prompt_bytes + 3) / 4;
	return rc;
}

/* --- responses ------------------------------------------------------------------------- */

/* Events of a stream, from its text events nt (see stub_gen_per_event). */
static uint32_t stream_events(const struct stub_req *r, uint32_t nt)
{
	switch (r->shape) {
	case STUB_OPENAI_CHAT:
	case STUB_GEMINI_OPENAI:
	case STUB_DASHSCOPE:
		/* role chunk, the text chunks, finish chunk, [usage chunk], [DONE] */
		return nt + 3 + (r->include_usage ? 1 : 0);
	case STUB_OPENAI_COMPLETIONS:
		/* the text chunks, finish chunk, [usage chunk], [DONE] */
		return nt + 2 + (r->include_usage ? 1 : 0);
	case STUB_OPENAI_RESPONSES:
		/* created, in_progress, item added, part added, the deltas, text done, part done,
		 * item done, completed */
		return nt + 8;
	case STUB_GEMINI:
		/* the text chunks, the last with finishReason; one empty chunk when N = 0 */
		return nt ? nt : 1;
	case STUB_ANTHROPIC:
		/* message_start, content_block_start, ping, the deltas, content_block_stop,
		 * message_delta, message_stop */
		return nt + 6;
	default:
		return 0;
	}
}

void stub_gen_init(struct stub_gen *g, const struct stub_req *r, uint32_t n, bool capped,
		   uint64_t id)
{
	memset(g, 0, sizeof(*g));
	g->req = r;
	g->n = n;
	g->per = 1;
	g->nt = n;
	g->capped = capped;
	g->id = id;
	g->created = time(NULL);
	g->err_after = -1;
	g->nev = stream_events(r, n);
}

void stub_gen_per_event(struct stub_gen *g, uint32_t per)
{
	g->per = per ? per : 1;
	g->nt = g->n / g->per + (g->n % g->per ? 1 : 0);
	g->nev = stream_events(g->req, g->nt);
}

/* Output tokens in text event i (0-based): per, the last one what is left. */
static uint32_t text_tokens(const struct stub_gen *g, uint32_t i)
{
	uint64_t done = (uint64_t)i * g->per;

	return done >= g->n ? 0 : g->n - done < g->per ? (uint32_t)(g->n - done) : g->per;
}

const char *stub_gen_content_type(const struct stub_req *r)
{
	if (!r->stream)
		return "application/json";
	if (r->shape == STUB_GEMINI && !r->gemini_sse)
		return "application/json";
	return "text/event-stream";
}

static void add_tokens(struct stub_buf *b, uint32_t n)
{
	stub_buf_reserve(b, (size_t)n * STUB_TOKEN_BYTES);
	for (uint32_t i = 0; i < n; i++) {
		memcpy(b->p + b->len, STUB_TOKEN, STUB_TOKEN_BYTES);
		b->len += STUB_TOKEN_BYTES;
	}
}

static void add_text(struct stub_buf *b, uint32_t n)
{
	stub_buf_add(b, "\"", 1);
	add_tokens(b, n);
	stub_buf_add(b, "\"", 1);
}

static void add_model(struct stub_buf *b, const struct stub_req *r)
{
	stub_buf_json_str(b, r->model, strlen(r->model));
}

static void openai_usage(struct stub_buf *b, uint64_t p, uint64_t c)
{
	stub_buf_printf(b,
			"\"usage\":{\"prompt_tokens\":%llu,\"completion_tokens\":%llu,"
			"\"total_tokens\":%llu}",
			(unsigned long long)p, (unsigned long long)c, (unsigned long long)(p + c));
}

/* Deterministic vector values: j-th float of every embedding. */
static float emb_value(uint32_t j)
{
	return (float)((int)(j % 16) - 8) / 16.0f;
}

static void embeddings_json(struct stub_gen *g, struct stub_buf *b)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const struct stub_req *r = g->req;

	stub_buf_str(b, "{\"object\":\"list\",\"data\":[");
	for (uint32_t i = 0; i < r->n_inputs; i++) {
		stub_buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%u,\"embedding\":",
				i ? "," : "", i);
		if (r->emb_base64) {
			/* little-endian float32s, base64: what openai-node asks for by default */
			uint32_t nb = r->emb_dims * 4, k = 0;
			unsigned char raw[3];

			stub_buf_add(b, "\"", 1);
			while (k < nb) {
				uint32_t take = nb - k < 3 ? nb - k : 3, v;
				char q[4];

				for (uint32_t t = 0; t < 3; t++) {
					uint32_t at = k + t;
					float f = emb_value(at / 4);
					unsigned char fb[4];

					memcpy(fb, &f, 4);
					raw[t] = t < take ? fb[at % 4] : 0;
				}
				v = (uint32_t)raw[0] << 16 | (uint32_t)raw[1] << 8 | raw[2];
				q[0] = b64[v >> 18 & 63];
				q[1] = b64[v >> 12 & 63];
				q[2] = take > 1 ? b64[v >> 6 & 63] : '=';
				q[3] = take > 2 ? b64[v & 63] : '=';
				stub_buf_add(b, q, 4);
				k += take;
			}
			stub_buf_add(b, "\"", 1);
		} else {
			stub_buf_add(b, "[", 1);
			for (uint32_t j = 0; j < r->emb_dims; j++)
				stub_buf_printf(b, "%s%g", j ? "," : "", (double)emb_value(j));
			stub_buf_add(b, "]", 1);
		}
		stub_buf_add(b, "}", 1);
	}
	stub_buf_str(b, "],\"model\":");
	add_model(b, r);
	stub_buf_printf(b, ",\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu}}",
			(unsigned long long)r->prompt_tokens, (unsigned long long)r->prompt_tokens);
	g->rep_prompt = r->prompt_tokens;
}

/* The Responses API's response object; final: with output and usage. */
static void responses_object(struct stub_gen *g, struct stub_buf *b, bool final)
{
	const struct stub_req *r = g->req;
	const char *status = !final ? "in_progress" : g->capped ? "incomplete" : "completed";

	stub_buf_printf(b,
			"{\"id\":\"resp_stub%llu\",\"object\":\"response\",\"created_at\":%lld,"
			"\"status\":\"%s\",\"error\":null,\"incomplete_details\":",
			(unsigned long long)g->id, (long long)g->created, status);
	stub_buf_str(b, final && g->capped ? "{\"reason\":\"max_output_tokens\"}" : "null");
	stub_buf_str(b, ",\"model\":");
	add_model(b, r);
	if (r->limit > 0)
		stub_buf_printf(b, ",\"max_output_tokens\":%lld", (long long)r->limit);
	else
		stub_buf_str(b, ",\"max_output_tokens\":null");
	if (!final) {
		stub_buf_str(b, ",\"output\":[],\"usage\":null}");
		return;
	}
	stub_buf_printf(
		b,
		",\"output\":[{\"type\":\"message\",\"id\":\"msg_stub%llu\",\"status\":\"%s\","
		"\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":",
		(unsigned long long)g->id, status);
	add_text(b, g->n);
	stub_buf_printf(
		b,
		",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":%llu,"
		"\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":%u,"
		"\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":%llu}}",
		(unsigned long long)r->prompt_tokens, g->n,
		(unsigned long long)(r->prompt_tokens + g->n));
}

static void gemini_object(struct stub_gen *g, struct stub_buf *b, uint32_t ntext, uint64_t cum,
			  bool last)
{
	const struct stub_req *r = g->req;

	stub_buf_str(b, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
	add_text(b, ntext);
	stub_buf_str(b, "}],\"role\":\"model\"}");
	if (last)
		stub_buf_str(b, g->capped ? ",\"finishReason\":\"MAX_TOKENS\"" :
					    ",\"finishReason\":\"STOP\"");
	stub_buf_printf(b,
			",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":%llu,"
			"\"candidatesTokenCount\":%llu,\"totalTokenCount\":%llu},\"modelVersion\":",
			(unsigned long long)r->prompt_tokens, (unsigned long long)cum,
			(unsigned long long)(r->prompt_tokens + cum));
	add_model(b, r);
	stub_buf_printf(b, ",\"responseId\":\"stub%llu\"}", (unsigned long long)g->id);
}

static const char *openai_finish(const struct stub_gen *g)
{
	return g->capped ? "length" : "stop";
}

void stub_gen_json(struct stub_gen *g, struct stub_buf *b)
{
	const struct stub_req *r = g->req;

	g->rep_prompt = r->prompt_tokens;
	g->rep_completion = g->n;
	g->gen_tokens = g->n;
	switch (r->shape) {
	case STUB_OPENAI_CHAT:
	case STUB_GEMINI_OPENAI:
	case STUB_DASHSCOPE:
		stub_buf_printf(b,
				"{\"id\":\"chatcmpl-stub%llu\",\"object\":\"chat.completion\","
				"\"created\":%lld,\"model\":",
				(unsigned long long)g->id, (long long)g->created);
		add_model(b, r);
		stub_buf_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
				"\"content\":");
		add_text(b, g->n);
		stub_buf_printf(b,
				",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],",
				openai_finish(g));
		openai_usage(b, r->prompt_tokens, g->n);
		stub_buf_str(b, ",\"system_fingerprint\":null}");
		break;
	case STUB_OPENAI_COMPLETIONS:
		stub_buf_printf(b,
				"{\"id\":\"cmpl-stub%llu\",\"object\":\"text_completion\","
				"\"created\":%lld,\"model\":",
				(unsigned long long)g->id, (long long)g->created);
		add_model(b, r);
		stub_buf_str(b, ",\"choices\":[{\"text\":");
		add_text(b, g->n);
		stub_buf_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}],",
				openai_finish(g));
		openai_usage(b, r->prompt_tokens, g->n);
		stub_buf_str(b, "}");
		break;
	case STUB_OPENAI_EMBEDDINGS:
		g->rep_completion = g->gen_tokens = 0;
		embeddings_json(g, b);
		break;
	case STUB_OPENAI_RESPONSES:
		responses_object(g, b, true);
		break;
	case STUB_GEMINI:
		gemini_object(g, b, g->n, g->n, true);
		break;
	case STUB_ANTHROPIC:
		stub_buf_printf(
			b,
			"{\"id\":\"msg_stub%llu\",\"type\":\"message\",\"role\":\"assistant\","
			"\"model\":",
			(unsigned long long)g->id);
		add_model(b, r);
		stub_buf_str(b, ",\"content\":[{\"type\":\"text\",\"text\":");
		add_text(b, g->n);
		stub_buf_printf(b,
				"}],\"stop_reason\":\"%s\",\"stop_sequence\":null,"
				"\"usage\":{\"input_tokens\":%llu,\"output_tokens\":%u}}",
				g->capped ? "max_tokens" : "end_turn",
				(unsigned long long)r->prompt_tokens, g->n);
		break;
	default:
		break;
	}
}

/* The head of an OpenAI chat or completions chunk, up to and including "choices":[ */
static void openai_chunk_head(struct stub_gen *g, struct stub_buf *b)
{
	bool chat = g->req->shape != STUB_OPENAI_COMPLETIONS;

	stub_buf_printf(b, "data: {\"id\":\"%s%llu\",\"object\":\"%s\",\"created\":%lld,\"model\":",
			chat ? "chatcmpl-stub" : "cmpl-stub", (unsigned long long)g->id,
			chat ? "chat.completion.chunk" : "text_completion", (long long)g->created);
	add_model(b, g->req);
	stub_buf_str(b, ",\"choices\":[");
}

/* The tail of a chunk: with include_usage every chunk but the last says "usage":null. */
static void openai_chunk_tail(struct stub_gen *g, struct stub_buf *b)
{
	stub_buf_str(b, g->req->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n");
}

static void openai_event(struct stub_gen *g, struct stub_buf *b, uint32_t k)
{
	const struct stub_req *r = g->req;
	bool chat = r->shape != STUB_OPENAI_COMPLETIONS;
	uint32_t first_tok = chat ? 1 : 0; /* event index of the first token */
	uint32_t fin = first_tok + g->nt; /* the finish chunk */

	if (k == g->nev - 1) {
		stub_buf_str(b, "data: [DONE]\n\n");
		return;
	}
	if (k == fin + 1) { /* the usage chunk */
		openai_chunk_head(g, b);
		stub_buf_str(b, "],");
		openai_usage(b, r->prompt_tokens, g->n);
		stub_buf_str(b, "}\n\n");
		g->rep_prompt = r->prompt_tokens;
		g->rep_completion = g->n;
		return;
	}
	openai_chunk_head(g, b);
	if (chat && k == 0) {
		stub_buf_str(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
				"\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
	} else if (k < fin) {
		uint32_t t = text_tokens(g, k - first_tok);

		stub_buf_str(b, chat ? "{\"index\":0,\"delta\":{\"content\":" : "{\"text\":");
		add_text(b, t);
		stub_buf_str(b, chat ? "},\"logprobs\":null,\"finish_reason\":null}" :
				       ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}");
		g->gen_tokens += t;
	} else {
		stub_buf_printf(b,
				chat ? "{\"index\":0,\"delta\":{},\"logprobs\":null,"
				       "\"finish_reason\":\"%s\"}" :
				       "{\"text\":\"\",\"index\":0,\"logprobs\":null,"
				       "\"finish_reason\":\"%s\"}",
				openai_finish(g));
	}
	openai_chunk_tail(g, b);
}

static void responses_event(struct stub_gen *g, struct stub_buf *b, uint32_t k)
{
	uint32_t n = g->nt; /* text events: the indices below count them */
	unsigned long long id = (unsigned long long)g->id;
	const char *item_status = g->capped ? "incomplete" : "completed";
	const char *type;

	if (k == 0 || k == 1 || k == n + 7) {
		type = k == 0	 ? "response.created" :
		       k == 1	 ? "response.in_progress" :
		       g->capped ? "response.incomplete" :
				   "response.completed";
		stub_buf_printf(b,
				"event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%u,"
				"\"response\":",
				type, type, k);
		responses_object(g, b, k == n + 7);
		stub_buf_str(b, "}\n\n");
		if (k == n + 7) {
			g->rep_prompt = g->req->prompt_tokens;
			g->rep_completion = g->n;
		}
	} else if (k == 2) {
		stub_buf_printf(
			b,
			"event: response.output_item.added\ndata: {\"type\":"
			"\"response.output_item.added\",\"sequence_number\":2,"
			"\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":"
			"\"msg_stub%llu\",\"status\":\"in_progress\",\"role\":\"assistant\","
			"\"content\":[]}}\n\n",
			id);
	} else if (k == 3) {
		stub_buf_printf(b,
				"event: response.content_part.added\ndata: {\"type\":"
				"\"response.content_part.added\",\"sequence_number\":3,\"item_id\":"
				"\"msg_stub%llu\",\"output_index\":0,\"content_index\":0,\"part\":"
				"{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
				id);
	} else if (k < n + 4) {
		stub_buf_printf(
			b,
			"event: response.output_text.delta\ndata: {\"type\":"
			"\"response.output_text.delta\",\"sequence_number\":%u,\"item_id\":"
			"\"msg_stub%llu\",\"output_index\":0,\"content_index\":0,\"delta\":",
			k, id);
		add_text(b, text_tokens(g, k - 4));
		stub_buf_str(b, ",\"logprobs\":[]}\n\n");
		g->gen_tokens += text_tokens(g, k - 4);
	} else if (k == n + 4) {
		stub_buf_printf(b,
				"event: response.output_text.done\ndata: {\"type\":"
				"\"response.output_text.done\",\"sequence_number\":%u,\"item_id\":"
				"\"msg_stub%llu\",\"output_index\":0,\"content_index\":0,\"text\":",
				k, id);
		add_text(b, g->n);
		stub_buf_str(b, ",\"logprobs\":[]}\n\n");
	} else if (k == n + 5) {
		stub_buf_printf(b,
				"event: response.content_part.done\ndata: {\"type\":"
				"\"response.content_part.done\",\"sequence_number\":%u,\"item_id\":"
				"\"msg_stub%llu\",\"output_index\":0,\"content_index\":0,\"part\":"
				"{\"type\":\"output_text\",\"text\":",
				k, id);
		add_text(b, g->n);
		stub_buf_str(b, ",\"annotations\":[]}}\n\n");
	} else {
		stub_buf_printf(b,
				"event: response.output_item.done\ndata: {\"type\":"
				"\"response.output_item.done\",\"sequence_number\":%u,"
				"\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":"
				"\"msg_stub%llu\",\"status\":\"%s\",\"role\":\"assistant\","
				"\"content\":[{\"type\":\"output_text\",\"text\":",
				k, id, item_status);
		add_text(b, g->n);
		stub_buf_str(b, ",\"annotations\":[]}]}}\n\n");
	}
}

static void anthropic_event(struct stub_gen *g, struct stub_buf *b, uint32_t k)
{
	uint32_t n = g->nt; /* text events: the indices below count them */

	if (k == 0) {
		stub_buf_printf(
			b,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
			"{\"id\":\"msg_stub%llu\",\"type\":\"message\",\"role\":\"assistant\","
			"\"model\":",
			(unsigned long long)g->id);
		add_model(b, g->req);
		/* output_tokens 0: nothing is generated yet (the real API says 1 here). */
		stub_buf_printf(b,
				",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
				"\"usage\":{\"input_tokens\":%llu,\"output_tokens\":0}}}\n\n",
				(unsigned long long)g->req->prompt_tokens);
		g->rep_prompt = g->req->prompt_tokens;
	} else if (k == 1) {
		stub_buf_str(
			b, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
			   "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
	} else if (k == 2) {
		stub_buf_str(b, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
	} else if (k < n + 3) {
		stub_buf_str(b,
			     "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
			     "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":");
		add_text(b, text_tokens(g, k - 3));
		stub_buf_str(b, "}}\n\n");
		g->gen_tokens += text_tokens(g, k - 3);
	} else if (k == n + 3) {
		stub_buf_str(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
				"\"index\":0}\n\n");
	} else if (k == n + 4) {
		stub_buf_printf(b,
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
				"{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":"
				"{\"output_tokens\":%u}}\n\n",
				g->capped ? "max_tokens" : "end_turn", g->n);
		g->rep_completion = g->n;
	} else {
		stub_buf_str(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
	}
}

/* The provider's mid-stream error event: what a 5xx looks like once a stream has begun. */
static void error_event(struct stub_gen *g, struct stub_buf *b, uint32_t k)
{
	static const char msg[] =
		"leaky-stub: error in the middle of the stream (x-stub-error-after)";

	switch (g->req->shape) {
	case STUB_ANTHROPIC:
		stub_buf_printf(b,
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
				"\"overloaded_error\",\"message\":\"%s\"}}\n\n",
				msg);
		break;
	case STUB_OPENAI_RESPONSES:
		stub_buf_printf(b,
				"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\","
				"\"message\":\"%s\",\"param\":null,\"sequence_number\":%u}\n\n",
				msg, k);
		break;
	case STUB_GEMINI:
		stub_buf_str(b, g->req->gemini_sse ? "data: " : k ? ",\r\n" : "[");
		stub_buf_printf(
			b, "{\"error\":{\"code\":500,\"message\":\"%s\",\"status\":\"INTERNAL\"}}",
			msg);
		stub_buf_str(b, g->req->gemini_sse ? "\r\n\r\n" : "]");
		break;
	default:
		stub_buf_printf(b,
				"data: {\"error\":{\"message\":\"%s\",\"type\":\"server_error\","
				"\"param\":null,\"code\":null}}\n\n",
				msg);
	}
}

bool stub_gen_event(struct stub_gen *g, struct stub_buf *b)
{
	uint32_t k = g->ev;

	if (k >= g->nev)
		return false;
	g->ev++;
	if (g->err_after >= 0 && k >= g->err_after) {
		error_event(g, b, k);
		g->errored = true;
		g->ev = g->nev;
		return true;
	}
	switch (g->req->shape) {
	case STUB_OPENAI_CHAT:
	case STUB_GEMINI_OPENAI:
	case STUB_DASHSCOPE:
	case STUB_OPENAI_COMPLETIONS:
		openai_event(g, b, k);
		break;
	case STUB_OPENAI_RESPONSES:
		responses_event(g, b, k);
		break;
	case STUB_GEMINI: {
		uint32_t ntext = text_tokens(g, k);
		bool last = k == g->nev - 1;

		/* SSE events end in CRLF CRLF as Google's do; without alt=sse the stream is one
		 * JSON array, written element by element. */
		if (g->req->gemini_sse)
			stub_buf_str(b, "data: ");
		else
			stub_buf_str(b, k ? ",\r\n" : "[");
		gemini_object(g, b, ntext, g->gen_tokens + ntext, last);
		stub_buf_str(b, g->req->gemini_sse ? "\r\n\r\n" : last ? "]" : "");
		g->gen_tokens += ntext;
		g->rep_prompt = g->req->prompt_tokens;
		g->rep_completion = g->gen_tokens;
		break;
	}
	case STUB_ANTHROPIC:
		anthropic_event(g, b, k);
		break;
	default:
		return false;
	}
	return true;
}

/* --- errors ---------------------------------------------------------------------------- */

static const char *openai_err_type(unsigned s)
{
	if (s == 429)
		return "requests";
	if (s >= 500)
		return "server_error";
	return "invalid_request_error";
}

static const char *openai_err_code(unsigned s)
{
	switch (s) {
	case 401:
		return "\"invalid_api_key\"";
	case 404:
		return "\"model_not_found\"";
	case 429:
		return "\"rate_limit_exceeded\"";
	default:
		return "null";
	}
}

static const char *gemini_status(unsigned s)
{
	switch (s) {
	case 400:
	case 413:
		return "INVALID_ARGUMENT";
	case 401:
		return "UNAUTHENTICATED";
	case 403:
		return "PERMISSION_DENIED";
	case 404:
		return "NOT_FOUND";
	case 405:
	case 501:
		return "UNIMPLEMENTED";
	case 409:
		return "ABORTED";
	case 429:
		return "RESOURCE_EXHAUSTED";
	case 499:
		return "CANCELLED";
	case 503:
		return "UNAVAILABLE";
	case 504:
		return "DEADLINE_EXCEEDED";
	default:
		return s >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
	}
}

static const char *anthropic_err_type(unsigned s)
{
	switch (s) {
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 529:
		return "overloaded_error";
	default:
		return s >= 500 ? "api_error" : "invalid_request_error";
	}
}

void stub_error_body(enum stub_family f, unsigned status, unsigned retry_s, const char *msg,
		     struct stub_buf *b)
{
	size_t n = strlen(msg);

	switch (f) {
	case STUB_FAM_GEMINI:
		stub_buf_printf(b, "{\"error\":{\"code\":%u,\"message\":", status);
		stub_buf_json_str(b, msg, n);
		stub_buf_printf(b, ",\"status\":\"%s\"", gemini_status(status));
		if (status == 429)
			stub_buf_printf(b,
					",\"details\":[{\"@type\":\"type.googleapis.com/"
					"google.rpc.RetryInfo\",\"retryDelay\":\"%us\"}]",
					retry_s);
		stub_buf_str(b, "}}");
		break;
	case STUB_FAM_ANTHROPIC:
		stub_buf_printf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
				anthropic_err_type(status));
		stub_buf_json_str(b, msg, n);
		stub_buf_str(b, "}}");
		break;
	default:
		stub_buf_str(b, "{\"error\":{\"message\":");
		stub_buf_json_str(b, msg, n);
		stub_buf_printf(b, ",\"type\":\"%s\",\"param\":null,\"code\":%s}}",
				openai_err_type(status), openai_err_code(status));
	}
}

/* --- counters ----------------------------------------------------------------------------- */

struct stub_counters stub_stats[STUB_SHAPES];

#define FIELD(f)                                      \
	{                                             \
#f, offsetof(struct stub_counters, f) \
	}
static const struct {
	const char *name;
	size_t off;
} fields[] = {
	FIELD(requests),
	FIELD(errors),
	FIELD(streams),
	FIELD(prompt_tokens),
	FIELD(completion_tokens),
	FIELD(generated_tokens),
	FIELD(cut),
	FIELD(client_gone),
	FIELD(hung),
	FIELD(stream_errors),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static uint64_t *field(struct stub_counters *c, size_t i)
{
	return (uint64_t *)((char *)c + fields[i].off);
}

static void counters_json(struct stub_buf *b, const char *name, const uint64_t *v)
{
	stub_buf_printf(b, "\"%s\":{", name);
	for (size_t i = 0; i < NFIELDS; i++)
		stub_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", fields[i].name,
				(unsigned long long)v[i]);
	stub_buf_str(b, "}");
}

void stub_stats_json(struct stub_buf *b)
{
	uint64_t tot[NFIELDS] = { 0 }, v[NFIELDS];

	stub_buf_str(b, "{");
	for (int s = 0; s < STUB_SHAPES; s++) {
		for (size_t i = 0; i < NFIELDS; i++) {
			v[i] = __atomic_load_n(field(&stub_stats[s], i), __ATOMIC_RELAXED);
			tot[i] += v[i];
		}
		counters_json(b, stub_shape_names[s], v);
		stub_buf_str(b, ",");
	}
	counters_json(b, "total", tot);
	stub_buf_str(b, "}");
}

void stub_stats_reset(void)
{
	for (int s = 0; s < STUB_SHAPES; s++)
		for (size_t i = 0; i < NFIELDS; i++)
			__atomic_store_n(field(&stub_stats[s], i), 0, __ATOMIC_RELAXED);
}
