#!/usr/bin/env bash
# test_http_edges.sh - input at the edges of HTTP (issue 8 items 9, 10, 12):
#  * non-UTF-8 bytes, overlong forms and characters cut by a length limit,
#    in the path, a token header, a body field or the query, with and
#    without auth: always a 4xx with a valid UTF-8 problem+json, never 500;
#  * an ambiguous length (two Content-Length, or one with Transfer-Encoding):
#    400, connection closed, nothing smuggled behind it;
#  * a slow bucket reports its real window and quota, and a fullAt that is
#    true or null.
# Own netns, pin dir and state dir. Prints TAP.
set -u
TOPIC=edge
# one agent in a private netns, own pins, state, port; start_agent, inns, cleanup
. "$(dirname "$0")/agent_env.sh"

RB=$STATE/body HB=$STATE/hdrs
# req METHOD PATH [curl args...]: sets STATUS; body in $RB, headers in $HB
req() {
	local m=$1 p=$2
	shift 2
	STATUS=$(inns curl -s -X "$m" -o "$RB" -D "$HB" -w '%{http_code}' "$@" "$BASE$p")
}
hdr() { grep -i "^$1:" "$HB" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
jqb() { jq -r "$1" "$RB"; }
# strict UTF-8: glibc iconv refuses overlongs, surrogates and cut sequences;
# it lets F4 90.. (past U+10FFFF) and F5..FF through, so grep for those
utf8() {
	iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1 &&
		! LC_ALL=C grep -qaP '[\xf5-\xff]|\xf4[\x90-\xbf]' "$1"
}
# bad NAME: the last answer is a 4xx problem+json whose body is valid UTF-8 JSON
bad() {
	local why= ct
	ct=$(awk 'tolower($1) == "content-type:" { sub(/\r$/, "", $2); print $2; exit }' "$HB")
	[[ $STATUS == 4?? ]] || why+=" status $STATUS"
	[ "$ct" = application/problem+json ] || why+=" type '$ct'"
	utf8 "$RB" || why+=" body not UTF-8"
	grep -q '"detail":"' "$RB" || why+=" no detail"
	NB=$((NB + 1)) && cp "$RB" "$STATE/problems/$NB.json" # parsed as JSON at the end, at once
	if [ -z "$why" ]; then ok "$1 ($STATUS)"; else
		notok "$1:$why"; sed 's/^/#   /' "$RB" | head -3; echo; fi
}
mint() { "$AGENT" --state-dir "$STATE" mint-token "$@"; }
b64u() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# raw BYTES (printf format): the whole exchange on one connection, 3 s at most
raw() {
	inns timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'$PORT'; printf "$1" >&3; timeout 3 cat <&3' _ "$1"
}

U=00000000-0000-4000-8000-000000000001
NB=0
mkdir -p "$STATE/problems"
check "attach: agent and API start" start_agent
TA=$(mint --sub admin-1 --roles ADMIN)
TU=$(mint --sub $U --roles USER)
# 3-byte characters: every %.16s, %.32s, %.40s, %.64s, %.128s cuts one in two
E20=$(printf '€%.0s' $(seq 20))
E80=$(printf '€%.0s' $(seq 80))
EU=$(printf '%%E2%%82%%AC%.0s' $(seq 80)) # the same, percent-encoded

# ---- item 9: paths -------------------------------------------------------------------
for p in %FF%FE %C0%AF %E0%80%AF %F0%80%80%AF %ED%A0%80 %F4%90%80%80 %C3 "$EU" "x$EU" "admin/$EU"; do
	req GET "/api/v1/$p"; bad "path /api/v1/${p:0:24}, no auth"
	req GET "/api/v1/$p" -H "Authorization: Bearer $TA"; bad "path /api/v1/${p:0:24}, ADMIN"
done
req GET "/api/v1/admin/keys/lk_$EU" -H "Authorization: Bearer $TA"; bad "path: an API key id cut by %.40s"
req GET "/api/v1/admin/keys/%FF%FE/usage" -H "Authorization: Bearer $TA"; bad "path: an API key id of invalid bytes"
req GET "/api/v1/admin/tiers/%FF" -H "Authorization: Bearer $TA"; bad "path: a tier of invalid bytes"
req GET "/api/v1/admin/orgs/%C0%AF/quotas" -H "Authorization: Bearer $TA"; bad "path: an org id with an overlong '/'"
req PATCH "/api/v1/admin/$EU" -H "Authorization: Bearer $TA"; bad "path: 405 or 404 quoting a long non-ASCII path"
out=$(raw 'GET /api/v1/\xff\xfe\xc0\xaf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
printf '%s' "${out#*$'\r\n\r\n'}" >"$RB"
STATUS=$(head -1 <<<"$out" | cut -d' ' -f2)
printf '%s\n' "$out" | sed -n '/^\r$/q;p' >"$HB"
bad "path: raw bytes in the request line"

# ---- item 9: token headers ---------------------------------------------------------------
PL=$(printf '{"sub":"%s","exp":%d}' $U $(( $(date +%s) + 600 )) | b64u)
for h in "{\"alg\":\"$E20\"}" "{\"alg\":\"RS256\",\"kid\":\"$E80\"}" "{\"alg\":\"HS256\",\"typ\":\"$E20\"}"; do
	T="$(printf '%s' "$h" | b64u).$PL.c2ln"
	req POST /api/v1/tokens/consume -H "Authorization: Bearer $T" --data-binary '{}'
	bad "token header ${h:0:20}..."
done
T="$(printf '{"alg":"HS256"}' | b64u).$(printf '{"sub":"\xff\xfe","exp":9999999999}' | b64u).c2ln"
req GET "/api/v1/tokens/quota?userId=$U&provider=openai" -H "Authorization: Bearer $T"; bad "token payload of invalid UTF-8"
req GET "/api/v1/tokens/quota?userId=$U&provider=openai" -H "$(printf 'Authorization: Bearer \xff\xfe.\xc0\xaf.x')"
bad "Authorization of raw invalid bytes"
req GET "/api/v1/tokens/quota?userId=$U&provider=openai" -H "$(printf 'X-API-Key: lk_\xff\xfe.\xc0\xaf')"
bad "X-API-Key of raw invalid bytes"
req GET "/api/v1/admin/keys" -H "$(printf 'Authorization: Bearer lk_\xed\xa0\x80.x')"; bad "admin with an API key of a surrogate"

# ---- item 9: body fields and query strings ---------------------------------------------------
CT=(-H 'Content-Type: application/json')
for auth in "" "$TU" "$TA"; do
	A=(); [ -n "$auth" ] && A=(-H "Authorization: Bearer $auth")
	who=${auth:+auth}; who=${who:-no auth}
	req POST /api/v1/tokens/consume "${A[@]}" "${CT[@]}" --data-binary "{\"userId\":\"$U\",\"provider\":\"$E20\",\"tokens\":1}"
	bad "body: a provider cut by %.32s ($who)"
	req POST /api/v1/tokens/consume "${A[@]}" "${CT[@]}" --data-binary "{\"$E80\":1}"
	bad "body: an unknown field name cut by %.64s ($who)"
	req POST /api/v1/tokens/consume "${A[@]}" "${CT[@]}" --data-binary "$(printf '{"userId":"\xff\xfe\xc0\xaf"}')"
	bad "body: raw invalid bytes in a field ($who)"
	req POST /api/v1/tokens/consume "${A[@]}" "${CT[@]}" --data-binary "$(printf '{"\xc0\xaf":1, "a\xe2\x82":2}')"
	bad "body: overlong and cut bytes in a field name ($who)"
	req GET "/api/v1/tokens/quota?userId=%FF%FE&provider=$EU" "${A[@]}"; bad "query: invalid and long non-ASCII values ($who)"
	req GET "/api/v1/tokens/quota/org?orgId=$EU&provider=%C0%AF" "${A[@]}"; bad "query: org, overlong ($who)"
done
A=(-H "Authorization: Bearer $TA")
req PUT /api/v1/admin/tiers/USER/openai "${A[@]}" "${CT[@]}" --data-binary "{\"capacity\":1,\"rate\":\"$E20\"}"
bad "admin body: a rate of non-ASCII"
req PUT /api/v1/admin/tiers/USER/openai "${A[@]}" "${CT[@]}" --data-binary "{\"$E80\":1}"
bad "admin body: an unknown field name of non-ASCII"
req POST /api/v1/admin/keys "${A[@]}" "${CT[@]}" --data-binary "$(printf '{"name":"\xff","owner":"%s"}' $U)"
bad "admin body: a key name of invalid bytes"
req POST /api/v1/admin/keys "${A[@]}" "${CT[@]}" --data-binary "{\"name\":\"k\",\"owner\":\"$U\",\"tier\":\"$E80\"}"
bad "admin body: a tier of non-ASCII"
req POST /api/v1/admin/providers "${A[@]}" "${CT[@]}" --data-binary "{\"name\":\"$E20\"}"
bad "admin body: a provider of non-ASCII"
req DELETE "/api/v1/admin/penalties?prefix=%FF$EU" "${A[@]}"; bad "admin query: a prefix of invalid bytes"
req PUT "/api/v1/admin/policies?prefix=%C0%AF" "${A[@]}" "${CT[@]}" --data-binary '{}'; bad "admin query: a policy prefix with an overlong"
req POST /api/v1/admin/penalties "${A[@]}" "${CT[@]}" --data-binary "{\"prefix\":\"192.0.2.0/24\",\"duration\":\"$E20\",\"reason\":\"$E80\"}"
bad "admin body: a duration and a reason of non-ASCII"
check "no 500 anywhere: the agent logged none" not grep -q ' -> 5[0-9][0-9]' "$LOG"
check "all $NB problem bodies are JSON objects with a string detail" \
	jq -es 'length > 50 and all(.[]; .detail | type == "string")' "$STATE"/problems/*.json

# ---- item 10: the length of a request is never ambiguous -----------------------------------------
responses() { grep -o 'HTTP/1\.1 [0-9][0-9][0-9]' <<<"$1" | cut -d' ' -f2 | tr '\n' ' '; }
framing() { # NAME REQUEST: one answer, a 400 problem+json, and the connection closed
	local out
	out=$(raw "$2")
	if [ "$(responses "$out")" = "400 " ] && grep -qi '^Connection: close' <<<"$out" &&
		grep -q 'application/problem+json' <<<"$out" && grep -q 'RFC 9112' <<<"$out"; then
		ok "$1"
	else
		notok "$1 (answers: $(responses "$out"))"; sed 's/^/#   /' <<<"$out" | head -12
	fi
}
smuggle() { # NAME REQUEST: the bytes after an ambiguous request are never answered
	local out r
	out=$(raw "$2")
	r=$(responses "$out")
	if [ -z "$r" ] || [ "$r" = "400 " ]; then ok "$1 (answers: ${r:-none})"; else
		notok "$1 (answers: $r)"; sed 's/^/#   /' <<<"$out" | head -12; fi
}
P='POST /api/v1/tokens/consume HTTP/1.1\r\nHost: x\r\n'
framing "two different Content-Length (2, then 12): 400, closed" \
	"${P}Content-Length: 2\r\nContent-Length: 12\r\n\r\n{\"tokens\":1}"
framing "two different Content-Length (12, then 2): 400, closed" \
	"${P}Content-Length: 12\r\nContent-Length: 2\r\n\r\n{\"tokens\":1}"
framing "two equal Content-Length headers: refused too (the documented choice)" \
	"${P}Content-Length: 2\r\ncontent-length: 2\r\n\r\n{}"
framing "Content-Length with Transfer-Encoding: chunked" \
	"${P}Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
framing "Transfer-Encoding then Content-Length, the other order" \
	"${P}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
SMUG='GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' # 35 bytes; with "{}" 37
smuggle "smuggling: a request hidden behind two Content-Length (2, 37) is never answered" \
	"${P}Content-Length: 2\r\nContent-Length: 37\r\n\r\n{}$SMUG"
smuggle "smuggling: nor behind (37, 2)" "${P}Content-Length: 37\r\nContent-Length: 2\r\n\r\n{}$SMUG"
smuggle "smuggling: nor behind Transfer-Encoding + Content-Length" \
	"${P}Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n$SMUG"
out=$(raw "POST /api/v1/tokens/consume HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
check "one Content-Length still works, keep-alive and all (401 then 200: $(responses "$out"))" \
	test "$(responses "$out")" = "401 200 "

# ---- item 12: honest numbers for slow buckets -----------------------------------------------------
req PUT /api/v1/admin/tiers/USER/gemini "${A[@]}" "${CT[@]}" --data-binary '{"capacity":1000,"rate":"1/3650d"}'
check "slow: a tier of 1000 tokens at 1 per 3650 days" test "$STATUS" = 200
CU=(-H "Authorization: Bearer $TU" "${CT[@]}")
req POST /api/v1/tokens/consume "${CU[@]}" --data-binary "{\"userId\":\"$U\",\"provider\":\"gemini\",\"tokens\":1}"
W=$((1000 * 3650 * 86400))
check "slow: w is the real window C/R = $W s ($(hdr RateLimit-Policy))" \
	test "$(hdr RateLimit-Policy)" = "\"USER\";q=1000;w=$W"
# The bucket math owes at most one unit, 2^-unit_shift token (1/32 token at this
# rate, 114 days), and rounding never favours the client: t may be that late.
D=$((3650 * 86400)) SLACK=$((3650 * 86400 / 32 + 2))
t=$(hdr RateLimit | sed 's/.*;t=//')
check "slow: t is the real drain time of 1 token, 3650 days (+ one unit) ($t s)" test "$t" -ge $((D - 2)) -a "$t" -le $((D + SLACK))
req GET "/api/v1/tokens/quota?userId=$U&provider=gemini" -H "Authorization: Bearer $TU"
y=$(( $(date -u +%Y) + 10 ))
check "slow: fullAt is 10 years from now ($(jqb .fullAt))" bash -c "[[ '$(jqb .fullAt)' == $y-* || '$(jqb .fullAt)' == $((y + 1))-* ]]"
check "slow: fullInMs is 3650 days + one unit ($(jqb .fullInMs))" \
	test "$(jqb "(.fullInMs / 1000 | floor) >= $D - 2 and (.fullInMs / 1000) <= $D + $SLACK")" = true
req POST /api/v1/tokens/consume "${CU[@]}" --data-binary "{\"userId\":\"$U\",\"provider\":\"gemini\",\"tokens\":99}"
t=$(hdr RateLimit | sed 's/.*;t=//')
check "slow: 100 tokens drain in 1000 years: t is exact ($t s), not a wrapped ns count" \
	test "$t" -ge $((100 * D - 2)) -a "$t" -le $((100 * D + SLACK))
req GET "/api/v1/tokens/quota?userId=$U&provider=gemini" -H "Authorization: Bearer $TU"
check "slow: beyond 2^64 ns fullAt and fullInMs are null, not a date in 2231" \
	test "$(jqb '[.fullAt, .fullInMs]|@json')" = '[null,null]'
req PUT /api/v1/admin/tiers/USER/qwen "${A[@]}" "${CT[@]}" --data-binary '{"capacity":1099511627776,"rate":"1/3650d"}'
req POST /api/v1/tokens/consume "${CU[@]}" --data-binary "{\"userId\":\"$U\",\"provider\":\"qwen\",\"tokens\":1}"
check "slow: 2^40 at 1 per 3650 days: q is the real quota, w saturates at the largest structured integer ($(hdr RateLimit-Policy))" \
	test "$(hdr RateLimit-Policy)" = '"USER";q=1099511627776;w=999999999999999'
req POST /api/v1/tokens/consume "${CU[@]}" --data-binary "{\"userId\":\"$U\",\"provider\":\"qwen\",\"tokens\":1099511627776}"
check "slow: a refused request's Retry-After and t agree and are not early ($(hdr Retry-After))" \
	test "$STATUS" = 429 -a "$(hdr RateLimit)" = "\"USER\";r=0;t=$(hdr Retry-After)" -a "$(hdr Retry-After)" -ge $((D - 2))
check "slow: retryAfterMs is a number of ms or null, never a wrapped value" \
	test "$(jqb '.retryAfterMs == null or .retryAfterMs >= 315360000000')" = true
check "agent: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
