#!/usr/bin/env bash
# test_stub_openai.sh - the official openai npm client (pinned in tests/openai), unmodified,
# parses every OpenAI shape leaky-stub serves: chat (JSON and stream with usage), legacy
# completions, embeddings (base64 on the wire), responses (JSON and stream), and a 429 it
# retries once after Retry-After. Needs no root. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
WORK=$(mktemp -d /tmp/lt-stubo-XXXXXX)
STUB_LOG=$WORK/stub.log
. "$ROOT/tests/e2e/stub_env.sh"
cleanup() {
	[ -n "$STUB_PID" ] && kill -9 "$STUB_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
if [ ! -d "$ROOT/tests/openai/node_modules/openai" ]; then
	echo "Bail out! tests/openai/node_modules is missing (make deps installs it)"
	exit 1
fi
start_stub || { echo "Bail out! leaky-stub did not start"; exit 1; }
STUB_URL=$STUB_URL timeout 60 node "$ROOT/tests/e2e/stub_client.mjs" >"$WORK/out" 2>&1
rc=$?
while IFS= read -r l; do
	case $l in
	"ok - "*) ok "${l#ok - }" ;;
	"not ok - "*) notok "${l#not ok - }" ;;
	*) echo "# $l" ;;
	esac
done <"$WORK/out"
[ $rc -eq 0 ] || [ "$FAILED" -gt 0 ] || notok "the client script exited $rc"
stop_stub; rc=$?
eq_rc=0; [ $rc -eq 0 ] || eq_rc=1
[ $eq_rc -eq 0 ] && ok "the stub exits 0 on SIGTERM (ASan clean)" || notok "the stub exits 0 on SIGTERM (got $rc)"
tap_done
