#!/usr/bin/env bash
# test_gw_breaker.sh - circuit breakers through the gateway (issue 9 item 6): a provider
# that fails on command (a second leaky-stub answering 500) trips its breaker after the
# threshold, shared by both gateway workers; requests fall back along the model's chain
# and are charged once; while OPEN the failing provider gets no request; after the
# recovery time a probe goes (HALF_OPEN), and a success closes it; the agent's reset
# works; a provider that never answers costs at most its timeout (504), and when no
# provider is left the answer is 503 problem-shaped. Prints TAP.
set -u
TOPIC=gwbrk
GW_WORKERS=2
. "$(dirname "$0")/gw_env.sh"
U=00000000-0000-0000-0000-0000000044d1
BAD_PORT=19101 HUNG_PORT=19102
agent_config '"token": {"providers": ["openai","gemini","qwen","anthropic","bad","hung"],
	"tier_order": ["ADMIN","USER"], "default_tier": "USER",
	"tiers": {"USER": {"*": {"capacity": 1000000, "rate": "1000/s"}},
		  "ADMIN": {"*": {"capacity": 1000000, "rate": "1000/s"}}}}'
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
nsenter --net=/run/netns/$NS "$STUB" --listen 127.0.0.1:$BAD_PORT --status 500 --quiet >"$WORK/bad.log" 2>&1 &
GW_EXTRA_PIDS+=($!)
nsenter --net=/run/netns/$NS "$STUB" --listen 127.0.0.1:$HUNG_PORT --latency-ms 600000 --quiet >"$WORK/hung.log" 2>&1 &
GW_EXTRA_PIDS+=($!)
sleep 0.5
gw_config '"breaker": {"fail_threshold": 3, "recovery_ms": 2000, "probes": 1}'
# the chain: "fb-*" tries bad, then openai; "hang-*" goes to hung only
jq --arg b "http://127.0.0.1:$BAD_PORT" --arg h "http://127.0.0.1:$HUNG_PORT" '
	.providers += [{"name": "bad", "kind": "openai", "base_url": $b},
		       {"name": "hung", "kind": "openai", "base_url": $h,
			"timeouts": {"connect_ms": 500, "read_ms": 1500, "total_ms": 1500}}]
	| .models = [{"pattern": "fb-*", "providers": ["bad", "openai"]},
		     {"pattern": "hang-*", "providers": ["hung"]}] + .models' \
	"$WORK/gateway.json" >"$WORK/g.json" && mv "$WORK/g.json" "$WORK/gateway.json"
check "gateway starts" start_gateway
TA=$(mint --sub admin-1 --roles ADMIN)
T=$(mint --sub "$U" --roles USER)
CHAT='{"model":"fb-1","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
bad_requests() { inns curl -s "http://127.0.0.1:$BAD_PORT/stub/stats" | jq .total.requests; }
state() { req GET /api/v1/admin/breakers "$TA"; jq -r --arg n "$1" '.. | objects | select(.name? == $n) | .state' "$RB" | head -1; }

codes=""
for i in 1 2 3 4 5 6; do
	gwreq POST /v1/chat/completions "jwt:$T" "$CHAT"
	codes="$codes $STATUS"
done
check "every request falls back to the next provider and succeeds:$codes" \
	test "$codes" = " 200 200 200 200 200 200"
n=$(bad_requests)
check "the failing provider got exactly the threshold (3) before its breaker opened ($n)" test "$n" = 3
check "the breaker is OPEN in the agent's API ($(state bad))" test "$(state bad)" = open
check "and shows in bpftool" sh -c "timeout 10 bpftool map dump pinned $PIN/lt_breaker | grep -q bad"
sleep 2.3
gwreq POST /v1/chat/completions "jwt:$T" "$CHAT"
check "after the recovery time a probe goes to it (HALF_OPEN), fails, and the request falls back ($STATUS)" \
	test "$STATUS" = 200 -a "$(bad_requests)" = 4
check "the failed probe opens it again ($(state bad))" test "$(state bad)" = open
req POST /api/v1/admin/breakers/bad/reset "$TA"
check "the agent resets it ($STATUS): CLOSED" test "$STATUS" = 200 -a "$(state bad)" = closed
gwreq POST /v1/chat/completions "jwt:$T" "$CHAT"
check "after the reset the provider is tried again ($(bad_requests) requests)" test "$(bad_requests)" = 5

t0=$(date +%s%N)
gwreq POST /v1/chat/completions "jwt:$T" '{"model":"hang-1","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
ms=$((($(date +%s%N) - t0) / 1000000))
check "a provider that never answers costs at most its timeout: $STATUS after $ms ms" \
	test "$STATUS" = 504 -a "$ms" -lt 5000
for i in 1 2 3; do
	gwreq POST /v1/chat/completions "jwt:$T" '{"model":"hang-1","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
done
gwreq POST /v1/chat/completions "jwt:$T" '{"model":"hang-1","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
check "with its breaker open and no fallback: 503 at once ($STATUS), with Retry-After" \
	test "$STATUS" = 503 -a -n "$(hdrv Retry-After)"
check "the gateway's workers are alive" kill -0 "$GW_PID"
tap_done
