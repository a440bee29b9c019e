#!/usr/bin/env bash
# test_apikey_map.sh - API-key records without SQLite (issue 8 item 19): the
# agent writes every key to the pinned lt_apikey map; a second process linked
# with liblt only (build/san/tests/lt_peer) authenticates keys from it. A
# revocation through the REST API refuses the key in that process at once and
# shows in bpftool; updates reach the map; at start the map is rebuilt from
# the store. Prints TAP.
set -u
TOPIC=akmap
. "$(dirname "$0")/agent_env.sh"
PEER=$ROOT/build/san/tests/lt_peer
U1=00000000-0000-0000-0000-00000000ac01
U2=00000000-0000-0000-0000-00000000ac02

check "attach" start_agent
TA=$(mint --sub admin-1 --roles ADMIN)
newkey() { # OWNER CAPACITY: sets KID and KSEC
	req POST /api/v1/admin/keys "$TA" "{\"name\":\"n\",\"owner\":\"$1\",\"tier\":\"USER\",\"limits\":{\"capacity\":$2,\"rate\":\"1/m\"}}"
	KID=$(jqb .id) KSEC=$(jqb .secret)
}
# the value of key id ($1) in lt_apikey, as bpftool prints it (BTF names)
dump() { timeout 20 bpftool map dump pinned "$PIN/lt_apikey" -j |
	jq -c --arg id "$1" '.[] | select(.formatted.key.id == $id) | .formatted.value'; }
peer() { timeout 20 "$PEER" apikey "$PIN" "$1"; }

newkey "$U1" 30; expect "create key 1 (REST)" 201
K1=$KID S1=$KSEC
newkey "$U2" 40; expect "create key 2 (REST)" 201
K2=$KID S2=$KSEC
out=$(peer "$S1"); rc=$?
check "a second process (liblt only, no SQLite) authenticates key 1 from lt_apikey: $out" \
	test "$rc/$out" = "0/ok $U1 USER $K1"
out=$(peer "${S1}x"); rc=$?
check "and refuses a wrong secret for it ($out)" test "$rc" = 1
check "bpftool names the fields: owner, tier, capacity, revoked 0" \
	test "$(dump "$K1" | jq -r '[.owner,.tier,.capacity,.revoked]|@csv')" = "\"$U1\",\"USER\",30,0"

req DELETE "/api/v1/admin/keys/$K1" "$TA"; expect "revoke key 1 (REST)" 200
out=$(peer "$S1"); rc=$?
check "at once, the second process refuses key 1 ($out)" test "$rc" = 1
check "bpftool shows key 1 revoked" test "$(dump "$K1" | jq -r .revoked)" = 1
out=$(peer "$S2"); rc=$?
check "key 2 still authenticates ($out)" test "$rc" = 0

req PATCH "/api/v1/admin/keys/$K2" "$TA" '{"limits":{"capacity":90,"rate":"1/m"}}'
expect "update key 2's limit (REST)" 200
check "the map has the new limit" test "$(dump "$K2" | jq -r .capacity)" = 90

# Rebuilt from the store at start: a lost entry comes back, a stray one goes.
stop_agent
keyhex() { printf '%s' "$1" | od -An -tx1 -v | tr -s ' \n' ' '; printf ' 00%.0s' $(seq $((40 - ${#1}))); }
timeout 20 bpftool map delete pinned "$PIN/lt_apikey" key hex $(keyhex "$K2") >&2
STRAY=lk_00000000deadbeef
timeout 20 bpftool map update pinned "$PIN/lt_apikey" key hex $(keyhex $STRAY) \
	value hex $(printf ' 00%.0s' $(seq 232)) >&2
check "restart" start_agent
check "key 2 is back in the map after a restart, with its limit" \
	test "$(dump "$K2" | jq -r .capacity)" = 90
check "key 1 is still revoked" test "$(dump "$K1" | jq -r .revoked)" = 1
check "an entry the store does not have is gone" test -z "$(dump $STRAY)"
out=$(peer "$S2"); rc=$?
check "the second process authenticates key 2 again ($out)" test "$rc" = 0
tap_done
