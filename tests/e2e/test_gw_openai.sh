#!/usr/bin/env bash
# test_gw_openai.sh - the official openai npm client (tests/openai, pinned), unmodified,
# pointed at leaky-gateway (issue 9 "Tests"): a chat completion, a streamed completion with
# usage, a 429 it retries after Retry-After and then succeeds, and a 429 with
# x-should-retry: false that it does not retry. API keys made through the agent's API.
# Prints TAP.
set -u
TOPIC=gwoai
. "$(dirname "$0")/gw_env.sh"
U=00000000-0000-0000-0000-0000000022b1

if [ ! -d "$ROOT/tests/openai/node_modules/openai" ]; then
	echo "Bail out! tests/openai/node_modules is missing: run scripts/deps.sh (npm ci)"
	exit 1
fi
# request rates of API keys by tier: USER 1 request, back within a second; SLOW 1 an hour
agent_config '"token": {"providers": ["openai","gemini","qwen","anthropic"],
	"tier_order": ["ADMIN","USER","SLOW"], "default_tier": "USER",
	"tiers": {"USER": {"*": {"capacity": 100000, "rate": "100/s"}},
		  "SLOW": {"*": {"capacity": 100000, "rate": "100/s"}},
		  "ADMIN": {"*": {"capacity": 1000000, "rate": "1000/s"}}},
	"key_requests": {"*": {"capacity": 1000, "rate": "100/s"},
			 "USER": {"capacity": 1, "rate": "1/s"},
			 "SLOW": {"capacity": 1, "rate": "1/h"}},
	"provider_pools": {"*": {"capacity": 100000000, "rate": "1000000/s"}}}'
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
gw_config '"tiers": [{"name": "ADMIN"}, {"name": "USER"}, {"name": "SLOW"}]'
check "gateway starts" start_gateway
TA=$(mint --sub admin-1 --roles ADMIN)
newkey() { # TIER: prints the secret
	req POST /api/v1/admin/keys "$TA" "{\"name\":\"oai\",\"owner\":\"$U\",\"tier\":\"$1\",\"limits\":{\"capacity\":100000,\"rate\":\"100/s\"}}"
	[ "$STATUS" = 201 ] && jqb .secret
}
K=$(newkey ADMIN) KS=$(newkey USER) KL=$(newkey SLOW)
check "three API keys made through the agent" test -n "$K" -a -n "$KS" -a -n "$KL"

tap_lines() {
	local l
	while IFS= read -r l; do
		case $l in
		"ok - "*) ok "${l#ok - }" ;;
		"not ok - "*) notok "${l#not ok - }" ;;
		*) echo "$l" ;;
		esac
	done
}
inns env LT_GW="$GWBASE/v1" LT_KEY="$K" LT_KEY_SHORT="$KS" LT_KEY_LONG="$KL" \
	LT_MODEL=gpt-4o-mini timeout 90 node "$ROOT/tests/openai/client.mjs" >"$WORK/node.out" 2>"$WORK/node.err"
rc=$?
tap_lines <"$WORK/node.out"
[ -s "$WORK/node.err" ] && sed 's/^/# node: /' "$WORK/node.err" | tail -20
# a client that could not load (a missing package) or died printed a few lines or none: that
# is a failure, never a short run of passes
n=$(grep -c '^ok - \|^not ok - ' "$WORK/node.out")
check "the openai client ran to its end ($n checks, exit $rc)" \
	grep -q '^# client done$' "$WORK/node.out"
check "the gateway is still alive" kill -0 "$GW_PID"
tap_done
