#!/usr/bin/env bash
# run.sh - runs every test tier and prints one closing line:
#   N passed, M failed, K skipped
# Tiers: unit (no privileges), bpf (BPF_PROG_RUN, root), netns (veth, root).
# Each suite prints TAP; exit 77 means "skipped" and must say why. Under CI
# (CI=true) nothing may be skipped: CI has root, so a skip counts as a failure.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Per-run stderr files: several runs may share the machine.
ERRDIR=$(mktemp -d /tmp/lt-run-XXXXXX)
trap 'rm -rf "$ERRDIR"' EXIT

pass=0 fail=0 skip=0
failed_names=()

run_suite() {
	local name=$1; shift
	local out rc p f
	echo "== $name"
	out=$("$@" 2>"$ERRDIR/${name//[:\/]/_}.stderr")
	rc=$?
	printf '%s\n' "$out"
	p=$(grep -c '^ok ' <<<"$out")
	f=$(grep -c '^not ok ' <<<"$out")
	if [ $rc -eq 77 ]; then
		echo "# $name skipped: $(grep -m1 'SKIP' <<<"$out")"
		if [ "${CI:-}" = true ]; then
			fail=$((fail + 1)); failed_names+=("$name (skipped under CI)")
		else
			skip=$((skip + 1))
		fi
		return
	fi
	pass=$((pass + p)); fail=$((fail + f))
	[ "$f" -gt 0 ] && failed_names+=("$name")
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		# crashed, leaked (LeakSanitizer) or died without saying which test
		fail=$((fail + 1)); failed_names+=("$name (exit $rc)")
		sed 's/^/# /' "$ERRDIR/${name//[:\/]/_}.stderr" | tail -40
	elif [ $rc -ne 0 ]; then
		sed 's/^/# /' "$ERRDIR/${name//[:\/]/_}.stderr" | tail -40
	fi
}

for src in tests/unit/test_*.c; do
	t=build/san/tests/$(basename "$src" .c)
	run_suite "unit:$(basename "$t")" "$t"
done
for src in tests/bpf/test_*.c; do
	t=build/san/tests/$(basename "$src" .c)
	run_suite "bpf:$(basename "$t")" "$t"
done
for t in tests/netns/test_*.sh tests/e2e/test_*.sh tests/fuzz/test_*.sh; do
	run_suite "$(basename "$(dirname "$t")"):$(basename "$t" .sh)" bash "$t"
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
