/* SPDX-License-Identifier: MIT */
/*
 * llm_json.h - a validating JSON scanner that allocates nothing, for the
 * per-event work of the LLM stream parser (llm_usage.c): jansson builds a
 * tree of heap objects for every SSE event (about 6 us for a 190-byte
 * OpenAI chunk, measured on this machine), where the parser only needs a few
 * strings' lengths and integers. Used only by gateway/llm_*.c.
 *
 * It calls back once per value, in document order, with the value's path
 * from the root (object keys as raw text, without unescaping; array
 * indexes), and for containers again at their end with the member count.
 * It is stricter than jansson, never laxer: whatever it accepts, jansson
 * (flags 0) accepts with the same values; it refuses (-EINVAL) invalid
 * UTF-8, control characters in strings, \u0000, lone surrogates, integers
 * outside int64, reals that overflow, nesting deeper than LT_JSCAN_DEPTH,
 * top-level scalars and trailing bytes. A caller falls back to jansson when
 * it refuses, so those inputs are still read, just slower.
 */
#ifndef LT_LLM_JSON_H
#define LT_LLM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_JSCAN_DEPTH 48

enum lt_jtok { LT_J_STR, LT_J_INT, LT_J_REAL, LT_J_BOOL, LT_J_NULL, LT_J_OBJ, LT_J_ARR, LT_J_END };

struct lt_jcomp {
	const char *key; /* the member's key (raw text), or NULL in an array */
	size_t klen;
	size_t idx; /* the element's index in an array */
	bool esc; /* the key has escapes: its raw text is not its value */
};

struct lt_jscan {
	unsigned depth; /* components in path */
	struct lt_jcomp path[LT_JSCAN_DEPTH];
	/* the current value */
	const char *v; /* LT_J_STR: the raw text between the quotes */
	size_t vlen;
	size_t dlen; /* LT_J_STR: its length decoded (UTF-8 bytes) */
	int64_t ival; /* LT_J_INT */
	bool bval; /* LT_J_BOOL */
	size_t count; /* LT_J_END: members or elements of the container that ended */
	bool end_obj; /* LT_J_END: it was an object */
};

typedef void (*lt_jscan_cb)(void *ctx, const struct lt_jscan *j, enum lt_jtok t);

/* 0 if s[0, n) is one JSON object or array (the callbacks have run), else -EINVAL. */
int lt_jscan(const char *s, size_t n, lt_jscan_cb cb, void *ctx);

/* Component i of the path is the key k. */
static inline bool lt_jkey(const struct lt_jscan *j, unsigned i, const char *k, size_t klen)
{
	return i < j->depth && j->path[i].key && j->path[i].klen == klen &&
	       !__builtin_memcmp(j->path[i].key, k, klen);
}

#define LT_JKEY(j, i, lit) lt_jkey((j), (i), lit, sizeof(lit) - 1)

#endif /* LT_LLM_JSON_H */
