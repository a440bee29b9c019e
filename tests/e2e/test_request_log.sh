#!/usr/bin/env bash
# test_request_log.sh - the request log API (issue #11 item 2) end to end: a real agent,
# leaky-gateway and leaky-stub in a private netns. Records from both sources (gateway
# requests, consume decisions) with the limit that refused them; every filter of
# GET /api/v1/logs returns exactly the rows it names (checked against the unfiltered list);
# cursor paging through 1,200 rows sees each once, in order, while new rows arrive; a
# non-admin (USER JWT, API key) sees only its own rows, in any spelling of the ids; bad
# parameters are 400 naming the parameter; retention by rows and by age (also on an idle
# agent) trims. Prints TAP.
set -u
TOPIC=rlog
. "$(dirname "$0")/gw_env.sh"
TOOL=$ROOT/build/san/tests/lt_reqlog_tool
U1=00000000-0000-0000-0000-00000000a0a1
U2=00000000-0000-0000-0000-00000000a0a2
O1=10000000-0000-0000-0000-00000000a0b1
O2=10000000-0000-0000-0000-00000000a0b2
put() { timeout 30 "$TOOL" put "$PIN" "$@" >/dev/null; }
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
ALL=$WORK/all.json
# all_rows [TOKEN]: every row the token sees (pages of 500) into $ALL, newest first
all_rows() {
	local t=${1:-$TA} c= n=0
	echo '[]' >"$ALL"
	while [ $n -lt 50 ]; do
		req GET "/api/v1/logs?limit=500${c:+&cursor=$c}" "$t"
		[ "$STATUS" = 200 ] || return 1
		jq -s '.[0] + .[1].items' "$ALL" "$RB" >"$ALL.n" && mv "$ALL.n" "$ALL"
		c=$(jqb '.next_cursor // empty')
		[ -z "$c" ] && return 0
		n=$((n + 1))
	done
}
# wait_rows N: until the admin sees at least N rows (10 s)
wait_rows() {
	for _ in $(seq 100); do
		all_rows && [ "$(jq length "$ALL")" -ge "$1" ] && return 0
		sleep 0.1
	done
	echo "# $(jq length "$ALL") rows, want $1" >&2
	return 1
}

# a key's request rate of 2 a day: its third request is refused by "key-requests"
agent_config '"token": {"key_requests": {"*": {"capacity": 2, "rate": "1/d"}}}'
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
gw_config
check "gateway starts" start_gateway
TA=$(mint --sub admin-1 --roles ADMIN)
T1=$(mint --sub "$U1" --roles USER --orgs "$O1")
T2=$(mint --sub "$U2" --roles USER)
req POST /api/v1/admin/keys "$TA" "{\"name\":\"rl\",\"owner\":\"$U1\",\"tier\":\"USER\",\"limits\":{\"capacity\":1000000,\"rate\":\"1000/s\"}}"
K1S=$(jqb .secret) K1=$(jqb .id)
req POST /api/v1/admin/keys "$TA" "{\"name\":\"rl2\",\"owner\":\"$U2\",\"tier\":\"USER\",\"limits\":{\"capacity\":1000000,\"rate\":\"1000/s\"}}"
K2=$(jqb .id)

# ---- both sources
CHAT='{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}'
GEM='{"model":"gemini-pro","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}'
n200=0 n429=0
for _ in 1 2 3; do
	gwreq POST /v1/chat/completions "key:$K1S" "$CHAT"
	case $STATUS in 200) n200=$((n200 + 1)) ;; 429) n429=$((n429 + 1)) ;; esac
done
check "gateway: a key's requests, admitted ($n200) and then refused by its request rate ($n429)" \
	test $n200 -ge 1 -a $n429 -ge 1 -a $((n200 + n429)) = 3
gwreq POST /v1/chat/completions "jwt:$T2" "$GEM"
eq "gateway: a JWT request on gemini" "$STATUS" 200
consume() { # TOKEN BODY [X-Request-Id]
	local args=(-s -o "$RB" -w '%{http_code}' -H "Authorization: Bearer $1"
		-H 'Content-Type: application/json' --data-binary "$2")
	[ -n "${3:-}" ] && args+=(-H "X-Request-Id: $3")
	STATUS=$(inns curl "${args[@]}" "$BASE/api/v1/tokens/consume")
}
consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":5}" cons-1
c1=$STATUS
consume "$T1" "{\"userId\":\"$U1\",\"orgId\":\"$O1\",\"provider\":\"openai\",\"tokens\":7}"
c2=$STATUS
consume "$T2" "{\"userId\":\"$U2\",\"provider\":\"qwen\",\"tokens\":20000}"
c3=$STATUS
consume "$T2" "{\"userId\":\"$U2\",\"provider\":\"qwen\",\"tokens\":6000}"
c4=$STATUS
consume "$T2" "{\"userId\":\"$U2\",\"provider\":\"qwen\",\"tokens\":6000}" 'bad id with spaces'
c5=$STATUS
eq "consume: admitted, org, too big, admitted, refused" "$c1 $c2 $c3 $c4 $c5" "200 200 422 200 429"
check "9 rows: 4 gateway requests and 5 consume decisions" wait_rows 9
eq "sources: 4 gateway, 5 consume" \
	"$(jq -c '[.[] | .source] | group_by(.) | map([.[0], length])' "$ALL")" \
	'[["consume",5],["gateway",4]]'
eq "gateway 429: status, outcome, source, limit, key, user" \
	"$(jq -c '[.[] | select(.source == "gateway" and .status == 429)] | .[0] |
	[.outcome, .limit, .key_id, .user_id, .method, .client]' "$ALL")" \
	"[\"rejected\",\"key-requests\",\"$K1\",\"$U1\",\"POST\",\"127.0.0.1\"]"
eq "gateway 200s: no limit, usage known, provider and model, latency" \
	"$(jq -c '[.[] | select(.source == "gateway" and .status == 200) |
	[.limit, (.tokens_in > 0), (.tokens_out > 0), .provider, (.model != null),
	 (.latency_ms > 0), (.tokens_reserved > 0), .outcome]] | unique' "$ALL")" \
	'[[null,true,true,"gemini",true,true,true,"completed"],[null,true,true,"openai",true,true,true,"completed"]]'
eq "consume rows: limit named by what refused (user-tokens), null when admitted" \
	"$(jq -c '[.[] | select(.source == "consume")] | reverse | map([.status, .limit, .tokens_reserved])' "$ALL")" \
	'[[200,null,5],[200,null,7],[422,"user-tokens",20000],[200,null,6000],[429,"user-tokens",6000]]'
eq "consume rows: route, method, client, the org quota's tier, outcome" \
	"$(jq -c '[.[] | select(.source == "consume")] | reverse | map([.route, .method, .client, .tier, .org_id, .outcome]) | .[1,4]' "$ALL" | paste -sd' ')" \
	"[\"/api/v1/tokens/consume\",\"POST\",\"127.0.0.1\",\"org\",\"$O1\",\"completed\"] [\"/api/v1/tokens/consume\",\"POST\",\"127.0.0.1\",\"USER\",null,\"rejected\"]"
eq "consume rows: the caller's X-Request-Id when it is a plain token, else null" \
	"$(jq -c '[.[] | select(.source == "consume")] | reverse | map(.request_id) | [.[0], .[4]]' "$ALL")" \
	'["cons-1",null]'
eq "items: every field, snake_case, time RFC 3339 UTC with ms" \
	"$(jq -c '[.[] | keys_unsorted | join(",")] | unique' "$ALL")" \
	'["id,time,request_id,source,method,route,status,outcome,provider,model,user_id,org_id,tier,key_id,client,tokens_reserved,tokens_in,tokens_out,latency_ms,ttft_ms,limit"]'
check "items: time is RFC 3339 UTC with milliseconds" \
	test "$(jq -r '.[].time' "$ALL" | grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$')" = 0
id=$(jq '.[0].id' "$ALL")
req GET "/api/v1/logs/$id" "$TA"
eq "GET /api/v1/logs/{id}: the item, as in the list" "$STATUS $(jq -c . "$RB")" "200 $(jq -c '.[0]' "$ALL")"

# ---- filters: each returns exactly the rows it names (against the unfiltered list)
put 30 id=syn-a method=GET status=503 outcome=2 provider=qwen route=svc-a user="$U2" org="$O1" \
	keyid="$K2" latency_us=2000
put 20 id=syn-b method=PUT status=404 outcome=4 provider=gemini route=svc-b user="$U1" \
	limit=org-tokens latency_us=1000
check "59 rows" wait_rows 59
cp "$ALL" "$WORK/base.json"
mid=$(jq -r '.[30].time' "$ALL") late=$(jq -r '.[10].time' "$ALL")
# filt NAME QUERY JQ_SELECT [TOKEN]: the API's ids for QUERY = the ids the select keeps
filt() {
	req GET "/api/v1/logs?limit=500&$2" "${4:-$TA}"
	local got want
	got=$(jq -c '[.items[].id]' "$RB")
	want=$(jq -c "[.[] | select($3) | .id]" "$WORK/base.json")
	if [ "$STATUS" = 200 ] && [ "$got" = "$want" ] && [ "$want" != "[]" ]; then
		ok "filter $1: $(jq length <<<"$want") rows"
	else
		notok "filter $1 (status $STATUS, got $got, want $want)"
	fi
}
filt "method=GET" "method=GET" '.method == "GET"'
filt "method=put (any case)" "method=put" '.method == "PUT"'
filt "status=429" "status=429" '.status == 429'
filt "status=4xx" "status=4xx" '.status >= 400 and .status < 500'
filt "status=5XX" "status=5XX" '.status >= 500 and .status < 600'
filt "status=2xx" "status=2xx" '.status >= 200 and .status < 300'
filt "provider=qwen" "provider=qwen" '.provider == "qwen"'
filt "route=svc-b" "route=svc-b" '.route == "svc-b"'
filt "route (consume)" "route=/api/v1/tokens/consume" '.route == "/api/v1/tokens/consume"'
filt "orgId" "orgId=$O1" ".org_id == \"$O1\""
filt "orgId in upper case" "orgId=${O1^^}" ".org_id == \"$O1\""
filt "userId" "userId=$U1" ".user_id == \"$U1\""
filt "userId in upper case" "userId=${U1^^}" ".user_id == \"$U1\""
filt "keyId" "keyId=$K1" ".key_id == \"$K1\""
filt "outcome=rejected" "outcome=rejected" '.outcome == "rejected"'
filt "outcome=upstream_failed" "outcome=upstream_failed" '.outcome == "upstream_failed"'
filt "from (included)" "from=$mid" ".time >= \"$mid\""
filt "to (excluded)" "to=$mid" ".time < \"$mid\""
filt "from and to" "from=$mid&to=$late" ".time >= \"$mid\" and .time < \"$late\""
filt "combined: 4xx, gemini, a user" "status=4xx&provider=gemini&userId=$U1" \
	".status >= 400 and .status < 500 and .provider == \"gemini\" and .user_id == \"$U1\""
req GET "/api/v1/logs?userId=$U1&keyId=$K2" "$TA"
eq "filters combine (AND): a user and another user's key: none" "$STATUS $(jqb '.items | length') $(jqb .next_cursor)" "200 0 null"
req GET "/api/v1/logs?from=2099-01-01T00:00:00Z" "$TA"
eq "from in the future: none" "$STATUS $(jqb '.items | length')" "200 0"
req GET "/api/v1/logs" "$TA"
eq "default limit 50, newest first, next_cursor set" \
	"$(jqb '.items | length') $(jqb '[.items[].id] == ([.items[].id] | sort | reverse)') $(jqb '.next_cursor | length')" "50 true 22"

# ---- who sees what
# seen NAME TOKEN JQ_SELECT: what TOKEN sees = exactly the rows the select keeps
seen() {
	local got want
	all_rows "$2" || { notok "$1 (status $STATUS)"; return; }
	got=$(jq -c '[.[].id]' "$ALL")
	want=$(jq -c "[.[] | select($3) | .id]" "$WORK/base.json")
	if [ "$got" = "$want" ] && [ "$want" != "[]" ]; then ok "$1: $(jq length <<<"$want") rows"; else
		notok "$1 (got $got, want $want)"; fi
}
seen "a USER JWT sees only its own rows" "$T1" ".user_id == \"$U1\""
seen "another USER JWT sees only its own rows" "$T2" ".user_id == \"$U2\""
seen "an API key sees only its own key's rows" "$K1S" ".key_id == \"$K1\""
filt "a USER filtering on its own id in upper case" "userId=${U1^^}" ".user_id == \"$U1\"" "$T1"
filt "a USER filtering on its org" "orgId=$O1" ".user_id == \"$U1\" and .org_id == \"$O1\"" "$T1"
for q in "userId=$U2" "userId=${U2^^}" "userId=$U2&userId=$U1" "orgId=$O2" "keyId=$K2"; do
	req GET "/api/v1/logs?$q" "$T1"
	eq "a USER asking for $q: 403 (or 400 for a repeated parameter)" "$STATUS" \
		"$([ "$q" = "userId=$U2&userId=$U1" ] && echo 400 || echo 403)"
done
for q in "keyId=$K2" "keyId=${K1^^}" "userId=$U2"; do
	req GET "/api/v1/logs?$q" "$K1S"
	eq "an API key asking for $q: 403" "$STATUS" 403
done
filt "a USER's own key filter" "keyId=$K1" ".key_id == \"$K1\"" "$T1"
u2row=$(jq '[.[] | select(.user_id == "'"$U2"'")][0].id' "$WORK/base.json")
req GET "/api/v1/logs/$u2row" "$T1"
eq "a USER reading another user's item: 404 (as if absent)" "$STATUS" 404
req GET "/api/v1/logs/$u2row" "$K1S"
eq "an API key reading another user's item: 404" "$STATUS" 404
req GET "/api/v1/logs/$u2row" "$T2"
eq "its owner reads it" "$STATUS $(jqb .user_id)" "200 $U2"
req GET "/api/v1/logs" ""
eq "no credentials: 401" "$STATUS" 401
req GET "/api/v1/logs/1" ""
eq "no credentials, one item: 401" "$STATUS" 401

# ---- bad parameters: 400 naming the parameter, nothing else happens
c=$(jq -r '.[5].id' "$WORK/base.json")
for bad in limit=0 limit=501 limit=ten limit=-1 status=6xx status=4x status=abc status=99 \
	method=G3T method= provider= route= userId= orgId= keyId= outcome=bogus \
	from=yesterday from=2026-01-01T00:00:00 "to=2026-1-1T00:00:00Z" cursor=abc \
	cursor=AAAAAAAAAAAAAAAAAAAAAA cursor=AAAAAAAAAAAAAAAAAAAAA_ cursor=_____________________w \
	"cursor=$(printf 'x%.0s' $(seq 300))" bogus=1; do
	req GET "/api/v1/logs?$bad" "$TA"
	eq "GET /api/v1/logs?${bad:0:40}: 400 naming ${bad%%=*}" "$STATUS $(jqb .field)" "400 ${bad%%=*}"
done
req GET "/api/v1/logs?from=$late&to=$mid" "$TA"
eq "from after to: 400 naming from" "$STATUS $(jqb .field)" "400 from"
for bad in x 0 -1 1x 99999999999999999999; do
	req GET "/api/v1/logs/$bad" "$TA"
	eq "GET /api/v1/logs/$bad: 400 naming id" "$STATUS $(jqb .field)" "400 id"
done
req GET "/api/v1/logs/999999999" "$TA"
eq "an absent item: 404 problem+json" "$STATUS $(grep -ci '^content-type: application/problem+json' "$HB")" "404 1"
req POST "/api/v1/logs" "$TA" '{}'
eq "POST: 405" "$STATUS" 405

# ---- paging: 1,200 rows, each seen once, in order, while new rows arrive
put 1200 id=pg provider=openai latency_us=100
check "1,259 rows" wait_rows 1259
# new rows keep arriving while the pages are read (bounded: 40 batches, about 2 s)
(for _ in $(seq 40); do "$TOOL" put "$PIN" 5 id=live provider=openai >/dev/null; sleep 0.05; done) &
LIVE=$!
: >"$WORK/pages"
c= pages=0
while [ $pages -lt 100 ]; do
	req GET "/api/v1/logs?limit=97&provider=openai${c:+&cursor=$c}" "$TA"
	[ "$STATUS" = 200 ] || break
	jq -c '.items[] | [.time, .id, .request_id]' "$RB" >>"$WORK/pages"
	pages=$((pages + 1))
	c=$(jqb '.next_cursor // empty')
	[ -z "$c" ] && break
done
wait "$LIVE"
eq "paging: every page answered, the last without a cursor" "$STATUS ${c:-none}" "200 none"
eq "paging: the 1,200 rows each seen exactly once" \
	"$(grep -c '"pg-' "$WORK/pages") $(grep '"pg-' "$WORK/pages" | jq -r '.[2]' | sort -u | wc -l)" "1200 1200"
eq "paging: no item twice" "$(jq -r '.[1]' "$WORK/pages" | sort | uniq -d | wc -l)" 0
eq "paging: newest first across pages (time never goes up)" \
	"$(jq -s 'map(.[0]) | . == (sort | reverse)' "$WORK/pages")" true
check "paging: $pages pages of at most 97" test "$pages" -ge 13

# ---- retention: by rows and by age (an idle agent too)
stop_agent
check "first run: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
agent_config '"token": {"request_log_rows": 100, "request_log_max_age": "4s", "request_log_consume_rate": 5}'
check "agent restarts with 100 rows, 4 s, 5 consume rows a second" start_agent --config "$WORK/agent.json"
put 5 id=old provider=openai age_s=3600
put 250 id=rt provider=openai
# polled, not slept on: the newest 100 of the 250, the hour-old 5 gone (at most 10 s)
for _ in $(seq 100); do
	all_rows
	[ "$(jq -r 'length, .[0].request_id, .[99].request_id' "$ALL" | paste -sd' ')" = "100 rt-249 rt-150" ] && break
	sleep 0.1
done
eq "retention by rows: the newest 100 stay" \
	"$(jq length "$ALL") $(jq -r '.[0].request_id' "$ALL") $(jq -r '.[99].request_id' "$ALL")" \
	"100 rt-249 rt-150"
eq "retention by age: records that arrived an hour ago are not kept" \
	"$(jq '[.[] | select(.request_id | startswith("old"))] | length' "$ALL")" 0
# consume decisions past request_log_consume_rate: counted, not rows; the rollups keep all
U3=00000000-0000-0000-0000-00000000a0a3
T3=$(mint --sub "$U3" --roles USER)
for _ in $(seq 30); do
	consume "$T3" "{\"userId\":\"$U3\",\"provider\":\"openai\",\"tokens\":1}"
done
for _ in $(seq 50); do
	req GET "/api/v1/analytics/usage?userId=$U3" "$TA"
	[ "$(jqb .total.requests)" = 30 ] && break
	sleep 0.1
done
eq "consume rate: the usage rollups count all 30 decisions" "$(jqb .total.requests)" 30
req GET "/api/v1/logs?userId=$U3&limit=500" "$TA"
rows=$(jqb '.items | length')
shed=$(inns curl -s "$BASE/metrics" | awk '$1 == "lt_reqlog_store_dropped_total{reason=\"consume_rate\"}" { print $2 }')
eq "consume rate 5/s: rows + lt_reqlog_store_dropped_total{reason=\"consume_rate\"} = 30" "$((rows + shed))" 30
check "consume rate 5/s: some rows kept ($rows), the rest shed ($shed)" test "$rows" -ge 1 -a "$shed" -ge 10
# polled (at most 15 s), not slept on for 4.5 s: the rows go once they are 4 s old
gone=
for _ in $(seq 150); do
	all_rows && [ "$(jq length "$ALL")" = 0 ] && gone=1 && break
	sleep 0.1
done
check "retention by age on an idle agent: after 4 s without traffic, none left ($(jq length "$ALL"))" \
	test -n "$gone"
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
