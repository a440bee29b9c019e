/* SPDX-License-Identifier: MIT */
/*
 * pins.h - least privilege for the gateway: the pins leaky-gateway needs go
 * to one group (config `gateway_group`, flag --gateway-group, default
 * "leaky"), everything else stays root's alone (0600).
 *
 *   the pin dir                         root:<group> 0750 (traversable, listable)
 *   lt_slots lt_rates lt_usage lt_keyidx lt_config lt_breaker lt_lease
 *   lt_penalty lt_reqlog lt_reqlog_ctl
 *   lt_escal                             root:<group> 0660 (open read-write, mmap)
 *   lt_apikey                            root:<group> 0640 (the gateway opens it
 *                                        BPF_F_RDONLY: it can read keys, not mint them)
 *
 * On this kernel (6.18, unprivileged_bpf_disabled = 2) a process without any
 * capability opens a pinned map by path (BPF_OBJ_GET) when the pin's file
 * mode allows the access it asks for (read-write, or read with
 * BPF_F_RDONLY), mmaps a BPF_F_MMAPABLE map through a read-write fd, and
 * reads and updates it with the map syscalls; it cannot create maps or load
 * programs. tests/e2e/test_least_privilege.sh checks exactly that.
 * The parent of the pin dir must be traversable too (/sys/fs/bpf is 1777).
 */
#ifndef LT_AGENT_PINS_H
#define LT_AGENT_PINS_H

#include <stddef.h>
#include <sys/types.h>

#define LT_GATEWAY_GROUP_DEFAULT "leaky"

/*
 * The group's gid: 0 and *gid; 1 when it does not exist and was not asked
 * for explicitly (the default: pins stay root-only, logged); -ENOENT with
 * err when an explicitly configured group does not exist.
 */
int lt_pins_group(const char *name, int explicit_, gid_t *gid, char *err, size_t errlen);

/* Gives the gateway's pins under pin_dir to gid (modes above). -errno and err. */
int lt_pins_share(const char *pin_dir, gid_t gid, char *err, size_t errlen);

#endif
