// SPDX-License-Identifier: MIT
/*
 * daemon.c - `leaky-agent attach`: load, pin, attach, then stay in the
 * foreground consuming events and expiring state until SIGTERM/SIGINT.
 * Programs stay attached and maps pinned when it exits or dies: enforcement
 * never depends on this process, and a new attach adopts what it finds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "addr.h"
#include "agent.h"
#include "apply.h"
#include "auth.h" /* lt_jwt_secret */
#include "signin.h"
#include "config.h"
#include "log.h"
#include "maps.h"
#include "ops.h"
#include "overrides.h"
#include "pins.h"
#include "units.h"
#include "api.h"
#include "keys.h"
#include "lease.h"
#include "quota.h"
#include "requests.h"
#include "global.h"
#include "store.h"
#include "sync.h"
#include <sys/mman.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <time.h>

static volatile sig_atomic_t lt_stop, lt_reload;

static void lt_on_signal(int sig)
{
	if (sig == SIGHUP)
		lt_reload = 1;
	else
		lt_stop = 1;
}

int lt_need_privileges(void)
{
	unsigned long long eff = 0;
	char line[256];
	FILE *f;

	f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "CapEff:", 7))
			eff = strtoull(line + 7, NULL, 16);
	}
	if (f)
		fclose(f);
	/* CAP_NET_ADMIN = 12, CAP_SYS_ADMIN = 21, CAP_BPF = 39 */
	if ((eff & (1ULL << 12)) && (eff & ((1ULL << 39) | (1ULL << 21))))
		return 0;
	fprintf(stderr, "leaky-agent: needs root or CAP_BPF+CAP_NET_ADMIN (try sudo)\n");
	return 1;
}

/* One agent per state dir: a second attach would fight over the maps. */
static int lt_lock(const char *state_dir, char *err, size_t errlen)
{
	char path[512], pid[32];
	int fd, n;

	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create state dir %s: %s", state_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/agent.lock", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		n = (int)read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen, "another leaky-agent (pid %s) is attached with state dir %s",
			 pid[0] ? pid : "?", state_dir);
		close(fd);
		return -1;
	}
	if (ftruncate(fd, 0) == 0) {
		n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		if (write(fd, pid, (size_t)n) != n)
			log_warn("%s: cannot record pid", path);
	}
	return fd;
}

struct lt_daemon {
	int print_events;
	long events;
	struct lt_requests *requests; /* sampled decisions become usage events there */
};

static int lt_on_event(void *ctx, void *data, size_t len)
{
	struct lt_daemon *d = ctx;
	const struct lt_event *e = data;
	char a[64];

	if (len < sizeof(*e))
		return 0;
	d->events++;
	lt_requests_kernel(d->requests, e);
	lt_addr_format(e->saddr, a, sizeof(a));
	if (d->print_events) {
		printf("{\"ts_ns\":%llu,\"src\":\"%s\",\"dport\":%u,\"proto\":%u,\"syn\":%u,"
		       "\"outcome\":\"%s\",\"ifindex\":%u,\"policy_id\":%u}\n",
		       (unsigned long long)e->ts_ns, a, e->dport, e->proto, e->syn,
		       lt_stat_name(e->stat), e->ifindex, e->policy_id);
		fflush(stdout);
	}
	log_debug("event: %s -> :%u %s%s %s", a, e->dport, e->proto == 6 ? "tcp" : "udp",
		  e->syn ? " syn" : "", lt_stat_name(e->stat));
	return 0;
}

/* The config file (or the embedded default) with the runtime edits over it. */
static int lt_load_config(const struct lt_opts *o, struct lt_agent_config *c, char *err,
			  size_t errlen)
{
	struct lt_overrides ov;
	int ret;

	if (o->config)
		ret = lt_config_load(o->config, c, err, errlen);
	else
		ret = lt_config_parse(lt_default_config, "<default config>", c, err, errlen);
	if (ret)
		return ret;
	ret = lt_overrides_load(o->state_dir, &ov, err, errlen);
	if (!ret) {
		ret = lt_overrides_merge(&ov, c);
		if (!ret && (ov.nset || ov.nremoved || ov.dry_run >= 0))
			log_info("runtime edits from %s/overrides.json: %u set, %u removed%s",
				 o->state_dir, ov.nset, ov.nremoved,
				 ov.dry_run >= 0 ? ", dry-run" : "");
		lt_overrides_free(&ov);
	}
	if (ret)
		lt_config_free(c);
	return ret;
}

int lt_config_reload(const struct lt_opts *o, const struct lt_maps *m,
		     const struct lt_config *clock, struct lt_agent_config *c, char *err,
		     size_t errlen)
{
	int lock, ret;

	lock = lt_overrides_lock(o->state_dir, err, errlen);
	if (lock < 0)
		return lock;
	ret = lt_load_config(o, c, err, errlen);
	if (!ret) {
		if (clock) {
			c->xdp.clk_base_ns = clock->clk_base_ns;
			c->xdp.clk_base_jiffies = clock->clk_base_jiffies;
			c->xdp.clk_ns_per_jiffy = clock->clk_ns_per_jiffy;
		}
		ret = lt_config_apply(m, c, err, errlen);
		if (ret)
			lt_config_free(c);
	}
	lt_overrides_unlock(lock);
	return ret;
}

static int lt_seed_store(struct lt_store *st, const struct lt_cp_config *cp)
{
	char v[16];
	int i, ret;

	if (!lt_store_meta_get(st, "seeded", v, sizeof(v)))
		return 0; /* the store is the source of truth from now on */
	ret = lt_store_begin(st);
	for (i = 0; !ret && i < cp->nproviders; i++)
		ret = lt_store_provider_put(st, cp->providers[i]);
	for (i = 0; !ret && i < cp->nlimits; i++) {
		const struct lt_cp_limit *l = &cp->limits[i];
		struct lt_limit lim = { l->capacity, l->tokens, l->period_ns };

		ret = lt_store_limit_put(st, l->kind, l->name, l->provider, &lim);
	}
	if (!ret)
		ret = lt_store_meta_put(st, "seeded", "1");
	if (!ret)
		ret = lt_store_commit(st);
	if (ret)
		lt_store_rollback(st);
	else
		log_info("store: seeded %d providers and %d limits from the config", cp->nproviders,
			 cp->nlimits);
	return ret;
}

struct lt_cp {
	struct lt_store st;
	struct lt_quota *q;
	struct lt_keys *keys;
	struct lt_api api;
	void *slots, *rates, *usage, *lease, *cfgv;
	size_t slots_len, rates_len, usage_len, lease_len, cfgv_len;
	struct lt_breakers brk;
};

/* Every provider has a breaker from the start: the API and /metrics list it. */
static void lt_brk_register_cb(void *ctx, const char *name)
{
	lt_breaker_register(ctx, name);
}

static void lt_cp_stop(struct lt_cp *cp)
{
	lt_api_stop(&cp->api);
	lt_requests_stop(cp->api.requests); /* after the API: it reads the store */
	cp->api.requests = NULL;
	lt_sync_stop(cp->api.sync); /* after the API, before what it applies changes to */
	cp->api.sync = NULL;
	lt_global_stop(cp->api.global); /* before the quota engine it debits */
	cp->api.global = NULL;
	if (cp->api.cp.cur)
		lt_snap_destroy(&cp->api.cp);
	lt_jwt_free(&cp->api.jwt);
	lt_keys_close(cp->keys);
	lt_quota_close(cp->q);
	lt_store_close(&cp->st);
	if (cp->slots)
		munmap(cp->slots, cp->slots_len);
	if (cp->rates)
		munmap(cp->rates, cp->rates_len);
	if (cp->usage)
		munmap(cp->usage, cp->usage_len);
	if (cp->lease)
		munmap(cp->lease, cp->lease_len);
	if (cp->cfgv)
		munmap(cp->cfgv, cp->cfgv_len);
	lt_breakers_close(&cp->brk);
}

/*
 * Leases of gateway requests whose process died (lib/lease.h): freed once
 * their deadline passed, their reservations charged in full, and counted.
 */
static void lt_lease_sweep(struct lt_cp *cp, __u64 now)
{
	long live = 0, n;

	n = lt_lease_settle(cp->lease, LT_MAX_LEASES, now, &live);
	__atomic_store_n(&cp->api.leases_live, live, __ATOMIC_RELAXED);
	if (n > 0) {
		__atomic_fetch_add(&cp->api.leases_settled, (unsigned long long)n,
				   __ATOMIC_RELAXED);
		log_info("leases: %ld of dead gateway processes settled (charged in full)", n);
	}
}

static int lt_cp_start(struct lt_cp *cp, const struct lt_opts *o, const struct lt_agent_config *c,
		       struct lt_maps *m, int penalty_map_new, char *err, size_t errlen)
{
	struct lt_quota_maps qm;
	struct lt_cp_config *live;
	char path[512], secret[512];
	const char *src = NULL;
	int i, ret;

	snprintf(path, sizeof(path), "%s/leaky.db", o->state_dir);
	ret = lt_store_open(&cp->st, path, err, errlen);
	if (ret)
		return ret;
	ret = lt_seed_store(&cp->st, &c->cp);
	if (ret) {
		snprintf(err, errlen, "%s: cannot seed the store", path);
		return ret;
	}
	cp->slots = lt_map_mmap(m->fd[LT_M_SLOTS], &cp->slots_len);
	cp->rates = lt_map_mmap(m->fd[LT_M_RATES], &cp->rates_len);
	cp->usage = lt_map_mmap(m->fd[LT_M_USAGE], &cp->usage_len);
	if (!cp->slots || !cp->rates || !cp->usage) {
		snprintf(err, errlen, "cannot mmap lt_slots/lt_rates/lt_usage: %s",
			 strerror(errno));
		return -errno;
	}
	cp->lease = lt_map_mmap(m->fd[LT_M_LEASE], &cp->lease_len);
	if (!cp->lease) {
		snprintf(err, errlen, "cannot mmap lt_lease: %s", strerror(errno));
		return -errno;
	}
	qm.slots = cp->slots;
	qm.rates = cp->rates;
	qm.usage = cp->usage;
	qm.keyidx_fd = m->fd[LT_M_KEYIDX];
	ret = lt_quota_open(&cp->q, &cp->st, &qm, err, errlen);
	if (!ret)
		lt_quota_set_limits(cp->q, c->cp.max_buckets, c->cp.bucket_idle_ns);
	if (!ret)
		ret = lt_keys_open(&cp->keys, &cp->st, cp->q, err, errlen);
	cp->cfgv = ret ? NULL : lt_map_mmap(m->fd[LT_M_CONFIG], &cp->cfgv_len);
	if (!ret && !cp->cfgv) {
		snprintf(err, errlen, "cannot mmap lt_config: %s", strerror(errno));
		ret = -errno;
	}
	if (!ret) /* every change of lt_apikey bumps keys_gen: the gateways' caches */
		lt_keys_set_gen(cp->keys, &((struct lt_config_val *)cp->cfgv)->keys_gen);
	if (!ret) /* readers without SQLite (the gateway) see what the store has */
		ret = lt_keys_publish(cp->keys, m->fd[LT_M_APIKEY], err, errlen);
	if (ret)
		return ret;
	ret = lt_breakers_open(&cp->brk, m->fd[LT_M_BREAKER], NULL);
	if (ret) {
		snprintf(err, errlen, "cannot mmap lt_breaker: %s", strerror(-ret));
		return ret;
	}
	lt_quota_provider_each(cp->q, lt_brk_register_cb, &cp->brk);
	{
		struct lt_ops ops = { .m = m, .state_dir = o->state_dir, .st = &cp->st };

		/* one rule for bans at start: the live map wins, a new one is refilled */
		ret = lt_ops_bans_sync(&ops, penalty_map_new, err, errlen);
		if (ret)
			return ret;
	}

	lt_jwt_init(&cp->api.jwt);
	cp->api.jwt.leeway_s = (int64_t)c->cp.jwt_leeway_s;
	snprintf(cp->api.jwt.roles_claim, sizeof(cp->api.jwt.roles_claim), "%s", c->cp.roles_claim);
	snprintf(cp->api.jwt.orgs_claim, sizeof(cp->api.jwt.orgs_claim), "%s", c->cp.orgs_claim);
	snprintf(cp->api.jwt.issuer, sizeof(cp->api.jwt.issuer), "%s", c->cp.jwt_issuer);
	snprintf(cp->api.jwt.audience, sizeof(cp->api.jwt.audience), "%s", c->cp.jwt_audience);
	umask(077); /* state files are private (lt_jwt_secret no longer sets it) */
	ret = lt_jwt_secret(o->state_dir, c->cp.jwt_secret, secret, sizeof(secret), &src);
	if (!ret)
		ret = lt_jwt_set_secret(&cp->api.jwt, secret, err, errlen);
	if (ret) {
		if (!err[0])
			snprintf(err, errlen, "no usable HS256 secret (%s)", src ? src : "?");
		return ret;
	}
	log_info("jwt: HS256 secret from %s", src);
	for (i = 0; i < c->cp.njwt_pem && !ret; i++)
		ret = lt_jwt_add_pem(&cp->api.jwt, c->cp.jwt_pem[i], err, errlen);
	if (!ret && c->cp.jwt_jwks[0])
		ret = lt_jwt_add_jwks(&cp->api.jwt, c->cp.jwt_jwks, err, errlen);
	if (ret)
		return ret;
	ret = lt_requests_start(&cp->api.requests, m, o->state_dir, c->cp.request_log_rows,
				c->cp.request_log_age_ns, c->cp.request_log_max_bytes,
				c->cp.request_log_consume_rate, &c->kafka, &c->analytics,
				&((struct lt_config_val *)cp->cfgv)->generation, err, errlen);
	if (ret)
		return ret;
	live = malloc(sizeof(*live));
	if (!live)
		return -ENOMEM;
	*live = c->cp;
	lt_snap_init(&cp->api.cp, live, free);
	cp->api.q = cp->q;
	cp->api.st = &cp->st;
	cp->api.maps = m;
	cp->api.keys = cp->keys;
	cp->api.brk = &cp->brk;
	cp->api.state_dir = o->state_dir;
	{
		struct lt_sync_deps sd = { .st = &cp->st,
					   .db_path = path,
					   .q = cp->q,
					   .keys = cp->keys,
					   .brk = &cp->brk,
					   .m = m,
					   .state_dir = o->state_dir,
					   .lock = &cp->api.admin_lock };

		ret = lt_sync_start(&cp->api.sync, &sd, &c->kafka, err, errlen);
		if (ret)
			return ret;
	}
	ret = lt_api_start(&cp->api, err, errlen);
	if (!ret) /* the admin lock exists from here: other hosts' changes can be applied */
		ret = lt_sync_listen(cp->api.sync, err, errlen);
	if (!ret)
		ret = lt_global_start(&cp->api.global, cp->q, &c->kafka, &c->global, err, errlen);
	return ret;
}

/*
 * What a refused or failed attach must undo: the entries it created in the
 * pin dir (lt_ pins) and the state dir (lock, store, secret), and the dirs
 * themselves if it made them. Entries that existed before it are never
 * touched: they belong to an install that is still there.
 */
struct lt_dir_snap {
	int existed;
	char **names;
	int n;
};

static void lt_snap_take(struct lt_dir_snap *s, const char *dir, const char *prefix)
{
	struct dirent *de;
	char **nn;
	DIR *d;

	memset(s, 0, sizeof(*s));
	d = opendir(dir);
	if (!d)
		return;
	s->existed = 1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		nn = realloc(s->names, (size_t)(s->n + 1) * sizeof(*nn));
		if (!nn)
			break;
		s->names = nn;
		s->names[s->n] = strdup(de->d_name);
		if (s->names[s->n])
			s->n++;
	}
	closedir(d);
}

static void lt_snap_free(struct lt_dir_snap *s)
{
	while (s->n > 0)
		free(s->names[--s->n]);
	free(s->names);
	s->names = NULL;
}

/* Removes what appeared in dir since the snapshot; then the dir, if it is new. */
static void lt_snap_undo(struct lt_dir_snap *s, const char *dir, const char *prefix)
{
	char path[512];
	struct dirent *de;
	DIR *d;
	int i, old;

	d = opendir(dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type == DT_DIR ||
		    strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		for (i = 0, old = 0; i < s->n && !old; i++)
			old = !strcmp(s->names[i], de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!old && unlink(path) && errno != ENOENT)
			log_warn("cannot remove %s: %s", path, strerror(errno));
	}
	if (d)
		closedir(d);
	if (!s->existed)
		rmdir(dir); /* only if empty */
}

/*
 * The daemon's watch: the interfaces it attached, checked about once a
 * second against the kernel's hooks. Losing our program is logged once;
 * /readyz and `status` say not ready; the daemon re-attaches as soon as the
 * hook is free, and never replaces a program that is not ours.
 */
struct lt_watch {
	const char *name;
	__u32 ifindex;
	int active; /* 0 once `detach --iface` removed the record */
	int lost; /* our program is not on the hook */
	int fresh; /* this run attached it to a hook without ours (undo on failure) */
	__u32 blocker; /* the foreign program last reported */
	int last_err; /* the re-attach error last reported */
};

static int lt_watch_tick(struct lt_admit *skel, const struct lt_owner *own, struct lt_watch *w,
			 int n, enum lt_mode_req req)
{
	int ifs_fd = bpf_map__fd(skel->maps.lt_ifaces), i, ret, nactive = 0, nlost = 0;
	char what[400], err[512];
	struct lt_iface rec;
	struct lt_hook h;
	__u32 idx;

	for (i = 0; i < n; i++) {
		if (!w[i].active)
			continue;
		if (bpf_map_lookup_elem(ifs_fd, &w[i].ifindex, &rec)) {
			log_info("%s: detached by `leaky-agent detach`; no longer watched",
				 w[i].name);
			w[i].active = 0;
			continue;
		}
		nactive++;
		idx = if_nametoindex(w[i].name);
		memset(&h, 0, sizeof(h));
		if (idx)
			lt_hook_query(own, idx, rec.mode, &h);
		if (idx == w[i].ifindex && h.prog_id && h.ours) {
			if (w[i].lost)
				log_info("%s: our program is back (id %u)", w[i].name, h.prog_id);
			w[i].lost = 0;
			continue;
		}
		if (!w[i].lost) {
			log_warn(
				"%s: lost its leaky-tokens program (%s); /readyz is 503 until it is "
				"back",
				w[i].name,
				!idx		    ? "the interface is gone" :
				idx != w[i].ifindex ? "the interface was re-created" :
				h.prog_id	    ? "replaced by another program" :
						      "removed from the interface");
			w[i].lost = 1;
			w[i].blocker = 0;
			w[i].last_err = 0;
		}
		if (!idx) {
			nlost++;
			continue;
		}
		if (h.prog_id && !h.ours) {
			if (w[i].blocker != h.prog_id) {
				lt_hook_describe(&h, what, sizeof(what));
				log_warn("%s: the hook holds %s; not replacing it", w[i].name,
					 what);
				w[i].blocker = h.prog_id;
			}
			nlost++;
			continue;
		}
		ret = lt_iface_attach(skel, w[i].name, req, err, sizeof(err));
		if (ret) {
			if (ret != w[i].last_err)
				log_warn("%s: re-attaching failed: %s", w[i].name, err);
			w[i].last_err = ret;
			nlost++;
			continue;
		}
		if (idx != w[i].ifindex) {
			bpf_map_delete_elem(ifs_fd, &w[i].ifindex); /* the old interface's */
			w[i].ifindex = idx;
		}
		log_info("%s: re-attached", w[i].name);
		w[i].lost = 0;
	}
	return nactive > 0 && !nlost;
}

int lt_cmd_attach(struct lt_opts *o)
{
	struct lt_load_opts lo = { .pin_dir = o->pin_dir };
	struct lt_daemon d = { .print_events = o->events };
	struct lt_agent_config cfg = {};
	struct lt_cp cp = { 0 };
	struct ring_buffer *rb = NULL;
	struct lt_admit *skel = NULL;
	struct lt_sweep_stats sw;
	struct lt_watch w[LT_MAX_IFACES] = {};
	struct lt_dir_snap pins_before, state_before;
	struct lt_owner own;
	struct lt_hook h;
	struct lt_maps m;
	__u64 last_sweep = 0, last_watch = 0;
	char err[512];
	int i, lock_fd = -1, rc = 1, penalty_map_new, running = 0, gw_share;
	gid_t gw_gid = 0;

	if (lt_need_privileges())
		return 1;
	/* Everything that can be wrong with the input is found before any change. */
	if (lt_load_config(o, &cfg, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: bad config: %s\n", err);
		return 1;
	}
	/* The gateway's group, resolved before anything exists: a typo changes nothing. */
	{
		const char *g = o->gateway_group ? o->gateway_group : cfg.gateway_group;

		gw_share = lt_pins_group(g, o->gateway_group || cfg.gateway_group_set, &gw_gid, err,
					 sizeof(err));
		if (gw_share < 0) {
			fprintf(stderr, "leaky-agent: %s\n", err);
			lt_config_free(&cfg);
			return 1;
		}
		if (gw_share)
			log_info("no group '%s': the gateway's pins stay root-only (0600); "
				 "create it to run leaky-gateway unprivileged",
				 g);
	}
	/* A program that is not ours on a hook refuses the attach before anything exists. */
	lt_owner_from_pins(o->pin_dir, &own);
	for (i = 0; i < o->nifaces; i++) {
		if (lt_iface_precheck(&own, o->ifaces[i], o->mode, err, sizeof(err))) {
			fprintf(stderr, "leaky-agent: %s\n", err);
			lt_config_free(&cfg);
			return 1;
		}
	}
	lt_snap_take(&pins_before, o->pin_dir, "lt_");
	lt_snap_take(&state_before, o->state_dir, "");
	/*
	 * Every file of the state dir is the owner's alone (leaky.db holds key
	 * hashes and tenants): set before the first file is made, not after.
	 */
	umask(077);
	lock_fd = lt_lock(o->state_dir, err, sizeof(err));
	if (lock_fd < 0) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		goto cleanup;
	}
	lo.max_sources = cfg.max_sources;
	snprintf(err, sizeof(err), "%s/lt_penalty", o->pin_dir);
	penalty_map_new = access(err, F_OK) != 0; /* this attach creates it */
	skel = lt_skel_load(&lo, err, sizeof(err));
	if (!skel) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		goto cleanup;
	}
	lt_maps_from_skel(skel, &m);
	if (!gw_share && lt_pins_share(o->pin_dir, gw_gid, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: sharing the pins with the gateway: %s\n", err);
		goto cleanup;
	}
	/* Before any program is attached: the clock must be valid from packet 1. */
	if (lt_clock_calibrate(skel, &cfg.xdp, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		goto cleanup;
	}
	/* read again under the state lock: an edit made since is kept */
	{
		struct lt_agent_config now = {};

		if (lt_config_reload(o, &m, &cfg.xdp, &now, err, sizeof(err))) {
			fprintf(stderr, "leaky-agent: applying config: %s\n", err);
			goto cleanup;
		}
		lt_config_free(&cfg);
		cfg = now;
	}
	lt_owner_from_skel(skel, &own);
	for (i = 0; i < o->nifaces; i++) {
		w[i].name = o->ifaces[i];
		w[i].ifindex = if_nametoindex(o->ifaces[i]);
		lt_hook_query(&own, w[i].ifindex, o->mode == LT_REQ_TC ? LT_MODE_TC : 0, &h);
		if (lt_iface_attach(skel, o->ifaces[i], o->mode, err, sizeof(err))) {
			fprintf(stderr, "leaky-agent: %s\n", err);
			goto cleanup;
		}
		w[i].fresh = !h.ours;
		w[i].active = 1;
	}
	cp.api.attached = 1;
	if (o->api)
		snprintf(cfg.cp.listen, sizeof(cfg.cp.listen), "%s", o->api);
	err[0] = '\0';
	if (lt_cp_start(&cp, o, &cfg, &m, penalty_map_new, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: control plane: %s\n", err);
		goto cleanup;
	}
	d.requests = cp.api.requests;
	rb = ring_buffer__new(bpf_map__fd(skel->maps.lt_events), lt_on_event, &d, NULL);
	if (!rb) {
		fprintf(stderr, "leaky-agent: cannot open the event ring buffer: %s\n",
			strerror(errno));
		goto cleanup;
	}
	signal(SIGTERM, lt_on_signal);
	signal(SIGINT, lt_on_signal);
	signal(SIGHUP, lt_on_signal);
	log_info("ready: maps pinned under %s, %u protected port(s), %s", o->pin_dir, cfg.nports,
		 (cfg.xdp.flags & LT_CFG_DRY_RUN) ? "DRY RUN" : "enforcing");
	printf("leaky-agent: attached; pins in %s; API on http://%s; Ctrl-C leaves enforcement "
	       "running, `leaky-agent detach` removes it\n",
	       o->pin_dir, cfg.cp.listen);
	fflush(stdout);
	{
		/* a one-time ADMIN sign-in for the dashboard (signin.h): the code in the fragment */
		char code[LT_SIGNIN_CODE_LEN + 1], url[160];

		if (!lt_signin_new(o->state_dir, (int64_t)time(NULL), code, err, sizeof(err))) {
			lt_signin_url(cfg.cp.listen, code, url, sizeof(url));
			fprintf(stderr, "dashboard: %s\n", url);
			OPENSSL_cleanse(code, sizeof(code));
		} else {
			log_warn("no dashboard sign-in link: %s", err);
		}
	}
	running = 1;

	while (!lt_stop) {
		int n = ring_buffer__poll(rb, 200);
		__u64 now = lt_now_ns();

		if (n < 0 && n != -EINTR) {
			log_error("ring buffer poll: %s", strerror(-n));
			break;
		}
		if (lt_reload) {
			struct lt_agent_config next = {};

			lt_reload = 0;
			if (lt_config_reload(o, &m, NULL, &next, err, sizeof(err))) {
				log_error("reload: keeping the old config: %s", err);
			} else {
				struct lt_cp_config *live = malloc(sizeof(*live));

				/*
				 * The API reads its own snapshot: publish a copy and let
				 * lt_snap free the old one after its last reader, never
				 * under one. The listener and the JWT keys stay as they
				 * were started.
				 */
				if (live) {
					*live = next.cp;
					memcpy(live->listen, cfg.cp.listen, sizeof(live->listen));
					live->threads = cfg.cp.threads;
					lt_snap_swap(&cp.api.cp, live);
					lt_quota_set_limits(cp.q, next.cp.max_buckets,
							    next.cp.bucket_idle_ns);
				} else {
					log_error("reload: out of memory; the API keeps the old "
						  "config");
				}
				lt_config_free(&cfg);
				cfg = next;
				log_info("reload: config applied");
			}
		}
		if (now - last_sweep >= LT_NS_PER_SEC) {
			last_sweep = now;
			lt_sweep(&m, now, cfg.idle_timeout_ns, &sw);
			if (sw.penalties_expired || sw.sources_idle)
				log_debug("sweep: %ld penalties expired, %ld idle sources freed, "
					  "%ld sources left",
					  sw.penalties_expired, sw.sources_idle, sw.sources_left);
			/* L7 buckets empty for token.bucket_idle: 64k index entries a pass */
			lt_quota_reclaim(cp.q, now, 65536);
			lt_lease_sweep(&cp, now);
		}
		if (now - last_watch >= LT_NS_PER_SEC) {
			last_watch = now;
			__atomic_store_n(&cp.api.attached,
					 lt_watch_tick(skel, &own, w, o->nifaces, o->mode),
					 __ATOMIC_RELAXED);
		}
	}
	log_info("exiting: programs stay attached and maps pinned (%ld events seen)", d.events);
	rc = 0;
cleanup:
	lt_cp_stop(&cp); /* the API stops first: no request sees a closed store */
	ring_buffer__free(rb);
	if (!running) {
		/* A failed attach leaves nothing it created: attachments, pins, files. */
		for (i = 0; skel && i < o->nifaces; i++)
			if (w[i].fresh && lt_iface_detach(&own, bpf_map__fd(skel->maps.lt_ifaces),
							  w[i].ifindex, err, sizeof(err)))
				log_warn("%s", err);
		lt_snap_undo(&pins_before, o->pin_dir, "lt_");
		lt_snap_undo(&state_before, o->state_dir, "");
	}
	lt_admit__destroy(skel);
	if (lock_fd >= 0)
		close(lock_fd);
	lt_snap_free(&pins_before);
	lt_snap_free(&state_before);
	lt_config_free(&cfg);
	return rc;
}
