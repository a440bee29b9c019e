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
#include "llm_json.h"
#include "llm_usage.h"

/* --- usage objects ------------------------------------------------------ */

/*
 * The integer fields of one usage object, by the shape's names. r[i]: 1 a
 * non-negative integer in v[i], 0 absent or null, -1 anything else.
 */
#define UF_MAX 5

struct ufields {
	bool seen; /* a usage object was there */
	int r[UF_MAX];
	uint64_t v[UF_MAX];
};

static const char *const openai_names[UF_MAX] = { "prompt_tokens", "completion_tokens",
						  "total_tokens", "input_tokens", "output_tokens" };
static const char *const gemini_names[UF_MAX] = { "promptTokenCount", "candidatesTokenCount",
						  "thoughtsTokenCount", "toolUsePromptTokenCount",
						  NULL };
static const char *const anthropic_names[UF_MAX] = { "input_tokens", "output_tokens",
						     "cache_creation_input_tokens",
						     "cache_read_input_tokens", NULL };

static const char *const *usage_names(enum lt_llm_shape shape)
{
	return shape == LT_LLM_GEMINI	 ? gemini_names :
	       shape == LT_LLM_ANTHROPIC ? anthropic_names :
					   openai_names;
}

static void fields_from_json(enum lt_llm_shape shape, json_t *o, struct ufields *f)
{
	const char *const *names = usage_names(shape);
	json_t *x;
	int i;

	memset(f, 0, sizeof(*f));
	if (!json_is_object(o))
		return;
	f->seen = true;
	for (i = 0; i < UF_MAX && names[i]; i++) {
		x = json_object_get(o, names[i]);
		if (!x || json_is_null(x))
			continue;
		if (!json_is_integer(x) || json_integer_value(x) < 0) {
			f->r[i] = -1;
			continue;
		}
		f->r[i] = 1;
		f->v[i] = (uint64_t)json_integer_value(x);
	}
}

/*
 * What a usage object says: 0 input and output, 1 output only (Anthropic's
 * message_delta), -1 no usage or a field of the wrong type (then nothing is
 * taken: a half-read usage could undercharge).
 */
static int usage_calc(enum lt_llm_shape shape, const struct ufields *f, uint64_t *in, uint64_t *out,
		      bool *has_out)
{
	const int *r = f->r;
	const uint64_t *v = f->v;

	*has_out = false;
	if (!f->seen)
		return -1;
	switch (shape) {
	case LT_LLM_GEMINI:
		if (r[0] <= 0 || r[1] < 0 || r[2] < 0 || r[3] < 0)
			return -1;
		*in = lt_llm_sat_add(v[0], v[3]);
		*out = lt_llm_sat_add(v[1], v[2]);
		*has_out = r[1] > 0 || r[2] > 0;
		return 0;
	case LT_LLM_ANTHROPIC:
		if (r[0] < 0 || r[1] < 0 || r[2] < 0 || r[3] < 0 || (!r[0] && !r[1]))
			return -1;
		/* message_delta may carry output only: *in is then left alone */
		if (r[0])
			*in = lt_llm_sat_add(lt_llm_sat_add(v[0], v[2]), v[3]);
		*out = v[1];
		*has_out = r[1] > 0;
		return r[0] ? 0 : 1;
	default:
		/* OpenAI names first; Responses and DashScope native name them input/output */
		if (r[0] > 0) {
			if (r[1] < 0)
				return -1;
			*in = v[0];
			*out = v[1];
			if (!r[1] && r[2] > 0 && v[2] >= v[0])
				*out = v[2] - v[0]; /* embeddings: total = prompt */
		} else if (!r[0] && r[3] > 0 && r[4] >= 0) {
			*in = v[3];
			*out = v[4];
		} else {
			return -1;
		}
		*has_out = true;
		return 0;
	}
}

/* Applies a usage object to u; final says the provider's count is complete. */
static void take_usage(struct lt_llm_usage *u, enum lt_llm_shape shape, const struct ufields *f,
		       bool final)
{
	uint64_t in = u->input_tokens, out = 0;
	bool has_out;
	int rc = usage_calc(shape, f, &in, &out, &has_out);

	if (rc < 0)
		return;
	/*
	 * Counts only grow: a second usage report lower than the first (a
	 * provider that reports twice) does not take back what it said.
	 */
	if (rc == 0 && (!u->has_input || in > u->input_tokens))
		u->input_tokens = in;
	if (rc == 0)
		u->has_input = true;
	if (has_out && out > u->output_tokens) /* cumulative counts only grow */
		u->output_tokens = out;
	if (final && u->has_input)
		u->final = true;
}

static void take_json(struct lt_llm_usage *u, enum lt_llm_shape shape, json_t *o, bool final)
{
	struct ufields f;

	fields_from_json(shape, o, &f);
	take_usage(u, shape, &f, final);
}

/* The scanner's view of one usage object at path depth d-1 (its members at d). */
static void fields_scan(enum lt_llm_shape shape, const struct lt_jscan *j, enum lt_jtok t,
			unsigned d, struct ufields *f)
{
	const char *const *names = usage_names(shape);
	const struct lt_jcomp *c;
	int i;

	if (j->depth == d - 1) {
		/* the usage value itself: an object starts a fresh set, anything else is none */
		if (t == LT_J_OBJ) {
			memset(f, 0, sizeof(*f));
			f->seen = true;
		} else if (t != LT_J_END) {
			memset(f, 0, sizeof(*f));
		}
		return;
	}
	if (j->depth != d || t == LT_J_END)
		return;
	c = &j->path[d - 1];
	if (!c->key)
		return;
	for (i = 0; i < UF_MAX && names[i]; i++) {
		if (c->klen != strlen(names[i]) || memcmp(c->key, names[i], c->klen))
			continue;
		if (t == LT_J_NULL) {
			f->r[i] = 0;
		} else if (t == LT_J_INT && j->ival >= 0) {
			f->r[i] = 1;
			f->v[i] = (uint64_t)j->ival;
		} else {
			f->r[i] = -1;
		}
	}
}

/* --- output counting per event ------------------------------------------ */

struct ev {
	uint64_t bytes; /* generated text bytes in this event */
	uint64_t deltas; /* non-empty generated deltas in it */
	bool usage_chunk; /* OpenAI's usage-only chunk (choices: []) */
	/* Responses' final event: the bytes of output text and arguments it holds */
	uint64_t summary;
};

static uint64_t str_bytes(json_t *v)
{
	return json_is_string(v) ? json_string_length(v) : 0;
}

/*
 * Bytes of a structured value as generated text (a Gemini functionCall):
 * a string its bytes + 2, a number 24, true/false/null 5, an object or
 * array 2 plus, per member, its key + 4 and, per element, 2.
 */
static uint64_t sbytes(json_t *v)
{
	uint64_t n = 2;
	const char *k;
	json_t *e;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_string_length(v) + 2;
	case JSON_INTEGER:
	case JSON_REAL:
		return 24;
	case JSON_OBJECT:
		json_object_foreach(v, k, e)
			n = lt_llm_sat_add(n, strlen(k) + 4 + sbytes(e));
		return n;
	case JSON_ARRAY:
		json_array_foreach(v, i, e)
			n = lt_llm_sat_add(n, sbytes(e) + 2);
		return n;
	default:
		return 5;
	}
}

/*
 * A delta of n text bytes carries at least one token, and at least one per
 * LT_LLM_TOKEN_BYTES_MAX bytes: a provider that packs a whole answer into
 * a few deltas is counted by what they hold, not by how many they are.
 */
static void count(struct ev *e, uint64_t n, bool delta)
{
	e->bytes = lt_llm_sat_add(e->bytes, n);
	if (n && delta)
		e->deltas = lt_llm_sat_add(e->deltas, 1 + (n - 1) / LT_LLM_TOKEN_BYTES_MAX);
}

/*
 * A chat delta with audio: its base64 bytes are output bytes, but an audio
 * token stands for far more of them than a text token does (about a
 * kilobyte of base64 at 24 kHz), so audio adds one token, not one per
 * LT_LLM_TOKEN_BYTES_MAX.
 */
static void count_audio(struct ev *e, uint64_t text, uint64_t audio)
{
	count(e, text, true);
	e->bytes = lt_llm_sat_add(e->bytes, audio);
	if (!text && audio)
		e->deltas = lt_llm_sat_add(e->deltas, 1);
}

static bool type_is(json_t *j, const char *t)
{
	json_t *v = json_object_get(j, "type");

	return json_is_string(v) && !strcmp(json_string_value(v), t);
}

static const char *const resp_out[] = {
	"response.output_text.delta",
	"response.refusal.delta",
	"response.function_call_arguments.delta",
	"response.custom_tool_call_input.delta",
	"response.reasoning_text.delta",
	NULL,
};

/* text, but not a token per delta (a summary, a transcript) */
static const char *const resp_extra[] = {
	"response.reasoning_summary_text.delta",
	"response.audio.transcript.delta",
	NULL,
};

static bool in_list(const char *t, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(t, *list))
			return true;
	return false;
}

/*
 * The reference reading of one event with jansson: what the allocation-free
 * scanner below must agree with (the fuzz harness compares them), and the
 * fallback for events the scanner refuses.
 */
static void ev_json(struct lt_llm_sse *s, json_t *j, struct ev *e)
{
	json_t *ch, *c, *d, *tc, *t, *f, *parts, *p, *ty, *sq;
	bool finished = false;
	size_t i, k;
	uint64_t n, a;

	switch (s->o.shape) {
	case LT_LLM_RESPONSES:
		sq = json_object_get(j, "sequence_number");
		if (json_is_integer(sq))
			s->seq = json_integer_value(sq);
		ty = json_object_get(j, "type");
		if (json_is_string(ty) && in_list(json_string_value(ty), resp_out))
			count(e, str_bytes(json_object_get(j, "delta")), true);
		if (json_is_string(ty) && in_list(json_string_value(ty), resp_extra))
			count(e, str_bytes(json_object_get(j, "delta")), false);
		if (type_is(j, "response.completed") || type_is(j, "response.incomplete") ||
		    type_is(j, "response.failed")) {
			take_json(&s->usage, s->o.shape,
				  json_object_get(json_object_get(j, "response"), "usage"), true);
			s->done = true;
			json_array_foreach(
				json_object_get(json_object_get(j, "response"), "output"), i, c) {
				n = str_bytes(json_object_get(c, "arguments"));
				json_array_foreach(json_object_get(c, "content"), k, p)
					n += str_bytes(json_object_get(p, "text"));
				e->summary = lt_llm_sat_add(e->summary, n);
			}
		}
		if (type_is(j, "error") || type_is(j, "response.failed"))
			s->upstream_error = true;
		return;
	case LT_LLM_GEMINI:
		if (json_is_object(json_object_get(j, "error")))
			s->upstream_error = true;
		json_array_foreach(json_object_get(j, "candidates"), i, c) {
			n = 0;
			parts = json_object_get(json_object_get(c, "content"), "parts");
			json_array_foreach(parts, k, p) {
				n += str_bytes(json_object_get(p, "text")); /* thought parts too */
				if ((f = json_object_get(p, "functionCall")))
					n += sbytes(f);
				if ((f = json_object_get(p, "function_call")))
					n += sbytes(f);
				n += str_bytes(json_object_get(json_object_get(p, "executableCode"),
							       "code"));
			}
			count(e, n, true);
			finished |= json_is_string(json_object_get(c, "finishReason"));
		}
		take_json(&s->usage, s->o.shape, json_object_get(j, "usageMetadata"), finished);
		return;
	case LT_LLM_ANTHROPIC:
		if (type_is(j, "message_start")) {
			take_json(&s->usage, s->o.shape,
				  json_object_get(json_object_get(j, "message"), "usage"), false);
		} else if (type_is(j, "content_block_start")) {
			c = json_object_get(j, "content_block");
			count(e,
			      str_bytes(json_object_get(c, "text")) +
				      str_bytes(json_object_get(c, "thinking")) +
				      str_bytes(json_object_get(c, "name")),
			      true);
		} else if (type_is(j, "content_block_delta")) {
			d = json_object_get(j, "delta");
			count(e,
			      str_bytes(json_object_get(d, "text")) +
				      str_bytes(json_object_get(d, "thinking")) +
				      str_bytes(json_object_get(d, "partial_json")),
			      true);
		} else if (type_is(j, "message_delta")) {
			take_json(&s->usage, s->o.shape, json_object_get(j, "usage"), true);
		} else if (type_is(j, "message_stop")) {
			s->done = true;
		} else if (type_is(j, "error")) {
			s->upstream_error = true;
		}
		return;
	default:
		break;
	}
	ch = json_object_get(j, "choices");
	if (json_is_object(json_object_get(j, "error")))
		s->upstream_error = true;
	if (json_is_object(json_object_get(j, "usage"))) {
		/*
		 * Final only on the documented usage chunk (choices: []): a server
		 * that reports running usage on every chunk (vLLM's
		 * continuous_usage_stats) is final at [DONE], not before.
		 */
		e->usage_chunk = json_is_array(ch) && !json_array_size(ch);
		take_json(&s->usage, s->o.shape, json_object_get(j, "usage"), e->usage_chunk);
	}
	json_array_foreach(ch, i, c) {
		a = 0;
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
			a = str_bytes(json_object_get(f, "data"));
		}
		count_audio(e, n, a);
	}
}

/* --- the same with the allocation-free scanner --------------------------- */

struct evscan {
	enum lt_llm_shape shape;
	bool fallback; /* an escaped key or compared value: let jansson read it */
	struct ufields u1; /* usage, usageMetadata, response.usage */
	struct ufields u2; /* Anthropic message.usage */
	char type[48]; /* the top-level "type", when short and unescaped */
	bool type_set;
	bool error_obj; /* a top-level "error" object */
	bool choices_arr, choices_empty;
	bool finished; /* Gemini: a candidate's finishReason */
	bool has_seq;
	int64_t seq;
	bool has_delta; /* Responses: a top-level "delta" string */
	uint64_t delta_len;
	uint64_t item; /* bytes of the current choice / candidate */
	uint64_t audio; /* bytes of the current choice's delta.audio.data */
	uint64_t cb_bytes, d_bytes; /* Anthropic content_block.*, delta.* */
	struct ev e;
};

static bool key_in(const struct lt_jcomp *c, const char *const *names)
{
	for (; *names; names++)
		if (c->key && c->klen == strlen(*names) && !memcmp(c->key, *names, c->klen))
			return true;
	return false;
}

/* Gemini functionCall subtrees: what sbytes() adds for this value. */
static uint64_t sbytes_step(const struct lt_jscan *j, enum lt_jtok t, unsigned root)
{
	const struct lt_jcomp *c = &j->path[j->depth - 1];
	uint64_t n;

	switch (t) {
	case LT_J_STR:
		n = j->dlen + 2;
		break;
	case LT_J_INT:
	case LT_J_REAL:
		n = 24;
		break;
	case LT_J_OBJ:
	case LT_J_ARR:
		n = 2;
		break;
	case LT_J_END:
		return 0;
	default:
		n = 5;
	}
	if (j->depth > root) /* a member or element of the call: its place */
		n += c->key ? c->klen + 4 : 2;
	return n;
}

static void scan_cb(void *ctx, const struct lt_jscan *j, enum lt_jtok t)
{
	static const char *const delta_keys[] = { "content", "refusal", "reasoning_content",
						  "reasoning", NULL };
	static const char *const fn_keys[] = { "name", "arguments", NULL };
	static const char *const cb_keys[] = { "text", "thinking", "name", NULL };
	static const char *const ad_keys[] = { "text", "thinking", "partial_json", NULL };
	static const char *const fc_keys[] = { "functionCall", "function_call", NULL };
	struct evscan *x = ctx;
	const struct lt_jcomp *p = j->path;
	unsigned d = j->depth;

	if (d && p[d - 1].esc) {
		x->fallback = true;
		return;
	}
	if (d == 1 && LT_JKEY(j, 0, "error") && t == LT_J_OBJ)
		x->error_obj = true;
	else if (d == 1 && LT_JKEY(j, 0, "error") && t != LT_J_END)
		x->error_obj = false;
	if (d == 1 && LT_JKEY(j, 0, "type") && t != LT_J_END) {
		x->type_set = false;
		if (t == LT_J_STR) {
			if (j->vlen != j->dlen || j->vlen >= sizeof(x->type)) {
				x->fallback = j->vlen != j->dlen;
				return;
			}
			memcpy(x->type, j->v, j->vlen);
			x->type[j->vlen] = 0;
			x->type_set = true;
		}
		return;
	}
	switch (x->shape) {
	case LT_LLM_RESPONSES:
		if (d == 1 && LT_JKEY(j, 0, "sequence_number") && t == LT_J_INT) {
			x->has_seq = true;
			x->seq = j->ival;
		} else if (d == 1 && LT_JKEY(j, 0, "delta") && t != LT_J_END) {
			x->has_delta = t == LT_J_STR;
			x->delta_len = t == LT_J_STR ? j->dlen : 0;
		} else if (d >= 2 && LT_JKEY(j, 0, "response") && LT_JKEY(j, 1, "usage")) {
			fields_scan(x->shape, j, t, 3, &x->u1);
		} else if (t == LT_J_STR && d >= 4 && LT_JKEY(j, 0, "response") &&
			   LT_JKEY(j, 1, "output") && !p[2].key &&
			   ((d == 4 && LT_JKEY(j, 3, "arguments")) ||
			    (d == 6 && LT_JKEY(j, 3, "content") && !p[4].key &&
			     LT_JKEY(j, 5, "text")))) {
			x->e.summary = lt_llm_sat_add(x->e.summary, j->dlen);
		}
		return;
	case LT_LLM_GEMINI:
		if (d >= 1 && LT_JKEY(j, 0, "usageMetadata")) {
			fields_scan(x->shape, j, t, 2, &x->u1);
			return;
		}
		if (d < 2 || !LT_JKEY(j, 0, "candidates") || p[1].key)
			return;
		if (d == 2) {
			if (t == LT_J_OBJ)
				x->item = 0;
			else if (t == LT_J_END && j->end_obj)
				count(&x->e, x->item, true);
			return;
		}
		if (d == 3 && LT_JKEY(j, 2, "finishReason") && t == LT_J_STR)
			x->finished = true;
		if (d < 6 || !LT_JKEY(j, 2, "content") || !LT_JKEY(j, 3, "parts") || p[4].key)
			return;
		if (d == 6 && LT_JKEY(j, 5, "text") && t == LT_J_STR)
			x->item += j->dlen;
		else if (d == 7 && LT_JKEY(j, 5, "executableCode") && LT_JKEY(j, 6, "code") &&
			 t == LT_J_STR)
			x->item += j->dlen;
		else if (key_in(&p[5], fc_keys))
			x->item = lt_llm_sat_add(x->item, sbytes_step(j, t, 6));
		return;
	case LT_LLM_ANTHROPIC:
		if (d >= 2 && LT_JKEY(j, 0, "message") && LT_JKEY(j, 1, "usage"))
			fields_scan(x->shape, j, t, 3, &x->u2);
		else if (d >= 1 && LT_JKEY(j, 0, "usage"))
			fields_scan(x->shape, j, t, 2, &x->u1);
		else if (d == 2 && LT_JKEY(j, 0, "content_block") && t == LT_J_STR &&
			 key_in(&p[1], cb_keys))
			x->cb_bytes += j->dlen;
		else if (d == 2 && LT_JKEY(j, 0, "delta") && t == LT_J_STR &&
			 key_in(&p[1], ad_keys))
			x->d_bytes += j->dlen;
		return;
	default:
		break;
	}
	/* OpenAI shapes */
	if (d >= 1 && LT_JKEY(j, 0, "usage")) {
		fields_scan(x->shape, j, t, 2, &x->u1);
		return;
	}
	if (d == 1 && LT_JKEY(j, 0, "choices")) {
		if (t == LT_J_END && !j->end_obj) {
			x->choices_arr = true;
			x->choices_empty = !j->count;
		} else if (t != LT_J_END) {
			x->choices_arr = false;
		}
		return;
	}
	if (d < 2 || !LT_JKEY(j, 0, "choices") || p[1].key)
		return;
	if (d == 2) {
		if (t == LT_J_OBJ)
			x->item = x->audio = 0;
		else if (t == LT_J_END && j->end_obj)
			count_audio(&x->e, x->item, x->audio);
		return;
	}
	if (t != LT_J_STR)
		return;
	if (d == 3 && LT_JKEY(j, 2, "text"))
		x->item += j->dlen;
	else if (!LT_JKEY(j, 2, "delta"))
		return;
	else if (d == 4 && key_in(&p[3], delta_keys))
		x->item += j->dlen;
	else if (d == 5 && LT_JKEY(j, 3, "function_call") && key_in(&p[4], fn_keys))
		x->item += j->dlen;
	else if (d == 5 && LT_JKEY(j, 3, "audio") && LT_JKEY(j, 4, "transcript"))
		x->item += j->dlen;
	else if (d == 5 && LT_JKEY(j, 3, "audio") && LT_JKEY(j, 4, "data"))
		x->audio += j->dlen;
	else if (d == 7 && LT_JKEY(j, 3, "tool_calls") && !p[4].key && LT_JKEY(j, 5, "function") &&
		 key_in(&p[6], fn_keys))
		x->item += j->dlen;
}

/* Applies a scanned event to the stream, as ev_json does for a jansson tree. */
static void ev_apply(struct lt_llm_sse *s, struct evscan *x, struct ev *e)
{
	const char *ty = x->type_set ? x->type : "";

	*e = x->e;
	switch (s->o.shape) {
	case LT_LLM_RESPONSES:
		if (x->has_seq)
			s->seq = x->seq;
		if (in_list(ty, resp_out))
			count(e, x->has_delta ? x->delta_len : 0, true);
		if (in_list(ty, resp_extra))
			count(e, x->has_delta ? x->delta_len : 0, false);
		if (!strcmp(ty, "response.completed") || !strcmp(ty, "response.incomplete") ||
		    !strcmp(ty, "response.failed")) {
			take_usage(&s->usage, s->o.shape, &x->u1, true);
			s->done = true;
		} else {
			e->summary = 0;
		}
		if (!strcmp(ty, "error") || !strcmp(ty, "response.failed"))
			s->upstream_error = true;
		return;
	case LT_LLM_GEMINI:
		if (x->error_obj)
			s->upstream_error = true;
		take_usage(&s->usage, s->o.shape, &x->u1, x->finished);
		return;
	case LT_LLM_ANTHROPIC:
		if (!strcmp(ty, "message_start"))
			take_usage(&s->usage, s->o.shape, &x->u2, false);
		else if (!strcmp(ty, "content_block_start"))
			count(e, x->cb_bytes, true);
		else if (!strcmp(ty, "content_block_delta"))
			count(e, x->d_bytes, true);
		else if (!strcmp(ty, "message_delta"))
			take_usage(&s->usage, s->o.shape, &x->u1, true);
		else if (!strcmp(ty, "message_stop"))
			s->done = true;
		else if (!strcmp(ty, "error"))
			s->upstream_error = true;
		return;
	default:
		if (x->error_obj)
			s->upstream_error = true;
		if (x->u1.seen) {
			e->usage_chunk = x->choices_arr && x->choices_empty;
			take_usage(&s->usage, s->o.shape, &x->u1, e->usage_chunk);
		}
	}
}

/* One event's JSON: scanned without allocating, or read by jansson. */
static void ev_read(struct lt_llm_sse *s, const char *data, size_t len, struct ev *e)
{
	struct evscan x;
	json_t *j;

	memset(e, 0, sizeof(*e));
	if (!s->o.use_jansson) {
		memset(&x, 0, sizeof(x));
		x.shape = s->o.shape;
		if (!lt_jscan(data, len, scan_cb, &x) && !x.fallback) {
			ev_apply(s, &x, e);
			return;
		}
		memset(e, 0, sizeof(*e));
		s->slow_events++;
		j = json_loadb(data, len, 0, NULL);
	} else {
		/* the reference: where keys repeat, jansson keeps the last, the scanner sees all */
		j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
		if (!j && (j = json_loadb(data, len, 0, NULL)))
			s->ref_dups++;
	}
	if (!j)
		return;
	ev_json(s, j, e);
	json_decref(j);
}

/* A whole JSON answer's usage, by the scanner. */
struct jbody {
	enum lt_llm_shape shape;
	struct lt_llm_usage u;
	struct ufields f;
	bool fallback;
};

static void body_cb(void *ctx, const struct lt_jscan *j, enum lt_jtok t)
{
	struct jbody *b = ctx;
	const char *key = b->shape == LT_LLM_GEMINI ? "usageMetadata" : "usage";
	unsigned base = j->depth && !j->path[0].key ? 1 : 0; /* Gemini: an array of chunks */

	if (j->depth && j->path[j->depth - 1].esc) {
		b->fallback = true;
		return;
	}
	if (base && b->shape != LT_LLM_GEMINI)
		return;
	if (j->depth > base && lt_jkey(j, base, key, strlen(key)))
		fields_scan(b->shape, j, t, base + 2, &b->f);
	/* each chunk's usage, when its object ends (the last one is the answer's) */
	if (base && j->depth == 1 && t == LT_J_END) {
		take_usage(&b->u, b->shape, &b->f, false);
		memset(&b->f, 0, sizeof(b->f));
	}
}

int lt_llm_usage_json(enum lt_llm_shape shape, const void *body, size_t len, struct lt_llm_usage *u)
{
	struct jbody b = { .shape = shape };
	json_t *root, *e;
	size_t i;

	memset(u, 0, sizeof(*u));
	if (!lt_jscan(body, len, body_cb, &b) && !b.fallback) {
		if (b.u.has_input) { /* a Gemini array */
			*u = b.u;
			u->final = true;
		} else {
			take_usage(u, shape, &b.f, true);
		}
		return 0;
	}
	root = json_loadb(body, len, 0, NULL);
	if (!root)
		return -EINVAL;
	if (shape == LT_LLM_GEMINI && json_is_array(root)) {
		/* streamGenerateContent without alt=sse, buffered: an array of chunks */
		json_array_foreach(root, i, e)
			take_json(u, shape, json_object_get(e, "usageMetadata"), false);
		if (u->has_input)
			u->final = true;
	} else if (json_is_object(root)) {
		take_json(u, shape,
			  json_object_get(root, shape == LT_LLM_GEMINI ? "usageMetadata" : "usage"),
			  true);
	}
	json_decref(root);
	return 0;
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
		/* in an array: the last element, after a comma if one went before */
		snprintf(ev, sizeof(ev),
			 "%s{\"error\":{\"code\":429,\"message\":\"%s\",\"status\":"
			 "\"RESOURCE_EXHAUSTED\"}}%s",
			 !s->o.json_array	   ? "data: " :
			 s->afwd && !s->acomma_out ? ",\r\n" :
						     "",
			 msg, s->o.json_array ? "]" : "\n\n");
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
		lower = lt_llm_sat_add(lt_llm_sat_add(s->out_deltas, s->out_big), e->deltas);
		if (s->usage.output_tokens > lower)
			lower = s->usage.output_tokens;
		return lower > v->output_tokens;
	default:
		return false;
	}
}

/*
 * How many more data bytes of the current over-long event may go out
 * before the budget is passed (UINT64_MAX: no limit). Its JSON is not read,
 * so each byte counts as a token (a byte-level tokenizer never emits more
 * tokens than bytes): the client never receives more than the budget,
 * whatever the event holds. A Responses summary (big_rep) repeats deltas
 * already counted and is free.
 */
static uint64_t big_room(const struct lt_llm_sse *s)
{
	const struct lt_llm_resv *v = &s->o.resv;
	uint64_t budget, used;

	if (s->big_rep)
		return UINT64_MAX;
	switch (s->o.cut) {
	case LT_LLM_CUT_BYTES:
		budget = v->output_tokens;
		if (s->usage.has_input && v->total_tokens > s->usage.input_tokens &&
		    v->total_tokens - s->usage.input_tokens > budget)
			budget = v->total_tokens - s->usage.input_tokens;
		used = s->out_bytes;
		break;
	case LT_LLM_CUT_TOKENS:
		budget = v->output_tokens;
		used = lt_llm_sat_add(s->out_deltas, s->out_big);
		if (s->usage.output_tokens > used)
			used = s->usage.output_tokens;
		break;
	default:
		return UINT64_MAX;
	}
	used = lt_llm_sat_add(used, s->tlen);
	return used < budget ? budget - used : 0;
}

/*
 * The cut inside an over-long event, part of which already went out: that
 * part cannot be taken back, so it is ended where it stands (an SSE client
 * then dispatches a truncated event, which no JSON reader accepts; an
 * array's JSON is left unfinished) and the final error event follows.
 */
static int cut_inside(struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	s->cut = true;
	if (!s->o.json_array && buf_str(out, "\n\n"))
		return -ENOMEM;
	return lt_llm_cut_event(s, out);
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

/*
 * The Responses events that repeat output already counted from its deltas
 * (a long answer makes them longer than the hold). No other shape has one:
 * Anthropic's message_start and content_block_stop carry no text, and an
 * event name means nothing to a chat client, so a big "response.completed"
 * on a chat stream is output like any other.
 */
static const char *const resp_repeat[] = {
	"response.completed",
	"response.incomplete",
	"response.failed",
	"response.output_item.done",
	"response.content_part.done",
	"response.output_text.done",
	"response.function_call_arguments.done",
	NULL,
};

static bool repeats_output(const struct lt_llm_sse *s)
{
	return s->o.shape == LT_LLM_RESPONSES && in_list(s->event, resp_repeat);
}

/* The top-level "type" of a big event, from the part of its data that was held. */
struct big_type {
	char type[48];
	bool set, mixed; /* a type was seen; two that differ were */
};

static void big_type_cb(void *ctx, const struct lt_jscan *j, enum lt_jtok t)
{
	struct big_type *b = ctx;

	if (j->depth != 1 || !LT_JKEY(j, 0, "type") || t == LT_J_END)
		return;
	if (t != LT_J_STR || j->vlen != j->dlen || j->vlen >= sizeof(b->type) ||
	    (b->set && (strlen(b->type) != j->vlen || memcmp(b->type, j->v, j->vlen)))) {
		b->mixed = true;
		return;
	}
	memcpy(b->type, j->v, j->vlen);
	b->type[j->vlen] = 0;
	b->set = true;
}

/*
 * A big event is a summary when both its event name and the "type" its
 * SDK reads (the JSON's, in its first LT_LLM_SSE_EVENT_MAX bytes) say so:
 * the name alone is the provider's word and the client never sees it.
 */
static bool big_repeats(const struct lt_llm_sse *s)
{
	struct big_type b = { 0 };

	if (!repeats_output(s))
		return false;
	lt_jscan(s->data.p, s->data.len, big_type_cb, &b); /* truncated: -EINVAL, callbacks ran */
	return b.set && !b.mixed && !strcmp(b.type, s->event);
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
			(s->o.shape == LT_LLM_RESPONSES &&
			 (event_is(s, "response.completed") || event_is(s, "response.incomplete") ||
			  event_is(s, "response.failed"))) ||
			(s->o.shape == LT_LLM_ANTHROPIC && event_is(s, "message_delta")) ||
			(s->o.shape == LT_LLM_GEMINI && memmem(t, n, "\"finishReason\"", 14));
		take_json(&s->usage, s->o.shape, o, final);
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
	int rc = 0;

	if (s->big) {
		if (!s->big_rep) {
			s->out_bytes = lt_llm_sat_add(s->out_bytes, s->tlen);
			s->out_big = lt_llm_sat_add(s->out_big, s->tlen);
		}
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
		} else {
			ev_read(s, s->data.p, s->data.len, &e);
		}
		/*
		 * The final response is what SDKs hand the application (openai-node's
		 * finalResponse()): text in it that no delta carried is output, counted
		 * here. An honest one repeats the deltas byte for byte and adds nothing.
		 */
		if (e.summary > s->out_bytes)
			count(&e, e.summary - s->out_bytes, true);
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
	s->big_rep = false;
	s->tlen = 0;
	return rc;
}

/* The current event outgrew the hold: forward what is held, stream the rest. */
/* Appends a big event's data bytes to the ring that keeps its last LT_LLM_SSE_TAIL. */
static void tail_add(struct lt_llm_sse *s, const char *p, size_t n)
{
	size_t skip = n > LT_LLM_SSE_TAIL ? n - LT_LLM_SSE_TAIL : 0, pos, m;

	p += skip;
	s->tlen += skip;
	n -= skip;
	while (n) {
		pos = s->tlen % LT_LLM_SSE_TAIL;
		m = LT_LLM_SSE_TAIL - pos < n ? LT_LLM_SSE_TAIL - pos : n;
		memcpy(s->tail + pos, p, m);
		s->tlen += m;
		p += m;
		n -= m;
	}
}

/*
 * The current event outgrew the hold: forward what is held and stream the
 * rest, counting its data bytes as they pass (big_room). An event whose
 * held part alone passes the budget is replaced by the cut whole, as a
 * small one is.
 */
static int go_big(struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	int rc = 0;

	s->big = true;
	s->big_rep = big_repeats(s);
	if (!s->cut && s->data.len > big_room(s)) {
		s->cut = true;
		rc = lt_llm_cut_event(s, out);
	}
	tail_add(s, s->data.p, s->data.len);
	s->data.len = 0;
	if (!rc && !s->cut && buf_add(out, s->raw.p, s->raw.len))
		rc = -ENOMEM;
	s->raw.len = 0;
	return rc;
}

/*
 * A run of n bytes inside a field value or a comment, none of them CR or LF:
 * held (or streamed), and appended to the data or the event name.
 */
static int span(struct lt_llm_sse *s, const char *p, size_t n, struct lt_llm_buf *out)
{
	size_t m;
	int rc;

	if (s->big && !s->cut && s->st != ST_IGNORE && s->fkind == F_DATA &&
	    n > (m = big_room(s))) {
		/* exactly the bytes the budget has room for, whatever the pieces were */
		if ((rc = span(s, p, m, out)) || (rc = cut_inside(s, out)))
			return rc;
		return span(s, p + m, n - m, out);
	}
	if (s->big) {
		if (!s->cut && buf_add(out, p, n))
			return -ENOMEM;
	} else if (buf_add(&s->raw, p, n)) {
		return -ENOMEM;
	}
	if (s->st != ST_IGNORE && s->fkind == F_DATA) {
		if (s->big)
			tail_add(s, p, n);
		else if (buf_add(&s->data, p, n))
			return -ENOMEM;
	} else if (s->st != ST_IGNORE && s->fkind == F_EVENT) {
		m = sizeof(s->event) - 1 - s->elen;
		m = m < n ? m : n;
		memcpy(s->event + s->elen, p, m);
		s->elen += m;
		s->event[s->elen] = 0;
	}
	if (!s->big &&
	    (s->data.len > LT_LLM_SSE_EVENT_MAX || s->raw.len > 2 * LT_LLM_SSE_EVENT_MAX))
		return go_big(s, out);
	return 0;
}

static int data_byte(struct lt_llm_sse *s, char c, struct lt_llm_buf *out)
{
	if (s->big) {
		tail_add(s, &c, 1);
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

/* --- a JSON array of events (Gemini without alt=sse) ----------------------- */

enum { A_BEFORE, A_SEP, A_ELEM, A_AFTER, A_RAW };

static const char BOM[] = "\xef\xbb\xbf"; /* UTF-8's byte order mark */

/*
 * An element closed: it is an event whose data is its JSON text (dispatch
 * wants the data to end in the LF that ends an SSE data line).
 */
static int array_event(struct lt_llm_sse *s, struct lt_llm_buf *out)
{
	int rc;

	if (!s->big && buf_add(&s->data, "\n", 1))
		return -ENOMEM;
	rc = dispatch(s, out);
	if (!rc && s->fwd_last) {
		s->afwd = true;
		s->acomma_out = false;
	}
	s->ast = A_SEP;
	return rc;
}

/* One byte of an element that is held, or streamed once it is big. */
static int array_byte(struct lt_llm_sse *s, char c, struct lt_llm_buf *out)
{
	if (s->big) {
		if (!s->cut && !big_room(s) && cut_inside(s, out))
			return -ENOMEM;
		tail_add(s, &c, 1);
		return !s->cut && buf_add(out, &c, 1) ? -ENOMEM : 0;
	}
	if (buf_add(&s->raw, &c, 1) || buf_add(&s->data, &c, 1))
		return -ENOMEM;
	if (s->data.len > LT_LLM_SSE_EVENT_MAX)
		return go_big(s, out);
	return 0;
}

/*
 * The top-level array is split into its elements by a byte scanner that
 * knows only strings, escapes and brackets: an element ends where its
 * brackets balance. Separators are held with the element they precede, so
 * a cut element takes its comma with it. A body that is not an array of
 * objects (an error object, a proxy's page) is forwarded as is and counts
 * nothing: its usage is then unknown and the request is charged its whole
 * reservation (lt_llm_reconcile).
 */
static int array_feed(struct lt_llm_sse *s, const char *p, size_t len, struct lt_llm_buf *out)
{
	size_t i;
	int rc;
	char c;

	for (i = 0; i < len; i++) {
		c = p[i];
		if (s->cut)
			break;
		switch (s->ast) {
		case A_BEFORE:
			if (s->bom < 3 && c == BOM[s->bom]) {
				/* a BOM before the array: a client's UTF-8 decoding drops it */
				s->bom++;
				if ((rc = buf_add(out, &c, 1)))
					return rc;
				break;
			}
			if (c != '[' && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
				/*
				 * Not an array: an event stream (alt=sse, or a provider
				 * that read the query otherwise), read as one, so events
				 * in a body labelled as an array are counted all the same.
				 */
				s->o.json_array = false;
				return lt_llm_sse_feed(s, p + i, len - i, out);
			}
			if (c == '[')
				s->ast = A_SEP;
			if ((rc = buf_add(out, &c, 1)))
				return rc;
			break;
		case A_SEP:
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				if (buf_add(&s->raw, &c, 1))
					return -ENOMEM;
				/* a run of blanks is not held: it goes on, with the comma before it */
				if (s->raw.len >= 64) {
					if (buf_add(out, s->raw.p, s->raw.len))
						return -ENOMEM;
					s->raw.len = 0;
					s->acomma_out = s->acomma;
				}
			} else if (c == ',' && s->aseen && !s->acomma) {
				s->acomma = true;
				if (buf_add(&s->raw, &c, 1))
					return -ENOMEM;
			} else if (c == '{' && s->aseen == s->acomma) {
				s->ast = A_ELEM;
				s->adepth = 1;
				s->astr = s->aesc = false;
				s->aseen = true;
				s->acomma = false;
				if (buf_add(&s->raw, &c, 1) || buf_add(&s->data, &c, 1))
					return -ENOMEM;
			} else if (c == ']' && !s->acomma) {
				/* the end: what was held (blanks) goes with it */
				if (buf_add(out, s->raw.p, s->raw.len) || buf_add(out, &c, 1))
					return -ENOMEM;
				s->raw.len = 0;
				s->ast = A_AFTER;
			} else {
				/* not an array of objects: the rest goes through unread */
				if (buf_add(out, s->raw.p, s->raw.len) || buf_add(out, &c, 1))
					return -ENOMEM;
				s->raw.len = 0;
				s->ast = A_RAW;
			}
			break;
		case A_ELEM:
			if ((rc = array_byte(s, c, out)))
				return rc;
			if (s->astr) {
				if (s->aesc)
					s->aesc = false;
				else if (c == '\\')
					s->aesc = true;
				else if (c == '"')
					s->astr = false;
			} else if (c == '"') {
				s->astr = true;
			} else if (c == '{' || c == '[') {
				s->adepth++;
			} else if ((c == '}' || c == ']') && --s->adepth == 0) {
				if ((rc = array_event(s, out)))
					return rc;
			}
			break;
		default: /* A_AFTER, A_RAW */
			if ((rc = buf_add(out, p + i, len - i)))
				return rc;
			i = len;
		}
	}
	return s->cut ? LT_LLM_SSE_CUT : 0;
}

int lt_llm_sse_feed(struct lt_llm_sse *s, const void *piece, size_t len, struct lt_llm_buf *out)
{
	const char *p = piece;
	size_t i;
	int rc;
	char c;

	if (s->o.json_array)
		return array_feed(s, p, len, out);
	for (i = 0; i < len; i++) {
		c = p[i];
		if (s->bom < 3) {
			/*
			 * A client strips one leading BOM (WHATWG: "UTF-8 decode"),
			 * so the field after it is read as theirs: "data" still.
			 */
			if (c == BOM[s->bom]) {
				if ((rc = buf_add(&s->raw, &c, 1)))
					return rc;
				s->bom++;
				continue;
			}
			if (s->bom) {
				/* part of one: decoded as U+FFFD, a field name no client knows */
				s->st = ST_FIELD;
				strcpy(s->field, "-");
				s->flen = 1;
			}
			s->bom = 3;
		}
		if (s->cr && c == '\n') {
			/* the LF of a CRLF: the line already ended at the CR */
			s->cr = false;
			/* between events: it goes with the last one; inside a big one, with it */
			if (s->st == ST_LINE && !s->big && !s->raw.len && !s->data.len &&
			    !s->elen) {
				if (s->fwd_last && !s->cut && (rc = buf_add(out, &c, 1)))
					return rc;
				continue;
			}
			if (!s->big && !s->cut && buf_add(&s->raw, &c, 1))
				return -ENOMEM;
			if (s->big && !s->cut && buf_add(out, &c, 1))
				return -ENOMEM;
			continue;
		}
		if ((s->st == ST_VALUE || s->st == ST_IGNORE || (s->st == ST_VALUE1 && c != ' ')) &&
		    c != '\n' && c != '\r') {
			/*
			 * The bytes up to the end of the line at once, at most what
			 * the hold has room for, so it never grows past its bound.
			 */
			size_t k = i + 1, room = len - i;

			if (!s->big) {
				room = LT_LLM_SSE_EVENT_MAX + 1 -
				       (s->data.len < LT_LLM_SSE_EVENT_MAX ? s->data.len :
									     LT_LLM_SSE_EVENT_MAX);
				if (s->raw.len < 2 * LT_LLM_SSE_EVENT_MAX &&
				    room > 2 * LT_LLM_SSE_EVENT_MAX + 1 - s->raw.len)
					room = 2 * LT_LLM_SSE_EVENT_MAX + 1 - s->raw.len;
				if (room > len - i)
					room = len - i;
			}
			while (k < i + room && p[k] != '\n' && p[k] != '\r')
				k++;
			if (s->st == ST_VALUE1)
				s->st = ST_VALUE;
			s->cr = false;
			if ((rc = span(s, p + i, k - i, out)))
				return rc;
			i = k - 1;
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
		/* never less output than was counted passing: a lower bound the report cannot undercut */
		o = u->output_tokens > counted_output ? u->output_tokens : counted_output;
		out->used = lt_llm_sat_add(u->input_tokens, o);
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
