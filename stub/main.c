// SPDX-License-Identifier: MIT
/* leaky-stub: the provider stub (issue #9). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: leaky-stub [--listen ADDR]\n");
		return 0;
	}
	fprintf(stderr, "leaky-stub: not built yet (issue #9)\n");
	return 2;
}
