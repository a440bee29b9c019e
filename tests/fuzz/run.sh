#!/usr/bin/env bash
# run.sh smoke|long - the libFuzzer harnesses (build/fuzz/bin/fuzz_*, from tests/fuzz/fuzz_*.c).
#   smoke (make test, via test_fuzz.sh): every committed crash reproducer in
#         tests/fuzz/crashes/<harness>/ replays without a finding, then each harness runs
#         FUZZ_SMOKE_SECONDS (3) from its committed seed corpus tests/fuzz/corpus/<harness>/.
#   long  (make fuzz): each harness runs FUZZ_SECONDS (60); new inputs are kept in
#         build/fuzz/corpus/<harness>/, findings in build/fuzz/crashes/<harness>/ (commit a
#         finding's reproducer under tests/fuzz/crashes/<harness>/ with its fix).
# Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
MODE=${1:-smoke}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
TMP=$(mktemp -d /tmp/lt-fuzz-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
	h=$(basename "$src" .c)
	bin=$ROOT/build/fuzz/bin/$h
	if [ ! -x "$bin" ]; then
		notok "$h: built ($bin is missing: make $bin)"
		continue
	fi
	crashes=$(find "$ROOT/tests/fuzz/crashes/$h" -type f ! -name '.*' 2>/dev/null)
	if [ -n "$crashes" ]; then
		# shellcheck disable=SC2086
		if timeout 120 "$bin" $crashes >"$TMP/$h.replay" 2>&1; then
			ok "$h: $(wc -w <<<"$crashes") committed crash reproducers replay clean"
		else
			notok "$h: a committed crash reproducer fails again"
			tail -20 "$TMP/$h.replay" | sed 's/^/#   /'
		fi
	fi
	if [ "$MODE" = long ]; then
		secs=${FUZZ_SECONDS:-60} work=$ROOT/build/fuzz/corpus/$h art=$ROOT/build/fuzz/crashes/$h/
	else
		# a finding is kept where make fuzz keeps its own: $TMP is removed at exit
		secs=${FUZZ_SMOKE_SECONDS:-3} work=$TMP/$h art=$ROOT/build/fuzz/crashes/$h/
	fi
	mkdir -p "$work" "$(dirname "$art/x")"
	if timeout $((secs + 60)) "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art" "$work" "$ROOT/tests/fuzz/corpus/$h" >"$TMP/$h.log" 2>&1; then
		ok "$h: ${secs}s from the seed corpus, no finding ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$TMP/$h.log" | grep -o '[0-9]*$') runs)"
	else
		notok "$h: ${secs}s from the seed corpus found a crash (reproducer: ${art}*)"
		grep -m1 -A12 'ERROR\|runtime error\|deadly signal' "$TMP/$h.log" | sed 's/^/#   /'
	fi
done
tap_done
