// SPDX-License-Identifier: MIT
/*
 * lt_brk_peer.c - a gateway-like process on the agent's pinned lt_breaker
 * (liblt only), driven by tests/e2e/test_breakers_api.sh. One verb per run,
 * so every run is another process sharing the breaker state:
 *   lt_brk_peer PIN_DIR allow NAME            "allowed probe=<0|1> state=<s>" or
 *                                             "denied state=<s> retry_after_ms=<n>"
 *   lt_brk_peer PIN_DIR report NAME OUTCOME [RETRY_MS]   outcome: success 5xx timeout
 *                                             connect stream 429
 *   lt_brk_peer PIN_DIR configure NAME THRESHOLD RECOVERY_MS PROBES PROBE_TIMEOUT_MS
 * Exit 0, or 1 with a line on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "breaker.h"

static const char *const outcomes[] = { "success", "5xx", "timeout", "connect", "stream", "429" };

int main(int argc, char **argv)
{
	struct lt_breakers b;
	struct lt_brk_verdict v;
	char path[512];
	int fd, ret = 1, i;

	if (argc < 4) {
		fprintf(stderr, "usage: lt_brk_peer PIN_DIR allow|report|configure NAME ...\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/lt_breaker", argv[1]);
	fd = bpf_obj_get(path);
	if (fd < 0 || lt_breakers_open(&b, fd, NULL)) {
		fprintf(stderr, "lt_brk_peer: %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	if (!strcmp(argv[2], "allow")) {
		ret = lt_breaker_allow(&b, argv[3], &v);
		if (v.allowed)
			printf("allowed probe=%d state=%s\n", v.probe, lt_brk_state_name(v.state));
		else
			printf("denied state=%s retry_after_ms=%llu\n", lt_brk_state_name(v.state),
			       (unsigned long long)v.retry_after_ms);
		ret = ret < 0 ? 1 : 0;
	} else if (!strcmp(argv[2], "report") && argc >= 5) {
		for (i = 0; i < 6 && strcmp(argv[4], outcomes[i]); i++)
			;
		ret = i < 6 ? lt_breaker_report(&b, argv[3], (enum lt_brk_outcome)i,
						argc > 5 ? strtoull(argv[5], NULL, 10) : 0) :
			      -EINVAL;
		if (ret)
			fprintf(stderr, "lt_brk_peer: report: %s\n", strerror(-ret));
		ret = !!ret;
	} else if (!strcmp(argv[2], "configure") && argc == 8) {
		struct lt_brk_policy p = { (uint32_t)atoi(argv[4]), (uint32_t)atoi(argv[5]),
					   (uint32_t)atoi(argv[6]), (uint32_t)atoi(argv[7]) };

		ret = lt_breaker_configure(&b, argv[3], &p);
		if (ret)
			fprintf(stderr, "lt_brk_peer: configure: %s\n", strerror(-ret));
		ret = !!ret;
	} else {
		fprintf(stderr, "lt_brk_peer: bad arguments\n");
	}
	lt_breakers_close(&b);
	return ret;
}
