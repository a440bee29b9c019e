// SPDX-License-Identifier: MIT
/* main.c - leaky-agent's command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "agent.h"
#include "config.h"
#include "log.h"

int lt_cmd_bans(struct lt_opts *o);

static const char lt_usage[] =
	"Usage: leaky-agent COMMAND [OPTIONS]\n"
	"\n"
	"Kernel-enforced leaky-bucket rate limiting (XDP/TC + pinned BPF maps).\n"
	"\n"
	"Commands:\n"
	"  attach            load, pin and attach; stay in the foreground as the daemon\n"
	"  detach            detach this install's programs, remove its pins (see --keep-maps)\n"
	"  status            attached? ready? each interface's program, map fill, counters\n"
	"  policy set|del|list [PREFIX]   per-source-prefix policy (XDP buckets)\n"
	"  ban PREFIX        put a prefix in the penalty box (--for, --reason)\n"
	"  unban PREFIX      take it out\n"
	"  bans              list the penalty box\n"
	"  allow add|del|list [PREFIX]    allowlist (passes without metering)\n"
	"  dry-run on|off    count would-be drops but pass them\n"
	"  check-config      validate --config (or the embedded default) and exit\n"
	"  mint-token        print an HS256 JWT (--sub, --roles, --orgs, --ttl) signed with\n"
	"                    the agent's secret: LT_JWT_SECRET or <state-dir>/jwt-secret\n"
	"  signin-link       print a new one-time ADMIN sign-in link to the dashboard\n"
	"                    (http://<api>/ui/#code=..., one use, 10 minutes; attach prints\n"
	"                    one at start); needs the state dir (--api, --config for the\n"
	"                    address)\n"
	"  print-config      print the embedded default config\n"
	"\n"
	"Options:\n"
	"  -i, --iface IF        attach/detach: interface, repeatable (attach default: lo)\n"
	"  -m, --mode MODE       attach: xdp (native, falls back to generic), xdp-native,\n"
	"                        xdp-generic or tc (TC ingress)          [xdp]\n"
	"  -c, --config FILE     JSON config (default: embedded, see print-config)\n"
	"      --api ADDR:PORT   attach, signin-link: REST API address    [127.0.0.1:9090]\n"
	"      --gateway-group G attach: the group that may open the gateway's pins\n"
	"                        (0660; lt_apikey 0640); config gateway_group  [leaky]\n"
	"                        (a missing default group leaves them root-only)\n"
	"      --pin-dir DIR     where maps are pinned         [" LT_PIN_DIR_DEFAULT "]\n"
	"      --state-dir DIR   lock file and state           [" LT_STATE_DIR_DEFAULT "]\n"
	"      --keep-maps       detach: keep the pinned maps (bucket/penalty state)\n"
	"      --events          attach: print sampled decisions as JSON lines on stdout\n"
	"      --json            status: machine-readable output\n"
	"      --for DURATION    ban: how long (10m, 2h, 1d, forever)  [1h]\n"
	"      --reason R        ban: manual, abuse or auth             [manual]\n"
	"      --conn CAP:RATE   policy set: new TCP connections, e.g. 20:10/s, or unlimited\n"
	"      --packets CAP:RATE  policy set: packets, e.g. 2000:1000/s, or unlimited\n"
	"      --aggregate-v4 N  policy set: bucket per /N IPv4 source prefix (1..32)\n"
	"      --aggregate-v6 N  policy set: bucket per /N IPv6 source prefix (1..128)\n"
	"      --sub ID          mint-token: subject (user UUID)\n"
	"      --roles A,B       mint-token: roles claim            [USER]\n"
	"      --orgs X,Y        mint-token: orgs claim (org UUIDs)\n"
	"      --ttl DURATION    mint-token: lifetime               [1h]\n"
	"  -v, --verbose         more log output (repeat for libbpf's)\n"
	"  -h, --help            this text\n"
	"\n"
	"Signals (attach): SIGTERM/SIGINT exit and leave enforcement running;\n"
	"SIGHUP reloads --config.\n"
	"\n"
	"Usage events to Apache Kafka (config section \"kafka\", read at start; off by default):\n"
	"  kafka.enabled            true: usage records, consume decisions and sampled kernel\n"
	"                           decisions become CloudEvents (docs/events/usage.v1.md)\n"
	"  kafka.brokers            bootstrap servers, \"host:port,...\" (required when enabled)\n"
	"  kafka.topic              the topic                          [leaky.usage.v1]\n"
	"  kafka.config_topic       admin changes to and from every host (config sync;\n"
	"                           docs/events/config.v1.md), \"\" = off  [leaky.config.v1]\n"
	"  kafka.source             ce_source and ce_id prefix         [the host name]\n"
	"  kafka.outbox_max_events  events kept while Kafka is away; then the oldest are\n"
	"                           dropped and counted                [1000000]\n"
	"  kafka.message_timeout    a send not acknowledged in this is sent again   [30s]\n"
	"  Events wait in an outbox in <state-dir>/requests.db until the broker acknowledges\n"
	"  them (idempotent producer, acks=all); Kafka down never slows admission.\n"
	"  Config sync: every admin change (tiers, org quotas, providers, API key hashes,\n"
	"  penalties, source policies) goes to kafka.config_topic through an outbox in\n"
	"  <state-dir>/leaky.db, and every host applies every host's changes, last writer\n"
	"  wins; GET /api/v1/sync/status shows the version applied and the lag per host.\n"
	"\n"
	"Usage analytics (config section \"analytics\"; GET /api/v1/analytics/usage, usage.csv, top):\n"
	"  analytics.minutes        per-minute rollups kept, then compacted into hours   [2d]\n"
	"  analytics.hours          per-hour rollups kept, then compacted into days      [90d]\n"
	"  analytics.days           per-day rollups kept, then deleted                   [400d]\n"
	"\n"
	"Request log (config section \"token\", read at start; GET /api/v1/logs; requests.db):\n"
	"  token.request_log_rows          newest rows kept                             [100000]\n"
	"  token.request_log_max_age       and none older than this                     [30d]\n"
	"  token.request_log_max_bytes     and requests.db no larger, 1MiB..1TiB (the oldest\n"
	"                                  rows go first; after a full disk, less)      [256MiB]\n"
	"  token.request_log_consume_rate  consume decisions kept as rows a second      [1000]\n"
	"                                  (0 = all)\n";

enum {
	OPT_PIN_DIR = 256,
	OPT_STATE_DIR,
	OPT_KEEP_MAPS,
	OPT_EVENTS,
	OPT_JSON,
	OPT_FOR,
	OPT_REASON,
	OPT_CONN,
	OPT_PACKETS,
	OPT_AGG4,
	OPT_AGG6,
	OPT_API,
	OPT_SUB,
	OPT_ROLES,
	OPT_ORGS,
	OPT_TTL,
	OPT_GW_GROUP,
};

static int lt_parse_int(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < 1 || v > 128)
		return -1;
	*out = (int)v;
	return 0;
}

static int lt_dispatch(const char *cmd, struct lt_opts *o)
{
	static const struct {
		const char *name;
		int (*fn)(struct lt_opts *o);
	} cmds[] = {
		{ "attach", lt_cmd_attach },
		{ "detach", lt_cmd_detach },
		{ "status", lt_cmd_status },
		{ "policy", lt_cmd_policy },
		{ "ban", lt_cmd_ban },
		{ "unban", lt_cmd_unban },
		{ "bans", lt_cmd_bans },
		{ "allow", lt_cmd_allow },
		{ "dry-run", lt_cmd_dry_run },
		{ "check-config", lt_cmd_check_config },
		{ "mint-token", lt_cmd_mint_token },
		{ "signin-link", lt_cmd_signin_link },
	};
	unsigned int i;

	if (!strcmp(cmd, "attach") && !o->nifaces)
		o->ifaces[o->nifaces++] = "lo";
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmd, cmds[i].name))
			return cmds[i].fn(o);
	if (!strcmp(cmd, "print-config")) {
		fputs(lt_default_config, stdout);
		return 0;
	}
	if (!strcmp(cmd, "help")) {
		fputs(lt_usage, stdout);
		return 0;
	}
	fprintf(stderr, "leaky-agent: unknown command '%s'. Try 'leaky-agent --help'.\n", cmd);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "mode", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, OPT_PIN_DIR },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "keep-maps", no_argument, NULL, OPT_KEEP_MAPS },
		{ "events", no_argument, NULL, OPT_EVENTS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "conn", required_argument, NULL, OPT_CONN },
		{ "packets", required_argument, NULL, OPT_PACKETS },
		{ "aggregate-v4", required_argument, NULL, OPT_AGG4 },
		{ "aggregate-v6", required_argument, NULL, OPT_AGG6 },
		{ "api", required_argument, NULL, OPT_API },
		{ "sub", required_argument, NULL, OPT_SUB },
		{ "roles", required_argument, NULL, OPT_ROLES },
		{ "orgs", required_argument, NULL, OPT_ORGS },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "gateway-group", required_argument, NULL, OPT_GW_GROUP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct lt_opts o = { .pin_dir = LT_PIN_DIR_DEFAULT, .state_dir = LT_STATE_DIR_DEFAULT };
	const char *cmd;
	char **words;
	int c, rc;

	/*
	 * Before any connection: no global memory statistics. With them on (the
	 * default) every SQLite allocation takes one process-wide mutex, a tenth
	 * of the request log writer's CPU at full consume load; nothing reads them.
	 */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	while ((c = getopt_long(argc, argv, "+i:m:c:vh", longopts, NULL)) != -1 || optind < argc) {
		if (c == -1) {
			/* a positional word: keep it, go on parsing options after it */
			if (o.nargs == 0 && !o.args)
				o.args = calloc((size_t)argc, sizeof(char *));
			if (!o.args)
				return 1;
			o.args[o.nargs++] = argv[optind++];
			continue;
		}
		switch (c) {
		case 'i':
			if (o.nifaces == LT_MAX_IFACES) {
				fprintf(stderr, "leaky-agent: at most %d interfaces\n",
					LT_MAX_IFACES);
				return 2;
			}
			o.ifaces[o.nifaces++] = optarg;
			break;
		case 'm':
			if (lt_mode_req_parse(optarg, &o.mode)) {
				fprintf(stderr, "leaky-agent: --mode must be xdp, xdp-native, "
						"xdp-generic or tc\n");
				return 2;
			}
			break;
		case 'c':
			o.config = optarg;
			break;
		case OPT_PIN_DIR:
			o.pin_dir = optarg;
			break;
		case OPT_STATE_DIR:
			o.state_dir = optarg;
			break;
		case OPT_KEEP_MAPS:
			o.keep_maps = 1;
			break;
		case OPT_EVENTS:
			o.events = 1;
			break;
		case OPT_JSON:
			o.json = 1;
			break;
		case OPT_FOR:
			o.ban_for = optarg;
			break;
		case OPT_REASON:
			o.ban_reason = optarg;
			break;
		case OPT_CONN:
			o.conn = optarg;
			break;
		case OPT_PACKETS:
			o.packets = optarg;
			break;
		case OPT_AGG4:
		case OPT_AGG6:
			if (lt_parse_int(optarg, c == OPT_AGG4 ? &o.agg_v4 : &o.agg_v6)) {
				fprintf(stderr, "leaky-agent: %s takes a prefix length\n",
					c == OPT_AGG4 ? "--aggregate-v4" : "--aggregate-v6");
				return 2;
			}
			break;
		case OPT_API:
			o.api = optarg;
			break;
		case OPT_SUB:
			o.sub = optarg;
			break;
		case OPT_ROLES:
			o.roles = optarg;
			break;
		case OPT_ORGS:
			o.orgs = optarg;
			break;
		case OPT_TTL:
			o.ttl = optarg;
			break;
		case OPT_GW_GROUP:
			o.gateway_group = optarg;
			break;
		case 'v':
			lt_log_level++;
			break;
		case 'h':
			fputs(lt_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'leaky-agent --help'.\n");
			return 2;
		}
	}
	if (!o.nargs) {
		fputs(lt_usage, stderr);
		return 2;
	}
	lt_log_libbpf();
	words = o.args;
	cmd = o.args[0];
	o.args++;
	o.nargs--;
	rc = lt_dispatch(cmd, &o);
	free(words);
	return rc;
}
