// SPDX-License-Identifier: MIT
/*
 * lt_peer.c - a second process on the agent's pinned maps, linked with
 * liblt only (no agent code, no SQLite): what the gateway will do, driven by
 * the e2e suites.
 *   lt_peer apikey PIN_DIR KEY   authenticate an API key through lt_apikey
 *     prints "ok <sub> <tier> <keyId>" and exits 0, or "refused: <why>", 1
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "apikeys.h"
#include "auth.h"

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

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "apikey"))
		return peer_apikey(argv[2], argv[3]);
	fprintf(stderr, "usage: lt_peer apikey PIN_DIR KEY\n");
	return 2;
}
