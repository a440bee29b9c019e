#!/usr/bin/env bash
# bench_logs.sh - `make bench`, request log part: GET /api/v1/logs with 100,000 rows in
# requests.db, its first page and a deep page (a cursor 90,000 rows down), unfiltered and
# with a tenant filter, each against GET /healthz on the same server in the same run. One
# connection at a time (wrk -t1 -c1), so a latency is the server's time for one request,
# not a queue. The slices alternate (healthz, logs; logs, healthz; ...) and the ratio of the
# p50 latencies is taken per pair, so load from other processes hits both sides alike.
# Prints, per row, the p50 and p99 of the page and its median ratio to healthz.
#   BENCH_AGENT    the agent binary (default: this tree's build/leaky-agent)
#   BENCH_PAIRS    pairs of slices per row (default 4)
#   BENCH_SECONDS  seconds per slice (default 2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${BENCH_AGENT:-$ROOT/build/leaky-agent}
[ -x "$AGENT" ] || { echo "bench_logs.sh: no agent binary at $AGENT (make build/leaky-agent, or set BENCH_AGENT)" >&2; exit 1; }
NS=ltbenchlog-$$
PIN=/sys/fs/bpf/lt-benchlog-$$
STATE=$(mktemp -d /tmp/lt-bench-logs-XXXXXX)
DUR=${BENCH_SECONDS:-2}
PAIRS=${BENCH_PAIRS:-4}
ROWS=100000
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1 || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$STATE" "$PIN"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
start() {
	nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach \
		--iface lo --api 127.0.0.1:9090 >>"$STATE/log" 2>&1 &
	PID=$!
	for _ in $(seq 100); do
		nsenter --net=/run/netns/$NS curl -s -o /dev/null http://127.0.0.1:9090/healthz && return 0
		sleep 0.1
	done
	echo "bench_logs.sh: the agent did not start" >&2
	exit 1
}
# the agent makes requests.db (its schema and indexes); the rows go in while it is stopped:
# 100,000 gateway records over the last 100 s, 100 users, 10 providers, 1 in 8 refused
start
kill "$PID" && wait "$PID" 2>/dev/null || true
PID=
now=$(date +%s%N)
sqlite3 "$STATE/requests.db" <<SQL
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
INSERT INTO requests(start_ns, request_id, method, route, client_addr, client_port, user_id,
	org_id, tier, key_id, provider, model_requested, model_served, status, outcome, flags,
	tokens_reserved, tokens_in, tokens_out, latency_ns, ttft_ns, limit_name)
SELECT $now - ($ROWS - x) * 1000000, 'bench-' || x, 'POST', '/v1/chat/completions',
	'192.0.2.' || (x % 250), 40000 + x % 1000,
	printf('00000000-0000-0000-0000-%012d', x % 100), '', 'USER', '',
	'p' || (x % 10), 'gpt-4o-mini', 'gpt-4o-mini', CASE WHEN x % 8 = 0 THEN 429 ELSE 200 END,
	CASE WHEN x % 8 = 0 THEN 4 ELSE 0 END, 2, 300, 20, 200, 150000000, 0,
	CASE WHEN x % 8 = 0 THEN 'user-tokens' ELSE '' END
FROM c;
COMMIT;
SQL
start
TOKEN=$("$AGENT" --state-dir "$STATE" mint-token --sub bench-admin --roles ADMIN --ttl 1h)
export TOKEN
# the cursor of the row 90,000 down (what the 1,800th page of 50 would get as next_cursor)
cursor_at() { # SQL_WHERE OFFSET
	sqlite3 "$STATE/requests.db" \
		"SELECT printf('%016x%016x', start_ns, id) FROM requests WHERE $1 ORDER BY start_ns DESC, id DESC LIMIT 1 OFFSET $2" |
		xxd -r -p | base64 -w0 | tr '+/' '-_' | tr -d '='
}
DEEP=$(cursor_at 1 90000)
U=00000000-0000-0000-0000-000000000007
UDEEP=$(cursor_at "user_id = '$U'" 900)
cat >"$STATE/auth.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
LUA
B=http://127.0.0.1:9090
got=$(nsenter --net=/run/netns/$NS curl -s -H "Authorization: Bearer $TOKEN" "$B/api/v1/logs?limit=50&cursor=$DEEP" |
	jq '.items | length')
[ "$got" = 50 ] || { echo "bench_logs.sh: the deep page has $got items, want 50" >&2; exit 1; }
run() { nsenter --net=/run/netns/$NS wrk -t1 -c1 -d"${DUR}s" --latency "$@"; }
field() { awk -v k="$1" '$1 == k { print $2 }'; }
us() { sed -E 's/us$/*1/; s/ms$/*1000/; s/s$/*1000000/' | bc -l | xargs printf '%.0f\n'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt_us() { awk '{ if ($1 >= 1000) printf "%.2fms", $1 / 1000; else printf "%dus", $1 }'; }
printf '\nRequest log API (%d rows in requests.db; wrk -t1 -c1: one request at a time; %d pairs of %ss slices per row, alternating with GET /healthz)\n' \
	"$ROWS" "$PAIRS" "$DUR"
row() { # LABEL URL
	local i H L r=$STATE/r l=$STATE/l h=$STATE/h
	: >"$r"
	: >"$l"
	: >"$h"
	for i in $(seq "$PAIRS"); do
		if [ $((i % 2)) = 1 ]; then
			H=$(run "$B/healthz")
			L=$(run -s "$STATE/auth.lua" "$B$2")
		else
			L=$(run -s "$STATE/auth.lua" "$B$2")
			H=$(run "$B/healthz")
		fi
		if grep -q 'Non-2xx' <<<"$L"; then
			echo "bench_logs.sh: $2 answered non-2xx" >&2
			exit 1
		fi
		echo "$(field 50% <<<"$H" | us)" >>"$h"
		echo "$(field 50% <<<"$L" | us) $(field 99% <<<"$L" | us)" >>"$l"
		echo "$(tail -1 "$l" | awk '{ print $1 }') / $(tail -1 "$h")" | bc -l >>"$r"
	done
	printf '  %-44s p50 %8s  p99 %8s   %6.1fx healthz p50 (min %.1fx, max %.1fx; healthz p50 %s)\n' "$1" \
		"$(awk '{ print $1 }' "$l" | median | fmt_us)" "$(awk '{ print $2 }' "$l" | median | fmt_us)" \
		"$(median <"$r")" "$(sort -g "$r" | head -1)" "$(sort -g "$r" | tail -1)" "$(median <"$h" | fmt_us)"
}
row "first page (50 items)" "/api/v1/logs?limit=50"
row "deep page (90,000 rows down)" "/api/v1/logs?limit=50&cursor=$DEEP"
row "a user's first page (1 in 100 rows)" "/api/v1/logs?limit=50&userId=$U"
row "a user's deep page (900 of its rows down)" "/api/v1/logs?limit=50&userId=$U&cursor=$UDEEP"
row "status=4xx, deep page (1 in 8 rows)" "/api/v1/logs?limit=50&status=4xx&cursor=$DEEP"
