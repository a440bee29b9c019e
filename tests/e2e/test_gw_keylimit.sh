#!/usr/bin/env bash
# test_gw_keylimit.sh - the per-API-key request rate on general API routes (issue #9 item 2):
# a route with "auth": "api_key" and "key_limit": true forwards a key's requests while its
# request bucket r/<tier>/<key> (the agent's token.key_requests) has room, then answers 429
# with Retry-After, retry-after-ms, the RateLimit fields and problem+json; keys are
# independent; a missing, unknown or revoked key is 401, a JWT on a key route too; the LLM
# routes take from the same bucket; two gateway processes share it exactly. Prints TAP.
set -u
TOPIC=gwkl
. "$(dirname "$0")/gw_env.sh"
UP=$ROOT/build/san/tests/gw_upstream
UP_PORT=19101
GW2_PORT=18081
CAP=5
U1=00000000-0000-0000-0000-0000000044c1

agent_config "\"token\": {\"key_requests\": {\"USER\": {\"capacity\": $CAP, \"rate\": \"1/h\"}}}"
check "agent attaches (key_requests USER: $CAP per hour)" start_agent --config "$WORK/agent.json"
nsenter --net=/run/netns/$NS "$UP" $UP_PORT >"$WORK/up.log" 2>&1 &
GW_EXTRA_PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$WORK/up.log" && break; sleep 0.1; done
cat >"$WORK/gateway.json" <<JSON
{
  "listen": "127.0.0.1:$GW_PORT",
  "workers": 2,
  "timeouts": { "connect_ms": 2000, "read_ms": 5000, "total_ms": 20000 },
  "services": { "up": { "urls": ["http://127.0.0.1:$UP_PORT"] } },
  "routes": [
    { "prefix": "/keyed", "service": "up", "strip_prefix": true, "auth": "api_key", "key_limit": true },
    { "prefix": "/keyonly", "service": "up", "strip_prefix": true, "auth": "api_key" },
    { "prefix": "/jwt", "service": "up", "strip_prefix": true, "auth": "jwt" },
    { "prefix": "/open", "service": "up", "strip_prefix": true }
  ],
  "providers": [ {"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:1"} ],
  "models": [ {"pattern": "*", "providers": ["openai"]} ],
  "admission": { "pin_dir": "$PIN", "agent": "127.0.0.1:$PORT", "state_dir": "$STATE" }
}
JSON
check "gateway starts (2 workers)" start_gateway
TA=$(mint --sub admin-1 --roles ADMIN)
TU=$(mint --sub "$U1" --roles USER)
newkey() {
	req POST /api/v1/admin/keys "$TA" "{\"name\":\"kl\",\"owner\":\"$U1\",\"tier\":\"USER\",\"limits\":{\"capacity\":1000000,\"rate\":\"1000/s\"}}"
	jqb .secret
}
K1=$(newkey) K2=$(newkey) K3=$(newkey) K4=$(newkey)

n200=0
for i in $(seq $CAP); do
	gwreq GET /keyed/x$i "key:$K1" ""
	[ "$STATUS" = 200 ] && grep -q "path=/x$i " "$RB" && n200=$((n200 + 1))
	[ "$i" = 1 ] && { P1=$(hdrv RateLimit-Policy) R1=$(hdrv RateLimit); }
done
check "within the limit: $n200 of $CAP requests forwarded (200, upstream saw the stripped path)" \
	test "$n200" = $CAP
check "a success carries RateLimit-Policy ($P1)" grep -q "\"key-requests\";q=$CAP;w=" <<<"$P1"
check "a success carries RateLimit, the request just made counted once ($R1)" \
	grep -qE '"key-requests";r=4;t=' <<<"$R1"
gwreq GET /keyed/over "key:$K1" ""
check "over the limit: 429 (got $STATUS)" test "$STATUS" = 429
RA=$(hdrv Retry-After)
check "429: Retry-After in whole seconds ($RA)" grep -qE '^[1-9][0-9]*$' <<<"$RA"
check "429: retry-after-ms ($(hdrv retry-after-ms))" grep -qE '^[1-9][0-9]*$' <<<"$(hdrv retry-after-ms)"
check "429: RateLimit names the denying policy with r=0 ($(hdrv RateLimit))" \
	grep -q '"key-requests";r=0;t=' <<<"$(hdrv RateLimit)"
check "429: problem+json ($(hdrv Content-Type))" test "$(hdrv Content-Type)" = application/problem+json
check "429: body of type quota-exceeded listing key-requests" \
	jq -e '(.type | endswith("quota-exceeded")) and .status == 429 and .["violated-policies"] == ["key-requests"]' "$RB"
gwreq GET /keyed/x "key:$K2" ""
check "another key is independent: 200 (got $STATUS)" test "$STATUS" = 200
gwreq GET /keyed/x "" "" -H "Authorization: Bearer $K2"
check "the key as Authorization: Bearer lk_...: 200 (got $STATUS)" test "$STATUS" = 200
gwreq GET /keyed/x "" ""
check "no key: 401 (got $STATUS)" test "$STATUS" = 401
check "401: WWW-Authenticate" test -n "$(hdrv WWW-Authenticate)"
check "401: problem+json naming X-API-Key" jq -e '.status == 401 and (.detail | test("API key"))' "$RB"
gwreq GET /keyed/x "key:lk_00000000000000ff.nope" ""
check "an unknown key: 401 (got $STATUS)" test "$STATUS" = 401
gwreq GET /keyed/x "jwt:$TU" ""
check "a JWT on a key route: 401 (got $STATUS)" test "$STATUS" = 401
gwreq GET /keyonly/x "key:$K1" ""
check "auth without key_limit: K1 (over its rate) still passes: 200 (got $STATUS)" test "$STATUS" = 200
gwreq GET /keyonly/x "" ""
check "auth without key_limit: no key is 401 (got $STATUS)" test "$STATUS" = 401
gwreq GET /jwt/x "jwt:$TU" ""
check "auth jwt: a JWT passes: 200 (got $STATUS)" test "$STATUS" = 200
gwreq GET /jwt/x "key:$K2" ""
check "auth jwt: an API key is 401 (got $STATUS)" test "$STATUS" = 401
# one credential field: two would let the gateway judge one and the upstream read another
gwreq GET /keyed/dup "key:$K4" "" -H "X-API-Key: $K2"
check "two X-API-Key fields: 400 naming the field (got $STATUS)" \
	jq -e '.status == 400 and (.detail | test("x-api-key"))' "$RB" # not the upstream's path=
gwreq GET /open/dup "jwt:$TU" "" -H "Authorization: Bearer $TU"
check "two Authorization fields, even on a route without auth: 400 (got $STATUS)" test "$STATUS" = 400
gwreq POST /v1/chat/completions "key:$K4" '{"model":"gpt-4o-mini","max_tokens":5,"messages":[]}' \
	-H "X-Org-Id: $U1" -H "X-Org-Id: $U1"
check "two X-Org-Id fields on an LLM route: 400 (got $STATUS)" test "$STATUS" = 400
check "... answered by the gateway, not forwarded" not grep -q path= "$RB"
gwreq GET /open/long "" "" -H "X-Org-Id: $(head -c 200 /dev/zero | tr '\0' a)"
check "an X-Org-Id longer than the gateway reads, even on a route without auth: 400 (got $STATUS)" \
	jq -e '.status == 400 and (.detail | test("longer than 127"))' "$RB"
gwreq GET /keyed/long "key:$K4$(head -c 600 /dev/zero | tr '\0' a)" ""
check "an X-API-Key longer than the gateway reads: 400, not 'no key' (got $STATUS)" test "$STATUS" = 400
gwreq GET /open/x "" ""
check "a route without auth: 200 without credentials (got $STATUS)" test "$STATUS" = 200
check "a route without auth: no RateLimit fields" test -z "$(hdrv RateLimit)"

req DELETE "/api/v1/admin/keys/$(cut -d. -f1 <<<"$K2")" "$TA"
check "revoke K2 (got $STATUS)" test "$STATUS" = 200
gwreq GET /keyed/x "key:$K2" ""
check "a revoked key: 401 at once (got $STATUS)" test "$STATUS" = 401

# the LLM routes take 1 from the same r/USER/<key>: K1 is spent there too
gwreq POST /v1/chat/completions "key:$K1" '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
check "the LLM route refuses K1 too: one bucket (429, got $STATUS)" test "$STATUS" = 429
check "... on key-requests" grep -q '"key-requests";r=0' <<<"$(hdrv RateLimit)"

# two gateway processes, one bucket: 16 concurrent requests of K3 half through each
sed "s/\"workers\": 2/\"workers\": 1/" "$WORK/gateway.json" >"$WORK/gateway2.json"
nsenter --net=/run/netns/$NS "$GW" --config "$WORK/gateway2.json" --listen 127.0.0.1:$GW2_PORT \
	>"$WORK/gw2.log" 2>&1 &
GW_EXTRA_PIDS+=($!)
for _ in $(seq 100); do inns curl -s -o /dev/null "http://127.0.0.1:$GW2_PORT/" && break; sleep 0.1; done
seq 16 | inns xargs -P 16 -I{} sh -c '
	if [ $(({} % 2)) = 0 ]; then p=$1; else p=$2; fi
	curl -s --max-time 20 -o /dev/null -w "%{http_code}\n" -H "X-API-Key: $3" "http://127.0.0.1:$p/keyed/c{}"
' _ "$GW_PORT" "$GW2_PORT" "$K3" >"$WORK/two.lines"
ok2=$(grep -c '^200$' "$WORK/two.lines") r2=$(grep -c '^429$' "$WORK/two.lines")
check "two gateway processes: exactly $CAP of 16 admitted ($ok2), the rest 429 ($r2)" \
	test "$ok2" = $CAP -a "$r2" = $((16 - CAP))
gwreq GET /keyed/x "key:$K4" ""
check "K4 is untouched by K3's burst and by its refused duplicates: 200 (got $STATUS)" test "$STATUS" = 200
check "no sanitizer report in the gateways" \
	not grep -q 'runtime error\|AddressSanitizer' "$GW_LOG" "$WORK/gw2.log"
tap_done
