#!/usr/bin/env bash
# bench_api.sh - `make bench`, API part: wrk against POST /api/v1/tokens/consume
# with an HS256 JWT over keep-alive, next to GET /healthz on the same server
# (a bare libmicrohttpd JSON reply) as the reference. The agent runs in a
# private network namespace so nothing is attached to the host's lo.
#   BENCH_AGENT    the agent binary to measure (default: this tree's build/leaky-agent),
#                  so two builds can be compared with the same driver
#   BENCH_SECONDS  seconds per wrk run (default 5)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${BENCH_AGENT:-$ROOT/build/leaky-agent}
[ -x "$AGENT" ] || { echo "bench_api.sh: no agent binary at $AGENT (make build/leaky-agent, or set BENCH_AGENT)" >&2; exit 1; }
NS=ltbench-$$
PIN=/sys/fs/bpf/lt-bench-$$
STATE=$(mktemp -d /tmp/lt-bench-api-XXXXXX)
DUR=${BENCH_SECONDS:-5}
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
cat >"$STATE/consume.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"userId":"00000000-0000-0000-0000-000000000001","provider":"openai","tokens":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
LUA
run() { nsenter --net=/run/netns/$NS wrk -t2 -c64 -d"${DUR}s" --latency "$@"; }
field() { awk -v k="$1" '$1 == k { print $2 }'; }
H=$(run http://127.0.0.1:9090/healthz)
C=$(run -s "$STATE/consume.lua" http://127.0.0.1:9090/api/v1/tokens/consume)
hr=$(grep Requests/sec <<<"$H" | awk '{print $2}')
cr=$(grep Requests/sec <<<"$C" | awk '{print $2}')
non2xx=$(grep -o "Non-2xx or 3xx responses: [0-9]*" <<<"$C" | awk "{print \$NF}" || true)
printf '\nREST API (wrk -t2 -c64 -d%ss, keep-alive, client and server share the 2 cores)\n' "$DUR"
printf '  GET /healthz (bare JSON reply)         %9.0f req/s  p50 %s  p99 %s   (reference)\n' \
	"$hr" "$(field 50% <<<"$H")" "$(field 99% <<<"$H")"
printf '  POST consume, HS256 JWT, 1 token       %9.0f req/s  p50 %s  p99 %s   %.2fx reference [target >= 50000 req/s]\n' \
	"$cr" "$(field 50% <<<"$C")" "$(field 99% <<<"$C")" "$(echo "$cr / $hr" | bc -l)"
printf '  consume responses that were not 200: %s\n' "${non2xx:-0}"
