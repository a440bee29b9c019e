#!/usr/bin/env bash
# test_reload.sh - SIGHUP reloads every few milliseconds while clients hammer
# the API: no request ever sees a config being freed or half written. A token
# with roles ["USER",""] stays a USER (an empty role matches nothing), no
# ordinary request gets a 4xx (413 "limited to 0 bytes", 403 "no quota"), and
# the admin API stays shut to it. Prints TAP.
set -u
TOPIC=reload
. "$(dirname "$0")/agent_env.sh"

U1=00000000-0000-0000-0000-0000000000e1
"$AGENT" print-config >"$WORK/cfg.json"
check "attach with --config" start_agent --config "$WORK/cfg.json"
now=$(date +%s)
TE=$(jwt "{\"sub\":\"$U1\",\"roles\":[\"USER\",\"\"],\"iat\":$now,\"exp\":$((now + 600))}")
TA=$(mint --sub admin-1 --roles ADMIN)

req GET /api/v1/admin/keys "$TE"; expect "an empty role is not the admin role" 403
req POST /api/v1/tokens/consume "$TE" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
expect "the token is a USER: it consumes" 200
check "its tier is USER" test "$(jqb .tier)" = USER
req PUT /api/v1/admin/tiers/USER/openai "$TA" '{"capacity":1000000000,"rate":"1000000/s"}'
expect "room for every request of the run" 200

# Reload without pause for the whole run: SIGHUP every 2 ms.
(
	for _ in $(seq 2500); do
		kill -HUP "$AGENT_PID" 2>/dev/null || exit 0
		sleep 0.002
	done
) &
HUP=$!
REQS=4000
# Three clients, keep-alive, N requests each (curl URL globbing).
inns curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $TE" \
	"$BASE/api/v1/admin/keys?[1-$REQS]" >"$WORK/admin.txt" &
A=$!
inns curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $TE" -X PUT \
	-H 'Content-Type: application/json' --data-binary '{"capacity":5,"rate":"1/s"}' \
	"$BASE/api/v1/admin/tiers/USER/openai?[1-$REQS]" >"$WORK/tier.txt" &
B=$!
inns curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $TE" \
	-H 'Content-Type: application/json' \
	--data-binary "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}" \
	"$BASE/api/v1/tokens/consume?[1-$REQS]" >"$WORK/consume.txt" &
C=$!
wait $A $B $C
kill "$HUP" 2>/dev/null
wait "$HUP" 2>/dev/null

reloads=$(grep -c 'reload: config applied' "$LOG")
hist() { sort "$1" | uniq -c | tr '\n' ' '; }
echo "# $reloads reloads; admin GET: $(hist "$WORK/admin.txt"); tier PUT: $(hist "$WORK/tier.txt"); consume: $(hist "$WORK/consume.txt")" >&2
check "reloads happened during the run ($reloads)" test "$reloads" -ge 50
check "GET /admin/keys: $REQS answers, every one 403" \
	test "$(grep -c '^403$' "$WORK/admin.txt")" = "$REQS"
check "PUT a tier limit: $REQS answers, every one 403" \
	test "$(grep -c '^403$' "$WORK/tier.txt")" = "$REQS"
check "consume: $REQS answers, every one 200 (no 413, no 403)" \
	test "$(grep -c '^200$' "$WORK/consume.txt")" = "$REQS"
req GET /api/v1/admin/tiers/USER "$TA"
check "the tier limit is the admin's, untouched" test "$(jqb '.providers.openai.capacity')" = 1000000000
check "the agent is alive and serving" kill -0 "$AGENT_PID"
check "no sanitizer report" not grep -q 'Sanitizer' "$LOG"
tap_done
