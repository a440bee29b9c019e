#!/usr/bin/env bash
# test_bans.sh - one implementation per edit: a ban, unban, policy or
# allowlist edit made with the CLI is seen and undone by the REST API and the
# other way round, any spelling of a prefix is the same entry, and a restart
# keeps exactly what is in force (an unban is never undone by a restart; a
# bpftool edit of the live map wins; a new map is refilled from the store).
# Prints TAP.
set -u
TOPIC=bans
. "$(dirname "$0")/agent_env.sh"

cli() { "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" "$@"; }
banned() { # PREFIX: listed by the API (canonical form)
	req GET /api/v1/admin/penalties "$TA"
	jq -e --arg p "$1" '[.penalties[].prefix] | index($p) != null' "$RB" >/dev/null
}
policy_of() { # PREFIX: the API's entry for it, or null
	req GET /api/v1/admin/policies "$TA"
	jq -c --arg p "$1" '[.policies[] | select(.prefix == $p)][0]' "$RB"
}

check "attach" start_agent
TA=$(mint --sub admin-1 --roles ADMIN)

# ---- ban with the CLI, unban with the API, and the other way round ----------
out=$(cli ban 192.0.2.7 2>&1)
check "CLI ban 192.0.2.7 says what it banned ($out)" test "$out" = "banned 192.0.2.7/32"
check "the API lists it as 192.0.2.7/32" banned 192.0.2.7/32
req DELETE '/api/v1/admin/penalties?prefix=192.0.2.7' "$TA"
expect "API DELETE ?prefix=192.0.2.7 (no /32) finds it" 200
req POST /api/v1/admin/penalties "$TA" '{"prefix":"192.0.2.8","duration":"1h"}'
expect "API ban 192.0.2.8" 201
check "CLI unban 192.0.2.8/32" cli unban 192.0.2.8/32
out=$(cli unban 192.0.2.8 2>&1)
expect_err "unban again: not banned" $? "$out" "not banned"
req POST /api/v1/admin/penalties "$TA" '{"prefix":"192.0.2.9/32"}'; expect "API ban 192.0.2.9/32" 201
req DELETE '/api/v1/admin/penalties?prefix=192.0.2.9' "$TA"; expect "API unban 192.0.2.9" 200

# ---- spellings -----------------------------------------------------------------
check "CLI ban ::ffff:192.0.2.10/128" cli ban ::ffff:192.0.2.10/128
check "is 192.0.2.10/32" banned 192.0.2.10/32
req DELETE '/api/v1/admin/penalties?prefix=192.0.2.10' "$TA"; expect "API unban 192.0.2.10: the same entry" 200
check "CLI ban 2001:DB8::1" cli ban 2001:DB8::1
req DELETE '/api/v1/admin/penalties?prefix=2001:db8:0:0::1/128' "$TA"
expect "API unban 2001:db8:0:0::1/128: the same entry" 200
out=$(cli ban 192.0.2.007 2>&1)
expect_err "CLI: 192.0.2.007 is not an address" $? "$out" "not an IPv4 or IPv6 address"
req POST /api/v1/admin/penalties "$TA" '{"prefix":"192.0.2.007"}'; expect "API: nor here" 400

# ---- policies and the allowlist: either front end ---------------------------------
check "CLI policy set 203.0.113.0/24" cli policy set 203.0.113.0/24 --conn 5:1/s
check "the API sees it" test "$(policy_of 203.0.113.0/24)" != null
req DELETE '/api/v1/admin/policies?prefix=203.0.113.0/24' "$TA"; expect "API deletes it" 200
kill -HUP "$AGENT_PID"; sleep 0.5
check "a reload does not bring it back" test "$(policy_of 203.0.113.0/24)" = null
req PUT '/api/v1/admin/policies?prefix=203.0.113.128/25' "$TA" '{"connections":{"capacity":3,"rate":"1/s"}}'
expect "API sets 203.0.113.128/25" 200
check "CLI policy del 203.0.113.128/25" cli policy del 203.0.113.128/25
check "CLI allow add 192.0.2.128/25" cli allow add 192.0.2.128/25
check "the API lists it as an allow entry" test "$(policy_of 192.0.2.128/25 | jq .allow)" = true
check "a narrower allow entry inside it is its own entry" cli allow add 192.0.2.128/26
check "CLI allow del 192.0.2.128/25" cli allow del 192.0.2.128/25

# ---- a restart keeps exactly what is in force; the live map wins ---------------
req POST /api/v1/admin/penalties "$TA" '{"prefix":"198.51.100.1","duration":"1h"}'; expect "ban 198.51.100.1" 201
req POST /api/v1/admin/penalties "$TA" '{"prefix":"198.51.100.2","duration":"1h"}'; expect "ban 198.51.100.2" 201
stop_agent
# break-glass, agent down: unban 198.51.100.1/32 with bpftool and jq, as the README does
slot=$(bpftool -j map dump pinned "$PIN/lt_penalty" | jq '.[].formatted | select(.value.tag != 0
	and .value.prefixlen == 128 and .value.addr == [0,0,0,0,0,0,0,0,0,0,255,255,198,51,100,1]) | .key')
check "bpftool finds the slot of 198.51.100.1 ($slot)" test -n "$slot"
check "bpftool unban of 198.51.100.1 while the agent is down" \
	bpftool map update pinned "$PIN/lt_penalty" key $((slot & 255)) $((slot >> 8 & 255)) $((slot >> 16)) 0 \
	value $(printf '0 %.0s' $(seq 48))
check "restart" start_agent
req GET /api/v1/admin/penalties "$TA"
check "only 198.51.100.2 is banned: every unban held, CLI, API and bpftool alike ($(jqb '[.penalties[].prefix] | join(" ")'))" \
	test "$(jqb '[.penalties[].prefix] | join(" ")')" = 198.51.100.2/32
check "the policy deletions held" test "$(policy_of 203.0.113.0/24)$(policy_of 203.0.113.128/25)$(policy_of 192.0.2.128/25)" = nullnullnull
check "the /26 allow entry stays" test "$(policy_of 192.0.2.128/26 | jq .allow)" = true
stop_agent
rm -f "$PIN/lt_penalty" # the penalty map is lost (as after a reboot)
check "start with a new lt_penalty" start_agent
check "the store refilled it: 198.51.100.2 is banned again" banned 198.51.100.2/32
check "and the unbanned ones stay unbanned" not banned 198.51.100.1/32
check "strikes and reason kept" test "$(jq -c '[.penalties[] | select(.prefix == "198.51.100.2/32")][0] | [.strikes, .reason]' "$RB")" = '[1,"manual"]'
check "no sanitizer report" not grep -q 'Sanitizer' "$LOG"
tap_done
