/* SPDX-License-Identifier: MIT */
/*
 * proxy.h - leaky-gateway's data path (PROBE-NOTES.md §10, the design that
 * won on this machine): a master process and N worker processes; each worker
 * has its own SO_REUSEPORT listener, one epoll loop with every fd registered
 * once edge-triggered, and its own LIFO pools of upstream keep-alive
 * connections. No hand-offs between workers.
 *
 * The master forks the workers, replaces a worker that dies, runs the active
 * health checks of the upstream services (results in a shared table the
 * workers read), validates the config on SIGHUP before the workers swap to it
 * (a bad file is refused with a log line, the old config stays), and on
 * SIGTERM lets the workers drain their in-flight requests, then exits.
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <sys/socket.h>
#include "gw_config.h"

struct gw_proxy_opts {
	const char *listen; /* HOST:PORT; NULL: the config's */
	const char *config_path; /* NULL: the embedded default (SIGHUP then reloads nothing) */
	unsigned workers; /* 0: the config's, else one per CPU */
	const char *metrics; /* HOST:PORT of the metrics listener; NULL: the config's (stats.h) */
};

/* Runs the master until SIGTERM/SIGINT; cfg is the validated initial config (consumed). */
int gw_proxy_run(const struct gw_proxy_opts *o, struct gw_config *cfg);

/*
 * Where the master publishes its health checks for the agent (the pinned
 * lt_upstream under pin_dir); before gw_proxy_run. NULL: nowhere.
 */
void gw_health_publish(const char *pin_dir);

/* "127.0.0.1:8080", "[::1]:8080", ":8080": 0 or -EINVAL. */
int gw_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
