# kafka_env.sh - sourced by the test_kafka_* suites after setting TOPIC: agent_env.sh (one agent
# in a private network namespace, pin dir, state dir, port), plus a Kafka mock cluster
# (tests/e2e/lt_kafka_mock) in the same namespace, a config with kafka on, and kcat helpers.
# Everything runs inside the namespace: nothing listens on the host's loopback.
KAFKA_EXTRA=${EXTRA_CLEANUP:-:}
EXTRA_CLEANUP=kafka_cleanup
. "$(dirname "${BASH_SOURCE[0]}")/agent_env.sh"
MOCK=$ROOT/build/san/tests/lt_kafka_mock
TOOL=$ROOT/build/san/tests/lt_reqlog_tool
KTOPIC=lt.usage.$ID
MOCK_PID= MOCK_FD= BOOT=
CFG=$WORK/agent.json
M=$WORK/metrics

kafka_cleanup() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	$KAFKA_EXTRA
}

command -v kcat >/dev/null || { echo "Bail out! kcat is missing (scripts/deps.sh installs it)"; exit 1; }

. "$(dirname "${BASH_SOURCE[0]}")/mock_env.sh"
# start_mock [BROKERS]: the cluster in the agent's namespace (mock_env.sh)
start_mock() {
	mock_start "$NS" --brokers "${1:-1}" --topic "$KTOPIC:2" && return 0
	echo "Bail out! the mock cluster did not start" >&2
	return 1
}

# kafka_config [EXTRA_JSON]: the embedded config with a kafka section (and EXTRA merged in)
kafka_config() {
	"$AGENT" print-config | jq --arg b "${BROKERS:-$BOOT}" --arg t "$KTOPIC" \
		--argjson x "${1:-{\}}" \
		'.kafka = ({enabled: true, brokers: $b, topic: $t, source: "host-a",
			message_timeout: "2s"} + $x) | .event_sample_every = 1' >"$CFG"
}

met() { inns curl -s -o "$M" "$BASE/metrics"; }
v() { awk -v k="$1" '$1 == k { print $2 }' "$M"; }
# wait_for 'name' VALUE [TRIES]: until the scrape shows it (0.1 s a try; default 20 s)
wait_for() {
	for _ in $(seq "${3:-200}"); do
		met
		[ "$(v "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	echo "# $1 is $(v "$1"), want $2" >&2
	return 1
}
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
put() { timeout 30 "$TOOL" put "$PIN" "$@" >/dev/null; }

# consume FILE: every message of the topic, one JSON line each (kcat as an independent
# consumer): {"key", "headers": {name: value}, "value"}
consume() {
	timeout 30 nsenter --net=/run/netns/$NS kcat -C -b "$BOOT" -t "$KTOPIC" -e -q \
		-f '%k\t%h\t%s\n' 2>"$WORK/kcat.err" |
		jq -R -c 'split("\t") | {key: .[0],
			headers: (.[1] | split(",") | map(split("=")) |
				map({key: .[0], value: (.[1:] | join("="))}) | from_entries),
			value: (.[2:] | join("\t") | fromjson)}' >"$1"
}
# distinct FILE: events after deduplication on ce_source + ce_id
distinct() { jq -r '.headers.ce_source + " " + .headers.ce_id' "$1" | sort -u | wc -l; }
