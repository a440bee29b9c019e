// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "maps.h"

/* one line per append below, so concurrent appends merge */
/* clang-format off */
const char *const lt_map_names[LT_M__MAX] = {
	[LT_M_CONFIG] = "lt_config", [LT_M_PORTS] = "lt_ports",	  [LT_M_PENALTY] = "lt_penalty",
	[LT_M_POLICY] = "lt_policy", [LT_M_SRC] = "lt_src",	  [LT_M_OVERFLOW] = "lt_overflow",
	[LT_M_STATS] = "lt_stats",   [LT_M_EVENTS] = "lt_events", [LT_M_SLOTS] = "lt_slots",
	[LT_M_RATES] = "lt_rates",   [LT_M_IFACES] = "lt_ifaces", [LT_M_SCACHE] = "lt_scache",
	[LT_M_USAGE] = "lt_usage",   [LT_M_KEYIDX] = "lt_keyidx", [LT_M_APIKEY] = "lt_apikey",
	[LT_M_REQLOG_CTL] = "lt_reqlog_ctl",
	[LT_M_REQLOG] = "lt_reqlog",
	[LT_M_LEASE] = "lt_lease",
	[LT_M_BREAKER] = "lt_breaker",
	[LT_M_ESCAL] = "lt_escal",
	[LT_M_UPSTREAM] = "lt_upstream",
};
/* clang-format on */

static const char *const lt_stat_names[LT_STAT__MAX] = {
	[LT_STAT_PASS_NON_IP] = "pass_non_ip",
	[LT_STAT_PASS_MALFORMED] = "pass_malformed",
	[LT_STAT_PASS_UNPROTECTED] = "pass_unprotected",
	[LT_STAT_PASS_FRAGMENT] = "pass_fragment",
	[LT_STAT_PASS_ALLOWLIST] = "pass_allowlist",
	[LT_STAT_PASS_ADMIT] = "pass_admit",
	[LT_STAT_PASS_NO_CONFIG] = "pass_no_config",
	[LT_STAT_DROP_PENALTY] = "drop_penalty",
	[LT_STAT_DROP_CONN_RATE] = "drop_conn_rate",
	[LT_STAT_DROP_PKT_RATE] = "drop_pkt_rate",
	[LT_STAT_DROP_CONTENDED] = "drop_contended",
	[LT_STAT_DRYRUN_PENALTY] = "dryrun_penalty",
	[LT_STAT_DRYRUN_CONN_RATE] = "dryrun_conn_rate",
	[LT_STAT_DRYRUN_PKT_RATE] = "dryrun_pkt_rate",
	[LT_STAT_DRYRUN_CONTENDED] = "dryrun_contended",
	[LT_STAT_AUX_TABLE_FULL] = "aux_table_full",
	[LT_STAT_AUX_PENALTY_EXPIRED] = "aux_penalty_expired",
	[LT_STAT_AUX_EVENT_LOST] = "aux_event_lost",
	[LT_STAT_AUX_EVENT_SENT] = "aux_event_sent",
	[LT_STAT_DROP_FRAG_TINY] = "drop_frag_tiny",
	[LT_STAT_DRYRUN_FRAG_TINY] = "dryrun_frag_tiny",
	[LT_STAT_DROP_FRAG_OVERLAP] = "drop_frag_overlap",
	[LT_STAT_DRYRUN_FRAG_OVERLAP] = "dryrun_frag_overlap",
	[LT_STAT_DROP_UNPARSEABLE] = "drop_unparseable",
	[LT_STAT_DRYRUN_UNPARSEABLE] = "dryrun_unparseable",
	[LT_STAT_AUX_NOPORT_FRAGMENT] = "aux_noport_fragment",
	[LT_STAT_AUX_NOPORT_HEADERS] = "aux_noport_headers",
	[LT_STAT_AUX_NOPORT_TRUNCATED] = "aux_noport_truncated",
	[LT_STAT_AUX_TC_PULLED] = "aux_tc_pulled",
	[LT_STAT_AUX_OVERFLOW_FULL] = "aux_overflow_full",
};

const char *lt_stat_name(unsigned int stat)
{
	return stat < LT_STAT__MAX && lt_stat_names[stat] ? lt_stat_names[stat] : "unknown";
}

void lt_maps_close(struct lt_maps *m)
{
	int i;

	for (i = 0; i < LT_M__MAX; i++) {
		if (m->fd[i] >= 0)
			close(m->fd[i]);
		m->fd[i] = -1;
	}
}

int lt_maps_open(const char *pin_dir, struct lt_maps *m, char *err, size_t errlen)
{
	char path[512];
	int i, ret;

	for (i = 0; i < LT_M__MAX; i++)
		m->fd[i] = -1;
	for (i = 0; i < LT_M__MAX; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, lt_map_names[i]);
		m->fd[i] = bpf_obj_get(path);
		if (m->fd[i] < 0) {
			ret = -errno;
			if (ret == -ENOENT)
				snprintf(err, errlen,
					 "%s not found: is leaky-agent attached (pin dir %s)?",
					 path, pin_dir);
			else if (ret == -EACCES || ret == -EPERM)
				snprintf(err, errlen, "%s: %s (needs root or CAP_BPF)", path,
					 strerror(-ret));
			else
				snprintf(err, errlen, "%s: %s", path, strerror(-ret));
			lt_maps_close(m);
			return ret;
		}
	}
	return 0;
}

int lt_stats_read(int stats_fd, struct lt_stat_val *out)
{
	int ncpu = libbpf_num_possible_cpus(), c, ret = 0;
	struct lt_stat_val *per;
	__u32 i;

	if (ncpu <= 0)
		return -EINVAL;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	memset(out, 0, sizeof(*out) * LT_STAT__MAX);
	for (i = 0; i < LT_STAT__MAX; i++) {
		if (bpf_map_lookup_elem(stats_fd, &i, per)) {
			ret = -errno;
			break;
		}
		for (c = 0; c < ncpu; c++) {
			out[i].packets += per[c].packets;
			out[i].bytes += per[c].bytes;
		}
	}
	free(per);
	return ret;
}

/*
 * The kernel's LPM get_next_key walks the trie in postorder. For a key that
 * is not in the trie it answers with the leftmost (first) node; for a key
 * that is, with the node after it, which is never the first; and -ENOENT
 * after the last. So: the key is present iff it is the first node, or its
 * successor is not the first node, or it has none.
 */
int lt_lpm_lookup_exact(int fd, const struct lt_lpm_key *key, void *value)
{
	struct lt_lpm_key first, next;
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char buf[256];

	if (bpf_map_get_next_key(fd, NULL, &first))
		return errno == ENOENT ? -ENOENT : -errno; /* empty */
	if (memcmp(&first, key, sizeof(*key))) {
		if (!bpf_map_get_next_key(fd, key, &next)) {
			if (!memcmp(&next, &first, sizeof(first)))
				return -ENOENT; /* not in the trie: the walk restarted */
		} else if (errno != ENOENT) {
			return -errno;
		}
	}
	/* present: the longest match of key at its own length is key itself */
	if (!value) {
		if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
			return -errno;
		if (info.value_size > sizeof(buf))
			return -E2BIG;
		value = buf;
	}
	if (bpf_map_lookup_elem(fd, key, value))
		return errno == ENOENT ? -ENOENT : -errno;
	return 0;
}

long lt_map_count(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	void *key, *next;
	long n = 0;
	int ret;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	key = calloc(2, info.key_size);
	if (!key)
		return -ENOMEM;
	next = (char *)key + info.key_size;
	ret = bpf_map_get_next_key(fd, NULL, next);
	while (!ret) {
		n++;
		memcpy(key, next, info.key_size);
		ret = bpf_map_get_next_key(fd, key, next);
	}
	free(key);
	return n;
}

void *lt_map_mmap(int fd, size_t *len)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return NULL;
	if (!(info.map_flags & BPF_F_MMAPABLE)) {
		errno = EINVAL;
		return NULL;
	}
	*len = ((size_t)info.value_size * info.max_entries + (size_t)page - 1) &
	       ~((size_t)page - 1);
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

long lt_map_entries(int fd)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	return info.max_entries;
}

long lt_src_count(int src_fd, long *slots)
{
	struct lt_src_slot *s;
	size_t len, i, n;
	long used = 0;

	s = lt_map_mmap(src_fd, &len);
	if (!s)
		return -errno;
	n = (size_t)lt_map_entries(src_fd); /* len is rounded up to a page */
	for (i = 0; i < n; i++)
		used += __atomic_load_n(&s[i].tag, __ATOMIC_RELAXED) != 0;
	munmap(s, len);
	if (slots)
		*slots = (long)n;
	return used;
}

long lt_ports_count(int ports_fd)
{
	struct lt_port_val *pv;
	size_t len, i;
	long n = 0;

	pv = lt_map_mmap(ports_fd, &len);
	if (!pv)
		return -errno;
	for (i = 0; i < LT_MAX_PORTS; i++)
		n += (pv[i].flags & LT_PORT_PROTECTED) != 0;
	munmap(pv, len);
	return n;
}
