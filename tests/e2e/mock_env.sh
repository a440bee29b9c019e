# mock_env.sh - librdkafka's mock cluster (tests/e2e/lt_kafka_mock) for the suites that need one,
# sourced by kafka_env.sh (one agent) and hosts_env.sh (N agents). Needs WORK and MOCK set.

# mock_start NETNS ARGS...: the cluster in that namespace with ARGS (--topic, --brokers), its
# commands through fd MOCK_FD, MOCK_PID, BOOT = its bootstrap servers; 1 if not up within 5 s
mock_start() {
	local ns=$1
	shift
	mkfifo "$WORK/mock.in"
	nsenter --net=/run/netns/$ns "$MOCK" "$@" <"$WORK/mock.in" >"$WORK/mock.out" \
		2>"$WORK/mock.err" &
	MOCK_PID=$!
	exec {MOCK_FD}>"$WORK/mock.in"
	for _ in $(seq 50); do
		BOOT=$(sed -n 's/^bootstrap=//p' "$WORK/mock.out")
		[ -n "$BOOT" ] && return 0
		sleep 0.1
	done
	return 1
}

# mock CMD: one command to the cluster (down all, up all, err N CODE ...), and wait for its "ok"
mock() {
	local n
	n=$(grep -c '^ok' "$WORK/mock.out")
	echo "$*" >&"$MOCK_FD"
	for _ in $(seq 50); do
		[ "$(grep -c '^ok' "$WORK/mock.out")" -gt "$n" ] && return 0
		sleep 0.1
	done
	return 1
}
