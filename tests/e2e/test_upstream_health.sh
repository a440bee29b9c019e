#!/usr/bin/env bash
# test_upstream_health.sh - the gateways' active health checks reach the agent (issue #11,
# "Routes, providers and breakers: health, latency, breaker state"): the leaky-gateway master
# writes each check into the pinned lt_upstream map, and the agent's
# GET /api/v1/admin/upstreams shows it (up, down with the reason, stale once no gateway
# checks it any more), agreeing with the gateway's own lt_gateway_upstream_up; an upstream
# that comes back is up again; bpftool reads the map; a non-admin gets 403. Prints TAP.
set -u
TOPIC=uphl
. "$(dirname "$0")/gw_env.sh"
MPORT=18090
S=http://127.0.0.1:$STUB_PORT
SICK_PORT=19118
SICK=http://127.0.0.1:$SICK_PORT
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}

agent_config ''
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
cat >"$WORK/gateway.json" <<JSON
{
  "listen": "127.0.0.1:$GW_PORT",
  "workers": 1,
  "metrics": {"listen": "127.0.0.1:$MPORT"},
  "services": {
    "stub": {"urls": ["$S"], "health": {"path": "/stub/stats", "interval_ms": 200, "timeout_ms": 500}},
    "sick": {"urls": ["$SICK"], "health": {"path": "/healthz", "interval_ms": 200, "timeout_ms": 500}},
    "plain": {"urls": ["http://127.0.0.1:19119"]}
  },
  "routes": [
    {"name": "stub-api", "prefix": "/stub/", "service": "stub"},
    {"name": "sick-api", "prefix": "/sick/", "service": "sick"},
    {"name": "plain-api", "prefix": "/plain/", "service": "plain"}
  ],
  "providers": [{"name": "openai", "kind": "openai", "base_url": "$S"}],
  "models": [{"pattern": "*", "providers": ["openai"]}],
  "admission": { "pin_dir": "$PIN", "agent": "127.0.0.1:$PORT", "state_dir": "$STATE" }
}
JSON
check "gateway starts (health checks every 200 ms)" start_gateway
TA=$(mint --sub admin-1 --roles ADMIN)
TU=$(mint --sub 00000000-0000-0000-0000-00000000d0d1 --roles USER)
up() { # SERVICE FIELD: the field of the service's upstream in the agent's answer
	jq -r --arg s "$1" ".upstreams[] | select(.service == \$s) | .$2" "$RB"
}
# wait_state SERVICE STATE: until the agent shows it (10 s)
wait_state() {
	for _ in $(seq 100); do
		req GET /api/v1/admin/upstreams "$TA"
		[ "$STATUS" = 200 ] && [ "$(up "$1" state)" = "$2" ] && return 0
		sleep 0.1
	done
	echo "# $1: $(up "$1" state), want $2" >&2
	return 1
}

check "the agent shows stub up" wait_state stub up
check "and sick down" wait_state sick down
eq "two checked upstreams (plain has no health check: not listed)" \
	"$(jq -c '[.upstreams[].service] | sort' "$RB")" '["sick","stub"]'
eq "stub: its URL as the gateway's metrics label it, no failed check, no error" \
	"$(up stub upstream) $(up stub fails) $(up stub lastError)" "$S 0 null"
check "stub: the check's latency in ms ($(up stub latencyMs)), interval 200" \
	test "$(up stub intervalMs)" = 200 -a "$(jq -r '.upstreams[] | select(.service == "stub") | .latencyMs > 0' "$RB")" = true
check "sick: failed checks counted ($(up sick fails)), the reason given ($(up sick lastError))" \
	test "$(up sick fails)" -ge 1 -a "$(up sick lastError)" != null
check "written by the gateway's master (pid $(up stub gatewayPid))" test "$(up stub gatewayPid)" = "$GW_PID"
check "checkedAt and changedAt are times" \
	test "$(jq -r '[.upstreams[] | .checkedAt, .changedAt | test("^[0-9-]+T[0-9:]+Z$")] | all' "$RB")" = true
inns curl -s "http://127.0.0.1:$MPORT/metrics" >"$WORK/m.txt"
gw_up() { awk -v k="lt_gateway_upstream_up{service=\"$1\",upstream=\"$2\"}" '$1 == k { print $2 }' "$WORK/m.txt"; }
eq "the gateway's own metrics agree: stub 1, sick 0" "$(gw_up stub "$S") $(gw_up sick "$SICK")" "1 0"
n=$(timeout 20 bpftool -j map dump pinned "$PIN/lt_upstream" | jq 'length')
eq "bpftool map dump pinned lt_upstream: 2 entries" "$n" 2
req GET /api/v1/admin/upstreams "$TU"
eq "a USER: 403" "$STATUS" 403
req POST /api/v1/admin/upstreams "$TA" '{}'
eq "POST: 405" "$STATUS" 405

# the sick upstream comes back: a second stub on its port
SICK_LOG=$WORK/sick.log
nsenter --net=/run/netns/$NS "$STUB" --listen 127.0.0.1:$SICK_PORT >"$SICK_LOG" 2>&1 &
SICK_PID=$!
req GET /api/v1/admin/upstreams "$TA"
was=$(up sick changedAt)
check "sick is up once its upstream answers" wait_state sick up
eq "its failed checks reset, no error" "$(up sick fails) $(up sick lastError)" "0 null"
check "changedAt is when it came back, not before ($was -> $(up sick changedAt))" test "$(up sick changedAt)" '>' "$was" -o "$(up sick changedAt)" = "$was"
kill "$SICK_PID"
wait "$SICK_PID" 2>/dev/null
check "and down again when it stops" wait_state sick down

# no gateway checks them any more: stale after 3 intervals and 2 s
stop_gateway
check "with the gateway stopped, stub turns stale" wait_state stub stale
eq "sick too" "$(up sick state)" stale
stop_agent
check "no sanitizer report (agent)" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
check "no sanitizer report (gateway)" not grep -q 'runtime error\|AddressSanitizer' "$GW_LOG"
tap_done
