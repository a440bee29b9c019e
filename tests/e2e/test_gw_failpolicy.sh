#!/usr/bin/env bash
# test_gw_failpolicy.sh - the shared maps are missing (no agent ever ran): the gateway
# never crashes; by default (on_maps_missing "closed") an LLM request gets 503 with
# Retry-After and reaches no provider; a tier set "open" forwards it unmetered to its
# provider, on the provider's own path. Prints TAP.
set -u
TOPIC=gwfail
. "$(dirname "$0")/gw_env.sh"
check "stub starts" start_stub
NOPIN=/sys/fs/bpf/lt-gwfail-none-$$
gw_config
check "the gateway starts without the agent's maps" start_gateway --pin-dir "$NOPIN"
CHAT='{"model":"gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
gwreq POST /v1/chat/completions "" "$CHAT"
check "closed (the default): 503 ($STATUS) with Retry-After" test "$STATUS" = 503 -a -n "$(hdrv Retry-After)"
check "and no provider saw it" test "$(stub_stats | jq .total.requests)" = 0
stop_gateway
gw_config '"tiers": [{"name": "ADMIN"}, {"name": "USER", "on_maps_missing": "open"}]'
check "restarted with the default tier open" start_gateway --pin-dir "$NOPIN"
gwreq POST /v1/chat/completions "" "$CHAT"
check "open: forwarded unmetered, 200 ($STATUS)" test "$STATUS" = 200
gwreq POST /v1/chat/completions "" '{"model":"qwen-plus","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
check "to the provider's own path (qwen: compatible mode): 200 ($STATUS)" test "$STATUS" = 200
check "the stub saw both, one on DashScope's path" \
	test "$(stub_stats | jq '.total.requests')/$(stub_stats | jq '.dashscope.requests')" = 2/1
check "the gateway is alive" kill -0 "$GW_PID"
tap_done
