#!/usr/bin/env bash
# test_consume_body.sh - POST /api/v1/tokens/consume reads the common body shape with its own
# small parser and writes the 200 without jansson (agent/api.c, issue #8); every other body goes
# through jansson. These pin that both ways give the same answers: what the small parser must
# hand over (duplicates, trailing bytes, odd numbers, NUL bytes) and what the 200 holds.
# Prints TAP.
set -u
TOPIC=cbody
. "$(dirname "$0")/agent_env.sh"
start_agent || { echo "Bail out! agent did not start"; exit 1; }
U1=00000000-0000-0000-0000-0000000000c1
O1=00000000-0000-0000-0000-0000000000d1
TA=$(mint --sub admin-1 --roles ADMIN)
T1=$(mint --sub "$U1" --roles USER --orgs "$O1")
C=/api/v1/tokens/consume
bad() { # NAME TYPE BODY: 400 of this problem type
	req POST $C "$T1" "$3"
	if [ "$STATUS" = 400 ] && [ "$(jqb .type)" = "https://leaky-tokens.dev/problems/$2" ]; then
		ok "$1"
	else
		notok "$1 (got $STATUS $(jqb .type 2>/dev/null))"
	fi
}

req POST $C "$T1" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":3}"
expect "plain body: 200" 200
check "plain body: every field of the schema, in order" test \
	"$(jqb 'keys_unsorted|join(",")')" = \
	"capacity,remaining,leakRate,leakRatePerSecond,fullInMs,userId,orgId,provider,tier,charged"
check "plain body: ids, tier and charge" test \
	"$(jqb '[.userId,.orgId,.provider,.tier,.charged]|@csv')" = "\"$U1\",,\"openai\",\"USER\",3"
check "plain body: leakRatePerSecond is written as a JSON real" \
	grep -Eq '"leakRatePerSecond":[0-9]+\.0,' "$RB"
check "plain body: the body is compact JSON, one line" test "$(wc -l <"$RB")" = 0

req POST $C "$T1" " { \"tokens\" : 2 ,\"provider\":\"openai\",
	\"orgId\":null, \"userId\":\"${U1^^}\" } "
expect "whitespace, key order, null orgId, upper-case id: 200" 200
check "upper-case id: answered canonical" test "$(jqb .userId)" = "$U1"
req POST $C "$T1" "{\"userId\":\"\\u0030${U1:1}\",\"provider\":\"open\\u0061i\",\"tokens\":1}"
expect "escaped strings (the jansson path): 200" 200
check "escaped strings: the same ids" test "$(jqb '[.userId,.provider]|@csv')" = "\"$U1\",\"openai\""
req POST $C "$T1" "{\"userId\":\"$U1\",\"orgId\":\"$O1\",\"provider\":\"openai\",\"tokens\":1}"
expect "org body: 200" 200
check "org body: org tier and id" test "$(jqb '[.orgId,.tier]|@csv')" = "\"$O1\",\"org\""

bad "a duplicate userId is refused" malformed-json \
	"{\"userId\":\"$U1\",\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
bad "a duplicate tokens is refused" malformed-json \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1,\"tokens\":1}"
bad "a trailing comma is refused" malformed-json \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1,}"
bad "bytes after the object are refused" malformed-json \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}x"
bad "two objects are refused" malformed-json \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}{}"
bad "a leading zero is refused" malformed-json \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":01}"
bad "tokens 0 is refused" invalid-field "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":0}"
bad "tokens 1.0 is refused" invalid-field \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1.0}"
bad "tokens 1e2 is refused" invalid-field \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1e2}"
bad "tokens -1 is refused" invalid-field "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":-1}"
bad "tokens above 2^40 are refused" invalid-field \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1099511627777}"
bad "17 digits of tokens are refused" invalid-field \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":12345678901234567}"
bad "a string of tokens is refused" invalid-field \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":\"1\"}"
bad "an unknown field is refused" unknown-field \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1,\"x\":1}"
bad "a missing provider is refused" invalid-field "{\"userId\":\"$U1\",\"tokens\":1}"
bad "an unknown provider is refused" unknown-provider \
	"{\"userId\":\"$U1\",\"provider\":\"nope\",\"tokens\":1}"
bad "a numeric orgId is refused" invalid-field \
	"{\"userId\":\"$U1\",\"orgId\":5,\"provider\":\"openai\",\"tokens\":1}"
bad "a userId that is no UUID is refused" invalid-field \
	"{\"userId\":\"x$U1\",\"provider\":\"openai\",\"tokens\":1}"
bad "an empty object is refused" invalid-field "{}"
printf '{"userId":"%s","provider":"openai","tokens":1}\0' "$U1" >"$WORK/nul.json"
STATUS=$(inns curl -s -o "$RB" -w '%{http_code}' -H "Authorization: Bearer $T1" \
	-H 'Content-Type: application/json' --data-binary @"$WORK/nul.json" "$BASE$C")
expect "a NUL byte after the object is refused" 400

req POST /api/v1/admin/keys "$TA" "{\"name\":\"cb\",\"owner\":\"$U1\",\"tier\":\"USER\",\"limits\":{\"capacity\":30,\"rate\":\"1/m\"}}"
expect "API key: created" 201
KSEC=$(jqb .secret) KID=$(jqb .id)
STATUS=$(inns curl -s -o "$RB" -w '%{http_code}' -H "X-API-Key: $KSEC" \
	--data-binary "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":4}" "$BASE$C")
expect "API key: consume 200" 200
check "API key: the key's id and what it has left (30 - 4), last" test \
	"$(jqb '[(keys_unsorted|last),.apiKey.id,.apiKey.remaining]|@csv')" = \
	"\"apiKey\",\"$KID\",26"

# a slow limit: "2 a day" takes both at once (its units were 0.66 s each, and the second
# request of a fresh bucket was refused for up to that long)
req POST /api/v1/admin/keys "$TA" "{\"name\":\"slow\",\"owner\":\"$U1\",\"tier\":\"USER\",\"limits\":{\"capacity\":2,\"rate\":\"2/d\"}}"
KS2=$(jqb .secret)
for i in 1 2 3; do
	st[$i]=$(inns curl -s -o "$RB" -w '%{http_code}' -H "X-API-Key: $KS2" \
		--data-binary "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}" "$BASE$C")
	rem[$i]=$(jqb .apiKey.remaining)
done
check "a key of 2 a day: 2 admitted at once, then 429 (${st[*]}; remaining ${rem[1]} ${rem[2]})" \
	test "${st[1]} ${st[2]} ${st[3]} ${rem[1]} ${rem[2]}" = "200 200 429 1 0"
tap_done
