# tap.sh - TAP helpers for the shell test suites (sourced, not run).
# stdout is TAP only: what checked commands print goes to stderr.
N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"; }
# check NAME CMD...: ok when CMD succeeds
check() { local name=$1; shift; if "$@" >&2; then ok "$name"; else notok "$name"; fi; }
not() { ! "$@"; }
# expect_err NAME RC OUTPUT PATTERN: failed (RC != 0) with a line matching PATTERN
expect_err() {
	if [ "$2" -ne 0 ] && grep -q -- "$4" <<<"$3"; then ok "$1"; else
		notok "$1"; sed 's/^/# /' <<<"$3"; fi
}
# tap_done: the plan line, and the exit status
tap_done() { echo "1..$N"; [ "$FAILED" -eq 0 ]; }
