// SPDX-License-Identifier: MIT
/*
 * test_jwt.c - JWT verification with real OpenSSL keys made here: HS256,
 * RS256 and ES256 from PEM and from a JWKS (kid selection); and the attacks:
 * alg none, algorithm confusion, tampering, bad base64url, oversize, time.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <openssl/hmac.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "lt_test.h"
#include "jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define NOW 1800000000LL

static char err[256], tok[16384];
static struct lt_jwt_claims c;

/* header.payload signed by pkey (RS256/ES256), ES256 as R||S. */
static void sign_pkey(EVP_PKEY *pkey, const char *hdr, const char *payload, char *out,
		      size_t outlen)
{
	unsigned char sig[512], rs[64];
	size_t slen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	long n;

	n = lt_b64url_encode((const unsigned char *)hdr, strlen(hdr), out, outlen);
	out[n++] = '.';
	n += lt_b64url_encode((const unsigned char *)payload, strlen(payload), out + n,
			      outlen - (size_t)n);
	EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey);
	EVP_DigestSign(md, sig, &slen, (unsigned char *)out, (size_t)n);
	EVP_MD_CTX_free(md);
	out[n++] = '.';
	if (EVP_PKEY_is_a(pkey, "EC")) {
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
		const BIGNUM *r, *s;

		ECDSA_SIG_get0(es, &r, &s);
		BN_bn2binpad(r, rs, 32);
		BN_bn2binpad(s, rs + 32, 32);
		ECDSA_SIG_free(es);
		lt_b64url_encode(rs, 64, out + n, outlen - (size_t)n);
	} else {
		lt_b64url_encode(sig, slen, out + n, outlen - (size_t)n);
	}
}

static int verify(struct lt_jwt_verifier *v, const char *t)
{
	return lt_jwt_verify(v, t, strlen(t), NOW, &c, err, sizeof(err));
}

static void hs256_round_trip(void)
{
	struct lt_jwt_verifier v;

	lt_jwt_init(&v);
	CHECK_EQ(lt_jwt_set_secret(&v, SECRET, err, sizeof(err)), 0);
	CHECK_EQ(
		lt_jwt_sign_hs256(SECRET,
				  "{\"sub\":\"u1\",\"roles\":[\"USER\",\"BETA\"],\"orgs\":[\"o1\"],"
				  "\"exp\":1800000600,\"iat\":1800000000}",
				  tok, sizeof(tok)),
		0);
	CHECK_EQ(verify(&v, tok), 0);
	CHECK(!strcmp(c.sub, "u1"));
	CHECK_EQ(c.nroles, 2);
	CHECK(!strcmp(c.roles[1], "BETA"));
	CHECK_EQ(c.norgs, 1);
	CHECK(!strcmp(c.orgs[0], "o1"));
	/* configurable claim names */
	strcpy(v.roles_claim, "groups");
	CHECK_EQ(lt_jwt_sign_hs256(SECRET,
				   "{\"sub\":\"u1\",\"groups\":\"ADMIN ops\",\"exp\":1800000600}",
				   tok, sizeof(tok)),
		 0);
	CHECK_EQ(verify(&v, tok), 0);
	CHECK_EQ(c.nroles, 2);
	CHECK(!strcmp(c.roles[0], "ADMIN"));
	CHECK_EQ(lt_jwt_set_secret(&v, "short", err, sizeof(err)), -EINVAL);
	lt_jwt_free(&v);
}

static void times_with_leeway(void)
{
	struct lt_jwt_verifier v;
	char p[256];

	lt_jwt_init(&v);
	lt_jwt_set_secret(&v, SECRET, err, sizeof(err));
	v.leeway_s = 30;
	snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld}", NOW - 30);
	lt_jwt_sign_hs256(SECRET, p, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), 0); /* within leeway */
	snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld}", NOW - 31);
	lt_jwt_sign_hs256(SECRET, p, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	CHECK(strstr(err, "expired") != NULL);
	snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 31);
	lt_jwt_sign_hs256(SECRET, p, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	CHECK(strstr(err, "nbf") != NULL);
	snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW + 3600);
	lt_jwt_sign_hs256(SECRET, p, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	lt_jwt_sign_hs256(SECRET, "{\"sub\":\"u\"}", tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES); /* no exp */
	lt_jwt_sign_hs256(SECRET, "{\"sub\":\"u\",\"exp\":\"tomorrow\"}", tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EINVAL);
	lt_jwt_sign_hs256(SECRET, "{\"exp\":1800000600}", tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES); /* no sub */
	lt_jwt_free(&v);
}

static void issuer_and_audience(void)
{
	struct lt_jwt_verifier v;

	lt_jwt_init(&v);
	lt_jwt_set_secret(&v, SECRET, err, sizeof(err));
	strcpy(v.issuer, "https://idp.example");
	strcpy(v.audience, "leaky");
	lt_jwt_sign_hs256(SECRET,
			  "{\"sub\":\"u\",\"exp\":1800000600,\"iss\":\"https://idp.example\","
			  "\"aud\":[\"x\",\"leaky\"]}",
			  tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), 0);
	lt_jwt_sign_hs256(SECRET,
			  "{\"sub\":\"u\",\"exp\":1800000600,\"iss\":\"evil\",\"aud\":\"leaky\"}",
			  tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	lt_jwt_sign_hs256(SECRET,
			  "{\"sub\":\"u\",\"exp\":1800000600,\"iss\":\"https://idp.example\","
			  "\"aud\":\"other\"}",
			  tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	lt_jwt_free(&v);
}

static void attacks_are_rejected(void)
{
	struct lt_jwt_verifier v;
	char t2[16384], big[LT_JWT_MAX_LEN + 100];
	size_t n;

	lt_jwt_init(&v);
	lt_jwt_set_secret(&v, SECRET, err, sizeof(err));
	lt_jwt_sign_hs256(SECRET, "{\"sub\":\"u\",\"exp\":1800000600}", tok, sizeof(tok));
	/* alg none: header {"alg":"none"}, empty signature */
	CHECK_EQ(verify(&v, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxODAwMDAwNjAwfQ."),
		 -EACCES);
	CHECK_EQ(verify(&v, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxODAwMDAwNjAwfQ.AAAA"),
		 -EACCES);
	CHECK(strstr(err, "none") != NULL);
	CHECK(strstr(err, "eyJ") == NULL); /* never echoes the token */
	/* "None" spelled otherwise */
	CHECK_EQ(verify(&v, "eyJhbGciOiJOb05lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxODAwMDAwNjAwfQ.AAAA"),
		 -EACCES);
	/* tampered payload: signature no longer matches */
	strcpy(t2, tok);
	t2[strchr(t2, '.') - t2 + 3] ^= 1;
	CHECK(verify(&v, t2) < 0);
	/* tampered signature */
	strcpy(t2, tok);
	n = strlen(t2);
	t2[n - 2] = t2[n - 2] == 'A' ? 'B' : 'A';
	CHECK_EQ(verify(&v, t2), -EACCES);
	/* wrong secret */
	lt_jwt_sign_hs256("a-completely-different-secret-of-32+",
			  "{\"sub\":\"u\",\"exp\":1800000600}", t2, sizeof(t2));
	CHECK_EQ(verify(&v, t2), -EACCES);
	/* bad base64url: padding, '+', two parts, four parts, empty */
	CHECK_EQ(verify(&v, "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA"), -EINVAL);
	CHECK_EQ(verify(&v, "eyJhbGciOiJIUzI1NiJ9.e30+.AAAA"), -EACCES);
	CHECK_EQ(verify(&v, "eyJhbGciOiJIUzI1NiJ9.e30"), -EINVAL);
	CHECK_EQ(verify(&v, "a.b.c.d"), -EINVAL);
	CHECK_EQ(verify(&v, ""), -EINVAL);
	CHECK_EQ(verify(&v, "..."), -EINVAL);
	/* oversized */
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ(verify(&v, big), -EINVAL);
	CHECK(strstr(err, "larger") != NULL);
	/* unsupported alg */
	CHECK_EQ(verify(&v, "eyJhbGciOiJIUzUxMiJ9.e30.AAAA"), -EACCES);
	lt_jwt_free(&v);
}

static EVP_PKEY *keygen(const char *type)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *k = NULL;

	EVP_PKEY_keygen_init(ctx);
	if (!strcmp(type, "RSA"))
		EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048);
	else
		EVP_PKEY_CTX_set_group_name(ctx, "prime256v1");
	EVP_PKEY_generate(ctx, &k);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static void write_pem(EVP_PKEY *k, const char *path)
{
	FILE *f = fopen(path, "w");

	PEM_write_PUBKEY(f, k);
	fclose(f);
}

static void b64_bn(EVP_PKEY *k, const char *name, char *out, size_t len, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char buf[512];
	int n;

	EVP_PKEY_get_bn_param(k, name, &bn);
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	lt_b64url_encode(buf, (size_t)n, out, len);
	BN_free(bn);
}

static void rs256_es256_pem_and_jwks(void)
{
	EVP_PKEY *rsa = keygen("RSA"), *ec = keygen("EC"), *other = keygen("EC");
	char dir[] = "/tmp/lt-jwt-XXXXXX", rpem[64], epem[64], jwks[64], n[400], e[16], x[64],
	     y[64], pem_bytes[4096];
	const char *pl = "{\"sub\":\"u2\",\"roles\":[\"ADMIN\"],\"exp\":1800000600}";
	struct lt_jwt_verifier v;
	size_t pn;
	FILE *f;

	CHECK(rsa && ec && other && mkdtemp(dir));
	snprintf(rpem, sizeof(rpem), "%s/rsa.pem", dir);
	snprintf(epem, sizeof(epem), "%s/ec.pem", dir);
	snprintf(jwks, sizeof(jwks), "%s/jwks.json", dir);
	write_pem(rsa, rpem);
	write_pem(ec, epem);

	lt_jwt_init(&v);
	CHECK_EQ(lt_jwt_add_pem(&v, rpem, err, sizeof(err)), 0);
	CHECK_EQ(lt_jwt_add_pem(&v, epem, err, sizeof(err)), 0);
	sign_pkey(rsa, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), 0);
	CHECK(!strcmp(c.sub, "u2"));
	sign_pkey(ec, "{\"alg\":\"ES256\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), 0);
	/* a key that is not configured */
	sign_pkey(other, "{\"alg\":\"ES256\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	/* an RS256 signature presented as ES256 */
	sign_pkey(rsa, "{\"alg\":\"ES256\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	/* algorithm confusion: HS256 keyed with the public RSA PEM as secret */
	f = fopen(rpem, "r");
	pn = fread(pem_bytes, 1, sizeof(pem_bytes) - 1, f);
	fclose(f);
	pem_bytes[pn] = '\0';
	CHECK_EQ(lt_jwt_sign_hs256(pem_bytes, pl, tok, sizeof(tok)), 0);
	CHECK_EQ(verify(&v, tok), -EACCES);
	CHECK(strstr(err, "HS256 tokens are not accepted") != NULL);
	lt_jwt_free(&v);

	/* JWKS with kids */
	b64_bn(rsa, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n), 0);
	b64_bn(rsa, OSSL_PKEY_PARAM_RSA_E, e, sizeof(e), 0);
	b64_bn(ec, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof(x), 32);
	b64_bn(ec, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof(y), 32);
	f = fopen(jwks, "w");
	fprintf(f,
		"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"%s\",\"e\":\"%s\"},"
		"{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
		n, e, x, y);
	fclose(f);
	lt_jwt_init(&v);
	CHECK_EQ(lt_jwt_add_jwks(&v, jwks, err, sizeof(err)), 0);
	CHECK_EQ(v.nkeys, 2);
	sign_pkey(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), 0);
	sign_pkey(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), 0);
	sign_pkey(ec, "{\"alg\":\"ES256\",\"kid\":\"nope\"}", pl, tok, sizeof(tok));
	CHECK_EQ(verify(&v, tok), -EACCES);
	CHECK(strstr(err, "kid") != NULL);
	lt_jwt_free(&v);
	/* a JWKS key without kid is refused at load */
	f = fopen(jwks, "w");
	fprintf(f, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}]}", n, e);
	fclose(f);
	lt_jwt_init(&v);
	CHECK_EQ(lt_jwt_add_jwks(&v, jwks, err, sizeof(err)), -EINVAL);
	lt_jwt_free(&v);

	unlink(rpem);
	unlink(epem);
	unlink(jwks);
	rmdir(dir);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(other);
}

/* tok's signature is HMAC-SHA256(key, header.payload), by OpenSSL's one-shot (a reference). */
static int sig_is_hmac_of(const char *t, const char *key)
{
	const char *dot = strrchr(t, '.');
	unsigned char mac[32];
	unsigned int ml = 0;
	char want[64];

	if (!dot ||
	    !HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)t, (size_t)(dot - t),
		  mac, &ml) ||
	    lt_b64url_encode(mac, ml, want, sizeof(want)) < 0)
		return 0;
	return !strcmp(dot + 1, want);
}

/*
 * The per-thread keyed HMAC context (lib/jwt.c) follows the key: keys that
 * alternate, differ only in their last byte, or run past what it keeps, each
 * give exactly OpenSSL's HMAC, in several threads at once.
 */
static void *hmac_keys_thread(void *arg)
{
	static const char *const keys[] = {
		SECRET,
		SECRET "x",
		SECRET "y",
		"k-0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789-a",
		"k-0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789-b",
	};
	char t[1024];
	long bad = 0;
	int i;

	for (i = 0; i < 2000; i++) {
		const char *k = keys[(i * 7 + (int)(long)arg) % 5];

		if (lt_jwt_sign_hs256(k, "{\"sub\":\"u\",\"exp\":1800000600}", t, sizeof(t)) ||
		    !sig_is_hmac_of(t, k))
			bad++;
	}
	return (void *)bad;
}

static void hmac_context_follows_the_key(void)
{
	struct lt_jwt_verifier a, b;
	pthread_t th[4];
	void *r;
	int i;

	lt_jwt_init(&a);
	lt_jwt_init(&b);
	/* two keys of one length, one byte apart */
	CHECK_EQ(lt_jwt_set_secret(&a, SECRET "y", err, sizeof(err)), 0);
	CHECK_EQ(lt_jwt_set_secret(&b, SECRET "x", err, sizeof(err)), 0);
	for (i = 0; i < 50; i++) {
		CHECK_EQ(lt_jwt_sign_hs256(i & 1 ? SECRET "x" : SECRET "y",
					   "{\"sub\":\"u\",\"exp\":1800000600}", tok, sizeof(tok)),
			 0);
		CHECK_EQ(verify(i & 1 ? &b : &a, tok), 0);
		CHECK(verify(i & 1 ? &a : &b, tok) != 0);
	}
	CHECK(hmac_keys_thread((void *)0) == NULL);
	for (i = 0; i < 4; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, hmac_keys_thread, (void *)(long)i), 0);
	for (i = 0; i < 4; i++) {
		CHECK_EQ(pthread_join(th[i], &r), 0);
		CHECK(r == NULL);
	}
	lt_jwt_free(&a);
	lt_jwt_free(&b);
}

static void base64url_strict(void)
{
	unsigned char out[16];
	char enc[32];

	CHECK_EQ(lt_b64url_encode((const unsigned char *)"hi?", 3, enc, sizeof(enc)), 4);
	CHECK(!strcmp(enc, "aGk_"));
	CHECK_EQ(lt_b64url_decode("aGk_", 4, out, sizeof(out)), 3);
	CHECK_EQ(lt_b64url_decode("aGk/", 4, out, sizeof(out)), -1);
	CHECK_EQ(lt_b64url_decode("aGk=", 4, out, sizeof(out)), -1);
	CHECK_EQ(lt_b64url_decode("a", 1, out, sizeof(out)), -1);
	CHECK_EQ(lt_b64url_decode("aGl", 3, out, sizeof(out)), -1); /* non-zero trailing bits */
}

int main(void)
{
	RUN(base64url_strict);
	RUN(hmac_context_follows_the_key);
	RUN(hs256_round_trip);
	RUN(times_with_leeway);
	RUN(issuer_and_audience);
	RUN(attacks_are_rejected);
	RUN(rs256_es256_pem_and_jwks);
	return lt_t_done();
}
