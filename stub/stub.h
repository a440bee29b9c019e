/* SPDX-License-Identifier: MIT */
/*
 * stub.h - leaky-stub, the provider stub (issue #9): shared by the stub sources and the unit tests.
 *
 * The stub answers the wire shapes of OpenAI, Gemini, DashScope (compatible mode) and
 * Anthropic with deterministic output and honest usage:
 *   prompt tokens     = ceil(B / 4), B = bytes of the prompt text (decoded JSON strings, see
 *                       stub_parse()), plus one per pre-tokenized integer input; never above B.
 *   completion tokens = N, the number of output tokens it generated; each token is the 4 bytes
 *                       "tok " (STUB_TOKEN), one per stream event.
 *   N                 = min(the request's output limit, the wanted length) where the wanted
 *                       length is x-stub-tokens or --tokens; with x-stub-ignore-max-tokens (or
 *                       --ignore-max-tokens) N is the wanted length whatever the limit.
 */
#ifndef LT_STUB_H
#define LT_STUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STUB_TOKEN "tok "
#define STUB_TOKEN_BYTES 4
/* Upper bound of an output length (x-stub-tokens, --tokens): 16 MiB of text. */
#define STUB_MAX_TOKENS (4u << 20)
#define STUB_MAX_MODEL 256

/* One per endpoint family; the index of the counters in /stub/stats. */
enum stub_shape {
	STUB_OPENAI_CHAT = 0, /* POST /v1/chat/completions */
	STUB_OPENAI_COMPLETIONS, /* POST /v1/completions */
	STUB_OPENAI_EMBEDDINGS, /* POST /v1/embeddings */
	STUB_OPENAI_RESPONSES, /* POST /v1/responses */
	STUB_GEMINI, /* POST /v1beta/models/{model}:generateContent, :streamGenerateContent */
	STUB_GEMINI_OPENAI, /* POST /v1beta/openai/chat/completions */
	STUB_DASHSCOPE, /* POST /compatible-mode/v1/chat/completions */
	STUB_ANTHROPIC, /* POST /v1/messages */
	STUB_SHAPES,
	STUB_NO_SHAPE = STUB_SHAPES,
};

extern const char *const stub_shape_names[STUB_SHAPES];

/* Error bodies come in three families. */
enum stub_family { STUB_FAM_OPENAI, STUB_FAM_GEMINI, STUB_FAM_ANTHROPIC };

enum stub_family stub_shape_family(enum stub_shape s);

/* A growable byte buffer. */
struct stub_buf {
	char *p;
	size_t len, cap;
};

/* Defaults, from the command line or POST /stub/config; each is overridden per request by its
 * x-stub-* header. Workers read the runtime ones with atomic loads (stub_opt_get). */
struct stub_opts {
	char listen[128];
	char content_type[64]; /* "": the shape's own */
	uint32_t threads;
	uint32_t tokens; /* wanted output length, tokens */
	uint32_t latency_ms; /* before the response head */
	uint32_t chunk_delay_ms; /* between SSE events */
	uint32_t status; /* 0: answer normally */
	uint32_t retry_after_s; /* of a 429 */
	uint32_t embed_dims; /* floats per embedding */
	uint32_t event_tokens; /* output tokens per stream event (a provider that batches) */
	uint32_t chunk_bytes; /* a stream's HTTP chunks at most this long; 0: one per event */
	uint32_t eol; /* a stream's line ends: 0 as the shape writes them, 1 LF, 2 CRLF, 3 CR */
	uint64_t max_body; /* bytes */
	int64_t disconnect_after; /* events (bytes of a JSON body); -1: never */
	int64_t error_after; /* events; -1: never */
	bool ignore_max_tokens;
	bool gemini_array; /* a stream is a JSON array whatever the query said */
	bool hang;
	bool gzip; /* compress every LLM answer, whatever the request's Accept-Encoding */
	bool quiet;
};

enum stub_opt_type { STUB_OPT_U32, STUB_OPT_U64, STUB_OPT_I64, STUB_OPT_STR, STUB_OPT_FLAG };

/* One table for the command line, --help and POST /stub/config (stub/opts.c). */
struct stub_opt {
	const char *name; /* --name; in /stub/config with '_' for '-' */
	const char *arg, *help;
	enum stub_opt_type type;
	void *ptr;
	int64_t lo, hi;
	const char *hdr; /* the per-request header that overrides it */
	bool runtime; /* settable by POST /stub/config */
};

extern const struct stub_opt stub_opt_table[];
extern const size_t stub_nopts;

/* From text (the command line); 0 or -EINVAL. */
int stub_opt_set(const struct stub_opt *o, const char *val);
/* POST /stub/config: a JSON object of runtime options; all or nothing. 0 or -EINVAL + err. */
int stub_config_apply(const char *body, size_t len, char *err, size_t errlen);
/* GET /stub/config: every runtime option's current value. */
void stub_config_json(struct stub_buf *b);

#define stub_opt_get(field) __atomic_load_n(&stub_opts.field, __ATOMIC_RELAXED)

extern struct stub_opts stub_opts;

int stub_buf_reserve(struct stub_buf *b, size_t more);
void stub_buf_add(struct stub_buf *b, const void *p, size_t n);
void stub_buf_str(struct stub_buf *b, const char *s);
void stub_buf_printf(struct stub_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* s as a JSON string, quotes included */
void stub_buf_json_str(struct stub_buf *b, const char *s, size_t n);
void stub_buf_free(struct stub_buf *b);

/* What one LLM request asks for, once its body is parsed. */
struct stub_req {
	enum stub_shape shape;
	bool stream;
	bool include_usage; /* OpenAI stream_options.include_usage */
	bool emb_base64; /* embeddings: encoding_format "base64" */
	bool gemini_sse; /* streamGenerateContent?alt=sse (else a JSON array, chunked) */
	char model[STUB_MAX_MODEL + 1];
	uint64_t prompt_bytes;
	uint64_t prompt_tokens;
	uint32_t n_inputs; /* embeddings: how many inputs */
	uint32_t emb_dims; /* embeddings: floats per vector */
	int64_t limit; /* the shape's output limit field, -1 when absent */
};

/* Parses the body of an LLM request of shape s into r. Returns 0, or -EINVAL with a
 * message for a provider-shaped 400 in err. */
int stub_parse(enum stub_shape s, const char *body, size_t len, struct stub_req *r, char *err,
	       size_t errlen);

/* A response in the making: the JSON body at once, or a stream one event at a time. */
struct stub_gen {
	const struct stub_req *req;
	uint32_t n; /* output tokens */
	uint32_t per; /* output tokens per text event (x-stub-event-tokens), >= 1 */
	uint32_t nt; /* text events: ceil(n / per) */
	bool capped; /* N was cut by the request's limit: finish "length" */
	uint32_t ev; /* next event index */
	uint32_t nev; /* events in the whole stream */
	uint64_t id; /* per-process response number, in ids */
	int64_t created; /* unix seconds */
	/* What the written part of the response reported so far (cumulative, as the shapes do). */
	uint64_t rep_prompt, rep_completion;
	uint64_t gen_tokens; /* output tokens written so far */
	/* x-stub-error-after: event index at which the stream ends with the provider's error
	 * event instead (-1: never) */
	int64_t err_after;
	bool errored; /* that error event was written */
};

void stub_gen_init(struct stub_gen *g, const struct stub_req *r, uint32_t n, bool capped,
		   uint64_t id);
/* Packs per output tokens into each text event (default 1: one token an event). Call right
 * after stub_gen_init. */
void stub_gen_per_event(struct stub_gen *g, uint32_t per);
/* The JSON body of a non-stream answer; sets rep_* and gen_tokens. */
void stub_gen_json(struct stub_gen *g, struct stub_buf *out);
/* Appends the next SSE event (or JSON array element) to out, unframed. Returns false when the
 * stream has no more events. */
bool stub_gen_event(struct stub_gen *g, struct stub_buf *out);
const char *stub_gen_content_type(const struct stub_req *r);

/* A provider-shaped error body for status in family f; retry_s goes in Gemini's RetryInfo. */
void stub_error_body(enum stub_family f, unsigned status, unsigned retry_s, const char *msg,
		     struct stub_buf *out);

/* Counters of /stub/stats, one set per shape; atomics, relaxed. */
struct stub_counters {
	uint64_t requests; /* LLM requests received (errors included) */
	uint64_t errors; /* answered with a status other than 200 */
	uint64_t streams; /* 200 answers that streamed */
	uint64_t prompt_tokens; /* reported in usage the client was sent */
	uint64_t completion_tokens; /* reported in usage the client was sent */
	uint64_t generated_tokens; /* output tokens written to the client */
	uint64_t cut; /* closed by x-stub-disconnect-after */
	uint64_t client_gone; /* the client closed before the answer was whole */
	uint64_t hung; /* x-stub-hang */
	uint64_t stream_errors; /* streams ended by an error event (x-stub-error-after) */
};

extern struct stub_counters stub_stats[STUB_SHAPES];

#define stub_count(shape, field, v) \
	__atomic_fetch_add(&stub_stats[shape].field, (v), __ATOMIC_RELAXED)

void stub_stats_json(struct stub_buf *out);
void stub_stats_reset(void);

/* The server (stub/server.c): runs opts.threads workers until a signal. Returns 0 or -errno. */
int stub_serve(void);

#endif
