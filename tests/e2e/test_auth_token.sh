#!/usr/bin/env bash
# test_auth_token.sh - the dashboard's sign-in (issue #11 item 1): POST /api/v1/auth/token
# exchanges an API key for a short-lived JWT bound to that key (its owner, tier and limits,
# ADMIN only for an admin key, which only a JWT admin can make; dead once the key is revoked
# or demoted), and a one-time sign-in code (printed by attach,
# made by `leaky-agent signin-link`) for an ADMIN JWT; codes are single use, expire, are kept
# hashed; issued tokens expire; wrong credentials are 401 and repeated failures 429. Prints TAP.
set -u
TOPIC=atok
. "$(dirname "$0")/agent_env.sh"
U1=00000000-0000-0000-0000-00000000c0c1
O1=10000000-0000-0000-0000-00000000c0d1
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
# claims TOKEN: the JWT's payload
claims() {
	local p
	p=$(cut -d. -f2 <<<"$1" | tr '_-' '/+')
	while [ $((${#p} % 4)) -ne 0 ]; do p="$p="; done
	base64 -d <<<"$p"
}
# token BODY [CRED]: POST /api/v1/auth/token; CRED "key:<secret>" (X-API-Key) or a bearer
token() {
	local args=(-s -X POST -o "$RB" -D "$HB" -w '%{http_code}')
	case ${2:-} in
	key:*) args+=(-H "X-API-Key: ${2#key:}") ;;
	?*) args+=(-H "Authorization: Bearer $2") ;;
	esac
	[ -n "$1" ] && args+=(-H 'Content-Type: application/json' --data-binary "$1")
	STATUS=$(inns curl "${args[@]}" "$BASE/api/v1/auth/token")
	[ "$STATUS" = 401 ] && FAILS=$((FAILS + 1))
}
FAILS=0 # 401s answered so far: each counts against this address
code_of() { grep -o 'code=[A-Za-z0-9_-]*' | tail -1 | cut -d= -f2; }

# issued tokens live 2 s here (and no leeway), so their expiry can be seen
"$AGENT" print-config | jq '.jwt.issued_token_ttl = "2s" | .jwt.leeway = "0s"' >"$WORK/agent.json"
check "agent attaches" start_agent --config "$WORK/agent.json"
TA=$(mint --sub admin-1 --roles ADMIN)

# ---- the sign-in link of attach
line=$(grep '^dashboard: ' "$LOG")
eq "attach prints one sign-in line: the API address, the code in the fragment" \
	"$(grep -c '^dashboard: ' "$LOG") $(grep -cE "^dashboard: http://127\.0\.0\.1:$PORT/ui/#code=[A-Za-z0-9_-]{43}$" <<<"$line")" "1 1"
CODE=$(code_of <<<"$line")
check "the code is not stored in clear (only its SHA-256)" \
	not grep -q "$CODE" "$STATE/signin.db"
eq "signin.db is private (0600)" "$(stat -c %a "$STATE/signin.db")" 600
token "{\"signin_code\":\"$CODE\"}"
eq "a sign-in code: 200, Bearer, 2 s, ADMIN" \
	"$STATUS $(jqb '[.token_type, .expires_in, .roles, .sub] | @json')" \
	'200 ["Bearer",2,["ADMIN"],"dashboard-admin"]'
eq "the response is not cached" "$(grep -i '^cache-control:' "$HB" | tr -d '\r')" "Cache-Control: no-store"
TS=$(jqb .access_token)
req GET /api/v1/admin/keys "$TS"
eq "the token is ADMIN: an admin resource answers" "$STATUS" 200
token "{\"signin_code\":\"$CODE\"}"
eq "the same code again: 401 (single use)" "$STATUS $(jqb .field)" "401 /signin_code"
sleep 3.1 # exp is in whole seconds from iat (whole seconds too)
req GET /api/v1/admin/keys "$TS"
eq "the issued token expired after its 2 s: 401" "$STATUS" 401

# ---- leaky-agent signin-link
out=$("$AGENT" --state-dir "$STATE" --api "127.0.0.1:$PORT" signin-link)
eq "signin-link prints a link" "$(grep -cE "^dashboard: http://127\.0\.0\.1:$PORT/ui/#code=[A-Za-z0-9_-]{43}$" <<<"$out")" 1
C2=$(code_of <<<"$out")
check "--help lists signin-link" bash -c "\"$AGENT\" --help | grep -q '^  signin-link'"
out=$("$AGENT" --state-dir "$STATE" --api "127.0.0.1:$PORT" signin-link)
C3=$(code_of <<<"$out")
last=A
[ "${C2:42}" = A ] && last=E
token "{\"signin_code\":\"${C2:0:42}$last\"}"
eq "a code with one character changed: 401" "$STATUS" 401
token "{\"signin_code\":\"$C2\"}"
eq "the CLI's code signs in, as ADMIN" "$STATUS $(jq -c .roles "$RB")" '200 ["ADMIN"]'
# an expired code: its row made older than 10 minutes
python3 - "$STATE/signin.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE codes SET expires_s = expires_s - 601")
db.commit()
PY
token "{\"signin_code\":\"$C3\"}"
eq "a code older than 10 minutes: 401" "$STATUS" 401
for bad in '' '{}' '{"signin_code":1}' '{"signin_code":"x","more":1}' '[]' 'nope'; do
	token "$bad"
	want=400
	[ -z "$bad" ] && want=401
	eq "body '${bad:-(none)}': $want" "$STATUS" "$want"
done

# ---- API keys (issued tokens live 900 s again: a reload changes it live)
"$AGENT" print-config >"$WORK/agent.json"
kill -HUP "$AGENT_PID"
for _ in $(seq 50); do
	token "{\"signin_code\":\"$C2\"}" # used: a 401 (counted), until the reload is in
	grep -q 'reload: config applied' "$LOG" && break
	sleep 0.1
done
key() { # NAME TIER: a key of U1 (org O1); prints "id secret"
	req POST /api/v1/admin/keys "$TA" "{\"name\":\"$1\",\"owner\":\"${U1^^}\",\"tier\":\"$2\",\"orgId\":\"$O1\",\"limits\":{\"capacity\":100000,\"rate\":\"100/s\"}}"
	echo "$(jqb .id) $(jqb .secret)"
}
read -r KU KUS <<<"$(key user USER)"
read -r KA KAS <<<"$(key admin-tier ADMIN)"
token "" "$KUS"
eq "a USER key (Bearer): 200, its owner, its tier, not ADMIN" \
	"$STATUS $(jqb '[.sub, .roles, .expires_in] | @json')" "200 [\"$U1\",[\"USER\"],900]"
TU=$(jqb .access_token)
eq "the token is bound to the key (lt_key), carries its org" \
	"$(claims "$TU" | jq -c '[.lt_key, .orgs, .sub]')" "[\"$KU\",[\"$O1\"],\"$U1\"]"
token "" "key:$KUS"
eq "a USER key as X-API-Key: 200" "$STATUS" 200
req GET /api/v1/admin/keys "$TU"
eq "the USER key's token is not ADMIN: 403 on an admin resource" "$STATUS" 403
req POST /api/v1/tokens/consume "$TU" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":3}"
eq "the token acts as the key: consume for its owner, charged to the key" \
	"$STATUS $(jqb .apiKey.id)" "200 $KU"
for _ in $(seq 30); do
	req GET "/api/v1/logs?limit=10" "$TU"
	[ "$(jqb '.items | length')" -gt 0 ] && break
	sleep 0.1
done
eq "the token sees only its key's rows in the request log" \
	"$STATUS $(jqb '[.items[].key_id] | unique | @json')" "200 [\"$KU\"]"
token "" "$KAS"
eq "an ADMIN-tier key: roles empty (the tier is named like the admin role), never ADMIN" \
	"$STATUS $(jq -c .roles "$RB")" "200 []"
TK=$(jqb .access_token)
req GET /api/v1/admin/keys "$TK"
eq "an ADMIN-tier key's token on an admin resource: 403" "$STATUS" 403
req GET /api/v1/admin/keys "$KAS"
eq "(as the key itself: 403 too)" "$STATUS" 403
# a forged roles claim cannot be added: the signature covers it
forged="$(cut -d. -f1 <<<"$TU").$(claims "$TU" | jq -c '.roles = ["ADMIN"]' | base64 -w0 | tr '+/' '-_' | tr -d '=').$(cut -d. -f3 <<<"$TU")"
req GET /api/v1/admin/keys "$forged"
eq "the token with roles edited to ADMIN: 401" "$STATUS" 401
# a token for the key minted with ADMIN in its roles (what a bug in the exchange would give):
# the key decides, never the roles
TR=$(jwt "{\"sub\":\"$U1\",\"roles\":[\"ADMIN\"],\"lt_key\":\"$KU\",\"exp\":$(($(date +%s) + 60))}")
req GET /api/v1/admin/keys "$TR"
eq "a key-bound token that says ADMIN is still only the key: 403" "$STATUS" 403
TW=$(jwt "{\"sub\":\"00000000-0000-0000-0000-00000000c0c9\",\"lt_key\":\"$KU\",\"exp\":$(($(date +%s) + 60))}")
req POST /api/v1/tokens/consume "$TW" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
eq "a key-bound token whose sub is not the key's owner: 401" "$STATUS" 401
req DELETE "/api/v1/admin/keys/$KU" "$TA"
req POST /api/v1/tokens/consume "$TU" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
eq "the key revoked: its token stops working (401)" "$STATUS" 401
token "" "$KUS"
eq "a revoked key: 401" "$STATUS $(jqb .status)" "401 401"
token "" "lk_0000000000000000.wrong"
eq "an unknown key: 401" "$STATUS" 401
token "" "$TA"
eq "a JWT is not exchanged: 400 naming Authorization" "$STATUS $(jqb .field)" "400 Authorization"
token "" ""
eq "no credential: 401" "$STATUS" 401
token "{\"signin_code\":\"$CODE\"}" "$KAS"
eq "a code and a key together: 400" "$STATUS" 400

# ---- admin API keys: granted by a JWT admin only, exchanged for an ADMIN token
U2=00000000-0000-0000-0000-00000000c0c2
akey() { # BEARER BODY-EXTRA: POST a key of U2 with extra fields (JSON members)
	req POST /api/v1/admin/keys "$1" "{\"name\":\"ak\",\"owner\":\"$U2\",\"tier\":\"USER\",\"limits\":{\"capacity\":1000,\"rate\":\"10/s\"}$2}"
}
akey "$TA" ',"admin":true'
eq "an ADMIN JWT makes an admin key: 201, admin true" "$STATUS $(jqb .admin)" "201 true"
KAD=$(jqb .id) KADS=$(jqb .secret)
req GET "/api/v1/admin/keys/$KAD" "$TA"
eq "the key reads back as admin" "$(jqb .admin)" true
req GET "/api/v1/admin/keys/$KU" "$TA"
eq "a plain key reads back as not admin" "$(jqb .admin)" false
akey "$TA" ',"admin":"yes"'
eq "admin must be a boolean: 400 naming /admin" "$STATUS $(jqb .field)" "400 /admin"
# lt_apikey's value: flags is its last u32 (lt_abi.h), little-endian; the dump is raw bytes
# when the map has no BTF, named fields when it has
flags=$(bpftool -j map dump pinned "$PIN/lt_apikey" | jq -r --arg id "$KAD" '.[] |
	if .formatted then .formatted | select(.key.id == $id) | .value.flags
	else select([.key[] | ltrimstr("0x") | explode | map(if . >= 97 then . - 87 else . - 48 end) |
		.[0] * 16 + .[1] | select(. > 0)] | implode == $id) |
		.value[228:232] | map(ltrimstr("0x") | explode | map(if . >= 97 then . - 87 else . - 48 end) |
		.[0] * 16 + .[1]) | .[0] + 256 * .[1] + 65536 * .[2] + 16777216 * .[3] end')
eq "lt_apikey carries the admin flag (bpftool: flags 1)" "$flags" 1
token "" "$KADS"
eq "exchanging the admin key: 200, roles [ADMIN], its owner" \
	"$STATUS $(jqb '[.roles, .sub] | @json')" "200 [[\"ADMIN\"],\"$U2\"]"
TAK=$(jqb .access_token)
eq "the admin token is bound to the key (lt_key)" "$(claims "$TAK" | jq -r .lt_key)" "$KAD"
req GET /api/v1/admin/keys "$TAK"
eq "the exchanged token is ADMIN: an admin resource answers 200" "$STATUS" 200
req GET /api/v1/admin/keys "$KADS"
eq "the admin key itself is ADMIN too (200)" "$STATUS" 200
req GET "/api/v1/logs?limit=5" "$TAK"
eq "the admin key's token sees every tenant's rows" "$STATUS $(jqb '[.items[].user_id] | index("'$U1'") != null')" "200 true"
# no more rights than it has: a key never mints an admin key, nor one outliving itself
akey "$TAK" ',"admin":true'
eq "the admin key's token cannot make an admin key: 403 naming /admin" "$STATUS $(jqb .field)" "403 /admin"
akey "$KADS" ',"admin":true'
eq "(nor the admin key itself: 403)" "$STATUS" 403
akey "$TAK" ''
eq "the admin key's token makes a plain key: 201, admin false" "$STATUS $(jqb .admin)" "201 false"
KP=$(jqb .id)
req PATCH "/api/v1/admin/keys/$KP" "$TAK" '{"admin":true}'
eq "nor promotes one: 403" "$STATUS" 403
req GET "/api/v1/admin/keys/$KP" "$TA"
eq "(the key stays a plain key)" "$(jqb .admin)" false
exp_in() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; }
akey "$TA" ",\"admin\":true,\"expiresAt\":\"$(exp_in 3600)\""
KEX=$(jqb .id)
token "" "$(jqb .secret)"
TEX=$(jqb .access_token)
akey "$TEX" ''
eq "an admin key that expires in 1 h cannot make a key that never expires: 403 /expiresAt" \
	"$STATUS $(jqb .field)" "403 /expiresAt"
akey "$TEX" ",\"expiresAt\":\"$(exp_in 7200)\""
eq "nor one that expires after it: 403" "$STATUS" 403
akey "$TEX" ",\"expiresAt\":\"$(exp_in 1800)\""
eq "one that expires before it: 201" "$STATUS" 201
req PATCH "/api/v1/admin/keys/$(jqb .id)" "$TEX" '{"expiresAt":null}'
eq "and cannot extend it past its own expiry: 403" "$STATUS" 403
req PATCH "/api/v1/admin/keys/$KEX" "$TEX" '{"expiresAt":null}'
eq "nor its own: 403" "$STATUS" 403
req PATCH "/api/v1/admin/keys/$KP" "$TA" '{"admin":true}'
eq "a JWT admin promotes a key: 200, admin true" "$STATUS $(jqb .admin)" "200 true"
# demoted, then revoked: the exchanged token follows the key at once
req PATCH "/api/v1/admin/keys/$KAD" "$TA" '{"admin":false}'
eq "a JWT admin demotes the admin key: 200, admin false" "$STATUS $(jqb .admin)" "200 false"
req GET /api/v1/admin/keys "$TAK"
eq "the demoted key's token loses the admin right at once: 403" "$STATUS" 403
req PATCH "/api/v1/admin/keys/$KAD" "$TA" '{"admin":true}'
req GET /api/v1/admin/keys "$TAK"
eq "promoted again: the same token is admin again (200)" "$STATUS" 200
req DELETE "/api/v1/admin/keys/$KAD" "$TA"
req GET /api/v1/admin/keys "$TAK"
eq "the admin key revoked: its token stops working (401)" "$STATUS" 401
token "" "$KADS"
eq "and the revoked admin key is not exchanged (401)" "$STATUS" 401
# kept across a restart (leaky.db), and a leaky.db of an older version gains the column
stop_agent
check "agent restarts" start_agent --config "$WORK/agent.json"
req GET "/api/v1/admin/keys/$KP" "$TA"
eq "after a restart the promoted key is still admin" "$(jqb .admin)" true
stop_agent
python3 - "$STATE/leaky.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("ALTER TABLE api_keys DROP COLUMN admin")
db.commit()
PY
check "agent starts on a leaky.db without the admin column" start_agent --config "$WORK/agent.json"
check "it says it added the column" grep -q 'store: added column api_keys.admin' "$LOG"
req GET "/api/v1/admin/keys/$KP" "$TA"
eq "the older database's keys are plain keys" "$STATUS $(jqb .admin)" "200 false"
FAILS=0 # a new process: the failure counts start again

# ---- repeated failures from one address: 429 until the window ends
for _ in $(seq 30); do
	token "{\"signin_code\":\"$(printf 'z%.0s' $(seq 43))\"}"
	[ "$STATUS" = 429 ] && break
done
eq "after 20 failures (401s) the address gets 429 with Retry-After" \
	"$STATUS $FAILS $(grep -ci '^retry-after: [0-9]' "$HB")" "429 20 1"
token "" "$KAS"
eq "then even a good credential waits (429)" "$STATUS" 429
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
