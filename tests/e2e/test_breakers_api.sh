#!/usr/bin/env bash
# test_breakers_api.sh - the circuit breakers in the pinned lt_breaker map, as the agent's API,
# /metrics and bpftool show them while other processes (lt_brk_peer, one process per call, as
# gateway workers would be) trip, probe and close them; reset through the API reaches them.
# Prints TAP.
TOPIC=brk
. "$(dirname "$0")/agent_env.sh"
PEER=$ROOT/build/san/tests/lt_brk_peer
peer() { "$PEER" "$PIN" "$@"; }

start_agent || { echo "Bail out! agent did not start"; exit 1; }
T_ADMIN=$(mint --sub admin-1 --roles ADMIN)
T_USER=$(mint --sub 00000000-0000-0000-0000-000000000001 --roles USER)
B=/api/v1/admin/breakers
brk() { jq -c --arg n "$1" '.breakers[] | select(.name == $n)' "$RB"; }

req GET $B "$T_ADMIN"
expect "GET breakers: 200" 200
check "every configured provider has a closed breaker from the start" \
	test "$(jq -r '[.breakers[] | select(.state == "closed") | .name] | sort | join(",")' "$RB")" = \
	"gemini,openai,qwen"

# another process trips openai: threshold 2, 60 s recovery (no timing under load), 1 probe
check "a gateway process configures openai's policy in the shared map" \
	peer configure openai 2 60000 1 60000
peer report openai 5xx && peer report openai timeout
req GET $B "$T_ADMIN"
b=$(brk openai)
check "two failures from other processes open openai: $b" \
	test "$(jq -r '[.state, .failures, .trips, .lastCause, .policy.failThreshold] | join(" ")' <<<"$b")" = "open 0 1 timeout 2"
left=$(jq -r '(.until | fromdate) - now' <<<"$b")
check "until is about 60 s from now ($left s)" awk -v l="$left" 'BEGIN { exit !(l > 50 && l <= 61) }'
check "openedAt is RFC 3339" jq -e '.openedAt | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")' <<<"$b"
out=$(peer allow openai)
check "a third process is refused while open: $out" grep -q '^denied state=open retry_after_ms=' <<<"$out"
inns curl -s "$BASE/metrics" >"$WORK/metrics"
check "/metrics: lt_breaker_state{name=\"openai\"} 1" grep -qx 'lt_breaker_state{name="openai"} 1' "$WORK/metrics"
check "/metrics: lt_breaker_state{name=\"gemini\"} 0" grep -qx 'lt_breaker_state{name="gemini"} 0' "$WORK/metrics"
check "/metrics: lt_breaker_trips_total{name=\"openai\"} 1" grep -qx 'lt_breaker_trips_total{name="openai"} 1' "$WORK/metrics"

# bpftool shows the slot with named fields (BTF)
timeout 20 bpftool -j map dump pinned "$PIN/lt_breaker" >"$WORK/dump" 2>&1
v=$(jq -c '.[] | .formatted.value | select(.name == "openai")' "$WORK/dump" 2>/dev/null)
check "bpftool map dump shows openai's slot by field name: state 1 (open): $v" \
	test "$(jq -r '.st.f.state' <<<"$v")" = 0x1

# reset through the agent reaches the other processes
req POST $B/openai/reset "$T_ADMIN"
expect "POST reset: 200" 200
check "the reset answer says closed" test "$(jq -r .state "$RB")" = closed
out=$(peer allow openai)
check "another process is let through after the reset: $out" test "$out" = "allowed probe=0 state=closed"

# the whole walk across processes: open -> (recovery, now 1 s) -> half_open probe -> closed
peer configure openai 2 1000 1 60000
peer report openai connect && peer report openai stream
sleep 1.1
out=$(peer allow openai)
check "after the recovery timeout the next request is a probe: $out" \
	test "$out" = "allowed probe=1 state=half_open"
out=$(peer allow openai)
check "probes are bounded (1): the next one waits: $out" grep -q '^denied state=half_open' <<<"$out"
req GET $B "$T_ADMIN"
check "the API shows half_open with 1 probe issued" \
	test "$(brk openai | jq -r '[.state, .probes.issued, .probes.max] | join(" ")')" = "half_open 1 1"
peer report openai success
req GET $B "$T_ADMIN"
check "the probe's success closes it" test "$(brk openai | jq -r .state)" = closed

# a provider 429 ejects for its own retry-after
peer report qwen 429 60000
req GET $B "$T_ADMIN"
b=$(brk qwen)
left=$(jq -r '(.until | fromdate) - now' <<<"$b")
check "a 429 with retry-after 60 s opens qwen at once for ~60 s ($left s)" \
	awk -v l="$left" -v s="$(jq -r .state <<<"$b")" 'BEGIN { exit !(s == "open" && l > 55 && l <= 61) }'
peer report svc:users 5xx
inns curl -s -H "Authorization: Bearer $T_ADMIN" "$BASE$B" >"$RB"
check "svc:users (created by a gateway process) is listed with its failure" \
	jq -e '.breakers[] | select(.name == "svc:users" and .failures == 1)' "$RB"

# errors
req POST $B/nope/reset "$T_ADMIN"
expect "reset of an unknown breaker: 404" 404
req GET $B/openai/reset "$T_ADMIN"
expect "GET on reset: 405" 405
req POST $B/openai/reset "$T_USER"
expect "reset with a USER token: 403" 403
req POST $B/openai/reset ""
expect "reset without credentials: 401" 401
check "the agent is still alive" kill -0 "$AGENT_PID"
tap_done
