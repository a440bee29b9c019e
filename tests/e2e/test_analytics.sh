#!/usr/bin/env bash
# test_analytics.sh - usage rollups and the analytics API (issue #10 item 2): gateway usage
# records (through the pinned ring, as leaky-gateway writes them) and consume decisions are
# rolled up per minute and tenant, provider, key and model in requests.db; GET
# /api/v1/analytics/usage sums them with filters and steps and reports latency percentiles from
# the histogram buckets, usage.csv exports them for billing, top lists the buckets closest to
# their limits and the most limited tenants; old minutes are compacted into hours and days and
# deleted after the configured retention. Prints TAP.
set -u
TOPIC=anl
. "$(dirname "$0")/agent_env.sh"
TOOL=$ROOT/build/san/tests/lt_reqlog_tool
U1=00000000-0000-0000-0000-000000000001
U2=00000000-0000-0000-0000-000000000002
U3=00000000-0000-0000-0000-000000000003
U4=00000000-0000-0000-0000-000000000004
ORG=00000000-0000-0000-0000-0000000000aa
put() { timeout 30 "$TOOL" put "$PIN" "$@" >/dev/null; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi; }

start_agent || { echo "Bail out! the agent did not start"; exit 1; }
T_ADMIN=$(mint --sub admin-1 --roles ADMIN)
T_U4=$(mint --sub $U4 --roles USER)

put 10 provider=openai model=gpt-4o in=100 out=50 reserved=200 latency_us=20000 user=$U1 \
	org=$ORG keyid=lk_k1 tier=USER id=a
put 5 provider=gemini model=gem-1 in=10 out=5 reserved=20 latency_us=300000 user=$U2 \
	tier=USER age_s=120 id=b
put 3 provider=openai model=gpt-4o status=429 outcome=4 user=$U3 tier=USER id=c
put 1 provider=qwen model=q,1 in=1 out=1 user=$U3 tier=USER age_s=259200 id=old # 3 days ago
req POST /api/v1/tokens/consume "$T_U4" "{\"userId\":\"$U4\",\"provider\":\"openai\",\"tokens\":9000}"
req POST /api/v1/tokens/consume "$T_U4" "{\"userId\":\"$U4\",\"provider\":\"openai\",\"tokens\":9000}"
expect "consume: the second 9000 is refused" 429

usage() { req GET "/api/v1/analytics/usage$1" "$T_ADMIN"; }
for _ in $(seq 100); do
	usage ""
	[ "$STATUS" = 200 ] && [ "$(jqb .total.requests)" = 20 ] && break
	sleep 0.1
done
expect "usage: 200" 200
eq "usage (last hour): requests, admitted, rejected, input, output, settled" \
	"$(jqb '.total | [.requests, .admitted, .rejected, .inputTokens, .outputTokens, .tokensSettled] | @json')" \
	"[20,16,4,1050,525,10575]"
eq "usage: latency percentiles from the buckets (18 gateway requests: 3 at 0, 10 at 20 ms, 5 at 300 ms)" \
	"$(jqb '.total.latencyMs | [.p50, (.p95 | round), (.p99 | round)] | @json')" "[19,455,491]"
eq "usage: one point per minute with traffic, the minutes add up" \
	"$(jqb '[(.points | length >= 2), ([.points[].requests] | add), .stepSeconds] | @json')" "[true,20,60]"
eq "usage: points are minute starts in RFC 3339" \
	"$(jqb '[.points[].time | test("^[0-9-]{10}T[0-9]{2}:[0-9]{2}:00Z$")] | all')" true
usage "?provider=gemini"
eq "filter provider=gemini" "$(jqb '.total | [.requests, .inputTokens, .outputTokens] | @json') $(jqb .filters.provider)" \
	"[5,50,25] gemini"
usage "?orgId=$ORG"
eq "filter orgId" "$(jqb .total.requests)" 10
usage "?userId=$U4&provider=openai"
eq "filter userId + provider: the consume decisions, no latency" \
	"$(jqb '.total | [.requests, .admitted, .rejected, .tokensSettled, .latencyMs] | @json')" "[2,1,1,9000,null]"
usage "?keyId=lk_k1&model=gpt-4o"
eq "filter keyId + model" "$(jqb .total.requests)" 10
usage "?step=1h"
eq "step=1h: the same total in at most 2 points" "$(jqb '[.total.requests, (.points | length <= 2), .stepSeconds] | @json')" \
	"[20,true,3600]"
usage "?from=$(date -u -d '4 days ago' +%FT%TZ)&step=1d"
eq "from 4 days ago: the 3-day-old record too" "$(jqb .total.requests)" 21

req GET "/api/v1/analytics/usage.csv?from=$(date -u -d '4 days ago' +%FT%TZ)&step=1h" "$T_ADMIN"
expect "usage.csv: 200" 200
eq "usage.csv: text/csv" "$(grep -i '^content-type' "$HB" | tr -d '\r' | cut -d' ' -f2-)" "text/csv; charset=utf-8"
eq "usage.csv: the header" "$(head -1 "$RB" | tr -d '\r')" \
	"time,org_id,user_id,key_id,provider,model,requests,admitted,rejected,input_tokens,output_tokens,tokens_settled"
eq "usage.csv: the requests column adds up" "$(tail -n +2 "$RB" | awk -F, '{ s += $(NF-5) } END { print s }')" 21
eq "usage.csv: a gemini line for user 2" \
	"$(grep -c ",$U2,,gemini,gem-1,5,5,0,50,25,75" "$RB")" 1
eq "usage.csv: a field with a comma is quoted (RFC 4180)" "$(grep -c ',qwen,"q,1",1,1,0,1,1,2' "$RB")" 1

req GET "/api/v1/analytics/top" "$T_ADMIN"
expect "top: 200" 200
eq "top: the most limited tenants, most rejections first" \
	"$(jqb '[.mostLimited[] | [.tenant, .rejected]] | @json')" "[[\"user:$U3\",3],[\"user:$U4\",1]]"
eq "top: the bucket closest to its limit is user 4's (9000 of 10000 used)" \
	"$(jqb '.closestToLimit[0] | [(.bucket | endswith("'$U4'")), .capacity, (.utilization > 0.8)] | @json')" \
	"[true,10000,true]"
req GET "/api/v1/analytics/top?limit=1" "$T_ADMIN"
eq "top: limit=1" "$(jqb '[(.mostLimited | length), (.closestToLimit | length)] | @json')" "[1,1]"

while read -r qs field; do
	usage "?$qs"
	eq "usage: $qs is 400 naming $field" "$STATUS $(jqb .field)" "400 $field"
done <<'EOF'
step=30s step
step=1x step
from=yesterday from
to=2026-01-01 to
userId= userId
from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z from
EOF
usage "?from=2020-01-01T00:00:00Z&step=1m"
eq "usage: more than 10000 steps is 400 (step)" "$STATUS $(jqb .field)" "400 step"
req GET "/api/v1/analytics/top?limit=0" "$T_ADMIN"
eq "top: limit=0 is 400" "$STATUS $(jqb .field)" "400 limit"
req GET "/api/v1/analytics/usage" "$T_U4"
expect "usage: a USER token is 403" 403
req GET "/api/v1/analytics/usage" ""
expect "usage: no credentials is 401" 401

# ---- retention: minutes into hours into days, and out
stop_agent
"$AGENT" print-config | jq '.analytics = {minutes: "1m", hours: "1h", days: "1d"}' >"$WORK/ret.json"
q() { sqlite3 "$STATE/requests.db" "$1"; }
before=$(q "SELECT sum(requests) FROM rollup WHERE ts >= strftime('%s','now') - 86400")
start_agent --config "$WORK/ret.json" || { echo "Bail out! restart"; exit 1; }
for _ in $(seq 50); do [ "$(q 'SELECT count(*) FROM rollup WHERE res = 3600')" -gt 0 ] && break; sleep 0.1; done
eq "retention: minutes that ended more than 1m ago are compacted into hours" \
	"$(q "SELECT count(*) FROM rollup WHERE res = 60 AND ts < strftime('%s','now') - 130")" 0
eq "retention: nothing lost in the compaction (the last day)" \
	"$(q "SELECT sum(requests) FROM rollup WHERE ts >= strftime('%s','now') - 90000")" "$before"
eq "retention: the 3-day-old minute went through days and out (days: 1d)" \
	"$(q "SELECT count(*) FROM rollup WHERE ts < strftime('%s','now') - 2 * 86400")" 0
# (an hour row counts at its start: the range reaches back past the hour the records are in)
usage "?step=1h&from=$(date -u -d '3 hours ago' +%FT%TZ)"
eq "retention: the API still sums the compacted hours" "$(jqb .total.requests)" 20
"$AGENT" print-config | jq '.analytics = {minutes: "2h", hours: "1h"}' >"$WORK/bad.json"
out=$("$AGENT" check-config --config "$WORK/bad.json" 2>&1)
expect_err "config: hours kept shorter than minutes is refused" $? "$out" "/analytics"
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$LOG"
tap_done
