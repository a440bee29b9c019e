// SPDX-License-Identifier: MIT
/* leaky-gateway: the L7 proxy for LLM and API traffic (issue #9). See README "leaky-gateway". */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "llm_route.h"
#include "log.h"
#include "proxy.h"
#include "routes.h"

static const struct {
	const char *name, *arg, *help;
} flags[] = {
	{ "listen", "ADDR",
	  "HOST:PORT or [V6]:PORT to listen on (default: the config's, "
	  "127.0.0.1:8080)" },
	{ "config", "FILE", "JSON config (default: the embedded one; SIGHUP re-reads FILE)" },
	{ "workers", "N",
	  "worker processes, each with its own SO_REUSEPORT listener "
	  "(default: the config's, else one per CPU)" },
	{ "metrics", "ADDR",
	  "HOST:PORT of the Prometheus listener, GET /metrics summed over the workers "
	  "(default: the config's metrics.listen; none when unset)" },
	{ "pin-dir", "DIR",
	  "bpffs directory of the agent's pinned maps (default /sys/fs/bpf/leaky; "
	  "used by admission)" },
	{ "check", NULL, "validate the config, print a one-line summary and exit" },
	{ "verbose", NULL, "log at debug level (repeat for trace)" },
	{ "help", NULL, "this help" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: leaky-gateway [--listen ADDR] [--config FILE] [--workers N] "
		   "[--metrics ADDR] [--pin-dir DIR] [--check] [--verbose] [--help]\n");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		char left[40];
		snprintf(left, sizeof(left), "--%s%s%s", flags[i].name, flags[i].arg ? " " : "",
			 flags[i].arg ? flags[i].arg : "");
		fprintf(f, "  %-18s %s\n", left, flags[i].help);
	}
	fprintf(f,
		"signals: SIGHUP reloads FILE (a bad file is refused, the running config stays); "
		"SIGTERM drains in-flight requests, then exits\n");
}

/* The pin dir the admission code (gateway/admit.c) reads; kept here until it does. */
const char *gw_pin_dir = "/sys/fs/bpf/leaky";

int main(int argc, char **argv)
{
	int pin_dir_set = 0;
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "check", no_argument, NULL, 'k' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_proxy_opts o = { 0 };
	struct gw_config *cfg;
	char err[512];
	int opt, check = 0;

	while ((opt = getopt_long(argc, argv, "l:c:w:p:m:kvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			o.listen = optarg;
			break;
		case 'c':
			o.config_path = optarg;
			break;
		case 'w': {
			char *end;
			unsigned long n;
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (*end || !*optarg || errno || n < 1 || n > 256) {
				fprintf(stderr,
					"leaky-gateway: --workers wants 1..256, got \"%s\"\n",
					optarg);
				return 2;
			}
			o.workers = n;
			break;
		}
		case 'm': {
			struct sockaddr_storage ss;
			socklen_t sl;
			if (gw_parse_listen(optarg, &ss, &sl)) {
				fprintf(stderr,
					"leaky-gateway: --metrics wants HOST:PORT or [V6]:PORT, got "
					"\"%s\"\n",
					optarg);
				return 2;
			}
			o.metrics = optarg;
			break;
		}
		case 'p':
			gw_pin_dir = optarg;
			pin_dir_set = 1;
			break;
		case 'k':
			check = 1;
			break;
		case 'v':
			lt_log_level = lt_log_level < LT_LOG_DEBUG ? LT_LOG_DEBUG : LT_LOG_TRACE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leaky-gateway: unexpected argument \"%s\" (see --help)\n",
			argv[optind]);
		return 2;
	}
	/* route-kind ops: the lead's gateway/llm_route.c registers its LLM ops here */
	gw_routes_set_ops(GW_ROUTE_LLM, &gw_llm_ops);
	gw_routes_set_ops(GW_ROUTE_NATIVE, &gw_llm_ops);
	if (gw_config_load(o.config_path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "leaky-gateway: %s\n", err);
		return 2;
	}
	if (o.listen) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (gw_parse_listen(o.listen, &ss, &sl)) {
			fprintf(stderr, "leaky-gateway: bad --listen \"%s\" (want HOST:PORT)\n",
				o.listen);
			gw_config_put(cfg);
			return 2;
		}
	}
	if (!check && geteuid() == 0)
		/*
		 * Not refused: binding a port below 1024 without systemd's
		 * AmbientCapabilities needs it, and scripts run it so. But it
		 * needs no privilege at all (README "Least privilege").
		 */
		lt_log(LT_LOG_WARN,
		       "leaky-gateway: running as root, which it does not need: run it as a user "
		       "in the agent's --gateway-group (README \"Least privilege\")");
	if (!check) {
		struct gw_llm_opts lo;

		gw_llm_opts_parse(cfg->admission, &lo, err, sizeof(err)); /* validated at load */
		if (pin_dir_set)
			snprintf(lo.pin_dir, sizeof(lo.pin_dir), "%s", gw_pin_dir);
		if (gw_llm_init(&lo, err, sizeof(err))) {
			fprintf(stderr, "leaky-gateway: %s\n", err);
			gw_config_put(cfg);
			return 2;
		}
		gw_health_publish(lo.pin_dir);
	}
	if (check) {
		printf("%s: ok: %u routes, %u services, %u providers, %u model rules\n",
		       cfg->source, cfg->nroutes, cfg->nservices, cfg->nproviders, cfg->nmodels);
		gw_config_put(cfg);
		return 0;
	}
	return gw_proxy_run(&o, cfg);
}
