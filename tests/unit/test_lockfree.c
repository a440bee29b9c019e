// SPDX-License-Identifier: MIT
/*
 * test_lockfree.c - the request-path structures of liblt that take no lock:
 * decision metrics by (tier, provider) and API-key records by id. Each is
 * driven by several threads at once and must stay exact; a full metrics
 * table counts what it could not place; the exposition writer never cuts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include "lt_test.h"
#include "apikeys.h"
#include "metrics.h"

#define SERIES 600 /* more than the 512 the old fixed table held */
#define ROUNDS 50
#define THREADS 4

static struct lt_met_table met;

static void *met_thread(void *arg)
{
	char tier[16], prov[16];
	int r, i;

	(void)arg;
	for (r = 0; r < ROUNDS; r++)
		for (i = 0; i < SERIES; i++) {
			snprintf(tier, sizeof(tier), "T%d", i / 60);
			snprintf(prov, sizeof(prov), "p%d", i % 60);
			lt_met_count(&met, tier, prov, LT_MET_ADMITTED, 3);
			lt_met_count(&met, tier, prov, LT_MET_DENIED, 0);
		}
	return NULL;
}

static void metrics_600_series_from_4_threads_are_exact(void)
{
	const struct lt_met_series *s;
	pthread_t th[THREADS];
	unsigned i = 0, n = 0;
	int t;

	CHECK_EQ(lt_met_init(&met, 1024), 0);
	for (t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, met_thread, NULL);
	for (t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	while ((s = lt_met_next(&met, &i))) {
		n++;
		CHECK_EQ(s->admitted, THREADS * ROUNDS);
		CHECK_EQ(s->denied, THREADS * ROUNDS);
		CHECK_EQ(s->tokens, 3 * THREADS * ROUNDS);
	}
	CHECK_EQ(n, SERIES); /* each claimed once: no duplicate, none lost */
	CHECK_EQ(met.dropped, 0);
	lt_met_free(&met);
}

static void metrics_full_table_counts_what_it_drops(void)
{
	char prov[16];
	int i;

	CHECK_EQ(lt_met_init(&met, 16), 0);
	for (i = 0; i < 20; i++) {
		snprintf(prov, sizeof(prov), "p%d", i);
		lt_met_count(&met, "USER", prov, LT_MET_ADMITTED, 1);
		lt_met_count(&met, "USER", prov, LT_MET_TOO_BIG, 1);
	}
	CHECK_EQ(met.dropped, 8); /* 4 series without room, 2 decisions each */
	lt_met_free(&met);
	CHECK(lt_met_init(&met, 12) != 0); /* not a power of two */
}

static void exposition_is_never_truncated(void)
{
	struct lt_mbuf b = { 0 };
	char tier[16], prov[16], *last;
	int i, lines = 0;

	CHECK_EQ(lt_met_init(&met, 1024), 0);
	for (i = 0; i < SERIES; i++) {
		snprintf(tier, sizeof(tier), "T%d", i / 60);
		snprintf(prov, sizeof(prov), "p%d", i % 60);
		lt_met_count(&met, tier, prov, LT_MET_ADMITTED, 1);
	}
	lt_met_write(&met, &b);
	CHECK(!b.oom);
	CHECK(b.len > 65536); /* the old fixed buffer */
	CHECK_EQ(strlen(b.p), b.len);
	CHECK(b.len && b.p[b.len - 1] == '\n');
	for (i = 0; i < (int)b.len; i++)
		lines += b.p[i] == '\n';
	CHECK_EQ(lines, 2 + 3 * SERIES + 2 + SERIES + 3);
	last = strstr(b.p, "lt_metric_series_dropped_total 0\n");
	CHECK(last && last[strlen("lt_metric_series_dropped_total 0\n")] == '\0');
	free(b.p);
	lt_met_free(&met);
}

static struct lt_apikeys keys;
static volatile int stop;
static long torn, seen_a, seen_b, missing;

static void key_state(struct lt_key_rec *r, const char *id, int b)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	memset(r->name, b ? 'b' : 'a', sizeof(r->name) - 1);
	r->limit.capacity = b ? 2 : 1;
	r->expires_at = b ? 2 : 1;
	r->revoked = b;
}

static void *key_reader(void *arg)
{
	struct lt_key_rec r;
	char id[40];
	int i = 0;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		if (lt_apikeys_get(&keys, "lk_flip", &r)) {
			__atomic_fetch_add(&missing, 1, __ATOMIC_RELAXED);
			continue;
		}
		/* every field from the same write */
		if (r.name[0] != r.name[126] || (r.name[0] == 'b') != (r.limit.capacity == 2) ||
		    r.expires_at != (int64_t)r.limit.capacity || r.revoked != (r.name[0] == 'b'))
			__atomic_fetch_add(&torn, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(r.name[0] == 'b' ? &seen_b : &seen_a, 1, __ATOMIC_RELAXED);
		/* keys being inserted meanwhile: found whole, or not yet */
		snprintf(id, sizeof(id), "lk_%d", i++ % 3000);
		if (!lt_apikeys_get(&keys, id, &r) && strcmp(r.id, id))
			__atomic_fetch_add(&torn, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void apikeys_readers_never_see_a_torn_record(void)
{
	struct lt_key_rec r;
	pthread_t th[3];
	char id[40];
	int i, t;

	CHECK_EQ(lt_apikeys_init(&keys), 0);
	key_state(&r, "lk_flip", 0);
	CHECK_EQ(lt_apikeys_put(&keys, &r), 0);
	for (t = 0; t < 3; t++)
		pthread_create(&th[t], NULL, key_reader, NULL);
	for (i = 0; i < 3000; i++) { /* inserts (the index grows 64 -> 8192) and flips */
		snprintf(id, sizeof(id), "lk_%d", i);
		key_state(&r, id, 0);
		CHECK_EQ(lt_apikeys_put(&keys, &r), 0);
		key_state(&r, "lk_flip", i & 1);
		CHECK_EQ(lt_apikeys_put(&keys, &r), 0);
	}
	for (i = 0; i < 200000; i++) {
		key_state(&r, "lk_flip", i & 1);
		lt_apikeys_put(&keys, &r);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (t = 0; t < 3; t++)
		pthread_join(th[t], NULL);
	printf("# reads: %ld of state a, %ld of state b\n", seen_a, seen_b);
	CHECK_EQ(torn, 0);
	CHECK_EQ(missing, 0);
	CHECK(seen_a > 0);
	for (i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "lk_%d", i);
		CHECK_EQ(lt_apikeys_get(&keys, id, &r), 0);
	}
	CHECK_EQ(lt_apikeys_get(&keys, "lk_nope", &r), -ENOENT);
	CHECK_EQ(keys.n, 3001);
	lt_apikeys_free(&keys);
}

int main(void)
{
	RUN(metrics_600_series_from_4_threads_are_exact);
	RUN(metrics_full_table_counts_what_it_drops);
	RUN(exposition_is_never_truncated);
	RUN(apikeys_readers_never_see_a_torn_record);
	return lt_t_done();
}
