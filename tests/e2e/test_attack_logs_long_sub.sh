#!/usr/bin/env bash
# test_attack_logs_long_sub.sh - a non-admin never reads another tenant's request-log rows
# through the 63-byte cut of user ids (agent/logs.c): a record holds at most
# LT_REQLOG_NAME_LEN - 1 = 63 bytes of a user id, so the gateway's record of a JWT whose sub is
# longer keeps only its first 63 bytes, and a token whose sub was exactly those 63 bytes read
# them as its own (the sub of a real IdP is an e-mail or a path often enough). Prints TAP.
set -u
TOPIC=atklsub
. "$(dirname "$0")/agent_env.sh"
TOOL=$ROOT/build/san/tests/lt_reqlog_tool
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
check "agent attaches" start_agent
P63=$(printf 'v%.0s' $(seq 63))
VICTIM=${P63}@victim.example # 78 bytes
OTHER=00000000-0000-0000-0000-00000000a7c1
now=$(($(date +%s) + 600))
TV=$(jwt "{\"sub\":\"$VICTIM\",\"roles\":[\"USER\"],\"exp\":$now}")
TA=$(jwt "{\"sub\":\"$P63\",\"roles\":[\"USER\"],\"exp\":$now}")
TO=$(jwt "{\"sub\":\"$OTHER\",\"roles\":[\"USER\"],\"exp\":$now}")
TADM=$(mint --sub admin-1 --roles ADMIN)
# what the gateway writes for the victim's request (lt_reqlog_put cuts the user id), and a
# row of an ordinary user
"$TOOL" put "$PIN" 1 user="$VICTIM" model=secret-model >/dev/null
"$TOOL" put "$PIN" 1 user="$OTHER" model=gpt-4o >/dev/null
for _ in $(seq 50); do
	req GET "/api/v1/logs" "$TADM"
	[ "$(jqb '.items | length')" = 2 ] && break
	sleep 0.1
done
eq "the records are in: the long user id is cut to 63 bytes" \
	"$(jqb '[.items[].user_id | length] | sort | @json')" "[36,63]"
req GET "/api/v1/logs" "$TA"
eq "a token whose sub is the cut id (63 bytes): 403, not the victim's rows" \
	"$STATUS $(jqb '[.items[]?.model] | @json')" "403 []"
req GET "/api/v1/logs?userId=$P63" "$TA"
eq "(nor with userId= its own sub)" "$STATUS" 403
req GET "/api/v1/logs" "$TV"
eq "the victim (78 bytes) is refused too: its rows cannot be told from a 63-byte sub's" \
	"$STATUS" 403
req GET "/api/v1/logs" "$TO"
eq "an ordinary user sees its own row" "$STATUS $(jqb '[.items[].model] | @json')" '200 ["gpt-4o"]'
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
