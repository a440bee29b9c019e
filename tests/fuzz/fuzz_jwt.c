// SPDX-License-Identifier: MIT
/*
 * fuzz_jwt.c - libFuzzer: JWT verification. The first byte picks the mode:
 * even, the input is a raw token (header.payload.signature); odd, the input
 * is a claims payload that we sign with the verifier's HS256 secret, so the
 * claim checks (exp, nbf, roles, orgs, crit...) see well-signed garbage.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "jwt.h"

#define SECRET "fuzz-secret-that-is-32-bytes-long!!"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lt_jwt_verifier v;
	static int ready;
	struct lt_jwt_claims c;
	char err[256], *buf, *tok;
	size_t toklen = 16384;

	if (!ready) {
		lt_jwt_init(&v);
		if (lt_jwt_set_secret(&v, SECRET, err, sizeof(err)))
			abort();
		ready = 1;
	}
	if (!size || size > 12000)
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	if (!(data[0] & 1)) {
		lt_jwt_verify(&v, buf, size - 1, 1800000000, &c, err, sizeof(err));
	} else {
		tok = malloc(toklen);
		if (tok && !memchr(buf, '\0', size - 1) &&
		    !lt_jwt_sign_hs256(SECRET, buf, tok, toklen))
			lt_jwt_verify(&v, tok, strlen(tok), 1800000000, &c, err, sizeof(err));
		free(tok);
	}
	free(buf);
	return 0;
}
