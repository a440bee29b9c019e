# global_env.sh - sourced by tests/e2e/test_global.sh and scripts/bench_global.sh after setting
# GHOSTS (host letters, e.g. "a b" or "a b c") and GNAME (a short name for namespaces and
# dirs): one leaky-agent per host, each in its own network namespace, pin dir, state dir, on one
# librdkafka mock cluster (tests/e2e/lt_kafka_mock) in the first host's namespace; the others
# reach it through a socat that listens on their loopback and connects from the first
# namespace (as tests/e2e/test_config_sync.sh does). Nothing listens on the host's loopback.
# Set AGENT, MOCK, GLOAD before sourcing to use other builds (the bench uses release ones).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
MOCK=${MOCK:-$ROOT/build/san/tests/lt_kafka_mock}
GLOAD=${GLOAD:-$ROOT/build/san/tests/lt_gload}
ID=$$
WORK=$(mktemp -d /tmp/lt-$GNAME-work-XXXXXX)
PORT=19090
UTOPIC=lt.usage.$GNAME.$ID
GTOPIC=lt.global.$GNAME.$ID
FIRST=${GHOSTS%% *}
declare -A NS PIN STATE PID LOG FWD TOK
for h in $GHOSTS; do
	NS[$h]=lt$GNAME$h-$ID
	PIN[$h]=/sys/fs/bpf/lt-$GNAME$h-$ID
	STATE[$h]=$(mktemp -d /tmp/lt-$GNAME$h-XXXXXX)
	LOG[$h]=$WORK/agent-$h.log
	PID[$h]=
	FWD[$h]=
done
MOCK_PID= BOOT= MOCK_FD=

genv_cleanup() {
	local h
	for h in $GHOSTS; do [ -n "${PID[$h]}" ] && kill -9 "${PID[$h]}" 2>/dev/null; done
	for h in $GHOSTS; do [ -n "${FWD[$h]}" ] && kill "${FWD[$h]}" 2>/dev/null; done
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	wait 2>/dev/null
	for h in $GHOSTS; do
		"$AGENT" --pin-dir "${PIN[$h]}" --state-dir "${STATE[$h]}" detach >/dev/null 2>&1
		ip netns del "${NS[$h]}" 2>/dev/null
		rm -rf "${PIN[$h]}" "${STATE[$h]}"
	done
	rm -rf "$WORK"
}
trap genv_cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP this e2e suite attaches BPF: needs root"
	exit 77
fi
command -v kcat >/dev/null || { echo "Bail out! kcat is missing (scripts/deps.sh installs it)"; exit 1; }
command -v socat >/dev/null || { echo "Bail out! socat is missing (scripts/deps.sh installs it)"; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
for h in $GHOSTS; do
	ip netns add "${NS[$h]}" && ip -n "${NS[$h]}" link set lo up || { echo "Bail out! netns"; exit 1; }
done
inns() { local h=$1; shift; nsenter --net=/run/netns/${NS[$h]} "$@"; }
now_ms() { date +%s%3N; }

# ---- the cluster (in the first host's namespace), and the others' way to it
mkfifo "$WORK/mock.in"
nsenter --net=/run/netns/${NS[$FIRST]} "$MOCK" --topic "$UTOPIC:1" --topic "$GTOPIC:3" <"$WORK/mock.in" \
	>"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
exec {MOCK_FD}>"$WORK/mock.in"
for _ in $(seq 50); do
	BOOT=$(sed -n 's/^bootstrap=//p' "$WORK/mock.out")
	[ -n "$BOOT" ] && break
	sleep 0.1
done
[ -n "$BOOT" ] || { echo "Bail out! the mock cluster did not start"; exit 1; }
MPORT=${BOOT##*:}
for h in $GHOSTS; do
	[ "$h" = "$FIRST" ] && continue
	nsenter --net=/run/netns/${NS[$h]} socat TCP-LISTEN:"$MPORT",bind=127.0.0.1,fork,reuseaddr \
		SYSTEM:"nsenter --net=/run/netns/${NS[$FIRST]} socat - TCP\:127.0.0.1\:$MPORT" \
		2>"$WORK/fwd-$h.err" &
	FWD[$h]=$!
done

# mock CMD: one command to the cluster (down all, up all, ...), and wait for its "ok"
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

# gconfig JQ_OBJECT: each host's config, the global section as given (topic filled in)
gconfig() {
	local h
	for h in $GHOSTS; do
		"$AGENT" print-config | jq --arg b "$BOOT" --arg t "$UTOPIC" --arg g "$GTOPIC" \
			--arg s "host-$h" \
			'.kafka = {enabled: true, brokers: $b, topic: $t, config_topic: "",
				source: $s, message_timeout: "2s"} | .global = ({topic: $g} + '"$1"')' \
			>"$WORK/$h.json"
	done
}

start() { # HOST: the agent, up to its health check
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
gstatus() { req "$1" GET /api/v1/global/status; }
# until_is HOST JQ WANT [TRIES]: polls the global status (0.05 s a try; default 30 s)
until_is() {
	local i
	for ((i = 0; i < ${4:-600}; i++)); do
		gstatus "$1"
		[ "$(jqb "$2" 2>/dev/null)" = "$3" ] && return 0
		sleep 0.05
	done
	echo "# $1: $2 is $(jqb "$2" 2>/dev/null), want $3; status:" >&2
	jq -c 'del(.buckets)' "$RB" | sed 's/^/# /' >&2
	return 1
}
# quota HOST ORG PROVIDER CAPACITY RATE: an org quota, set on that host
quota() {
	req "$1" PUT "/api/v1/admin/orgs/$2/quotas/$3" "{\"capacity\":$4,\"rate\":\"$5\"}"
	[ "$STATUS" = 200 ] || { echo "# quota on $1: $STATUS $(cat "$RB")" >&2; return 1; }
}
# consume HOST ORG PROVIDER TOKENS: one consume as a user of ORG; STATUS
consume() {
	local tok
	tok=$("$AGENT" --state-dir "${STATE[$1]}" mint-token --sub 00000000-0000-0000-0000-000000000001 \
		--roles USER --orgs "$2" --ttl 1h)
	STATUS=$(inns "$1" curl -s -o "$RB" -w '%{http_code}' -H "Authorization: Bearer $tok" \
		-H 'Content-Type: application/json' --data-binary \
		"{\"userId\":\"00000000-0000-0000-0000-000000000001\",\"orgId\":\"$2\",\"provider\":\"$3\",\"tokens\":$4}" \
		"http://127.0.0.1:$PORT/api/v1/tokens/consume")
}
# load HOST ORG PROVIDER TOKENS RATE SECONDS OUT: lt_gload from that host's namespace
load() {
	local tok
	tok=$("$AGENT" --state-dir "${STATE[$1]}" mint-token --sub 00000000-0000-0000-0000-000000000001 \
		--roles USER --orgs "$2" --ttl 1h)
	inns "$1" "$GLOAD" -a 127.0.0.1:$PORT -H "Authorization: Bearer $tok" -c 4 -r "$5" -d "$6" \
		-b "{\"userId\":\"00000000-0000-0000-0000-000000000001\",\"orgId\":\"$2\",\"provider\":\"$3\",\"tokens\":$4}" \
		>"$7"
}
# overshoot_run ORG PROVIDER C R_PER_S COST RATE SECONDS: every host drives the bucket at once,
# then tests/e2e/global_bound.py compares the overshoot with the formula; its JSON in $WORK/bound.json
overshoot_run() {
	local org=$1 prov=$2 cap=$3 rate=$4 cost=$5 rps=$6 secs=$7 h end n pids=() args=()
	local key="o/$2/$1"
	for h in $GHOSTS; do req "$h" POST /api/v1/global/measure; done
	for h in $GHOSTS; do
		load "$h" "$org" "$prov" "$cost" "$rps" "$secs" "$WORK/load-$h.txt" &
		pids+=($!)
	done
	wait "${pids[@]}"
	end=$(now_ms)
	n=$(($(wc -w <<<"$GHOSTS") - 1))
	# every host has applied a record of every other's stream stamped after the run: the
	# last admissions' unseen time is in tau
	for h in $GHOSTS; do
		until_is "$h" "[.buckets[] | select(.key == \"$key\") | .remote[] |
			select(.lastEventMs > $end)] | length" "$n" || return 1
	done
	for h in $GHOSTS; do
		gstatus "$h"
		cp "$RB" "$WORK/status-$h.json"
		args+=("$h=$WORK/load-$h.txt=$WORK/status-$h.json")
	done
	for h in $GHOSTS; do
		echo "# host $h answers: $(awk '{print $3}' "$WORK/load-$h.txt" | sort | uniq -c | tr '\n' ' ')" >&2
	done
	python3 "$ROOT/tests/e2e/global_bound.py" --capacity "$cap" --rate "$rate" --cost "$cost" \
		"${args[@]}" >"$WORK/bound.json"
}
