// SPDX-License-Identifier: MIT
/*
 * test_stub_usage.c - leaky-stub's answers, read by the gateway's own parsers: for every
 * provider shape, JSON and SSE (fed in pieces of every size), gateway/llm_usage.c reads exactly
 * the usage the stub meant (prompt = ceil(text bytes / 4), completion = N) and counts N output
 * deltas; and for every request the gateway's prompt bound (gateway/llm_body.c) covers the
 * prompt tokens the stub will report, so a reservation is never exceeded by honest usage.
 * Tests that depend on the stub (reconcile, exactness) rely on both.
 */
#include <stdlib.h>
#include <string.h>

#include "lt_test.h"
#include "stub.h"
#include "llm_body.h"
#include "llm_usage.h"

struct map {
	enum stub_shape s;
	enum lt_llm_provider p;
	enum lt_llm_shape g;
};

static const struct map maps[] = {
	{ STUB_OPENAI_CHAT, LT_LLM_P_OPENAI, LT_LLM_CHAT },
	{ STUB_OPENAI_COMPLETIONS, LT_LLM_P_OPENAI, LT_LLM_COMPLETIONS },
	{ STUB_OPENAI_EMBEDDINGS, LT_LLM_P_OPENAI, LT_LLM_EMBEDDINGS },
	{ STUB_OPENAI_RESPONSES, LT_LLM_P_OPENAI, LT_LLM_RESPONSES },
	{ STUB_GEMINI, LT_LLM_P_GEMINI, LT_LLM_GEMINI },
	{ STUB_GEMINI_OPENAI, LT_LLM_P_GEMINI, LT_LLM_CHAT },
	{ STUB_DASHSCOPE, LT_LLM_P_QWEN, LT_LLM_CHAT },
	{ STUB_ANTHROPIC, LT_LLM_P_ANTHROPIC, LT_LLM_ANTHROPIC },
};
#define NMAPS (sizeof(maps) / sizeof(maps[0]))

/* A request body of shape s with output limit lim; stream adds what a streaming client sends. */
static void body_of(enum stub_shape s, unsigned lim, bool stream, char *b, size_t n)
{
	const char *st =
		stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "";

	switch (s) {
	case STUB_OPENAI_COMPLETIONS:
		snprintf(
			b, n,
			"{\"model\":\"m\",\"prompt\":\"hello world, and more\",\"max_tokens\":%u%s}",
			lim, st);
		break;
	case STUB_OPENAI_EMBEDDINGS:
		snprintf(b, n, "{\"model\":\"e\",\"input\":[\"hello\",\"world, with 17 b\"]}");
		break;
	case STUB_OPENAI_RESPONSES:
		snprintf(
			b, n,
			"{\"model\":\"m\",\"instructions\":\"be terse\",\"input\":[{\"role\":\"user\","
			"\"content\":\"hello world\"}],\"max_output_tokens\":%u%s}",
			lim, stream ? ",\"stream\":true" : "");
		break;
	case STUB_GEMINI:
		snprintf(
			b, n,
			"{\"systemInstruction\":{\"parts\":[{\"text\":\"be terse\"}]},\"contents\":"
			"[{\"role\":\"user\",\"parts\":[{\"text\":\"hello world\"}]}],"
			"\"generationConfig\":{\"maxOutputTokens\":%u}}",
			lim);
		break;
	case STUB_ANTHROPIC:
		snprintf(
			b, n,
			"{\"model\":\"c\",\"max_tokens\":%u,\"system\":\"be terse\",\"messages\":"
			"[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hello world\"}]}]%s}",
			lim, stream ? ",\"stream\":true" : "");
		break;
	default:
		snprintf(
			b, n,
			"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be terse\"},"
			"{\"role\":\"user\",\"content\":\"hello world, count\"}],\"max_tokens\":%u%s}",
			lim, st);
	}
}

/* The stub's request for body, as the server builds it (stream from the body or the path). */
static int stub_req_of(const struct map *m, const char *body, bool stream, struct stub_req *r)
{
	char err[256];
	int rc;

	memset(r, 0, sizeof(*r));
	r->shape = m->s;
	rc = stub_parse(m->s, body, strlen(body), r, err, sizeof(err));
	if (rc)
		printf("#   stub_parse: %s\n", err);
	if (m->s == STUB_GEMINI) {
		strcpy(r->model, "g");
		r->stream = stream;
		r->gemini_sse = true;
	}
	return rc;
}

static int gw_req_of(const struct map *m, const char *body, bool stream, struct lt_llm_req *g)
{
	struct lt_llm_parse_opts o = {
		.provider = m->p, .shape = m->g, .path_model = "g", .path_stream = stream
	};

	return lt_llm_parse(&o, body, strlen(body), g);
}

/* The prompt bound the gateway reserves covers the prompt tokens the stub reports. */
static void gateway_bound_covers_stub_prompt(void)
{
	static const unsigned lims[] = { 1, 7, 4000 };
	char body[1024];

	for (size_t i = 0; i < NMAPS; i++)
		for (int st = 0; st < 2; st++)
			for (size_t l = 0; l < 3; l++) {
				struct stub_req r;
				struct lt_llm_req g;
				bool stream = st && maps[i].s != STUB_OPENAI_EMBEDDINGS;

				body_of(maps[i].s, lims[l], stream, body, sizeof(body));
				CHECK(stub_req_of(&maps[i], body, stream, &r) == 0);
				memset(&g, 0, sizeof(g));
				CHECK(gw_req_of(&maps[i], body, stream, &g) == 0);
				CHECK(r.prompt_tokens > 0);
				CHECK(r.prompt_tokens <= r.prompt_bytes);
				if (g.prompt_bound < r.prompt_tokens)
					printf("#   %s: gateway bound %llu < stub prompt %llu\n",
					       stub_shape_names[maps[i].s],
					       (unsigned long long)g.prompt_bound,
					       (unsigned long long)r.prompt_tokens);
				CHECK(g.prompt_bound >= r.prompt_tokens);
				/* both read the same output limit */
				if (maps[i].s != STUB_OPENAI_EMBEDDINGS) {
					CHECK(g.has_limit);
					CHECK_EQ(g.limit_tokens, (uint64_t)r.limit);
				}
				lt_llm_req_release(&g);
			}
}

/* N as the server computes it: min(limit, wanted) */
static uint32_t n_of(const struct stub_req *r, uint32_t wanted, bool *capped)
{
	*capped = r->limit > 0 && (uint64_t)r->limit < wanted;
	return *capped ? (uint32_t)r->limit : wanted;
}

static void json_usage_reads_back(void)
{
	static const unsigned lims[] = { 1, 5, 40 };
	static const uint32_t wanted[] = { 0, 16 };
	char body[1024];

	for (size_t i = 0; i < NMAPS; i++)
		for (size_t l = 0; l < 3; l++)
			for (size_t w = 0; w < 2; w++) {
				struct stub_req r;
				struct stub_gen g;
				struct stub_buf out = { 0 };
				struct lt_llm_usage u;
				bool capped;
				uint32_t n;

				body_of(maps[i].s, lims[l], false, body, sizeof(body));
				CHECK(stub_req_of(&maps[i], body, false, &r) == 0);
				n = n_of(&r, wanted[w], &capped);
				stub_gen_init(&g, &r, n, capped, 1);
				stub_gen_json(&g, &out);
				memset(&u, 0, sizeof(u));
				CHECK(lt_llm_usage_json(maps[i].g, out.p, out.len, &u) == 0);
				CHECK(u.final);
				CHECK_EQ(u.input_tokens, r.prompt_tokens);
				CHECK_EQ(u.output_tokens,
					 maps[i].s == STUB_OPENAI_EMBEDDINGS ? 0 : n);
				CHECK_EQ(g.rep_prompt, r.prompt_tokens);
				stub_buf_free(&out);
			}
}

/* The whole stream of one answer, as the server writes it (unframed). */
static void stream_of(struct stub_gen *g, struct stub_buf *out)
{
	while (stub_gen_event(g, out))
		;
}

static void sse_usage_reads_back_in_any_pieces(void)
{
	static const unsigned lims[] = { 1, 5, 40 };
	static const uint32_t wanted[] = { 0, 3, 16 };
	static const size_t pieces[] = { 1, 2, 3, 7, 64, 100000 };
	char body[1024];

	for (size_t i = 0; i < NMAPS; i++) {
		if (maps[i].s == STUB_OPENAI_EMBEDDINGS)
			continue;
		for (size_t l = 0; l < 3; l++)
			for (size_t w = 0; w < 3; w++)
				for (size_t pc = 0; pc < 6; pc++) {
					struct stub_req r;
					struct stub_gen g;
					struct stub_buf sse = { 0 };
					struct lt_llm_sse_opts o = { .shape = maps[i].g };
					struct lt_llm_sse s;
					struct lt_llm_buf fwd = { 0 };
					bool capped;
					uint32_t n;

					body_of(maps[i].s, lims[l], true, body, sizeof(body));
					CHECK(stub_req_of(&maps[i], body, true, &r) == 0);
					CHECK(r.stream);
					n = n_of(&r, wanted[w], &capped);
					stub_gen_init(&g, &r, n, capped, 1);
					stream_of(&g, &sse);
					lt_llm_sse_init(&s, &o);
					for (size_t at = 0; at < sse.len; at += pieces[pc]) {
						size_t k = sse.len - at < pieces[pc] ?
								   sse.len - at :
								   pieces[pc];

						CHECK(lt_llm_sse_feed(&s, sse.p + at, k, &fwd) ==
						      0);
					}
					CHECK(lt_llm_sse_finish(&s, &fwd) == 0);
					/* the gateway forwards every byte of an uncut stream */
					CHECK_EQ(fwd.len, sse.len);
					CHECK(s.usage.final);
					CHECK(s.done || maps[i].s == STUB_GEMINI);
					CHECK(!s.upstream_error);
					CHECK_EQ(s.usage.input_tokens, r.prompt_tokens);
					CHECK_EQ(s.usage.output_tokens, n);
					CHECK_EQ(s.out_deltas, n);
					CHECK_EQ(s.out_bytes, (uint64_t)n * STUB_TOKEN_BYTES);
					CHECK_EQ(g.rep_completion, n);
					CHECK_EQ(g.gen_tokens, n);
					if (lt_t_cur_failed) {
						printf("#   %s lim %u wanted %u piece %zu\n",
						       stub_shape_names[maps[i].s], lims[l],
						       wanted[w], pieces[pc]);
						lt_llm_sse_release(&s);
						free(fwd.p);
						stub_buf_free(&sse);
						return;
					}
					lt_llm_sse_release(&s);
					free(fwd.p);
					stub_buf_free(&sse);
				}
	}
}

/* x-stub-error-after: the gateway sees the provider's error event, and no final usage. */
static void error_after_is_an_upstream_error(void)
{
	char body[1024];

	for (size_t i = 0; i < NMAPS; i++) {
		struct stub_req r;
		struct stub_gen g;
		struct stub_buf sse = { 0 };
		struct lt_llm_sse_opts o = { .shape = maps[i].g };
		struct lt_llm_sse s;
		struct lt_llm_buf fwd = { 0 };

		if (maps[i].s == STUB_OPENAI_EMBEDDINGS)
			continue;
		body_of(maps[i].s, 10, true, body, sizeof(body));
		CHECK(stub_req_of(&maps[i], body, true, &r) == 0);
		stub_gen_init(&g, &r, 10, false, 1);
		g.err_after = 3;
		stream_of(&g, &sse);
		CHECK(g.errored);
		lt_llm_sse_init(&s, &o);
		CHECK(lt_llm_sse_feed(&s, sse.p, sse.len, &fwd) == 0);
		CHECK(lt_llm_sse_finish(&s, &fwd) == 0);
		if (!s.upstream_error)
			printf("#   %s: no upstream_error\n", stub_shape_names[maps[i].s]);
		CHECK(s.upstream_error);
		CHECK(!s.usage.final);
		lt_llm_sse_release(&s);
		free(fwd.p);
		stub_buf_free(&sse);
	}
}

int main(void)
{
	RUN(gateway_bound_covers_stub_prompt);
	RUN(json_usage_reads_back);
	RUN(sse_usage_reads_back_in_any_pieces);
	RUN(error_after_is_an_upstream_error);
	return lt_t_done();
}
