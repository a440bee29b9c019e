// SPDX-License-Identifier: GPL-2.0 OR MIT
/* empty.bpf.c - the reference for `make bench`: an XDP program that only passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("xdp")
int lt_xdp_empty(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}
