// SPDX-License-Identifier: MIT
/*
 * test_jwt_claims.c - JWT claims exactly as sent (issue 8 item 8), with real
 * HS256-signed tokens: exp + leeway saturates (exp = INT64_MAX is not a
 * signed overflow), any "crit" header is refused (RFC 7515 4.1.11), and a
 * roles/orgs claim that cannot be read whole is refused, never cut to fit.
 */
#include <errno.h>
#include <stdint.h>
#include <openssl/hmac.h>
#include "lt_test.h"
#include "jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define NOW 1800000000LL
#define U "abcdefab-cdef-4abc-8def-abcdefabcdef"

static char err[256], tok[65536];
static struct lt_jwt_claims c;
static struct lt_jwt_verifier v;

/* header.payload.HS256(header.payload), the header given as JSON. */
static void sign(const char *hdr, const char *payload)
{
	unsigned char mac[32];
	unsigned int mlen = 0;
	long n;

	n = lt_b64url_encode((const unsigned char *)hdr, strlen(hdr), tok, sizeof(tok));
	tok[n++] = '.';
	n += lt_b64url_encode((const unsigned char *)payload, strlen(payload), tok + n,
			      sizeof(tok) - (size_t)n);
	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)tok, (size_t)n, mac,
	     &mlen);
	tok[n++] = '.';
	lt_b64url_encode(mac, mlen, tok + n, sizeof(tok) - (size_t)n);
}

static int verify_claims(const char *payload)
{
	sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload);
	return lt_jwt_verify(&v, tok, strlen(tok), NOW, &c, err, sizeof(err));
}

static int has_role(const char *r)
{
	int i;

	for (i = 0; i < c.nroles; i++)
		if (!strcmp(c.roles[i], r))
			return 1;
	return 0;
}

static void exp_int64_max_is_not_an_overflow(void)
{
	char p[256];

	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld}", U, (long long)INT64_MAX);
	CHECK_EQ(verify_claims(p), 0); /* far future: valid, and no UBSan abort */
	CHECK_EQ(c.exp, INT64_MAX);
	CHECK(!lt_jwt_expired(&v, INT64_MAX, NOW));
	CHECK(!lt_jwt_expired(&v, INT64_MAX - 1, INT64_MAX));
	CHECK(lt_jwt_expired(&v, NOW - 31, NOW));
	CHECK(!lt_jwt_expired(&v, NOW - 30, NOW)); /* the 30 s leeway */
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld}", U,
		 (long long)INT64_MAX, (long long)INT64_MAX, (long long)INT64_MAX);
	CHECK_EQ(verify_claims(p), -EACCES); /* nbf in the far future */
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":9.1e18}", U);
	CHECK_EQ(verify_claims(p), 0);
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld}", U, (long long)NOW - 31);
	CHECK_EQ(verify_claims(p), -EACCES);
	CHECK(strstr(err, "expired") != NULL);
}

static void crit_is_refused(void)
{
	static const char *const hdrs[] = {
		"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"crit\":[\"exp\"],\"exp\":1}",
		"{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}",
		"{\"alg\":\"HS256\",\"crit\":[]}",
		"{\"alg\":\"HS256\",\"crit\":\"x\"}",
		"{\"alg\":\"HS256\",\"crit\":null}",
	};
	char p[128];
	unsigned i;

	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld}", U, (long long)NOW + 60);
	sign("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"x-unknown\":1}", p);
	CHECK_EQ(lt_jwt_verify(&v, tok, strlen(tok), NOW, &c, err, sizeof(err)), 0);
	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		sign(hdrs[i], p);
		if (lt_jwt_verify(&v, tok, strlen(tok), NOW, &c, err, sizeof(err)) != -EACCES)
			printf("#   accepted header %s\n", hdrs[i]), lt_t_cur_failed = 1;
		else
			CHECK(strstr(err, "crit") != NULL);
	}
}

static void long_claims_are_refused_not_cut(void)
{
	static char p[8192], x[4096];
	int n;

	/* cut at 1023 bytes this read "... ADMIN": 1017 x, a space, ADMINISTRATOR */
	memset(x, 'x', 1017);
	x[1017] = '\0';
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":\"%s ADMINISTRATOR\"}", U,
		 (long long)NOW + 60, x);
	CHECK_EQ(verify_claims(p), -EACCES);
	CHECK(!has_role("ADMIN"));
	CHECK(strstr(err, "roles") != NULL);
	/* a forged org after the cut point */
	memset(x, ' ', 1000);
	x[1000] = '\0';
	snprintf(
		p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"orgs\":\"%s%s%s\"}", U,
		(long long)NOW + 60, "10000000-0000-4000-8000-000000000001", x,
		"10000000-0000-4000-8000-000000000002aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK_EQ(verify_claims(p), -EACCES);
	CHECK_EQ(c.norgs, 0);
	/* too many values, as a string and as an array */
	n = snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":\"", U,
		     (long long)NOW + 60);
	for (int i = 0; i < LT_JWT_MAX_ROLES; i++)
		n += snprintf(p + n, sizeof(p) - (size_t)n, "R%d ", i);
	snprintf(p + n, sizeof(p) - (size_t)n, "ADMIN\"}");
	CHECK_EQ(verify_claims(p), -EACCES);
	CHECK(!has_role("ADMIN"));
	n = snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":[", U,
		     (long long)NOW + 60);
	for (int i = 0; i < LT_JWT_MAX_ROLES; i++)
		n += snprintf(p + n, sizeof(p) - (size_t)n, "\"R%d\",", i);
	snprintf(p + n, sizeof(p) - (size_t)n, "\"ADMIN\"]}");
	CHECK_EQ(verify_claims(p), -EACCES);
	CHECK(!has_role("ADMIN"));
	/* one value too long, in an array; a non-string element; a wrong type */
	memset(x, 'x', LT_JWT_ID_LEN);
	x[LT_JWT_ID_LEN] = '\0';
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":[\"USER\",\"%s\"]}", U,
		 (long long)NOW + 60, x);
	CHECK_EQ(verify_claims(p), -EACCES);
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":[\"USER\",7]}", U,
		 (long long)NOW + 60);
	CHECK_EQ(verify_claims(p), -EACCES);
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"orgs\":{\"a\":1}}", U,
		 (long long)NOW + 60);
	CHECK_EQ(verify_claims(p), -EACCES);
	/* a NUL inside a value would hide the rest of it */
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":[\"ADMIN\\u0000x\"]}", U,
		 (long long)NOW + 60);
	CHECK(verify_claims(p) < 0);
	CHECK(!has_role("ADMIN"));
	snprintf(p, sizeof(p), "{\"sub\":\"%s\\u0000x\",\"exp\":%lld}", U, (long long)NOW + 60);
	CHECK(verify_claims(p) < 0);
	CHECK_EQ(c.sub[0], 0);

	/* what fits is read exactly */
	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":\"  USER   ADMIN \"}", U,
		 (long long)NOW + 60);
	CHECK_EQ(verify_claims(p), 0);
	CHECK_EQ(c.nroles, 2);
	CHECK(has_role("USER") && has_role("ADMIN"));
	memset(x, 'r', LT_JWT_ID_LEN - 1);
	x[LT_JWT_ID_LEN - 1] = '\0';
	n = snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld,\"roles\":[", U,
		     (long long)NOW + 60);
	for (int i = 0; i < LT_JWT_MAX_ROLES - 1; i++)
		n += snprintf(p + n, sizeof(p) - (size_t)n, "\"%s\",", x);
	snprintf(p + n, sizeof(p) - (size_t)n, "\"ADMIN\"],\"orgs\":null}");
	CHECK_EQ(verify_claims(p), 0);
	CHECK_EQ(c.nroles, LT_JWT_MAX_ROLES);
	CHECK_EQ(strlen(c.roles[0]), LT_JWT_ID_LEN - 1);
	CHECK(has_role("ADMIN"));
	CHECK_EQ(c.norgs, 0);
}

int main(void)
{
	lt_jwt_init(&v);
	if (lt_jwt_set_secret(&v, SECRET, err, sizeof(err)))
		return 1;
	RUN(exp_int64_max_is_not_an_overflow);
	RUN(crit_is_refused);
	RUN(long_claims_are_refused_not_cut);
	lt_jwt_free(&v);
	return lt_t_done();
}
