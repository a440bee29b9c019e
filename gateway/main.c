// SPDX-License-Identifier: MIT
/* leaky-gateway: the L7 proxy (issue #9). Being built; see gateway/README. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: leaky-gateway [--listen ADDR] [--config FILE]\n");
		return 0;
	}
	fprintf(stderr, "leaky-gateway: not built yet (issue #9)\n");
	return 2;
}
