#!/usr/bin/env bash
# test_kafka_roundtrip.sh - usage events end to end (issue #10): gateway usage records (written
# into the pinned ring as leaky-gateway does), consume API decisions and sampled kernel
# decisions leave the agent as CloudEvents 1.0 in Kafka binary mode, through the outbox, to a
# mock Kafka cluster over TCP; kcat reads them back as an independent consumer, and every
# message is checked against docs/events/usage.v1.schema.json, field by field, and in order per
# tenant. Prints TAP.
set -u
TOPIC=kfrt
. "$(dirname "$0")/kafka_env.sh"
U1=00000000-0000-0000-0000-000000000001
U2=00000000-0000-0000-0000-000000000002
ORG=00000000-0000-0000-0000-0000000000aa

start_mock || exit 1
kafka_config
start_agent --config "$CFG" || { echo "Bail out! the agent did not start"; exit 1; }
T_ADMIN=$(mint --sub admin-1 --roles ADMIN)
T_U2=$(mint --sub $U2 --roles USER)

# gateway records: usage known, a stream with a first token, unknown usage, rejections
put 4 provider=openai model=gpt-4o in=100 out=50 reserved=200 latency_us=150000 \
	ttft_us=30000 stream=1 user=$U1 org=$ORG tier=USER keyid=lk_0123456789abcdef id=oa
put 3 provider=gemini reserved=70 latency_us=2000 user=$U1 tier=USER id=nu
put 2 provider=openai status=429 outcome=4 reserved=0 latency_us=500 user=$U1 tier=USER id=rj
# consume decisions: admitted, refused (429: the USER tier holds 10000), too big (422)
req POST /api/v1/tokens/consume "$T_U2" "{\"userId\":\"$U2\",\"provider\":\"qwen\",\"tokens\":9000}"
s1=$STATUS
req POST /api/v1/tokens/consume "$T_U2" "{\"userId\":\"$U2\",\"provider\":\"qwen\",\"tokens\":9000}"
s2=$STATUS
req POST /api/v1/tokens/consume "$T_U2" "{\"userId\":\"$U2\",\"provider\":\"qwen\",\"tokens\":20000}"
eq "consume: 200, 429, 422 as always" "$s1 $s2 $STATUS" "200 429 422"
# sampled kernel decisions (event_sample_every 1): UDP to a protected port
for _ in 1 2 3; do inns bash -c 'echo x >/dev/udp/127.0.0.1/8080'; done
TOTAL=15 # 9 records, 3 decisions, 3 kernel samples
check "every event in the outbox ($TOTAL)" wait_for lt_outbox_appended_total "$TOTAL"
check "every event acknowledged ($TOTAL)" wait_for lt_kafka_acked_total "$TOTAL"
check "the outbox is empty once acknowledged" wait_for lt_outbox_backlog 0
eq "nothing failed or dropped" \
	"$(v lt_kafka_failed_total) $(v 'lt_outbox_dropped_total{reason="full"}')" "0 0"

OUT=$WORK/out.jsonl
consume "$OUT"
eq "kcat reads every event once" "$(wc -l <"$OUT") $(distinct "$OUT")" "$TOTAL $TOTAL"
check "every message matches docs/events/usage.v1.schema.json" \
	node "$ROOT/tests/openapi/events.mjs" "$ROOT/docs/events/usage.v1.schema.json" "$OUT"
eq "envelope: ce_specversion, ce_type, ce_source, content-type on every message" \
	"$(jq -r '.headers | [.ce_specversion, .ce_type, .ce_source, ."content-type"] | join(" ")' "$OUT" | sort -u)" \
	"1.0 dev.leakytokens.usage.v1 host-a application/json"
eq "envelope: ce_id is the source, the store id and a sequence" \
	"$(jq -r '.headers.ce_id' "$OUT" | grep -cE '^host-a-[0-9a-f]{8}-[0-9]+$')" "$TOTAL"
eq "the Kafka key is the tenant (and ce_subject)" \
	"$(jq -r 'select(.key != .value.tenant or .key != .headers.ce_subject) | .key' "$OUT" | wc -l)" 0
eq "per tenant, events arrive in the order they happened (ce_id sequence)" \
	"$(jq -r '[.key, (.headers.ce_id | split("-") | last)] | @tsv' "$OUT" |
		awk -F'\t' '$2 + 0 <= last[$1] { bad++ } { last[$1] = $2 + 0 } END { print bad + 0 }')" 0
eq "ce_time is RFC 3339 UTC with microseconds" \
	"$(jq -r '.headers.ce_time' "$OUT" | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$')" \
	"$TOTAL"

g() { jq -c "select(.value.request_id == \"$1\") | .value | del(.policy_version)" "$OUT"; }
eq "gateway record, usage known: every field, OTel GenAI names" "$(g oa-0)" \
	"$(jq -c . <<<"{\"origin\":\"gateway\",\"tenant\":\"org:$ORG\",\"decision\":\"admitted\",
	\"user_id\":\"$U1\",\"org_id\":\"$ORG\",\"key_id\":\"lk_0123456789abcdef\",\"tier\":\"USER\",
	\"gen_ai.provider.name\":\"openai\",\"gen_ai.request.model\":\"gpt-4o\",
	\"gen_ai.response.model\":\"gpt-4o\",\"gen_ai.usage.input_tokens\":100,
	\"gen_ai.usage.output_tokens\":50,\"tokens_reserved\":200,\"tokens_settled\":150,
	\"http.response.status_code\":200,\"outcome\":\"completed\",\"http.request.method\":\"POST\",
	\"http.route\":\"/v1/chat/completions\",\"request_id\":\"oa-0\",\"latency_ms\":150,
	\"time_to_first_token_ms\":30,\"stream\":true}")"
eq "gateway record, usage unknown: no gen_ai.usage.*, settled = the reservation" \
	"$(g nu-0 | jq -c '[.tenant, has("gen_ai.usage.input_tokens"), .tokens_settled, has("time_to_first_token_ms")]')" \
	"[\"user:$U1\",false,70,false]"
eq "gateway rejection: decision rejected, nothing settled" \
	"$(g rj-1 | jq -c '[.decision, .outcome, ."http.response.status_code", .tokens_settled]')" \
	'["rejected","rejected",429,0]'
eq "consume decisions: admitted 9000, rejected 9000 (429), rejected 20000 (422)" \
	"$(jq -c 'select(.value.origin == "consume") | .value |
		[.tenant, .decision, ."http.response.status_code", .tokens_reserved, .tokens_settled,
		 ."gen_ai.provider.name", .tier]' "$OUT" | paste -sd' ')" \
	"[\"user:$U2\",\"admitted\",200,9000,9000,\"qwen\",\"USER\"] [\"user:$U2\",\"rejected\",429,9000,0,\"qwen\",\"USER\"] [\"user:$U2\",\"rejected\",422,20000,0,\"qwen\",\"USER\"]"
eq "kernel decisions: source, port, transport, outcome" \
	"$(jq -c 'select(.value.origin == "kernel") | .value |
		[.tenant, .decision, .reason, ."source.address", ."destination.port", ."network.transport"]' \
		"$OUT" | sort -u)" \
	'["src:127.0.0.1","admitted","pass_admit","127.0.0.1",8080,"udp"]'
eq "three kernel decisions" "$(jq -c 'select(.value.origin == "kernel")' "$OUT" | wc -l)" 3
eq "every event carries the policy version in force (lt_config generation)" \
	"$(jq -r '.value.policy_version | . > 0' "$OUT" | sort -u)" true

# the request log and the GenAI histograms are the gateway's only, as before
req GET "/api/v1/admin/requests?limit=1000" "$T_ADMIN"
eq "request log: the 9 gateway records, no consume decision" "$(jqb '.requests | length')" 9
eq "GenAI histograms: only gateway records counted" \
	"$(v 'gen_ai_server_request_duration_count{gen_ai_provider_name="openai"}') $(grep -c 'provider_name="qwen"' "$M")" \
	"6 0"

# deduplication: a consumer that reads the topic twice still counts each event once
cat "$OUT" "$OUT" >"$WORK/twice.jsonl"
eq "dedupe on ce_source + ce_id: twice the messages, the same events" \
	"$(wc -l <"$WORK/twice.jsonl") $(distinct "$WORK/twice.jsonl")" "$((2 * TOTAL)) $TOTAL"

stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$LOG"
tap_done
