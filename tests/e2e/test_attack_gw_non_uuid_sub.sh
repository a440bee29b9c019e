#!/usr/bin/env bash
# test_attack_gw_non_uuid_sub.sh - a verified JWT whose sub (or chosen org) is not a UUID gets
# a clear 403 from the gateway's LLM routes, never a 500: user and org buckets are keyed by
# UUIDs (lib/tenant.c lt_bucket_key), and the failure to build the key was answered
# 500 "the request's bucket keys could not be built" (an IdP's sub is often "auth0|abc" or an
# e-mail; the agent's own sign-in tokens have sub "dashboard-admin"). Prints TAP.
set -u
TOPIC=atksub
. "$(dirname "$0")/gw_env.sh"
agent_config ''
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
gw_config
check "gateway starts" start_gateway
now=$(($(date +%s) + 600))
BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
U=00000000-0000-0000-0000-00000000a5b1
for sub in alice 'auth0|abc123' user@example.com dashboard-admin; do
	T=$(jwt "{\"sub\":\"$sub\",\"roles\":[\"USER\"],\"exp\":$now}")
	gwreq POST /v1/chat/completions "jwt:$T" "$BODY"
	check "sub '$sub': 403 naming the sub (got $STATUS: $(head -c 160 "$RB"))" \
		test "$STATUS $(jq -r .error.param "$RB")" = "403 Authorization"
done
T=$(jwt "{\"sub\":\"$U\",\"roles\":[\"USER\"],\"orgs\":[\"acme\"],\"exp\":$now}")
gwreq POST /v1/chat/completions "jwt:$T" "$BODY" -H 'X-Org-Id: acme'
check "X-Org-Id of a listed org that is not a UUID: 403 naming X-Org-Id (got $STATUS)" \
	test "$STATUS $(jq -r .error.param "$RB")" = "403 X-Org-Id"
T=$(jwt "{\"sub\":\"$U\",\"roles\":[\"USER\"],\"exp\":$now}")
gwreq POST /v1/chat/completions "jwt:$T" "$BODY"
check "a UUID sub still gets its answer (got $STATUS)" test "$STATUS" = 200
stop_gateway
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$GW_LOG" "$LOG"
tap_done
