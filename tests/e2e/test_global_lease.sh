#!/usr/bin/env bash
# test_global_lease.sh - global limits across hosts (issue #10, item 4), mode lease: two agents as two
# hosts (host-a, host-b: each its own network namespace, pin dir, state dir; one librdkafka mock
# cluster, tests/e2e/global_env.sh). W = 2 s windows, S = 100 ms.
#   * the allocators' group gives every partition of the global topic to one agent, which
#     grants only once it has read the grants topic up to its watermark;
#   * one lease bucket consumed through both hosts at once: in every window the hosts together
#     admit at most L + N*R*delta (delta measured by the agents), L = R*W, up to the client-side
#     measurement's resolution (an admission in flight across a boundary counts in both windows:
#     one connection per host, 10 tokens a request: 2*N*10);
#   * shares follow demand: with the other host idle, one host gets more than L / 2;
#   * grant records: for every bucket and window the leases (merged with max) sum to <= L;
#   * Kafka down: once stale, on_stale applies (share: L / N_live; closed: nothing in a new
#     window), and when Kafka is back the leases are fresh again;
#   * bad records (a future window, a lease above L, leases summing above L, a 17th host) are
#     refused and counted;
#   * the allocator killed (-9): the other takes its partitions over after the session timeout,
#     reads the grants first, and never grants a window above L.
# Prints TAP.
set -u
GHOSTS="a b"
GNAME=lease
. "$(dirname "$0")/global_env.sh"
# one connection per host: an admission in flight across a window boundary counts in both windows
# (tests/e2e/lease_bound.py is conservative), so at most one per host and edge
GCONNS=1
GRANTS=$GTOPIC.grants
ORG=00000000-0000-0000-0000-0000000000c1
ORG2=00000000-0000-0000-0000-0000000000c2
ORG3=00000000-0000-0000-0000-0000000000c3
W=2000
# C = 1000 tokens, R = 500/s: L = R*W = 1000 tokens a window
CAP=1000
RATE=500
L=1000

gconfig '{interval: "100ms", tau_max: "1s", host_ttl: "3s", session_timeout: "6s",
	buckets: [{prefix: "o/openai/", mode: "lease", window: "2s", on_stale: "share"},
		  {prefix: "o/gemini/", mode: "lease", window: "2s", on_stale: "closed"}]}'
for h in $GHOSTS; do start "$h" || { echo "Bail out! agent $h did not start"; exit 1; }; done
check "each host hears the other (N_live = 2)" until_is a .liveHosts 2
gstatus a
eq "the rule says lease, W = 2 s" "$(jqb '[.rules[0].mode, .rules[0].windowMs] | @tsv')" "lease	2000"
# every partition of the global topic has one allocator, ready (its grants read)
check "the allocators' group: partitions 0, 1, 2 each ready at one agent" until_allocators

for h in $GHOSTS; do
	quota "$h" "$ORG" openai $CAP $RATE/s
	quota "$h" "$ORG2" openai $CAP $RATE/s
	quota "$h" "$ORG3" gemini $CAP $RATE/s
done
KEY=o/openai/$ORG
lease_of() { echo "[.buckets[] | select(.key == \"$1\") | .lease.$2] | first"; }
# the bucket is made on each host by a first consume; then each asks, and is granted
for h in $GHOSTS; do
	consume "$h" "$ORG" openai 10
	eq "host $h: a first consume of the lease bucket" "$STATUS" 200
done
for h in $GHOSTS; do
	check "host $h: granted a lease" until_is "$h" "$(lease_of "$KEY" granted) > 0" true
done

# ---- both hosts at once, 2x the leak each (1000 tokens/s each, L/W = 500/s), 6 s (2+ windows)
lease_run "$ORG" $L $W $RATE 6
for h in $GHOSTS; do
	echo "# host $h answers: $(awk '{print $3}' "$WORK/load-$h.txt" | sort | uniq -c | tr '\n' ' ')" >&2
done
echo "# $(cat "$WORK/bound.json")"
eq "lease, N = 2: every window's admissions <= L + N*R*delta (+ the measurement's resolution)" \
	"$(jq -r .within "$WORK/bound.json")" true
eq "both hosts admitted in every window" \
	"$(jq -r '[.per_window[] | [.[] | select(. > 0)] | length == 2] | all' "$WORK/bound.json")" true

# ---- shares follow demand: host b has no bucket of ORG2 (idle), host a alone asks 2x the leak
load a "$ORG2" openai 10 100 5 "$WORK/load-solo.txt"
gstatus a
cp "$RB" "$WORK/status-solo.json"
python3 "$ROOT/tests/e2e/lease_bound.py" --limit $L --window-ms $W --rate $RATE --interval-ms 100 \
	--cost 10 "a=$WORK/load-solo.txt=$WORK/status-solo.json" >"$WORK/solo.json"
echo "# $(cat "$WORK/solo.json")"
eq "shares follow demand: host a alone gets more than L / 2 in its best window" \
	"$(jq -r "[.per_window[].a] | max > $L / 2" "$WORK/solo.json")" true
eq "... and stays within L + R*delta (+ resolution) in every window" "$(jq -r .within "$WORK/solo.json")" true

# ---- bad records on the grants topic are refused, counted, and change no lease
gstatus a
inv0=$(jqb .lease.grantRecords.invalid)
w=$(($(now_ms) / W * W))
{
	# a window far ahead
	printf '{"host":"forger","bucket":"%s","window":%s,"window_ms":%s,"limit":%s,"leases":{"host-a":10},"epoch":1,"time":%s,"expires":0}\n' \
		"$KEY" $((w + 100 * W)) $W $L "$(now_ms)"
	# one lease above L
	printf '{"host":"forger","bucket":"%s","window":%s,"window_ms":%s,"limit":%s,"leases":{"host-a":%s},"epoch":1,"time":%s,"expires":0}\n' \
		"$KEY" $w $W $L $((L + 1)) "$(now_ms)"
	# leases summing above L
	printf '{"host":"forger","bucket":"%s","window":%s,"window_ms":%s,"limit":%s,"leases":{"host-a":600,"host-b":600},"epoch":1,"time":%s,"expires":0}\n' \
		"$KEY" $w $W $L "$(now_ms)"
	# a window that is not on the rule's grid
	printf '{"host":"forger","bucket":"%s","window":%s,"window_ms":%s,"limit":%s,"leases":{"host-a":1},"epoch":1,"time":%s,"expires":0}\n' \
		"$KEY" $((w + 1)) $W $L "$(now_ms)"
} >"$WORK/forged.jsonl"
inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GRANTS" -k "$KEY" -l "$WORK/forged.jsonl" 2>"$WORK/kcat-p.err"
check "A: the 4 bad grant records are refused (grantRecords.invalid + 4)" \
	until_is a .lease.grantRecords.invalid $((inv0 + 4))
gstatus a
eq "A: its lease of that window is not above L" "$(jqb "$(lease_of "$KEY" granted) <= $L")" true
# a 17th host: 15 made-up hosts ask for the bucket; the owner of its partition keeps 16 hosts
# owner: OWNER = the host whose allocator is ready on KEY's partition p
owner() {
	local h
	OWNER=
	gstatus a
	p=$(jqb "[.lease.buckets[] | select(.key == \"$KEY\") | .partition] | first")
	for h in $GHOSTS; do
		gstatus "$h"
		[ "$(jqb ".lease.ready | index($p) != null")" = true ] && OWNER=$h
	done
	echo "# the allocator of $KEY (partition $p) is host-$OWNER" >&2
	[ -n "$OWNER" ]
}
check "KEY's partition has a ready allocator" owner
gstatus "$OWNER"
ign0=$(jqb .lease.hostsIgnored)
for i in $(seq 1 15); do
	printf '{"host":"made-up-%s","bucket":"%s","window":1,"tokens":0,"time":%s,"prev_time":0,"interval_ms":100,"lease_window":%s,"spent":0,"lease":0,"want":1,"rate":0}\n' \
		"$i" "$KEY" "$(now_ms)" $(($(now_ms) / W * W))
done >"$WORK/many.jsonl"
inns "$FIRST" timeout 30 kcat -P -b "$BOOT" -t "$GTOPIC" -k "$KEY" -l "$WORK/many.jsonl" 2>"$WORK/kcat-p.err"
check "the allocator refuses the demand of hosts past the 16th (hostsIgnored grows)" \
	until_is "$OWNER" ".lease.hostsIgnored > $ign0" true

# ---- Kafka down: on_stale (share: L / N_live; closed: nothing in a window granted nothing)
KEY3=o/gemini/$ORG3
for h in $GHOSTS; do
	consume "$h" "$ORG3" gemini 10
	eq "host $h: a first consume of the closed lease bucket" "$STATUS" 200
done
check "host a: granted a lease of the closed bucket" until_is a "$(lease_of "$KEY3" granted) > 0" true
check "mock cluster: every broker down" mock down all
check "A: the sync is stale" until_is a .stale true 400
# N_live as the same status reports it: 2 at first, 1 once B is past host_ttl (3 s) unheard,
# which a loaded machine reaches before this check does
check "share: A admits against max(its grant, L / N_live)" until_is a \
	". as \$s | [.buckets[] | select(.key == \"$KEY\") | .lease | .stale and
		(.effective == ([.granted, ($L / \$s.liveHosts | floor)] | max))] | first" true 200
check "closed: a window begun while stale has no lease at A" until_is a \
	"[.buckets[] | select(.key == \"$KEY3\") | .lease | .stale and .granted == 0 and
		.effective == 0] | first" true 200
consume a "$ORG3" gemini 1
eq "closed: A refuses the bucket (429)" "$STATUS" 429
check "mock cluster: brokers up" mock up all
check "A: the sync is fresh again" until_is a .stale false 600
check "closed: A is granted again, fresh" until_is a \
	"[.buckets[] | select(.key == \"$KEY3\") | .lease | (.stale | not) and .granted > 0] | first" true 600
ok=0
for _ in $(seq 40); do
	consume a "$ORG3" gemini 1
	[ "$STATUS" = 200 ] && { ok=1; break; }
	sleep 0.05
done
eq "closed: fresh again, A admits (the holds are lifted)" "$ok" 1

# ---- the allocator of KEY killed (-9): the other takes the partition over after the session
# timeout, reads the grants up to its watermark first, and grants again. The outage may have
# moved partitions: the group settles first, and the owner is found again.
check "after the outage, partitions 0, 1, 2 each ready at one agent" until_allocators
check "KEY's partition has a ready allocator" owner
OTHER=a
[ "$OWNER" = a ] && OTHER=b
tkill=$(now_ms)
kill -9 "${PID[$OWNER]}"
wait "${PID[$OWNER]}" 2>/dev/null
PID[$OWNER]=
check "host $OTHER: takes partition $p over (ready)" until_is "$OTHER" ".lease.ready | index($p) != null" true 800
gstatus "$OTHER"
eq "host $OTHER: its allocator epoch began after the kill" "$(jqb ".lease.epochMs > $tkill")" true
load "$OTHER" "$ORG" openai 10 100 3 "$WORK/load-after.txt"
gstatus "$OTHER"
eq "host $OTHER: admits through its own grants after the takeover" \
	"$(awk '$3 == 200' "$WORK/load-after.txt" | wc -l | awk '{print ($1 > 0)}')" 1
check "host $OTHER: granted a lease as the allocator of the bucket" until_is "$OTHER" \
	"$(lease_of "$KEY" granted) > 0" true
req "$OTHER" GET /metrics
eq "host $OTHER: /metrics shows it allocating (partitions owned, grants sent, delta)" \
	"$(awk '$1 == "lt_global_lease_partitions_owned" { o = ($2 > 0) }
		$1 == "lt_global_lease_grants_sent_total" { g = ($2 > 0) }
		$1 == "lt_global_lease_late_seconds" { d = ($2 >= 0) } END { print o g d }' "$RB")" 111

# ---- every grant record, read by kcat: the schema, and no window granted above L
inns "$FIRST" timeout 30 kcat -C -b "$BOOT" -t "$GRANTS" -e -q -f '%k\t%h\t%s\n' 2>"$WORK/kcat.err" |
	jq -R -c 'split("\t") | {key: .[0],
		headers: (.[1] | split(",") | map(split("=")) |
			map({key: .[0], value: (.[1:] | join("="))}) | from_entries),
		value: (.[2:] | join("\t") | fromjson)}' >"$WORK/grants.jsonl"
jq -c 'select(.value.host != "forger")' "$WORK/grants.jsonl" >"$WORK/grants-real.jsonl"
check "every allocator's grant record matches docs/events/grant.v1.schema.json" \
	node "$ROOT/tests/openapi/events.mjs" "$ROOT/docs/events/grant.v1.schema.json" "$WORK/grants-real.jsonl"
jq -s '[.[].value] | group_by(.bucket + " " + (.window | tostring)) |
	map({bucket: .[0].bucket, window: .[0].window, limit: ([.[].limit] | min),
		allocators: ([.[].host] | unique),
		sum: ([.[].leases | to_entries[]] | group_by(.key) | map([.[].value] | max) | add // 0)})' \
	"$WORK/grants-real.jsonl" >"$WORK/windows.json"
echo "# grant windows: $(jq length "$WORK/windows.json"), over L: $(jq -c '[.[] | select(.sum > .limit)]' "$WORK/windows.json")" >&2
eq "no bucket's window was granted above L (leases merged with max over every allocator)" \
	"$(jq '[.[] | select(.sum > .limit)] | length' "$WORK/windows.json")" 0
eq "the bucket had two allocators over the run (before and after the kill)" \
	"$(jq -r "[.[] | select(.bucket == \"$KEY\") | .allocators[]] | unique | length" "$WORK/windows.json")" 2
jq -c 'select(.value.lease_window != null)' <(inns "$FIRST" timeout 30 kcat -C -b "$BOOT" -t "$GTOPIC" -e -q \
	-f '%k\t%h\t%s\n' 2>>"$WORK/kcat.err" | jq -R -c 'split("\t") | {key: .[0],
		headers: (.[1] | split(",") | map(split("=")) |
			map({key: .[0], value: (.[1:] | join("="))}) | from_entries),
		value: (.[2:] | join("\t") | fromjson)}') | grep -v made-up >"$WORK/demand.jsonl"
check "the demand records match docs/events/global.v1.schema.json" \
	node "$ROOT/tests/openapi/events.mjs" "$ROOT/docs/events/global.v1.schema.json" "$WORK/demand.jsonl"

hosts_no_error
tap_done
