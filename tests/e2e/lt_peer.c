// SPDX-License-Identifier: MIT
/*
 * lt_peer.c - a second process on the agent's pinned maps, linked with
 * liblt only (no agent code, no SQLite): what the gateway will do, driven by
 * the e2e suites.
 *   lt_peer apikey PIN_DIR KEY   authenticate an API key through lt_apikey
 *     prints "ok <sub> <tier> <keyId>" and exits 0, or "refused: <why>", 1
 *   lt_peer resolve PIN_DIR AGENT AUTHORIZATION KEY...   bucket keys -> slots
 *     (lt_bucket_resolve, one resolver for all keys: repeats hit its cache);
 *     prints "<key> slot <n>" or "<key> error <errno name>: <why>" per key,
 *     then "hits <h> lookups <l> agent <a>"; exits 0 if every key resolved,
 *     else 3 (ENOENT), 4 (EAGAIN), 5 (EINVAL), 6 (EACCES), 1 (other)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "apikeys.h"
#include "auth.h"
#include "resolve.h"

static int peer_apikey(const char *pin, const char *key)
{
	static const char tiers[][32] = { "USER" };
	const struct lt_auth_roles ro = {
		.tiers = tiers, .ntiers = 1, .default_tier = "USER", .admin_role = "ADMIN"
	};
	struct lt_auth a = { .key_get = lt_apikey_map_fn };
	struct lt_principal p;
	struct lt_auth_fail f;
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/lt_apikey", pin);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		fprintf(stderr, "lt_peer: %s: %s\n", path, strerror(errno));
		return 2;
	}
	a.key_ctx = &fd;
	if (lt_auth_request(&a, &ro, NULL, key, (int64_t)time(NULL), &p, &f)) {
		printf("refused: %s\n", f.detail);
		close(fd);
		return 1;
	}
	printf("ok %s %s %s\n", p.sub, p.tier, p.key_id);
	close(fd);
	return 0;
}

static int peer_resolve(const char *pin, const char *agent, const char *auth, char **keys, int n)
{
	struct lt_resolver r;
	struct lt_keyidx_val v;
	char err[256];
	int i, ret, rc = 0;

	ret = lt_resolver_init(&r, pin, agent, auth, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "lt_peer: %s\n", err);
		return 2;
	}
	for (i = 0; i < n; i++) {
		ret = lt_bucket_resolve(&r, keys[i], &v, err, sizeof(err));
		if (!ret) {
			printf("%s slot %u\n", keys[i], v.slot);
			continue;
		}
		printf("%s error %s: %s\n", keys[i], strerrorname_np(-ret), err);
		if (!rc)
			rc = ret == -ENOENT ? 3 :
			     ret == -EAGAIN ? 4 :
			     ret == -EINVAL ? 5 :
			     ret == -EACCES ? 6 :
					      1;
	}
	printf("hits %llu lookups %llu agent %llu\n", r.hits, r.map_lookups, r.agent_calls);
	lt_resolver_free(&r);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "resolve"))
		return peer_resolve(argv[2], argv[3], argv[4], argv + 5, argc - 5);
	if (argc == 4 && !strcmp(argv[1], "apikey"))
		return peer_apikey(argv[2], argv[3]);
	fprintf(stderr, "usage: lt_peer apikey PIN_DIR KEY\n"
			"       lt_peer resolve PIN_DIR AGENT AUTHORIZATION KEY...\n");
	return 2;
}
