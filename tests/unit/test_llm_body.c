// SPDX-License-Identifier: MIT
/*
 * test_llm_body.c - the request side of the LLM routes (gateway/llm_body.c,
 * issue 9 item 4): each provider shape is parsed, bad fields get a 400 that
 * names them, the prompt bound counts every byte that reaches the model,
 * the reservation saturates, and the rewrite adds only the output limit and
 * stream usage, byte for byte around them.
 */
#include <errno.h>
#include <jansson.h>
#include "lt_test.h"
#include "llm_body.h"

static const struct lt_llm_parse_opts OPENAI_CHAT = { .provider = LT_LLM_P_OPENAI,
						      .shape = LT_LLM_CHAT };
static const struct lt_llm_parse_opts QWEN_CHAT = { .provider = LT_LLM_P_QWEN,
						    .shape = LT_LLM_CHAT };

static int parse(const struct lt_llm_parse_opts *o, const char *body, struct lt_llm_req *r)
{
	return lt_llm_parse(o, body, strlen(body), r);
}

/* rc, and that the error names the field when it is not 0 */
static int parse_err(const struct lt_llm_parse_opts *o, const char *body, const char *field)
{
	struct lt_llm_req r;
	int rc = parse(o, body, &r);

	if (rc && field && (!r.err_field || strcmp(r.err_field, field) || !strstr(r.err, field))) {
		printf("#   %s: field '%s', err '%s' (wanted %s)\n", body,
		       r.err_field ? r.err_field : "-", r.err, field);
		lt_t_cur_failed = 1;
	}
	if (rc && !r.err[0]) {
		printf("#   %s: rc %d without an error text\n", body, rc);
		lt_t_cur_failed = 1;
	}
	lt_llm_req_release(&r);
	return rc;
}

/* Rewrites body; returns the new text (or a copy of body when unchanged). */
static char *rewrite(const struct lt_llm_parse_opts *o, const char *body, uint64_t tier,
		     struct lt_llm_req *r, struct lt_llm_resv *v)
{
	char *out = NULL;
	size_t len = 0;

	if (parse(o, body, r)) {
		printf("#   parse failed: %s\n", r->err);
		lt_t_cur_failed = 1;
		return strdup(body);
	}
	lt_llm_reserve(r, tier, v);
	CHECK_EQ(lt_llm_rewrite(r, v, body, strlen(body), &out, &len), 0);
	if (!out)
		return strdup(body);
	CHECK_EQ(strlen(out), len);
	return out;
}

static void chat_parsed_fields(void)
{
	struct lt_llm_req r;

	CHECK_EQ(parse(&OPENAI_CHAT,
		       "{\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":100,"
		       "\"stream_options\":{\"include_usage\":true},"
		       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		       &r),
		 0);
	CHECK(!strcmp(r.model, "gpt-4o"));
	CHECK(r.stream && r.has_limit && r.include_usage);
	CHECK_EQ(r.limit_tokens, 100);
	CHECK(!strcmp(r.limit_field, "max_tokens"));
	CHECK_EQ(r.completions, 1);
	CHECK_EQ(r.messages, 1);
	lt_llm_req_release(&r);
	/* both limits: the larger one is the one that can be honoured */
	CHECK_EQ(parse(&OPENAI_CHAT,
		       "{\"model\":\"m\",\"max_tokens\":10,\"max_completion_tokens\":300,"
		       "\"messages\":[]}",
		       &r),
		 0);
	CHECK_EQ(r.limit_tokens, 300);
	lt_llm_req_release(&r);
	/* stream null is not streaming; include_usage only matters on a stream */
	CHECK_EQ(parse(&OPENAI_CHAT,
		       "{\"model\":\"m\",\"stream\":null,\"stream_options\":{\"include_usage\":"
		       "true},\"messages\":[]}",
		       &r),
		 0);
	CHECK(!r.stream && !r.include_usage && !r.has_limit);
	lt_llm_req_release(&r);
}

static void bad_fields_are_400_naming_the_field(void)
{
	static const struct {
		const char *body, *field;
	} t[] = {
		{ "{\"messages\":[]}", "model" },
		{ "{\"model\":null,\"messages\":[]}", "model" },
		{ "{\"model\":7,\"messages\":[]}", "model" },
		{ "{\"model\":\"\",\"messages\":[]}", "model" },
		{ "{\"model\":\"m\",\"stream\":\"true\",\"messages\":[]}", "stream" },
		{ "{\"model\":\"m\",\"stream\":1,\"messages\":[]}", "stream" },
		{ "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[]}", "max_tokens" },
		{ "{\"model\":\"m\",\"max_tokens\":-5,\"messages\":[]}", "max_tokens" },
		{ "{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[]}", "max_tokens" },
		{ "{\"model\":\"m\",\"max_tokens\":1e3,\"messages\":[]}", "max_tokens" },
		{ "{\"model\":\"m\",\"max_tokens\":\"100\",\"messages\":[]}", "max_tokens" },
		{ "{\"model\":\"m\",\"max_tokens\":16777217,\"messages\":[]}", "max_tokens" },
		{ "{\"model\":\"m\",\"max_tokens\":9223372036854775807,\"messages\":[]}",
		  "max_tokens" },
		{ "{\"model\":\"m\",\"max_completion_tokens\":0,\"messages\":[]}",
		  "max_completion_tokens" },
		{ "{\"model\":\"m\",\"stream_options\":{\"include_usage\":\"yes\"},\"messages\":[]}",
		  "stream_options.include_usage" },
		{ "{\"model\":\"m\",\"stream_options\":true,\"messages\":[]}", "stream_options" },
		{ "{\"model\":\"m\",\"n\":0,\"messages\":[]}", "n" },
		{ "{\"model\":\"m\",\"n\":129,\"messages\":[]}", "n" },
		{ "{\"model\":\"m\"}", "messages" },
		{ "{\"model\":\"m\",\"messages\":{}}", "messages" },
		{ "{\"model\":\"m\",\"messages\":[],\"tools\":{}}", "tools" },
		/* duplicates: the provider may read the other max_tokens */
		{ "{\"model\":\"m\",\"max_tokens\":1,\"max_tokens\":100000,\"messages\":[]}",
		  "body" },
		{ "{\"model\":\"m\",\"messages\":[]", "body" }, /* cut */
		{ "{\"model\":\"m\",\"messages\":[]} x", "body" }, /* trailing bytes */
		{ "[]", "body" },
		{ "", "body" },
		{ "{\"model\":\"m\\u0000x\",\"messages\":[]}", "body" }, /* NUL */
		{ "{\"model\":\"\xff\",\"messages\":[]}", "body" }, /* not UTF-8 */
	};
	unsigned i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (parse_err(&OPENAI_CHAT, t[i].body, t[i].field) != -EINVAL) {
			printf("#   case %u (%s) was not -EINVAL\n", i, t[i].body);
			lt_t_cur_failed = 1;
		}
}

static void model_longer_than_the_buffer_is_400(void)
{
	char body[600];

	snprintf(body, sizeof(body), "{\"model\":\"%0300d\",\"messages\":[]}", 0);
	CHECK_EQ(parse_err(&OPENAI_CHAT, body, "model"), -EINVAL);
}

/*
 * The bound's exact arithmetic on a small body, so a change to it is seen:
 * 32 per request + 16 per message + the message object:
 * 2 + ("role": 4+6, "user": 4+2) + ("content": 7+6, "hi": 2+2) = 35.
 */
static void prompt_bound_exact_on_a_small_body(void)
{
	struct lt_llm_req r;

	CHECK_EQ(parse(&OPENAI_CHAT,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		       &r),
		 0);
	CHECK_EQ(r.prompt_bound, LT_LLM_REQ_OVERHEAD + LT_LLM_MSG_OVERHEAD + 35);
	lt_llm_req_release(&r);
}

/*
 * Every string that reaches the model is counted: the bound grows by at
 * least the decoded bytes of text added anywhere in messages, content parts,
 * tools, tool calls, response_format. Decoded: "\u00e9" is 2 bytes, not 6.
 */
static void prompt_bound_counts_every_string(void)
{
	static const char *const where[] = {
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
		"\"text\":\"%s\"}]}]}",
		"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"x\",\"name\":"
		"\"%s\"}]}",
		"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
		"\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"%s\"}}"
		"]}]}",
		"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":"
		"{\"name\":\"f\",\"description\":\"%s\"}}]}",
		"{\"model\":\"m\",\"messages\":[],\"functions\":[{\"name\":\"f\",\"description\":"
		"\"%s\"}]}",
		"{\"model\":\"m\",\"messages\":[],\"response_format\":{\"type\":\"json_schema\","
		"\"json_schema\":{\"name\":\"%s\"}}}",
	};
	static const char *const text = "caf\\u00e9 \xe2\x82\xac 0123456789"; /* 18 bytes */
	char a[512], b[512];
	struct lt_llm_req ra, rb;
	unsigned i;

	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(a, sizeof(a), where[i], "");
		snprintf(b, sizeof(b), where[i], text);
		CHECK_EQ(parse(&OPENAI_CHAT, a, &ra), 0);
		CHECK_EQ(parse(&OPENAI_CHAT, b, &rb), 0);
		if (rb.prompt_bound < ra.prompt_bound + 18) {
			printf("#   case %u: %" PRIu64 " -> %" PRIu64 "\n", i, ra.prompt_bound,
			       rb.prompt_bound);
			lt_t_cur_failed = 1;
		}
		lt_llm_req_release(&ra);
		lt_llm_req_release(&rb);
	}
}

static void images_cost_the_per_image_bound(void)
{
	static const char body[] =
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
		"{\"type\":\"text\",\"text\":\"what is this\"},"
		"{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,"
		"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\"}}]}]}";
	struct lt_llm_parse_opts o = OPENAI_CHAT;
	struct lt_llm_req r;
	uint64_t dflt;

	CHECK_EQ(parse(&o, body, &r), 0);
	CHECK_EQ(r.images, 1);
	CHECK(r.prompt_bound > LT_LLM_IMAGE_TOKENS);
	dflt = r.prompt_bound;
	lt_llm_req_release(&r);
	o.image_tokens = 1000;
	CHECK_EQ(parse(&o, body, &r), 0);
	CHECK_EQ(dflt - r.prompt_bound, LT_LLM_IMAGE_TOKENS - 1000);
	lt_llm_req_release(&r);
}

/* Input the body does not bound is refused, never guessed. */
static void unboundable_input_is_refused(void)
{
	static const struct {
		struct lt_llm_parse_opts o;
		const char *body;
	} t[] = {
		{ { .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
		  "\"input_audio\",\"input_audio\":{\"data\":\"AAAA\",\"format\":\"wav\"}}]}]}" },
		{ { .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
		  "\"file\",\"file\":{\"file_id\":\"f\"}}]}]}" },
		{ { .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"audio\":{\"id\":"
		  "\"a\"}}]}" },
		{ { .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"messages\":[],\"web_search_options\":{}}" },
		{ { .provider = LT_LLM_P_QWEN, .shape = LT_LLM_CHAT },
		  "{\"model\":\"qwen-plus\",\"messages\":[],\"enable_search\":true}" },
		{ { .shape = LT_LLM_RESPONSES },
		  "{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"resp_1\"}" },
		{ { .shape = LT_LLM_RESPONSES },
		  "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}" },
		{ { .shape = LT_LLM_RESPONSES },
		  "{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"x\"}]}" },
		{ { .shape = LT_LLM_ANTHROPIC },
		  "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[],\"tools\":[{\"type\":"
		  "\"web_search_20250305\",\"name\":\"web_search\"}]}" },
		{ { .shape = LT_LLM_ANTHROPIC },
		  "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
		  "[{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
		  "\"application/pdf\",\"data\":\"JVBER\"}}]}]}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[],\"cachedContent\":\"cachedContents/x\"}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[],\"tools\":[{\"googleSearch\":{}}]}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"inlineData\":{\"mimeType\":"
		  "\"audio/wav\",\"data\":\"AAAA\"}}]}]}" },
	};
	struct lt_llm_req r;
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = parse(&t[i].o, t[i].body, &r);
		if (rc != -EOPNOTSUPP || !r.err[0]) {
			printf("#   case %u: rc %d err '%s'\n", i, rc, r.err);
			lt_t_cur_failed = 1;
		}
		lt_llm_req_release(&r);
	}
	/* the same shapes without the unbounded part are admitted */
	CHECK_EQ(parse(&QWEN_CHAT, "{\"model\":\"q\",\"messages\":[],\"enable_search\":false}", &r),
		 0);
	lt_llm_req_release(&r);
	{
		static const struct lt_llm_parse_opts a = { .shape = LT_LLM_ANTHROPIC };

		CHECK_EQ(parse(&a,
			       "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
			       "\"content\":[{\"type\":\"document\",\"source\":{\"type\":\"text\","
			       "\"media_type\":\"text/plain\",\"data\":\"hello\"}}]}],\"tools\":[{"
			       "\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}]}",
			       &r),
			 0);
		CHECK(r.prompt_bound > LT_LLM_TOOLS_OVERHEAD);
		lt_llm_req_release(&r);
	}
}

static void reservation_multiplies_completions_and_saturates(void)
{
	static const struct lt_llm_parse_opts cmpl = { .shape = LT_LLM_COMPLETIONS };
	struct lt_llm_req r;
	struct lt_llm_resv v;

	CHECK_EQ(parse(&OPENAI_CHAT, "{\"model\":\"m\",\"n\":3,\"messages\":[]}", &r), 0);
	lt_llm_reserve(&r, 500, &v);
	CHECK_EQ(v.output_per_completion, 500);
	CHECK_EQ(v.output_tokens, 1500);
	CHECK_EQ(v.total_tokens, v.prompt_tokens + 1500);
	lt_llm_req_release(&r);
	/* a batch of 2 prompts, best_of 5 generated per prompt */
	CHECK_EQ(parse(&cmpl,
		       "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"n\":2,\"best_of\":5,"
		       "\"max_tokens\":7}",
		       &r),
		 0);
	lt_llm_reserve(&r, 500, &v);
	CHECK_EQ(r.completions, 10);
	CHECK_EQ(v.output_tokens, 70);
	lt_llm_req_release(&r);
	/* token arrays are one prompt; arrays of them are a batch */
	CHECK_EQ(parse(&cmpl, "{\"model\":\"m\",\"prompt\":[1,2,3]}", &r), 0);
	CHECK_EQ(r.completions, 1);
	lt_llm_req_release(&r);
	CHECK_EQ(parse(&cmpl, "{\"model\":\"m\",\"prompt\":[[1],[2],[3]]}", &r), 0);
	CHECK_EQ(r.completions, 3);
	lt_llm_req_release(&r);
	CHECK_EQ(parse_err(&cmpl, "{\"model\":\"m\",\"prompt\":[\"a\",1]}", "prompt"), -EINVAL);
	/* tier default 0 is 1; above the maximum is the maximum; saturation */
	memset(&r, 0, sizeof(r));
	r.completions = 1;
	lt_llm_reserve(&r, 0, &v);
	CHECK_EQ(v.output_tokens, 1);
	lt_llm_reserve(&r, UINT64_MAX, &v);
	CHECK_EQ(v.output_tokens, LT_LLM_MAX_OUTPUT_TOKENS);
	r.prompt_bound = UINT64_MAX - 5;
	r.completions = UINT64_MAX / 2;
	lt_llm_reserve(&r, 1000, &v);
	CHECK_EQ(v.output_tokens, UINT64_MAX);
	CHECK_EQ(v.total_tokens, UINT64_MAX);
	CHECK_EQ(lt_llm_sat_add(UINT64_MAX, 1), UINT64_MAX);
	CHECK_EQ(lt_llm_sat_add(1, 2), 3);
	CHECK_EQ(lt_llm_sat_mul(UINT64_MAX, 2), UINT64_MAX);
	CHECK_EQ(lt_llm_sat_mul(0, UINT64_MAX), 0);
}

static void embeddings_have_no_output(void)
{
	static const struct lt_llm_parse_opts e = { .shape = LT_LLM_EMBEDDINGS };
	struct lt_llm_req r;
	struct lt_llm_resv v;
	char *out;
	size_t len;

	CHECK_EQ(parse(&e, "{\"model\":\"text-embedding-3-small\",\"input\":[\"a b\",\"c\"]}", &r),
		 0);
	lt_llm_reserve(&r, 4096, &v);
	CHECK_EQ(v.output_tokens, 0);
	CHECK_EQ(r.messages, 2);
	CHECK(v.total_tokens >= 4 && v.total_tokens == v.prompt_tokens);
	CHECK_EQ(lt_llm_rewrite(&r, &v, "x", 1, &out, &len), -EINVAL); /* not its body */
	lt_llm_req_release(&r);
	CHECK_EQ(parse_err(&e, "{\"model\":\"m\"}", "input"), -EINVAL);
	CHECK_EQ(parse_err(&e, "{\"model\":\"m\",\"input\":5}", "input"), -EINVAL);
}

/* The rewrite inserts exactly one member and leaves every other byte alone. */
static void rewrite_inserts_the_limit_byte_for_byte(void)
{
	static const struct {
		struct lt_llm_parse_opts o;
		const char *in, *out;
	} t[] = {
		{ { .provider = LT_LLM_P_OPENAI, .shape = LT_LLM_CHAT },
		  "{ \"model\" : \"gpt-4o\",\n  \"temperature\": 0.70, \"messages\":[] }",
		  "{\"max_completion_tokens\":900, \"model\" : \"gpt-4o\",\n  \"temperature\": "
		  "0.70, \"messages\":[] }" },
		{ { .provider = LT_LLM_P_QWEN, .shape = LT_LLM_CHAT },
		  "{\"model\":\"qwen-plus\",\"messages\":[]}",
		  "{\"max_tokens\":900,\"model\":\"qwen-plus\",\"messages\":[]}" },
		{ { .provider = LT_LLM_P_GEMINI, .shape = LT_LLM_CHAT },
		  "{\"model\":\"gemini-2.0-flash\",\"messages\":[]}",
		  "{\"max_tokens\":900,\"model\":\"gemini-2.0-flash\",\"messages\":[]}" },
		/* null is unset: replaced in place, never a second key */
		{ { .provider = LT_LLM_P_OPENAI, .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"max_tokens\":null,\"messages\":[]}",
		  "{\"model\":\"m\",\"max_tokens\":900,\"messages\":[]}" },
		{ { .provider = LT_LLM_P_OPENAI, .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"max\\u005ftokens\":null,\"messages\":[]}",
		  "{\"model\":\"m\",\"max\\u005ftokens\":900,\"messages\":[]}" },
		{ { .shape = LT_LLM_COMPLETIONS },
		  "{\"model\":\"m\",\"prompt\":\"p\"}",
		  "{\"max_tokens\":900,\"model\":\"m\",\"prompt\":\"p\"}" },
		{ { .shape = LT_LLM_RESPONSES },
		  "{\"model\":\"m\",\"input\":\"x\",\"stream\":true}",
		  "{\"max_output_tokens\":900,\"model\":\"m\",\"input\":\"x\",\"stream\":true}" },
		{ { .provider = LT_LLM_P_ANTHROPIC, .shape = LT_LLM_ANTHROPIC },
		  "{\"model\":\"claude\",\"messages\":[],\"stream\":true}",
		  "{\"max_tokens\":900,\"model\":\"claude\",\"messages\":[],\"stream\":true}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[]}",
		  "{\"generationConfig\":{\"maxOutputTokens\":900},\"contents\":[]}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[],\"generationConfig\":{ \"temperature\":1 }}",
		  "{\"contents\":[],\"generationConfig\":{\"maxOutputTokens\":900, "
		  "\"temperature\":1 }}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[],\"generation_config\":{}}",
		  "{\"contents\":[],\"generation_config\":{\"maxOutputTokens\":900}}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[],\"generation_config\":{\"max_output_tokens\":null}}",
		  "{\"contents\":[],\"generation_config\":{\"max_output_tokens\":900}}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g" },
		  "{\"contents\":[],\"generationConfig\":null}",
		  "{\"contents\":[],\"generationConfig\":{\"maxOutputTokens\":900}}" },
		/* a client limit: nothing to do */
		{ { .shape = LT_LLM_ANTHROPIC },
		  "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[]}",
		  "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[]}" },
	};
	struct lt_llm_req r;
	struct lt_llm_resv v;
	unsigned i;
	char *out;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		out = rewrite(&t[i].o, t[i].in, 900, &r, &v);
		if (strcmp(out, t[i].out)) {
			printf("#   case %u: got %s\n", i, out);
			lt_t_cur_failed = 1;
		}
		CHECK(!r.usage_injected || r.shape == LT_LLM_CHAT);
		lt_llm_req_release(&r);
		free(out);
	}
}

static void rewrite_asks_for_stream_usage_when_the_client_did_not(void)
{
	static const struct {
		const char *in, *out;
		bool injected;
	} t[] = {
		{ "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"messages\":[]}",
		  "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true,"
		  "\"max_tokens\":5,\"messages\":[]}",
		  true },
		{ "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{},"
		  "\"messages\":[]}",
		  "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{"
		  "\"include_usage\":true},\"messages\":[]}",
		  true },
		{ "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{"
		  "\"include_usage\":false},\"messages\":[]}",
		  "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{"
		  "\"include_usage\":true},\"messages\":[]}",
		  true },
		{ "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":null,"
		  "\"messages\":[]}",
		  "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{"
		  "\"include_usage\":true},\"messages\":[]}",
		  true },
		{ "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{"
		  "\"include_usage\":true},\"messages\":[]}",
		  "{\"model\":\"m\",\"stream\":true,\"max_tokens\":5,\"stream_options\":{"
		  "\"include_usage\":true},\"messages\":[]}",
		  false },
		/* both at once, at the same spot: two members, one comma */
		{ "{\"model\":\"m\",\"stream\":true,\"messages\":[]}",
		  "{\"max_completion_tokens\":64,\"stream_options\":{\"include_usage\":true},"
		  "\"model\":\"m\",\"stream\":true,\"messages\":[]}",
		  true },
		/* not a stream: nothing about usage */
		{ "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}",
		  "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", false },
	};
	struct lt_llm_req r;
	struct lt_llm_resv v;
	unsigned i;
	char *out;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		out = rewrite(&OPENAI_CHAT, t[i].in, 64, &r, &v);
		if (strcmp(out, t[i].out) || r.usage_injected != t[i].injected) {
			printf("#   case %u: got %s (injected %d)\n", i, out, r.usage_injected);
			lt_t_cur_failed = 1;
		}
		lt_llm_req_release(&r);
		free(out);
	}
}

/*
 * Every rewritten body is valid JSON without duplicate keys, and parses
 * again with the limit set to the allowance and usage asked for.
 */
static void rewritten_bodies_parse_again_with_the_limit(void)
{
	static const struct {
		struct lt_llm_parse_opts o;
		const char *in;
	} t[] = {
		{ { .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"x\":1},\"messages\":"
		  "[{\"role\":\"user\",\"content\":\"{\\\"max_tokens\\\":1}\"}]}" },
		{ { .shape = LT_LLM_CHAT },
		  "\r\n\t{\"model\":\"m\",\"stream\":true,\"max_completion_tokens\":null,"
		  "\"messages\":[]}\n" },
		{ { .shape = LT_LLM_CHAT },
		  "{\"model\":\"m\",\"stre\\u0061m\":true,\"stream_options\":{\"include_"
		  "\\u0075sage\":null},\"messages\":[]}" },
		{ { .shape = LT_LLM_GEMINI, .path_model = "g", .path_stream = true },
		  "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}],\"generationConfig\":{"
		  "\"responseSchema\":{\"maxOutputTokens\":{\"type\":\"integer\"}}}}" },
	};
	struct lt_llm_req r, r2;
	struct lt_llm_resv v;
	unsigned i;
	char *out;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		out = rewrite(&t[i].o, t[i].in, 321, &r, &v);
		if (parse(&t[i].o, out, &r2)) {
			printf("#   case %u: %s: %s\n", i, out, r2.err);
			lt_t_cur_failed = 1;
		} else {
			CHECK(r2.has_limit);
			CHECK_EQ(r2.limit_tokens, 321);
			CHECK(r2.shape == LT_LLM_GEMINI || r2.include_usage);
		}
		lt_llm_req_release(&r);
		lt_llm_req_release(&r2);
		free(out);
	}
}

static void gemini_native_fields(void)
{
	struct lt_llm_parse_opts o = { .provider = LT_LLM_P_GEMINI,
				       .shape = LT_LLM_GEMINI,
				       .path_model = "gemini-2.5-flash" };
	struct lt_llm_req r;
	struct lt_llm_resv v;

	CHECK_EQ(parse(&o,
		       "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"},"
		       "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"AAAA\"}}]}],"
		       "\"system_instruction\":{\"parts\":[{\"text\":\"be brief\"}]},"
		       "\"generationConfig\":{\"maxOutputTokens\":50,\"candidateCount\":2}}",
		       &r),
		 0);
	CHECK(!strcmp(r.model, "gemini-2.5-flash"));
	CHECK(r.has_limit && r.limit_tokens == 50);
	CHECK_EQ(r.completions, 2);
	CHECK_EQ(r.images, 1);
	lt_llm_reserve(&r, 1, &v);
	CHECK_EQ(v.output_tokens, 100);
	lt_llm_req_release(&r);
	CHECK_EQ(parse_err(&o, "{\"contents\":[],\"generationConfig\":{\"maxOutputTokens\":0}}",
			   "generationConfig.maxOutputTokens"),
		 -EINVAL);
	CHECK_EQ(parse_err(&o,
			   "{\"contents\":[],\"generationConfig\":{\"maxOutputTokens\":5,"
			   "\"max_output_tokens\":500}}",
			   "maxOutputTokens"),
		 -EINVAL);
	CHECK_EQ(parse_err(&o, "{\"contents\":[],\"generationConfig\":{},\"generation_config\":{}}",
			   "generationConfig"),
		 -EINVAL);
	CHECK_EQ(parse_err(&o, "{\"contents\":[],\"generationConfig\":[]}", "generationConfig"),
		 -EINVAL);
	CHECK_EQ(parse_err(&o, "{}", "contents"), -EINVAL);
	o.path_model = NULL;
	CHECK_EQ(parse_err(&o, "{\"contents\":[]}", "model"), -EINVAL);
}

static void gemini_paths(void)
{
	static const struct {
		const char *path, *model;
		int rc;
		bool stream, sse;
	} t[] = {
		{ "/v1beta/models/gemini-2.0-flash:generateContent", "gemini-2.0-flash", 0, false,
		  false },
		{ "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
		  "gemini-2.0-flash", 0, true, true },
		{ "/gemini/v1/models/g:streamGenerateContent?key=k&alt=sse", "g", 0, true, true },
		{ "/v1beta/models/g:streamGenerateContent", "g", 0, true, false },
		{ "/v1beta/models/g:streamGenerateContent?alt=json", "g", 0, true, false },
		{ "/v1beta/models/g:countTokens", NULL, -EINVAL, false, false },
		{ "/v1beta/models/:generateContent", NULL, -EINVAL, false, false },
		{ "/v1beta/models/a/b:generateContent", NULL, -EINVAL, false, false },
		{ "/v1beta/tunedmodels/g:generateContent", NULL, -EINVAL, false, false },
		{ "/v1beta/models/g", NULL, -EINVAL, false, false },
		{ "", NULL, -EINVAL, false, false },
	};
	char model[LT_LLM_MODEL_MAX];
	bool stream, sse;
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = lt_llm_gemini_path(t[i].path, strlen(t[i].path), model, sizeof(model), &stream,
					&sse);
		if (rc != t[i].rc || (!rc && (strcmp(model, t[i].model) || stream != t[i].stream ||
					      sse != t[i].sse))) {
			printf("#   case %u: rc %d\n", i, rc);
			lt_t_cur_failed = 1;
		}
	}
	CHECK_EQ(lt_llm_gemini_path("/models/abcdef:generateContent", 30, model, 4, &stream, &sse),
		 -EINVAL); /* does not fit */
}

static void responses_and_anthropic_fields(void)
{
	static const struct lt_llm_parse_opts resp = { .shape = LT_LLM_RESPONSES };
	static const struct lt_llm_parse_opts anth = { .provider = LT_LLM_P_ANTHROPIC,
						       .shape = LT_LLM_ANTHROPIC };
	struct lt_llm_req r;

	CHECK_EQ(parse(&resp,
		       "{\"model\":\"m\",\"instructions\":\"be brief\",\"max_output_tokens\":40,"
		       "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
		       "\"text\":\"hi\"},{\"type\":\"input_image\",\"image_url\":\"https://x/y"
		       ".png\"}]}],\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}",
		       &r),
		 0);
	CHECK(r.has_limit && r.limit_tokens == 40 && r.images == 1);
	CHECK(!strcmp(r.limit_field, "max_output_tokens"));
	lt_llm_req_release(&r);
	CHECK_EQ(parse_err(&resp, "{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":-1}",
			   "max_output_tokens"),
		 -EINVAL);
	CHECK_EQ(parse_err(&resp, "{\"model\":\"m\"}", "input"), -EINVAL);
	CHECK_EQ(parse(&anth,
		       "{\"model\":\"claude\",\"max_tokens\":1024,\"stream\":true,\"system\":"
		       "[{\"type\":\"text\",\"text\":\"be brief\"}],\"messages\":[{\"role\":"
		       "\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\","
		       "\"url\":\"https://x\"}},{\"type\":\"text\",\"text\":\"hi\"}]}]}",
		       &r),
		 0);
	CHECK(r.stream && r.has_limit && r.images == 1 && r.messages == 1);
	CHECK(!r.include_usage);
	lt_llm_req_release(&r);
	CHECK_EQ(parse_err(&anth, "{\"model\":\"c\",\"stream\":\"no\",\"messages\":[]}", "stream"),
		 -EINVAL);
	CHECK_EQ(parse_err(&anth, "{\"model\":\"c\",\"system\":5,\"messages\":[]}", "system"),
		 -EINVAL);
}

/* The allocation-free path reads common chat bodies exactly as jansson does. */
static void fast_path_agrees_with_jansson(void)
{
	static const struct {
		const char *body;
		bool fast;
	} t[] = {
		{ "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\"}]}",
		  true },
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true,"
		  "\"x\":[1]},\"max_tokens\":null,\"n\":2,\"temperature\":0.5,\"metadata\":"
		  "{\"a\":{\"b\":[]}},\"messages\":[{\"role\":\"system\",\"content\":null,"
		  "\"name\":\"s\"},{\"role\":\"user\",\"content\":\"\"}]}",
		  true },
		{ "{\"model\":\"m\",\"max_completion_tokens\":7,\"max_tokens\":9,\"stream\":null,"
		  "\"messages\":[]}",
		  true },
		{ " {\"messages\":[],\"model\":\"m\",\"stream_options\":null} ", true },
		/* the jansson path: parts, tools, escapes, duplicates, errors */
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
		  "\"text\",\"text\":\"x\"}]}]}",
		  false },
		{ "{\"model\":\"m\",\"messages\":[],\"tools\":[]}", false },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\","
		  "\"tool_call_id\":\"c\"}]}",
		  false },
		{ "{\"mod\\u0065l\":\"m\",\"messages\":[]}", false },
		{ "{\"model\":\"m\",\"messages\":[],\"metadata\":{\"a\":1,\"a\":2}}", false },
		{ "{\"model\":\"m\",\"messages\":[],\"max_tokens\":0}", false },
		{ "{\"model\":\"m\",\"messages\":[],\"stream\":\"yes\"}", false },
		{ "{\"model\":\"m\"}", false },
	};
	struct lt_llm_parse_opts ref = OPENAI_CHAT;
	struct lt_llm_req a, b;
	unsigned i;
	int ra, rb;

	ref.use_jansson = true;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ra = parse(&OPENAI_CHAT, t[i].body, &a);
		rb = parse(&ref, t[i].body, &b);
		if (a.fast != t[i].fast || ra != rb || strcmp(a.err, b.err) ||
		    (!ra &&
		     (strcmp(a.model, b.model) || a.stream != b.stream ||
		      a.has_limit != b.has_limit || a.limit_tokens != b.limit_tokens ||
		      strcmp(a.limit_field, b.limit_field) || a.completions != b.completions ||
		      a.include_usage != b.include_usage || a.prompt_bound != b.prompt_bound ||
		      a.messages != b.messages || a.so_state != b.so_state))) {
			printf("#   case %u: fast %d rc %d/%d bound %" PRIu64 "/%" PRIu64 "\n", i,
			       a.fast, ra, rb, a.prompt_bound, b.prompt_bound);
			lt_t_cur_failed = 1;
		}
		lt_llm_req_release(&a);
		lt_llm_req_release(&b);
	}
}

int main(void)
{
	RUN(chat_parsed_fields);
	RUN(bad_fields_are_400_naming_the_field);
	RUN(model_longer_than_the_buffer_is_400);
	RUN(prompt_bound_exact_on_a_small_body);
	RUN(prompt_bound_counts_every_string);
	RUN(images_cost_the_per_image_bound);
	RUN(unboundable_input_is_refused);
	RUN(reservation_multiplies_completions_and_saturates);
	RUN(embeddings_have_no_output);
	RUN(rewrite_inserts_the_limit_byte_for_byte);
	RUN(rewrite_asks_for_stream_usage_when_the_client_did_not);
	RUN(rewritten_bodies_parse_again_with_the_limit);
	RUN(gemini_native_fields);
	RUN(gemini_paths);
	RUN(responses_and_anthropic_fields);
	RUN(fast_path_agrees_with_jansson);
	return lt_t_done();
}
