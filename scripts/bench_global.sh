#!/usr/bin/env bash
# bench_global.sh - the global-limits rows of `make bench` (issue #10, item 4): the measured
# overshoot of one global bucket for N = 2 and N = 3 hosts, next to the formula, in mode
# replicate and in mode lease (the lease rows: GMODE=lease below). Each host is a release leaky-agent in its own network namespace, pin dir and state
# dir, on librdkafka's mock cluster over TCP (tests/e2e/global_env.sh, as test_global.sh).
# Every host drives the same org bucket (10 tokens a request) through POST
# /api/v1/tokens/consume at once (build/rel/tests/lt_gload, paced): C = 1000, R = 200/s at a low
# and a high demand per host (a steady race for the leak), and C = 200, R = 50/s at the high
# demand (a burst: each host's whole bucket goes before it sees the others, the worst case of
# the formula); then tests/e2e/global_bound.py takes the admissions' times and the agents'
# measured tau and prints:
#   admitted   tokens admitted by all hosts together
#   allowance  C + R*t, t the window from the first admission to the last
#   overshoot  the largest admitted - (C + R*t) over every window between two admissions
#              (the figure to keep under the bound; global_bound.py says how it is conservative)
#   bound      max_i sum_{j!=i} min(W_j(tau_ij), C + R*tau_ij): the documented formula
#              (N-1)*min(lambda*tau, C + R*tau) with lambda*tau and tau measured in the run
#   tau        the longest time one host's spend stayed unseen at another (from event times)
#   formula(demand)  (N-1)*min(lambda*tau_max, C + R*tau_max) with lambda the offered demand
#   GLOBAL_BENCH_SECONDS  seconds per run (default 5)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${GHOSTS:-}" ]; then
	echo
	echo "global limits (mode replicate, S = 100 ms): overshoot of one global bucket, tokens"
	printf '%-3s %-13s %-14s %9s %9s %9s %9s %16s  %s\n' N "C, R" "demand/host" admitted \
		allowance overshoot bound "formula(demand)" "tau ms (i<-j)"
	GHOSTS="a b" GNAME=gb2 bash "$0"
	GHOSTS="a b c" GNAME=gb3 bash "$0"
	echo
	echo "global limits (mode lease, S = 100 ms, W = 2 s, L = R*W): the most all hosts admitted in one"
	echo "window (conservative: a boundary straddler counts in both), against L + N*R*delta (delta: the"
	echo "latest tick, measured by the agents) and the measurement's resolution 2*N*10 tokens"
	printf '%-3s %-13s %-14s %7s %8s %13s %9s %14s %9s %11s\n' N "C, R" "demand/host" L windows \
		"admitted max" overshoot "bound (L+...)" "delta ms" resolution
	GMODE=lease GHOSTS="a b" GNAME=gl2 bash "$0"
	GMODE=lease GHOSTS="a b c" GNAME=gl3 bash "$0"
	exit 0
fi
AGENT=${BENCH_AGENT:-$ROOT/build/leaky-agent}
MOCK=${BENCH_KAFKA_MOCK:-$ROOT/build/rel/tests/lt_kafka_mock}
GLOAD=${BENCH_GLOAD:-$ROOT/build/rel/tests/lt_gload}
DUR=${GLOBAL_BENCH_SECONDS:-5}
. "$ROOT/tests/e2e/global_env.sh" >/dev/null
N=$(wc -w <<<"$GHOSTS")
if [ "${GMODE:-}" = lease ]; then
	# mode lease: every host drives one lease bucket (C = 1000, R = 500/s: L = 1000 a 2 s window)
	# at twice the leak each over one connection, then tests/e2e/lease_bound.py counts every
	# window (an admission in flight across a boundary counts in both: never below the truth, and
	# at most one a host and edge above it)
	GCONNS=1
	gconfig '{interval: "100ms", tau_max: "1s", session_timeout: "6s",
		buckets: [{prefix: "o/openai/", mode: "lease", window: "2s"}]}'
	for h in $GHOSTS; do start "$h" 2>/dev/null || { echo "N=$N: agent $h did not start"; exit 1; }; done
	for h in $GHOSTS; do until_is "$h" .liveHosts "$N" 2>/dev/null || { echo "N=$N: hosts do not hear each other"; exit 1; }; done
	until_allocators 2>/dev/null || { echo "N=$N: the allocators' group did not settle"; exit 1; }
	ORG=$(printf '00000000-0000-0000-0000-0000000c%02d01' "$N")
	for h in $GHOSTS; do quota "$h" "$ORG" openai 1000 500/s; done
	for h in $GHOSTS; do
		consume "$h" "$ORG" openai 10
		until_is "$h" "[.buckets[] | select(.key == \"o/openai/$ORG\") | .lease.granted > 0] | first" \
			true 2>/dev/null || { echo "N=$N: host $h was granted no lease"; exit 1; }
	done
	lease_run "$ORG" 1000 2000 500 "$((DUR + 2))"
	jq -r --argjson n "$N" '[($n | tostring), "1000, 500/s", "1000 tok/s", .limit, .windows,
		.admitted_max, .overshoot, "\(.bound) (+\(.overshoot_bound))", .delta_ms, .resolution] | @tsv' \
		"$WORK/bound.json" |
		awk -F'\t' '{ printf "%-3s %-13s %-14s %7s %8s %13s %9s %14s %9s %11s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
	[ "$(jq -r .within "$WORK/bound.json")" = true ] || echo "    ^ above the bound + resolution: $(cat "$WORK/bound.json")"
	exit 0
fi
gconfig '{interval: "100ms", tau_max: "1s", buckets: [{prefix: "o/openai/"}]}'
for h in $GHOSTS; do start "$h" 2>/dev/null || { echo "N=$N: agent $h did not start"; exit 1; }; done
for h in $GHOSTS; do until_is "$h" .liveHosts "$N" 2>/dev/null || { echo "N=$N: hosts do not hear each other"; exit 1; }; done
i=0
for run in "1000 200 50" "1000 200 400" "200 50 400"; do
	read -r cap rate rps <<<"$run"
	i=$((i + 1))
	ORG=$(printf '00000000-0000-0000-0000-0000000b%02d%02d' "$N" "$i")
	for h in $GHOSTS; do quota "$h" "$ORG" openai "$cap" "$rate/s"; done
	if ! overshoot_run "$ORG" openai "$cap" "$rate" 10 "$rps" "$DUR" 2>/dev/null; then
		echo "N=$N $run: the run did not complete"
		continue
	fi
	jq -r --argjson n "$N" --argjson lam "$((rps * 10))" --argjson c "$cap" --argjson r "$rate" \
		--arg d "$((rps * 10)) tok/s" --arg cr "$cap, $rate/s" '
		([.tau_ms[]] | max) as $t |
		[($n | tostring), $cr, $d, .admitted, .allowance, .overshoot, .bound,
		 (($n - 1) * ([$lam * $t / 1000, $c + $r * $t / 1000] | min) | floor),
		 (.tau_ms | to_entries | map("\(.key) \(.value)") | join(", "))] |
		@tsv' "$WORK/bound.json" |
		awk -F'\t' '{ printf "%-3s %-13s %-14s %9s %9s %9s %9s %16s  %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
	[ "$(jq -r .within "$WORK/bound.json")" = true ] || echo "    ^ overshoot above the bound: $(cat "$WORK/bound.json")"
done
