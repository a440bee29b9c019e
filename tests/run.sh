#!/usr/bin/env bash
# run.sh - runs every test tier and prints one closing line:
#   N passed, M failed, K skipped
# Tiers: unit (no privileges), bpf (BPF_PROG_RUN, root), netns (veth, root),
# e2e (the real binaries), fuzz (smoke).
# Each suite prints TAP; exit 77 means "skipped" and must say why. Under CI
# (CI=true) nothing may be skipped: CI has root, so a skip counts as a failure.
#
# Suites run concurrently, LT_TEST_JOBS (3) at a time (fewer while the machine
# is loaded, see busy): most of them wait on sleeps, sockets and child processes
# rather than on the CPU. Every suite is isolated (its own netns, pin dir,
# state dir, ports), so any two may overlap.
# A suite whose source says "run.sh: alone" runs after the others, by itself.
# Each suite's output is printed whole, in the fixed order below, with its wall
# time; the counts do not depend on the order in which suites finish.
# LT_SUITE_TIMEOUT (600 s) bounds each suite: a hung suite fails, and the run ends.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
JOBS=${LT_TEST_JOBS:-3}
SUITE_TIMEOUT=${LT_SUITE_TIMEOUT:-600}
MAX_LOAD=${LT_TEST_MAX_LOAD:-$((3 * $(nproc)))}

# Per-run output files: several runs may share the machine.
ERRDIR=$(mktemp -d /tmp/lt-run-XXXXXX)
running=()
# An interrupted run stops its suites: timeout passes the signal on to its suite's group.
stop_all() {
	local t
	for t in "$ERRDIR"/*.tpid; do
		[ -e "${t%.tpid}.rc" ] || kill -TERM "$(cat "$t")" 2>/dev/null
	done
	wait
}
trap 'stop_all; rm -rf "$ERRDIR"' EXIT
trap 'exit 130' INT TERM

# The suites, in the order their results are printed: NAME[i], CMD[i] (no
# spaces in paths), SRC[i] (the file that may say "run.sh: alone").
NAME=() CMD=() SRC=()
add() { NAME+=("$1"); CMD+=("$2"); SRC+=("$3"); }
for src in tests/unit/test_*.c; do
	t=$(basename "$src" .c)
	add "unit:$t" "build/san/tests/$t" "$src"
done
for src in tests/bpf/test_*.c; do
	t=$(basename "$src" .c)
	add "bpf:$t" "build/san/tests/$t" "$src"
done
for t in tests/netns/test_*.sh tests/e2e/test_*.sh tests/fuzz/test_*.sh; do
	add "$(basename "$(dirname "$t")"):$(basename "$t" .sh)" "bash $t" "$t"
done
n=${#NAME[@]}

# Start order: the long suites first, longest first (LONG: the fuzz smoke, then every
# suite that took 9 s or more in the timings this script prints), then the print order,
# so that output flows while the rest runs and the last to start are short: started in
# print order, test_ui (24 s) started last and ran alone for 18 s at the end of the run.
LONG="e2e:test_global_lease fuzz:test_fuzz e2e:test_gw_proxy e2e:test_ui e2e:test_request_log e2e:test_config_sync
netns:test_attach_ownership netns:test_netns e2e:test_reclaim e2e:test_kafka_broker_down
e2e:test_global netns:test_gw_escalation e2e:test_gw_interrupt e2e:test_prometheus
e2e:test_logs_flood e2e:test_slow_clients e2e:test_gw_breaker e2e:test_api e2e:test_stub"
order=() alone=() started=()
alone_src() { grep -q 'run\.sh: alone' "${SRC[$1]}"; }
for l in $LONG; do
	for ((i = 0; i < n; i++)); do
		[ "${NAME[$i]}" = "$l" ] && ! alone_src "$i" && order+=("$i") && started[i]=1
	done
done
for tier in fuzz unit bpf netns e2e; do
	for ((i = 0; i < n; i++)); do
		[ "${NAME[$i]%%:*}" = "$tier" ] && [ -z "${started[i]:-}" ] || continue
		if alone_src "$i"; then alone+=("$i"); else order+=("$i"); fi
	done
done

# start I: runs suite I in the background with stdin closed, under timeout (which
# puts it in its own process group, so a timeout or an interrupted run reaches
# everything it started); leaves I.out, I.stderr, I.ms and, last, I.rc in $ERRDIR
start() {
	local f=$ERRDIR/$1
	(
		s=$(date +%s%N)
		set -f # CMD is "prog" or "bash script": split on spaces, never globbed
		# shellcheck disable=SC2086
		timeout -k 10 "$SUITE_TIMEOUT" ${CMD[$1]} </dev/null >"$f.out" 2>"$f.stderr" &
		t=$!
		echo $t >"$f.tpid"
		wait $t
		echo $? >"$f.rc.tmp"
		# what the suite left running in its group (a program started through a
		# backgrounded shell function outlives the kill of its subshell): said, and
		# stopped, so it holds no port, pin or inherited lock for the next suite or run
		left=$(pgrep -g "$t" | while read -r p; do
			case $(ps -o stat= -p "$p") in Z* | "") ;; *) echo "$p" ;; esac # not the dead
		done | paste -sd,)
		if [ -n "$left" ]; then
			echo "# left running by the suite, killed: $(ps -o args= -p "$left" | cut -c1-60 | paste -sd';')" >>"$f.out"
			kill -KILL -- -"$t" 2>/dev/null
		fi
		echo $((($(date +%s%N) - s) / 1000000)) >"$f.ms"
		mv "$f.rc.tmp" "$f.rc"
	) &
	running+=("$!")
}
# reap: waits until at least one running suite has ended
reap() {
	local keep=() q
	wait -n "${running[@]}" 2>/dev/null
	for q in "${running[@]}"; do kill -0 "$q" 2>/dev/null && keep+=("$q"); done
	running=("${keep[@]}")
}

pass=0 fail=0 skip=0
failed_names=()
next_print=0
# report I: prints suite I's output and counts it, exactly as a sequential run did
report() {
	local i=$1 name=${NAME[$1]} f=$ERRDIR/$1
	local out rc p nf ms
	out=$(cat "$f.out" 2>/dev/null)
	rc=$(cat "$f.rc" 2>/dev/null) || rc=125 # the runner lost it: a failure
	ms=$(cat "$f.ms" 2>/dev/null) || ms=0
	printf '== %s (%d.%d s)\n' "$name" $((ms / 1000)) $((ms % 1000 / 100))
	printf '%s\n' "$out"
	p=$(grep -c '^ok ' <<<"$out")
	nf=$(grep -c '^not ok ' <<<"$out")
	if [ "$rc" -eq 77 ]; then
		echo "# $name skipped: $(grep -m1 'SKIP' <<<"$out")"
		if [ "${CI:-}" = true ]; then
			fail=$((fail + 1)); failed_names+=("$name (skipped under CI)")
		else
			skip=$((skip + 1))
		fi
		return
	fi
	[ "$rc" -eq 124 ] && echo "# $name timed out after ${SUITE_TIMEOUT}s (LT_SUITE_TIMEOUT)"
	pass=$((pass + p)); fail=$((fail + nf))
	[ "$nf" -gt 0 ] && failed_names+=("$name")
	if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		# crashed, leaked (LeakSanitizer), timed out or died without saying which test
		fail=$((fail + 1)); failed_names+=("$name (exit $rc)")
		sed 's/^/# /' "$f.stderr" | tail -40
	elif [ "$rc" -ne 0 ]; then
		sed 's/^/# /' "$f.stderr" | tail -40
	fi
}
# flush: prints, in order, every finished suite not printed yet
flush() {
	while [ "$next_print" -lt "$n" ] && [ -e "$ERRDIR/$next_print.rc" ]; do
		report "$next_print"
		next_print=$((next_print + 1))
	done
}

# busy: no other suite may start now: LT_TEST_JOBS are running, or one is and the
# machine is loaded (1-minute load average >= LT_TEST_MAX_LOAD, 3 per core): on a
# machine that others keep busy the suites run one after the other, as their timing
# allowances assume, rather than adding to the load
busy() {
	local load
	[ "${#running[@]}" -ge "$JOBS" ] && return 0
	[ "${#running[@]}" -eq 0 ] && return 1
	read -r load _ </proc/loadavg
	[ "${load%.*}" -ge "$MAX_LOAD" ]
}
for i in "${order[@]}"; do
	while busy; do reap; flush; done
	start "$i"
done
while [ "${#running[@]}" -gt 0 ]; do reap; flush; done
for i in "${alone[@]}"; do
	start "$i"
	while [ "${#running[@]}" -gt 0 ]; do reap; done
	flush
done
flush
while [ "$next_print" -lt "$n" ]; do
	report "$next_print"
	next_print=$((next_print + 1))
done

if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
if [ $skip -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ]
