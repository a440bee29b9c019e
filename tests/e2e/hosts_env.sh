# hosts_env.sh - sourced by the suites (and benches) that run several agents as several hosts:
# tests/e2e/test_config_sync.sh, and through tests/e2e/global_env.sh test_global.sh and
# scripts/bench_global.sh. Set before sourcing:
#   HOSTS   host letters, e.g. "a b" or "a b c" (each is host-<letter>)
#   HNAME   a short name for namespaces, dirs and topics
#   HTOPIC  the second topic's kind ("config", "global"): XTOPIC=lt.<kind>.<HNAME>.<pid>, 3
#           partitions, beside UTOPIC (the usage events, 1 partition)
#   HMORE   more topics for the cluster, NAME:PARTITIONS each (optional; global_env.sh: the grants)
#   AGENT, MOCK  other builds (the bench uses release ones)
# One leaky-agent per host, each in its own network namespace, pin dir, state dir, on one
# librdkafka mock cluster (tests/e2e/lt_kafka_mock) in the first host's namespace; the others
# reach it through a socat that listens on their loopback and connects from the first
# namespace. Nothing listens on the host's loopback. The caller writes $WORK/<h>.json (BOOT is
# the cluster's bootstrap) before start.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
MOCK=${MOCK:-$ROOT/build/san/tests/lt_kafka_mock}
ID=$$
WORK=$(mktemp -d /tmp/lt-$HNAME-work-XXXXXX)
PORT=19090
UTOPIC=lt.usage.$HNAME.$ID
XTOPIC=lt.$HTOPIC.$HNAME.$ID
FIRST=${HOSTS%% *}
declare -A NS PIN STATE PID LOG FWD TOK
for h in $HOSTS; do
	NS[$h]=lt$HNAME$h-$ID
	PIN[$h]=/sys/fs/bpf/lt-$HNAME$h-$ID
	STATE[$h]=$(mktemp -d /tmp/lt-$HNAME$h-XXXXXX)
	LOG[$h]=$WORK/agent-$h.log
	PID[$h]=
	FWD[$h]=
done
MOCK_PID= BOOT= MOCK_FD=

hosts_cleanup() {
	local h
	for h in $HOSTS; do [ -n "${PID[$h]}" ] && kill -9 "${PID[$h]}" 2>/dev/null; done
	for h in $HOSTS; do [ -n "${FWD[$h]}" ] && kill "${FWD[$h]}" 2>/dev/null; done
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	wait 2>/dev/null
	for h in $HOSTS; do
		"$AGENT" --pin-dir "${PIN[$h]}" --state-dir "${STATE[$h]}" detach >/dev/null 2>&1
		ip netns del "${NS[$h]}" 2>/dev/null
		rm -rf "${PIN[$h]}" "${STATE[$h]}"
	done
	rm -rf "$WORK"
}
trap hosts_cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP this e2e suite attaches BPF: needs root"
	exit 77
fi
command -v kcat >/dev/null || { echo "Bail out! kcat is missing (scripts/deps.sh installs it)"; exit 1; }
command -v socat >/dev/null || { echo "Bail out! socat is missing (scripts/deps.sh installs it)"; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
for h in $HOSTS; do
	ip netns add "${NS[$h]}" && ip -n "${NS[$h]}" link set lo up || { echo "Bail out! netns"; exit 1; }
done
inns() { local h=$1; shift; nsenter --net=/run/netns/${NS[$h]} "$@"; }
now_ms() { date +%s%3N; }

# ---- the cluster (in the first host's namespace), and the others' way to it
. "$(dirname "${BASH_SOURCE[0]}")/mock_env.sh"
MOCK_ARGS=(--topic "$UTOPIC:1" --topic "$XTOPIC:3")
for t in ${HMORE:-}; do MOCK_ARGS+=(--topic "$t"); done
mock_start "${NS[$FIRST]}" "${MOCK_ARGS[@]}" || { echo "Bail out! the mock cluster did not start"; exit 1; }
MPORT=${BOOT##*:}
for h in $HOSTS; do
	[ "$h" = "$FIRST" ] && continue
	nsenter --net=/run/netns/${NS[$h]} socat TCP-LISTEN:"$MPORT",bind=127.0.0.1,fork,reuseaddr \
		SYSTEM:"nsenter --net=/run/netns/${NS[$FIRST]} socat - TCP\:127.0.0.1\:$MPORT" \
		2>"$WORK/fwd-$h.err" &
	FWD[$h]=$!
done

# start HOST: the agent on $WORK/<h>.json, up to its health check; TOK[h] an ADMIN token of it
start() {
	local h=$1
	nsenter --net=/run/netns/${NS[$h]} "$AGENT" --pin-dir "${PIN[$h]}" --state-dir "${STATE[$h]}" attach --iface lo \
		--api 127.0.0.1:$PORT --config "$WORK/$h.json" >>"${LOG[$h]}" 2>&1 &
	PID[$h]=$!
	for _ in $(seq 200); do
		if inns "$h" curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
			TOK[$h]=$("$AGENT" --state-dir "${STATE[$h]}" mint-token --sub admin-1 \
				--roles ADMIN --ttl 1h)
			return 0
		fi
		kill -0 "${PID[$h]}" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "${LOG[$h]}" >&2
	return 1
}
# stop HOST [SIGNAL]
stop() {
	kill -"${2:-TERM}" "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	PID[$1]=
}
# req HOST METHOD PATH [BODY]: as that host's admin; STATUS, body in $RB
RB=$WORK/body
req() {
	local h=$1 m=$2 p=$3 body=${4-}
	local args=(-s -X "$m" -o "$RB" -w '%{http_code}' -H "Authorization: Bearer ${TOK[$h]}")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	STATUS=$(inns "$h" curl "${args[@]}" "http://127.0.0.1:$PORT$p")
}
jqb() { jq -r "$1" "$RB"; }
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}

# hosts_no_error: one TAP line per host, ok when its agent logged no error (ASan/UBSan included)
hosts_no_error() {
	local h
	for h in $HOSTS; do
		if grep -E 'ERROR|AddressSanitizer|runtime error' "${LOG[$h]}" >&2; then
			notok "agent $h logged no error"
		else
			ok "agent $h logged no error"
		fi
	done
}

