#!/usr/bin/env bash
# bench_ui.sh - the dashboard rows of `make bench` (issue #11): the release agent in a private
# network namespace, its request log filled with LT_UI_BENCH_ROWS (100000) records written
# into the pinned ring the way leaky-gateway writes them (build/rel/tests/lt_reqlog_tool),
# then Debian's chromium (tests/ui/bench_ui.mjs, playwright-core):
#   1. the page loaded from scratch to the request log's first page, and paging through it;
#   2. the JS heap after LT_UI_HEAP_MINUTES (5) minutes of the Overview's live updates, with
#      growth per hour extrapolated from that shortened run (an hour would hold the bench up).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${BENCH_AGENT:-$ROOT/build/leaky-agent}
TOOL=$ROOT/build/rel/tests/lt_reqlog_tool
ROWS=${LT_UI_BENCH_ROWS:-100000}
MINUTES=${LT_UI_HEAP_MINUTES:-5}
NS=ltuibench-$$
PIN=/sys/fs/bpf/lt-uibench-$$
DIR=$(mktemp -d /tmp/lt-bench-ui-XXXXXX)
STATE=$DIR/state
PID=
cleanup() {
	set +e # every step runs, whatever the agent's exit status
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$DIR" "$PIN"
}
trap cleanup EXIT
for t in "$AGENT" "$TOOL"; do
	[ -x "$t" ] || { echo "bench_ui: $t is missing (make bench builds it)" >&2; exit 1; }
done
ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { nsenter --net=/run/netns/$NS "$@"; }
metric() { inns curl -s http://127.0.0.1:9090/metrics | awk -v k="$1" '$1 == k { print $2 }'; }
mkdir -p "$STATE"
"$AGENT" print-config | jq --argjson n "$ROWS" '.event_sample_every = 0 | .token.request_log_rows = $n' \
	>"$DIR/agent.json"
# nsenter execs the agent, so $! is the agent (a function in the background would be a subshell)
nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach --iface lo \
	--api 127.0.0.1:9090 --config "$DIR/agent.json" >>"$DIR/agent.log" 2>&1 &
PID=$!
for _ in $(seq 100); do inns curl -s -o /dev/null http://127.0.0.1:9090/healthz && break; sleep 0.1; done
TA=$("$AGENT" --state-dir "$STATE" mint-token --sub bench-admin --roles ADMIN --ttl 2h)

# ROWS records, 4096 at a time (the ring has 8192 slots: never lapped); one in ten a 429
done_n=0
while [ "$done_n" -lt "$ROWS" ]; do
	k=$((ROWS - done_n < 4096 ? ROWS - done_n : 4096))
	r=$((k / 10))
	"$TOOL" put "$PIN" $((k - r)) provider=openai model=gpt-4o in=100 out=50 reserved=200 \
		latency_us=1500 user=00000000-0000-0000-0000-000000000001 tier=USER id=b >/dev/null
	"$TOOL" put "$PIN" "$r" provider=gemini model=gemini-1.5-flash reserved=200 status=429 \
		outcome=4 user=00000000-0000-0000-0000-000000000002 tier=USER id=r >/dev/null
	done_n=$((done_n + k))
	for _ in $(seq 3000); do
		[ "$(metric lt_reqlog_stored_total)" -ge "$done_n" ] 2>/dev/null && break
		sleep 0.01
	done
done

printf '\nDashboard (release agent, Debian chromium headless via playwright-core, 1366x768)\n'
inns env BASE=http://127.0.0.1:9090 TA="$TA" ROWS="$ROWS" MINUTES="$MINUTES" TOOL="$TOOL" PIN="$PIN" \
	timeout $((MINUTES * 60 + 300)) node "$ROOT/tests/ui/bench_ui.mjs"
