#!/usr/bin/env bash
# test_config_sync.sh - config sync across hosts (issue #10, item 3): two agents as two hosts
# (host-a, host-b: each its own network namespace, pin dir, state dir and port) on one librdkafka
# mock cluster (tests/e2e/lt_kafka_mock, in A's namespace; B reaches it through a socat that
# listens on B's loopback and connects from A's namespace). Admin changes on one host are
# enforced on the other through the config topic, last writer wins by version, a host that was
# down catches up, a replay changes nothing, an older record never overwrites a newer one, and
# kcat as an independent consumer sees records that match docs/events/config.v1.schema.json.
# Prints TAP.
set -u
HOSTS="a b" HNAME=csync HTOPIC=config
. "$(dirname "$0")/hosts_env.sh"
CTOPIC=$XTOPIC
U1=00000000-0000-0000-0000-000000000001
ORG=00000000-0000-0000-0000-0000000000aa

for h in a b; do
	"$AGENT" print-config | jq --arg b "$BOOT" --arg t "$UTOPIC" --arg c "$CTOPIC" \
		--arg s "host-$h" '.kafka = {enabled: true, brokers: $b, topic: $t,
			config_topic: $c, source: $s, message_timeout: "2s"}' >"$WORK/$h.json"
done

# as HOST AUTH_HEADER METHOD PATH [BODY]: any credentials
as() {
	local h=$1 hdr=$2 m=$3 p=$4 body=${5-}
	local args=(-s -X "$m" -o "$RB" -w '%{http_code}' -H "$hdr")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	STATUS=$(inns "$h" curl "${args[@]}" "http://127.0.0.1:$PORT$p")
}
# until HOST METHOD PATH JQ WANT [TRIES]: polls (0.02 s a try; default 20 s) until jq says WANT
until_is() {
	local i
	for ((i = 0; i < ${6:-1000}; i++)); do
		req "$1" "$2" "$3"
		[ "$(jqb "$4" 2>/dev/null)" = "$5" ] && return 0
		sleep 0.02
	done
	echo "# $1 $3: $(jqb "$4" 2>/dev/null), want $5" >&2
	return 1
}
status() { req "$1" GET /api/v1/sync/status; }
# settled: both hosts have read every record either wrote (no outbox backlog, equal digests)
settled() {
	local i da db
	for ((i = 0; i < 1000; i++)); do
		status a
		da=$(jqb '[.outboxBacklog, .digest] | @tsv')
		status b
		db=$(jqb '[.outboxBacklog, .digest] | @tsv')
		[ "${da%%	*}" = 0 ] && [ "$da" = "$db" ] && return 0
		sleep 0.02
	done
	echo "# not settled: a [$da] b [$db]" >&2
	return 1
}

start a || { echo "Bail out! agent A did not start"; exit 1; }
start b || { echo "Bail out! agent B did not start"; exit 1; }
TB_USER=$("$AGENT" --state-dir "${STATE[b]}" mint-token --sub $U1 --roles USER --orgs $ORG --ttl 1h)
status a
eq "sync on: host, topic" "$(jqb '[.enabled, .host, .topic] | @tsv')" "true	host-a	$CTOPIC"

# ---- a tier change on A is enforced on B
as b "Authorization: Bearer $TB_USER" POST /api/v1/tokens/consume \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":6}"
eq "B before: 6 tokens of openai fit the USER tier (10000)" "$STATUS" 200
t0=$(now_ms)
req a PUT /api/v1/admin/tiers/USER/openai '{"capacity":5,"rate":"1/m"}'
eq "A: USER/openai set to 5" "$STATUS" 200
check "B: the tier reads as A set it" until_is b GET /api/v1/admin/tiers/USER/openai .capacity 5
t1=$(now_ms)
echo "# tier change A -> B: applied on B within $((t1 - t0)) ms (polled every 20 ms)"
as b "Authorization: Bearer $TB_USER" POST /api/v1/tokens/consume \
	"{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":6}"
eq "B enforces it: 6 tokens are now more than the capacity (422)" "$STATUS" 422
status b
eq "B reports A's version applied and a lag" \
	"$(jqb '.origins[] | select(.host == "host-a") | [(.versionMs >= '"$t0"'), (.lagMs >= 0)] | @tsv')" \
	"true	true"

# ---- an org quota
req a PUT /api/v1/admin/orgs/$ORG/quotas/openai '{"capacity":7,"rate":"1/m"}'
eq "A: org quota set" "$STATUS" 200
check "B: the org quota reads as A set it" until_is b GET /api/v1/admin/orgs/$ORG/quotas/openai .capacity 7
as b "Authorization: Bearer $TB_USER" POST /api/v1/tokens/consume \
	"{\"userId\":\"$U1\",\"orgId\":\"$ORG\",\"provider\":\"openai\",\"tokens\":8}"
eq "B enforces it: 8 tokens of the org's openai pool are over its 7 (422)" "$STATUS" 422

# ---- an API key made on A authenticates on B; revoked on A, refused on B
req a POST /api/v1/admin/keys "{\"name\":\"k1\",\"owner\":\"$U1\",\"tier\":\"USER\",\"limits\":{\"capacity\":100,\"rate\":\"10/s\"}}"
eq "A: key created" "$STATUS" 201
KID=$(jqb .id) SECRET=$(jqb .secret)
check "B: the key is listed" until_is b GET "/api/v1/admin/keys/$KID" .id "$KID"
as b "X-API-Key: $SECRET" POST /api/v1/tokens/consume \
	"{\"userId\":\"$U1\",\"provider\":\"gemini\",\"tokens\":1}"
eq "B: the key made on A authenticates (200)" "$STATUS" 200
as b "X-API-Key: $SECRET" GET /api/v1/admin/providers ""
eq "B: a plain key is no admin there (403)" "$STATUS" 403
req a PATCH "/api/v1/admin/keys/$KID" '{"admin":true}'
eq "A: the key made an admin key" "$STATUS $(jqb .admin)" "200 true"
check "B: the admin right arrives (admin: true)" until_is b GET "/api/v1/admin/keys/$KID" .admin true
as b "X-API-Key: $SECRET" GET /api/v1/admin/providers ""
eq "B: the key is an admin there too (200)" "$STATUS" 200
req a DELETE "/api/v1/admin/keys/$KID"
check "B: the key is revoked" until_is b GET "/api/v1/admin/keys/$KID" .revoked true
as b "X-API-Key: $SECRET" POST /api/v1/tokens/consume \
	"{\"userId\":\"$U1\",\"provider\":\"gemini\",\"tokens\":1}"
eq "B: the key revoked on A is refused (401)" "$STATUS" 401

# ---- a delete on A removes on B
req a DELETE /api/v1/admin/orgs/$ORG/quotas/openai
eq "A: org quota deleted" "$STATUS" 200
check "B: the org quota is gone (404)" until_is b GET /api/v1/admin/orgs/$ORG/quotas/openai .status 404

# ---- a ban on A is in B's penalty map (GET reads lt_penalty), an unban takes it out
req a POST /api/v1/admin/penalties '{"prefix":"192.0.2.0/24","duration":"1h","reason":"abuse"}'
eq "A: 192.0.2.0/24 banned" "$STATUS" 201
check "B: 192.0.2.0/24 is in its penalty box, reason abuse" until_is b GET /api/v1/admin/penalties \
	'.penalties[] | select(.prefix == "192.0.2.0/24") | .reason' abuse
req a POST /api/v1/admin/penalties '{"prefix":"198.51.100.0/24"}'
req a DELETE "/api/v1/admin/penalties?prefix=198.51.100.0/24"
check "B: a ban then unban on A leaves nothing on B" until_is b GET /api/v1/admin/penalties \
	'[.penalties[].prefix] | join(",")' 192.0.2.0/24

# ---- a source policy
req a PUT "/api/v1/admin/policies?prefix=203.0.113.0/24" \
	'{"connections":{"capacity":3,"rate":"1/s"},"packets":"unlimited"}'
eq "A: policy set" "$STATUS" 200
check "B: the policy is in its lt_policy" until_is b GET /api/v1/admin/policies \
	'.policies[] | select(.prefix == "203.0.113.0/24") | .connections.capacity' 3

# ---- B down (kill -9) while A changes things; B catches up on start
check "settled before B goes down" settled
stop b KILL
req a PUT /api/v1/admin/tiers/USER/gemini '{"capacity":33,"rate":"1/s"}'
req a POST /api/v1/admin/providers '{"name":"mistral"}'
req a DELETE "/api/v1/admin/policies?prefix=203.0.113.0/24"
start b || { echo "Bail out! agent B did not restart"; exit 1; }
check "B caught up: the tier changed while it was down" until_is b GET /api/v1/admin/tiers/USER/gemini .capacity 33
check "B caught up: the provider added" until_is b GET /api/v1/admin/providers '.providers | index("mistral") != null' true
check "B caught up: the policy deleted" until_is b GET /api/v1/admin/policies \
	'[.policies[] | select(.prefix == "203.0.113.0/24")] | length' 0
check "A and B hold the same objects at the same versions" settled

# ---- Kafka down: the change on A is made at once and waits in its outbox; B gets it after
check "Kafka down (every broker)" mock down all
req a PUT /api/v1/admin/tiers/USER/anthropic '{"capacity":44,"rate":"1/s"}'
eq "Kafka down: the change on A is made (200)" "$STATUS" 200
status a
eq "Kafka down: it waits in A's outbox" "$(jqb '.outboxBacklog >= 1')" true
check "Kafka up again" mock up all
check "B gets the change made while Kafka was down" until_is b GET /api/v1/admin/tiers/USER/anthropic \
	.capacity 44 1500
check "settled after Kafka came back" settled

# ---- replay: B reads the whole topic again, nothing changes
snap() { # HOST FILE: what the admin API and the sync status say
	{
		for p in tiers "orgs/$ORG/quotas" providers keys policies; do
			req "$1" GET "/api/v1/admin/$p"
			# providers: a restart lists them by name, a run in the order added
			jq -S -c 'if (.providers | type) == "array" then .providers |= sort else . end' "$RB"
		done
		req "$1" GET /api/v1/admin/penalties
		jq -S -c '[.penalties[] | del(.expiresAt)]' "$RB"
		status "$1"
		jq -c '[.versionMs, .objects, .tombstones, .digest]' "$RB"
	} >"$2"
}
snap b "$WORK/b.before"
status b
before=$(jqb .partitions)
stop b
sqlite3 "${STATE[b]}/leaky.db" "DELETE FROM sync_offsets"
start b || { echo "Bail out! agent B did not restart"; exit 1; }
TOTAL=$(jq '[.[].nextOffset] | add' <<<"$before")
check "replay: B reads all $TOTAL records again" until_is b GET /api/v1/sync/status \
	'.records.duplicate + .records.stale' "$TOTAL"
snap b "$WORK/b.after"
check "replay: state and versions identical" diff "$WORK/b.before" "$WORK/b.after"
status b
eq "replay: nothing applied again" "$(jqb .records.applied)" 0

# ---- concurrent conflicting writes converge to one winner on both
req a PUT /api/v1/admin/tiers/ADMIN/qwen '{"capacity":111,"rate":"1/s"}' &
p1=$!
req b PUT /api/v1/admin/tiers/ADMIN/qwen '{"capacity":222,"rate":"1/s"}' &
p2=$!
wait "$p1" "$p2"
check "conflict: settled" settled
ver() { sqlite3 -separator ' ' "${STATE[$1]}/leaky.db" \
	"SELECT ver_ms, ver_host, data FROM sync_objects WHERE key='tier/ADMIN/qwen'"; }
va=$(ver a) vb=$(ver b)
eq "conflict: the same version and value on both" "$va" "$vb"
req a GET /api/v1/admin/tiers/ADMIN/qwen
ca=$(jqb .capacity)
req b GET /api/v1/admin/tiers/ADMIN/qwen
want=$([ "$(cut -d' ' -f2 <<<"$va")" = host-a ] && echo 111 || echo 222)
eq "conflict: both enforce the winner's value (the greater version: ${va%% \{*})" "$ca $(jqb .capacity)" "$want $want"

# ---- the greater version wins even when Kafka has the records the other way round: A's write
# (older) waits in A's outbox while A is stopped and Kafka down; B's (newer) reaches the topic
# first; then A comes back and its older record follows
check "order test: Kafka down" mock down all
req a PUT /api/v1/admin/tiers/ADMIN/gemini '{"capacity":333,"rate":"1/s"}'
eq "order test: A writes 333 (Kafka down: it waits in A's outbox)" "$STATUS" 200
stop a
sleep 0.05
req b PUT /api/v1/admin/tiers/ADMIN/gemini '{"capacity":444,"rate":"1/s"}'
eq "order test: B writes 444 later (a greater version)" "$STATUS" 200
check "order test: Kafka up" mock up all
check "order test: B's record is in the topic first" until_is b GET /api/v1/sync/status .outboxBacklog 0 1500
start a || { echo "Bail out! agent A did not restart"; exit 1; }
check "order test: settled" settled
eq "order test: both enforce B's 444, the greater version, not the last record in the topic" \
	"$(req a GET /api/v1/admin/tiers/ADMIN/gemini; jqb .capacity) $(req b GET /api/v1/admin/tiers/ADMIN/gemini; jqb .capacity)" \
	"444 444"

# ---- a stale record (older version) never overwrites a newer one
status a
sa=$(jqb .records.stale)
status b
sb=$(jqb .records.stale)
printf '%s\n' '{"kind":"tier","id":"USER/openai","version":{"ms":1,"host":"host-z"},"deleted":false,"data":{"capacity":999999,"tokens":1,"periodNs":1000000000}}' |
	timeout 30 nsenter --net=/run/netns/${NS[a]} kcat -P -b "$BOOT" -t "$CTOPIC" -k tier/USER/openai 2>"$WORK/kcat-p.err"
check "A counts the old record stale" until_is a GET /api/v1/sync/status .records.stale $((sa + 1))
check "B counts the old record stale" until_is b GET /api/v1/sync/status .records.stale $((sb + 1))
for h in a b; do
	req $h GET /api/v1/admin/tiers/USER/openai
	eq "$h: USER/openai is still 5" "$(jqb .capacity)" 5
done

# ---- a version far ahead of every clock (2^63 - 1 ms) is refused, and the sync goes on
status b
sf=$(jqb .records.future)
printf '%s\n' '{"kind":"tier","id":"USER/openai","version":{"ms":9223372036854775807,"host":"host-z"},"deleted":false,"data":{"capacity":999999,"tokens":1,"periodNs":1000000000}}' |
	timeout 30 nsenter --net=/run/netns/${NS[a]} kcat -P -b "$BOOT" -t "$CTOPIC" -k tier/USER/openai 2>>"$WORK/kcat-p.err"
check "B counts the record from the far future (records.future)" \
	until_is b GET /api/v1/sync/status .records.future $((sf + 1))
req b GET /api/v1/admin/tiers/USER/openai
eq "B: USER/openai is still 5" "$(jqb .capacity)" 5
status b
eq "B: its clock did not follow it" "$(jqb '.versionMs < 4000000000000')" true
req a PUT /api/v1/admin/tiers/USER/openai '{"capacity":6,"rate":"1/m"}'
eq "A: USER/openai set to 6 after it" "$STATUS" 200
check "B applies A's next change: the sync goes on" until_is b GET /api/v1/admin/tiers/USER/openai .capacity 6
req a PUT /api/v1/admin/tiers/USER/openai '{"capacity":5,"rate":"1/m"}'
check "and back to 5 on both" until_is b GET /api/v1/admin/tiers/USER/openai .capacity 5

# ---- kcat, an independent consumer: every record matches the documented schema
OUT=$WORK/config.jsonl
timeout 30 nsenter --net=/run/netns/${NS[a]} kcat -C -b "$BOOT" -t "$CTOPIC" -e -q -f '%k\t%h\t%s\n' 2>"$WORK/kcat.err" |
	jq -R -c 'split("\t") | {key: .[0],
		headers: (.[1] | split(",") | map(split("=")) |
			map({key: .[0], value: (.[1:] | join("="))}) | from_entries),
		value: (.[2:] | join("\t") | fromjson)}' >"$OUT"
jq -c 'select(.headers.ce_source != null)' "$OUT" >"$WORK/agents.jsonl" # not the stale one above
check "kcat: every agent record matches docs/events/config.v1.schema.json" \
	node "$ROOT/tests/openapi/events.mjs" "$ROOT/docs/events/config.v1.schema.json" "$WORK/agents.jsonl"
eq "kcat: ce_type on every record" "$(jq -r '.headers.ce_type' "$WORK/agents.jsonl" | sort -u)" \
	dev.leakytokens.config.v1
eq "kcat: the key is kind/id and the subject" \
	"$(jq -r 'select(.key != (.value.kind + "/" + .value.id) or .key != .headers.ce_subject) | .key' "$WORK/agents.jsonl" | wc -l)" 0
eq "kcat: ce_source is the version's host" \
	"$(jq -r 'select(.headers.ce_source != .value.version.host)' "$WORK/agents.jsonl" | wc -l)" 0
eq "kcat: a delete is a tombstone with its version" \
	"$(jq -c "select(.key == \"org/$ORG/openai\") | [.value.deleted, .value.data]" "$WORK/agents.jsonl" | tail -1)" \
	'[true,null]'
eq "kcat: an API key is published with its hash, never its secret" \
	"$(grep -c -- "${SECRET#*.}" "$OUT") $(jq -r "select(.key == \"apikey/$KID\") | .value.data.sha256" "$WORK/agents.jsonl" | sort -u | grep -cE '^[0-9a-f]{64}$')" \
	"0 1"
eq "kcat: one host never gives two objects the same version" \
	"$(jq -r '"\(.value.version.host) \(.value.version.ms) \(.key)"' "$WORK/agents.jsonl" |
		sort -u | cut -d' ' -f1,2 | uniq -d | wc -l)" 0

for h in a b; do
	stop $h
	check "$h: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "${LOG[$h]}"
done
tap_done
