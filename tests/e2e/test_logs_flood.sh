#!/usr/bin/env bash
# test_logs_flood.sh - a USER flooding GET /api/v1/logs with a filter that matches nothing
# cannot take the API away from everyone else (agent/logs.c): log queries share one read
# connection, and each waited for it on an API thread, so 64 of them queued held every API
# thread and consume took seconds. Now a query waits at most 5 ms for the connection (else
# 429 with Retry-After), all queries together get at most a quarter of one API thread (else
# 429 at once), and each runs at most its budget (else 422): consume keeps answering.
# An attacker's finding (a USER token, 100,000 rows, 40 curl loops: consume 1.3-2 s). Prints TAP.
set -u
TOPIC=logflood
. "$(dirname "$0")/agent_env.sh"
ROWS=100000
U1=00000000-0000-0000-0000-00000000f100
U2=00000000-0000-0000-0000-00000000f200

# the agent makes requests.db; the rows go in while it is stopped (all U1's)
check "agent attaches" start_agent
stop_agent
now=$(date +%s%N)
sqlite3 "$STATE/requests.db" <<SQL
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
INSERT INTO requests(start_ns, request_id, method, route, client_addr, client_port, user_id,
	org_id, tier, key_id, provider, model_requested, model_served, status, outcome, flags,
	tokens_reserved, tokens_in, tokens_out, latency_ns, ttft_ns, limit_name)
SELECT $now - ($ROWS - x) * 1000000, 'flood-' || x, 'POST', '/v1/chat/completions',
	'192.0.2.1', 40000, '$U1', '', 'USER', '', 'openai', 'm', 'm', 200, 0, 2, 30, 2, 20,
	1000000, 0, ''
FROM c;
COMMIT;
SQL
check "agent restarts with $ROWS log rows" start_agent
TU1=$(mint --sub $U1 --roles USER)
TU2=$(mint --sub $U2 --roles USER)
req GET "/api/v1/logs?limit=1" "$TU1"
check "the USER reads its own rows (200)" test "$STATUS" = 200

cat >"$WORK/flood.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TU1")
LUA
# 64 connections asking for status=599 (no row has it: every query scans the user's rows)
TU1=$TU1 nsenter --net=/run/netns/$NS timeout 30 wrk -t1 -c64 -d6s -s "$WORK/flood.lua" \
	"$BASE/api/v1/logs?status=599" >"$WORK/flood.out" 2>&1 &
FLOOD=$!
sleep 1.5
slow=0 codes=
for i in $(seq 10); do
	c=$(inns curl -s -o /dev/null -w '%{http_code}' --max-time 1 -X POST \
		-H "Authorization: Bearer $TU2" -H 'Content-Type: application/json' \
		--data "{\"userId\":\"$U2\",\"provider\":\"openai\",\"tokens\":1}" \
		"$BASE/api/v1/tokens/consume")
	codes+="$c "
	[ "$c" = 200 ] || slow=$((slow + 1))
	sleep 0.2
done
check "during the flood another tenant's consume answers 200 within 1 s, 10 of 10 ($codes)" \
	test "$slow" = 0
check "and /healthz within 1 s" inns curl -sf -o /dev/null --max-time 1 "$BASE/healthz"
wait "$FLOOD"
sed 's/^/# flood: /' "$WORK/flood.out" >&2
n429=$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$WORK/flood.out" | awk '{print $NF}')
check "the flood was answered (some 429: one query at a time, ${n429:-0} refused)" \
	test "${n429:-0}" -gt 0
for _ in $(seq 50); do # what the flood left queued still runs: a client honours Retry-After
	req GET "/api/v1/logs?status=599" "$TU1"
	[ "$STATUS" = 429 ] || break
	sleep 0.1
done
check "after it, the same query answers 200, no rows ($STATUS $(head -c 200 "$RB"))" test "$STATUS $(jqb ".items | length")" = "200 0"
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
