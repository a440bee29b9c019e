// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <bpf/bpf.h>
#include "auth.h"
#include "jwt.h"
#include "keys.h"
#include "log.h"
#include "tenant.h"

/*
 * Authentication reads the records lock-free (lib/apikeys.c); the mutex
 * serialises the admin writes, which change the store and the records
 * together.
 */
struct lt_keys {
	pthread_mutex_t lock;
	struct lt_store *st;
	struct lt_quota *q;
	struct lt_apikeys tab;
	int map_fd; /* the pinned lt_apikey (lt_keys_publish), -1 = none */
	__u64 *gen; /* keys_gen in the mmapped lt_config, NULL = none */
};

/* After the map write: a reader that loads the new value looks the key up again. */
static void lt_keys_bump(struct lt_keys *k)
{
	if (k->gen)
		__atomic_fetch_add(k->gen, 1, __ATOMIC_RELEASE);
}

void lt_keys_set_gen(struct lt_keys *k, __u64 *keys_gen)
{
	pthread_mutex_lock(&k->lock);
	k->gen = keys_gen;
	pthread_mutex_unlock(&k->lock);
}

static int lt_keys_load(void *ctx, const struct lt_key_rec *r)
{
	struct lt_keys *k = ctx;

	return lt_apikeys_put(&k->tab, r);
}

int lt_keys_open(struct lt_keys **kp, struct lt_store *st, struct lt_quota *q, char *err,
		 size_t errlen)
{
	struct lt_keys *k = calloc(1, sizeof(*k));
	int ret, i;

	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->map_fd = -1;
	k->st = st;
	k->q = q;
	ret = lt_apikeys_init(&k->tab);
	if (!ret)
		ret = lt_store_key_each(st, lt_keys_load, k);
	if (ret) {
		snprintf(err, errlen, "loading API keys: %s", strerror(-ret));
		lt_keys_close(k);
		return ret;
	}
	/*
	 * Pinned lt_slots may be new (a fresh host, or after detach): put every
	 * key bucket back on its key's rate, or it would read as unlimited.
	 */
	for (i = 0; i < k->tab.n; i++) {
		char bucket[LT_BUCKET_KEY_LEN];

		if (!lt_bucket_key(bucket, sizeof(bucket), LT_BKEY_APIKEY, NULL, NULL,
				   k->tab.all[i]->rec.id))
			lt_quota_key_limit(q, bucket, &k->tab.all[i]->rec.limit);
	}
	*kp = k;
	return 0;
}

void lt_keys_close(struct lt_keys *k)
{
	if (!k)
		return;
	lt_apikeys_free(&k->tab);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

int lt_keys_create(struct lt_keys *k, struct lt_key_rec *rec, char *secret, size_t slen)
{
	unsigned char idb[8], rnd[32];
	char r64[48];
	int ret, i;

	if (RAND_bytes(idb, sizeof(idb)) != 1 || RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	snprintf(rec->id, sizeof(rec->id), "lk_");
	for (i = 0; i < 8; i++)
		snprintf(rec->id + 3 + 2 * i, 3, "%02x", idb[i]);
	lt_b64url_encode(rnd, sizeof(rnd), r64, sizeof(r64));
	snprintf(secret, slen, "%s.%s", rec->id, r64);
	SHA256((const unsigned char *)secret, strlen(secret), rec->hash);
	rec->created_at = (int64_t)time(NULL);
	rec->revoked = 0;
	pthread_mutex_lock(&k->lock);
	/*
	 * The map first: no one holds the secret until this returns, so a key
	 * the map has and the store then refuses is never usable; it is taken
	 * out again.
	 */
	ret = k->map_fd >= 0 ? lt_apikey_map_put(k->map_fd, rec) : 0;
	if (!ret) {
		ret = lt_store_key_put(k->st, rec);
		if (ret && k->map_fd >= 0)
			lt_apikey_map_del(k->map_fd, rec->id);
	}
	if (!ret)
		ret = lt_keys_load(k, rec);
	lt_keys_bump(k); /* a reader may hold "no such key" for this id */
	pthread_mutex_unlock(&k->lock);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return ret;
}

static int lt_keys_rec(void *ctx, const char *id, struct lt_key_rec *out)
{
	struct lt_keys *k = ctx;

	return lt_apikeys_get(&k->tab, id, out);
}

int lt_keys_auth(struct lt_keys *k, const char *secret, int64_t now_unix, struct lt_key_rec *out)
{
	return lt_apikey_check(lt_keys_rec, k, secret, now_unix, out);
}

int lt_keys_get(struct lt_keys *k, const char *id, struct lt_key_rec *out)
{
	return lt_apikeys_get(&k->tab, id, out);
}

int lt_keys_update(struct lt_keys *k, const struct lt_key_rec *rec)
{
	struct lt_key_rec saved;
	char bucket[LT_BUCKET_KEY_LEN];
	int ret;

	pthread_mutex_lock(&k->lock);
	if (lt_apikeys_get(&k->tab, rec->id, &saved)) {
		pthread_mutex_unlock(&k->lock);
		return -ENOENT;
	}
	ret = lt_store_key_put(k->st, rec);
	if (!ret)
		ret = lt_apikeys_put(&k->tab, rec); /* in place: cannot fail */
	if (!ret) {
		ret = lt_bucket_key(bucket, sizeof(bucket), LT_BKEY_APIKEY, NULL, NULL, rec->id);
		if (!ret)
			ret = lt_quota_key_limit(k->q, bucket, &rec->limit);
		if (!ret && k->map_fd >= 0)
			ret = lt_apikey_map_put(k->map_fd, rec);
		if (ret) { /* keep store, memory and map as they were */
			lt_apikeys_put(&k->tab, &saved);
			lt_store_key_put(k->st, &saved);
			if (k->map_fd >= 0)
				lt_apikey_map_put(k->map_fd, &saved);
		}
	}
	lt_keys_bump(k);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

int lt_keys_revoke(struct lt_keys *k, const char *id)
{
	struct lt_key_rec r;
	int ret = -ENOENT;

	pthread_mutex_lock(&k->lock);
	if (!lt_apikeys_get(&k->tab, id, &r)) {
		r.revoked = 1;
		ret = lt_store_key_put(k->st, &r);
		if (!ret) /* revoked the moment the store has it */
			ret = lt_apikeys_put(&k->tab, &r);
		/* and for every other reader (lt_apikey_map_put fails closed) */
		if (!ret && k->map_fd >= 0) {
			ret = lt_apikey_map_put(k->map_fd, &r);
			if (ret)
				log_error("keys: %s is revoked in the store but lt_apikey still "
					  "holds it: %s",
					  id, strerror(-ret));
		}
		lt_keys_bump(k);
	}
	pthread_mutex_unlock(&k->lock);
	return ret;
}

int lt_keys_put(struct lt_keys *k, const struct lt_key_rec *rec)
{
	char bucket[LT_BUCKET_KEY_LEN];
	int ret;

	pthread_mutex_lock(&k->lock);
	ret = lt_store_key_put(k->st, rec);
	if (!ret)
		ret = lt_keys_load(k, rec);
	if (!ret && !lt_bucket_key(bucket, sizeof(bucket), LT_BKEY_APIKEY, NULL, NULL, rec->id))
		lt_quota_key_limit(k->q, bucket, &rec->limit);
	if (!ret && k->map_fd >= 0)
		ret = lt_apikey_map_put(k->map_fd, rec);
	lt_keys_bump(k);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

int lt_keys_publish(struct lt_keys *k, int map_fd, char *err, size_t errlen)
{
	struct lt_apikey_key cur, next;
	struct lt_key_rec r;
	int ret = 0, i, more;

	pthread_mutex_lock(&k->lock);
	/* entries the store does not have (a detached and re-created db) go */
	more = !bpf_map_get_next_key(map_fd, NULL, &cur);
	while (more) {
		more = !bpf_map_get_next_key(map_fd, &cur, &next);
		cur.id[sizeof(cur.id) - 1] = '\0';
		if (lt_apikeys_get(&k->tab, cur.id, &r))
			bpf_map_delete_elem(map_fd, &cur);
		cur = next;
	}
	for (i = 0; i < k->tab.n && !ret; i++)
		ret = lt_apikey_map_put(map_fd, &k->tab.all[i]->rec);
	if (ret)
		snprintf(err, errlen, "writing API key %s to lt_apikey: %s",
			 k->tab.all[i - 1]->rec.id, strerror(-ret));
	else
		k->map_fd = map_fd;
	lt_keys_bump(k); /* entries may have gone or changed under readers' caches */
	pthread_mutex_unlock(&k->lock);
	return ret;
}

void lt_keys_each(struct lt_keys *k, void (*cb)(void *ctx, const struct lt_key_rec *r), void *ctx)
{
	int i;

	pthread_mutex_lock(&k->lock);
	for (i = 0; i < k->tab.n; i++)
		cb(ctx, &k->tab.all[i]->rec);
	pthread_mutex_unlock(&k->lock);
}
