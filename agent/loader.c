// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "clock.h"
#include "loader.h"
#include "log.h"
#include "maps.h"

static int lt_mkdir_p(const char *dir)
{
	char buf[512], *p;

	if (strlen(dir) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, dir);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* libbpf would say "parameter mismatch"; say which map and what to do. */
static int lt_check_pin(struct bpf_map *map, const char *path, char *err, size_t errlen)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd, ret = 0;

	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		ret = -errno;
	} else if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
		   info.value_size != bpf_map__value_size(map) ||
		   info.max_entries != bpf_map__max_entries(map) ||
		   info.map_flags != bpf_map__map_flags(map)) {
		snprintf(err, errlen,
			 "pinned map %s does not match this build (max_entries %u vs %u, value "
			 "size %u vs %u): keep the old max_sources, or run `leaky-agent detach` "
			 "first (that forgets bucket and penalty state)",
			 path, info.max_entries, bpf_map__max_entries(map), info.value_size,
			 bpf_map__value_size(map));
		ret = -EEXIST;
	}
	close(fd);
	return ret;
}

struct lt_admit *lt_skel_load(const struct lt_load_opts *o, char *err, size_t errlen)
{
	struct lt_admit *skel;
	struct bpf_map *map;
	char path[512];
	__u32 nsrc;
	int ret;

	skel = lt_admit__open();
	if (!skel) {
		snprintf(err, errlen, "cannot open the BPF object: %s", strerror(errno));
		return NULL;
	}
	skel->rodata->lt_fake_clock = o->fake_clock ? 1 : 0;
	skel->rodata->lt_no_pen_cache = o->no_pen_cache ? 1 : 0;
	nsrc = o->max_sources ? o->max_sources : LT_MAX_SOURCES_DEFAULT;
	if (nsrc < 16 || (nsrc & (nsrc - 1))) {
		snprintf(err, errlen, "max_sources %u is not a power of two >= 16", nsrc);
		goto fail;
	}
	bpf_map__set_max_entries(skel->maps.lt_src, nsrc);
	skel->rodata->lt_src_mask = nsrc - 1;
	if (o->pin_dir) {
		ret = lt_mkdir_p(o->pin_dir);
		if (ret) {
			snprintf(err, errlen,
				 "cannot create pin dir %s: %s (is bpffs mounted at "
				 "/sys/fs/bpf?)",
				 o->pin_dir, strerror(-ret));
			goto fail;
		}
		bpf_object__for_each_map(map, skel->obj)
		{
			if (bpf_map__is_internal(map))
				continue;
			snprintf(path, sizeof(path), "%s/%s", o->pin_dir, bpf_map__name(map));
			ret = lt_check_pin(map, path, err, errlen);
			if (ret) {
				if (ret != -EEXIST)
					snprintf(err, errlen, "%s: %s", path, strerror(-ret));
				goto fail;
			}
			ret = bpf_map__set_pin_path(map, path);
			if (ret) {
				snprintf(err, errlen, "%s: %s", path, strerror(-ret));
				goto fail;
			}
		}
	}
	ret = lt_admit__load(skel);
	if (ret) {
		snprintf(err, errlen,
			 "loading the BPF programs failed: %s (run with -v for the verifier log)",
			 strerror(-ret));
		goto fail;
	}
	return skel;
fail:
	lt_admit__destroy(skel);
	return NULL;
}

int lt_mode_req_parse(const char *s, enum lt_mode_req *out)
{
	static const char *const names[] = { "xdp", "xdp-native", "xdp-generic", "tc" };
	unsigned int i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum lt_mode_req)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *lt_mode_name(__u32 mode)
{
	switch (mode) {
	case LT_MODE_XDP_NATIVE:
		return "xdp-native";
	case LT_MODE_XDP_GENERIC:
		return "xdp-generic";
	case LT_MODE_TC:
		return "tc";
	}
	return "unknown";
}

/*
 * Ownership. A program is ours when it uses one of our maps (by map id): that
 * is what "this install" means, since two installs differ exactly in their
 * pins. The program's name only tells that it is leaky-tokens'; a second
 * install with another pin dir runs a program of the same name on other maps,
 * and neither may replace or detach the other's.
 */
static void lt_owner_add(struct lt_owner *own, int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (fd >= 0 && own->n < LT_OWNER_MAX && !bpf_obj_get_info_by_fd(fd, &info, &len))
		own->map_ids[own->n++] = info.id;
}

void lt_owner_from_skel(struct lt_admit *skel, struct lt_owner *own)
{
	struct bpf_map *map;

	own->n = 0;
	bpf_object__for_each_map(map, skel->obj) lt_owner_add(own, bpf_map__fd(map));
}

int lt_owner_from_pins(const char *pin_dir, struct lt_owner *own)
{
	struct dirent *de;
	char path[512];
	DIR *d;
	int fd;

	own->n = 0;
	d = opendir(pin_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "lt_", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		fd = bpf_obj_get(path);
		lt_owner_add(own, fd);
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	return 0;
}

/* Name and map ids of a program; -errno if it is gone. */
static int lt_prog_maps(__u32 id, char *name, size_t len, __u32 *ids, __u32 *n)
{
	struct bpf_prog_info info = {};
	__u32 ilen = sizeof(info);
	int fd, ret = 0;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	info.nr_map_ids = *n;
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		ret = -errno;
	close(fd);
	if (ret)
		return ret;
	snprintf(name, len, "%s", info.name);
	*n = info.nr_map_ids < *n ? info.nr_map_ids : *n;
	return 0;
}

static int lt_owner_has(const struct lt_owner *own, __u32 id)
{
	__u32 i;

	for (i = 0; own && i < own->n; i++)
		if (own->map_ids[i] == id)
			return 1;
	return 0;
}

static __u32 lt_xdp_prog(__u32 ifindex, __u32 *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query((int)ifindex, 0, &q))
		return 0;
	if (q.drv_prog_id) {
		*mode = LT_MODE_XDP_NATIVE;
		return q.drv_prog_id;
	}
	if (q.skb_prog_id) {
		*mode = LT_MODE_XDP_GENERIC;
		return q.skb_prog_id;
	}
	return 0;
}

static __u32 lt_tc_prog(__u32 ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = LT_TC_HANDLE, .priority = LT_TC_PRIO);
	int ret;

	/* Without a clsact qdisc the kernel says "Parent Qdisc doesn't exists": an answer. */
	lt_log_libbpf_quiet(1);
	ret = bpf_tc_query(&hook, &o);
	lt_log_libbpf_quiet(0);
	return ret ? 0 : o.prog_id;
}

void lt_hook_query(const struct lt_owner *own, __u32 ifindex, __u32 mode, struct lt_hook *h)
{
	__u32 i;

	memset(h, 0, sizeof(*h));
	if (mode == LT_MODE_TC) {
		h->prog_id = lt_tc_prog(ifindex);
		h->mode = LT_MODE_TC;
	} else {
		h->prog_id = lt_xdp_prog(ifindex, &h->mode);
	}
	if (!h->prog_id)
		return;
	h->nmaps = LT_OWNER_MAX;
	if (lt_prog_maps(h->prog_id, h->name, sizeof(h->name), h->map_ids, &h->nmaps)) {
		memset(h, 0, sizeof(*h)); /* detached while we looked */
		return;
	}
	h->leaky = !strcmp(h->name, "lt_xdp") || !strcmp(h->name, "lt_tc");
	for (i = 0; i < h->nmaps; i++)
		h->ours |= lt_owner_has(own, h->map_ids[i]);
}

/*
 * Where another install pinned the maps of a program: a bounded walk of
 * bpffs for an lt_ pin whose map id the program uses. 0 and dir, or -ENOENT.
 */
static int lt_find_pins(const char *dir, int depth, const struct lt_hook *h, char *out, size_t len,
			int *budget)
{
	char path[512];
	struct dirent *de;
	int found = -ENOENT, fd;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -ENOENT;
	while (found && (de = readdir(d)) && --*budget > 0) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR) {
			if (depth > 0)
				found = lt_find_pins(path, depth - 1, h, out, len, budget);
			continue;
		}
		if (strncmp(de->d_name, "lt_", 3))
			continue;
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			struct bpf_map_info info = {};
			__u32 ilen = sizeof(info), i;

			/* the name check keeps a pinned program's id from posing as a map id */
			if (!bpf_obj_get_info_by_fd(fd, &info, &ilen) &&
			    !strcmp(info.name, de->d_name))
				for (i = 0; i < h->nmaps && found; i++)
					if (h->map_ids[i] == info.id) {
						snprintf(out, len, "%s", dir);
						found = 0;
					}
			close(fd);
		}
	}
	closedir(d);
	return found;
}

void lt_hook_describe(const struct lt_hook *h, char *buf, size_t len)
{
	char dir[256];
	int budget = 4096;

	if (!h->leaky)
		snprintf(buf, len, "%s program '%s' (id %u), which is not leaky-tokens'",
			 h->mode == LT_MODE_TC ? "TC" : "XDP", h->name, h->prog_id);
	else if (!lt_find_pins("/sys/fs/bpf", 3, h, dir, sizeof(dir), &budget))
		snprintf(buf, len,
			 "leaky-tokens program '%s' (id %u) of another install, whose maps are "
			 "pinned under %s",
			 h->name, h->prog_id, dir);
	else
		snprintf(buf, len,
			 "leaky-tokens program '%s' (id %u) of another install, whose maps are "
			 "not pinned under /sys/fs/bpf (a test or benchmark loader?)",
			 h->name, h->prog_id);
}

/* The error for a hook held by a program that is not ours: -EBUSY. */
static int lt_refuse(const struct lt_hook *h, const char *ifname, char *err, size_t errlen)
{
	char what[400];

	lt_hook_describe(h, what, sizeof(what));
	if (h->leaky)
		snprintf(err, errlen,
			 "%s already has %s; not replacing it (one install per interface: detach "
			 "the other one with its --pin-dir, or attach with the same --pin-dir)",
			 ifname, what);
	else if (h->mode == LT_MODE_TC)
		snprintf(err, errlen,
			 "%s already has %s at TC handle 0x%x prio %d; not replacing it", ifname,
			 what, LT_TC_HANDLE, LT_TC_PRIO);
	else
		snprintf(err, errlen,
			 "%s already has %s; not replacing it (remove it with: ip link set dev "
			 "%s xdp off)",
			 ifname, what, ifname);
	return -EBUSY;
}

/* Removes prog_id from the XDP hook only if it is still the one there. */
static int lt_xdp_detach_id(__u32 ifindex, __u32 id, __u32 mode)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o);
	int fd, ret;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	o.old_prog_fd = fd;
	ret = bpf_xdp_detach((int)ifindex,
			     XDP_FLAGS_REPLACE | (mode == LT_MODE_XDP_NATIVE ? XDP_FLAGS_DRV_MODE :
									       XDP_FLAGS_SKB_MODE),
			     &o);
	close(fd);
	return ret;
}

static int lt_xdp_detach_ours(const struct lt_owner *own, __u32 ifindex)
{
	struct lt_hook h;

	lt_hook_query(own, ifindex, LT_MODE_XDP_NATIVE, &h);
	if (!h.prog_id || !h.ours)
		return 0;
	return lt_xdp_detach_id(ifindex, h.prog_id, h.mode);
}

static int lt_tc_detach_ours(const struct lt_owner *own, __u32 ifindex, int destroy_clsact)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = LT_TC_HANDLE, .priority = LT_TC_PRIO);
	struct lt_hook h;
	int ret = 0;

	lt_hook_query(own, ifindex, LT_MODE_TC, &h);
	if (h.prog_id && !h.ours)
		return 0; /* another install's filter: neither it nor its clsact is ours */
	if (h.prog_id)
		ret = bpf_tc_detach(&hook, &o);
	if (!ret && destroy_clsact) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		ret = bpf_tc_hook_destroy(&hook);
		if (ret == -ENOENT)
			ret = 0;
	}
	return ret;
}

static int lt_attach_xdp(struct lt_admit *skel, const struct lt_owner *own, __u32 ifindex,
			 const char *ifname, enum lt_mode_req req, __u32 *mode, char *err,
			 size_t errlen)
{
	int fd = bpf_program__fd(skel->progs.lt_xdp), old_fd = -1, ret;
	LIBBPF_OPTS(bpf_xdp_attach_opts, o);
	struct lt_hook cur;

	lt_hook_query(own, ifindex, LT_MODE_XDP_NATIVE, &cur);
	if (cur.prog_id && !cur.ours)
		return lt_refuse(&cur, ifname, err, errlen);
	if (cur.prog_id && ((req == LT_REQ_XDP_NATIVE && cur.mode != LT_MODE_XDP_NATIVE) ||
			    (req == LT_REQ_XDP_GENERIC && cur.mode != LT_MODE_XDP_GENERIC))) {
		ret = lt_xdp_detach_id(ifindex, cur.prog_id, cur.mode); /* switching modes */
		if (ret)
			goto fail;
		cur.prog_id = 0;
	}
	if (cur.prog_id) {
		/* Adopt: swap our old program for the new one in one step. */
		old_fd = bpf_prog_get_fd_by_id(cur.prog_id);
		o.old_prog_fd = old_fd;
		ret = bpf_xdp_attach((int)ifindex, fd,
				     XDP_FLAGS_REPLACE |
					     (cur.mode == LT_MODE_XDP_NATIVE ? XDP_FLAGS_DRV_MODE :
									       XDP_FLAGS_SKB_MODE),
				     &o);
		if (old_fd >= 0)
			close(old_fd);
		*mode = cur.mode;
		if (ret)
			goto fail;
		return 0;
	}
	/* UPDATE_IF_NOEXIST: a program attached since we looked is not replaced. */
	if (req != LT_REQ_XDP_GENERIC) {
		ret = bpf_xdp_attach((int)ifindex, fd,
				     XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
		*mode = LT_MODE_XDP_NATIVE;
		if (!ret || req == LT_REQ_XDP_NATIVE || ret == -EBUSY)
			goto done;
		log_info("%s: native XDP not supported (%s), using generic XDP", ifname,
			 strerror(-ret));
	}
	ret = bpf_xdp_attach((int)ifindex, fd, XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST,
			     NULL);
	*mode = LT_MODE_XDP_GENERIC;
done:
	if (!ret)
		return 0;
fail:
	snprintf(err, errlen, "attaching XDP to %s failed: %s%s", ifname, strerror(-ret),
		 ret == -EBUSY ? " (another program was attached meanwhile)" : "");
	return ret;
}

static int lt_attach_tc(struct lt_admit *skel, const struct lt_owner *own, __u32 ifindex,
			const char *ifname, int *own_clsact, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = LT_TC_HANDLE, .priority = LT_TC_PRIO);
	struct lt_hook cur;
	int ret;

	lt_hook_query(own, ifindex, LT_MODE_TC, &cur);
	if (cur.prog_id && !cur.ours)
		return lt_refuse(&cur, ifname, err, errlen);
	/* An existing clsact is an answer ("Exclusivity flag on"); other errors are ours to say. */
	lt_log_libbpf_quiet(1);
	ret = bpf_tc_hook_create(&hook);
	lt_log_libbpf_quiet(0);
	if (ret && ret != -EEXIST) {
		snprintf(err, errlen, "creating clsact on %s failed: %s", ifname, strerror(-ret));
		return ret;
	}
	if (!ret)
		*own_clsact = 1;
	o.prog_fd = bpf_program__fd(skel->progs.lt_tc);
	o.flags = BPF_TC_F_REPLACE;
	ret = bpf_tc_attach(&hook, &o);
	if (ret)
		snprintf(err, errlen, "attaching TC to %s failed: %s", ifname, strerror(-ret));
	return ret;
}

int lt_iface_precheck(const struct lt_owner *own, const char *ifname, enum lt_mode_req req,
		      char *err, size_t errlen)
{
	__u32 ifindex = if_nametoindex(ifname);
	struct lt_hook h;

	if (!ifindex) {
		snprintf(err, errlen, "unknown interface '%s' (see `ip link`)", ifname);
		return -ENODEV;
	}
	lt_hook_query(own, ifindex, req == LT_REQ_TC ? LT_MODE_TC : LT_MODE_XDP_NATIVE, &h);
	if (!h.prog_id || h.ours)
		return 0;
	return lt_refuse(&h, ifname, err, errlen);
}

int lt_iface_attach(struct lt_admit *skel, const char *ifname, enum lt_mode_req req, char *err,
		    size_t errlen)
{
	int ifs_fd = bpf_map__fd(skel->maps.lt_ifaces), own_clsact = 0, ret;
	struct lt_iface rec = {}, old = {};
	struct lt_owner own;
	__u32 ifindex, mode = 0;
	struct timespec ts;

	ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		snprintf(err, errlen, "unknown interface '%s' (see `ip link`)", ifname);
		return -ENODEV;
	}
	lt_owner_from_skel(skel, &own);
	bpf_map_lookup_elem(ifs_fd, &ifindex, &old);
	if (req == LT_REQ_TC) {
		ret = lt_xdp_detach_ours(&own, ifindex);
		if (!ret)
			ret = lt_attach_tc(skel, &own, ifindex, ifname, &own_clsact, err, errlen);
		mode = LT_MODE_TC;
		if (old.mode == LT_MODE_TC)
			own_clsact |= !!(old.flags & LT_IFACE_OWN_CLSACT);
	} else {
		ret = lt_attach_xdp(skel, &own, ifindex, ifname, req, &mode, err, errlen);
		if (!ret)
			lt_tc_detach_ours(&own, ifindex,
					  old.mode == LT_MODE_TC &&
						  (old.flags & LT_IFACE_OWN_CLSACT));
	}
	if (ret)
		return ret;
	clock_gettime(CLOCK_REALTIME, &ts);
	rec.mode = mode;
	rec.flags = own_clsact ? LT_IFACE_OWN_CLSACT : 0;
	rec.attached_ns = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	snprintf(rec.name, sizeof(rec.name), "%s", ifname);
	if (bpf_map_update_elem(ifs_fd, &ifindex, &rec, BPF_ANY)) {
		ret = -errno;
		snprintf(err, errlen, "lt_ifaces: %s", strerror(-ret));
		return ret;
	}
	log_info("attached to %s (ifindex %u) in %s mode", ifname, ifindex, lt_mode_name(mode));
	return 0;
}

int lt_iface_detach(const struct lt_owner *own, int ifaces_fd, __u32 ifindex, char *err,
		    size_t errlen)
{
	struct lt_iface rec = {};
	struct lt_hook h;
	char what[400];
	int ret;

	if (bpf_map_lookup_elem(ifaces_fd, &ifindex, &rec)) {
		snprintf(err, errlen, "ifindex %u is not attached", ifindex);
		return -ENOENT;
	}
	/*
	 * The record goes first: a running daemon stops watching an interface
	 * without a record, so it does not put back what we take off.
	 */
	bpf_map_delete_elem(ifaces_fd, &ifindex);
	lt_hook_query(own, ifindex, rec.mode, &h);
	if (h.prog_id && !h.ours) {
		lt_hook_describe(&h, what, sizeof(what));
		log_warn("%s: our program is not there; leaving %s alone", rec.name, what);
		ret = 0;
	} else if (rec.mode == LT_MODE_TC) {
		ret = lt_tc_detach_ours(own, ifindex, !!(rec.flags & LT_IFACE_OWN_CLSACT));
	} else {
		ret = h.prog_id ? lt_xdp_detach_id(ifindex, h.prog_id, h.mode) : 0;
	}
	if (ret == -ENODEV || ret == -ENOENT)
		ret = 0; /* the interface is gone, and our program with it */
	if (ret) {
		bpf_map_update_elem(ifaces_fd, &ifindex, &rec, BPF_ANY);
		snprintf(err, errlen, "detaching from %s failed: %s", rec.name, strerror(-ret));
		return ret;
	}
	log_info("detached from %s (ifindex %u)", rec.name, ifindex);
	return 0;
}

int lt_unpin_all(const char *pin_dir)
{
	struct dirent *de;
	char path[512];
	DIR *d;
	int ret = 0;

	/* every lt_ pin, including maps this build no longer has */
	d = opendir(pin_dir);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "lt_", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		if (unlink(path) && errno != ENOENT)
			ret = -errno;
	}
	if (d)
		closedir(d);
	if (rmdir(pin_dir) && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

void lt_maps_from_skel(struct lt_admit *skel, struct lt_maps *m)
{
	m->fd[LT_M_CONFIG] = bpf_map__fd(skel->maps.lt_config);
	m->fd[LT_M_PORTS] = bpf_map__fd(skel->maps.lt_ports);
	m->fd[LT_M_PENALTY] = bpf_map__fd(skel->maps.lt_penalty);
	m->fd[LT_M_POLICY] = bpf_map__fd(skel->maps.lt_policy);
	m->fd[LT_M_SRC] = bpf_map__fd(skel->maps.lt_src);
	m->fd[LT_M_OVERFLOW] = bpf_map__fd(skel->maps.lt_overflow);
	m->fd[LT_M_STATS] = bpf_map__fd(skel->maps.lt_stats);
	m->fd[LT_M_EVENTS] = bpf_map__fd(skel->maps.lt_events);
	m->fd[LT_M_SLOTS] = bpf_map__fd(skel->maps.lt_slots);
	m->fd[LT_M_RATES] = bpf_map__fd(skel->maps.lt_rates);
	m->fd[LT_M_IFACES] = bpf_map__fd(skel->maps.lt_ifaces);
	m->fd[LT_M_SCACHE] = bpf_map__fd(skel->maps.lt_scache);
	m->fd[LT_M_USAGE] = bpf_map__fd(skel->maps.lt_usage);
	m->fd[LT_M_KEYIDX] = bpf_map__fd(skel->maps.lt_keyidx);
	m->fd[LT_M_APIKEY] = bpf_map__fd(skel->maps.lt_apikey);
	m->fd[LT_M_REQLOG_CTL] = bpf_map__fd(skel->maps.lt_reqlog_ctl);
	m->fd[LT_M_REQLOG] = bpf_map__fd(skel->maps.lt_reqlog);
	m->fd[LT_M_LEASE] = bpf_map__fd(skel->maps.lt_lease);
	m->fd[LT_M_BREAKER] = bpf_map__fd(skel->maps.lt_breaker);
	m->fd[LT_M_ESCAL] = bpf_map__fd(skel->maps.lt_escal);
	m->fd[LT_M_UPSTREAM] = bpf_map__fd(skel->maps.lt_upstream);
}

static int lt_probe_run(struct lt_admit *skel, __u64 *ktime, __u64 *jiffies)
{
	unsigned char pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.lt_clock_probe), &o))
		return -errno;
	*ktime = skel->bss->lt_probe_ktime_ns;
	*jiffies = skel->bss->lt_probe_jiffies;
	return 0;
}

/*
 * Busy-polls the probe until jiffies moves by one. The probe run that sees
 * the edge is slowed by the tick interrupt itself (25-90 us on this kind of
 * VM); a wider bracket (preempted) is measured again.
 */
#define LT_CLOCK_BRACKET_NS (200 * 1000ULL)
#define LT_CLOCK_LATENCY_NS (100 * 1000ULL) /* the tick interrupt's, allowed */
#define LT_CLOCK_TRY_NS (3 * 1000000000ULL) /* an edge found within this, or -EIO */

static int lt_clock_edge(struct lt_admit *skel, struct lt_jiffy_edge *e)
{
	__u64 k, j, kb, jb, deadline, give_up = 0;
	int ret;

	/*
	 * Tries for LT_CLOCK_TRY_NS, not a count: a try costs a tick, and twenty
	 * (80 ms at HZ=250) all failed once in a make test run, when a burst of
	 * the other suites' traffic slowed every tick past the bracket.
	 */
	for (;;) {
		ret = lt_probe_run(skel, &kb, &jb);
		if (ret)
			return ret;
		if (!give_up)
			give_up = kb + LT_CLOCK_TRY_NS;
		else if (kb > give_up)
			return -EIO;
		deadline = kb + 200 * 1000000ULL; /* a tick is at most 100 ms (HZ >= 10) */
		do {
			ret = lt_probe_run(skel, &k, &j);
			if (ret)
				return ret;
			if (j != jb)
				break;
			kb = k;
		} while (k < deadline);
		if (j == jb + 1 && k - kb <= LT_CLOCK_BRACKET_NS) {
			*e = (struct lt_jiffy_edge){ .k_before = kb, .k_after = k, .j = j };
			return 0;
		}
	}
}

int lt_clock_calibrate(struct lt_admit *skel, struct lt_config *cfg, char *err, size_t errlen)
{
	struct lt_jiffy_edge e0, e1;
	__u64 npj = 0;
	__u32 hz = 0;
	int ret = 0, i;

	/*
	 * Two jiffies edges pin HZ to an integer (lt_clock_derive) when the
	 * neighbouring HZ are further apart than the edges' uncertainty (two
	 * brackets and the latency, <= 600 us): the separation is interval / HZ,
	 * so 250 ms resolve HZ <= ~400 (100, 128, 250, 300) and 1 s HZ <= ~1600
	 * (1000, 1024, 1200). Only what does not resolve is measured longer.
	 */
	for (i = 0; i < 3; i++) {
		ret = lt_clock_edge(skel, &e0);
		if (!ret)
			usleep(i ? 1000 * 1000 : 250 * 1000);
		if (!ret)
			ret = lt_clock_edge(skel, &e1);
		if (!ret)
			ret = lt_clock_derive(&e0, &e1, LT_CLOCK_LATENCY_NS, &npj, &hz);
		if (ret != -ERANGE)
			break;
	}
	if (ret) {
		snprintf(err, errlen, "clock calibration failed: %s",
			 ret == -ERANGE ? "the jiffies rate matches no integer HZ" :
			 ret == -EIO	? "jiffies did not advance" :
					  strerror(-ret));
		return ret;
	}
	cfg->clk_base_ns = lt_clock_base(&e0, &e1, npj);
	cfg->clk_base_jiffies = e1.j;
	cfg->clk_ns_per_jiffy = npj;
	log_debug("clock: HZ=%u, tick %llu ns", hz, (unsigned long long)npj);
	return 0;
}
