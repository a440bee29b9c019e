#!/usr/bin/env bash
# test_gw_reload.sh - SIGHUP reloads the gateway's admission options, not only its routes
# (issue 9 item 1: "SIGHUP reloads routes and providers without dropping a connection"; an
# operator who edits a tier's output allowance or the body bound expects the same signal to
# apply it). The stub is told to generate far more than any allowance and honours the
# max_tokens the gateway writes, so the completion it reports is the allowance in force.
# Prints TAP.
set -u
TOPIC=gwrld
. "$(dirname "$0")/gw_env.sh"
U1=00000000-0000-0000-0000-0000000012b1
GW_WORKERS=2

agent_config '"token": {"providers": ["openai","gemini","qwen","anthropic"],
	"tier_order": ["ADMIN","USER"], "default_tier": "USER",
	"tiers": {"USER": {"*": {"capacity": 100000, "rate": "1/d"}},
		  "ADMIN": {"*": {"capacity": 1000000, "rate": "1/d"}}},
	"key_requests": {"*": {"capacity": 1000, "rate": "1/d"}},
	"provider_pools": {"*": {"capacity": 100000000, "rate": "1/d"}}}'
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
gw_config '"tiers": [{"name": "ADMIN", "default_output_tokens": 64}, {"name": "USER", "default_output_tokens": 32}]'
check "gateway starts (2 workers)" start_gateway
T1=$(mint --sub "$U1" --roles USER)
CHAT='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'

# completion tokens of N requests (each worker must follow the file, so ask several times
# on fresh connections: SO_REUSEPORT spreads them over both workers)
completions() {
	local out=
	for _ in 1 2 3 4 5 6; do
		gwreq POST /v1/chat/completions "jwt:$T1" "$CHAT" -H 'x-stub-tokens: 500'
		[ "$STATUS" = 200 ] || { echo "status $STATUS: $(head -c 200 "$RB")" >&2; out+="E "; continue; }
		out+="$(jq .usage.completion_tokens "$RB") "
	done
	echo "$out"
}
c=$(completions)
check "before the reload: the USER allowance 32 is the limit written upstream ($c)" \
	test "$c" = "32 32 32 32 32 32 "

# keep a connection open across the reload: it must not be dropped
inns curl -s -o /dev/null --max-time 20 -H "Authorization: Bearer $T1" \
	-H 'Content-Type: application/json' -H 'x-stub-latency-ms: 1500' \
	--data-binary "$CHAT" -w '%{http_code}' "$GWBASE/v1/chat/completions" >"$WORK/slow.code" &
slow=$!
sleep 0.3
gw_config '"tiers": [{"name": "ADMIN", "default_output_tokens": 64}, {"name": "USER", "default_output_tokens": 12}], "max_body": 2048'
kill -HUP "$GW_PID"
# (20 s: a loaded machine took more than 5 s for the second worker's line)
for _ in $(seq 200); do
	[ "$(grep -c 'admission options reloaded' "$GW_LOG")" -ge 2 ] && break
	sleep 0.1
done
check "both workers log the reload" test "$(grep -c 'admission options reloaded' "$GW_LOG")" -ge 2
c=$(completions)
check "after SIGHUP: the new USER allowance 12 applies in every worker ($c)" \
	test "$c" = "12 12 12 12 12 12 "
big=$(printf '{"model":"gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"%s"}]}' \
	"$(head -c 3000 /dev/zero | tr '\0' a)")
gwreq POST /v1/chat/completions "jwt:$T1" "$big"
check "after SIGHUP: the new max_body (2048 bytes) refuses a 3 kB body with 413 ($STATUS)" \
	test "$STATUS" = 413
wait "$slow"
check "a request in flight across the reload completes ($(cat "$WORK/slow.code"))" \
	test "$(cat "$WORK/slow.code")" = 200

# a bad admission object is refused whole: the running options stay
gw_config '"tiers": [{"name": "USER", "default_output_tokens": -5}]'
kill -HUP "$GW_PID"
for _ in $(seq 50); do grep -q 'reload refused' "$GW_LOG" && break; sleep 0.1; done
check "a bad admission object: reload refused, logged" grep -q 'reload refused' "$GW_LOG"
c=$(completions)
check "after a refused reload: the allowance stays 12 ($c)" test "$c" = "12 12 12 12 12 12 "
check "the gateway is still alive" kill -0 "$GW_PID"
tap_done
