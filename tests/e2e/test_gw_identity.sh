#!/usr/bin/env bash
# test_gw_identity.sh - the gateway's identity (gateway/identity.c) against a live agent: one
# long-lived process (lt_gw_ident) keeps its API-key cache warm across requests; a key revoked
# through the agent's REST API is refused on that process's very next request (keys_gen in the
# mmapped lt_config moved), while a cached key costs no further map lookup; a new key and a
# limit change are seen at once too; JWTs signed with the agent's secret resolve to the same
# tenant the agent would compute. Prints TAP.
set -u
TOPIC=gwid
. "$(dirname "$0")/agent_env.sh"
IDENT=$ROOT/build/san/tests/lt_gw_ident
U1=00000000-0000-0000-0000-00000000ad01
O1=10000000-0000-0000-0000-00000000ad01

check "attach" start_agent
TA=$(mint --sub admin-1 --roles ADMIN)
newkey() { # OWNER: sets KID and KSEC
	req POST /api/v1/admin/keys "$TA" "{\"name\":\"n\",\"owner\":\"$1\",\"tier\":\"USER\",\"orgId\":\"$O1\",\"limits\":{\"capacity\":30,\"rate\":\"1/m\"}}"
	KID=$(jqb .id) KSEC=$(jqb .secret)
}
newkey "$U1"; expect "create key 1 (REST)" 201
K1=$KID S1=$KSEC

coproc GW { timeout 60 "$IDENT" "$PIN" "$STATE" 2>"$WORK/ident.err"; }
ask() { echo "$1" >&"${GW[1]}"; REPLY=; read -r -t 10 REPLY <&"${GW[0]}"; }

ask "KEY $S1"
check "a key resolves to its tenant: $REPLY" test "$REPLY" = "ok $U1 USER $O1 $K1 misses=1 flushes=0"
for _ in 1 2 3; do ask "KEY $S1"; done
check "repeated requests are served from the cache (still 1 lookup): $REPLY" \
	test "$REPLY" = "ok $U1 USER $O1 $K1 misses=1 flushes=0"
ask "KEY ${S1}x"
check "a wrong secret is refused (401): $REPLY" grep -q '^deny 401 ' <<<"$REPLY"

newkey "$U1"; expect "create key 2 (REST)" 201
K2=$KID S2=$KSEC
ask "KEY $S2"
check "a key created after the cache was filled works at once: $REPLY" \
	grep -q "^ok $U1 USER $O1 $K2 " <<<"$REPLY"

req DELETE "/api/v1/admin/keys/$K1" "$TA"; expect "revoke key 1 (REST)" 200
ask "KEY $S1"
check "the very next request with the revoked key is refused: $REPLY" \
	grep -q '^deny 401 API key is unknown, revoked or expired' <<<"$REPLY"
ask "KEY $S2"
check "key 2 still works, looked up again after the flush: $REPLY" \
	grep -Eq "^ok $U1 USER $O1 $K2 misses=[0-9]+ flushes=[1-9]" <<<"$REPLY"
ask "KEY $S2 ORG 10000000-0000-0000-0000-00000000ad02"
check "an X-Org-Id other than the key's org is 403: $REPLY" grep -q '^deny 403 ' <<<"$REPLY"

T_USER=$(mint --sub "$U1" --roles USER --orgs "$O1")
ask "JWT $T_USER"
check "a JWT signed with the agent's secret resolves to the same tenant: $REPLY" \
	grep -q "^ok $U1 USER $O1 - " <<<"$REPLY"
ask "JWT ${T_USER}x"
check "a tampered JWT is 401: $REPLY" grep -q '^deny 401 ' <<<"$REPLY"

eval "exec ${GW[1]}>&-"
wait "$GW_PID" 2>/dev/null
check "the identity process exits cleanly (no leak)" test ! -s "$WORK/ident.err"
tap_done
