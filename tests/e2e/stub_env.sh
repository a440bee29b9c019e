# stub_env.sh - sourced by e2e suites that need leaky-stub (the provider stub of issue #9).
#   start_stub [ARGS...]  starts $STUB (build/san/leaky-stub by default) on 127.0.0.1:0, waits
#                         until it answers; sets STUB_PID, STUB_PORT, STUB_URL. With STUB_WRAP
#                         set (e.g. STUB_WRAP=inns) the stub runs under that command (a netns).
#   stop_stub             SIGTERM and wait (at most 20 s, then SIGKILL); returns the stub's exit
#                         status (ASan findings fail, so does a stub that had to be killed).
#   stub_stat SHAPE FIELD prints one counter of GET /stub/stats (SHAPE total for the sum).
#   stub_reset            POST /stub/reset.
# Prints nothing on stdout (TAP only there). The caller's cleanup should run stop_stub, or
# kill "$STUB_PID"; the stub's stderr is in $STUB_LOG.
STUB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STUB=${STUB:-$STUB_ROOT/build/san/leaky-stub}
STUB_WRAP=${STUB_WRAP:-}
STUB_PID= STUB_PORT= STUB_URL=
STUB_LOG=${STUB_LOG:-$(mktemp /tmp/lt-stub-log-XXXXXX)}

start_stub() {
	local out=$STUB_LOG.out
	: >"$out"
	$STUB_WRAP "$STUB" --listen 127.0.0.1:0 "$@" >"$out" 2>"$STUB_LOG" &
	STUB_PID=$!
	for _ in $(seq 100); do
		STUB_PORT=$(sed -n 's/^leaky-stub: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
		[ -n "$STUB_PORT" ] && break
		kill -0 "$STUB_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$STUB_PORT" ]; then
		sed 's/^/# /' "$STUB_LOG" >&2
		return 1
	fi
	STUB_URL=http://127.0.0.1:$STUB_PORT
	$STUB_WRAP curl -s -m 5 -o /dev/null "$STUB_URL/healthz"
}

stop_stub() {
	local rc=0
	[ -n "$STUB_PID" ] || return 0
	kill -TERM "$STUB_PID" 2>/dev/null
	# bounded: an ASan exit (the leak check) takes a moment, never 20 s
	for _ in $(seq 200); do kill -0 "$STUB_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$STUB_PID" 2>/dev/null; then
		echo "# leaky-stub did not exit 20 s after SIGTERM" >&2
		kill -9 "$STUB_PID" 2>/dev/null
	fi
	wait "$STUB_PID" 2>/dev/null || rc=$?
	STUB_PID=
	rm -f "$STUB_LOG.out"
	return $rc
}

stub_stat() {
	$STUB_WRAP curl -s -m 5 "$STUB_URL/stub/stats" | jq -r ".$1.$2"
}

stub_reset() {
	$STUB_WRAP curl -s -m 5 -o /dev/null -X POST "$STUB_URL/stub/reset"
}
