#!/usr/bin/env bash
# test_global.sh - global limits across hosts (issue #10, item 4), mode replicate: two agents as
# two hosts (host-a, host-b: each its own network namespace, pin dir, state dir; one librdkafka
# mock cluster, tests/e2e/global_env.sh).
#   * an org budget consumed through both hosts at once stays within the documented bound,
#     C + R*t + max_i sum_{j!=i} min(W_j(tau), C + R*tau), every input measured in this run
#     (tau by the agents from the records' event times, W_j from the admissions' times);
#   * the records on the global topic match docs/events/global.v1.md (kcat reads them);
#   * Kafka down: once the sync is older than tau_max each rule's on_stale takes over
#     (closed: nothing admitted; share: L / N_live; last: the local bucket alone), and when
#     Kafka is back the sync is fresh again and the holds of closed are lifted.
# Prints TAP.
set -u
GHOSTS="a b"
GNAME=glob
. "$(dirname "$0")/global_env.sh"
ORG=00000000-0000-0000-0000-0000000000a1
ORG2=00000000-0000-0000-0000-0000000000a2

gconfig '{interval: "100ms", tau_max: "1s", host_ttl: "60s",
	buckets: [{prefix: "o/openai/", mode: "replicate", on_stale: "share"},
		  {prefix: "o/qwen/", on_stale: "share"},
		  {prefix: "o/gemini/", on_stale: "closed"},
		  {prefix: "o/anthropic/", on_stale: "last"}]}'
for h in $GHOSTS; do start "$h" || { echo "Bail out! agent $h did not start"; exit 1; }; done
gstatus a
eq "global on: host, topic, rules" "$(jqb '[.enabled, .host, .topic, (.rules | length)] | @tsv')" \
	"true	host-a	$GTOPIC	4"
check "each host hears the other (N_live = 2)" until_is a .liveHosts 2
check "... both ways" until_is b .liveHosts 2
eq "the sync is fresh" "$(jqb .stale)" false

# ---- mode lease is tests/e2e/test_global_lease.sh; its config is checked here: a bad window is refused
# with the field, and so is a mode that does not exist
"$AGENT" print-config | jq '.kafka = {enabled: true, brokers: "127.0.0.1:1"} |
	.global = {topic: "g", buckets: [{prefix: "o/", mode: "lease", window: "10ms"}]}' >"$WORK/lease.json"
out=$("$AGENT" check-config --config "$WORK/lease.json" 2>&1)
expect_err "a lease window under 1 s is refused, naming the field" $? "$out" '/global/buckets/0/window'
"$AGENT" print-config | jq '.kafka = {enabled: true, brokers: "127.0.0.1:1"} |
	.global = {topic: "g", buckets: [{prefix: "o/", mode: "share"}]}' >"$WORK/mode.json"
out=$("$AGENT" check-config --config "$WORK/mode.json" 2>&1)
expect_err "an unknown mode is refused, naming the field" $? "$out" '/global/buckets/0/mode'

# ---- the org budget through both hosts at once: C = 1000 tokens, R = 200/s, 10 tokens a
# request, each host 100 requests/s (5x the leak together) for 3 s
for h in $GHOSTS; do quota "$h" "$ORG" openai 1000 200/s; done
if overshoot_run "$ORG" openai 1000 200 10 100 3; then
	ok "both hosts drove the budget; each measured tau of the other"
else
	notok "both hosts drove the budget; each measured tau of the other"
fi
echo "# $(cat "$WORK/bound.json")"
eq "replicate, N = 2: measured overshoot <= (N-1) min(lambda tau, C + R tau), tau measured" \
	"$(jq -r .within "$WORK/bound.json")" true
eq "both hosts admitted" "$(jq -r '[.per_host[] | select(. > 0)] | length' "$WORK/bound.json")" 2
# a burst: C = 200, R = 50/s, each host 200 requests/s: each host's whole bucket can go before
# it sees the other's spend, the worst case the formula allows
ORG3=00000000-0000-0000-0000-0000000000a3
for h in $GHOSTS; do quota "$h" "$ORG3" openai 200 50/s; done
if overshoot_run "$ORG3" openai 200 50 10 200 2; then
	ok "burst: both hosts drove the budget; each measured tau of the other"
else
	notok "burst: both hosts drove the budget; each measured tau of the other"
fi
echo "# $(cat "$WORK/bound.json")"
eq "replicate, N = 2, a burst: measured overshoot <= the formula, tau measured" \
	"$(jq -r .within "$WORK/bound.json")" true
for h in $GHOSTS; do
	gstatus "$h"
	eq "host $h debited the other's spend" \
		"$(jqb "[.buckets[] | select(.key == \"o/openai/$ORG\") | .remoteDebited > 0] | first")" true
done

# ---- the records, read by kcat as an independent consumer: docs/events/global.v1.schema.json
inns "$FIRST" timeout 30 kcat -C -b "$BOOT" -t "$GTOPIC" -e -q -f '%k\t%h\t%s\n' 2>"$WORK/kcat.err" |
	jq -R -c 'split("\t") | {key: .[0],
		headers: (.[1] | split(",") | map(split("=")) |
			map({key: .[0], value: (.[1:] | join("="))}) | from_entries),
		value: (.[2:] | join("\t") | fromjson)}' >"$WORK/records.jsonl"
check "every record on the global topic matches the schema" \
	node "$ROOT/tests/openapi/events.mjs" "$ROOT/docs/events/global.v1.schema.json" "$WORK/records.jsonl"
jq -c "select(.key == \"o/openai/$ORG\") | .value" "$WORK/records.jsonl" >"$WORK/bucket-records.json"
eq "the bucket's records: both hosts, keyed by the bucket" \
	"$(jq -s -r '[.[].host] | unique | join(" ")' "$WORK/bucket-records.json")" "host-a host-b"
eq "a host's published count never goes down within a window" \
	"$(jq -s -r 'group_by(.host + " " + (.window | tostring)) |
		map(sort_by(.time) | [.[].tokens] | . == sort) | all' "$WORK/bucket-records.json")" true
eq "heartbeats: one key per host" \
	"$(jq -r 'select(.value.heartbeat) | .key' "$WORK/records.jsonl" | sort -u | tr '\n' ' ')" \
	"host/host-a host/host-b "

# ---- Kafka down: on_stale
for p in qwen anthropic; do
	for h in $GHOSTS; do quota "$h" "$ORG2" "$p" 100 1/m; done
done
# closed at 20/s: the hold is topped up every S for the whole outage (one merged hold), and all
# of it that has not leaked must come back when the sync is fresh (else 10 s of refusals)
for h in $GHOSTS; do quota "$h" "$ORG2" gemini 100 20/s; done
consume a "$ORG2" gemini 10
eq "closed: before the outage the bucket admits" "$STATUS" 200
check "mock cluster: every broker down" mock down all
check "A: the sync is stale (older than tau_max)" until_is a .stale true 400
check "B: the sync is stale" until_is b .stale true 400
gstatus a
eq "A still counts B live (N_live = 2)" "$(jqb .liveHosts)" 2
# the closed rule's hold is on from the tick after stale
check "closed: A refuses the bucket while stale" until_is a \
	"[.buckets[] | select(.key == \"o/gemini/$ORG2\") | .staleDebited > 0] | first" true 200
n=0
for _ in 1 2 3 4 5; do
	consume a "$ORG2" gemini 1
	[ "$STATUS" = 429 ] && n=$((n + 1))
done
eq "closed: 5 of 5 consumes of 1 token refused (429)" "$n" 5
# last: the local bucket alone, C = 100 at 10 a request
n=0
for _ in $(seq 12); do
	consume a "$ORG2" anthropic 10
	[ "$STATUS" = 200 ] && n=$((n + 1))
done
eq "last: A admits its whole local bucket (10 of 12)" "$n" 10
# share: each admission is debited N_live - 1 = 1 more time at the next tick; wait for the tick
# after each, so the figure is exact: L / N_live = 50 of 100
n=0
for i in $(seq 8); do
	consume a "$ORG2" qwen 10
	[ "$STATUS" = 200 ] || break
	n=$((n + 1))
	until_is a "[.buckets[] | select(.key == \"o/qwen/$ORG2\") | .staleDebited] | first" \
		$((n * 10)) 200 || break
done
eq "share: A admits L / N_live = 50 of 100 tokens while stale" "$((n * 10))" 50

check "mock cluster: brokers up" mock up all
check "A: the sync is fresh again" until_is a .stale false 600
check "B: the sync is fresh again" until_is b .stale false 600
consume a "$ORG2" gemini 10
eq "closed: fresh again, the hold is lifted (10 more tokens fit)" "$STATUS" 200

# ---- kill -9 and restart: B counts in a new window, and A debits it from 0 (never lower)
gstatus a
w1=$(jqb "[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"].window] | first")
d1=$(jqb "[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"].debited] | first")
kill -9 "${PID[b]}"
wait "${PID[b]}" 2>/dev/null
PID[b]=
start b || { echo "Bail out! agent b did not restart"; exit 1; }
check "B after kill -9: hears A again" until_is b .liveHosts 2
check "B after kill -9: tracks the org bucket again" until_is b \
	"[.buckets[] | select(.key == \"o/openai/$ORG\") | .tracked] | first" true
consume b "$ORG" openai 10
eq "B after kill -9: a consume of the org budget" "$STATUS" 200
check "A: B's new window is debited from 0: exactly its 10 tokens" until_is a \
	"[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"] |
		(.window > $w1) and (.debited == $d1 + 10)] | first" true

# ---- a record stamped far ahead (a host whose clock was wrong at its start, or a forged one):
# refused, so it neither hides B's later windows (over-admission) nor keeps B alive for ever
gstatus a
inv0=$(jqb '.records.invalid')
d2=$(jqb "[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"].debited] | first")
nowms=$(date +%s%3N)
far=$((nowms + 10 * 365 * 86400000))
printf '{"host":"host-b","bucket":"o/openai/%s","window":%s,"tokens":1,"time":%s,"prev_time":%s}\n' \
	"$ORG" "$far" "$nowms" "$nowms" |
	inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k "o/openai/$ORG" 2>"$WORK/kcat-p.err"
check "A: a window 10 years ahead is refused (records.invalid + 1)" until_is a .records.invalid $((inv0 + 1))
# (the log line comes from the consumer thread: bounded wait for the file to show it)
said() { for _ in $(seq 50); do grep -q "$1" "$2" && return 0; sleep 0.1; done; return 1; }
check "A: says so, naming the host" said 'global: a record of host host-b is [0-9]* s ahead' "${LOG[a]}"
consume b "$ORG" openai 10
eq "B: a consume of the org budget after it" "$STATUS" 200
check "A: B's spend is still debited (10 tokens more)" until_is a \
	"[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"] |
		(.window < $far) and (.debited == $d2 + 10)] | first" true

# ---- a record that claims more than B's own bucket can have let through (a wrong or forged
# producer): only C + R*t past B's last record, at most 2C + R(t + 1 ms) + 1, is debited; the
# rest is counted as clipped, and B's real spend counts again once it passes what was taken
gstatus a
cl0=$(jqb .clippedTokens) rc0=$(jqb .records.clipped)
read -r w3 t3 d3 < <(jqb "[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"] |
	\"\\(.window) \\(.tokens) \\(.debited)\"] | first" | tr -d '"')
nowms=$(date +%s%3N)
printf '{"host":"host-b","bucket":"o/openai/%s","window":%s,"tokens":%s,"time":%s,"prev_time":%s}\n' \
	"$ORG" "$w3" "$((t3 + 1000000000000))" "$nowms" "$nowms" |
	inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k "o/openai/$ORG" 2>"$WORK/kcat-p.err"
check "A: a record claiming 10^12 tokens more is clipped (records.clipped + 1)" \
	until_is a .records.clipped $((rc0 + 1))
gstatus a
d4=$(jqb "[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"].debited] | first")
# C = 1000, R = 200/s: since B's last record (at most the ~${SECONDS}s of this run) that is
# at most 2000 + 200 * SECONDS + 1
check "A: it debited only what B's bucket allows ($((d4 - d3)) <= 2001 + 200 * $SECONDS)" \
	test $((d4 - d3)) -le $((2001 + 200 * SECONDS)) -a $((d4 - d3)) -gt 0
check "A: the rest is counted as clipped tokens" \
	test "$(jqb .clippedTokens)" -ge $((cl0 + 1000000000000 - 2001 - 200 * SECONDS))
req a GET /metrics
check "A: /metrics has lt_global_clipped_tokens_total" grep -q "^lt_global_clipped_tokens_total [1-9]" "$RB"
gstatus a
# ---- a bucket key in another spelling (an upper-case org id) names no bucket: refused
inv0=$(jqb '.records.invalid')
UP=$(tr a-f A-F <<<"$ORG2")
printf '{"host":"host-b","bucket":"o/openai/%s","window":%s,"tokens":5,"time":%s,"prev_time":%s}\n' \
	"$UP" "$w3" "$nowms" "$nowms" |
	inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k "o/openai/$UP" 2>"$WORK/kcat-p.err"
check "A: a non-canonical bucket key is refused (records.invalid + 1)" until_is a .records.invalid $((inv0 + 1))
eq "A: no bucket was made for it" \
	"$(jqb "[.buckets[] | select(.key == \"o/openai/$UP\")] | length")" 0

# ---- a record of B stamped ahead (forged, or B's clock stepped back after it) that adds nothing
# moved the stream's reference time ahead: every later record of B then spanned 0 ms and was
# clipped to 2C + R*1ms + 1, whatever time had passed (B's real spend under-debited for up to an
# hour). Behind the reference, the span is the time this host has waited since it was set.
B5="[.buckets[] | select(.key == \"o/openai/$ORG\") | .remote[\"host-b\"]"
gstatus a
read -r w5 t5 d5 < <(jqb "$B5 | \"\\(.window) \\(.tokens) \\(.debited)\"] | first" | tr -d '"')
ahead=$(($(date +%s%3N) + 3000000))
printf '{"host":"host-b","bucket":"o/openai/%s","window":%s,"tokens":%s,"time":%s,"prev_time":%s}\n' \
	"$ORG" "$w5" "$t5" "$ahead" "$ahead" |
	inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k "o/openai/$ORG" 2>"$WORK/kcat-p.err"
check "A: a record of B 50 min ahead that adds nothing is taken (lastEventMs = its time)" \
	until_is a "$B5 | .lastEventMs] | first" "$ahead"
# 2300 > 2C + R*1ms + 1 = 2001, < 2C + R*(3 s) = 2600: wait (bounded) until 3 s have passed here
t0=$(date +%s%3N)
while [ "$(date +%s%3N)" -lt $((t0 + 3000)) ]; do sleep 0.1; done
nowms=$(date +%s%3N)
printf '{"host":"host-b","bucket":"o/openai/%s","window":%s,"tokens":%s,"time":%s,"prev_time":%s}\n' \
	"$ORG" "$w5" "$((t5 + 2300))" "$nowms" "$((nowms - 100))" |
	inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k "o/openai/$ORG" 2>"$WORK/kcat-p.err"
check "A: B's next record is taken" until_is a "$B5 | .tokens > $t5] | first" true
check "A: 3 s after the reference, its 2300 tokens are debited whole (debited +$(($(jqb "$B5 | .debited] | first") - d5)))" \
	test "$(jqb "$B5 | .debited] | first")" = $((d5 + 2300))

# ---- a host whose clock is 50 min ahead of ours (within the hour allowed) is live: its times
# are past our now, and an unsigned now - time made its age 2^64 - x (left out of N_live, and
# so of share's L / N_live, until our clock caught up)
printf '{"host":"host-c","heartbeat":true,"time":%s}\n' "$(($(date +%s%3N) + 3000000))" |
	inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k host/host-c 2>"$WORK/kcat-p.err"
check "A: a host 50 min ahead counts as live (N_live = 3)" until_is a .liveHosts 3

# ---- hosts whose names change (a pod's on each restart): 14 more that died long ago fill the
# table of 16 other hosts (b, c and these); a 17th, live, takes the entry of one past host_ttl
# (it was ignored for good: its spend never debited)
old=$(($(date +%s%3N) - 600000))
for i in $(seq 1 14); do
	printf '{"host":"gone-%s","heartbeat":true,"time":%s}\n' "$i" "$((old + i))"
done >"$WORK/gone.jsonl"
printf '{"host":"host-z","heartbeat":true,"time":%s}\n' "$(date +%s%3N)" >>"$WORK/gone.jsonl"
# one Kafka key: one partition, read in this order
inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k host/gone -l "$WORK/gone.jsonl" 2>"$WORK/kcat-p.err"
check "A: the 17th host, live, is heard (N_live = 4: a, b, c, z)" until_is a .liveHosts 4
eq "A: it took the entry of the host heard from longest ago" \
	"$(jqb '[.origins[].host] | (index("host-z") != null) and (index("gone-1") == null) and (length == 16)')" true

hosts_no_error
tap_done
