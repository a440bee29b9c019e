// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <jansson.h>
#include "addr.h"
#include "overrides.h"

#define LT_OVERRIDES_FILE "overrides.json"

void lt_overrides_free(struct lt_overrides *o)
{
	free(o->set);
	free(o->removed);
	memset(o, 0, sizeof(*o));
	o->dry_run = -1;
}

static long lt_find_key(const struct lt_lpm_key *keys, size_t stride, __u32 n,
			const struct lt_lpm_key *k)
{
	__u32 i;

	for (i = 0; i < n; i++)
		if (!memcmp((const char *)keys + i * stride, k, sizeof(*k)))
			return i;
	return -1;
}

int lt_overrides_put(struct lt_overrides *o, const struct lt_lpm_key *k,
		     const struct lt_src_policy *pol)
{
	long i = o->nset ? lt_find_key(&o->set[0].key, sizeof(*o->set), o->nset, k) : -1;
	long r = o->nremoved ? lt_find_key(o->removed, sizeof(*o->removed), o->nremoved, k) : -1;

	if (r >= 0)
		o->removed[r] = o->removed[--o->nremoved];
	if (i < 0) {
		void *n = realloc(o->set, (o->nset + 1) * sizeof(*o->set));

		if (!n)
			return -ENOMEM;
		o->set = n;
		i = o->nset++;
	}
	o->set[i].key = *k;
	o->set[i].pol = *pol;
	return 0;
}

int lt_overrides_remove(struct lt_overrides *o, const struct lt_lpm_key *k)
{
	long i = o->nset ? lt_find_key(&o->set[0].key, sizeof(*o->set), o->nset, k) : -1;
	void *n;

	if (i >= 0)
		o->set[i] = o->set[--o->nset];
	if (o->nremoved && lt_find_key(o->removed, sizeof(*o->removed), o->nremoved, k) >= 0)
		return 0;
	n = realloc(o->removed, (o->nremoved + 1) * sizeof(*o->removed));
	if (!n)
		return -ENOMEM;
	o->removed = n;
	o->removed[o->nremoved++] = *k;
	return 0;
}

static void lt_path(const char *state_dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", state_dir, name);
}

int lt_overrides_load(const char *state_dir, struct lt_overrides *o, char *err, size_t errlen)
{
	json_t *root, *arr, *it, *v;
	json_error_t jerr;
	char path[512], msg[160];
	size_t i;
	int ret = 0;

	memset(o, 0, sizeof(*o));
	o->dry_run = -1;
	lt_path(state_dir, LT_OVERRIDES_FILE, path, sizeof(path));
	if (access(path, F_OK))
		return 0;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	v = json_object_get(root, "dry_run");
	if (json_is_boolean(v))
		o->dry_run = json_is_true(v);
	arr = json_object_get(root, "removed");
	json_array_foreach(arr, i, it) {
		struct lt_lpm_key k;

		if (!json_is_string(it) ||
		    lt_prefix_parse(json_string_value(it), &k, msg, sizeof(msg))) {
			snprintf(err, errlen, "%s: /removed/%zu: not a prefix", path, i);
			ret = -EINVAL;
			goto out;
		}
		ret = lt_overrides_remove(o, &k);
		if (ret)
			goto out;
	}
	arr = json_object_get(root, "set");
	json_array_foreach(arr, i, it) {
		struct lt_src_policy pol = { 0 };
		struct lt_lpm_key k;
		const char *c = json_string_value(json_object_get(it, "connections"));
		const char *p = json_string_value(json_object_get(it, "packets"));
		json_t *a4 = json_object_get(it, "aggregate_v4"),
		       *a6 = json_object_get(it, "aggregate_v6");

		if (lt_prefix_parse(json_string_value(json_object_get(it, "prefix")), &k, msg,
				    sizeof(msg))) {
			snprintf(err, errlen, "%s: /set/%zu/prefix: %s", path, i, msg);
			ret = -EINVAL;
			goto out;
		}
		if (json_is_true(json_object_get(it, "allow"))) {
			pol = lt_allow_policy();
		} else if (!c || !p || lt_rate_spec_parse(c, &pol.conn, msg, sizeof(msg)) ||
			   lt_rate_spec_parse(p, &pol.pkt, msg, sizeof(msg)) ||
			   !json_is_integer(a4) || !json_is_integer(a6) ||
			   json_integer_value(a4) < 1 || json_integer_value(a4) > 32 ||
			   json_integer_value(a6) < 1 || json_integer_value(a6) > 128) {
			snprintf(err, errlen, "%s: /set/%zu: bad policy", path, i);
			ret = -EINVAL;
			goto out;
		} else {
			pol.agg_v4 = (__u8)json_integer_value(a4);
			pol.agg_v6 = (__u8)json_integer_value(a6);
			pol.id = lt_policy_id(&pol);
		}
		ret = lt_overrides_put(o, &k, &pol);
		if (ret)
			goto out;
	}
out:
	json_decref(root);
	if (ret)
		lt_overrides_free(o);
	return ret;
}

int lt_overrides_save(const char *state_dir, const struct lt_overrides *o, char *err, size_t errlen)
{
	json_t *root = json_object(), *set = json_array(), *rem = json_array();
	char path[512], tmp[520], buf[80];
	__u32 i;
	int ret = 0;

	for (i = 0; i < o->nset; i++) {
		const struct lt_src_policy *p = &o->set[i].pol;
		json_t *e = json_object();

		lt_prefix_format(&o->set[i].key, buf, sizeof(buf));
		json_object_set_new(e, "prefix", json_string(buf));
		if (p->flags & LT_POL_ALLOW) {
			json_object_set_new(e, "allow", json_true());
		} else {
			lt_rate_spec_format(&p->conn, buf, sizeof(buf));
			json_object_set_new(e, "connections", json_string(buf));
			lt_rate_spec_format(&p->pkt, buf, sizeof(buf));
			json_object_set_new(e, "packets", json_string(buf));
			json_object_set_new(e, "aggregate_v4", json_integer(p->agg_v4));
			json_object_set_new(e, "aggregate_v6", json_integer(p->agg_v6));
		}
		json_array_append_new(set, e);
	}
	for (i = 0; i < o->nremoved; i++) {
		lt_prefix_format(&o->removed[i], buf, sizeof(buf));
		json_array_append_new(rem, json_string(buf));
	}
	json_object_set_new(root, "set", set);
	json_object_set_new(root, "removed", rem);
	if (o->dry_run >= 0)
		json_object_set_new(root, "dry_run", json_boolean(o->dry_run));
	lt_path(state_dir, LT_OVERRIDES_FILE, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) || rename(tmp, path)) {
		ret = -errno ? -errno : -EIO;
		snprintf(err, errlen, "%s: cannot save runtime edits: %s", path, strerror(-ret));
		unlink(tmp);
	}
	json_decref(root);
	return ret;
}

int lt_overrides_lock(const char *state_dir, char *err, size_t errlen)
{
	char path[512];
	int fd, i, ret;

	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", state_dir, strerror(-ret));
		return ret;
	}
	lt_path(state_dir, "edits.lock", path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	for (i = 0; i < 10000; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return fd;
		if (errno != EWOULDBLOCK)
			break;
		usleep(1000);
	}
	ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
	snprintf(err, errlen, "%s: %s", path,
		 ret == -EBUSY ? "held for 10 s by another leaky-agent (stopped?)" :
				 strerror(-ret));
	close(fd);
	return ret;
}

void lt_overrides_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* Drops key from c's policies and allowlist. */
static void lt_config_drop(struct lt_agent_config *c, const struct lt_lpm_key *k)
{
	long i;

	i = c->npolicies ? lt_find_key(&c->policies[0].key, sizeof(*c->policies), c->npolicies, k) :
			   -1;
	if (i >= 0)
		c->policies[i] = c->policies[--c->npolicies];
	i = c->nallow ? lt_find_key(c->allow, sizeof(*c->allow), c->nallow, k) : -1;
	if (i >= 0)
		c->allow[i] = c->allow[--c->nallow];
}

int lt_overrides_merge(const struct lt_overrides *o, struct lt_agent_config *c)
{
	__u32 i;

	for (i = 0; i < o->nremoved; i++)
		lt_config_drop(c, &o->removed[i]);
	for (i = 0; i < o->nset; i++) {
		void *n;

		lt_config_drop(c, &o->set[i].key);
		if (o->set[i].pol.flags & LT_POL_ALLOW) {
			n = realloc(c->allow, (c->nallow + 1) * sizeof(*c->allow));
			if (!n)
				return -ENOMEM;
			c->allow = n;
			c->allow[c->nallow++] = o->set[i].key;
		} else {
			n = realloc(c->policies, (c->npolicies + 1) * sizeof(*c->policies));
			if (!n)
				return -ENOMEM;
			c->policies = n;
			c->policies[c->npolicies++] = o->set[i];
		}
	}
	if (o->dry_run == 1)
		c->xdp.flags |= LT_CFG_DRY_RUN;
	else if (o->dry_run == 0)
		c->xdp.flags &= ~LT_CFG_DRY_RUN;
	return 0;
}
