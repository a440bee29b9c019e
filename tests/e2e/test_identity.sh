#!/usr/bin/env bash
# test_identity.sh - one tenant, one spelling (issue 8 item 1), attacked the
# way a client would: every case variant of a UUID, mixed case between the
# JWT sub and the body, org claims against orgId, percent-encoding, spaces,
# braces, URNs and Unicode look-alikes. Total admitted across spellings never
# exceeds one quota, and reads create no bucket. Own netns, pin dir, state
# dir. Prints TAP.
set -u
TOPIC=id
# one agent in a private netns, own pins, state, port; start_agent, inns, cleanup
. "$(dirname "$0")/agent_env.sh"
buckets() { inns curl -s "$BASE/readyz" | jq -r .buckets; }
keyidx() { bpftool -j map dump pinned "$PIN/lt_keyidx" | jq length; }

# random upper/lower case variant of $1 (hex letters only change)
variant() {
	local s=$1 out= c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		if [[ $c == [a-f] ]] && ((RANDOM % 2)); then c=${c^^}; fi
		out+=$c
	done
	printf '%s' "$out"
}
upper() { printf '%s' "${1^^}"; }

U=abcdefab-cdef-4abc-8def-abcdefabcdef # 32 hex letters: 2^32 spellings
O=fedcbafe-dcba-4fed-8cba-fedcbafedcba
ADM=00000000-0000-4000-8000-00000000000a

check "attach: agent and API start" start_agent
TA=$(mint --sub $ADM --roles ADMIN)
req PUT /api/v1/admin/tiers/USER/qwen "$TA" '{"capacity":100,"rate":"1/d"}'
expect "setup: USER/qwen = 100 tokens at 1/day" 200

# ---- case variants of one user: one pool ----------------------------------------
TU=$(mint --sub "$(variant $U)" --roles USER) # the token's sub is mixed case too
admitted=0 n=0 statuses=
b0=$(buckets)
for i in $(seq 24); do
	v=$(variant $U)
	[ "$i" = 1 ] && v=$(upper $U)
	req POST /api/v1/tokens/consume "$TU" "{\"userId\":\"$v\",\"provider\":\"qwen\",\"tokens\":60}"
	n=$((n + 1))
	[ "$STATUS" = 200 ] && admitted=$((admitted + 60))
	statuses+=" $STATUS"
done
check "variants: 24 spellings of one userId admit 60 tokens in total, not 1440 (admitted $admitted)" \
	test "$admitted" = 60
check "variants: every other spelling got 429, none 403 (sub is mixed case, body another case)" \
	test "$(tr ' ' '\n' <<<"$statuses" | grep . | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" = "200:1 429:23 "
check "variants: one bucket was created for 24 spellings" test "$(( $(buckets) - b0 ))" = 1
check "variants: lt_keyidx holds only the lower-case key" bash -c \
	"bpftool map dump pinned $PIN/lt_keyidx | grep -c 'u/USER/qwen/' | grep -qx 1 &&
	 bpftool map dump pinned $PIN/lt_keyidx | grep -q 'u/USER/qwen/$U'"

# ---- the org claim against orgId, and the org's own quota -------------------------
req PUT "/api/v1/admin/orgs/$(upper $O)/quotas/qwen" "$TA" '{"capacity":50,"rate":"1/d"}'
expect "org: an org quota set under an upper-case path" 200
req GET "/api/v1/admin/orgs/$O/quotas" "$TA"
check "org: it is stored under the canonical id" test "$(jqb '.org + ":" + (.providers.qwen.capacity|tostring)')" = "$O:50"
TO=$(mint --sub $U --roles USER --orgs "$(upper $O)")
org_admitted=0
for i in $(seq 12); do
	req POST /api/v1/tokens/consume "$TO" "{\"userId\":\"$U\",\"orgId\":\"$(variant $O)\",\"provider\":\"qwen\",\"tokens\":30}"
	[ "$STATUS" = 200 ] && org_admitted=$((org_admitted + 30))
	[ "$i" = 1 ] && first=$(jqb .capacity)
done
check "org: an upper-case orgs claim matches a mixed-case orgId, at the org's own quota 50 (got $first)" \
	test "$first" = 50
check "org: 12 spellings of the org admit 30 tokens in total (admitted $org_admitted)" test "$org_admitted" = 30

# ---- reads never create a bucket ----------------------------------------------------
b0=$(buckets) k0=$(keyidx)
for i in $(seq 6); do
	req GET "/api/v1/tokens/quota?userId=$(variant $U)&provider=gemini" "$TU"
done
expect "reads: GET quota for a provider never used answers 200" 200
check "reads: the full quota (10000 of 10000, fullAt now)" \
	test "$(jqb '[.capacity,.remaining,.fullInMs]|@csv')" = "10000,10000,0"
for i in $(seq 6); do
	req GET "/api/v1/tokens/quota?userId=$(printf %08d $i)-0000-4000-8000-000000000000&provider=openai" "$TA"
	req GET "/api/v1/tokens/quota/org?orgId=$(printf %08d $i)-0000-4000-8000-00000000000f&provider=openai" "$TA"
done
expect "reads: ADMIN reads quotas of 12 tenants never seen" 200
req POST /api/v1/admin/keys "$TA" "{\"name\":\"k\",\"owner\":\"$(upper $U)\",\"tier\":\"USER\",\"limits\":{\"capacity\":5,\"rate\":\"1/d\"}}"
KID=$(jqb .id)
check "keys: an upper-case owner is stored canonical" test "$(jqb .owner)" = "$U"
req GET "/api/v1/admin/keys/$KID/usage" "$TA"
expect "reads: usage of a key never used" 200
check "reads: it reads as the full key limit" test "$(jqb '[.admitted,.remaining]|@csv')" = "0,5"
check "reads: 19 reads created no bucket ($(buckets) vs $b0)" test "$(buckets)" = "$b0"
check "reads: and no lt_keyidx entry ($(keyidx) vs $k0)" test "$(keyidx)" = "$k0"
req GET "/api/v1/tokens/quota?userId=$(upper $U)&provider=qwen" "$TU"
check "reads: an upper-case read sees the one pool (remaining 40)" test "$(jqb .remaining)" = 40

# ---- spellings that are not the tenant are refused, not repaired ----------------------
PCT=$(printf '%s' "$U" | sed 's/a/%41/g; s/-/%2d/')
req GET "/api/v1/tokens/quota?userId=$PCT&provider=qwen" "$TU"
check "query: percent-encoded upper case is the same tenant (remaining 40)" test "$STATUS:$(jqb .remaining)" = "200:40"
for bad in " $U" "$U " "%20$U" "$U%20" "%7B$U%7D" "urn:uuid:$U" "${U//-/}" \
	"$(sed 's/a/%D0%B0/' <<<"$U")" "$(sed 's/4/%EF%BC%94/' <<<"$U")" \
	"$(sed 's/b/%C3%9F/' <<<"$U")" "${U:0:35}%00" ; do
	q=${bad// /%20}
	req GET "/api/v1/tokens/quota?userId=$q&provider=qwen" "$TU"
	[ "$STATUS" = 400 ] || { notok "query: '$bad' refused with 400 (got $STATUS)"; continue; }
	ok "query: '$bad' refused with 400"
done
for bad in " $U" "$U " "{$U}" "urn:uuid:$U" "${U//-/}" "$(sed 's/a/а/' <<<"$U")" \
	"$(sed 's/4/４/' <<<"$U")" "$(sed 's/c/\\u0441/' <<<"$U")" "$(sed 's/-/\\u2010/' <<<"$U")"; do
	req POST /api/v1/tokens/consume "$TU" "{\"userId\":\"$bad\",\"provider\":\"qwen\",\"tokens\":1}"
	if [ "$STATUS" = 400 ]; then ok "body: userId '$bad' refused with 400"; else
		notok "body: userId '$bad' refused with 400 (got $STATUS)"; fi
done
req POST /api/v1/tokens/consume "$TO" "{\"userId\":\"$U\",\"orgId\":\"{$O}\",\"provider\":\"qwen\",\"tokens\":1}"
expect "body: orgId in braces refused" 400
for sub in "{$U}" "urn:uuid:$U" " $U" "${U//-/}"; do
	T=$(mint --sub "$sub" --roles USER)
	req POST /api/v1/tokens/consume "$T" "{\"userId\":\"$U\",\"provider\":\"qwen\",\"tokens\":1}"
	if [ "$STATUS" = 403 ]; then ok "sub '$sub' is not the user $U (403)"; else
		notok "sub '$sub' is not the user $U (got $STATUS)"; fi
done
T=$(mint --sub $U --roles USER --orgs "{$O}")
req POST /api/v1/tokens/consume "$T" "{\"userId\":\"$U\",\"orgId\":\"$O\",\"provider\":\"qwen\",\"tokens\":1}"
expect "orgs claim '{$O}' is not membership of $O" 403
req PUT "/api/v1/admin/orgs/%7B$O%7D/quotas/qwen" "$TA" '{"capacity":50,"rate":"1/d"}'
expect "admin: an org path in braces is not an org" 404
req GET "/api/v1/tokens/quota?userId=$U&provider=QWEN" "$TU"
expect "provider names are exact: QWEN is not qwen" 400
check "agent: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
