#!/usr/bin/env bash
# test_kafka_unreachable.sh - Kafka off or unreachable never stands in admission's way (issue
# #10). Off by default: no outbox, no producer. On, with brokers that do not answer: the agent
# starts and serves every consume decision as before while the outbox backlog grows in
# /metrics; at its bound (kafka.outbox_max_events) the oldest events are dropped and counted,
# never the new ones refused. The kafka config section is validated like the rest. Prints TAP.
# (No timing assertion: that admission is not slowed is measured by `make bench`.)
set -u
TOPIC=kfur
. "$(dirname "$0")/kafka_env.sh"
U=00000000-0000-0000-0000-000000000001

# ---- the config section
bad() { # NAME JSON POINTER: check-config refuses it, naming the field
	local out
	"$AGENT" print-config | jq --argjson k "$2" '.kafka = $k' >"$WORK/bad.json"
	out=$("$AGENT" check-config --config "$WORK/bad.json" 2>&1)
	expect_err "config: $1 is refused naming $3" $? "$out" "$3"
}
bad "enabled without brokers" '{"enabled":true}' /kafka/brokers
bad "a topic with a space" '{"topic":"a b"}' /kafka/topic
bad "enabled as a string" '{"enabled":"yes"}' /kafka/enabled
bad "a zero bound" '{"outbox_max_events":0}' /kafka/outbox_max_events
bad "a message timeout of 1ms" '{"message_timeout":"1ms"}' /kafka/message_timeout
bad "an unknown field" '{"acks":"1"}' /kafka/acks
check "leaky-agent --help documents the kafka section" \
	bash -c "'$AGENT' --help | grep -q 'kafka.brokers'"

# ---- off by default
start_agent || { echo "Bail out! the agent did not start"; exit 1; }
T_U=$(mint --sub $U --roles USER)
req POST /api/v1/tokens/consume "$T_U" "{\"userId\":\"$U\",\"provider\":\"openai\",\"tokens\":1}"
expect "kafka off: consume is 200" 200
met
eq "kafka off (the default): lt_outbox_enabled 0, no outbox series" \
	"$(v lt_outbox_enabled) $(grep -c "^lt_outbox_backlog" "$M")" "0 0"
check "kafka off: requests.db has no outbox table" \
	not bash -c "sqlite3 '$STATE/requests.db' .tables | grep -qw outbox"
stop_agent

# ---- on, the brokers unreachable: a port nobody listens on in this namespace
BROKERS=127.0.0.1:9 kafka_config '{"outbox_max_events": 150}'
start_agent --config "$CFG" || { echo "Bail out! the agent did not start"; exit 1; }
codes=$WORK/codes
: >"$codes"
for i in $(seq 100); do
	inns curl -s -o /dev/null -m 5 -w '%{http_code}\n' -H "Authorization: Bearer $T_U" \
		-H 'Content-Type: application/json' \
		--data-binary "{\"userId\":\"$U\",\"provider\":\"openai\",\"tokens\":1}" \
		"$BASE/api/v1/tokens/consume" >>"$codes"
done
eq "Kafka unreachable: 100 consume decisions, all answered 200" \
	"$(sort "$codes" | uniq -c | awk '{ print $1 " " $2 }')" "100 200"
check "Kafka unreachable: the backlog grows to 100" wait_for lt_outbox_backlog 100
eq "Kafka unreachable: nothing acknowledged" "$(v lt_kafka_acked_total)" 0
put 120 provider=openai latency_us=1000 user=u id=g
check "all 220 events committed" wait_for lt_outbox_appended_total 220
check "the outbox holds its bound (150)" wait_for lt_outbox_backlog 150
eq "at the bound, the 70 oldest are dropped and counted" \
	"$(v 'lt_outbox_dropped_total{reason="full"}') $(v lt_outbox_appended_total)" "70 220"
# rows are packs of events (binary, agent/outbox.c): the bytes of its request id in one of them
eq "the newest are kept (the last gateway record is in the outbox)" \
	"$(sqlite3 "$STATE/requests.db" "SELECT count(*) FROM outbox WHERE instr(data, CAST('\"g-119\"' AS BLOB)) > 0")" 1
# 40 more: 260 in all, so the 110 oldest go, the 100 decisions and g-0..g-9; g-10 and after were
# committed in packs of many events a row, and the bound cuts inside one instead of dropping it
put 40 provider=openai latency_us=1000 user=u id=h
check "40 more committed" wait_for lt_outbox_appended_total 260
eq "the bound is exact in events, inside a pack too: 110 dropped, 150 kept" \
	"$(v 'lt_outbox_dropped_total{reason="full"}') $(v lt_outbox_backlog) $(sqlite3 "$STATE/requests.db" "SELECT sum(max(n, 1)) FROM outbox")" \
	"110 150 150"
eq "the oldest kept is g-10 (g-9 went)" \
	"$(sqlite3 "$STATE/requests.db" "SELECT count(*) FROM outbox WHERE instr(data, CAST('\"g-9\"' AS BLOB)) > 0") $(sqlite3 "$STATE/requests.db" "SELECT count(*) FROM outbox WHERE instr(data, CAST('\"g-10\"' AS BLOB)) > 0")" \
	"0 1"
req GET "/readyz" ""
expect "Kafka unreachable: the agent is ready" 200
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$LOG"
tap_done
