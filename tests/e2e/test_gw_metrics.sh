#!/usr/bin/env bash
# test_gw_metrics.sh - the gateway's own Prometheus metrics (README "Gateway metrics"; issue
# 11 item 3: "scrapes a running agent and gateway"). Two workers count into a shared region;
# the master answers GET /metrics on its own listener with the sums, so a scrape sees every
# worker's requests whichever worker served them, counters survive a worker's death, and a
# silent scraper cannot hold the listener or the traffic. Prints TAP.
set -u
TOPIC=gwmet
. "$(dirname "$0")/gw_env.sh"
GW_WORKERS=2
MPORT=18089
MURL=http://127.0.0.1:$MPORT/metrics
S=http://127.0.0.1:$STUB_PORT

agent_config ''
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
# $1: extra top-level members
write_config() {
	cat >"$WORK/gateway.json" <<JSON
{
  "listen": "127.0.0.1:$GW_PORT",
  "workers": $GW_WORKERS,
  "metrics": {"listen": "127.0.0.1:$MPORT"},
  "timeouts": { "connect_ms": 2000, "read_ms": 5000, "total_ms": 20000 },
  "services": {
    "stub": {"urls": ["$S"], "health": {"path": "/stub/stats", "interval_ms": 200, "timeout_ms": 500}},
    "dead": {"urls": ["http://127.0.0.1:19109"]},
    "sick": {"urls": ["http://127.0.0.1:19108"], "health": {"path": "/", "interval_ms": 200, "timeout_ms": 500}}
  },
  "routes": [
    {"name": "stub-api", "prefix": "/stub/", "service": "stub"},
    {"name": "dead-api", "prefix": "/dead/", "service": "dead"}
  ],
  "providers": [{"name": "openai", "kind": "openai", "base_url": "$S"}],
  "models": [{"pattern": "*", "providers": ["openai"]}],
  "admission": { "pin_dir": "$PIN", "agent": "127.0.0.1:$PORT", "state_dir": "$STATE"${1:+, $1} }
}
JSON
}
write_config
check "gateway starts (2 workers, metrics listener)" start_gateway
scrape() { inns curl -s --max-time 10 "$MURL" >"$WORK/m.txt"; }
# metric VALUE of the first line starting with $1 (name and labels, exactly)
mv() { awk -v k="$1" 'index($0, k " ") == 1 { print $2; exit }' "$WORK/m.txt"; }

# 12 requests on fresh connections (SO_REUSEPORT spreads them over both workers)
for _ in $(seq 10); do gwreq GET /stub/stats "" ""; done
gwreq GET /dead/x "" ""
d=$STATUS
gwreq GET /nowhere "" ""
n=$STATUS
check "a dead upstream answers 502 ($d), an unrouted path 404 ($n)" test "$d/$n" = 502/404
check "scrape: 200" scrape
check "text format passes promtool check metrics" promtool check metrics <"$WORK/m.txt"
check "stub-api 2xx = 10, summed over both workers ($(mv 'lt_gateway_requests_total{route="stub-api",code="2xx"}'))" \
	test "$(mv 'lt_gateway_requests_total{route="stub-api",code="2xx"}')" = 10
check "dead-api 5xx = 1" test "$(mv 'lt_gateway_requests_total{route="dead-api",code="5xx"}')" = 1
# (start_gateway's probe of / is the other unrouted request)
check "the unrouted 404s are under route _none: 2" test "$(mv 'lt_gateway_requests_total{route="_none",code="4xx"}')" = 2
check "duration histogram: +Inf bucket = count = 10" \
	test "$(mv 'lt_gateway_request_duration_seconds_bucket{route="stub-api",le="+Inf"}')/$(mv 'lt_gateway_request_duration_seconds_count{route="stub-api"}')" = 10/10
check "upstream_error outcome counted" test "$(mv 'lt_gateway_exchanges_total{outcome="upstream-error"}')" = 1
check "13 connections accepted (12 and the probe)" test "$(mv lt_gateway_connections_accepted_total)" = 13
for _ in $(seq 30); do # the health checker runs every 200 ms
	scrape
	[ "$(mv 'lt_gateway_upstream_up{service="sick",upstream="http://127.0.0.1:19108"}')" = 0 ] && break
	sleep 0.2
done
check "health: stub up 1, sick up 0" \
	test "$(mv "lt_gateway_upstream_up{service=\"stub\",upstream=\"http://127.0.0.1:$STUB_PORT\"}")/$(mv 'lt_gateway_upstream_up{service="sick",upstream="http://127.0.0.1:19108"}')" = 1/0

# another path, another method: clear answers, and the listener goes on
st=$(inns curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other")
st2=$(inns curl -s -o /dev/null -w '%{http_code}' -X POST "$MURL")
check "GET /other 404 ($st), POST /metrics 405 ($st2)" test "$st/$st2" = 404/405
printf 'GARBAGE\r\n\r\n' >"$WORK/junk"
st=$(inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$MPORT; cat $WORK/junk >&3; head -c 12 <&3")
check "a malformed head gets 400 ($st)" test "$st" = "HTTP/1.1 400"

# a silent scraper: cut after ~1 s; the traffic and the next scrape are not held
nsenter --net=/run/netns/$NS bash -c "exec 3<>/dev/tcp/127.0.0.1/$MPORT; exec sleep 5" &
silent=$!
GW_EXTRA_PIDS+=("$silent")
sleep 0.2
t0=$(date +%s%N)
gwreq GET /stub/stats "" ""
t1=$(date +%s%N)
check "traffic while a scraper is silent: 200 in $(((t1 - t0) / 1000000)) ms (< 900)" \
	test "$STATUS" = 200 -a $(((t1 - t0) / 1000000)) -lt 900
scrape
check "the next scrape is served" test "$(mv 'lt_gateway_requests_total{route="stub-api",code="2xx"}')" = 11
kill "$silent" 2>/dev/null

# a worker killed: replaced, its counts stay (the block is shared, not the process's), and
# the connections it held are not counted open any more (4 held open, one per worker at least
# by SO_REUSEPORT's hash, is not certain: hold 8)
held=()
for _ in $(seq 8); do
	nsenter --net=/run/netns/$NS bash -c "exec 3<>/dev/tcp/127.0.0.1/$GW_PORT; exec sleep 30" &
	held+=($!)
	GW_EXTRA_PIDS+=($!)
done
sleep 0.3
scrape
check "8 held connections are open ($(mv lt_gateway_connections))" test "$(mv lt_gateway_connections)" -ge 8
for w in $(pgrep -P "$GW_PID"); do kill -9 "$w"; done
kill "${held[@]}" 2>/dev/null
for _ in $(seq 50); do
	scrape
	[ "$(mv lt_gateway_worker_restarts_total)" = 2 ] && break
	sleep 0.1
done
check "both workers killed -9: restarts_total 2" test "$(mv lt_gateway_worker_restarts_total)" = 2
check "no connection counted open after they died ($(mv lt_gateway_connections))" test "$(mv lt_gateway_connections)" = 0
check "and stub-api 2xx still 11 (monotonic)" test "$(mv 'lt_gateway_requests_total{route="stub-api",code="2xx"}')" = 11

# reloads: applied, then refused (the old config and its counters stay)
write_config '"tiers": [{"name": "ADMIN"}, {"name": "USER"}]'
kill -HUP "$GW_PID"
for _ in $(seq 50); do
	scrape
	[ "$(mv 'lt_gateway_config_reloads_total{result="applied"}')" = 1 ] && break
	sleep 0.1
done
check "SIGHUP: reloads applied 1" test "$(mv 'lt_gateway_config_reloads_total{result="applied"}')" = 1
echo '{"listen": ' >"$WORK/gateway.json"
kill -HUP "$GW_PID"
for _ in $(seq 50); do
	scrape
	[ "$(mv 'lt_gateway_config_reloads_total{result="refused"}')" = 1 ] && break
	sleep 0.1
done
check "a broken file: reloads refused 1" test "$(mv 'lt_gateway_config_reloads_total{result="refused"}')" = 1
gwreq GET /stub/stats "" ""
scrape
check "counting goes on after the reloads: stub-api 2xx 12" \
	test "$STATUS/$(mv 'lt_gateway_requests_total{route="stub-api",code="2xx"}')" = 200/12
stop_gateway

# the maps missing, a tier open: the fail-open counter is exported (summed per tier)
write_config '"tiers": [{"name": "ADMIN"}, {"name": "USER", "on_maps_missing": "open"}]'
check "gateway restarted without the maps" start_gateway --pin-dir /sys/fs/bpf/lt-gwmet-none-$$
CHAT='{"model":"gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
for _ in 1 2 3; do gwreq POST /v1/chat/completions "" "$CHAT"; done
scrape
check "3 unmetered requests: 200 ($STATUS), lt_gateway_fail_open_total{tier=\"USER\"} 3 ($(mv 'lt_gateway_fail_open_total{tier="USER"}'))" \
	test "$STATUS/$(mv 'lt_gateway_fail_open_total{tier="USER"}')" = 200/3

# a bad metrics address is refused at start and by --check
out=$("$GW" --metrics junk --check 2>&1)
expect_err "--metrics junk: refused" $? "$out" "wants HOST:PORT"
write_config
sed -i "s|\"127.0.0.1:$MPORT\"|\"nowhere\"|" "$WORK/gateway.json"
out=$("$GW" --config "$WORK/gateway.json" --check 2>&1)
expect_err "metrics.listen junk: --check refuses it" $? "$out" "/metrics/listen"
tap_done
