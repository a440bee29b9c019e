// SPDX-License-Identifier: MIT
/*
 * lt_kafka_mock - a Kafka cluster for the tests: librdkafka's mock cluster
 * (rd_kafka_mock_cluster_new) served over real TCP on 127.0.0.1, so the
 * agent and kcat talk to it as to any broker. No Kafka broker package is
 * reachable here; the mock speaks the protocol the producer needs
 * (metadata, InitProducerId, idempotent Produce, Fetch).
 *
 *   lt_kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...
 *
 * Prints "bootstrap=HOST:PORT,..." on stdout, then runs until killed.
 * Commands, one a line on stdin (each answered "ok ..." or "error ..."):
 *   down ID | up ID        a broker (1..N) refuses connections / serves again
 *   down all | up all      every broker
 *   err COUNT CODE         the next COUNT Produce requests fail with Kafka error CODE
 *                          (e.g. 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT,
 *                          19 NOT_ENOUGH_REPLICAS: retriable)
 *   rtt ID MS              a broker answers MS milliseconds late
 * Signals: SIGUSR1 = down all, SIGUSR2 = up all (for scripts without a pipe).
 * End of stdin is not the end: it keeps serving until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t lt_stop, lt_down, lt_up;

static void lt_on_signal(int sig)
{
	if (sig == SIGUSR1)
		lt_down = 1;
	else if (sig == SIGUSR2)
		lt_up = 1;
	else
		lt_stop = 1;
}

static void lt_all(rd_kafka_mock_cluster_t *mc, int n, int up)
{
	int i;

	for (i = 1; i <= n; i++) {
		if (up)
			rd_kafka_mock_broker_set_up(mc, i);
		else
			rd_kafka_mock_broker_set_down(mc, i);
	}
}

static void lt_command(rd_kafka_mock_cluster_t *mc, int n, char *line)
{
	char what[16] = "", arg[16] = "";
	long a = 0, b = 0;
	int f;

	line[strcspn(line, "\r\n")] = '\0';
	f = sscanf(line, "%15s %15s %ld", what, arg, &b);
	if (f < 1)
		return;
	a = strtol(arg, NULL, 10);
	if ((!strcmp(what, "down") || !strcmp(what, "up")) && f >= 2) {
		int up = what[0] == 'u';

		if (!strcmp(arg, "all")) {
			lt_all(mc, n, up);
		} else if (a >= 1 && a <= n) {
			if (up)
				rd_kafka_mock_broker_set_up(mc, (int32_t)a);
			else
				rd_kafka_mock_broker_set_down(mc, (int32_t)a);
		} else {
			printf("error no broker %s\n", arg);
			return;
		}
	} else if (!strcmp(what, "err") && f == 3 && a > 0 && b > 0) {
		rd_kafka_resp_err_t *e = calloc((size_t)a, sizeof(*e));
		long i;

		if (!e) {
			printf("error out of memory\n");
			return;
		}
		for (i = 0; i < a; i++)
			e[i] = (rd_kafka_resp_err_t)b;
		rd_kafka_mock_push_request_errors_array(mc, 0 /* Produce */, (size_t)a, e);
		free(e);
	} else if (!strcmp(what, "rtt") && f == 3 && a >= 1 && a <= n && b >= 0) {
		rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
	} else {
		printf("error unknown command: %s\n", line);
		return;
	}
	printf("ok %s\n", line);
}

int main(int argc, char **argv)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *rk;
	char err[512], line[256], *nl;
	int i, n = 1, in_open = 1;
	size_t len = 0;
	ssize_t r;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
			n = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
			i++; /* created below, once the cluster exists */
		} else {
			fprintf(stderr,
				"usage: lt_kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...\n");
			return 2;
		}
	}
	if (n < 1 || n > 9) {
		fprintf(stderr, "lt_kafka_mock: --brokers 1..9\n");
		return 2;
	}
	/* the mock's host handle; a client handle needs no brokers of its own */
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "lt_kafka_mock: %s\n", err);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, n);
	if (!mc) {
		fprintf(stderr, "lt_kafka_mock: cannot start the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	for (i = 1; i < argc; i++) {
		char *colon;

		if (strcmp(argv[i], "--topic"))
			continue;
		colon = strchr(argv[++i], ':');
		if (colon)
			*colon = '\0';
		rd_kafka_mock_topic_create(mc, argv[i], colon ? atoi(colon + 1) : 1, 1);
	}
	signal(SIGTERM, lt_on_signal);
	signal(SIGINT, lt_on_signal);
	signal(SIGUSR1, lt_on_signal);
	signal(SIGUSR2, lt_on_signal);
	printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	while (!lt_stop) {
		if (lt_down) {
			lt_down = 0;
			lt_all(mc, n, 0);
			printf("ok down all\n");
		}
		if (lt_up) {
			lt_up = 0;
			lt_all(mc, n, 1);
			printf("ok up all\n");
		}
		if (!in_open) {
			usleep(100 * 1000);
			continue;
		}
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		/* read(2), not stdio: a buffered second line would never wake poll */
		r = read(0, line + len, sizeof(line) - 1 - len);
		if (r <= 0) {
			in_open = r < 0 && errno == EINTR;
			continue;
		}
		len += (size_t)r;
		line[len] = '\0';
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			lt_command(mc, n, line);
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
		if (len == sizeof(line) - 1)
			len = 0; /* a line too long for any command */
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
