#!/usr/bin/env bash
# test_gw_escalation.sh - escalation to the kernel (issue #9 item 8), end to end on a veth:
# a client that ignores the Retry-After of the gateway's 429s is banned (lt_penalty, reason
# gateway-escalation) and XDP drops its packets before user space sees them (its connection
# attempts time out, drop_penalty grows, the penalties API lists it); after the TTL it is let
# back in and served; a second offence gets twice the TTL. A client that waits as told is
# never banned, however many 429s it gets. Short TTLs (3 s, then 6 s). Prints TAP.
#
#   client ns (ltgwescc-PID) 10.201.0.1 (ignores), 10.201.0.3 (waits)  vc <==veth==> vs
#   10.201.0.2 (ltgwesc-PID): agent (XDP on vs, protects the gateway's port), gateway, stub
#
# run.sh: alone. The offending client must send faster than its key's 1/s leak to collect 5
# 429s in the 10 s window. With a 4/s leak, next to other suites (or beside other make test
# runs, load 8-13) its curl-per-request slowed to one per ~250 ms, half were admitted, and it
# was never banned; at 1/s a request may take up to ~600 ms and the ban still comes.
set -u
TOPIC=gwesc
. "$(dirname "$0")/../e2e/gw_env.sh"
NC=ltgwescc-$$
esc_cleanup() {
	gw_cleanup
	ip netns del "$NC" 2>/dev/null
	return 0
}
EXTRA_CLEANUP=esc_cleanup
ina() { nsenter --net=/run/netns/$NC "$@"; }

ip netns add "$NC" && ip -n "$NC" link set lo up &&
	ip link add vc netns "$NC" type veth peer name vs netns "$NS" &&
	ip -n "$NC" addr add 10.201.0.1/24 dev vc && ip -n "$NC" addr add 10.201.0.3/24 dev vc &&
	ip -n "$NS" addr add 10.201.0.2/24 dev vs &&
	ip -n "$NC" link set vc up && ip -n "$NS" link set vs up ||
	{ echo "Bail out! netns/veth setup"; exit 1; }

# the key's request bucket: 1 request, then one a second, so 429s come quickly and
# their waits are short; the XDP policy itself never drops this traffic
agent_config '"protected_ports": ['$GW_PORT'],
	"default_policy": {"connections": {"capacity": 100000, "rate": "100000/s"},
			   "packets": {"capacity": 1000000, "rate": "1000000/s"}},
	"token": {"key_requests": {"*": {"capacity": 1, "rate": "1/s"}},
		  "tiers": {"USER": {"*": {"capacity": 100000000, "rate": "1000000/s"}}}}'
check "agent attaches (XDP on the veth, the gateway's port $GW_PORT protected)" \
	start_agent --iface vs --config "$WORK/agent.json"
check "stub starts" start_stub
gw_config '"escalation": {"rejections": 5, "window_s": 10, "ttl_s": 3, "max_ttl_s": 12, "decay_s": 60}'
check "gateway starts on 0.0.0.0:$GW_PORT" start_gateway --listen 0.0.0.0:$GW_PORT

TA=$(mint --sub admin-1 --roles ADMIN)
req POST /api/v1/admin/keys "$TA" '{"name":"esc","owner":"00000000-0000-0000-0000-0000000e5c01","tier":"USER","limits":{"capacity":100000000,"rate":"1000000/s"}}'
expect "create an API key" 201
KEY=$(jqb .secret)

URL=http://10.201.0.2:$GW_PORT/v1/chat/completions
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}'
CH=$WORK/client.hdrs
# call FROM: one request from the client ns, source address FROM; prints the status (000 when
# no connection was made within 0.9 s), headers in $CH. Under 1 s, the kernel's first SYN
# retransmission: a call connects on the SYN it sent when it started or not at all, so a call
# that connects tells the ban was gone when it started (with 1 s, a call started 2.4 s into a
# 3 s ban connected on its second SYN and read as "let back in after 2.4 s")
call() {
	ina curl -s -o /dev/null -D "$CH" -w '%{http_code}' --interface "$1" --connect-timeout 0.9 \
		--max-time 4 -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
		--data-binary "$BODY" "$URL"
}
drops() { inns "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" status --json | jq -r '.counters.drop_penalty.packets'; }
# pen ADDR FIELD: that field of ADDR's entry in the penalties API ("" when not listed)
pen() {
	req GET /api/v1/admin/penalties "$TA"
	jq -r --arg p "$1/32" ".penalties[] | select(.prefix == \$p) | .$2" "$RB"
}
now_ms() { date +%s%3N; }

# --- a client that waits as told --------------------------------------------------------
n429=0 codes=
for _ in $(seq 12); do
	c=$(call 10.201.0.3)
	codes="$codes $c"
	if [ "$c" = 429 ]; then
		n429=$((n429 + 1))
		ms=$(grep -i '^retry-after-ms:' "$CH" | tr -dc 0-9)
		sleep "$(awk -v m="${ms:-1000}" 'BEGIN { printf "%.3f", m / 1000 }')"
	fi
done
echo "# the polite client:$codes"
check "a client that waits retry-after-ms got $n429 429s (more than the 5 that ban)" test "$n429" -gt 5
check "and is never banned: served, not in the penalty box" \
	test "$(call 10.201.0.3)" != 000 -a -z "$(pen 10.201.0.3 reason)"

# --- a client that ignores the 429s -----------------------------------------------------
# offend: requests back to back until one cannot connect; sets CODES, BANNED_AT (ms, when
# the request before it started: the ban is written while that request's 429 is answered,
# so never earlier; the refused request itself may start much later on a loaded machine)
# and RC (curl's exit status for the refused request)
offend() {
	local t prev=
	CODES= BANNED_AT= RC=
	for _ in $(seq 40); do
		t=$(now_ms)
		call 10.201.0.1 >"$WORK/code"
		RC=$?
		c=$(cat "$WORK/code")
		CODES="$CODES $c"
		if [ "$c" = 000 ]; then BANNED_AT=${prev:-$t}; return 0; fi
		prev=$t
	done
	return 1
}
d0=$(drops)
offend
echo "# the client that ignores them:$CODES"
check "a client that ignores Retry-After is cut off after its 429s" \
	test -n "$BANNED_AT" -a "$(grep -o 429 <<<"$CODES" | wc -l)" -ge 5
check "its connection attempt timed out: XDP dropped its SYNs (curl exit $RC, 28 = timeout)" \
	test "$RC" = 28
d1=$(drops)
check "drop_penalty grew ($d0 -> $d1)" test "$d1" -gt "$d0"
check "the penalties API lists it: reason gateway-escalation, strike 1" \
	test "$(pen 10.201.0.1 reason) $(pen 10.201.0.1 strikes)" = "gateway-escalation 1"
check "the polite client is still served meanwhile" test "$(call 10.201.0.3)" != 000
grep -Eq 'escalation: (::ffff:)?10.201.0.1 banned for 3000 ms \(strike 1' "$GW_LOG"
check "the gateway logged the ban (3000 ms, strike 1)" test $? = 0

# let back in after the TTL (3 s), and served
# back_in: calls until one connects; sets back (ms after BANNED_AT that call started) and c
back_in() {
	local t
	back=
	for _ in $(seq 20); do
		t=$(now_ms)
		c=$(call 10.201.0.1)
		if [ "$c" != 000 ]; then back=$((t - BANNED_AT)); return 0; fi
		sleep 0.2
	done
}
back_in
echo "# first ban: let back in after ${back:-never} ms, status $c"
check "after the TTL (3 s) it is let back in (${back:-never} ms) and served ($c)" \
	test -n "$back" -a "${back:-0}" -ge 2800 -a "${back:-99999}" -lt 5800 -a "$c" = 200

# --- a second offence: twice the TTL -----------------------------------------------------
offend
echo "# second offence:$CODES"
check "a second offence bans it again" test -n "$BANNED_AT"
check "strike 2 in the penalties API" test "$(pen 10.201.0.1 strikes)" = 2
sleep_to() { local w=$(($1 - ($(now_ms) - BANNED_AT))); [ $w -gt 0 ] && sleep "$(awk -v m=$w 'BEGIN { printf "%.3f", m / 1000 }')"; return 0; }
sleep_to 3700
check "still dropped 3.7 s after the ban (the first TTL was 3 s)" test "$(call 10.201.0.1)" = 000
back_in
echo "# second ban: let back in after ${back:-never} ms, status $c"
check "let back in after the doubled TTL, 6 s (${back:-never} ms), and served ($c)" \
	test -n "$back" -a "${back:-0}" -ge 5800 -a "$c" = 200
tap_done
