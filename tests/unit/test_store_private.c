// SPDX-License-Identifier: MIT
/*
 * test_store_private.c - state files are private (issue 8 item 11):
 * leaky.db and its -wal/-shm are created 0600 even under umask 022 in a
 * state dir that already exists, and files an older version left 0644 are
 * tightened to 0600 at start.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lt_test.h"
#include "store.h"

static char dir[64], db[128], err[256];

static unsigned mode_of(const char *sfx)
{
	char p[160];
	struct stat st;

	snprintf(p, sizeof(p), "%s%s", db, sfx);
	if (stat(p, &st))
		return 01000; /* absent */
	return st.st_mode & 0777;
}

static void new_files_are_0600_under_umask_022(void)
{
	struct lt_store st;

	umask(022);
	CHECK_EQ(lt_store_open(&st, db, err, sizeof(err)), 0);
	CHECK_EQ(lt_store_meta_put(&st, "k", "v"), 0);
	CHECK_EQ(mode_of(""), 0600);
	CHECK_EQ(mode_of("-wal"), 0600);
	CHECK_EQ(mode_of("-shm"), 0600);
	lt_store_close(&st);
	CHECK_EQ(umask(022), 022); /* the caller's umask is given back */
}

static void old_0644_files_are_tightened(void)
{
	struct lt_store st;
	sqlite3 *old = NULL;

	unlink(db);
	/* an older version, still running, made them 0644 */
	umask(022);
	CHECK_EQ(sqlite3_open(db, &old), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(old, "PRAGMA journal_mode=WAL; CREATE TABLE t(x);", NULL, NULL, NULL),
		 SQLITE_OK);
	CHECK_EQ(mode_of(""), 0644);
	CHECK_EQ(mode_of("-wal"), 0644);
	CHECK_EQ(mode_of("-shm"), 0644);
	CHECK_EQ(lt_store_open(&st, db, err, sizeof(err)), 0);
	CHECK_EQ(mode_of(""), 0600);
	CHECK_EQ(mode_of("-wal"), 0600);
	CHECK_EQ(mode_of("-shm"), 0600);
	lt_store_close(&st);
	sqlite3_close(old);
}

int main(void)
{
	char p[160];

	snprintf(dir, sizeof(dir), "/tmp/lt-private-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	chmod(dir, 0755); /* the state dir already exists, and is not private */
	snprintf(db, sizeof(db), "%s/leaky.db", dir);
	RUN(new_files_are_0600_under_umask_022);
	RUN(old_0644_files_are_tightened);
	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
	unlink(db);
	rmdir(dir);
	return lt_t_done();
}
