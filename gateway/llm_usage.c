// SPDX-License-Identifier: MIT
/*
 * llm_usage.c - usage of LLM answers, JSON and SSE, the stream cut-off and
 * the reconcile arithmetic (the contract is in llm_usage.h). Formats relied on:
 *   SSE framing: WHATWG HTML "Server-sent events", 9.2.6 interpreting an
 *     event stream: lines end in CRLF, LF or CR; ':' starts a comment; a
 *     field is "name:value" with one optional space after the colon; data
 *     lines join with LF; a blank line dispatches the event.
 *   OpenAI chat stream: chat.completion.chunk with choices[].delta.{content,
 *     refusal,tool_calls[].function.{name,arguments}}; with
 *     stream_options.include_usage "an additional chunk will be streamed
 *     before the data: [DONE] message ... the choices field will always be an
 *     empty array", other chunks carry "usage": null (OpenAI API reference).
 *   OpenAI Responses stream: typed events response.output_text.delta {delta},
 *     response.function_call_arguments.delta, response.completed {response:
 *     {usage: {input_tokens, output_tokens}}}, error {type, code, message,
 *     param, sequence_number} (OpenAI API reference, streaming events).
 *   Gemini: GenerateContentResponse chunks {candidates[].content.parts[].text,
 *     finishReason, usageMetadata{promptTokenCount, candidatesTokenCount,
 *     thoughtsTokenCount}} (ai.google.dev/gemini-api/docs/tokens); errors
 *     {"error": {code, message, status}}.
 *   Anthropic: message_start {message.usage}, content_block_delta {delta:
 *     text_delta.text | thinking_delta.thinking | input_json_delta.partial_json},
 *     message_delta {usage.output_tokens, cumulative}, message_stop, error
 *     {type: error, error: {type, message}}
 *     (platform.claude.com/docs/en/build-with-claude/streaming).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "llm_usage.h"

/* --- usage objects ------------------------------------------------------ */

/* 1 and *v for a non-negative integer, 0 when absent or null, -1 otherwise. */
static int get_u64(json_t *o, const char *key, uint64_t *v)
{
	json_t *x = json_object_get(o, key);

	*v = 0;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return -1;
	*v = (uint64_t)json_integer_value(x);
	return 1;
}

/*
 * Reads one usage object of the shape into in/out. 0 if it holds usage, -1
 * if it holds none or a field of the wrong type (then nothing is taken: a
 * half-read usage could undercharge).
 */
static int read_usage(enum lt_llm_shape shape, json_t *o, uint64_t *in, uint64_t *out,
		      bool *has_out)
{
	uint64_t a = 0, b = 0, c = 0, d = 0;
	int ra, rb, rc, rd;

	*has_out = false;
	if (!json_is_object(o))
		return -1;
	switch (shape) {
	case LT_LLM_GEMINI:
		ra = get_u64(o, "promptTokenCount", &a);
		rb = get_u64(o, "candidatesTokenCount", &b);
		rc = get_u64(o, "thoughtsTokenCount", &c);
		rd = get_u64(o, "toolUsePromptTokenCount", &d);
		if (ra < 0 || rb < 0 || rc < 0 || rd < 0 || ra == 0)
			return -1;
		*in = lt_llm_sat_add(a, d);
		*out = lt_llm_sat_add(b, c);
		*has_out = rb > 0 || rc > 0;
		return 0;
	case LT_LLM_ANTHROPIC:
		ra = get_u64(o, "input_tokens", &a);
		rb = get_u64(o, "output_tokens", &b);
		rc = get_u64(o, "cache_creation_input_tokens", &c);
		rd = get_u64(o, "cache_read_input_tokens", &d);
		if (ra < 0 || rb < 0 || rc < 0 || rd < 0 || (ra == 0 && rb == 0))
			return -1;
		/* message_delta may carry output only: *in is then left alone */
		if (ra > 0)
			*in = lt_llm_sat_add(lt_llm_sat_add(a, c), d);
		*out = b;
		*has_out = rb > 0;
		return ra > 0 ? 0 : 1;
	default:
		/* OpenAI names first; Responses and DashScope native name them input/output */
		ra = get_u64(o, "prompt_tokens", &a);
		if (ra == 0) {
			ra = get_u64(o, "input_tokens", &a);
			rb = get_u64(o, "output_tokens", &b);
		} else {
			rb = get_u64(o, "completion_tokens", &b);
			if (rb == 0 && get_u64(o, "total_tokens", &c) > 0 && c >= a) {
				b = c - a; /* embeddings: total = prompt */
				rb = 1;
			}
		}
		if (ra <= 0 || rb < 0)
			return -1;
		*in = a;
		*out = b;
		*has_out = true;
		return 0;
	}
}

/* Applies a usage object to u; final says the provider's count is complete. */
static void take_usage(struct lt_llm_usage *u, enum lt_llm_shape shape, json_t *o, bool final)
{
	uint64_t in = u->input_tokens, out = 0;
	bool has_out;
	int rc = read_usage(shape, o, &in, &out, &has_out);

	if (rc < 0)
		return;
	if (rc == 0) {
		u->input_tokens = in;
		u->has_input = true;
	}
	if (has_out && out > u->output_tokens) /* cumulative counts only grow */
		u->output_tokens = out;
	if (final && u->has_input)
		u->final = true;
}

int lt_llm_usage_json(enum lt_llm_shape shape, const void *body, size_t len, struct lt_llm_usage *u)
{
	json_t *root = json_loadb(body, len, 0, NULL), *e;
	size_t i;

	memset(u, 0, sizeof(*u));
	if (!root)
		return -EINVAL;
	if (shape == LT_LLM_GEMINI && json_is_array(root)) {
		/* streamGenerateContent without alt=sse, buffered: an array of chunks */
		json_array_foreach(root, i, e)
			take_usage(u, shape, json_object_get(e, "usageMetadata"), false);
		if (u->has_input)
			u->final = true;
	} else {
		take_usage(
			u, shape,
			json_object_get(root, shape == LT_LLM_GEMINI ? "usageMetadata" : "usage"),
			true);
	}
	json_decref(root);
	return 0;
}

/* --- output counting per event ------------------------------------------ */

struct ev {
	uint64_t bytes; /* generated text bytes in this event */
	uint64_t deltas; /* non-empty generated deltas in it */
	bool usage_chunk; /* OpenAI's usage-only chunk (choices: []) */
};

static uint64_t str_bytes(json_t *v)
{
	return json_is_string(v) ? json_string_length(v) : 0;
}

/* Bytes of a JSON value as text (a tool call's arguments object). */
static uint64_t dump_bytes(json_t *v)
{
	return v ? json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
}

static void count(struct ev *e, uint64_t n, bool delta)
{
	e->bytes = lt_llm_sat_add(e->bytes, n);
	if (n && delta)
		e->deltas++;
}

static void ev_openai(struct lt_llm_sse *s, json_t *j, struct ev *e)
{
	json_t *ch = json_object_get(j, "choices"), *c, *d, *tc, *t, *f;
	uint64_t n;
	size_t i, k;

	if (json_is_object(json_object_get(j, "error")))
		s->upstream_error = true;
	if (json_is_object(json_object_get(j, "usage"))) {
		/*
		 * Final only on the documented usage chunk (choices: []): a server
		 * that reports running usage on every chunk (vLLM's
		 * continuous_usage_stats) is final at [DONE], not before.
		 */
		e->usage_chunk = json_is_array(ch) && !json_array_size(ch);
		take_usage(&s->usage, s->o.shape, json_object_get(j, "usage"), e->usage_chunk);
	}
	json_array_foreach(ch, i, c) {
		n = str_bytes(json_object_get(c, "text")); /* legacy completions */
		d = json_object_get(c, "delta");
		if (json_is_object(d)) {
			n += str_bytes(json_object_get(d, "content"));
			n += str_bytes(json_object_get(d, "refusal"));
			n += str_bytes(
				json_object_get(d, "reasoning_content")); /* Qwen, DeepSeek */
			n += str_bytes(json_object_get(d, "reasoning"));
			f = json_object_get(d, "function_call");
			n += str_bytes(json_object_get(f, "name"));
			n += str_bytes(json_object_get(f, "arguments"));
			tc = json_object_get(d, "tool_calls");
			json_array_foreach(tc, k, t) {
				f = json_object_get(t, "function");
				n += str_bytes(json_object_get(f, "name"));
				n += str_bytes(json_object_get(f, "arguments"));
			}
			f = json_object_get(d, "audio");
			n += str_bytes(json_object_get(f, "transcript"));
			n += str_bytes(json_object_get(f, "data"));
		}
		count(e, n, true);
	}
}

static bool type_is(json_t *j, const char *t)
{
	json_t *v = json_object_get(j, "type");

	return json_is_string(v) && !strcmp(json_string_value(v), t);
}

static void ev_responses(struct lt_llm_sse *s, json_t *j, struct ev *e)
{
	static const char *const out[] = {
		"response.output_text.delta",
		"response.refusal.delta",
		"response.function_call_arguments.delta",
		"response.custom_tool_call_input.delta",
		"response.reasoning_text.delta",
	};
	static const char *const extra[] = {
		/* text, but not a token per delta (a summary, a transcript) */
		"response.reasoning_summary_text.delta",
		"response.audio.transcript.delta",
	};
	json_t *sq = json_object_get(j, "sequence_number");
	unsigned i;

	if (json_is_integer(sq))
		s->seq = json_integer_value(sq);
	for (i = 0; i < sizeof(out) / sizeof(out[0]); i++)
		if (type_is(j, out[i]))
			count(e, str_bytes(json_object_get(j, "delta")), true);
	for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (type_is(j, extra[i]))
			count(e, str_bytes(json_object_get(j, "delta")), false);
	if (type_is(j, "response.completed") || type_is(j, "response.incomplete") ||
	    type_is(j, "response.failed")) {
		take_usage(&s->usage, s->o.shape,
			   json_object_get(json_object_get(j, "response"), "usage"), true);
		s->done = true;
	}
	if (type_is(j, "error") || type_is(j, "response.failed"))
		s->upstream_error = true;
}

static void ev_gemini(struct lt_llm_sse *s, json_t *j, struct ev *e)
{
	json_t *cands = json_object_get(j, "candidates"), *c, *parts, *p;
	bool finished = false;
	uint64_t n;
	size_t i, k;

	if (json_is_object(json_object_get(j, "error")))
		s->upstream_error = true;
	json_array_foreach(cands, i, c) {
		n = 0;
		parts = json_object_get(json_object_get(c, "content"), "parts");
		json_array_foreach(parts, k, p) {
			n += str_bytes(json_object_get(p, "text")); /* thought parts too */
			n += dump_bytes(json_object_get(p, "functionCall"));
			n += dump_bytes(json_object_get(p, "function_call"));
			n += str_bytes(
				json_object_get(json_object_get(p, "executableCode"), "code"));
		}
		count(e, n, true);
		finished |= json_is_string(json_object_get(c, "finishReason"));
	}
	take_usage(&s->usage, s->o.shape, json_object_get(j, "usageMetadata"), finished);
}

static void ev_anthropic(struct lt_llm_sse *s, json_t *j, struct ev *e)
{
	json_t *d, *b;

	if (type_is(j, "message_start")) {
		take_usage(&s->usage, s->o.shape,
			   json_object_get(json_object_get(j, "message"), "usage"), false);
	} else if (type_is(j, "content_block_start")) {
		b = json_object_get(j, "content_block");
		count(e,
		      str_bytes(json_object_get(b, "text")) +
			      str_bytes(json_object_get(b, "thinking")) +
			      str_bytes(json_object_get(b, "name")),
		      true);
	} else if (type_is(j, "content_block_delta")) {
		d = json_object_get(j, "delta");
		count(e,
		      str_bytes(json_object_get(d, "text")) +
			      str_bytes(json_object_get(d, "thinking")) +
			      str_bytes(json_object_get(d, "partial_json")),
		      true);
	} else if (type_is(j, "message_delta")) {
		take_usage(&s->usage, s->o.shape, json_object_get(j, "usage"), true);
	} else if (type_is(j, "message_stop")) {
		s->done = true;
	} else if (type_is(j, "error")) {
		s->upstream_error = true;
	}
}

/* --- the cut ------------------------------------------------------------ */

static int buf_add(struct lt_llm_buf *b, const void *p, size_t n)
{
	size_t cap;
	char *q;

	if (!n)
		return 0;
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int buf_str(struct lt_llm_buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int lt_llm_cut_event(const struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	char msg[160], ev[512];

	snprintf(msg, sizeof(msg),
		 "the output reached this request's token allowance (%" PRIu64
		 " tokens); the gateway ended the stream",
		 s->o.resv.output_tokens);
	switch (s->o.shape) {
	case LT_LLM_RESPONSES:
		snprintf(
			ev, sizeof(ev),
			"event: error\ndata: {\"type\":\"error\",\"code\":\"output_limit_reached\","
			"\"message\":\"%s\",\"param\":null,\"sequence_number\":%" PRId64 "}\n\n",
			msg, s->seq + 1);
		break;
	case LT_LLM_ANTHROPIC:
		snprintf(ev, sizeof(ev),
			 "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
			 "\"rate_limit_error\",\"message\":\"%s\"}}\n\n",
			 msg);
		break;
	case LT_LLM_GEMINI:
		snprintf(ev, sizeof(ev),
			 "data: {\"error\":{\"code\":429,\"message\":\"%s\",\"status\":"
			 "\"RESOURCE_EXHAUSTED\"}}\n\n",
			 msg);
		break;
	default:
		snprintf(ev, sizeof(ev),
			 "data: {\"error\":{\"message\":\"%s\",\"type\":\"tokens\",\"param\":null,"
			 "\"code\":\"output_limit_reached\"}}\n\ndata: [DONE]\n\n",
			 msg);
	}
	return buf_str(out, ev);
}

/* 1 if forwarding an event with e's output would pass the budget. */
static bool over_budget(const struct lt_llm_sse *s, const struct ev *e)
{
	const struct lt_llm_resv *v = &s->o.resv;
	uint64_t budget, lower;

	switch (s->o.cut) {
	case LT_LLM_CUT_BYTES:
		if (!e->bytes)
			return false;
		budget = v->output_tokens;
		if (s->usage.has_input && v->total_tokens > s->usage.input_tokens &&
		    v->total_tokens - s->usage.input_tokens > budget)
			budget = v->total_tokens - s->usage.input_tokens;
		return lt_llm_sat_add(s->out_bytes, e->bytes) > budget;
	case LT_LLM_CUT_TOKENS:
		lower = lt_llm_sat_add(s->out_deltas, e->deltas);
		if (s->usage.output_tokens > lower)
			lower = s->usage.output_tokens;
		return lower > v->output_tokens;
	default:
		return false;
	}
}

/* --- the SSE parser ----------------------------------------------------- */

enum { ST_LINE, ST_FIELD, ST_VALUE1, ST_VALUE, ST_IGNORE };
enum { F_NONE, F_DATA, F_EVENT };

void lt_llm_sse_init(struct lt_llm_sse *s, const struct lt_llm_sse_opts *o)
{
	memset(s, 0, sizeof(*s));
	s->o = *o;
	s->seq = -1;
}

void lt_llm_sse_release(struct lt_llm_sse *s)
{
	free(s->raw.p);
	free(s->data.p);
	memset(&s->raw, 0, sizeof(s->raw));
	memset(&s->data, 0, sizeof(s->data));
}

static bool event_is(const struct lt_llm_sse *s, const char *name)
{
	return !strcmp(s->event, name);
}

/* Events of a large size that repeat output already counted from its deltas. */
static bool repeats_output(const struct lt_llm_sse *s)
{
	static const char *const rep[] = {
		"response.completed",
		"response.incomplete",
		"response.failed",
		"response.created",
		"response.in_progress",
		"response.output_item.done",
		"response.content_part.done",
		"response.output_text.done",
		"message_start",
		"content_block_stop",
		"response.function_call_arguments.done",
	};
	unsigned i;

	for (i = 0; i < sizeof(rep) / sizeof(rep[0]); i++)
		if (event_is(s, rep[i]))
			return true;
	return false;
}

/* The ring's bytes in order, into buf (LT_LLM_SSE_TAIL); returns the length. */
static size_t tail_linear(const struct lt_llm_sse *s, char *buf)
{
	size_t n = s->tlen < LT_LLM_SSE_TAIL ? s->tlen : LT_LLM_SSE_TAIL;
	size_t start = s->tlen % LT_LLM_SSE_TAIL;

	if (s->tlen <= LT_LLM_SSE_TAIL) {
		memcpy(buf, s->tail, n);
		return n;
	}
	memcpy(buf, s->tail + start, LT_LLM_SSE_TAIL - start);
	memcpy(buf + LT_LLM_SSE_TAIL - start, s->tail, start);
	return n;
}

/*
 * A big event's usage, from the last bytes of its data: the last
 * "usage"/"usageMetadata" key whose opening quote is not escaped (so it is
 * a key or string of the JSON text, never inside one), followed by an
 * object that closes within the tail.
 */
static void tail_usage(struct lt_llm_sse *s)
{
	const char *key = s->o.shape == LT_LLM_GEMINI ? "\"usageMetadata\"" : "\"usage\"";
	size_t klen = strlen(key), n, i, j, bs, depth;
	char *t = malloc(LT_LLM_SSE_TAIL);
	bool final, in_str;
	json_t *o;

	if (!t)
		return;
	n = tail_linear(s, t);
	for (i = n >= klen ? n - klen + 1 : 0; i-- > 0;) {
		if (memcmp(t + i, key, klen))
			continue;
		for (bs = 0; bs < i && t[i - 1 - bs] == '\\'; bs++)
			;
		if (bs % 2)
			continue;
		for (j = i + klen; j < n && (t[j] == ' ' || t[j] == ':' || t[j] == '\n'); j++)
			;
		if (j >= n || t[j] != '{')
			continue;
		for (depth = 0, in_str = false, bs = j; bs < n; bs++) {
			if (in_str) {
				if (t[bs] == '\\')
					bs++;
				else if (t[bs] == '"')
					in_str = false;
			} else if (t[bs] == '"') {
				in_str = true;
			} else if (t[bs] == '{') {
				depth++;
			} else if (t[bs] == '}' && --depth == 0) {
				break;
			}
		}
		if (bs >= n)
			continue;
		o = json_loadb(t + j, bs - j + 1, 0, NULL);
		final = s->o.shape == LT_LLM_CHAT || s->o.shape == LT_LLM_COMPLETIONS ||
			(s->o.shape == LT_LLM_RESPONSES && repeats_output(s)) ||
			(s->o.shape == LT_LLM_ANTHROPIC && event_is(s, "message_delta")) ||
			(s->o.shape == LT_LLM_GEMINI && memmem(t, n, "\"finishReason\"", 14));
		take_usage(&s->usage, s->o.shape, o, final);
		json_decref(o);
		break;
	}
	free(t);
}

/* The held event is complete: parse, count, then forward, drop or cut it. */
static int dispatch(struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	struct ev e = { 0 };
	bool forward = true;
	json_t *j;
	int rc = 0;

	if (s->big) {
		if (!repeats_output(s))
			s->out_bytes = lt_llm_sat_add(s->out_bytes, s->tlen);
		tail_usage(s);
		s->oversize++;
		goto reset;
	}
	if (s->data.len) {
		s->events++;
		s->data.len--; /* the last data line's LF */
		if (s->data.len == 6 && !memcmp(s->data.p, "[DONE]", 6)) {
			s->done = true;
			if (s->usage.has_input) /* the usage seen so far was the last */
				s->usage.final = true;
		} else if ((j = json_loadb(s->data.p, s->data.len, 0, NULL))) {
			switch (s->o.shape) {
			case LT_LLM_RESPONSES:
				ev_responses(s, j, &e);
				break;
			case LT_LLM_GEMINI:
				ev_gemini(s, j, &e);
				break;
			case LT_LLM_ANTHROPIC:
				ev_anthropic(s, j, &e);
				break;
			default:
				ev_openai(s, j, &e);
			}
			json_decref(j);
		}
		if (!s->cut && over_budget(s, &e)) {
			s->cut = true;
			forward = false;
			rc = lt_llm_cut_event(s, out);
		}
		s->out_bytes = lt_llm_sat_add(s->out_bytes, e.bytes);
		s->out_deltas = lt_llm_sat_add(s->out_deltas, e.deltas);
		if (e.usage_chunk && s->o.drop_usage_chunk)
			forward = false;
	}
	if (forward && !s->cut)
		rc = buf_add(out, s->raw.p, s->raw.len);
reset:
	s->fwd_last = s->big ? !s->cut : forward && !s->cut;
	s->raw.len = 0;
	s->data.len = 0;
	s->event[0] = 0;
	s->elen = 0;
	s->big = false;
	s->tlen = 0;
	return rc;
}

/* The current event outgrew the hold: forward what is held, stream the rest. */
static int go_big(struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	size_t i;

	s->big = true;
	for (i = 0; i < s->data.len; i++)
		s->tail[(s->tlen + i) % LT_LLM_SSE_TAIL] = s->data.p[i];
	s->tlen += s->data.len;
	s->data.len = 0;
	if (!s->cut && buf_add(out, s->raw.p, s->raw.len))
		return -ENOMEM;
	s->raw.len = 0;
	return 0;
}

static int data_byte(struct lt_llm_sse *s, char c, struct lt_llm_buf *out)
{
	if (s->big) {
		s->tail[s->tlen % LT_LLM_SSE_TAIL] = c;
		s->tlen++;
		return 0;
	}
	if (buf_add(&s->data, &c, 1))
		return -ENOMEM;
	if (s->data.len > LT_LLM_SSE_EVENT_MAX || s->raw.len > 2 * LT_LLM_SSE_EVENT_MAX)
		return go_big(s, out);
	return 0;
}

/* A field line ended. */
static int end_field(struct lt_llm_sse *s, int f, struct lt_llm_buf *out)
{
	if (f == F_DATA)
		return data_byte(s, '\n', out);
	return 0;
}

int lt_llm_sse_feed(struct lt_llm_sse *s, const void *piece, size_t len, struct lt_llm_buf *out)
{
	const char *p = piece;
	size_t i;
	int rc;
	char c;

	for (i = 0; i < len; i++) {
		c = p[i];
		if (s->cr && c == '\n') {
			/* the LF of a CRLF: the line already ended at the CR */
			s->cr = false;
			if (s->st == ST_LINE && !s->raw.len && !s->data.len && !s->elen) {
				if (s->fwd_last && (rc = buf_add(out, &c, 1)))
					return rc;
				continue;
			}
			if (!s->big && !s->cut && buf_add(&s->raw, &c, 1))
				return -ENOMEM;
			if (s->big && !s->cut && buf_add(out, &c, 1))
				return -ENOMEM;
			continue;
		}
		s->cr = c == '\r';
		/* every byte is held with its event, or streamed once the event is big */
		if (s->big) {
			if (!s->cut && (rc = buf_add(out, &c, 1)))
				return rc;
		} else if ((rc = buf_add(&s->raw, &c, 1))) {
			return rc;
		}
		if (s->raw.len > 2 * LT_LLM_SSE_EVENT_MAX && !s->big && (rc = go_big(s, out)))
			return rc;
		switch (s->st) {
		case ST_LINE:
			if (c == '\n' || c == '\r') {
				if ((rc = dispatch(s, out)))
					return rc;
			} else if (c == ':') {
				s->st = ST_IGNORE;
			} else {
				s->field[0] = c;
				s->flen = 1;
				s->field[1] = 0;
				s->st = ST_FIELD;
			}
			break;
		case ST_FIELD:
			if (c == '\n' || c == '\r' || c == ':')
				s->fkind = !strcmp(s->field, "data")  ? F_DATA :
					   !strcmp(s->field, "event") ? F_EVENT :
									F_NONE;
			if (c == '\n' || c == '\r') {
				/* a field without a colon: its value is empty */
				if ((rc = end_field(s, s->fkind, out)))
					return rc;
				s->field[0] = 0;
				s->st = ST_LINE;
			} else if (c == ':') {
				s->st = ST_VALUE1;
				if (s->fkind == F_EVENT) {
					s->elen = 0;
					s->event[0] = 0;
				}
			} else if (s->flen + 1 < sizeof(s->field)) {
				s->field[s->flen++] = c;
				s->field[s->flen] = 0;
			} else {
				s->field[0] = '-'; /* too long for a known field */
				s->field[1] = 0;
			}
			break;
		case ST_VALUE1:
		case ST_VALUE:
			if (c == '\n' || c == '\r') {
				if ((rc = end_field(s, s->fkind, out)))
					return rc;
				s->field[0] = 0;
				s->st = ST_LINE;
				break;
			}
			if (s->st == ST_VALUE1) {
				s->st = ST_VALUE;
				if (c == ' ')
					break;
			}
			if (s->fkind == F_DATA) {
				if ((rc = data_byte(s, c, out)))
					return rc;
			} else if (s->fkind == F_EVENT && s->elen + 1 < sizeof(s->event)) {
				s->event[s->elen++] = c;
				s->event[s->elen] = 0;
			}
			break;
		default: /* a comment */
			if (c == '\n' || c == '\r')
				s->st = ST_LINE;
		}
	}
	return s->cut ? LT_LLM_SSE_CUT : 0;
}

int lt_llm_sse_finish(struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	int rc = 0;

	/* an unterminated event is not dispatched (the spec drops it); its bytes still go on */
	if (!s->cut && !s->big)
		rc = buf_add(out, s->raw.p, s->raw.len);
	s->raw.len = 0;
	s->data.len = 0;
	return rc;
}

void lt_llm_reconcile(const struct lt_llm_resv *v, const struct lt_llm_usage *u,
		      uint64_t counted_output, struct lt_llm_settle *out)
{
	uint64_t in, o;

	if (u->final) {
		out->used = lt_llm_sat_add(u->input_tokens, u->output_tokens);
	} else {
		in = u->has_input ? u->input_tokens : v->prompt_tokens;
		o = v->output_tokens;
		if (counted_output > o)
			o = counted_output;
		if (u->output_tokens > o)
			o = u->output_tokens;
		out->used = lt_llm_sat_add(in, o);
	}
	out->refund = out->used <= v->total_tokens ? v->total_tokens - out->used : 0;
	out->excess = out->used > v->total_tokens ? out->used - v->total_tokens : 0;
}
