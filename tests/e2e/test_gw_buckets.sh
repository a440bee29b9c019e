#!/usr/bin/env bash
# test_gw_buckets.sh - the buckets of a gateway request besides u/ and o/, made by the
# agent for lt_bucket_resolve (POST /api/v1/admin/buckets): an API key's request bucket
# r/<tier>/<keyId> with its tier's token.key_requests limit, the provider-wide pool
# p/<provider> with token.provider_pools; a revoked key, a key of another tier, an
# unknown provider or a provider without a pool get nothing; the agent exports the
# lease metrics. TAP.
set -u
TOPIC=gwb
. "$(dirname "$0")/agent_env.sh"
U1=00000000-0000-0000-0000-00000000cc01

"$AGENT" print-config | jq '.token.key_requests = {"USER": {"capacity": 60, "rate": "1/s"}}
	| .token.provider_pools = {"openai": {"capacity": 100000, "rate": "1000/s"}}' >"$WORK/cfg.json"
check "attach with key_requests and provider_pools" start_agent --config "$WORK/cfg.json"
TA=$(mint --sub admin-1 --roles ADMIN)
slot_in_map() { timeout 20 bpftool map dump pinned "$PIN/lt_keyidx" -j |
	jq -r --arg k "$1" '.[] | select(.formatted.key.key == $k) | .formatted.value.slot'; }

req POST /api/v1/admin/keys "$TA" "{\"name\":\"gw\",\"owner\":\"$U1\",\"tier\":\"USER\",\"limits\":{\"capacity\":1000,\"rate\":\"10/s\"}}"
expect "a USER key" 201
KID=$(jqb .id)

req POST /api/v1/admin/buckets "$TA" "{\"key\":\"r/USER/$KID\"}"
expect "r/USER/<key>: made" 200
S=$(jqb .slot)
check "answered with a slot handle ($S)" test "$((S & 0xfffff))" -gt 0
# (an empty bucket nobody consumed may be reclaimed by the sweep at once, so
# asking again may make it anew: 200 either way)
req POST /api/v1/admin/buckets "$TA" "{\"key\":\"r/USER/$KID\"}"
expect "asked again: 200" 200
req POST /api/v1/admin/buckets "$TA" "{\"key\":\"r/ADMIN/$KID\"}"
expect "r/ADMIN/<a USER key>: no quota" 403
req POST /api/v1/admin/buckets "$TA" '{"key":"r/USER/lk_00000000000000ff"}'
expect "r/ of an unknown key: no quota" 403

req POST /api/v1/admin/buckets "$TA" '{"key":"p/openai"}'
expect "p/openai: made" 200
req POST /api/v1/admin/buckets "$TA" '{"key":"p/gemini"}'
expect "p/gemini: no pool configured for it, none made" 403
req POST /api/v1/admin/buckets "$TA" '{"key":"p/nope"}'
expect "p/<unknown provider>: 400" 400
req POST /api/v1/admin/buckets "$TA" '{"key":"p/openai/x"}'
expect "p/ with a trailing part: not a canonical key" 400
check "nothing made for the refused keys" test -z "$(slot_in_map p/gemini)$(slot_in_map "r/ADMIN/$KID")"

req DELETE "/api/v1/admin/keys/$KID" "$TA"; expect "revoke the key" 200
req POST /api/v1/admin/buckets "$TA" "{\"key\":\"r/USER/$KID\"}"
expect "a revoked key: the agent makes nothing for it (403)" 403

req GET /metrics ""; expect "GET /metrics" 200
check "metrics: lt_leases_settled_total exported" grep -q '^lt_leases_settled_total 0$' "$RB"
check "metrics: lt_lease in the map gauges" grep -q '^lt_map_entries{map="lt_lease"} 0$' "$RB"
# one entry, not a dump: the whole array is 47 MB of JSON, which a loaded machine did not
# print within the timeout
check "bpftool: lt_lease dumps with named fields" bash -c \
	"timeout 20 bpftool map lookup pinned $PIN/lt_lease key 0 0 0 0 -j | jq -e '.formatted.value | has(\"owner\") and has(\"deadline_ns\") and has(\"res\")' >/dev/null"
check "agent: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
