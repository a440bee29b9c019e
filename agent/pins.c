// SPDX-License-Identifier: MIT
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "log.h"
#include "pins.h"

/* What leaky-gateway opens, and how. Pins not listed stay 0600 root:root. */
static const struct {
	const char *name;
	mode_t mode;
} lt_gw_pins[] = {
	{ "lt_slots", 0660 },	 { "lt_rates", 0660 },	    { "lt_usage", 0660 },
	{ "lt_keyidx", 0660 },	 { "lt_config", 0660 },	    { "lt_breaker", 0660 },
	{ "lt_lease", 0660 },	 { "lt_penalty", 0660 },    { "lt_apikey", 0640 },
	{ "lt_reqlog", 0660 },	 { "lt_reqlog_ctl", 0660 }, { "lt_escal", 0660 },
	{ "lt_upstream", 0660 },
};

int lt_pins_group(const char *name, int explicit_, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) || !res) {
		if (!explicit_)
			return 1;
		snprintf(err, errlen,
			 "gateway group '%s' does not exist (create it: groupadd --system %s)",
			 name, name);
		return -ENOENT;
	}
	*gid = res->gr_gid;
	return 0;
}

int lt_pins_share(const char *pin_dir, gid_t gid, char *err, size_t errlen)
{
	char path[512];
	unsigned i;

	if (chown(pin_dir, 0, gid) || chmod(pin_dir, 0750)) {
		snprintf(err, errlen, "%s: %s", pin_dir, strerror(errno));
		return -errno;
	}
	for (i = 0; i < sizeof(lt_gw_pins) / sizeof(lt_gw_pins[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, lt_gw_pins[i].name);
		if (chown(path, 0, gid) || chmod(path, lt_gw_pins[i].mode)) {
			if (errno == ENOENT)
				continue; /* a map this build does not have */
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -errno;
		}
	}
	log_debug("pins: the gateway's maps under %s belong to gid %u", pin_dir, (unsigned)gid);
	return 0;
}
