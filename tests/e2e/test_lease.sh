#!/usr/bin/env bash
# test_lease.sh - global limits across hosts (issue #10, item 4), mode lease: two agents as two
# hosts (host-a, host-b: each its own network namespace, pin dir, state dir; one librdkafka mock
# cluster, tests/e2e/global_env.sh). W = 2 s windows, S = 100 ms.
#   * the allocators' group gives every partition of the global topic to one agent, which
#     grants only once it has read the grants topic up to its watermark;
#   * one lease bucket consumed through both hosts at once: in every window the hosts together
#     admit at most L + N*R*(S + delta) (delta measured by the agents), L = R*W;
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
GRANTS=$GTOPIC.grants
ORG=00000000-0000-0000-0000-0000000000c1
ORG2=00000000-0000-0000-0000-0000000000c2
ORG3=00000000-0000-0000-0000-0000000000c3
W=2000
# C = 1000 tokens, R = 500/s: L = R*W = 1000 tokens a window
CAP=1000
RATE=500
L=1000

gconfig '{interval: "100ms", tau_max: "1s", host_ttl: "3s", session_timeout: "2s",
	buckets: [{prefix: "o/openai/", mode: "lease", window: "2s", on_stale: "share"},
		  {prefix: "o/gemini/", mode: "lease", window: "2s", on_stale: "closed"}]}'
for h in $GHOSTS; do start "$h" || { echo "Bail out! agent $h did not start"; exit 1; }; done
check "each host hears the other (N_live = 2)" until_is a .liveHosts 2
gstatus a
eq "the rule says lease, W = 2 s" "$(jqb '[.rules[0].mode, .rules[0].windowMs] | @tsv')" "lease	2000"
# every partition of the global topic has one allocator, ready (its grants read)
owners() {
	gstatus a
	cp "$RB" "$WORK/sa.json"
	gstatus b
	jq -s -r '[.[].lease.ready[]] | sort | @csv' "$WORK/sa.json" "$RB"
}
until_owned() {
	local i
	for ((i = 0; i < 400; i++)); do
		[ "$(owners)" = '0,1,2' ] && return 0
		sleep 0.05
	done
	echo "# ready partitions: $(owners)" >&2
	return 1
}
check "the allocators' group: partitions 0, 1, 2 each ready at one agent" until_owned || { grep -h global "${LOG[@]}" | head -40 >&2; jq -c .lease "$WORK/sa.json" >&2; }

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

# ---- both hosts at once, 4x the leak each (2000 tokens/s each, L/W = 500/s), 6 s (2+ windows)
for h in $GHOSTS; do req "$h" POST /api/v1/global/measure; done
pids=()
for h in $GHOSTS; do
	load "$h" "$ORG" openai 10 200 6 "$WORK/load-$h.txt" &
	pids+=($!)
done
wait "${pids[@]}"
args=()
for h in $GHOSTS; do
	gstatus "$h"
	cp "$RB" "$WORK/status-$h.json"
	args+=("$h=$WORK/load-$h.txt=$WORK/status-$h.json")
	echo "# host $h answers: $(awk '{print $3}' "$WORK/load-$h.txt" | sort | uniq -c | tr '\n' ' ')" >&2
done
python3 "$ROOT/tests/e2e/lease_bound.py" --limit $L --window-ms $W --rate $RATE --interval-ms 100 \
	--cost 10 "${args[@]}" >"$WORK/bound.json"
echo "# $(cat "$WORK/bound.json")"
eq "lease, N = 2: every window's admissions <= L + N*R*(S + delta)" \
	"$(jq -r .within "$WORK/bound.json")" true
eq "both hosts admitted in every window" \
	"$(jq -r '[.per_window[] | [.[] | select(. > 0)] | length == 2] | all' "$WORK/bound.json")" true

tap_done
