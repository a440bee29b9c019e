#!/usr/bin/env bash
# test_reqlog.sh - usage records end to end: a liblt-only producer (tests/e2e/lt_reqlog_tool.c,
# what leaky-gateway calls) writes records into the pinned lt_reqlog ring of a real agent; the
# agent's /metrics carries the OpenTelemetry GenAI histograms with the convention's bucket
# boundaries and exact counts, GET /api/v1/admin/requests returns the records, and when the
# agent is stopped (SIGSTOP), killed mid-record, restarted or out of disk, producers never
# block and every record is delivered or counted as dropped. Prints TAP.
set -u
TOPIC=rql
. "$(dirname "$0")/agent_env.sh"
TOOL=$ROOT/build/san/tests/lt_reqlog_tool
# the state dir on a small tmpfs of its own, so the disk-full case fills nothing else
mount -t tmpfs -o size=48m "lt-rql-$ID" "$STATE" || { echo "Bail out! tmpfs"; exit 1; }
EXTRA_CLEANUP="umount -l $STATE"

start_agent || { echo "Bail out! the agent did not start"; exit 1; }
T_ADMIN=$(mint --sub admin-1 --roles ADMIN)
T_USER=$(mint --sub 00000000-0000-0000-0000-000000000001 --roles USER)
M=$WORK/metrics
met() { inns curl -s -o "$M" "$BASE/metrics"; }
# v 'name{labels}': the sample's value in the last scrape (empty when absent)
v() { awk -v k="$1" '$1 == k { print $2 }' "$M"; }
dropped() { awk '/^lt_reqlog_dropped_total/ { s += $2 } END { print s + 0 }' "$M"; }
put() { timeout 30 "$TOOL" put "$PIN" "$@"; }
# wait_for 'name{labels}' VALUE: until the scrape shows it (10 s)
wait_for() {
	for _ in $(seq 100); do
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

# ---- metrics
put 10 provider=openai model=gpt-4o in=100 out=50 reserved=200 latency_us=150000 \
	ttft_us=30000 id=oa user=00000000-0000-0000-0000-000000000001 tier=USER \
	keyid=lk_0123456789abcdef stream=1 >/dev/null
put 5 provider=gemini in=3 out=70000 latency_us=5000 id=gm >/dev/null
put 3 provider=openai status=429 outcome=4 latency_us=1000 id=rj >/dev/null
check "18 records consumed" wait_for lt_reqlog_consumed_total 18
eq "none dropped" "$(dropped)" 0
T='gen_ai_client_token_usage_bucket{gen_ai_provider_name="openai",gen_ai_token_type="input",le='
eq "token usage: the OTel GenAI boundaries 1, 4, 16 ... 67108864, +Inf" \
	"$(grep -F "$T" "$M" | sed 's/.*le="\([^"]*\)".*/\1/' | paste -sd' ')" \
	"1 4 16 64 256 1024 4096 16384 65536 262144 1048576 4194304 16777216 67108864 +Inf"
eq "token usage: 10 openai inputs of 100 tokens, in le=256 not le=64" \
	"$(v "${T}\"64\"}") $(v "${T}\"256\"}") $(v "${T}\"+Inf\"}")" "0 10 10"
L='{gen_ai_provider_name="openai",gen_ai_token_type="input"}'
eq "token usage: openai input sum and count (3 rejected requests without usage left out)" \
	"$(v "gen_ai_client_token_usage_sum$L") $(v "gen_ai_client_token_usage_count$L")" "1000 10"
L='{gen_ai_provider_name="openai",gen_ai_token_type="output"}'
eq "token usage: openai output sum and count" \
	"$(v "gen_ai_client_token_usage_sum$L") $(v "gen_ai_client_token_usage_count$L")" "500 10"
T='gen_ai_client_token_usage_bucket{gen_ai_provider_name="gemini",gen_ai_token_type='
eq "token usage: gemini 3 in (le=4), 70000 out (le=262144, not le=65536)" \
	"$(v "${T}\"input\",le=\"1\"}") $(v "${T}\"input\",le=\"4\"}") $(v "${T}\"output\",le=\"65536\"}") $(v "${T}\"output\",le=\"262144\"}")" \
	"0 5 0 5"
T='gen_ai_server_request_duration_bucket{gen_ai_provider_name="openai",le='
eq "request duration: the OTel boundaries 0.01 ... 81.92 s" \
	"$(grep -F "$T" "$M" | sed 's/.*le="\([^"]*\)".*/\1/' | paste -sd' ')" \
	"0.01 0.02 0.04 0.08 0.16 0.32 0.64 1.28 2.56 5.12 10.24 20.48 40.96 81.92 +Inf"
eq "request duration: 3 at 1 ms (le=0.01), 10 at 150 ms (le=0.16, not 0.08)" \
	"$(v "${T}\"0.01\"}") $(v "${T}\"0.08\"}") $(v "${T}\"0.16\"}") $(v "${T}\"+Inf\"}")" "3 3 13 13"
L='{gen_ai_provider_name="openai"}'
eq "request duration: sum 1.503 s, count 13" \
	"$(v "gen_ai_server_request_duration_sum$L") $(v "gen_ai_server_request_duration_count$L")" \
	"1.503000000 13"
T='gen_ai_server_time_to_first_token_bucket{gen_ai_provider_name="openai",le='
eq "time to first token: the OTel boundaries 0.001 ... 10 s" \
	"$(grep -F "$T" "$M" | sed 's/.*le="\([^"]*\)".*/\1/' | paste -sd' ')" \
	"0.001 0.005 0.01 0.02 0.04 0.06 0.08 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10 +Inf"
eq "time to first token: 10 at 30 ms (le=0.04, not 0.02); none for requests without one" \
	"$(v "${T}\"0.02\"}") $(v "${T}\"0.04\"}") $(v "gen_ai_server_time_to_first_token_count$L") $(grep -c 'time_to_first_token.*gemini' "$M")" \
	"0 10 10 0"

# ---- the read API
check "18 records stored" wait_for lt_reqlog_stored_total 18
eq "the request log is private to the agent (requests.db mode)" "$(stat -c %a "$STATE/requests.db")" 600
req GET "/api/v1/admin/requests?limit=5" "$T_ADMIN"
expect "requests: 200" 200
eq "requests: limit=5, newest first" "$(jqb '[.requests[].requestId] | join(" ")')" \
	"rj-2 rj-1 rj-0 gm-4 gm-3"
eq "requests: a rejected one has no usage" "$(jqb '.requests[0] | [.status, .outcome, .inputTokens, .timeToFirstTokenMs] | @json')" \
	'[429,"rejected",null,null]'
req GET "/api/v1/admin/requests" "$T_ADMIN"
eq "requests: all 18 by default" "$(jqb '.requests | length')" 18
eq "requests: every field of a record" "$(jqb '.requests[] | select(.requestId == "oa-0") |
	[.method, .route, .clientAddress, .clientPort, .userId, .tier, .keyId, .provider,
	 .requestedModel, .servedModel, .status, .outcome, .stream, .tokensReserved, .inputTokens,
	 .outputTokens, .latencyMs, .timeToFirstTokenMs] | @json')" \
	'["POST","/v1/chat/completions","192.0.2.7",40000,"00000000-0000-0000-0000-000000000001","USER","lk_0123456789abcdef","openai","gpt-4o","gpt-4o",200,"completed",true,200,100,50,150,30]'
eq "requests: time is RFC 3339 UTC with milliseconds" \
	"$(jqb '.requests[0].time' | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$')" 1
req GET "/api/v1/admin/requests?since=2099-01-01T00:00:00Z" "$T_ADMIN"
eq "requests: since a future time, none" "$STATUS $(jqb '.requests | length')" "200 0"
req GET "/api/v1/admin/requests?since=2000-01-01T00:00:00.5Z&limit=1000" "$T_ADMIN"
eq "requests: since 2000 (fractional seconds), all" "$STATUS $(jqb '.requests | length')" "200 18"
for bad in "limit=0" "limit=1001" "limit=ten" "since=yesterday" "since=2026-01-01T00:00:00"; do
	req GET "/api/v1/admin/requests?$bad" "$T_ADMIN"
	eq "requests: $bad is 400 naming the parameter" "$STATUS $(jqb .field)" "400 ${bad%%=*}"
done
req GET "/api/v1/admin/requests" "$T_USER"
expect "requests: a USER token is 403" 403
req GET "/api/v1/admin/requests" ""
expect "requests: no credentials is 401" 401
req POST "/api/v1/admin/requests" "$T_ADMIN" '{}'
expect "requests: POST is 405" 405

# ---- a stopped agent: producers never wait, and what they overwrite is counted
kill -STOP "$AGENT_PID"
out=$(put 24576 provider=openai latency_us=1000 id=burst)
rc=$?
eq "agent stopped: 3 turns of the ring (24576 records) are all written, none blocks" \
	"$rc $(awk '{ print $4 }' <<<"$out")" "0 24576"
ctl=$(timeout 10 "$TOOL" ctl "$PIN")
over=$(awk '{ print $16 }' <<<"$ctl")
check "agent stopped: producers count the unread records they overwrote ($over >= 16384)" \
	test "$over" -ge 16384
kill -CONT "$AGENT_PID"
check "agent resumed: the ring is drained" wait_for lt_reqlog_backlog 0
total=$((18 + 24576))
eq "agent resumed: consumed + dropped = every record written ($total)" \
	"$(($(v lt_reqlog_consumed_total) + $(dropped)))" "$total"
check "agent resumed: at least two turns counted as lapped" \
	test "$(v 'lt_reqlog_dropped_total{reason="lapped"}')" -ge 16384

# ---- a producer killed in the middle of a record
{ timeout 10 "$TOOL" die "$PIN"; } 2>/dev/null # (bash reports the kill on stderr)
eq "producer killed mid-record (SIGKILL)" "$?" 137
c0=$(v lt_reqlog_consumed_total)
put 5 provider=openai latency_us=1000 id=after >/dev/null
check "killed producer: counted producer_died" wait_for 'lt_reqlog_dropped_total{reason="producer_died"}' 1
check "killed producer: the records after it are delivered" wait_for lt_reqlog_consumed_total $((c0 + 5))
total=$((total + 6))

# ---- records written while the agent is down are read after it restarts
stop_agent
check "first run: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
put 7 provider=openai latency_us=1000 id=offline >/dev/null
start_agent || { echo "Bail out! restart"; exit 1; }
check "restart: the 7 records written meanwhile are consumed" \
	wait_for lt_reqlog_consumed_total $((c0 + 5 + 7))
total=$((total + 7))
sleep 0.3
req GET "/api/v1/admin/requests?limit=1" "$T_ADMIN"
eq "restart: the newest stored record is the last one written while it was down" \
	"$(jqb '.requests[0].requestId')" offline-6

# ---- a full disk stops the store, never the ring
dd if=/dev/zero of="$STATE/filler" bs=1M 2>/dev/null
met
s0=$(v lt_reqlog_stored_total)
c0=$(v lt_reqlog_consumed_total)
for i in 1 2 3; do
	put 8000 provider=openai latency_us=1000 model=a-long-model-name-to-fill-pages id=full-$i >/dev/null
	wait_for lt_reqlog_backlog 0 || break
done
total=$((total + 24000))
check "disk full: every record is still consumed" wait_for lt_reqlog_consumed_total $((c0 + 24000))
sleep 0.5
met
check "disk full: records the store could not keep are counted ($(v 'lt_reqlog_store_dropped_total{reason="store_error"}'))" \
	test "$(v 'lt_reqlog_store_dropped_total{reason="store_error"}')" -gt 0
eq "disk full: consumed + dropped = every record written ($total)" \
	"$(($(v lt_reqlog_consumed_total) + $(dropped)))" "$total"
check "disk full: the agent still answers" inns curl -sf -o /dev/null "$BASE/healthz"
rm -f "$STATE/filler"
met
s1=$(v lt_reqlog_stored_total)
put 10 provider=openai latency_us=1000 id=again >/dev/null
check "space again: the store keeps records again" wait_for lt_reqlog_stored_total $((s1 + 10))
req GET "/api/v1/admin/requests?limit=1" "$T_ADMIN"
eq "space again: the newest record reads back" "$(jqb '.requests[0].requestId')" again-9

# ---- retention: token.request_log_rows and token.request_log_max_age
stop_agent
echo '{"token": {"request_log_rows": 100, "request_log_max_age": "1h"}}' >"$WORK/cap.json"
start_agent --config "$WORK/cap.json" || { echo "Bail out! restart with a config"; exit 1; }
put 5 provider=openai latency_us=1000 age_s=7200 id=old >/dev/null
put 300 provider=openai latency_us=1000 id=cap >/dev/null
check "retention: 305 records stored" wait_for lt_reqlog_stored_total 305
req GET "/api/v1/admin/requests?limit=1000" "$T_ADMIN"
eq "retention: the newest 100 are kept, none older than max_age" \
	"$(jqb '[(.requests | length), .requests[0].requestId, .requests[99].requestId, ([.requests[] | select(.requestId | startswith("old"))] | length)] | @json')" \
	'[100,"cap-299","cap-200",0]'
echo '{"token": {"request_log_rows": 0}}' >"$WORK/bad.json"
out=$("$AGENT" --config "$WORK/bad.json" check-config 2>&1)
expect_err "retention: request_log_rows 0 is refused, naming the field and the range" $? "$out" "request_log_rows: expected 1"

check "the agent is alive" kill -0 "$AGENT_PID"
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
