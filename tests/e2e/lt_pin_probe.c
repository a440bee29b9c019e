// SPDX-License-Identifier: MIT
/*
 * lt_pin_probe.c - what a process may do with the agent's pins, run as an
 * unprivileged user by tests/e2e/test_least_privilege.sh:
 *   lt_pin_probe PIN_DIR gateway   the gateway's pins open (lt_apikey read-only),
 *                                  the mmapable ones mmap read-write and take a CAS,
 *                                  the hash ones answer a lookup; the other pins
 *                                  and map creation are refused
 *   lt_pin_probe PIN_DIR none      every pin is refused
 * One line per check ("ok ..." / "FAIL ..."), the effective capabilities first;
 * exit 0 when every check went as expected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "maps.h"

static const char *const gw_rw[] = { "lt_slots",      "lt_rates",   "lt_usage",	  "lt_keyidx",
				     "lt_config",     "lt_breaker", "lt_penalty", "lt_reqlog",
				     "lt_reqlog_ctl", "lt_escal",   "lt_upstream" };
static const char *const private_[] = { "lt_src", "lt_policy", "lt_ifaces", "lt_stats",
					"lt_ports" };
static int bad;

static void say(int good, const char *fmt, const char *name, int err)
{
	printf("%s ", good ? "ok" : "FAIL");
	printf(fmt, name, strerror(err));
	printf("\n");
	bad |= !good;
}

/* Opens name; for an mmapable map also mmaps it and CASes word 0 to itself. */
static int probe(const char *pin, const char *name, int rdonly)
{
	LIBBPF_OPTS(bpf_obj_get_opts, o, .file_flags = rdonly ? BPF_F_RDONLY : 0);
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char path[512], key[256] = { 0 }, val[512];
	size_t len;
	__u64 *p, w;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", pin, name);
	fd = bpf_obj_get_opts(path, &o);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen)) {
		ret = -errno;
	} else if (info.map_flags & BPF_F_MMAPABLE) {
		p = lt_map_mmap(fd, &len);
		if (!p) {
			ret = -errno;
		} else {
			w = __atomic_load_n(p, __ATOMIC_ACQUIRE);
			if (!__atomic_compare_exchange_n(p, &w, w, 0, __ATOMIC_ACQ_REL,
							 __ATOMIC_ACQUIRE))
				ret = -EAGAIN;
			munmap(p, len);
		}
	} else if (info.key_size <= sizeof(key) && info.value_size <= sizeof(val)) {
		/* an all-zero key is in no map of ours: ENOENT means we may look */
		if (bpf_map_lookup_elem(fd, key, val) && errno != ENOENT)
			ret = -errno;
	}
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	char line[256];
	unsigned i;
	int ret, fd, gw;
	FILE *f;

	if (argc != 3) {
		fprintf(stderr, "usage: lt_pin_probe PIN_DIR gateway|none\n");
		return 2;
	}
	gw = !strcmp(argv[2], "gateway");
	f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7))
			printf("# uid %u gid %u %s", getuid(), getgid(), line);
	if (f)
		fclose(f);
	for (i = 0; i < sizeof(gw_rw) / sizeof(gw_rw[0]); i++) {
		ret = probe(argv[1], gw_rw[i], 0);
		say(gw ? !ret : ret == -EACCES,
		    gw ? "%s: opened read-write, mmapped/looked up (%s)" : "%s: refused (%s)",
		    gw_rw[i], ret ? -ret : 0);
	}
	ret = probe(argv[1], "lt_apikey", 1);
	say(gw ? !ret : ret == -EACCES,
	    gw ? "%s: opened read-only, looked up (%s)" : "%s: refused (%s)", "lt_apikey",
	    ret ? -ret : 0);
	if (gw) {
		ret = probe(argv[1], "lt_apikey", 0);
		say(ret == -EACCES, "%s: not writable (%s)", "lt_apikey", -ret);
	}
	for (i = 0; i < sizeof(private_) / sizeof(private_[0]); i++) {
		ret = probe(argv[1], private_[i], 0);
		say(ret == -EACCES, "%s: private, refused (%s)", private_[i], ret ? -ret : 0);
	}
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lt_probe", 4, 8, 1, NULL);
	say(fd < 0, "%s: map creation refused (%s)", "bpf_map_create", fd < 0 ? errno : 0);
	if (fd >= 0)
		close(fd);
	return bad;
}
