// SPDX-License-Identifier: MIT
/*
 * test_reqlog.c - the usage-record ring (lib/reqlog.c) with real processes:
 * forked producers on a shared mapping laid out as the pinned maps are.
 * Every record is derived from (producer, index) in every field, so a record
 * mixed from two writes (torn) cannot verify. The accounting identity
 * delivered + dropped_* == positions claimed is checked in every test.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "reqlog.h"
#include "lt_test.h"

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* A ring on fresh shared memory: what fork()ed producers and the consumer share. */
static void *shm;
static size_t shm_len;

static void ring_new(struct lt_reqlog *rl, __u64 slots)
{
	shm_len = 4096 + slots * sizeof(struct lt_reqlog_rec);
	shm = mmap(NULL, shm_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	if (lt_reqlog_attach(rl, shm, (char *)shm + 4096, slots)) {
		printf("# attach failed\n");
		exit(2);
	}
}

static void ring_free(void)
{
	munmap(shm, shm_len);
}

/* ---- records that prove their own integrity -------------------------------- */

static char pat(unsigned k, unsigned i, unsigned f)
{
	return (char)('a' + (k * 7 + i * 13 + f * 3) % 26);
}

static void fill_str(char *s, size_t len, unsigned k, unsigned i, unsigned f)
{
	memset(s, pat(k, i, f), len - 1);
	s[len - 1] = '\0';
}

struct strs {
	char rid[LT_REQLOG_ID_LEN], route[LT_REQLOG_NAME_LEN], user[LT_REQLOG_NAME_LEN],
		org[LT_REQLOG_NAME_LEN], tier[LT_REQLOG_SHORT_LEN], key[40],
		prov[LT_REQLOG_SHORT_LEN], mreq[LT_REQLOG_NAME_LEN], msrv[LT_REQLOG_NAME_LEN];
	__u8 addr[16];
};

static void make(unsigned k, unsigned i, struct strs *s, struct lt_reqlog_in *in)
{
	unsigned b;

	fill_str(s->rid, sizeof(s->rid), k, i, 1);
	fill_str(s->route, sizeof(s->route), k, i, 2);
	fill_str(s->user, sizeof(s->user), k, i, 3);
	fill_str(s->org, sizeof(s->org), k, i, 4);
	fill_str(s->tier, sizeof(s->tier), k, i, 5);
	fill_str(s->key, sizeof(s->key), k, i, 6);
	fill_str(s->prov, sizeof(s->prov), k, i, 7);
	fill_str(s->mreq, sizeof(s->mreq), k, i, 8);
	fill_str(s->msrv, sizeof(s->msrv), k, i, 9);
	for (b = 0; b < 16; b++)
		s->addr[b] = (__u8)(k * 31 + i + b);
	*in = (struct lt_reqlog_in){
		.request_id = s->rid,
		.method = "POST",
		.route = s->route,
		.user = s->user,
		.org = s->org,
		.tier = s->tier,
		.key_id = s->key,
		.provider = s->prov,
		.model_requested = s->mreq,
		.model_served = s->msrv,
		.client_addr = s->addr,
		.client_port = (__u16)(i * 3 + k),
		.status = (__u16)(200 + (i % 300)),
		.outcome = (k + i) % LT_REQ__MAX,
		.flags = LT_REQLOG_F_USAGE,
		.start_ns = 1000000000ULL * (k + 1) + i,
		.latency_ns = (__u64)k << 32 | i,
		.ttft_ns = i + 1,
		.tokens_reserved = (__u64)i * 1000 + k,
		.tokens_in = k,
		.tokens_out = i,
	};
}

/* 1 if r is exactly the record (k, i) it names in tokens_in/out. */
static int verify(const struct lt_reqlog_rec *r, unsigned *k, unsigned *i)
{
	struct lt_reqlog_rec want = { 0 };
	struct lt_reqlog_in in;
	struct strs s;

	if (r->tokens_in > 64 || r->tokens_out > 1000000)
		return 0;
	*k = (unsigned)r->tokens_in;
	*i = (unsigned)r->tokens_out;
	make(*k, *i, &s, &in);
	lt_reqlog_fill(&want, &in);
	return !memcmp(&want.start_ns, &r->start_ns,
		       sizeof(want) - offsetof(struct lt_reqlog_rec, start_ns));
}

static __u64 dropped(const struct lt_reqlog *rl)
{
	return rl->ctl->dropped_lapped + rl->ctl->dropped_unpublished + rl->ctl->dropped_died;
}

static void produce(struct lt_reqlog *rl, unsigned k, unsigned n, __u64 backpressure)
{
	struct lt_reqlog_in in;
	struct strs s;
	unsigned i;

	for (i = 0; i < n; i++) {
		/* tests only: a producer never waits; here it keeps the ring from lapping */
		while (backpressure && lt_reqlog_backlog(rl) >= backpressure)
			sched_yield();
		make(k, i, &s, &in);
		lt_reqlog_put(rl, &in);
	}
}

static pid_t spawn(struct lt_reqlog *rl, unsigned k, unsigned n, __u64 backpressure)
{
	pid_t pid = fork();

	if (pid == 0) {
		produce(rl, k, n, backpressure);
		_exit(0);
	}
	return pid;
}

/* Drains until every child is gone and nothing is left; stale positions flushed. */
static __u64 drain(struct lt_reqlog *rl, pid_t *kids, int nkids, unsigned char *seen, unsigned per,
		   __u64 *torn, __u64 *dups, __u64 deadline_s)
{
	__u64 got = 0, deadline = now_ns() + deadline_s * 1000000000ULL;
	struct lt_reqlog_rec r;
	int live = nkids, j, st;
	unsigned k, i;

	while (now_ns() < deadline) {
		int any = 0;

		while (lt_reqlog_next(rl, &r, now_ns()) == 1) {
			any = 1;
			if (!verify(&r, &k, &i)) {
				++*torn;
				continue;
			}
			got++;
			if (seen[k * per + i]++)
				++*dups;
		}
		for (j = 0; j < nkids; j++)
			if (kids[j] > 0 && waitpid(kids[j], &st, WNOHANG) == kids[j]) {
				kids[j] = 0;
				live--;
			}
		if (!live && !lt_reqlog_backlog(rl))
			break;
		if (!live) /* positions given up by producers: past the stale time now */
			while (lt_reqlog_next(rl, &r, now_ns() + rl->stale_ns + 1) == 1) {
				if (!verify(&r, &k, &i)) {
					++*torn;
					continue;
				}
				got++;
				if (seen[k * per + i]++)
					++*dups;
			}
		if (!any)
			usleep(200);
	}
	return got;
}

/* ---- tests ------------------------------------------------------------------ */

/* 4 producer processes, consumer keeping up: each record once, none lost. */
static void consumer_that_keeps_up_sees_every_record_exactly_once(void)
{
	enum { K = 4, PER = 5000, SLOTS = 256 };
	static unsigned char seen[K * PER];
	__u64 torn = 0, dups = 0, got;
	struct lt_reqlog rl;
	pid_t kids[K];
	unsigned k, missing = 0;

	ring_new(&rl, SLOTS);
	rl.stale_ns = 30 * 1000000000ULL; /* nothing is stale when the producers are alive */
	for (k = 0; k < K; k++)
		kids[k] = spawn(&rl, k, PER, SLOTS - 2 * K);
	got = drain(&rl, kids, K, seen, PER, &torn, &dups, 120);
	for (k = 0; k < K * PER; k++)
		missing += seen[k] == 0;
	CHECK_EQ(got, K * PER);
	CHECK_EQ(missing, 0);
	CHECK_EQ(dups, 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(dropped(&rl), 0);
	CHECK_EQ(rl.ctl->gave_up, 0);
	CHECK_EQ(rl.ctl->consumed, K * PER);
	CHECK_EQ(rl.ctl->head, K * PER);
	ring_free();
}

/* Nobody reading: the newest SLOTS records stay, the rest are counted lapped. */
static void lapped_records_are_counted_and_the_newest_kept(void)
{
	enum { SLOTS = 64, N = 3 * SLOTS + 5 };
	struct lt_reqlog_rec r;
	struct lt_reqlog rl;
	unsigned k, i, n = 0, bad = 0;

	ring_new(&rl, SLOTS);
	produce(&rl, 1, N, 0);
	CHECK_EQ(rl.ctl->overwritten, N - SLOTS); /* seen by producers, agent or not */
	while (lt_reqlog_next(&rl, &r, now_ns()) == 1) {
		if (!verify(&r, &k, &i) || i != N - SLOTS + n)
			bad++;
		n++;
	}
	CHECK_EQ(n, SLOTS);
	CHECK_EQ(bad, 0);
	CHECK_EQ(rl.ctl->dropped_lapped, N - SLOTS);
	CHECK_EQ(rl.ctl->consumed + dropped(&rl), N);
	CHECK_EQ(lt_reqlog_backlog(&rl), 0);
	ring_free();
}

/* A child that claims a slot, writes half a record, then stops or dies. */
static pid_t half_writer(struct lt_reqlog *rl, int sig)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct lt_reqlog_in in;
		struct lt_reqlog_rec *r;
		struct strs s;
		__u64 pos;

		make(9, 999, &s, &in);
		r = lt_reqlog_claim(rl, &pos);
		if (!r)
			_exit(3);
		memset(r->user, 'X', sizeof(r->user)); /* half a record */
		raise(sig);
		lt_reqlog_fill(r, &in); /* after SIGCONT */
		lt_reqlog_publish(r, pos);
		_exit(0);
	}
	return pid;
}

static unsigned drain_now(struct lt_reqlog *rl, __u64 now, unsigned *bad)
{
	struct lt_reqlog_rec r;
	unsigned n = 0, k, i;

	while (lt_reqlog_next(rl, &r, now) == 1) {
		n++;
		*bad += !verify(&r, &k, &i) || k == 9;
	}
	return n;
}

/* A producer killed mid-write: its position is counted died, its slot reused. */
static void killed_producer_is_counted_and_its_slot_reused(void)
{
	enum { SLOTS = 16 };
	struct lt_reqlog rl;
	unsigned bad = 0, n;
	int st;
	pid_t pid;

	ring_new(&rl, SLOTS);
	rl.stale_ns = 3600 * 1000000000ULL; /* only death may free the position */
	pid = half_writer(&rl, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	produce(&rl, 1, 10, 0);
	n = drain_now(&rl, now_ns(), &bad);
	CHECK_EQ(n, 10);
	CHECK_EQ(rl.ctl->dropped_died, 1);
	/* two more turns of the ring: the dead writer's slot carries records again */
	produce(&rl, 2, SLOTS, 0);
	n = drain_now(&rl, now_ns(), &bad);
	produce(&rl, 3, SLOTS, 0);
	n += drain_now(&rl, now_ns(), &bad);
	CHECK_EQ(n, 2 * SLOTS);
	CHECK_EQ(bad, 0);
	CHECK_EQ(rl.ctl->gave_up, 0);
	CHECK_EQ(rl.ctl->dropped_died, 1);
	CHECK_EQ(rl.ctl->dropped_lapped + rl.ctl->dropped_unpublished, 0);
	CHECK_EQ(rl.ctl->consumed + dropped(&rl), rl.ctl->head);
	ring_free();
}

/*
 * A producer stopped mid-write: the consumer skips its position after the
 * stale time (counted), producers landing on its slot give up (counted), and
 * when it resumes its late write is never delivered, torn or whole.
 */
static void stopped_producer_is_skipped_and_never_torn(void)
{
	enum { SLOTS = 16 };
	__u64 stale = 50 * 1000000ULL, t;
	struct lt_reqlog rl;
	unsigned bad = 0, n;
	int st;
	pid_t pid;

	ring_new(&rl, SLOTS);
	rl.stale_ns = stale;
	pid = half_writer(&rl, SIGSTOP);
	waitpid(pid, &st, WUNTRACED);
	CHECK(WIFSTOPPED(st));
	produce(&rl, 1, 5, 0);
	t = now_ns();
	CHECK_EQ(drain_now(&rl, t, &bad), 0); /* in order: waits for the stopped one */
	CHECK_EQ(drain_now(&rl, t + stale / 2, &bad), 0);
	n = drain_now(&rl, t + stale, &bad);
	CHECK_EQ(n, 5);
	CHECK_EQ(rl.ctl->dropped_unpublished, 1);
	/* a full turn: the producer that lands on the held slot gives up */
	produce(&rl, 2, SLOTS, 0);
	t = now_ns();
	n = drain_now(&rl, t, &bad);
	n += drain_now(&rl, t + stale, &bad);
	CHECK_EQ(n, SLOTS - 1);
	CHECK_EQ(rl.ctl->gave_up, 1);
	CHECK_EQ(rl.ctl->dropped_unpublished, 2);
	kill(pid, SIGCONT);
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* its late record is behind the consumer; the slot takes new ones again */
	produce(&rl, 3, SLOTS, 0);
	n = drain_now(&rl, now_ns(), &bad);
	produce(&rl, 4, SLOTS, 0);
	n += drain_now(&rl, now_ns(), &bad);
	CHECK_EQ(n, 2 * SLOTS);
	CHECK_EQ(bad, 0);
	CHECK_EQ(rl.ctl->dropped_died + rl.ctl->dropped_lapped, 0);
	CHECK_EQ(rl.ctl->consumed + dropped(&rl), rl.ctl->head);
	ring_free();
}

/*
 * The torn-record hunt: a ring of one slot, producer processes lapping it
 * without pause for a second while the consumer spins on it, so a slot is
 * rewritten during the consumer's copy all the time. Every record delivered
 * must still be one whole write. (Without the re-read of seq after the copy,
 * this finds hundreds of torn records in most runs.)
 */
static void no_torn_record_under_constant_lapping(void)
{
	enum { K = 3, PER = 1000000, SLOTS = 1 };
	__u64 torn = 0, got = 0, deadline;
	struct lt_reqlog_rec r;
	struct lt_reqlog rl;
	volatile __u32 *stop;
	pid_t kids[K];
	unsigned k, i, pass;
	int st;

	ring_new(&rl, SLOTS);
	stop = (volatile __u32 *)((char *)shm + 2048); /* in the shared page, after ctl */
	rl.stale_ns = 20 * 1000000ULL;
	for (k = 0; k < K; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			struct lt_reqlog_in in;
			struct strs s;

			for (i = 0; i < PER && !*stop; i++) {
				make(k, i, &s, &in);
				lt_reqlog_put(&rl, &in);
			}
			_exit(0);
		}
	}
	deadline = now_ns() + 1000000000ULL;
	while (now_ns() < deadline)
		while (lt_reqlog_next(&rl, &r, now_ns()) == 1) {
			if (verify(&r, &k, &i))
				got++;
			else
				torn++;
		}
	*stop = 1;
	for (k = 0; k < K; k++)
		waitpid(kids[k], &st, 0);
	/* what the producers left half-claimed: past the stale time, in steps */
	for (deadline = now_ns(), pass = 0; lt_reqlog_backlog(&rl) && pass < 100; pass++) {
		deadline += rl.stale_ns + 1;
		while (lt_reqlog_next(&rl, &r, deadline) == 1) {
			torn += !verify(&r, &k, &i);
			got++;
		}
	}
	printf("# %llu delivered, %llu lapped, %llu unpublished, %llu gave up, of %llu\n",
	       (unsigned long long)got, (unsigned long long)rl.ctl->dropped_lapped,
	       (unsigned long long)rl.ctl->dropped_unpublished, (unsigned long long)rl.ctl->gave_up,
	       (unsigned long long)rl.ctl->head);
	CHECK(got > 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(rl.ctl->consumed, got + torn);
	CHECK_EQ(rl.ctl->consumed + dropped(&rl), rl.ctl->head);
	ring_free();
}

/*
 * The same race made certain: the consumer's copy of a published record is
 * interrupted in its middle (the record straddles a page the consumer's view
 * has PROT_NONE; the fault handler plays a producer that claims the slot and
 * writes a new record through a second view of the same memory, then lets
 * the copy go on). The copy is half old, half new: it must be counted
 * lapped, never delivered, and the new record delivered whole after it.
 */
static struct lt_reqlog fault_rl; /* the producer's view */
static char *fault_page;
static int faults;

static void on_fault(int sig)
{
	struct lt_reqlog_in in;
	struct strs s;

	(void)sig;
	faults++;
	make(2, 2, &s, &in);
	lt_reqlog_put(&fault_rl, &in);
	mprotect(fault_page, 4096, PROT_READ | PROT_WRITE);
}

static void copy_interrupted_by_a_producer_is_never_delivered(void)
{
	struct sigaction sa = { .sa_handler = on_fault }, old;
	struct lt_reqlog_rec r;
	struct lt_reqlog_in in;
	struct lt_reqlog rl;
	struct strs s;
	unsigned k = 0, i = 0;
	size_t off = 2 * 4096 - sizeof(r) / 2; /* the record straddles pages 1 and 2 */
	char *a, *b;
	int fd;

	fd = memfd_create("lt-reqlog-test", 0);
	CHECK(fd >= 0 && !ftruncate(fd, 3 * 4096));
	a = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(a != MAP_FAILED && b != MAP_FAILED);
	CHECK_EQ(lt_reqlog_attach(&rl, a, a + off, 1), 0);
	CHECK_EQ(lt_reqlog_attach(&fault_rl, b, b + off, 1), 0);
	make(1, 1, &s, &in);
	CHECK_EQ(lt_reqlog_put(&fault_rl, &in), 0);
	fault_page = a + 2 * 4096;
	sigaction(SIGSEGV, &sa, &old);
	mprotect(fault_page, 4096, PROT_NONE);
	CHECK_EQ(lt_reqlog_next(&rl, &r, now_ns()), 1);
	sigaction(SIGSEGV, &old, NULL);
	CHECK_EQ(faults, 1);
	CHECK(verify(&r, &k, &i) && k == 2 && i == 2); /* the new one, whole */
	CHECK_EQ(rl.ctl->dropped_lapped, 1); /* the old one, torn by the rewrite */
	CHECK_EQ(rl.ctl->consumed, 1);
	munmap(a, 3 * 4096);
	munmap(b, 3 * 4096);
	close(fd);
}

/* Strings longer than their field are cut with a NUL; NULL reads as "". */
static void long_and_missing_strings_are_cut_and_empty(void)
{
	struct lt_reqlog_in in = { .provider = "a-provider-name-far-longer-than-32-bytes",
				   .model_requested = NULL,
				   .status = 200 };
	struct lt_reqlog_rec r;
	struct lt_reqlog rl;

	ring_new(&rl, 4);
	CHECK_EQ(lt_reqlog_put(&rl, &in), 0);
	CHECK_EQ(lt_reqlog_next(&rl, &r, now_ns()), 1);
	CHECK_EQ(strlen(r.provider), sizeof(r.provider) - 1);
	CHECK(!strncmp(r.provider, in.provider, sizeof(r.provider) - 1));
	CHECK_EQ(r.model_requested[0], 0);
	CHECK(r.start_ns > 1600000000ULL * 1000000000ULL); /* 0 = now, realtime */
	CHECK_EQ(lt_reqlog_put(NULL, &in), -ENODEV);
	ring_free();
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(consumer_that_keeps_up_sees_every_record_exactly_once);
	RUN(lapped_records_are_counted_and_the_newest_kept);
	RUN(killed_producer_is_counted_and_its_slot_reused);
	RUN(stopped_producer_is_skipped_and_never_torn);
	RUN(no_torn_record_under_constant_lapping);
	RUN(copy_interrupted_by_a_producer_is_never_delivered);
	RUN(long_and_missing_strings_are_cut_and_empty);
	return lt_t_done();
}
