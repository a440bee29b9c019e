// SPDX-License-Identifier: MIT
/*
 * commands.c - the commands that work on the pinned maps directly: detach,
 * status and the small editing helpers. They need no running agent, so an
 * operator can still unban or inspect while the daemon is down.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "addr.h"
#include "agent.h"
#include "apply.h"
#include "auth.h" /* lt_jwt_secret */
#include "cfg.h"
#include "config.h"
#include "log.h"
#include "maps.h"
#include "ops.h"
#include "penalty.h"
#include "overrides.h"
#include "signin.h"
#include "units.h"
#include "jwt.h"
#include <jansson.h>

/* The maps and the one implementation of the edits (ops.h), for a command. */
static int lt_open_ops(const struct lt_opts *o, struct lt_maps *m, struct lt_ops *ops)
{
	char err[512];

	if (lt_maps_open(o->pin_dir, m, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		return 1;
	}
	if (lt_ops_open(ops, m, o->state_dir, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		lt_maps_close(m);
		return 1;
	}
	return 0;
}

static void lt_close_ops(struct lt_maps *m, struct lt_ops *ops)
{
	lt_ops_close(ops);
	lt_maps_close(m);
}

static int lt_open(const struct lt_opts *o, struct lt_maps *m)
{
	char err[512];

	if (lt_maps_open(o->pin_dir, m, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		return 1;
	}
	return 0;
}

/* pid of the agent holding the state dir lock, or 0. */
static int lt_agent_pid(const char *state_dir)
{
	char path[512], buf[32];
	int fd, pid = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/agent.lock", state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		pid = atoi(buf);
	}
	close(fd);
	return pid;
}

int lt_cmd_detach(struct lt_opts *o)
{
	__u32 key, next, want[LT_MAX_IFACES];
	int i, pid, rc = 0, remaining = 0;
	struct lt_owner own;
	struct lt_maps m;
	char err[512];

	if (lt_need_privileges())
		return 1;
	for (i = 0; i < o->nifaces; i++) {
		want[i] = if_nametoindex(o->ifaces[i]);
		if (!want[i]) {
			fprintf(stderr, "leaky-agent: unknown interface '%s'\n", o->ifaces[i]);
			return 1;
		}
	}
	pid = lt_agent_pid(o->state_dir);
	if (pid > 0 && !o->nifaces) {
		/* The daemon would keep serving maps we are about to unpin. */
		log_info("stopping the running agent (pid %d)", pid);
		kill(pid, SIGTERM);
		for (i = 0; i < 50 && lt_agent_pid(o->state_dir); i++)
			usleep(100 * 1000);
	}
	/*
	 * Only lt_ifaces is needed: pins from an older or newer build may lack
	 * other maps, and detach must still clean up after them.
	 */
	for (i = 0; i < LT_M__MAX; i++)
		m.fd[i] = -1;
	snprintf(err, sizeof(err), "%s/lt_ifaces", o->pin_dir);
	m.fd[LT_M_IFACES] = bpf_obj_get(err);
	if (m.fd[LT_M_IFACES] < 0 && access(o->pin_dir, F_OK)) {
		fprintf(stderr, "leaky-agent: nothing to detach: no pins under %s\n", o->pin_dir);
		return 1;
	}
	/* Ours = uses these pins' maps: another install's program is left alone. */
	lt_owner_from_pins(o->pin_dir, &own);
	/* Collect first: deleting while walking restarts the walk. */
	__u32 *all = NULL;
	int nall = 0;
	if (m.fd[LT_M_IFACES] >= 0 && !bpf_map_get_next_key(m.fd[LT_M_IFACES], NULL, &next)) {
		do {
			__u32 *n2 = realloc(all, (size_t)(nall + 1) * sizeof(*all));

			if (!n2)
				break;
			all = n2;
			all[nall++] = next;
			key = next;
		} while (!bpf_map_get_next_key(m.fd[LT_M_IFACES], &key, &next));
	}
	for (i = 0; i < nall; i++) {
		int j, sel = !o->nifaces;

		for (j = 0; j < o->nifaces; j++)
			sel |= want[j] == all[i];
		if (!sel) {
			remaining++;
			continue;
		}
		if (lt_iface_detach(&own, m.fd[LT_M_IFACES], all[i], err, sizeof(err))) {
			fprintf(stderr, "leaky-agent: %s\n", err);
			rc = 1;
			remaining++;
		}
	}
	free(all);
	lt_maps_close(&m);
	if (!o->keep_maps && !remaining && !rc) {
		int ret = lt_unpin_all(o->pin_dir);

		if (ret) {
			fprintf(stderr, "leaky-agent: removing pins under %s: %s\n", o->pin_dir,
				strerror(-ret));
			return 1;
		}
		/* and the runtime edits: nothing of this install is left to resurrect */
		snprintf(err, sizeof(err), "%s/overrides.json", o->state_dir);
		unlink(err);
		if (lt_ops_forget_bans(o->state_dir))
			fprintf(stderr, "leaky-agent: %s/leaky.db: cannot forget the bans\n",
				o->state_dir);
		snprintf(err, sizeof(err), "%s/agent.lock", o->state_dir);
		unlink(err);
		rmdir(o->state_dir); /* only if empty */
		printf("detached; removed the maps pinned under %s and the runtime edits in %s\n",
		       o->pin_dir, o->state_dir);
	} else {
		printf("detached; maps kept under %s%s\n", o->pin_dir,
		       remaining ? " (other interfaces still attached)" : "");
	}
	return rc;
}

static void lt_fmt_time(__u64 real_ns, char *buf, size_t len)
{
	time_t t = (time_t)(real_ns / 1000000000ULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * One view for both outputs: what lt_ifaces says we attached, checked against
 * what the kernel has on each hook right now. An interface is attached when
 * its hook carries a program that uses our maps; only then does it have a
 * program id and a since time. The install is attached when every recorded
 * interface is (and there is one); the agent is ready when it runs and the
 * install is attached. The daemon's /readyz uses the same rule.
 */
struct lt_status_iface {
	__u32 ifindex;
	struct lt_iface rec;
	struct lt_hook hook;
	int attached;
	char ifname[IF_NAMESIZE + 8];
	char problem[480]; /* why not attached */
};

struct lt_status {
	int pinned, pid, n, nattached, attached, ready;
	struct lt_config cfg;
	struct lt_status_iface ifs[LT_MAX_IFACES];
};

static void lt_status_collect(const struct lt_opts *o, int ifaces_fd, const struct lt_owner *own,
			      struct lt_status *s)
{
	struct lt_status_iface *i;
	__u32 key, next;
	char what[400];
	int gone;

	if (ifaces_fd >= 0 && !bpf_map_get_next_key(ifaces_fd, NULL, &next)) {
		do {
			key = next;
			i = &s->ifs[s->n];
			memset(i, 0, sizeof(*i));
			if (bpf_map_lookup_elem(ifaces_fd, &key, &i->rec))
				continue;
			i->ifindex = key;
			gone = !if_indextoname(key, i->ifname);
			if (gone) {
				char nm[sizeof(i->rec.name)];

				memcpy(nm, i->rec.name, sizeof(nm));
				nm[sizeof(nm) - 1] = '\0';
				snprintf(i->ifname, sizeof(i->ifname), "%s?", nm);
			}
			lt_hook_query(own, key, i->rec.mode, &i->hook);
			i->attached = i->hook.prog_id && i->hook.ours;
			if (!i->attached && i->hook.prog_id) {
				lt_hook_describe(&i->hook, what, sizeof(what));
				snprintf(i->problem, sizeof(i->problem), "the hook holds %s", what);
			} else if (!i->attached) {
				snprintf(i->problem, sizeof(i->problem), "%s",
					 gone ? "the interface is gone" : "program missing");
			}
			s->nattached += i->attached;
			s->n++;
		} while (s->n < LT_MAX_IFACES && !bpf_map_get_next_key(ifaces_fd, &key, &next));
	}
	s->attached = s->n > 0 && s->nattached == s->n;
	s->pid = lt_agent_pid(o->state_dir);
	s->ready = s->pid > 0 && s->attached;
}

static void lt_json_str(const char *k, const char *v, int comma)
{
	json_t *j = json_string(v);
	char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	printf("%s\"%s\":%s", comma ? "," : "", k, d ? d : "null");
	free(d);
	json_decref(j);
}

static void lt_status_print(const struct lt_opts *o, const struct lt_status *s)
{
	const char *dry = (s->cfg.flags & LT_CFG_DRY_RUN) ? "dry-run" : "enforcing";
	char when[64];
	int k;

	if (o->json) {
		printf("{");
		lt_json_str("pin_dir", o->pin_dir, 0);
		printf(",\"pinned\":%s,\"agent_pid\":%d,\"ready\":%s,\"attached\":%s,"
		       "\"dry_run\":%s,\"generation\":%llu,\"interfaces\":[",
		       s->pinned ? "true" : "false", s->pid, s->ready ? "true" : "false",
		       s->attached ? "true" : "false",
		       (s->cfg.flags & LT_CFG_DRY_RUN) ? "true" : "false",
		       (unsigned long long)s->cfg.generation);
		for (k = 0; k < s->n; k++) {
			const struct lt_status_iface *i = &s->ifs[k];

			printf("%s{", k ? "," : "");
			lt_json_str("name", i->ifname, 0);
			printf(",\"ifindex\":%u,\"mode\":\"%s\",\"attached\":%s,\"prog_id\":%u",
			       i->ifindex, lt_mode_name(i->attached ? i->hook.mode : i->rec.mode),
			       i->attached ? "true" : "false", i->attached ? i->hook.prog_id : 0);
			if (i->attached) {
				lt_fmt_time(i->rec.attached_ns, when, sizeof(when));
				lt_json_str("attached_since", when, 1);
				printf(",\"problem\":null}");
			} else {
				printf(",\"attached_since\":null");
				lt_json_str("problem", i->problem, 1);
				printf("}");
			}
		}
		printf("]");
		return;
	}
	if (s->pinned)
		printf("leaky-tokens: maps pinned under %s\n", o->pin_dir);
	else
		printf("leaky-tokens: no maps pinned under %s (never attached, or detached)\n",
		       o->pin_dir);
	if (!s->pid)
		printf("agent: not running%s\n",
		       s->nattached ? " (enforcement continues without it)" : "");
	else if (s->ready)
		printf("agent: running (pid %d), ready\n", s->pid);
	else if (!s->n)
		printf("agent: running (pid %d), NOT READY: no interface is attached\n", s->pid);
	else
		printf("agent: running (pid %d), NOT READY: %d of %d interface(s) lost the "
		       "program\n",
		       s->pid, s->n - s->nattached, s->n);
	if (s->attached)
		printf("attached: yes, %s on %d interface(s)%s\n", dry, s->n,
		       (s->cfg.flags & LT_CFG_DRY_RUN) ?
			       " (would-be drops are counted and passed)" :
			       "");
	else if (s->nattached)
		printf("attached: no, the program is on %d of %d interface(s) only (%s there)\n",
		       s->nattached, s->n, dry);
	else
		printf("attached: no, nothing is enforced\n");
	if (!s->pinned)
		return;
	printf("config generation %llu\n", (unsigned long long)s->cfg.generation);
	printf("interfaces:\n");
	for (k = 0; k < s->n; k++) {
		const struct lt_status_iface *i = &s->ifs[k];

		if (i->attached) {
			lt_fmt_time(i->rec.attached_ns, when, sizeof(when));
			printf("  %-12s ifindex %-4u %-12s prog id %-6u since %s\n", i->ifname,
			       i->ifindex, lt_mode_name(i->hook.mode), i->hook.prog_id, when);
		} else {
			printf("  %-12s ifindex %-4u %-12s NOT ATTACHED: %s\n", i->ifname,
			       i->ifindex, lt_mode_name(i->rec.mode), i->problem);
		}
	}
	if (!s->n)
		printf("  (none)\n");
}

int lt_cmd_status(struct lt_opts *o)
{
	struct lt_stat_val st[LT_STAT__MAX];
	struct lt_status *s;
	struct lt_owner own;
	__u32 k;
	struct lt_maps m;
	long src_used, src_slots = 0, nports;
	char path[512];

	s = calloc(1, sizeof(*s));
	if (!s)
		return 1;
	snprintf(path, sizeof(path), "%s/lt_ifaces", o->pin_dir);
	s->pinned = !access(path, F_OK);
	if (!s->pinned) {
		/* Nothing installed: the same report, with nothing in it. */
		lt_status_collect(o, -1, NULL, s);
		lt_status_print(o, s);
		if (o->json)
			printf("}\n");
		free(s);
		return 0;
	}
	if (lt_open(o, &m)) {
		free(s);
		return 1;
	}
	lt_owner_from_pins(o->pin_dir, &own);
	lt_cfg_read(m.fd[LT_M_CONFIG], &s->cfg);
	lt_status_collect(o, m.fd[LT_M_IFACES], &own, s);
	lt_stats_read(m.fd[LT_M_STATS], st);
	src_used = lt_src_count(m.fd[LT_M_SRC], &src_slots);
	nports = lt_ports_count(m.fd[LT_M_PORTS]);
	lt_status_print(o, s);
	if (o->json) {
		printf(",\"maps\":{\"lt_src\":%ld,\"lt_src_slots\":%ld,\"lt_penalty\":%ld,"
		       "\"lt_policy\":%ld,\"lt_ifaces\":%ld,\"protected_ports\":%ld}",
		       src_used, src_slots, lt_penalty_count(m.fd[LT_M_PENALTY], m.fd[LT_M_CONFIG]),
		       lt_map_count(m.fd[LT_M_POLICY]), lt_map_count(m.fd[LT_M_IFACES]), nports);
		printf(",\"counters\":{");
		for (k = 0; k < LT_STAT__MAX; k++)
			printf("%s\"%s\":{\"packets\":%llu,\"bytes\":%llu}", k ? "," : "",
			       lt_stat_name(k), (unsigned long long)st[k].packets,
			       (unsigned long long)st[k].bytes);
		printf("}}\n");
	} else {
		printf("protected ports: %ld\n", nports);
		printf("maps (entries):\n");
		printf("  %-12s %7ld / %ld source buckets\n", "lt_src", src_used, src_slots);
		printf("  %-12s %7ld / %d prefixes (policies + allowlist)\n", "lt_policy",
		       lt_map_count(m.fd[LT_M_POLICY]), LT_MAX_PREFIXES);
		printf("  %-12s %7ld / %d slots\n", "lt_penalty",
		       lt_penalty_count(m.fd[LT_M_PENALTY], m.fd[LT_M_CONFIG]), LT_PEN_SLOTS);
		printf("  %-12s %7ld interfaces\n", "lt_ifaces", lt_map_count(m.fd[LT_M_IFACES]));
		printf("counters (packets, bytes):\n");
		for (k = 0; k < LT_STAT__MAX; k++)
			if (st[k].packets)
				printf("  %-20s %12llu %14llu\n", lt_stat_name(k),
				       (unsigned long long)st[k].packets,
				       (unsigned long long)st[k].bytes);
	}
	lt_maps_close(&m);
	free(s);
	return 0;
}

static int lt_arg_prefix(const struct lt_opts *o, int i, struct lt_lpm_key *k)
{
	char err[160];

	if (i >= o->nargs) {
		fprintf(stderr, "leaky-agent: missing PREFIX (e.g. 192.0.2.0/24)\n");
		return 1;
	}
	if (lt_prefix_parse(o->args[i], k, err, sizeof(err))) {
		fprintf(stderr, "leaky-agent: %s\n", err);
		return 1;
	}
	return 0;
}

int lt_cmd_ban(struct lt_opts *o)
{
	__u64 dur = 3600 * LT_NS_PER_SEC;
	struct lt_lpm_key k;
	__u32 reason = LT_PENALTY_MANUAL;
	struct lt_maps m;
	struct lt_ops ops;
	char err[256];
	int ret;

	if (lt_arg_prefix(o, 0, &k))
		return 1;
	if (o->ban_for && !strcmp(o->ban_for, "forever"))
		dur = ~0ULL;
	else if (o->ban_for && (lt_duration_parse(o->ban_for, &dur) || !dur)) {
		fprintf(stderr, "leaky-agent: --for '%s' is not a duration like 10m or forever\n",
			o->ban_for);
		return 1;
	}
	if (o->ban_reason) {
		if (!strcmp(o->ban_reason, "manual"))
			reason = LT_PENALTY_MANUAL;
		else if (!strcmp(o->ban_reason, "abuse"))
			reason = LT_PENALTY_ABUSE;
		else if (!strcmp(o->ban_reason, "auth"))
			reason = LT_PENALTY_AUTH;
		else {
			fprintf(stderr, "leaky-agent: --reason must be manual, abuse or auth\n");
			return 1;
		}
	}
	if (lt_open_ops(o, &m, &ops))
		return 1;
	ret = lt_op_ban(&ops, &k, dur, reason, NULL, err, sizeof(err));
	lt_close_ops(&m, &ops);
	if (ret) {
		fprintf(stderr, "leaky-agent: ban %s: %s\n", o->args[0], err);
		return 1;
	}
	lt_prefix_format(&k, err, sizeof(err));
	printf("banned %s\n", err);
	return 0;
}

int lt_cmd_unban(struct lt_opts *o)
{
	struct lt_lpm_key k;
	struct lt_maps m;
	struct lt_ops ops;
	char err[256];
	int ret;

	if (lt_arg_prefix(o, 0, &k) || lt_open_ops(o, &m, &ops))
		return 1;
	ret = lt_op_unban(&ops, &k, err, sizeof(err));
	lt_close_ops(&m, &ops);
	if (ret) {
		fprintf(stderr, "leaky-agent: unban %s: %s\n", o->args[0], err);
		return 1;
	}
	lt_prefix_format(&k, err, sizeof(err));
	printf("unbanned %s\n", err);
	return 0;
}

/*
 * want_allow: -1 any value; else only lt_policy entries with/without ALLOW.
 * Returns how many entries it printed.
 */
static int lt_print_lpm(int fd, size_t vsz, void (*show)(const void *val), int want_allow)
{
	struct lt_lpm_key k, nk;
	char buf[80];
	__u8 val[128];
	int n = 0;

	if (vsz > sizeof(val))
		return 0;
	if (bpf_map_get_next_key(fd, NULL, &nk))
		return 0;
	do {
		k = nk;
		if (bpf_map_lookup_elem(fd, &k, val))
			continue;
		if (want_allow >= 0 &&
		    !!(((struct lt_src_policy *)val)->flags & LT_POL_ALLOW) != !!want_allow)
			continue;
		lt_prefix_format(&k, buf, sizeof(buf));
		printf("%-44s", buf);
		if (show)
			show(val);
		printf("\n");
		n++;
	} while (!bpf_map_get_next_key(fd, &k, &nk));
	return n;
}

static int lt_show_penalty(void *ctx, const struct lt_lpm_key *k, const struct lt_penalty *p)
{
	__u64 now = lt_now_ns();
	static const char *const reasons[] = { "manual", "abuse", "auth", "gateway-escalation" };
	char buf[80];

	lt_prefix_format(k, buf, sizeof(buf));
	printf("%-44s", buf);
	(*(int *)ctx)++;
	if (p->until_ns == ~0ULL)
		printf(" forever");
	else if (p->until_ns > now)
		printf(" %llus left", (unsigned long long)((p->until_ns - now) / LT_NS_PER_SEC));
	else
		printf(" expired");
	printf("  strikes %u  reason %s\n", p->strikes,
	       p->reason < sizeof(reasons) / sizeof(reasons[0]) ? reasons[p->reason] : "?");
	return 0;
}

int lt_cmd_bans(struct lt_opts *o);
int lt_cmd_bans(struct lt_opts *o)
{
	struct lt_maps m;
	char err[256];
	int n = 0, ret;

	if (lt_open(o, &m))
		return 1;
	ret = lt_op_bans(&m, lt_show_penalty, &n, err, sizeof(err));
	if (ret)
		fprintf(stderr, "leaky-agent: bans: %s\n", err);
	else if (!n)
		printf("no bans (the penalty box is empty)\n");
	lt_maps_close(&m);
	return ret ? 1 : 0;
}

int lt_cmd_allow(struct lt_opts *o)
{
	struct lt_src_policy v = lt_allow_policy();
	struct lt_lpm_key k;
	struct lt_maps m;
	struct lt_ops ops;
	const char *sub = o->nargs ? o->args[0] : "list";
	char err[256];
	int ret = 0;

	if (strcmp(sub, "add") && strcmp(sub, "del") && strcmp(sub, "list")) {
		fprintf(stderr, "leaky-agent: allow add|del|list [PREFIX]\n");
		return 1;
	}
	if (strcmp(sub, "list") && lt_arg_prefix(o, 1, &k))
		return 1;
	if (!strcmp(sub, "list")) {
		if (lt_open(o, &m))
			return 1;
		if (!lt_print_lpm(m.fd[LT_M_POLICY], sizeof(v), NULL, LT_POL_ALLOW))
			printf("no allowlist entries\n");
		lt_maps_close(&m);
		return 0;
	}
	if (lt_open_ops(o, &m, &ops))
		return 1;
	ret = !strcmp(sub, "add") ? lt_op_allow_add(&ops, &k, err, sizeof(err)) :
				    lt_op_allow_del(&ops, &k, err, sizeof(err));
	lt_close_ops(&m, &ops);
	if (ret) {
		fprintf(stderr, "leaky-agent: allow %s: %s\n", sub, err);
		return 1;
	}
	return 0;
}

static void lt_show_policy(const void *v)
{
	const struct lt_src_policy *p = v;
	char a[48], b[48];

	lt_rate_spec_format(&p->conn, a, sizeof(a));
	lt_rate_spec_format(&p->pkt, b, sizeof(b));
	printf(" conn %s  packets %s  aggregate /%u /%u  id %08x", a, b, p->agg_v4, p->agg_v6,
	       p->id);
}

int lt_cmd_policy(struct lt_opts *o)
{
	const char *sub = o->nargs ? o->args[0] : "list";
	struct lt_src_policy pol;
	struct lt_config cfg = {};
	struct lt_lpm_key k;
	struct lt_maps m;
	struct lt_ops ops;
	char err[256];
	int ret = 0;

	if (strcmp(sub, "set") && strcmp(sub, "del") && strcmp(sub, "list")) {
		fprintf(stderr, "leaky-agent: policy set|del|list [PREFIX] [--conn CAP:RATE] "
				"[--packets CAP:RATE] [--aggregate-v4 N] [--aggregate-v6 N]\n");
		return 1;
	}
	if (strcmp(sub, "list") && lt_arg_prefix(o, 1, &k))
		return 1;
	if (!strcmp(sub, "set")) {
		if (o->agg_v4 < 0 || o->agg_v4 > 32 || o->agg_v6 < 0 || o->agg_v6 > 128) {
			fprintf(stderr, "leaky-agent: --aggregate-v4 is 1..32, --aggregate-v6 "
					"1..128\n");
			return 1;
		}
	}
	if (strcmp(sub, "list") ? lt_open_ops(o, &m, &ops) : lt_open(o, &m))
		return 1;
	if (!strcmp(sub, "list")) {
		if (!lt_cfg_read(m.fd[LT_M_CONFIG], &cfg)) {
			printf("%-44s", "default");
			lt_show_policy(&cfg.dflt);
			printf("\n");
		}
		lt_print_lpm(m.fd[LT_M_POLICY], sizeof(pol), lt_show_policy, 0);
		lt_maps_close(&m);
		return 0;
	} else if (!strcmp(sub, "del")) {
		ret = lt_op_policy_del(&ops, &k, err, sizeof(err));
	} else {
		/* Start from this exact prefix's policy (not a covering one), else the default. */
		if (lt_policy_get_exact(&m, &k, &pol) || (pol.flags & LT_POL_ALLOW)) {
			lt_cfg_read(m.fd[LT_M_CONFIG], &cfg);
			pol = cfg.dflt;
		}
		if (o->conn && lt_rate_spec_parse(o->conn, &pol.conn, err, sizeof(err))) {
			fprintf(stderr, "leaky-agent: --conn: %s\n", err);
			lt_close_ops(&m, &ops);
			return 1;
		}
		if (o->packets && lt_rate_spec_parse(o->packets, &pol.pkt, err, sizeof(err))) {
			fprintf(stderr, "leaky-agent: --packets: %s\n", err);
			lt_close_ops(&m, &ops);
			return 1;
		}
		if (o->agg_v4)
			pol.agg_v4 = (__u8)o->agg_v4;
		if (o->agg_v6)
			pol.agg_v6 = (__u8)o->agg_v6;
		pol.flags = 0;
		pol.id = lt_policy_id(&pol);
		ret = lt_op_policy_set(&ops, &k, &pol, err, sizeof(err));
	}
	lt_close_ops(&m, &ops);
	if (ret) {
		fprintf(stderr, "leaky-agent: policy %s: %s\n", sub, err);
		return 1;
	}
	{
		char buf[80];

		/* say what is now in force, so a no-op looks different from a change */
		lt_prefix_format(&k, buf, sizeof(buf));
		if (strcmp(sub, "set")) {
			printf("policy %s deleted\n", buf);
		} else {
			printf("%-44s", buf);
			lt_show_policy(&pol);
			printf("\n");
		}
	}
	return 0;
}

int lt_cmd_dry_run(struct lt_opts *o)
{
	struct lt_maps m;
	struct lt_ops ops;
	char err[256];
	int on, ret;

	if (o->nargs != 1 || (strcmp(o->args[0], "on") && strcmp(o->args[0], "off"))) {
		fprintf(stderr, "leaky-agent: dry-run on|off\n");
		return 1;
	}
	on = !strcmp(o->args[0], "on");
	if (lt_open_ops(o, &m, &ops))
		return 1;
	ret = lt_op_dry_run(&ops, on, err, sizeof(err));
	lt_close_ops(&m, &ops);
	if (ret) {
		fprintf(stderr, "leaky-agent: dry-run: %s\n", err);
		return 1;
	}
	printf("dry-run %s\n", on ? "on: would-be drops are counted and passed" : "off: enforcing");
	return 0;
}

int lt_cmd_check_config(struct lt_opts *o)
{
	struct lt_agent_config c;
	char err[512];
	int ret;

	ret = o->config ?
		      lt_config_load(o->config, &c, err, sizeof(err)) :
		      lt_config_parse(lt_default_config, "<default config>", &c, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "leaky-agent: bad config: %s\n", err);
		return 1;
	}
	printf("%s: ok (%u ports, %u policies, %u allowlist prefixes%s)\n",
	       o->config ? o->config : "<default config>", c.nports, c.npolicies, c.nallow,
	       (c.xdp.flags & LT_CFG_DRY_RUN) ? ", dry-run" : "");
	lt_config_free(&c);
	return 0;
}

static json_t *lt_csv(const char *s)
{
	json_t *a = json_array();
	char buf[1024], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(a, json_string(t));
	return a;
}

int lt_cmd_mint_token(struct lt_opts *o)
{
	char secret[512], tok[8192], *claims;
	const char *src;
	__u64 ttl = 3600 * LT_NS_PER_SEC;
	time_t now = time(NULL);
	json_t *c;
	int ret;

	if (!o->sub || !*o->sub) {
		fprintf(stderr, "leaky-agent: mint-token needs --sub USER_ID\n");
		return 2;
	}
	if (o->ttl && (lt_duration_parse(o->ttl, &ttl) || !ttl)) {
		fprintf(stderr, "leaky-agent: --ttl '%s' is not a duration like 1h\n", o->ttl);
		return 2;
	}
	ret = lt_jwt_secret(o->state_dir, NULL, secret, sizeof(secret), &src);
	if (ret) {
		fprintf(stderr,
			"leaky-agent: no HS256 secret: set LT_JWT_SECRET or run attach once "
			"(it makes %s/jwt-secret)\n",
			o->state_dir);
		return 1;
	}
	c = json_pack("{s:s, s:o, s:o, s:I, s:I}", "sub", o->sub, "roles",
		      lt_csv(o->roles ? o->roles : "USER"), "orgs", lt_csv(o->orgs), "iat",
		      (json_int_t)now, "exp", (json_int_t)(now + (time_t)(ttl / LT_NS_PER_SEC)));
	claims = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	ret = claims ? lt_jwt_sign_hs256(secret, claims, tok, sizeof(tok)) : -ENOMEM;
	free(claims);
	if (ret) {
		fprintf(stderr, "leaky-agent: mint-token: %s\n", strerror(-ret));
		return 1;
	}
	printf("%s\n", tok);
	return 0;
}

/*
 * signin-link: a new one-time ADMIN sign-in link for the dashboard. The code
 * goes (hashed) into <state-dir>/signin.db, which the running agent reads
 * when the page posts it (signin.h); so this needs write access to the
 * state dir (root), as attach does, and no credential of its own.
 */
int lt_cmd_signin_link(struct lt_opts *o)
{
	char code[LT_SIGNIN_CODE_LEN + 1], url[256], err[512];
	struct lt_agent_config c;
	const char *listen = o->api;
	int ret;

	if (!listen) {
		ret = o->config ? lt_config_load(o->config, &c, err, sizeof(err)) :
				  lt_config_parse(lt_default_config, "<default config>", &c, err,
						  sizeof(err));
		if (ret) {
			fprintf(stderr, "leaky-agent: bad config: %s\n", err);
			return 1;
		}
		snprintf(url, sizeof(url), "%s", c.cp.listen);
		lt_config_free(&c);
		listen = url;
	}
	snprintf(err, sizeof(err), "%s", listen); /* url is reused below */
	umask(077);
	ret = lt_signin_new(o->state_dir, (int64_t)time(NULL), code, url, sizeof(url));
	if (ret) {
		fprintf(stderr, "leaky-agent: signin-link: %s\n", url);
		return 1;
	}
	lt_signin_url(err, code, url, sizeof(url));
	printf("dashboard: %s\n(one use, valid %d minutes)\n", url, LT_SIGNIN_TTL_S / 60);
	return 0;
}
