#!/usr/bin/env bash
# test_state.sh - durable control-plane state under stress: deleting the limit
# of live buckets never makes them unlimited (and a restored limit keeps the
# level); a deleted provider's limits can still be deleted; and with the state
# dir on a full tmpfs, new buckets fail with a clear 503, lt_keyidx never maps
# two keys to one slot, and everything works once space is back. Prints TAP.
set -u
TOPIC=state
umount_state() { umount -l "$STATE" 2>/dev/null; }
EXTRA_CLEANUP=umount_state
. "$(dirname "$0")/agent_env.sh"

# The state dir is a tiny tmpfs, filled up later.
mount -t tmpfs -o size=8m,mode=0700 "lt-$TOPIC-$ID" "$STATE" || { echo "Bail out! tmpfs"; exit 1; }
U1=00000000-0000-0000-0000-0000000000a1
U2=00000000-0000-0000-0000-0000000000a2
O1=10000000-0000-0000-0000-0000000000a1
check "attach (state dir on a tmpfs)" start_agent
T1=$(mint --sub $U1 --roles USER --orgs $O1)
T2=$(mint --sub $U2 --roles USER)
TA=$(mint --sub admin-1 --roles ADMIN)
consume() { req POST /api/v1/tokens/consume "$1" "$2"; }

# ---- item 4: deleting a limit never fails open ----------------------------
req PUT /api/v1/admin/tiers/USER/gemini "$TA" '{"capacity":100,"rate":"1/h"}'
expect "tier USER/gemini: 100 tokens, 1/h" 200
consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"gemini\",\"tokens\":60}"
expect "U1 uses 60 of 100" 200
req DELETE '/api/v1/admin/tiers/USER/*' "$TA"; expect "delete USER/* (USER/gemini still governs)" 200
req DELETE /api/v1/admin/tiers/USER/gemini "$TA"; expect "delete USER/gemini: nothing governs the bucket" 200
consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"gemini\",\"tokens\":1000000000000}"
check "the live bucket is not unlimited: 10^12 tokens refused ($STATUS)" test "$STATUS" = 422
consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"gemini\",\"tokens\":41}"
expect "it keeps its last limit and level: 41 more do not fit" 429
consume "$T2" "{\"userId\":\"$U2\",\"provider\":\"gemini\",\"tokens\":1}"
expect "a new bucket without a limit: 403" 403
req PUT /api/v1/admin/tiers/USER/gemini "$TA" '{"capacity":100,"rate":"1/h"}'
expect "restore USER/gemini" 200
req GET "/api/v1/tokens/quota?userId=$U1&provider=gemini" "$T1"
check "the restored limit kept the level (remaining $(jqb .remaining) of $(jqb .capacity))" \
	test "$(jqb .remaining)/$(jqb .capacity)" = 40/100
req PUT '/api/v1/admin/tiers/USER/*' "$TA" '{"capacity":10000,"rate":"100/s"}'
expect "restore USER/*" 200
req PUT /api/v1/admin/orgs/default/quotas/gemini "$TA" '{"capacity":50,"rate":"1/h"}'
expect "default org quota for gemini: 50" 200
consume "$T1" "{\"userId\":\"$U1\",\"orgId\":\"$O1\",\"provider\":\"gemini\",\"tokens\":30}"
expect "O1 uses 30 of 50" 200
req DELETE '/api/v1/admin/orgs/default/quotas/*' "$TA"; expect "delete the '*' default" 200
req DELETE /api/v1/admin/orgs/default/quotas/gemini "$TA"; expect "and the gemini default" 200
consume "$T1" "{\"userId\":\"$U1\",\"orgId\":\"$O1\",\"provider\":\"gemini\",\"tokens\":21}"
expect "the org bucket keeps its last quota: 21 more do not fit" 429
req PUT '/api/v1/admin/orgs/default/quotas/*' "$TA" '{"capacity":100000,"rate":"1000/s"}'
expect "restore the '*' default" 200

# ---- item 13: a deleted provider's limits can still be deleted -------------
req POST /api/v1/admin/providers "$TA" '{"name":"acme"}'; expect "add provider acme" 201
req PUT /api/v1/admin/tiers/USER/acme "$TA" '{"capacity":10,"rate":"1/s"}'; expect "tier USER/acme" 200
req DELETE /api/v1/admin/providers/acme "$TA"; expect "delete provider acme" 200
req GET /api/v1/admin/tiers/USER "$TA"
check "its limit is kept and listed" test "$(jqb '.providers.acme.capacity')" = 10
req DELETE /api/v1/admin/tiers/USER/acme "$TA"; expect "and can be deleted" 200
req GET /api/v1/admin/tiers/USER "$TA"
check "now it is gone" test "$(jqb '.providers.acme')" = null
req PUT /api/v1/admin/tiers/USER/acme "$TA" '{"capacity":10,"rate":"1/s"}'
expect "setting a limit still needs a known provider" 400

# ---- item 6: a full disk ------------------------------------------------------
orgs=()
for i in $(seq 40); do orgs+=("$(printf '20000000-0000-0000-0000-%012d' "$i")"); done
TO=$(mint --sub $U1 --roles ADMIN)
consume "$TO" "{\"userId\":\"$U1\",\"orgId\":\"${orgs[0]}\",\"provider\":\"openai\",\"tokens\":1}"
expect "a bucket before the disk fills" 200
dd if=/dev/zero of="$STATE/fill" bs=64k >/dev/null 2>&1
check "the state dir is full" test "$(df --output=avail "$STATE" | tail -1)" -lt 64
: >"$WORK/full.txt"
for o in "${orgs[@]:1}"; do
	consume "$TO" "{\"userId\":\"$U1\",\"orgId\":\"$o\",\"provider\":\"openai\",\"tokens\":1}"
	echo "$STATUS $(jqb .type | sed 's|.*/||')" >>"$WORK/full.txt"
done
echo "# while full: $(sort "$WORK/full.txt" | uniq -c | tr '\n' ' ')" >&2
check "while full, new buckets fail with 503 store-unavailable (or succeed), nothing else" \
	not grep -qv '^\(503 store-unavailable\|200 null\)$' "$WORK/full.txt"
check "and most of them fail" test "$(grep -c '^503' "$WORK/full.txt")" -ge 30
req PUT /api/v1/admin/tiers/USER/qwen "$TA" '{"capacity":7,"rate":"1/s"}'
check "an admin write fails whole ($STATUS)" test "$STATUS" = 503
req GET /api/v1/admin/tiers/USER "$TA"
check "and changed nothing" test "$(jqb '.providers.qwen')" = null
keyidx() { bpftool -j map dump pinned "$PIN/lt_keyidx" | jq -r '.[] | .formatted | "\(.value.slot) \(.key.key)"'; }
keyidx >"$WORK/keyidx.txt"
req GET /readyz ""
check "lt_keyidx holds exactly the buckets the agent has ($(wc -l <"$WORK/keyidx.txt") vs $(jqb .buckets))" \
	test "$(wc -l <"$WORK/keyidx.txt")" = "$(jqb .buckets)"
check "no slot is shared by two keys" test -z "$(cut -d' ' -f1 "$WORK/keyidx.txt" | sort | uniq -d)"
rm -f "$STATE/fill"
: >"$WORK/after.txt"
for o in "${orgs[@]:1}"; do
	consume "$TO" "{\"userId\":\"$U1\",\"orgId\":\"$o\",\"provider\":\"openai\",\"tokens\":1}"
	echo "$STATUS" >>"$WORK/after.txt"
done
check "space again: every org gets its bucket" test "$(grep -c '^200$' "$WORK/after.txt")" = 39
keyidx >"$WORK/keyidx.txt"
req GET /readyz ""
check "lt_keyidx matches again ($(wc -l <"$WORK/keyidx.txt") entries)" \
	test "$(wc -l <"$WORK/keyidx.txt")" = "$(jqb .buckets)"
check "and still no slot is shared" test -z "$(cut -d' ' -f1 "$WORK/keyidx.txt" | sort | uniq -d)"
check "the agent is alive" kill -0 "$AGENT_PID"
check "no sanitizer report" not grep -q 'Sanitizer' "$LOG"
tap_done
