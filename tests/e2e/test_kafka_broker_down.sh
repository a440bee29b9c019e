#!/usr/bin/env bash
# test_kafka_broker_down.sh - nothing lost while Kafka is down or failing (issue #10): with the
# mock cluster's brokers down long enough for deliveries to time out (kafka.message_timeout
# 2 s), and then with produce requests failing by injected errors, the events wait in the
# outbox (its backlog and oldest age in /metrics), failures are counted and sent again, and
# once the brokers are back the outbox drains: every event arrives, and exactly once after
# deduplication on ce_source + ce_id (count in == count out). Prints TAP.
set -u
TOPIC=kfdn
. "$(dirname "$0")/kafka_env.sh"
N1=300 N2=200

start_mock || exit 1
kafka_config
start_agent --config "$CFG" || { echo "Bail out! the agent did not start"; exit 1; }
put 1 provider=openai latency_us=1000 user=u-0 id=warm
check "broker up: the first event is acknowledged" wait_for lt_kafka_acked_total 1

check "the mock's broker goes down" mock down all
put $N1 provider=openai in=1 out=2 latency_us=1000 user=u-1 id=a
check "broker down: $N1 events wait in the outbox" wait_for lt_outbox_backlog $N1
sleep 1.2
met
check "broker down: the oldest event's age grows (> 1 s)" \
	awk -v a="$(v lt_outbox_oldest_age_seconds)" 'BEGIN { exit !(a > 1) }'
for _ in $(seq 100); do
	met
	[ "$(v lt_kafka_failed_total)" -gt 0 ] && break
	sleep 0.1
done
check "broker down: failed deliveries counted (message_timeout 2 s)" test "$(v lt_kafka_failed_total)" -gt 0
eq "broker down: nothing acknowledged, nothing dropped" \
	"$(v lt_kafka_acked_total) $(v 'lt_outbox_dropped_total{reason="full"}')" "1 0"

check "the broker comes back" mock up all
check "broker up: the outbox drains" wait_for lt_outbox_backlog 0 300
check "broker up: the failed ones were sent again from the oldest" \
	test "$(v lt_kafka_resends_total)" -gt 0

# produce requests failing: retriable errors the idempotent producer retries by itself, then
# a non-retriable one that fails deliveries (sent again by the outbox)
check "inject 20 NOT_ENOUGH_REPLICAS (19) into Produce" mock err 20 19
put $N2 provider=gemini in=3 out=4 latency_us=1000 user=u-2 id=b
# (committed first: a backlog of 0 before the records are read says nothing)
check "injected errors: the $N2 events are committed" wait_for lt_outbox_appended_total $((1 + N1 + N2))
check "injected errors: the outbox drains" wait_for lt_outbox_backlog 0 300
f0=$(v lt_kafka_failed_total)
check "inject 3 CORRUPT_MESSAGE (2) into Produce" mock err 3 2
put 50 provider=qwen latency_us=1000 user=u-3 id=c
check "non-retriable errors: the 50 events are committed" \
	wait_for lt_outbox_appended_total $((1 + N1 + N2 + 50))
check "non-retriable errors: the outbox drains" wait_for lt_outbox_backlog 0 300
echo "# failed before $f0, after $(v lt_kafka_failed_total), resends $(v lt_kafka_resends_total)" >&2

IN=$((1 + N1 + N2 + 50))
eq "count in: every event committed to the outbox" "$(v lt_outbox_appended_total)" "$IN"
OUT=$WORK/out.jsonl
consume "$OUT"
eq "count out: after deduplication, every event once ($IN)" "$(distinct "$OUT")" "$IN"
eq "every request id exactly once after deduplication" \
	"$(jq -r '[.headers.ce_id, .value.request_id] | @tsv' "$OUT" | sort -u | cut -f2 | sort | uniq -d | wc -l) $(jq -r '.value.request_id' "$OUT" | sort -u | wc -l)" \
	"0 $IN"
echo "# messages read $(wc -l <"$OUT"), duplicates $(($(wc -l <"$OUT") - IN))" >&2
check "every message matches the schema" \
	node "$ROOT/tests/openapi/events.mjs" "$ROOT/docs/events/usage.v1.schema.json" "$OUT"
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$LOG"
check "a broker that is down is logged, not flooded (<= 10 kafka lines)" \
	test "$(grep -c 'kafka:' "$LOG")" -le 10
tap_done
