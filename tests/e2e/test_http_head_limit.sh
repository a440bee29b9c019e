#!/usr/bin/env bash
# test_http_head_limit.sh - the request head limit (lib/httpd.c LT_HTTP_POOL_BYTES, 16 KiB):
# what the API accepts still reaches it (a bearer token of the largest size the JWT verifier
# takes, a valid token with several KiB of other fields), and a head past the limit, as one
# long field or as many short ones, gets a clear 431 with the connection closed: not a 500,
# not a dropped connection, not a hang, and the server keeps serving. Prints TAP.
set -u
TOPIC=headlim
. "$(dirname "$0")/agent_env.sh"

check "attach" start_agent
U1=00000000-0000-0000-0000-000000000001
T1=$(mint --sub $U1 --roles USER)
BODY="{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
C=/api/v1/tokens/consume
fill() { head -c "$1" /dev/zero | tr '\0' "${2:-a}"; }
# send CURL_ARGS...: one consume; sets STATUS (000: no response within 10 s), body in $RB,
# response head in $HB
send() {
	STATUS=$(inns curl -s -m 10 -o "$RB" -D "$HB" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$BODY" "$@" "$BASE$C")
}
closes() { grep -qi '^Connection: close' "$HB"; }

# what the API accepts reaches the application
send -H "Authorization: Bearer $(fill 8192 A)"
check "a bearer token of LT_JWT_MAX_LEN (8192) bytes reaches authentication: 401 invalid-token ($STATUS)" \
	test "$STATUS" = 401 -a "$(jqb .type 2>/dev/null | sed 's|.*/||')" = invalid-token
send -H "Authorization: Bearer $T1" -H "X-Trace: $(fill 4096)" -H "X-Tags: $(fill 2048 b)"
check "a valid token with 6 KiB of other fields is served: 200 ($STATUS)" test "$STATUS" = 200

# a head past the limit: 431, the connection closed
for n in 16384 20000 30000; do
	send -H "Authorization: Bearer $T1" -H "X-Trace: $(fill $n)"
	check "a head with a $n-byte field: 431 ($STATUS) and Connection: close" \
		eval 'test "$STATUS" = 431 && closes'
done
send -H "Authorization: Bearer $(fill 17000 A)"
check "a 17000-byte bearer token: 431 ($STATUS), not 401 or 500" test "$STATUS" = 431
many=()
for i in $(seq 600); do many+=(-H "X-F$i: v"); done
send -H "Authorization: Bearer $T1" "${many[@]}"
check "600 short fields (more header records than the pool holds): 431 ($STATUS)" \
	eval 'test "$STATUS" = 431 && closes'

# and the server is unharmed
send -H "Authorization: Bearer $T1"
check "then a normal consume: 200 ($STATUS)" test "$STATUS" = 200
check "the agent is alive" kill -0 "$AGENT_PID"
tap_done
