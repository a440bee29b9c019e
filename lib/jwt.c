// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "jwt.h"

static const char lt_b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

long lt_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (outlen < (len * 4 + 2) / 3 + 1)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = lt_b64url_alphabet[v >> 18];
		out[o++] = lt_b64url_alphabet[(v >> 12) & 63];
		out[o++] = lt_b64url_alphabet[(v >> 6) & 63];
		out[o++] = lt_b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)in[i] << 16;

		out[o++] = lt_b64url_alphabet[v >> 18];
		out[o++] = lt_b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;

		out[o++] = lt_b64url_alphabet[v >> 18];
		out[o++] = lt_b64url_alphabet[(v >> 12) & 63];
		out[o++] = lt_b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (long)o;
}

static int lt_b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict: the URL alphabet only, no padding, no non-zero trailing bits. */
long lt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	size_t i, o = 0;
	unsigned acc = 0;
	int bits = 0;

	if (len % 4 == 1 || outlen < len * 3 / 4)
		return -1;
	for (i = 0; i < len; i++) {
		int v = lt_b64url_val(in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	if (acc)
		return -1;
	return (long)o;
}

void lt_jwt_init(struct lt_jwt_verifier *v)
{
	memset(v, 0, sizeof(*v));
	v->leeway_s = 30;
	strcpy(v->roles_claim, "roles");
	strcpy(v->orgs_claim, "orgs");
}

void lt_jwt_free(struct lt_jwt_verifier *v)
{
	int i;

	if (v->secret)
		OPENSSL_cleanse(v->secret, v->secret_len);
	free(v->secret);
	for (i = 0; i < v->nkeys; i++)
		EVP_PKEY_free(v->keys[i].pkey);
	free(v->keys);
	v->secret = NULL;
	v->keys = NULL;
	v->nkeys = 0;
}

int lt_jwt_set_secret(struct lt_jwt_verifier *v, const char *secret, char *err, size_t errlen)
{
	size_t n = strlen(secret);

	/* RFC 7518 3.2: a key of at least the hash size */
	if (n < 32) {
		snprintf(err, errlen, "HS256 secret must be at least 32 bytes (got %zu)", n);
		return -EINVAL;
	}
	free(v->secret);
	v->secret = malloc(n);
	if (!v->secret)
		return -ENOMEM;
	memcpy(v->secret, secret, n);
	v->secret_len = n;
	return 0;
}

static int lt_jwt_push(struct lt_jwt_verifier *v, EVP_PKEY *pkey, const char *kid, char *err,
		       size_t errlen)
{
	struct lt_jwt_key *n;
	int alg;

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bits(pkey) < 2048) {
			snprintf(err, errlen, "RSA key shorter than 2048 bits");
			return -EINVAL;
		}
		alg = LT_JWT_RS256;
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[32] = "";
		size_t gl = 0;

		if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), &gl) ||
		    strcmp(group, "prime256v1")) {
			snprintf(err, errlen, "EC key is not P-256 (ES256 needs P-256)");
			return -EINVAL;
		}
		alg = LT_JWT_ES256;
	} else {
		snprintf(err, errlen, "public key is neither RSA nor EC P-256");
		return -EINVAL;
	}
	n = realloc(v->keys, (size_t)(v->nkeys + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	v->keys = n;
	memset(&v->keys[v->nkeys], 0, sizeof(*n));
	snprintf(v->keys[v->nkeys].kid, sizeof(v->keys[0].kid), "%s", kid ? kid : "");
	v->keys[v->nkeys].alg = alg;
	v->keys[v->nkeys].pkey = pkey;
	v->nkeys++;
	return 0;
}

int lt_jwt_add_pem(struct lt_jwt_verifier *v, const char *path, char *err, size_t errlen)
{
	EVP_PKEY *pkey;
	FILE *f = fopen(path, "r");
	int ret;

	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey) {
		snprintf(err, errlen, "%s: not a PEM public key", path);
		return -EINVAL;
	}
	ret = lt_jwt_push(v, pkey, NULL, err, errlen);
	if (ret)
		EVP_PKEY_free(pkey);
	return ret;
}

static BIGNUM *lt_bn_b64(const char *s)
{
	unsigned char buf[1024];
	long n;

	if (!s)
		return NULL;
	n = lt_b64url_decode(s, strlen(s), buf, sizeof(buf));
	return n > 0 ? BN_bin2bn(buf, (int)n, NULL) : NULL;
}

static EVP_PKEY *lt_jwk_rsa(json_t *k)
{
	BIGNUM *n = lt_bn_b64(json_string_value(json_object_get(k, "n")));
	BIGNUM *e = lt_bn_b64(json_string_value(json_object_get(k, "e")));
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		goto cleanup;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
cleanup:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

static EVP_PKEY *lt_jwk_ec(json_t *k)
{
	const char *x = json_string_value(json_object_get(k, "x"));
	const char *y = json_string_value(json_object_get(k, "y"));
	const char *crv = json_string_value(json_object_get(k, "crv"));
	unsigned char pub[65];
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pkey = NULL;

	if (!x || !y || !crv || strcmp(crv, "P-256") ||
	    lt_b64url_decode(x, strlen(x), pub + 1, 32) != 32 ||
	    lt_b64url_decode(y, strlen(y), pub + 33, 32) != 32)
		return NULL;
	pub[0] = 0x04; /* uncompressed point */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

int lt_jwt_add_jwks(struct lt_jwt_verifier *v, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *keys, *k;
	size_t i;
	int ret = 0, added = 0;

	root = json_load_file(path, 0, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	keys = json_object_get(root, "keys");
	if (!json_is_array(keys)) {
		snprintf(err, errlen, "%s: /keys: expected an array", path);
		ret = -EINVAL;
		goto out;
	}
	json_array_foreach(keys, i, k) {
		const char *kty = json_string_value(json_object_get(k, "kty"));
		const char *kid = json_string_value(json_object_get(k, "kid"));
		EVP_PKEY *pkey;

		if (!kid || !kty) {
			snprintf(err, errlen, "%s: /keys/%zu: kty and kid are required", path, i);
			ret = -EINVAL;
			goto out;
		}
		pkey = !strcmp(kty, "RSA") ? lt_jwk_rsa(k) :
		       !strcmp(kty, "EC")  ? lt_jwk_ec(k) :
					     NULL;
		if (!pkey) {
			snprintf(err, errlen, "%s: /keys/%zu: not a usable RSA or P-256 EC key",
				 path, i);
			ret = -EINVAL;
			goto out;
		}
		ret = lt_jwt_push(v, pkey, kid, err, errlen);
		if (ret) {
			EVP_PKEY_free(pkey);
			goto out;
		}
		added++;
	}
	if (!added) {
		snprintf(err, errlen, "%s: no keys", path);
		ret = -EINVAL;
	}
out:
	json_decref(root);
	return ret;
}

/*
 * HMAC-SHA256 fetched once, with a keyed context per thread: OpenSSL 3's
 * one-shot HMAC() looks the MAC and the digest up in its provider store,
 * under a lock, on every call (1.4-1.9 us here, and the agent's threads queue
 * on that lock); a context keyed once and re-initialised costs 0.3 us. The
 * key is kept with the context (a secret reloaded under it rekeys it); a key
 * longer than LT_HMAC_KEY_MAX is set on every call (0.7 us). Every token that
 * misses the per-thread memo (lib/auth.c) pays this: many tenants, many tokens.
 */
#define LT_HMAC_KEY_MAX 128

struct lt_hmac_tls {
	EVP_MAC_CTX *ctx;
	size_t klen; /* the key ctx holds; 0: none yet */
	unsigned char key[LT_HMAC_KEY_MAX];
};

static EVP_MAC *lt_hmac_mac;
static pthread_key_t lt_hmac_key;
static pthread_once_t lt_hmac_once = PTHREAD_ONCE_INIT;

static void lt_hmac_tls_free(void *p)
{
	struct lt_hmac_tls *t = p;

	EVP_MAC_CTX_free(t->ctx);
	OPENSSL_cleanse(t->key, sizeof(t->key));
	free(t);
}

static void lt_hmac_init(void)
{
	if (pthread_key_create(&lt_hmac_key, lt_hmac_tls_free))
		return;
	lt_hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int lt_hmac_sha256(const unsigned char *key, size_t klen, const char *msg, size_t mlen,
			  unsigned char out[32])
{
	OSSL_PARAM prm[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
			     OSSL_PARAM_construct_end() };
	unsigned int olen = 0;
	struct lt_hmac_tls *t;
	size_t ol = 0;
	int ok;

	pthread_once(&lt_hmac_once, lt_hmac_init);
	t = lt_hmac_mac ? pthread_getspecific(lt_hmac_key) : NULL;
	if (lt_hmac_mac && !t) {
		t = calloc(1, sizeof(*t));
		if (t && !(t->ctx = EVP_MAC_CTX_new(lt_hmac_mac))) {
			free(t);
			t = NULL;
		}
		if (t && pthread_setspecific(lt_hmac_key, t)) {
			lt_hmac_tls_free(t);
			t = NULL;
		}
	}
	if (!t) /* out of memory, or no provider: the one-shot */
		return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out,
			    &olen) && olen == 32 ?
			       0 :
			       -1;
	if (klen && t->klen == klen && !CRYPTO_memcmp(t->key, key, klen)) {
		ok = EVP_MAC_init(t->ctx, NULL, 0, NULL) == 1; /* the key it holds */
	} else {
		ok = EVP_MAC_init(t->ctx, key, klen, prm) == 1;
		t->klen = 0;
		if (ok && klen <= LT_HMAC_KEY_MAX) {
			memcpy(t->key, key, klen);
			t->klen = klen;
		}
	}
	if (!ok) {
		t->klen = 0;
		return -1;
	}
	ok = EVP_MAC_update(t->ctx, (const unsigned char *)msg, mlen) == 1 &&
	     EVP_MAC_final(t->ctx, out, &ol, 32) == 1 && ol == 32;
	return ok ? 0 : -1;
}

static int lt_verify_pkey(EVP_PKEY *pkey, int alg, const char *msg, size_t mlen,
			  const unsigned char *sig, size_t slen)
{
	unsigned char der[80];
	const unsigned char *s = sig;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = 0;

	if (!md)
		return 0;
	if (alg == LT_JWT_ES256) {
		/* JWS carries R || S (RFC 7518 3.4); OpenSSL wants DER */
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r, *sv;
		unsigned char *p = der;
		int dl;

		if (slen != 64 || !es) {
			ECDSA_SIG_free(es);
			goto out;
		}
		r = BN_bin2bn(sig, 32, NULL);
		sv = BN_bin2bn(sig + 32, 32, NULL);
		if (!r || !sv || !ECDSA_SIG_set0(es, r, sv)) {
			BN_free(r);
			BN_free(sv);
			ECDSA_SIG_free(es);
			goto out;
		}
		dl = i2d_ECDSA_SIG(es, NULL);
		if (dl <= 0 || dl > (int)sizeof(der)) {
			ECDSA_SIG_free(es);
			goto out;
		}
		i2d_ECDSA_SIG(es, &p);
		ECDSA_SIG_free(es);
		s = der;
		slen = (size_t)dl;
	}
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	     EVP_DigestVerify(md, s, slen, (const unsigned char *)msg, mlen) == 1;
out:
	EVP_MD_CTX_free(md);
	return ok;
}

/*
 * A roles or orgs claim, read whole or not at all: absent or null (none), a
 * string of space-separated values (OAuth "scope" style), or an array of
 * strings. Too many values, a value of LT_JWT_ID_LEN bytes or more, a
 * non-string element or any other type is refused (-1): cutting a claim to
 * fit would read "xxx...x ADMINISTRATOR" as ADMIN, or invent membership.
 */
static int lt_claim_strings(json_t *v, char (*out)[LT_JWT_ID_LEN], int max, int *n)
{
	const char *s, *end;
	size_t i, len;
	json_t *it;

	*n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		s = json_string_value(v);
		end = s + json_string_length(v);
		if (memchr(s, '\0', json_string_length(v)))
			return -1; /* "\u0000" would hide what follows */
		while (s < end) {
			while (s < end && *s == ' ')
				s++;
			if (s == end)
				break;
			len = strcspn(s, " ");
			if (*n >= max || len >= LT_JWT_ID_LEN)
				return -1;
			memcpy(out[*n], s, len);
			out[(*n)++][len] = '\0';
			s += len;
		}
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > (size_t)max)
		return -1;
	json_array_foreach(v, i, it) {
		if (!json_is_string(it) || json_string_length(it) >= LT_JWT_ID_LEN ||
		    strlen(json_string_value(it)) != json_string_length(it))
			return -1;
		memcpy(out[*n], json_string_value(it), json_string_length(it) + 1);
		(*n)++;
	}
	return 0;
}

/* now_s is past exp + leeway; saturating, so exp = INT64_MAX is "never". */
int lt_jwt_expired(const struct lt_jwt_verifier *v, int64_t exp, int64_t now_s)
{
	int64_t leeway = v->leeway_s > 0 ? v->leeway_s : 0;

	return exp <= INT64_MAX - leeway && now_s > exp + leeway;
}

/* now_s + leeway is before t (nbf, iat); saturating. */
static int lt_before(const struct lt_jwt_verifier *v, int64_t now_s, int64_t t)
{
	int64_t leeway = v->leeway_s > 0 ? v->leeway_s : 0;

	return now_s <= INT64_MAX - leeway && now_s + leeway < t;
}

/* A NumericDate claim: absent (0), or an integer; anything else is invalid. */
static int lt_claim_time(json_t *obj, const char *name, int64_t *out)
{
	json_t *v = json_object_get(obj, name);

	*out = 0;
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 9.2e18) {
		*out = (int64_t)json_real_value(v);
		return 0;
	}
	return -1;
}

static int lt_aud_ok(json_t *aud, const char *want)
{
	size_t i;
	json_t *it;

	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), want);
	json_array_foreach(aud, i, it) {
		if (json_is_string(it) && !strcmp(json_string_value(it), want))
			return 1;
	}
	return 0;
}

#define LT_JWT_FAIL(code, ...)                      \
	do {                                        \
		snprintf(err, errlen, __VA_ARGS__); \
		ret = (code);                       \
		goto out;                           \
	} while (0)

int lt_jwt_verify(const struct lt_jwt_verifier *v, const char *token, size_t len, int64_t now_s,
		  struct lt_jwt_claims *c, char *err, size_t errlen)
{
	const char *d1, *d2, *alg_s, *kid;
	unsigned char *buf = NULL, sig[512], mac[32];
	json_t *hdr = NULL, *pl = NULL, *typ, *sub;
	json_error_t jerr;
	long hl, pl_len, sl;
	int alg, i, ret = -EACCES, matched = 0;

	memset(c, 0, sizeof(*c));
	if (len > LT_JWT_MAX_LEN)
		LT_JWT_FAIL(-EINVAL, "token larger than %d bytes", LT_JWT_MAX_LEN);
	d1 = memchr(token, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
		LT_JWT_FAIL(-EINVAL, "token is not three base64url parts");
	buf = malloc(len + 1);
	if (!buf)
		LT_JWT_FAIL(-ENOMEM, "out of memory");
	hl = lt_b64url_decode(token, (size_t)(d1 - token), buf, len);
	if (hl <= 0)
		LT_JWT_FAIL(-EINVAL, "header is not base64url");
	hdr = json_loadb((const char *)buf, (size_t)hl, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(hdr))
		LT_JWT_FAIL(-EINVAL, "header is not a JSON object");
	alg_s = json_string_value(json_object_get(hdr, "alg"));
	typ = json_object_get(hdr, "typ");
	if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT")))
		LT_JWT_FAIL(-EINVAL, "typ is not JWT");
	if (!alg_s)
		LT_JWT_FAIL(-EINVAL, "header has no alg");
	/*
	 * RFC 7515 4.1.11: a recipient that does not understand an extension
	 * listed in "crit" must reject the token. This verifier understands
	 * none, so any "crit" (and, as the RFC forbids them, an empty or
	 * malformed one) is refused.
	 */
	if (json_object_get(hdr, "crit"))
		LT_JWT_FAIL(-EACCES, "crit header: extensions are not understood here");
	if (!strcasecmp(alg_s, "none"))
		LT_JWT_FAIL(-EACCES, "alg none is not accepted");
	alg = !strcmp(alg_s, "HS256") ? LT_JWT_HS256 :
	      !strcmp(alg_s, "RS256") ? LT_JWT_RS256 :
	      !strcmp(alg_s, "ES256") ? LT_JWT_ES256 :
					0;
	if (!alg)
		LT_JWT_FAIL(-EACCES, "alg %.16s is not accepted (HS256, RS256, ES256)", alg_s);
	kid = json_string_value(json_object_get(hdr, "kid"));

	sl = lt_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof(sig));
	if (sl <= 0)
		LT_JWT_FAIL(-EINVAL, "signature is not base64url");
	if (alg == LT_JWT_HS256) {
		/* Only ever the configured secret: never a public key as an HMAC key. */
		if (!v->secret)
			LT_JWT_FAIL(-EACCES, "HS256 tokens are not accepted here");
		if (lt_hmac_sha256(v->secret, v->secret_len, token, (size_t)(d2 - token), mac) ||
		    sl != 32 || CRYPTO_memcmp(mac, sig, 32))
			LT_JWT_FAIL(-EACCES, "bad signature");
		matched = 1;
	} else {
		for (i = 0; i < v->nkeys && !matched; i++) {
			if (v->keys[i].alg != alg)
				continue;
			if (kid && v->keys[i].kid[0] && strcmp(kid, v->keys[i].kid))
				continue;
			matched = 2;
			if (lt_verify_pkey(v->keys[i].pkey, alg, token, (size_t)(d2 - token), sig,
					   (size_t)sl))
				matched = 1;
		}
		if (!matched)
			LT_JWT_FAIL(-EACCES, "no %s key%s%.40s%s", alg_s, kid ? " with kid '" : "",
				    kid ? kid : "", kid ? "'" : " configured");
		if (matched != 1)
			LT_JWT_FAIL(-EACCES, "bad signature");
	}

	pl_len = lt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, len);
	if (pl_len <= 0)
		LT_JWT_FAIL(-EINVAL, "payload is not base64url");
	pl = json_loadb((const char *)buf, (size_t)pl_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(pl))
		LT_JWT_FAIL(-EINVAL, "payload is not a JSON object");
	if (lt_claim_time(pl, "exp", &c->exp) || lt_claim_time(pl, "nbf", &c->nbf) ||
	    lt_claim_time(pl, "iat", &c->iat))
		LT_JWT_FAIL(-EINVAL, "exp, nbf and iat must be NumericDates");
	if (!c->exp)
		LT_JWT_FAIL(-EACCES, "token has no exp");
	if (lt_jwt_expired(v, c->exp, now_s))
		LT_JWT_FAIL(-EACCES, "token expired");
	if (c->nbf && lt_before(v, now_s, c->nbf))
		LT_JWT_FAIL(-EACCES, "token not valid yet (nbf)");
	if (c->iat && lt_before(v, now_s, c->iat))
		LT_JWT_FAIL(-EACCES, "token issued in the future (iat)");
	if (v->issuer[0]) {
		const char *iss = json_string_value(json_object_get(pl, "iss"));

		if (!iss || strcmp(iss, v->issuer))
			LT_JWT_FAIL(-EACCES, "issuer is not accepted");
	}
	if (v->audience[0] && !lt_aud_ok(json_object_get(pl, "aud"), v->audience))
		LT_JWT_FAIL(-EACCES, "audience is not accepted");
	sub = json_object_get(pl, "sub");
	if (!json_is_string(sub) || !json_string_length(sub) ||
	    json_string_length(sub) >= sizeof(c->sub) ||
	    strlen(json_string_value(sub)) != json_string_length(sub))
		LT_JWT_FAIL(-EACCES, "token has no usable sub (1 to %zu bytes, no NUL)",
			    sizeof(c->sub) - 1);
	snprintf(c->sub, sizeof(c->sub), "%s", json_string_value(json_object_get(pl, "sub")));
	if (lt_claim_strings(json_object_get(pl, v->roles_claim), c->roles, LT_JWT_MAX_ROLES,
			     &c->nroles))
		LT_JWT_FAIL(-EACCES,
			    "claim '%.64s' is not read whole: up to %d strings of under %d bytes",
			    v->roles_claim, LT_JWT_MAX_ROLES, LT_JWT_ID_LEN);
	if (lt_claim_strings(json_object_get(pl, v->orgs_claim), c->orgs, LT_JWT_MAX_ORGS,
			     &c->norgs))
		LT_JWT_FAIL(-EACCES,
			    "claim '%.64s' is not read whole: up to %d strings of under %d bytes",
			    v->orgs_claim, LT_JWT_MAX_ORGS, LT_JWT_ID_LEN);
	sub = json_object_get(pl, LT_JWT_KEY_CLAIM);
	if (sub && (!json_is_string(sub) || !json_string_length(sub) ||
		    json_string_length(sub) >= sizeof(c->key_id) ||
		    strlen(json_string_value(sub)) != json_string_length(sub)))
		LT_JWT_FAIL(-EACCES, "claim '%s' is not an API key id", LT_JWT_KEY_CLAIM);
	if (sub)
		snprintf(c->key_id, sizeof(c->key_id), "%s", json_string_value(sub));
	ret = 0;
out:
	if (ret)
		memset(c, 0, sizeof(*c)); /* a refused token leaves no claims behind */
	json_decref(hdr);
	json_decref(pl);
	free(buf);
	return ret;
}

int lt_jwt_sign_hs256(const char *secret, const char *claims_json, char *out, size_t outlen)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	unsigned char mac[32];
	long n, m, k;

	n = lt_b64url_encode((const unsigned char *)hdr, strlen(hdr), out, outlen);
	if (n < 0 || (size_t)n + 1 >= outlen)
		return -ENOSPC;
	out[n] = '.';
	m = lt_b64url_encode((const unsigned char *)claims_json, strlen(claims_json), out + n + 1,
			     outlen - (size_t)n - 1);
	if (m < 0 || (size_t)(n + 1 + m + 1) >= outlen)
		return -ENOSPC;
	if (lt_hmac_sha256((const unsigned char *)secret, strlen(secret), out, (size_t)(n + 1 + m),
			   mac))
		return -EIO;
	out[n + 1 + m] = '.';
	k = lt_b64url_encode(mac, sizeof(mac), out + n + 1 + m + 1,
			     outlen - (size_t)(n + 1 + m + 1));
	return k < 0 ? -ENOSPC : 0;
}
