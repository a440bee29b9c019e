#!/usr/bin/env bash
# test_prometheus.sh - issue 11 item 3: deploy/prometheus and deploy/grafana against a real
# Prometheus (Debian's) scraping a real agent in this suite's netns, while a gateway and the
# stub carry traffic:
#  * promtool accepts the shipped scrape config and rules, and the rules' unit tests pass;
#  * after N requests through the gateway, Prometheus's HTTP API answers the GenAI token
#    counters the stub reported (gen_ai_client_token_usage) and the request count;
#  * the alerts evaluate on live data: a tenant near its limit, a breaker open (the stub
#    failing), the kernel dropping a banned source: each is pending (their `for:` is minutes);
#  * every metric the Grafana dashboard and the rules query is one the agent exports.
# Every wait is bounded (poll).
# It runs beside other suites: its first gateway request's 503 there was the reclaim sweep
# freeing the user's new bucket before its first decision (agent/quota.c, lt_reclaimable),
# not the load.
TOPIC=prom
. "$(dirname "$0")/gw_env.sh"
PROM_PORT=19091
GW_METRICS_PORT=19092
PROM=http://127.0.0.1:$PROM_PORT
D=$ROOT/deploy

for t in promtool prometheus; do
	command -v $t >/dev/null || { echo "Bail out! $t missing (scripts/deps.sh installs prometheus)"; exit 1; }
done

# --- the shipped files, statically ------------------------------------------------------
check "promtool check config deploy/prometheus/prometheus.yml" \
	promtool check config "$D/prometheus/prometheus.yml"
check "promtool check rules deploy/prometheus/leaky-tokens.rules.yml" \
	promtool check rules "$D/prometheus/leaky-tokens.rules.yml"
check "promtool test rules: every alert fires on its series, and only then" \
	bash -c "cd '$D/prometheus' && promtool test rules leaky-tokens.rules.test.yml"
check "the Grafana dashboard is valid JSON with a uid and panels" \
	jq -e '.uid == "leaky-tokens" and (.panels | length) > 10' "$D/grafana/leaky-tokens.json"

# --- a live agent, gateway, stub and Prometheus -----------------------------------------
U=00000000-0000-0000-0000-00000000a001
O=10000000-0000-0000-0000-00000000a001
# a small org quota that hardly leaks, to hold a tenant near its limit
agent_config '"token": {"org_default": {"*": {"capacity": 1000, "rate": "1/h"}}}'
start_agent --config "$WORK/agent.json" || { echo "Bail out! agent"; exit 1; }
start_stub || { echo "Bail out! stub"; exit 1; }
gw_config '"breaker": {"fail_threshold": 2, "recovery_ms": 600000, "probes": 1}'
start_gateway --metrics 127.0.0.1:$GW_METRICS_PORT || { echo "Bail out! gateway"; exit 1; }

# the shipped scrape config, with this suite's port, 1 s intervals and the rules' full path
sed -e "s|127.0.0.1:9090|127.0.0.1:$PORT|" -e "s|127.0.0.1:9102|127.0.0.1:$GW_METRICS_PORT|" -e 's/interval: 15s/interval: 1s/' \
	-e "s|- leaky-tokens.rules.yml|- $D/prometheus/leaky-tokens.rules.yml|" \
	"$D/prometheus/prometheus.yml" >"$WORK/prometheus.yml"
nsenter --net=/run/netns/$NS prometheus --config.file="$WORK/prometheus.yml" \
	--storage.tsdb.path="$WORK/prom-data" --web.listen-address=127.0.0.1:$PROM_PORT \
	--log.level=warn >"$WORK/prometheus.log" 2>&1 &
GW_EXTRA_PIDS+=($!)
for _ in $(seq 150); do
	inns curl -sf -o /dev/null "$PROM/-/ready" && break
	sleep 0.1
done
check "Prometheus is ready" inns curl -sf -o /dev/null "$PROM/-/ready" ||
	sed 's/^/# prometheus: /' "$WORK/prometheus.log" >&2

# q PROMQL: the first result's value ("" when none)
q() { inns curl -s --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1" |
	jq -r '.data.result[0].value[1] // ""'; }
# poll_q NAME PROMQL JQ_TEST: waits (at most 15 s) until the value passes the jq test
poll_q() {
	local v
	for _ in $(seq 60); do
		v=$(q "$2")
		[ -n "$v" ] && jq -en --arg v "$v" "(\$v | tonumber) as \$x | $3" >/dev/null && break
		sleep 0.25
	done
	if [ -n "$v" ] && jq -en --arg v "$v" "(\$v | tonumber) as \$x | $3" >/dev/null; then
		ok "$1 ($v)"; else notok "$1 (got '$v')"; fi
}
# alert_now NAME LABEL VALUE: the state of that alert with that label ("" when inactive)
alert_now() {
	inns curl -s --max-time 5 "$PROM/api/v1/alerts" | jq -r --arg a "$1" --arg l "$2" \
		--arg v "$3" '[.data.alerts[] | select(.labels.alertname == $a and .labels[$l] == $v)
		| .state][0] // ""'
}
# alert_state NAME LABEL VALUE: the same, polled (15 s) until it is pending or firing
alert_state() {
	local s
	for _ in $(seq 60); do
		s=$(alert_now "$@")
		[ -n "$s" ] && break
		sleep 0.25
	done
	echo "$s"
}
poll_q "Prometheus scrapes the agent (up == 1)" 'up{job="leaky-agent"}' '$x == 1' </dev/null

# --- N requests through the gateway: the counters Prometheus has are what was charged ----
T=$(mint --sub $U)
NREQ=5
for i in $(seq $NREQ); do
	gwreq POST /v1/chat/completions "jwt:$T" \
		'{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hello prometheus"}]}'
	[ "$STATUS" = 200 ] && continue
	# a failure names its cause: the gateway's admission lines and the agent's warnings
	grep 'admission\|agent' "$GW_LOG" | tail -5 | sed 's/^/# gateway: /' >&2
	grep -i 'bucket\|warn\|error' "$LOG" | tail -5 | sed 's/^/# agent: /' >&2
	break
done
check "$NREQ requests through the gateway answered 200 (last: $STATUS $(head -c 300 "$RB" 2>/dev/null))" test "$STATUS" = 200
IN=$(stub_stats | jq '.total.prompt_tokens') OUT=$(stub_stats | jq '.total.completion_tokens')
check "the stub reported usage for them (in $IN, out $OUT)" test "$OUT" -eq $((NREQ * 8))
poll_q "Prometheus: output tokens (gen_ai_client_token_usage_sum) == the stub's $OUT" \
	'sum(gen_ai_client_token_usage_sum{gen_ai_token_type="output",gen_ai_provider_name="openai"})' "\$x == $OUT"
poll_q "Prometheus: input tokens == the stub's $IN" \
	'sum(gen_ai_client_token_usage_sum{gen_ai_token_type="input"})' "\$x == $IN"
poll_q "Prometheus: gateway requests (gen_ai_server_request_duration_count) == $NREQ" \
	'sum(gen_ai_server_request_duration_count{gen_ai_provider_name="openai"})' "\$x == $NREQ"
poll_q "Prometheus scrapes the gateway's own /metrics (up == 1)" 'up{job="leaky-gateway"}' '$x == 1' </dev/null
poll_q "Prometheus: the gateway's lt_gateway_requests_total for the chat route, 2xx == $NREQ" \
	'sum(lt_gateway_requests_total{job="leaky-gateway",route="llm:/v1/chat/completions",code="2xx"})' "\$x == $NREQ"

# --- a tenant near its limit: 950 of the org's 1000 tokens --------------------------------
TA=$(mint --sub ops --roles ADMIN)
req POST /api/v1/tokens/consume "$TA" "{\"userId\":\"$U\",\"orgId\":\"$O\",\"provider\":\"openai\",\"tokens\":950}"
expect "950 tokens charged to the org" 200
line=$(inns curl -s "$BASE/metrics" | grep "^lt_bucket_fill_ratio{kind=\"org\",bucket=\"o/openai/$O\"}")
check "the agent exports the org's fill ratio, 0.95 ($line)" \
	jq -en --arg v "${line##* }" '($v | tonumber) >= 0.95 and ($v | tonumber) <= 0.951'
poll_q "Prometheus: lt_bucket_fill_ratio of the org > 0.9" \
	"lt_bucket_fill_ratio{bucket=\"o/openai/$O\"}" '$x > 0.9'
s=$(alert_state LeakyTokensTenantNearLimit bucket "o/openai/$O")
check "alert LeakyTokensTenantNearLimit is pending for the org (state '$s')" test "$s" = pending
# one evaluation covers every series of a rule: the user's bucket was judged with the org's
s=$(alert_now LeakyTokensTenantNearLimit bucket "u/USER/openai/$U")
check "and not for the user, who used 0.4% of its budget ('$s')" test -z "$s"

# --- a breaker open: the stub fails, the gateway trips openai's breaker (threshold 2) -------
inns curl -s -o /dev/null -d '{"status":503}' "http://127.0.0.1:$STUB_PORT/stub/config"
for _ in 1 2 3; do
	gwreq POST /v1/chat/completions "jwt:$T" '{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"x"}]}'
done
inns curl -s -o /dev/null -d '{"status":200}' "http://127.0.0.1:$STUB_PORT/stub/config"
poll_q "Prometheus: lt_breaker_state{name=\"openai\"} == 1 (open)" 'lt_breaker_state{name="openai"}' '$x == 1'
s=$(alert_state LeakyTokensBreakerOpen name openai)
check "alert LeakyTokensBreakerOpen is pending for openai (state '$s')" test "$s" = pending

# --- the kernel drops a banned source: SYNs from 127.0.0.2 to a protected port (8443) -------
"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" ban 127.0.0.2 --for 10m >&2
for _ in 1 2 3; do
	inns curl -s -o /dev/null --interface 127.0.0.2 --connect-timeout 0.3 http://127.0.0.1:8443/
done
poll_q "Prometheus: lt_xdp_packets_total{outcome=\"drop_penalty\"} > 0" \
	'lt_xdp_packets_total{outcome="drop_penalty"}' '$x > 0'
s=$(alert_state LeakyTokensPenaltyDrops severity info)
check "alert LeakyTokensPenaltyDrops is pending (state '$s')" test "$s" = pending

# --- every metric the dashboard and the rules query is exported --------------------------
inns curl -s "$BASE/metrics" >"$WORK/metrics.txt"
check "every metric in deploy/grafana/leaky-tokens.json and the rules is exported by the agent" \
	python3 "$ROOT/tests/e2e/metric_names.py" "$WORK/metrics.txt" \
	"$D/grafana/leaky-tokens.json" "$D/prometheus/leaky-tokens.rules.yml"
tap_done
