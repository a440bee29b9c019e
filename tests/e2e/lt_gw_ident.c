// SPDX-License-Identifier: MIT
/*
 * lt_gw_ident.c - gateway/identity.c as a long-lived process on the agent's
 * pins, for the e2e suites (until the gateway's glue calls it per request):
 *   lt_gw_ident PIN_DIR [STATE_DIR]
 * reads one request per line on stdin, "KEY <api key>" or "JWT <token>"
 * (optionally followed by " ORG <org id>"), and answers one line each:
 *   ok <user> <tier> <org|-> <keyId|-> misses=<n> flushes=<n>
 *   deny <status> <detail>
 * The JWT secret is the agent's (lt_jwt_secret: $LT_JWT_SECRET, then
 * STATE_DIR/jwt-secret); without either, JWTs are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "identity.h"

int main(int argc, char **argv)
{
	static const char tiers[][32] = { "ADMIN", "USER" };
	struct lt_gw_identity_opts o = {
		.roles = { .tiers = tiers,
			   .ntiers = 2,
			   .default_tier = "USER",
			   .admin_role = "ADMIN" },
	};
	struct lt_gw_identity_stats st;
	struct lt_gw_identity *id = NULL;
	struct lt_jwt_verifier jwt;
	struct lt_gw_tenant t;
	struct lt_gw_deny d;
	struct lt_gw_pins pins;
	char line[4096], h[4200], err[512], *org;
	int have_jwt = 0, ret;

	if (argc < 2) {
		fprintf(stderr, "usage: lt_gw_ident PIN_DIR [STATE_DIR]\n");
		return 2;
	}
	if (lt_gw_pins_open(&pins, argv[1], err, sizeof(err))) {
		printf("error %s\n", err);
		return 1;
	}
	if ((getenv("LT_JWT_SECRET") || argc > 2) &&
	    !lt_gw_jwt_from_agent(&jwt, argc > 2 ? argv[2] : "/nonexistent", NULL, err,
				  sizeof(err))) {
		have_jwt = 1;
		o.jwt = &jwt;
	}
	o.key_get = lt_apikey_map_fn;
	o.key_ctx = &pins.apikey_fd;
	o.keys_gen = &pins.cfg->keys_gen;
	if (lt_gw_identity_new(&id, &o)) {
		lt_gw_pins_close(&pins);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		org = strstr(line, " ORG ");
		if (org) {
			*org = '\0';
			org += 5;
		}
		if (!strncmp(line, "KEY ", 4)) {
			ret = lt_gw_identify(id, NULL, line + 4, org, (int64_t)time(NULL), &t, &d);
		} else if (!strncmp(line, "JWT ", 4)) {
			snprintf(h, sizeof(h), "Bearer %s", line + 4);
			ret = lt_gw_identify(id, h, NULL, org, (int64_t)time(NULL), &t, &d);
		} else {
			printf("deny 400 bad line\n");
			continue;
		}
		if (ret) {
			printf("deny %u %s\n", d.status, d.detail);
			continue;
		}
		lt_gw_identity_stats(id, &st);
		printf("ok %s %s %s %s misses=%llu flushes=%llu\n", t.user, t.tier,
		       t.org[0] ? t.org : "-", t.key_id[0] ? t.key_id : "-",
		       (unsigned long long)st.misses, (unsigned long long)st.flushes);
	}
	lt_gw_identity_free(id);
	if (have_jwt)
		lt_jwt_free(&jwt);
	lt_gw_pins_close(&pins);
	return 0;
}
