// SPDX-License-Identifier: MIT
/*
 * test_llm_usage.c - the response side of the LLM routes
 * (gateway/llm_usage.c, issue 9 item 4): usage of each provider shape from
 * JSON and SSE, SSE split at every byte offset, CRLF and CR line ends,
 * comments, multi-line data, huge events, wrong types; the dropped usage
 * chunk; the cut-off and its final event per shape; the reconcile rule.
 */
#include <errno.h>
#include <jansson.h>
#include "lt_test.h"
#include "llm_usage.h"

static const char OPENAI_SSE[] =
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	"\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n"
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	"\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n"
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	"\"delta\":{\"content\":\" w\\u00f6rld\"}}],\"usage\":null}\n\n"
	": keep-alive\n\n"
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	"\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":"
	"{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n"
	"data: [DONE]\n\n";

static const char RESPONSES_SSE[] =
	"event: response.created\n"
	"data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"r\","
	"\"status\":\"in_progress\",\"usage\":null}}\n\n"
	"event: response.output_text.delta\n"
	"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"m\","
	"\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n"
	"event: response.output_text.delta\n"
	"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"m\","
	"\"output_index\":0,\"content_index\":0,\"delta\":\" there\"}\n\n"
	"event: response.completed\n"
	"data: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"r\","
	"\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":"
	"\"output_text\",\"text\":\"Hi there\"}]}],\"usage\":{\"input_tokens\":11,"
	"\"output_tokens\":2,\"total_tokens\":13}}}\n\n";

static const char GEMINI_SSE[] =
	"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},"
	"\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1,"
	"\"totalTokenCount\":8},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n"
	"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo!\"}],\"role\":\"model\"},"
	"\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,"
	"\"candidatesTokenCount\":2,\"thoughtsTokenCount\":5,\"totalTokenCount\":14},"
	"\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n";

static const char ANTHROPIC_SSE[] =
	"event: message_start\n"
	"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
	"\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,"
	"\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n"
	"event: content_block_start\n"
	"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
	"\"text\":\"\"}}\n\n"
	"event: ping\n"
	"data: {\"type\": \"ping\"}\n\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"Hello\"}}\n\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"!\"}}\n\n"
	"event: content_block_stop\n"
	"data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	"event: message_delta\n"
	"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
	"\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
	"event: message_stop\n"
	"data: {\"type\":\"message_stop\"}\n\n";

struct want {
	enum lt_llm_shape shape;
	const char *text;
	uint64_t in, out, out_bytes, out_deltas;
	bool done;
};

static const struct want STREAMS[] = {
	{ LT_LLM_CHAT, OPENAI_SSE, 9, 3, 12, 2, true },
	{ LT_LLM_RESPONSES, RESPONSES_SSE, 11, 2, 8, 2, true },
	{ LT_LLM_GEMINI, GEMINI_SSE, 7, 7, 6, 2, false },
	{ LT_LLM_ANTHROPIC, ANTHROPIC_SSE, 30, 15, 6, 2, true },
};

struct run {
	struct lt_llm_sse s;
	struct lt_llm_buf out;
	int rc; /* the last feed's */
};

/* Feeds text in pieces cut at the offsets in cuts (ascending, ncuts of them). */
static void run_pieces(struct run *r, const struct lt_llm_sse_opts *o, const char *text, size_t len,
		       const size_t *cuts, unsigned ncuts)
{
	size_t at = 0, to;
	unsigned i;

	memset(r, 0, sizeof(*r));
	lt_llm_sse_init(&r->s, o);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		r->rc = lt_llm_sse_feed(&r->s, text + at, to - at, &r->out);
		if (r->rc < 0)
			break;
		at = to;
	}
	if (r->rc >= 0)
		CHECK_EQ(lt_llm_sse_finish(&r->s, &r->out), 0);
}

static void run_done(struct run *r)
{
	lt_llm_sse_release(&r->s);
	free(r->out.p);
}

/* The stream went through unchanged and its numbers are the wanted ones. */
static bool check_run(const struct run *r, const struct want *w, const char *text, size_t len,
		      const char *how)
{
	bool ok = r->rc == 0 && r->out.len == len && !memcmp(r->out.p, text, len) &&
		  r->s.usage.final && r->s.usage.input_tokens == w->in &&
		  r->s.usage.output_tokens == w->out && r->s.out_bytes == w->out_bytes &&
		  r->s.out_deltas == w->out_deltas && r->s.done == w->done && !r->s.cut;

	if (!ok) {
		printf("#   shape %d %s: rc %d out %zu/%zu final %d in %" PRIu64 " out %" PRIu64
		       " bytes %" PRIu64 " deltas %" PRIu64 " done %d\n",
		       w->shape, how, r->rc, r->out.len, len, r->s.usage.final,
		       r->s.usage.input_tokens, r->s.usage.output_tokens, r->s.out_bytes,
		       r->s.out_deltas, r->s.done);
		lt_t_cur_failed = 1;
	}
	return ok;
}

static void each_shape_whole(void)
{
	struct lt_llm_sse_opts o = { 0 };
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(STREAMS) / sizeof(STREAMS[0]); i++) {
		o.shape = STREAMS[i].shape;
		run_pieces(&r, &o, STREAMS[i].text, strlen(STREAMS[i].text), NULL, 0);
		check_run(&r, &STREAMS[i], STREAMS[i].text, strlen(STREAMS[i].text), "whole");
		CHECK_EQ(r.s.slow_events, 0); /* the scanner read every event */
		run_done(&r);
	}
}

/* jansson, the reference reader, gets the same numbers from the same streams. */
static void scanner_agrees_with_jansson(void)
{
	struct lt_llm_sse_opts o = { .use_jansson = true };
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(STREAMS) / sizeof(STREAMS[0]); i++) {
		o.shape = STREAMS[i].shape;
		run_pieces(&r, &o, STREAMS[i].text, strlen(STREAMS[i].text), NULL, 0);
		check_run(&r, &STREAMS[i], STREAMS[i].text, strlen(STREAMS[i].text), "jansson");
		run_done(&r);
	}
}

/* An escaped key is read by jansson: the same meaning, just slower. */
static void escaped_keys_fall_back_to_jansson(void)
{
	static const char text[] =
		"data: {\"ch\\u006fices\":[{\"delta\":{\"cont\\u0065nt\":\"abcd\"}}]}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	struct run r;

	run_pieces(&r, &o, text, strlen(text), NULL, 0);
	CHECK_EQ(r.s.out_bytes, 4);
	CHECK_EQ(r.s.slow_events, 1);
	CHECK(r.s.usage.final && r.s.usage.input_tokens == 2);
	run_done(&r);
}

/* Every stream split in two at every byte offset, and fed byte by byte. */
static void each_shape_split_at_every_offset(void)
{
	struct lt_llm_sse_opts o = { 0 };
	size_t k, len, *all;
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(STREAMS) / sizeof(STREAMS[0]); i++) {
		o.shape = STREAMS[i].shape;
		len = strlen(STREAMS[i].text);
		for (k = 0; k <= len; k++) {
			run_pieces(&r, &o, STREAMS[i].text, len, &k, 1);
			if (!check_run(&r, &STREAMS[i], STREAMS[i].text, len, "split")) {
				printf("#   at offset %zu\n", k);
				run_done(&r);
				break;
			}
			run_done(&r);
		}
		all = malloc(len * sizeof(*all));
		for (k = 0; k < len; k++)
			all[k] = k + 1;
		run_pieces(&r, &o, STREAMS[i].text, len, all, (unsigned)len - 1);
		check_run(&r, &STREAMS[i], STREAMS[i].text, len, "byte by byte");
		run_done(&r);
		free(all);
	}
}

/* s with every LF made eol (CRLF or CR), freshly allocated. */
static char *with_eol(const char *s, const char *eol)
{
	char *o = malloc(strlen(s) * 2 + 1), *q = o;

	for (; *s; s++) {
		if (*s == '\r')
			continue;
		if (*s == '\n') {
			memcpy(q, eol, strlen(eol));
			q += strlen(eol);
		} else {
			*q++ = *s;
		}
	}
	*q = 0;
	return o;
}

static void crlf_and_cr_line_ends(void)
{
	static const char *const eols[] = { "\r\n", "\r", "\n" };
	struct lt_llm_sse_opts o = { 0 };
	size_t k, len;
	struct run r;
	unsigned i, e;
	char *t;

	for (e = 0; e < 3; e++)
		for (i = 0; i < sizeof(STREAMS) / sizeof(STREAMS[0]); i++) {
			o.shape = STREAMS[i].shape;
			t = with_eol(STREAMS[i].text, eols[e]);
			len = strlen(t);
			/* a CR at the end of one piece, its LF at the start of the next */
			for (k = 0; k <= len; k++) {
				run_pieces(&r, &o, t, len, &k, 1);
				if (!check_run(&r, &STREAMS[i], t, len,
					       eols[e][1] ? "crlf" : "cr")) {
					printf("#   at offset %zu\n", k);
					run_done(&r);
					break;
				}
				run_done(&r);
			}
			free(t);
		}
}

static void multi_line_data_and_fields(void)
{
	static const char text[] =
		": comment first\n"
		"retry: 1000\n"
		"id: 7\n"
		"data:{\"choices\":[{\"index\":0,\n"
		"data: \"delta\":{\"content\":\"abc\"}}]}\n"
		"\n"
		"data\n" /* a field without a colon: empty data */
		"\n"
		"unknownfieldname: x\n"
		"data: not json\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	struct run r;

	run_pieces(&r, &o, text, strlen(text), NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(r.s.out_bytes, 3);
	CHECK_EQ(r.s.out_deltas, 1);
	CHECK(r.s.usage.final && r.s.usage.input_tokens == 1 && r.s.usage.output_tokens == 1);
	CHECK(r.out.len == strlen(text) && !memcmp(r.out.p, text, r.out.len));
	run_done(&r);
}

/* The usage chunk the client did not ask for is dropped; its usage is kept. */
static void injected_usage_chunk_is_dropped(void)
{
	static const char usage_ev[] =
		"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":"
		"{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT, .drop_usage_chunk = true };
	const char *at = strstr(OPENAI_SSE, usage_ev);
	size_t len = strlen(OPENAI_SSE), k, pre;
	struct run r;
	char *crlf;

	CHECK(at);
	pre = (size_t)(at - OPENAI_SSE);
	for (k = 0; k <= len; k += 7) {
		run_pieces(&r, &o, OPENAI_SSE, len, &k, 1);
		if (r.out.len != len - strlen(usage_ev) || memcmp(r.out.p, OPENAI_SSE, pre) ||
		    memcmp(r.out.p + pre, at + strlen(usage_ev), len - pre - strlen(usage_ev)) ||
		    !r.s.usage.final || r.s.usage.output_tokens != 3) {
			printf("#   at offset %zu: %.*s\n", k, (int)r.out.len, r.out.p);
			lt_t_cur_failed = 1;
		}
		run_done(&r);
	}
	/* with CRLF, the LF after the dropped event's CR goes with it */
	crlf = with_eol(OPENAI_SSE, "\r\n");
	run_pieces(&r, &o, crlf, strlen(crlf), NULL, 0);
	CHECK(!memmem(r.out.p, r.out.len, "\"choices\":[]", 12));
	CHECK(!memmem(r.out.p, r.out.len, "\n\n", 2) && !memmem(r.out.p, r.out.len, "\r\r", 2));
	CHECK(r.out.len > 10 && !memcmp(r.out.p + r.out.len - 10, "[DONE]\r\n\r\n", 10));
	run_done(&r);
	free(crlf);
	/* not asked to drop: forwarded */
	o.drop_usage_chunk = false;
	run_pieces(&r, &o, OPENAI_SSE, len, NULL, 0);
	CHECK_EQ(r.out.len, len);
	run_done(&r);
}

/* An OpenAI stream that ignores its limit: n deltas of "hello". */
static char *long_stream(unsigned n)
{
	static const char ev[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}\n\n";
	char *t = malloc(n * strlen(ev) + 1), *q = t;
	unsigned i;

	for (i = 0; i < n; i++, q += strlen(ev))
		memcpy(q, ev, strlen(ev));
	*q = 0;
	return t;
}

static void cut_on_bytes_before_the_event_that_passes_the_budget(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT, .cut = LT_LLM_CUT_BYTES };
	char *t = long_stream(10), *after;
	size_t ev = strlen(t) / 10;
	struct lt_llm_settle st;
	struct run r;

	o.resv.prompt_tokens = 50;
	o.resv.output_tokens = 12;
	o.resv.total_tokens = 62;
	run_pieces(&r, &o, t, strlen(t), NULL, 0);
	CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
	CHECK(r.s.cut);
	/* two events (10 bytes) forwarded, the third (15 > 12) replaced */
	CHECK(r.out.len > 2 * ev && !memcmp(r.out.p, t, 2 * ev));
	after = r.out.p + 2 * ev;
	CHECK(!strncmp(after, "data: {\"error\":{", 16));
	CHECK(memmem(after, r.out.len - 2 * ev, "output_limit_reached", 20));
	CHECK(r.out.len > 14 && !memcmp(r.out.p + r.out.len - 14, "data: [DONE]\n\n", 14));
	/* the stream is still parsed for usage, nothing more is forwarded */
	CHECK_EQ(r.s.out_bytes, 50);
	CHECK_EQ(lt_llm_sse_feed(&r.s, t, ev, &r.out), LT_LLM_SSE_CUT);
	CHECK(!memcmp(r.out.p + r.out.len - 14, "data: [DONE]\n\n", 14));
	/* no usage came: the reservation is charged, or the counted output if larger */
	lt_llm_reconcile(&o.resv, &r.s.usage, r.s.out_bytes, &st);
	CHECK_EQ(st.used, 50 + 55);
	CHECK_EQ(st.excess, 105 - 62);
	CHECK_EQ(st.refund, 0);
	run_done(&r);
	free(t);
}

static void cut_on_tokens_only_past_the_limit(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT, .cut = LT_LLM_CUT_TOKENS };
	char *t = long_stream(10);
	size_t ev = strlen(t) / 10;
	struct run r;

	o.resv.output_tokens = 4;
	o.resv.total_tokens = 10;
	run_pieces(&r, &o, t, strlen(t), NULL, 0);
	CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
	CHECK(!memcmp(r.out.p, t, 4 * ev) && !strncmp(r.out.p + 4 * ev, "data: {\"error\"", 14));
	run_done(&r);
	/* exactly at the limit: a compliant stream is never cut */
	free(t);
	t = long_stream(4);
	run_pieces(&r, &o, t, strlen(t), NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK(!r.s.cut && r.out.len == strlen(t));
	run_done(&r);
	free(t);
}

/* The cut event of each shape is one its own client parses as an error. */
static void cut_event_per_shape(void)
{
	static const struct {
		enum lt_llm_shape shape;
		const char *head;
	} t[] = {
		{ LT_LLM_CHAT, "data: {\"error\":{\"message\":" },
		{ LT_LLM_COMPLETIONS, "data: {\"error\":{\"message\":" },
		{ LT_LLM_RESPONSES, "event: error\ndata: {\"type\":\"error\",\"code\":" },
		{ LT_LLM_ANTHROPIC,
		  "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":" },
		{ LT_LLM_GEMINI, "data: {\"error\":{\"code\":429," },
	};
	struct lt_llm_sse_opts o = { 0 };
	struct lt_llm_buf b = { 0 };
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		o.shape = t[i].shape;
		o.resv.output_tokens = 77;
		lt_llm_sse_init(&r.s, &o);
		r.s.seq = 41;
		b.len = 0;
		CHECK_EQ(lt_llm_cut_event(&r.s, &b), 0);
		CHECK(b.len > strlen(t[i].head) && !memcmp(b.p, t[i].head, strlen(t[i].head)));
		CHECK(memmem(b.p, b.len, "77 tokens", 9));
		if (t[i].shape == LT_LLM_RESPONSES)
			CHECK(memmem(b.p, b.len, "\"sequence_number\":42}", 21));
		lt_llm_sse_release(&r.s);
		/* and our own parser reads it back as valid JSON events */
		run_pieces(&r, &o, b.p, b.len, NULL, 0);
		CHECK_EQ(r.rc, 0);
		CHECK(r.s.events >= 1 && r.out.len == b.len);
		CHECK(t[i].shape == LT_LLM_ANTHROPIC || t[i].shape == LT_LLM_RESPONSES ||
		      r.s.upstream_error);
		run_done(&r);
	}
	free(b.p);
}

/* Anthropic reports input first: the bytes budget grows by the prompt slack. */
static void bytes_budget_uses_the_reported_input(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_ANTHROPIC, .cut = LT_LLM_CUT_BYTES };
	struct run r;

	o.resv.prompt_tokens = 40;
	o.resv.output_tokens = 3;
	o.resv.total_tokens = 43;
	/* input 30 reported: 13 tokens left for output; "Hello!" is 6 bytes */
	run_pieces(&r, &o, ANTHROPIC_SSE, strlen(ANTHROPIC_SSE), NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK(!r.s.cut);
	run_done(&r);
	o.resv.prompt_tokens = 32;
	o.resv.total_tokens = 35; /* 5 left: "Hello" fits, "!" does not */
	run_pieces(&r, &o, ANTHROPIC_SSE, strlen(ANTHROPIC_SSE), NULL, 0);
	CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
	CHECK_EQ(r.s.out_bytes, 6);
	CHECK(memmem(r.out.p, r.out.len, "\"Hello\"", 7) &&
	      !memmem(r.out.p, r.out.len, "\"!\"", 3));
	run_done(&r);
}

/* One chunk of 200 KiB: streamed, not held; all its bytes count; memory stays bounded. */
static void huge_event_streams_through_and_counts(void)
{
	static const char head[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
	static const char tail[] = "\"}}]}\n\n"
				   "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
				   "\"completion_tokens\":50000}}\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	size_t big = 200 * 1024, len = strlen(head) + big + strlen(tail), k;
	char *t = malloc(len + 1);
	struct run r;

	memcpy(t, head, strlen(head));
	memset(t + strlen(head), 'x', big);
	memcpy(t + strlen(head) + big, tail, strlen(tail) + 1);
	for (k = 1; k < len; k += 4099) {
		size_t cuts[2] = { k, k + (len - k) / 2 };

		run_pieces(&r, &o, t, len, cuts, 2);
		if (r.rc || r.out.len != len || memcmp(r.out.p, t, len) || r.s.oversize != 1 ||
		    r.s.out_bytes < big || !r.s.usage.final || r.s.usage.output_tokens != 50000 ||
		    r.s.raw.cap > 4 * LT_LLM_SSE_EVENT_MAX ||
		    r.s.data.cap > 4 * LT_LLM_SSE_EVENT_MAX) {
			printf("#   at %zu: rc %d len %zu oversize %" PRIu64 " bytes %" PRIu64
			       " raw cap %zu\n",
			       k, r.rc, r.out.len, r.s.oversize, r.s.out_bytes, r.s.raw.cap);
			lt_t_cur_failed = 1;
		}
		run_done(&r);
	}
	free(t);
}

/*
 * A huge response.completed: its usage is read from the tail, its repeated
 * output is not counted again, and a usage-looking text inside a string
 * (escaped quotes) is never taken for the real one.
 */
static void huge_final_event_usage_from_its_tail(void)
{
	static const char head[] =
		"event: response.output_text.delta\n"
		"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,"
		"\"delta\":\"abc\"}\n\n"
		"event: response.completed\n"
		"data: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"text\":\"";
	static const char forged[] =
		"\\\"usage\\\":{\\\"input_tokens\\\":1,\\\"output_tokens\\\":1}";
	static const char tail[] = "\"}],\"usage\":{\"input_tokens\":321,\"output_tokens\":"
				   "70000}}}\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_RESPONSES };
	size_t big = 100 * 1024, len;
	char *t = malloc(strlen(head) + big + sizeof(forged) + strlen(tail) + 1), *q;
	struct run r;

	q = t;
	memcpy(q, head, strlen(head));
	q += strlen(head);
	memset(q, 'y', big);
	q += big;
	memcpy(q, forged, strlen(forged));
	q += strlen(forged);
	memcpy(q, tail, strlen(tail) + 1);
	len = strlen(t);
	run_pieces(&r, &o, t, len, NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK(r.out.len == len && !memcmp(r.out.p, t, len));
	CHECK_EQ(r.s.oversize, 1);
	CHECK_EQ(r.s.out_bytes, 3);
	CHECK(r.s.usage.final);
	CHECK_EQ(r.s.usage.input_tokens, 321);
	CHECK_EQ(r.s.usage.output_tokens, 70000);
	run_done(&r);
	/* the same with the real usage cut off (no closing brace in the tail): no usage */
	t[len - 8] = 0;
	run_pieces(&r, &o, t, strlen(t), NULL, 0);
	CHECK(!r.s.usage.final);
	run_done(&r);
	free(t);
}

static void json_usage_each_shape(void)
{
	static const struct {
		enum lt_llm_shape shape;
		const char *body;
		bool final;
		uint64_t in, out;
	} t[] = {
		{ LT_LLM_CHAT,
		  "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{"
		  "\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15,"
		  "\"completion_tokens_details\":{\"reasoning_tokens\":3}}}",
		  true, 10, 5 },
		{ LT_LLM_EMBEDDINGS,
		  "{\"data\":[],\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}", true, 8, 0 },
		{ LT_LLM_CHAT, /* DashScope's native names */
		  "{\"output\":{},\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}", true, 3,
		  4 },
		{ LT_LLM_RESPONSES,
		  "{\"output\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":6,"
		  "\"output_tokens_details\":{\"reasoning_tokens\":2}}}",
		  true, 12, 6 },
		{ LT_LLM_GEMINI,
		  "{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":4,"
		  "\"candidatesTokenCount\":6,\"thoughtsTokenCount\":20,\"totalTokenCount\":30}}",
		  true, 4, 26 },
		{ LT_LLM_GEMINI,
		  "[{\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1}},"
		  "{\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":9}}]",
		  true, 4, 9 },
		{ LT_LLM_ANTHROPIC,
		  "{\"content\":[],\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":"
		  "100,\"cache_read_input_tokens\":7,\"output_tokens\":11}}",
		  true, 127, 11 },
		/* no usage, or usage of the wrong types: not final */
		{ LT_LLM_CHAT, "{\"error\":{\"message\":\"bad\"}}", false, 0, 0 },
		{ LT_LLM_CHAT, "{\"usage\":null}", false, 0, 0 },
		{ LT_LLM_CHAT, "{\"usage\":{\"prompt_tokens\":\"10\",\"completion_tokens\":5}}",
		  false, 0, 0 },
		{ LT_LLM_CHAT, "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":-5}}", false,
		  0, 0 },
		{ LT_LLM_CHAT, "{\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":5}}", false,
		  0, 0 },
		{ LT_LLM_RESPONSES, "{\"usage\":{\"output_tokens\":6}}", false, 0, 0 },
		{ LT_LLM_GEMINI, "{\"usageMetadata\":{\"candidatesTokenCount\":6}}", false, 0, 0 },
		{ LT_LLM_ANTHROPIC, "{\"usage\":[]}", false, 0, 0 },
	};
	struct lt_llm_usage u;
	unsigned i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK_EQ(lt_llm_usage_json(t[i].shape, t[i].body, strlen(t[i].body), &u), 0);
		if (u.final != t[i].final ||
		    (t[i].final && (u.input_tokens != t[i].in || u.output_tokens != t[i].out))) {
			printf("#   case %u: final %d in %" PRIu64 " out %" PRIu64 "\n", i, u.final,
			       u.input_tokens, u.output_tokens);
			lt_t_cur_failed = 1;
		}
	}
	CHECK_EQ(lt_llm_usage_json(LT_LLM_CHAT, "{\"usage\":", 9, &u), -EINVAL);
	CHECK(!u.final);
}

/* A stream whose usage has the wrong type, or stops before it: not final. */
static void stream_usage_wrong_types_or_missing(void)
{
	static const char bad[] = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":\"9\","
				  "\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	size_t cut = strlen(ANTHROPIC_SSE) - 100;
	struct run r;

	run_pieces(&r, &o, bad, strlen(bad), NULL, 0);
	CHECK(!r.s.usage.final && r.s.done);
	run_done(&r);
	/* Anthropic cut before message_delta: input known, output not final */
	o.shape = LT_LLM_ANTHROPIC;
	run_pieces(&r, &o, ANTHROPIC_SSE, cut, NULL, 0);
	CHECK(r.s.usage.has_input && !r.s.usage.final);
	CHECK_EQ(r.s.usage.input_tokens, 30);
	/* the unfinished event's bytes are forwarded at EOF, unparsed */
	CHECK(r.out.len == cut && !memcmp(r.out.p, ANTHROPIC_SSE, cut));
	run_done(&r);
}

/* Running usage on every chunk is final at [DONE], not on the first chunk. */
static void running_usage_is_final_only_at_done(void)
{
	static const char text[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}}],\"usage\":"
		"{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cd\"}}],\"usage\":"
		"{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
		"data: [DONE]\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	size_t before_done = strlen(text) - strlen("data: [DONE]\n\n");
	struct run r;

	run_pieces(&r, &o, text, before_done, NULL, 0);
	CHECK(r.s.usage.has_input && !r.s.usage.final);
	run_done(&r);
	run_pieces(&r, &o, text, strlen(text), NULL, 0);
	CHECK(r.s.usage.final && r.s.usage.output_tokens == 2 && r.s.usage.input_tokens == 5);
	run_done(&r);
}

static void reconcile_rule(void)
{
	static const struct {
		uint64_t prompt, output; /* reservation */
		struct lt_llm_usage u;
		uint64_t counted, used, refund, excess;
	} t[] = {
		/* reported: exact refund */
		{ 100,
		  50,
		  { .has_input = true, .final = true, .input_tokens = 30, .output_tokens = 20 },
		  0,
		  50,
		  100,
		  0 },
		/* reported over the reservation: the excess is charged */
		{ 100,
		  50,
		  { .has_input = true, .final = true, .input_tokens = 90, .output_tokens = 80 },
		  0,
		  170,
		  0,
		  20 },
		/* reported below the deltas that passed: charged those */
		{ 100,
		  50,
		  { .has_input = true, .final = true, .input_tokens = 30, .output_tokens = 1 },
		  7,
		  37,
		  113,
		  0 },
		/* nothing reported: the reservation */
		{ 100, 50, { 0 }, 10, 150, 0, 0 },
		/* input reported, output not: input + the allowance */
		{ 100,
		  50,
		  { .has_input = true, .input_tokens = 30, .output_tokens = 1 },
		  5,
		  80,
		  70,
		  0 },
		/* counted output beyond the allowance: charged */
		{ 100, 50, { 0 }, 70, 170, 0, 20 },
		/* saturation */
		{ UINT64_MAX,
		  50,
		  { .has_input = true,
		    .final = true,
		    .input_tokens = UINT64_MAX,
		    .output_tokens = 5 },
		  0,
		  UINT64_MAX,
		  0,
		  0 },
	};
	struct lt_llm_resv v;
	struct lt_llm_settle s;
	unsigned i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v.prompt_tokens = t[i].prompt;
		v.output_tokens = t[i].output;
		v.total_tokens = lt_llm_sat_add(t[i].prompt, t[i].output);
		lt_llm_reconcile(&v, &t[i].u, t[i].counted, &s);
		if (s.used != t[i].used || s.refund != t[i].refund || s.excess != t[i].excess) {
			printf("#   case %u: used %" PRIu64 " refund %" PRIu64 " excess %" PRIu64
			       "\n",
			       i, s.used, s.refund, s.excess);
			lt_t_cur_failed = 1;
		}
	}
}

/* --- Gemini's stream without alt=sse: one JSON array --------------------------------- */

#define GEM_EL1                                                                               \
	"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},"  \
	"\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1," \
	"\"totalTokenCount\":8},\"modelVersion\":\"gemini-2.5-flash\"}"
#define GEM_EL2                                                                              \
	"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo!\"}],\"role\":\"model\"}," \
	"\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7," \
	"\"candidatesTokenCount\":2,\"thoughtsTokenCount\":5,\"totalTokenCount\":14},"       \
	"\"modelVersion\":\"gemini-2.5-flash\"}"

static const char GEMINI_ARRAY[] = "[" GEM_EL1 ",\r\n" GEM_EL2 "]";

/* The same numbers as the SSE form, whole and split at every offset, and the bytes unchanged. */
static void gemini_array_split_at_every_offset(void)
{
	const struct want w = { LT_LLM_GEMINI, GEMINI_ARRAY, 7, 7, 6, 2, false };
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI, .json_array = true };
	size_t len = strlen(GEMINI_ARRAY), cut[2];
	unsigned bad = 0;
	struct run r;

	run_pieces(&r, &o, GEMINI_ARRAY, len, NULL, 0);
	check_run(&r, &w, GEMINI_ARRAY, len, "array whole");
	CHECK_EQ(r.s.events, 2);
	run_done(&r);
	for (cut[0] = 1; cut[0] < len; cut[0]++) {
		for (cut[1] = cut[0]; cut[1] < len; cut[1] += 7) {
			run_pieces(&r, &o, GEMINI_ARRAY, len, cut, 2);
			bad += !check_run(&r, &w, GEMINI_ARRAY, len, "array split");
			run_done(&r);
			if (bad)
				break;
		}
	}
	CHECK_EQ(bad, 0);
}

/* n elements, one token each (cumulative candidatesTokenCount 1..n), the last with finishReason. */
static char *gemini_array(unsigned n, const char *text)
{
	size_t cap = 64 + (size_t)n * (strlen(text) + 256);
	char *t = malloc(cap), *q = t;
	unsigned i;

	q += sprintf(q, "[");
	for (i = 1; i <= n; i++)
		q += sprintf(
			q,
			"%s{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"%s\"}]}%s}],"
			"\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":%u}}",
			i > 1 ? ",\r\n" : "", text, i == n ? ",\"finishReason\":\"STOP\"" : "", i);
	sprintf(q, "]");
	return t;
}

/* Past the reservation the array ends with an error element, and stays one JSON array. */
static void gemini_array_cut_is_valid_json(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI,
				     .json_array = true,
				     .cut = LT_LLM_CUT_TOKENS };
	char *t = gemini_array(10, "hi");
	json_t *j;
	struct run r;
	unsigned want;

	for (want = 0; want <= 10; want++) {
		o.resv.output_tokens = want;
		o.resv.total_tokens = want + 3;
		run_pieces(&r, &o, t, strlen(t), NULL, 0);
		j = json_loadb(r.out.p, r.out.len, 0, NULL);
		CHECK(json_is_array(j));
		if (want == 10) {
			/* exactly at the limit: never cut, the bytes unchanged */
			CHECK_EQ(r.rc, 0);
			CHECK(r.out.len == strlen(t) && !memcmp(r.out.p, t, r.out.len));
		} else {
			CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
			CHECK_EQ(json_array_size(j), want + 1);
			CHECK(json_is_integer(json_object_get(
				json_object_get(json_array_get(j, want), "error"), "code")));
			/* the cut element was generated all the same: it is counted (charged) */
			CHECK_EQ(r.s.out_deltas, want + 1);
		}
		json_decref(j);
		run_done(&r);
	}
	free(t);
}

/*
 * Blank runs before and after the commas (some longer than the 64 bytes held, so
 * the comma goes on before the element it separates), a cut at every budget: the
 * client still gets one JSON array, the error its last element.
 */
static void gemini_array_cut_after_blank_runs_is_valid_json(void)
{
	static const unsigned runs[] = { 0, 1, 63, 64, 65, 200 };
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI,
				     .json_array = true,
				     .cut = LT_LLM_CUT_TOKENS };
	unsigned a, b, want, i, n = 4, bad = 0;
	char *t = malloc(16384), *q;
	struct run r;
	json_t *j;

	for (a = 0; a < 6; a++)
		for (b = 0; b < 6; b++) {
			q = t;
			q += sprintf(q, "[");
			for (i = 1; i <= n; i++) {
				if (i > 1) {
					q += sprintf(q, "%*s,%*s", (int)runs[a], "", (int)runs[b],
						     "");
				}
				q += sprintf(q,
					     "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
					     "\"x\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3,"
					     "\"candidatesTokenCount\":%u}}",
					     i);
			}
			q += sprintf(q, "%*s]", (int)runs[a], "");
			for (want = 0; want <= n; want++) {
				o.resv.output_tokens = want;
				o.resv.total_tokens = want + 3;
				run_pieces(&r, &o, t, strlen(t), NULL, 0);
				j = json_loadb(r.out.p, r.out.len, 0, NULL);
				if (!json_is_array(j) ||
				    json_array_size(j) != (want < n ? want + 1 : n)) {
					printf("#   blanks %u,%u budget %u: %.*s\n", runs[a],
					       runs[b], want, (int)r.out.len, r.out.p);
					bad++;
				}
				json_decref(j);
				run_done(&r);
			}
		}
	free(t);
	CHECK_EQ(bad, 0);
}

/* Brackets and quotes inside strings do not end an element; escapes do not end a string. */
static void gemini_array_strings_hold_brackets(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI, .json_array = true };
	char *t = gemini_array(3, "]}\\\"[{\\\\");
	size_t len = strlen(t), cut;
	struct run r;

	for (cut = 1; cut < len; cut++) {
		run_pieces(&r, &o, t, len, &cut, 1);
		if (r.rc || r.s.events != 3 || !r.s.usage.final || r.s.usage.output_tokens != 3 ||
		    r.out.len != len || memcmp(r.out.p, t, len)) {
			CHECK(!"split inside a string with brackets");
			run_done(&r);
			break;
		}
		run_done(&r);
	}
	free(t);
}

/* An error object, an array of non-objects, a missing comma: forwarded as is, no usage. */
static void gemini_array_other_bodies_pass_unread(void)
{
	static const char *const bodies[] = {
		"{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}",
		"[1,2,3]",
		"[" GEM_EL1 GEM_EL2 "]",
		"[," GEM_EL1 "]",
		"[" GEM_EL1 ",," GEM_EL2 "]",
		"  \r\n[]",
		"",
	};
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI,
				     .json_array = true,
				     .cut = LT_LLM_CUT_TOKENS,
				     .resv = { .output_tokens = 100, .total_tokens = 200 } };
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		run_pieces(&r, &o, bodies[i], strlen(bodies[i]), NULL, 0);
		CHECK_EQ(r.rc, 0);
		CHECK(r.out.len == strlen(bodies[i]) &&
		      (!r.out.len || !memcmp(r.out.p, bodies[i], r.out.len)));
		CHECK(!r.s.usage.final);
		run_done(&r);
	}
}

/* A huge element streams through; blanks between elements are bounded, not held. */
static void gemini_array_huge_element_and_blanks(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI, .json_array = true };
	size_t big = 200 * 1024, blanks = 1 << 20, n;
	char *text = malloc(big + 1), *t, *u, *q;
	struct run r;
	json_t *j;

	memset(text, 'y', big);
	text[big] = 0;
	t = gemini_array(2, text);
	run_pieces(&r, &o, t, strlen(t), NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK(r.out.len == strlen(t) && !memcmp(r.out.p, t, r.out.len));
	CHECK_EQ(r.s.oversize, 2);
	CHECK(r.s.usage.final && r.s.usage.output_tokens == 2);
	CHECK(r.s.raw.cap <= 4 * LT_LLM_SSE_EVENT_MAX);
	run_done(&r);
	free(t);
	/* a megabyte of blanks after the comma: streamed, not held, the bytes unchanged */
	t = gemini_array(2, "a");
	u = malloc(strlen(t) + blanks + 1);
	q = strstr(t, ",\r\n") + 1;
	n = (size_t)(q - t);
	memcpy(u, t, n);
	memset(u + n, ' ', blanks);
	strcpy(u + n + blanks, q);
	run_pieces(&r, &o, u, strlen(u), NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK(r.out.len == strlen(u) && !memcmp(r.out.p, u, r.out.len));
	CHECK(r.s.raw.cap <= 4096);
	CHECK(r.s.usage.final && r.s.usage.output_tokens == 2 && r.s.events == 2);
	run_done(&r);
	/* cut right after those blanks: the comma already went, the array stays valid */
	o.cut = LT_LLM_CUT_TOKENS;
	o.resv.output_tokens = 1;
	o.resv.total_tokens = 4;
	run_pieces(&r, &o, u, strlen(u), NULL, 0);
	j = json_loadb(r.out.p, r.out.len, 0, NULL);
	CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
	CHECK(json_is_array(j) && json_array_size(j) == 2 &&
	      json_object_get(json_array_get(j, 1), "error"));
	json_decref(j);
	run_done(&r);
	free(u);
	free(t);
	free(text);
}

static const char BIG_FIRST[] =
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}}]}\n\n";
static const char BIG_HEAD[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
static const char BIG_TAIL[] = "\"}}]}\n\n"
			       "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
			       "\"completion_tokens\":50000}}\n\ndata: [DONE]\n\n";

/* A chat stream: a small delta, then one of big bytes (after "event: name" if name). */
static char *big_chat(size_t big, const char *name, size_t *len)
{
	char *t = malloc(strlen(BIG_FIRST) + 64 + strlen(BIG_HEAD) + big + strlen(BIG_TAIL) + 1);
	char *q = t;

	q += sprintf(q, "%s", BIG_FIRST);
	if (name)
		q += sprintf(q, "event: %s\n", name);
	q += sprintf(q, "%s", BIG_HEAD);
	memset(q, 'x', big);
	q += big;
	q += sprintf(q, "%s", BIG_TAIL);
	*len = (size_t)(q - t);
	return t;
}

/* What a stream cut right after its first len bytes went out sends: those, then the cut. */
static bool cut_after(const struct run *r, const char *text, size_t len, const char *glue)
{
	struct lt_llm_buf want = { 0 };
	bool ok;

	want.p = malloc(len + 1024);
	want.cap = len + 1024;
	memcpy(want.p, text, len);
	memcpy(want.p + len, glue, strlen(glue));
	want.len = len + strlen(glue);
	CHECK_EQ(lt_llm_cut_event(&r->s, &want), 0);
	ok = r->rc == LT_LLM_SSE_CUT && r->s.cut && r->out.len == want.len &&
	     !memcmp(r->out.p, want.p, want.len);
	free(want.p);
	return ok;
}

/*
 * An event past the hold counts its data bytes as tokens: one whose held
 * part alone passes the budget is replaced by the cut whole; one that
 * passes it while it streams is ended after exactly the bytes the budget
 * had room for; in either mode, at every split of the stream.
 */
static void huge_event_is_cut_at_the_budget(void)
{
	static const enum lt_llm_cut modes[] = { LT_LLM_CUT_TOKENS, LT_LLM_CUT_BYTES };
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	size_t big = 100 * 1024, len, k, fwd, cuts[2];
	char *t = big_chat(big, NULL, &len), *q, *f;
	unsigned m;
	struct run r;

	for (m = 0; m < 2; m++) {
		o.cut = modes[m];
		for (k = 1; k < len; k += 4099) {
			cuts[0] = k;
			cuts[1] = k + (len - k) / 2;
			/* 5 tokens: the first delta goes, the big one is replaced */
			o.resv.output_tokens = 5;
			o.resv.total_tokens = 9;
			run_pieces(&r, &o, t, len, cuts, 2);
			if (!cut_after(&r, t, strlen(BIG_FIRST), "")) {
				printf("#   mode %u at %zu: rc %d out %zu\n", m, k, r.rc,
				       r.out.len);
				lt_t_cur_failed = 1;
			}
			run_done(&r);
			/*
			 * 70,000: the first 64 KiB go, the cut falls inside the event
			 * after 70,000 less what the first delta counted (1 token, 2 bytes)
			 */
			o.resv.output_tokens = 70000;
			o.resv.total_tokens = 70004;
			fwd = strlen(BIG_FIRST) + strlen("data: ") + (m ? 70000 - 2 : 70000 - 1);
			run_pieces(&r, &o, t, len, cuts, 2);
			if (!cut_after(&r, t, fwd, "\n\n")) {
				printf("#   mode %u at %zu: rc %d out %zu want %zu + cut\n", m, k,
				       r.rc, r.out.len, fwd);
				lt_t_cur_failed = 1;
			}
			run_done(&r);
		}
	}
	/* CRLF line ends: the LF of the CR that ends the cut event's line does not follow it */
	q = with_eol(t, "\r\n");
	f = with_eol(BIG_FIRST, "\r\n");
	o.cut = LT_LLM_CUT_TOKENS;
	o.resv.output_tokens = 5;
	o.resv.total_tokens = 9;
	for (k = 1; k < strlen(q); k += 4099) {
		run_pieces(&r, &o, q, strlen(q), &k, 1);
		if (!cut_after(&r, q, strlen(f), "")) {
			printf("#   crlf at %zu: rc %d out %zu\n", k, r.rc, r.out.len);
			lt_t_cur_failed = 1;
		}
		run_done(&r);
	}
	free(q);
	free(f);
	/* with room for it, the same stream goes through whole, its bytes counted */
	o.cut = LT_LLM_CUT_TOKENS;
	o.resv.output_tokens = 200000;
	o.resv.total_tokens = 200004;
	run_pieces(&r, &o, t, len, NULL, 0);
	CHECK_EQ(r.rc, 0);
	CHECK(r.out.len == len && !memcmp(r.out.p, t, len));
	CHECK(r.s.out_big > big && r.s.out_deltas == 1 && r.s.usage.final);
	run_done(&r);
	free(t);
}

/*
 * Only a Responses summary is free of the count, and only when its JSON
 * type says so too: an event name is the provider's word, which a chat
 * client never reads and a Responses SDK reads from the JSON.
 */
static void huge_event_names_do_not_buy_a_pass(void)
{
	static const char rhead[] =
		"event: response.output_text.delta\n"
		"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,"
		"\"delta\":\"abc\"}\n\n"
		"event: response.completed\n"
		"data: {\"type\":\"%s\",\"sequence_number\":2,\"response\":{\"output\":[{\"text\":\"";
	static const char rtail[] = "\"}],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT, .cut = LT_LLM_CUT_TOKENS };
	size_t big = 100 * 1024, len;
	char *t = big_chat(big, "response.completed", &len), *q;
	struct run r;

	o.resv.output_tokens = 5;
	o.resv.total_tokens = 9;
	run_pieces(&r, &o, t, len, NULL, 0);
	CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
	CHECK(!memmem(r.out.p, r.out.len, "xxxx", 4));
	run_done(&r);
	free(t);
	/* Responses: the real summary passes, a delta dressed as one does not */
	o.shape = LT_LLM_RESPONSES;
	t = malloc(sizeof(rhead) + 64 + big + sizeof(rtail));
	for (int fake = 0; fake < 2; fake++) {
		q = t +
		    sprintf(t, rhead, fake ? "response.output_text.delta" : "response.completed");
		memset(q, 'y', big);
		strcpy(q + big, rtail);
		len = strlen(t);
		run_pieces(&r, &o, t, len, NULL, 0);
		if (fake) {
			CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
			CHECK(!memmem(r.out.p, r.out.len, "yyyy", 4));
		} else {
			CHECK_EQ(r.rc, 0);
			CHECK(r.out.len == len && !memcmp(r.out.p, t, len));
			CHECK(r.s.usage.final && r.s.out_big == 0);
		}
		run_done(&r);
	}
	free(t);
}

/* A Gemini array element past the hold and the budget: cut whole, the array stays valid. */
static void gemini_array_huge_element_is_cut(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_GEMINI,
				     .json_array = true,
				     .cut = LT_LLM_CUT_TOKENS };
	size_t big = 100 * 1024, k, len;
	char *text = malloc(big + 1), *t;
	struct run r;
	json_t *j;

	memset(text, 'y', big);
	text[big] = 0;
	t = gemini_array(3, text);
	len = strlen(t);
	o.resv.output_tokens = 5;
	o.resv.total_tokens = 8;
	for (k = 1; k < len; k += 7919) {
		run_pieces(&r, &o, t, len, &k, 1);
		j = json_loadb(r.out.p, r.out.len, 0, NULL);
		if (r.rc != LT_LLM_SSE_CUT || !json_is_array(j) || json_array_size(j) != 1 ||
		    !json_object_get(json_array_get(j, 0), "error")) {
			printf("#   at %zu: rc %d out %zu\n", k, r.rc, r.out.len);
			lt_t_cur_failed = 1;
		}
		json_decref(j);
		run_done(&r);
	}
	free(t);
	free(text);
}

/* A provider that reports usage twice cannot take back the first report. */
static void usage_twice_keeps_the_larger(void)
{
	static const char text[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}}]}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":90,\"completion_tokens\":40}}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n"
		"data: [DONE]\n\n";
	static const char neg[] =
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":1}}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5.0,\"completion_tokens\":1}}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1e3}}\n\n"
		"data: [DONE]\n\n";
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	struct lt_llm_settle st;
	struct run r;

	run_pieces(&r, &o, text, strlen(text), NULL, 0);
	CHECK(r.s.usage.final && r.s.usage.input_tokens == 90 && r.s.usage.output_tokens == 40);
	run_done(&r);
	/* negative, real and exponent counts are not usage: nothing taken, the reservation charged */
	run_pieces(&r, &o, neg, strlen(neg), NULL, 0);
	CHECK(!r.s.usage.final && !r.s.usage.has_input && r.s.done);
	o.resv.prompt_tokens = 10;
	o.resv.output_tokens = 20;
	o.resv.total_tokens = 30;
	lt_llm_reconcile(&o.resv, &r.s.usage, r.s.out_deltas, &st);
	CHECK_EQ(st.used, 30);
	run_done(&r);
}

/* A delta counts one token per LT_LLM_TOKEN_BYTES_MAX bytes of its text; audio one in all. */
static void packed_deltas_count_by_their_bytes(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_CHAT };
	char *t = malloc(8192), *q;
	struct run r;
	int use;

	for (use = 0; use < 2; use++) { /* the scanner, then jansson */
		o.use_jansson = use;
		q = t + sprintf(t, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
		memset(q, 'x', 1000);
		q += 1000;
		q += sprintf(q, "\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"audio\":"
				"{\"data\":\"");
		memset(q, 'A', 3000);
		q += 3000;
		sprintf(q, "\"}}}]}\n\n");
		run_pieces(&r, &o, t, strlen(t), NULL, 0);
		CHECK_EQ(r.s.out_deltas, 4 + 1); /* ceil(1000 / 256), then the audio's one */
		CHECK_EQ(r.s.out_bytes, 4000);
		run_done(&r);
		/* the cut sees it: 3 tokens of allowance, a 1000-byte delta does not fit */
		o.cut = LT_LLM_CUT_TOKENS;
		o.resv.output_tokens = 3;
		o.resv.total_tokens = 3;
		run_pieces(&r, &o, t, strlen(t), NULL, 0);
		CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
		CHECK(!memmem(r.out.p, r.out.len, "xxxx", 4));
		run_done(&r);
		o.cut = LT_LLM_CUT_OFF;
	}
	free(t);
}

/*
 * A leading BOM is stripped by clients (WHATWG UTF-8 decode), so the first
 * event is theirs all the same and must be counted; half a BOM is not one.
 */
static void leading_bom_is_read_through(void)
{
	static const char HALF_BOM[] = "\xef\xbb"
				       "data: {\"choices\":[{\"delta\":{\"content\":\"ab\"}}]}\n\n";
	struct lt_llm_sse_opts o = { 0 };
	size_t k, len;
	struct run r;
	unsigned i;
	char *t;

	for (i = 0; i < sizeof(STREAMS) / sizeof(STREAMS[0]); i++) {
		o.shape = STREAMS[i].shape;
		len = strlen(STREAMS[i].text) + 3;
		t = malloc(len + 1);
		memcpy(t, "\xef\xbb\xbf", 3);
		strcpy(t + 3, STREAMS[i].text);
		for (k = 0; k <= len; k++) {
			run_pieces(&r, &o, t, len, &k, 1);
			if (!check_run(&r, &STREAMS[i], t, len, "bom")) {
				printf("#   at offset %zu\n", k);
				run_done(&r);
				break;
			}
			run_done(&r);
		}
		free(t);
	}
	/* half a BOM: the first line's field is no client's "data" */
	o.shape = LT_LLM_CHAT;
	run_pieces(&r, &o, HALF_BOM, sizeof(HALF_BOM) - 1, NULL, 0);
	CHECK_EQ(r.s.out_bytes, 0);
	run_done(&r);
	/* a Gemini array after a BOM is still an array */
	o.shape = LT_LLM_GEMINI;
	o.json_array = true;
	t = gemini_array(3, "hi");
	len = strlen(t) + 3;
	{
		char *b = malloc(len + 1);

		memcpy(b, "\xef\xbb\xbf", 3);
		strcpy(b + 3, t);
		run_pieces(&r, &o, b, len, NULL, 0);
		CHECK(r.s.usage.final && r.s.out_bytes == 6 && r.s.events == 3);
		CHECK(r.out.len == len && !memcmp(r.out.p, b, len));
		run_done(&r);
		free(b);
	}
	free(t);
}

/*
 * Responses: the final response is what SDKs hand the application, so text
 * in it that no delta carried counts (and can be cut); an honest one adds
 * nothing (RESPONSES_SSE in STREAMS).
 */
static void responses_final_text_beyond_the_deltas_counts(void)
{
	struct lt_llm_sse_opts o = { .shape = LT_LLM_RESPONSES };
	char *t = malloc(strlen(RESPONSES_SSE) + 2048), *q;
	const char *at = strstr(RESPONSES_SSE, "\"Hi there\"");
	struct run r;
	int use;

	/* the final text gets 1000 bytes the deltas never carried */
	q = t + (at - RESPONSES_SSE) + 9;
	memcpy(t, RESPONSES_SSE, (size_t)(q - t));
	memset(q, 'z', 1000);
	strcpy(q + 1000, at + 9);
	for (use = 0; use < 2; use++) {
		o.use_jansson = use;
		o.cut = LT_LLM_CUT_OFF;
		run_pieces(&r, &o, t, strlen(t), NULL, 0);
		CHECK_EQ(r.s.out_bytes, 8 + 1000);
		CHECK_EQ(r.s.out_deltas, 2 + 4); /* ceil(1000 / 256) */
		CHECK(r.s.usage.final);
		run_done(&r);
		/* 3 tokens of allowance: the two deltas go, the final response is cut */
		o.cut = LT_LLM_CUT_TOKENS;
		o.resv.output_tokens = 3;
		o.resv.total_tokens = 14;
		run_pieces(&r, &o, t, strlen(t), NULL, 0);
		CHECK_EQ(r.rc, LT_LLM_SSE_CUT);
		CHECK(!memmem(r.out.p, r.out.len, "zzzz", 4) &&
		      memmem(r.out.p, r.out.len, "\" there\"", 8));
		run_done(&r);
	}
	free(t);
}

int main(void)
{
	RUN(each_shape_whole);
	RUN(scanner_agrees_with_jansson);
	RUN(escaped_keys_fall_back_to_jansson);
	RUN(each_shape_split_at_every_offset);
	RUN(crlf_and_cr_line_ends);
	RUN(multi_line_data_and_fields);
	RUN(injected_usage_chunk_is_dropped);
	RUN(cut_on_bytes_before_the_event_that_passes_the_budget);
	RUN(cut_on_tokens_only_past_the_limit);
	RUN(cut_event_per_shape);
	RUN(bytes_budget_uses_the_reported_input);
	RUN(huge_event_streams_through_and_counts);
	RUN(huge_final_event_usage_from_its_tail);
	RUN(json_usage_each_shape);
	RUN(stream_usage_wrong_types_or_missing);
	RUN(running_usage_is_final_only_at_done);
	RUN(reconcile_rule);
	RUN(gemini_array_split_at_every_offset);
	RUN(gemini_array_cut_is_valid_json);
	RUN(gemini_array_cut_after_blank_runs_is_valid_json);
	RUN(gemini_array_strings_hold_brackets);
	RUN(gemini_array_other_bodies_pass_unread);
	RUN(gemini_array_huge_element_and_blanks);
	RUN(huge_event_is_cut_at_the_budget);
	RUN(huge_event_names_do_not_buy_a_pass);
	RUN(gemini_array_huge_element_is_cut);
	RUN(usage_twice_keeps_the_larger);
	RUN(packed_deltas_count_by_their_bytes);
	RUN(leading_bom_is_read_through);
	RUN(responses_final_text_beyond_the_deltas_counts);
	return lt_t_done();
}
