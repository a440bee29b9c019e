/* SPDX-License-Identifier: MIT */
/*
 * llm_usage.h - the response side of the gateway's LLM routes (issue 9
 * item 4): the token usage a provider reports, the output a stream carries,
 * where a stream must be cut, and the reconcile arithmetic. Pure functions:
 * no I/O, no maps, no globals; each stream's state is one struct the glue
 * (gateway/llm_route.c) keeps per exchange.
 *
 * The contract, in the order the glue calls it:
 *
 *  A JSON answer (stream false): lt_llm_usage_json(shape, body, len, &u).
 *	0 and u.final: usage was reported. 0 and !u.final: the body has none
 *	(an error body, a compatible server without usage). -EINVAL: not JSON.
 *
 *  An SSE answer (Content-Type text/event-stream, stream true):
 *	struct lt_llm_sse s; lt_llm_sse_init(&s, &opts);
 *	for each response data piece:  rc = lt_llm_sse_feed(&s, p, n, &out);
 *	    send out.p[0..out.len) to the client, then out.len = 0;
 *	    rc 0: go on. rc LT_LLM_SSE_CUT: the stream reached its budget;
 *	    out ends with the shape's final error event: send it and end the
 *	    client's response; stop reading upstream (or read on, bounded, to
 *	    learn usage: later feeds forward nothing). -ENOMEM: fail the stream.
 *	at upstream EOF: lt_llm_sse_finish(&s, &out) forwards a partial event.
 *	s.usage, s.out_bytes: what to reconcile with. lt_llm_sse_release(&s),
 *	free(out.p).
 *     Bytes are held back until their event is complete (an event is the
 *     unit that can be dropped or replaced), so the client sees whole
 *     events, each as soon as its blank line arrives. Memory per stream is
 *     bounded: one event, at most LT_LLM_SSE_EVENT_MAX bytes of data held
 *     (plus its raw bytes). A larger event is not held and not read as
 *     JSON: its data bytes count as tokens (out_big; bytes bound a
 *     byte-level tokenizer's tokens) as they stream. With a cut set, one
 *     whose held part already passes the budget is replaced by the cut
 *     whole; otherwise it streams until exactly the budget is used and is
 *     ended there (the client gets a truncated event, then the final error
 *     event). Only a Responses summary that repeats counted deltas
 *     (response.completed, response.*.done: event name and JSON "type"
 *     both) is free. Its usage is read from its last LT_LLM_SSE_TAIL bytes,
 *     where the providers put it (after the output).
 *
 *  Reconcile: lt_llm_reconcile(&resv, &usage, counted_output, &settle).
 *
 * Usage per shape (what "input" and "output" add up):
 *   OpenAI chat / completions / embeddings, Qwen compatible mode, Gemini's
 *	OpenAI endpoint: usage.prompt_tokens, usage.completion_tokens (reasoning
 *	included); on streams the extra chunk with "choices": [] before
 *	[DONE] when stream_options.include_usage is set (OpenAI API reference).
 *	DashScope's native usage {input_tokens, output_tokens} is accepted too.
 *   Responses: usage.input_tokens, usage.output_tokens; on streams in the
 *	response of response.completed / response.incomplete / response.failed.
 *   Gemini: usageMetadata.promptTokenCount (+ toolUsePromptTokenCount) and
 *	candidatesTokenCount + thoughtsTokenCount (thinking is billed as output,
 *	ai.google.dev/gemini-api/docs/tokens); on streams each chunk may carry
 *	usageMetadata, final on the chunk with a finishReason.
 *   Anthropic: usage.input_tokens + cache_creation_input_tokens +
 *	cache_read_input_tokens, and output_tokens; on streams message_start
 *	gives input (its output_tokens is a placeholder) and message_delta the
 *	cumulative final output_tokens (docs.anthropic.com streaming messages).
 *
 * Output counting (for the cut-off): out_bytes is the bytes of generated
 * text deltas (content, refusals, reasoning text, tool-call names and
 * arguments), an upper bound on the visible output tokens of a byte-level
 * tokenizer. out_deltas is what the non-empty ones must carry at least:
 * one token each, and one per LT_LLM_TOKEN_BYTES_MAX bytes of their text
 * (an audio delta one), so it is a lower bound. Hidden reasoning (OpenAI
 * o-series) is in neither: only usage knows it.
 *
 * The cut (opts.resv set, opts.cut != LT_LLM_CUT_OFF): before an event is
 * forwarded, if counting it would pass the budget, it is replaced by the
 * final error event and nothing more is forwarded:
 *   LT_LLM_CUT_BYTES: out_bytes would exceed the part of the reservation
 *	left for output: resv.total - input (once the provider reported the
 *	input: Anthropic message_start, Gemini chunks), else resv.output.
 *	Since tokens <= bytes, what the client received never costs more than
 *	the reservation, whatever the provider does. The price: a compliant
 *	stream whose text has more bytes than tokens left is ended early
 *	(English is ~4 bytes per token).
 *   LT_LLM_CUT_TOKENS: the provable token count, max(out_deltas + out_big,
 *	the output the provider reported so far), would exceed resv.output:
 *	only a provider that ignores the limit the gateway set is ever cut;
 *	one that packs many short tokens in its deltas gets them out at up to
 *	LT_LLM_TOKEN_BYTES_MAX bytes a counted token, no more.
 */
#ifndef LT_LLM_USAGE_H
#define LT_LLM_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "llm_body.h"

#define LT_LLM_SSE_EVENT_MAX (64 * 1024) /* bytes of one event held and parsed */
#define LT_LLM_SSE_TAIL 8192 /* bytes kept of a larger event, for its usage */
#define LT_LLM_SSE_CUT 1 /* lt_llm_sse_feed: the stream was cut */
/*
 * Bytes of text that hold at least one token: well above the longest tokens
 * of the vocabularies behind these APIs (tiktoken's BPE merges, SentencePiece
 * pieces of at most 16 characters), so ceil(bytes / this) never exceeds a
 * delta's real token count.
 */
#define LT_LLM_TOKEN_BYTES_MAX 256

struct lt_llm_usage {
	bool has_input; /* input reported (may come before output) */
	bool final; /* the provider's final count arrived */
	uint64_t input_tokens;
	uint64_t output_tokens; /* so far, or final */
};

enum lt_llm_cut { LT_LLM_CUT_OFF, LT_LLM_CUT_BYTES, LT_LLM_CUT_TOKENS };

struct lt_llm_sse_opts {
	enum lt_llm_shape shape;
	bool drop_usage_chunk; /* lt_llm_req.usage_injected: the client did not ask for it */
	enum lt_llm_cut cut;
	struct lt_llm_resv resv; /* the request's reservation (for the cut) */
	bool use_jansson; /* tests: read every event with jansson, the reference */
	/*
	 * Gemini streamGenerateContent without alt=sse: the stream is one JSON
	 * array written element by element. Each element is an event: held
	 * until it closes, counted, then forwarded or replaced by the cut. A
	 * body whose first non-blank byte is not '[' is read as SSE instead
	 * (json_array is then cleared): what a client reads is what the body
	 * is, whatever the query or the label said.
	 */
	bool json_array;
};

struct lt_llm_buf {
	char *p;
	size_t len, cap;
};

struct lt_llm_sse {
	struct lt_llm_sse_opts o;
	struct lt_llm_usage usage;
	uint64_t out_bytes; /* generated text bytes seen (upper bound, tokens) */
	uint64_t out_deltas; /* non-empty generated deltas (lower bound, tokens) */
	/*
	 * Data bytes of events longer than LT_LLM_SSE_EVENT_MAX (not read as
	 * JSON): their bound on tokens, as bytes bound a byte-level tokenizer's
	 * count. Added to out_deltas by the token cut; not by the reconcile,
	 * which takes a lower bound (what went out under this one is within
	 * the reservation a stream without final usage is charged).
	 */
	uint64_t out_big;
	uint64_t events; /* events parsed */
	uint64_t oversize; /* events larger than LT_LLM_SSE_EVENT_MAX */
	uint64_t slow_events; /* events the scanner left to jansson (escaped keys, odd JSON) */
	uint64_t ref_dups; /* use_jansson: events with duplicate keys (tests compare without) */
	bool done; /* [DONE], message_stop, response.completed... */
	bool upstream_error; /* the provider sent an error event */
	bool cut; /* the gateway ended the stream */
	/* private: the parser */
	int st; /* line state */
	bool cr; /* the last byte was CR: a following LF ends nothing */
	unsigned char bom; /* bytes of a leading UTF-8 BOM seen; 3: past the stream's start */
	bool big; /* the current event passed LT_LLM_SSE_EVENT_MAX */
	bool big_rep; /* ... and it is a Responses summary that repeats counted output */
	bool fwd_last; /* the last event was forwarded (its CRLF's LF follows it) */
	int fkind; /* the current line's field: data, event, other */
	char field[8];
	unsigned flen;
	char event[40];
	unsigned elen;
	int64_t seq; /* Responses: the last sequence_number */
	int ast; /* json_array: where in the array (A_* in llm_usage.c) */
	unsigned adepth; /* json_array: brackets open in the current element */
	bool astr, aesc; /* json_array: in a string; after its backslash */
	bool afwd; /* json_array: an element was forwarded (the cut needs a comma) */
	bool aseen, acomma; /* json_array: an element began; a comma follows it */
	bool acomma_out; /* json_array: that comma went out already (with a run of blanks) */
	struct lt_llm_buf raw; /* the current event's bytes, held back */
	struct lt_llm_buf data; /* its data lines, joined by \n */
	char tail[LT_LLM_SSE_TAIL]; /* a big event's last data bytes (ring) */
	size_t tlen;
};

int lt_llm_usage_json(enum lt_llm_shape shape, const void *body, size_t len,
		      struct lt_llm_usage *u);

void lt_llm_sse_init(struct lt_llm_sse *s, const struct lt_llm_sse_opts *o);
int lt_llm_sse_feed(struct lt_llm_sse *s, const void *piece, size_t len, struct lt_llm_buf *out);
int lt_llm_sse_finish(struct lt_llm_sse *s, struct lt_llm_buf *out);
void lt_llm_sse_release(struct lt_llm_sse *s);

/*
 * The final error event of a shape, appended to out (what a cut sends):
 *   chat/completions: data: {"error":{...,"code":"output_limit_reached"}}
 *	then data: [DONE] (OpenAI's in-stream error shape, which the SDKs raise);
 *   responses: event: error, {"type":"error","code":...,"sequence_number":n+1};
 *   anthropic: event: error, {"type":"error","error":{"type":"rate_limit_error",...}};
 *   gemini: data: {"error":{"code":429,"status":"RESOURCE_EXHAUSTED",...}}.
 * 0 or -ENOMEM.
 */
int lt_llm_cut_event(const struct lt_llm_sse *s, struct lt_llm_buf *out);

/*
 * Reconcile: what the request used, against what it reserved.
 *   usage final: used = input + max(output, counted_output), as reported,
 *	except that a report below the output counted as it passed (the
 *	caller's lower bound: non-empty deltas) is charged that count. Where
 *	usage arrives more than once, each count keeps its largest value.
 *   otherwise (cut, client gone, upstream failed, no usage): the output
 *	is unknown (hidden reasoning, tokens the provider generated but we did
 *	not see), so used = (input if reported, else the prompt bound) +
 *	max(the output allowance, counted_output, output reported so far).
 *	That is the reservation (issue 9: "otherwise it charges the
 *	reservation"), less any prompt slack the provider already disclosed,
 *	or more when the counted output shows more.
 *   refund = reserved - used when used <= reserved, else excess = used -
 *   reserved, to charge on top (a provider over its limit). Never negative;
 *   saturating.
 */
struct lt_llm_settle {
	uint64_t used; /* tokens */
	uint64_t refund; /* tokens to give back to every bucket charged */
	uint64_t excess; /* tokens to charge beyond the reservation */
};

void lt_llm_reconcile(const struct lt_llm_resv *v, const struct lt_llm_usage *u,
		      uint64_t counted_output, struct lt_llm_settle *out);

#endif /* LT_LLM_USAGE_H */
