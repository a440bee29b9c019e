// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "log.h"
#include "store.h"

static const char lt_schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"PRAGMA busy_timeout=5000;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS providers(name TEXT PRIMARY KEY);"
	"CREATE TABLE IF NOT EXISTS limits(kind TEXT NOT NULL, name TEXT NOT NULL,"
	"  provider TEXT NOT NULL, capacity INTEGER NOT NULL, tokens INTEGER NOT NULL,"
	"  period_ns INTEGER NOT NULL, PRIMARY KEY(kind, name, provider));"
	"CREATE TABLE IF NOT EXISTS buckets(key TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS api_keys(id TEXT PRIMARY KEY, name TEXT NOT NULL,"
	"  owner TEXT NOT NULL, tier TEXT NOT NULL, org TEXT NOT NULL, hash BLOB NOT NULL,"
	"  capacity INTEGER NOT NULL, tokens INTEGER NOT NULL, period_ns INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, revoked INTEGER NOT NULL,"
	"  admin INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS penalties(prefix TEXT PRIMARY KEY, until_unix INTEGER NOT NULL,"
	"  strikes INTEGER NOT NULL, reason INTEGER NOT NULL);";

/*
 * leaky.db and its -wal, -shm and -journal are private (0600), whatever the
 * caller's umask: files an older version made 0644 are tightened, and said
 * so. SQLite makes -wal and -shm with the database file's mode.
 */
static void lt_store_private(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char p[600];
	struct stat st;
	unsigned i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		if (lstat(p, &st) || !S_ISREG(st.st_mode) || !(st.st_mode & 077))
			continue;
		if (chmod(p, 0600))
			log_warn("store: %s is mode %04o and cannot be made 0600: %s", p,
				 (unsigned)(st.st_mode & 07777), strerror(errno));
		else
			log_warn("store: %s was mode %04o (readable by others); now 0600", p,
				 (unsigned)(st.st_mode & 07777));
	}
}

/*
 * Columns added after a table's first release: a database made by an older
 * version gets them with their default (an older key is not an admin key).
 * 0, or an SQLite error code.
 */
static int lt_store_migrate(sqlite3 *db)
{
	static const struct {
		const char *table, *column, *ddl;
	} add[] = {
		{ "api_keys", "admin",
		  "ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0" },
	};
	unsigned i;
	int rc = SQLITE_OK;

	for (i = 0; rc == SQLITE_OK && i < sizeof(add) / sizeof(add[0]); i++) {
		sqlite3_stmt *st = NULL;
		int have = 0;

		rc = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1,
					&st, NULL);
		if (rc != SQLITE_OK)
			break;
		sqlite3_bind_text(st, 1, add[i].table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, add[i].column, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		have = rc == SQLITE_ROW;
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_finalize(st);
		if (rc == SQLITE_OK && !have) {
			rc = sqlite3_exec(db, add[i].ddl, NULL, NULL, NULL);
			if (rc == SQLITE_OK)
				log_info("store: added column %s.%s", add[i].table, add[i].column);
		}
	}
	return rc;
}

int lt_store_open(struct lt_store *s, const char *path, char *err, size_t errlen)
{
	char *msg = NULL;
	mode_t um;
	int rc;

	lt_store_private(path);
	/* a new database (and its -wal, -shm, made by the schema) is born 0600 */
	um = umask(077);
	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			     NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, lt_schema, NULL, NULL, &msg) == SQLITE_OK ? SQLITE_OK : -1;
	if (rc == SQLITE_OK && lt_store_migrate(s->db) != SQLITE_OK) {
		msg = sqlite3_mprintf("%s", sqlite3_errmsg(s->db));
		rc = -1;
	}
	umask(um);
	if (rc > 0) {
		snprintf(err, errlen, "%s: %s", path,
			 s->db ? sqlite3_errmsg(s->db) : "cannot open");
		sqlite3_close(s->db);
		s->db = NULL;
		return -EIO;
	}
	if (rc) {
		snprintf(err, errlen, "%s: schema: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(s->db);
		s->db = NULL;
		return -EIO;
	}
	return 0;
}

void lt_store_close(struct lt_store *s)
{
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
}

/*
 * A failed statement is logged with SQLite's own words and the statement, and
 * its cause survives as an errno: a full disk is not an I/O error to the
 * caller deciding between 507 and 500, nor to the operator reading the log.
 */
static int lt_sqlite_errno(int rc)
{
	switch (rc & 0xff) { /* the primary code of an extended one */
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

static int lt_sqlite_fail(struct lt_store *s, int rc, const char *sql)
{
	log_error("store: %.*s: %s (sqlite %d)", (int)strcspn(sql, "("), sql, sqlite3_errmsg(s->db),
		  rc);
	return lt_sqlite_errno(rc);
}

static int lt_exec(struct lt_store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : lt_sqlite_fail(s, rc, sql);
}

int lt_store_begin(struct lt_store *s)
{
	return lt_exec(s, "BEGIN IMMEDIATE");
}

int lt_store_commit(struct lt_store *s)
{
	return lt_exec(s, "COMMIT");
}

void lt_store_rollback(struct lt_store *s)
{
	lt_exec(s, "ROLLBACK");
}

/* Prepares sql and binds args: 's' text, 'i' int64, 'b' 32-byte blob. */
static sqlite3_stmt *lt_prep(struct lt_store *s, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int i;

	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK) {
		lt_sqlite_fail(s, rc, sql);
		return NULL;
	}
	va_start(ap, types);
	for (i = 0; types[i]; i++) {
		if (types[i] == 's')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1,
					  SQLITE_TRANSIENT);
		else if (types[i] == 'i')
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		else
			sqlite3_bind_blob(st, i + 1, va_arg(ap, const void *), 32,
					  SQLITE_TRANSIENT);
	}
	va_end(ap);
	return st;
}

static int lt_run(struct lt_store *s, sqlite3_stmt *st)
{
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		lt_sqlite_fail(s, rc, sqlite3_sql(st));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : lt_sqlite_errno(rc);
}

int lt_store_limit_put(struct lt_store *s, const char *kind, const char *name, const char *provider,
		       const struct lt_limit *l)
{
	return lt_run(s, lt_prep(s, "INSERT OR REPLACE INTO limits VALUES(?,?,?,?,?,?)", "sssiii",
				 kind, name, provider, (int64_t)l->capacity, (int64_t)l->tokens,
				 (int64_t)l->period_ns));
}

int lt_store_limit_del(struct lt_store *s, const char *kind, const char *name, const char *provider)
{
	return lt_run(s, lt_prep(s, "DELETE FROM limits WHERE kind=? AND name=? AND provider=?",
				 "sss", kind, name, provider));
}

int lt_store_limit_each(struct lt_store *s, lt_limit_cb cb, void *ctx)
{
	sqlite3_stmt *st = lt_prep(s,
				   "SELECT kind,name,provider,capacity,tokens,period_ns FROM "
				   "limits ORDER BY kind,name,provider",
				   "");
	int ret = 0;

	if (!st)
		return -EIO;
	while (!ret && sqlite3_step(st) == SQLITE_ROW) {
		struct lt_limit l = { (__u64)sqlite3_column_int64(st, 3),
				      (__u64)sqlite3_column_int64(st, 4),
				      (__u64)sqlite3_column_int64(st, 5) };

		ret = cb(ctx, (const char *)sqlite3_column_text(st, 0),
			 (const char *)sqlite3_column_text(st, 1),
			 (const char *)sqlite3_column_text(st, 2), &l);
	}
	sqlite3_finalize(st);
	return ret;
}

int lt_store_provider_put(struct lt_store *s, const char *name)
{
	return lt_run(s, lt_prep(s, "INSERT OR IGNORE INTO providers VALUES(?)", "s", name));
}

int lt_store_provider_del(struct lt_store *s, const char *name)
{
	return lt_run(s, lt_prep(s, "DELETE FROM providers WHERE name=?", "s", name));
}

int lt_store_provider_each(struct lt_store *s, int (*cb)(void *ctx, const char *name), void *ctx)
{
	sqlite3_stmt *st = lt_prep(s, "SELECT name FROM providers ORDER BY name", "");
	int ret = 0;

	if (!st)
		return -EIO;
	while (!ret && sqlite3_step(st) == SQLITE_ROW)
		ret = cb(ctx, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return ret;
}

int lt_store_bucket_put(struct lt_store *s, const char *key, uint32_t slot)
{
	return lt_run(s, lt_prep(s, "INSERT INTO buckets VALUES(?,?)", "si", key, (int64_t)slot));
}

int lt_store_bucket_del(struct lt_store *s, const char *key)
{
	return lt_run(s, lt_prep(s, "DELETE FROM buckets WHERE key=?", "s", key));
}

int lt_store_bucket_each(struct lt_store *s, int (*cb)(void *ctx, const char *key, uint32_t slot),
			 void *ctx)
{
	sqlite3_stmt *st = lt_prep(s, "SELECT key, slot FROM buckets", "");
	int ret = 0;

	if (!st)
		return -EIO;
	while (!ret && sqlite3_step(st) == SQLITE_ROW)
		ret = cb(ctx, (const char *)sqlite3_column_text(st, 0),
			 (uint32_t)sqlite3_column_int64(st, 1));
	sqlite3_finalize(st);
	return ret;
}

int lt_store_key_put(struct lt_store *s, const struct lt_key_rec *k)
{
	return lt_run(
		s, lt_prep(s,
			   "INSERT OR REPLACE INTO api_keys(id, name, owner, tier, org, hash,"
			   " capacity, tokens, period_ns, expires_at, created_at, revoked, admin)"
			   " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
			   "sssssbiiiiiii", k->id, k->name, k->owner, k->tier, k->org, k->hash,
			   (int64_t)k->limit.capacity, (int64_t)k->limit.tokens,
			   (int64_t)k->limit.period_ns, k->expires_at, k->created_at,
			   (int64_t)k->revoked, (int64_t) !!k->admin));
}

int lt_store_key_each(struct lt_store *s, int (*cb)(void *ctx, const struct lt_key_rec *k),
		      void *ctx)
{
	sqlite3_stmt *st =
		lt_prep(s,
			"SELECT id, name, owner, tier, org, hash, capacity, tokens,"
			" period_ns, expires_at, created_at, revoked, admin FROM api_keys"
			" ORDER BY created_at, id",
			"");
	int ret = 0;

	if (!st)
		return -EIO;
	while (!ret && sqlite3_step(st) == SQLITE_ROW) {
		struct lt_key_rec k = { 0 };

		snprintf(k.id, sizeof(k.id), "%s", sqlite3_column_text(st, 0));
		snprintf(k.name, sizeof(k.name), "%s", sqlite3_column_text(st, 1));
		snprintf(k.owner, sizeof(k.owner), "%s", sqlite3_column_text(st, 2));
		snprintf(k.tier, sizeof(k.tier), "%s", sqlite3_column_text(st, 3));
		snprintf(k.org, sizeof(k.org), "%s", sqlite3_column_text(st, 4));
		if (sqlite3_column_bytes(st, 5) == 32)
			memcpy(k.hash, sqlite3_column_blob(st, 5), 32);
		k.limit.capacity = (__u64)sqlite3_column_int64(st, 6);
		k.limit.tokens = (__u64)sqlite3_column_int64(st, 7);
		k.limit.period_ns = (__u64)sqlite3_column_int64(st, 8);
		k.expires_at = sqlite3_column_int64(st, 9);
		k.created_at = sqlite3_column_int64(st, 10);
		k.revoked = (int)sqlite3_column_int64(st, 11);
		k.admin = sqlite3_column_int64(st, 12) != 0;
		ret = cb(ctx, &k);
	}
	sqlite3_finalize(st);
	return ret;
}

int lt_store_penalty_put(struct lt_store *s, const char *prefix, int64_t until_unix,
			 uint32_t strikes, uint32_t reason)
{
	return lt_run(s, lt_prep(s, "INSERT OR REPLACE INTO penalties VALUES(?,?,?,?)", "siii",
				 prefix, until_unix, (int64_t)strikes, (int64_t)reason));
}

int lt_store_penalty_del(struct lt_store *s, const char *prefix)
{
	return lt_run(s, lt_prep(s, "DELETE FROM penalties WHERE prefix=?", "s", prefix));
}

int lt_store_penalty_each(struct lt_store *s,
			  int (*cb)(void *ctx, const char *prefix, int64_t until_unix,
				    uint32_t strikes, uint32_t reason),
			  void *ctx)
{
	sqlite3_stmt *st =
		lt_prep(s, "SELECT prefix, until_unix, strikes, reason FROM penalties", "");
	int ret = 0;

	if (!st)
		return -EIO;
	while (!ret && sqlite3_step(st) == SQLITE_ROW)
		ret = cb(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
			 (uint32_t)sqlite3_column_int64(st, 2),
			 (uint32_t)sqlite3_column_int64(st, 3));
	sqlite3_finalize(st);
	return ret;
}

int lt_store_meta_get(struct lt_store *s, const char *k, char *v, size_t vlen)
{
	sqlite3_stmt *st = lt_prep(s, "SELECT v FROM meta WHERE k=?", "s", k);
	int ret = -ENOENT;

	if (!st)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(v, vlen, "%s", sqlite3_column_text(st, 0));
		ret = 0;
	}
	sqlite3_finalize(st);
	return ret;
}

int lt_store_meta_put(struct lt_store *s, const char *k, const char *v)
{
	return lt_run(s, lt_prep(s, "INSERT OR REPLACE INTO meta VALUES(?,?)", "ss", k, v));
}
