#!/usr/bin/env bash
# bench_api.sh - `make bench`, API part: wrk against POST /api/v1/tokens/consume
# with an HS256 JWT over keep-alive, next to GET /healthz on the same server
# (a bare libmicrohttpd JSON reply) as the reference. The agent runs in a
# private network namespace so nothing is attached to the host's lo.
# The two alternate in short slices (healthz, consume; then consume, healthz; ...) and
# the ratio is taken per pair: load from other processes on a shared machine hits both
# sides of a pair alike, where two long runs one after the other each saw a different
# machine. Prints the median ratio and its min and max over the pairs.
#   BENCH_AGENT    the agent binary to measure (default: this tree's build/leaky-agent),
#                  so two builds can be compared with the same driver
#   BENCH_PAIRS    pairs of slices (default 6)
#   BENCH_SECONDS  seconds per slice (default 2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${BENCH_AGENT:-$ROOT/build/leaky-agent}
[ -x "$AGENT" ] || { echo "bench_api.sh: no agent binary at $AGENT (make build/leaky-agent, or set BENCH_AGENT)" >&2; exit 1; }
NS=ltbench-$$
PIN=/sys/fs/bpf/lt-bench-$$
STATE=$(mktemp -d /tmp/lt-bench-api-XXXXXX)
DUR=${BENCH_SECONDS:-2}
PAIRS=${BENCH_PAIRS:-6}
cleanup() {
	[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1 || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$STATE" "$PIN"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach --iface lo \
	--api 127.0.0.1:9090 >"$STATE/log" 2>&1 &
PID=$!
for _ in $(seq 100); do
	nsenter --net=/run/netns/$NS curl -s -o /dev/null http://127.0.0.1:9090/healthz && break
	sleep 0.1
done
export TOKEN
TOKEN=$("$AGENT" --state-dir "$STATE" mint-token --sub 00000000-0000-0000-0000-000000000001 \
	--roles ADMIN --ttl 1h)
# The default ADMIN tier (1,000,000 tokens, 10,000/s) empties after ~7 s of consume at the
# rates this machine reaches, and later slices then measured 429s, not admissions. The bench
# user gets a limit no slice can exhaust, so every consume slice measures a 200.
nsenter --net=/run/netns/$NS curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' -d '{"capacity":1000000000000,"rate":"100000000/s"}' \
	http://127.0.0.1:9090/api/v1/admin/tiers/ADMIN/openai ||
	{ echo "bench_api.sh: could not raise the ADMIN tier's openai limit" >&2; exit 1; }
cat >"$STATE/consume.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"userId":"00000000-0000-0000-0000-000000000001","provider":"openai","tokens":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
LUA
run() { nsenter --net=/run/netns/$NS wrk -t2 -c64 -d"${DUR}s" --latency "$@"; }
field() { awk -v k="$1" '$1 == k { print $2 }'; }
rps() { awk '$1 == "Requests/sec:" { print $2 }'; }
# wrk's latency as microseconds, to take medians of
us() { sed -E 's/us$/*1/; s/ms$/*1000/; s/s$/*1000000/' | bc -l | xargs printf '%.0f\n'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt_us() { awk '{ if ($1 >= 1000) printf "%.2fms", $1 / 1000; else printf "%dus", $1 }'; }
H_URL=http://127.0.0.1:9090/healthz
C_URL=http://127.0.0.1:9090/api/v1/tokens/consume
: >"$STATE/h" >"$STATE/c" >"$STATE/r"
non2xx=0
for i in $(seq "$PAIRS"); do
	if [ $((i % 2)) = 1 ]; then
		H=$(run "$H_URL"); C=$(run -s "$STATE/consume.lua" "$C_URL")
	else
		C=$(run -s "$STATE/consume.lua" "$C_URL"); H=$(run "$H_URL")
	fi
	hr=$(rps <<<"$H") cr=$(rps <<<"$C")
	echo "$hr $(field 50% <<<"$H" | us) $(field 99% <<<"$H" | us)" >>"$STATE/h"
	echo "$cr $(field 50% <<<"$C" | us) $(field 99% <<<"$C" | us)" >>"$STATE/c"
	echo "$cr / $hr" | bc -l >>"$STATE/r"
	n=$(grep -o "Non-2xx or 3xx responses: [0-9]*" <<<"$C" | awk '{print $NF}' || true)
	non2xx=$((non2xx + ${n:-0}))
done
col() { awk -v c="$2" '{ print $c }' "$STATE/$1" | median; }
printf '\nREST API (wrk -t2 -c64, keep-alive, %d pairs of %ss slices, alternating; client and server share the cores)\n' \
	"$PAIRS" "$DUR"
printf '  GET /healthz (bare JSON reply)         %9.0f req/s  p50 %s  p99 %s   (reference; medians over the slices)\n' \
	"$(col h 1)" "$(col h 2 | fmt_us)" "$(col h 3 | fmt_us)"
printf '  POST consume, HS256 JWT, 1 token       %9.0f req/s  p50 %s  p99 %s   [target >= 50000 req/s]\n' \
	"$(col c 1)" "$(col c 2 | fmt_us)" "$(col c 3 | fmt_us)"
printf '  consume / healthz, per pair            median %.2fx  min %.2fx  max %.2fx   [target >= 0.9x]\n' \
	"$(median <"$STATE/r")" "$(sort -g "$STATE/r" | head -1)" "$(sort -g "$STATE/r" | tail -1)"
printf '  consume responses that were not 200: %s\n' "$non2xx"
