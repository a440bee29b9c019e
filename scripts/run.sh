#!/usr/bin/env bash
# run.sh - `make run`: the main job on the embedded default configs, in one terminal.
#   leaky-agent   attached to lo (XDP), REST API on 127.0.0.1:9090, in the foreground
#   leaky-stub    every provider's wire shape on 127.0.0.1:9100 (no real provider key needed)
#   leaky-gateway the L7 proxy on 127.0.0.1:8080, admitting on the agent's pinned maps
# Ctrl-C (or SIGTERM) stops all three; the maps and limits stay pinned (a restart keeps them).
# RUN_ARGS (make run RUN_ARGS=...) go to `leaky-agent attach`. LT_PIN_DIR and LT_STATE_DIR
# move the pins and the state (tests/e2e/test_tour.sh runs the README tour in a network
# namespace of its own, with its own pins, so it never touches the host's lo or pins).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
PIN=${LT_PIN_DIR:-/sys/fs/bpf/leaky}
dirs=(--pin-dir "$PIN")
[ -n "${LT_STATE_DIR:-}" ] && dirs+=(--state-dir "$LT_STATE_DIR")
pids=()
stop() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap stop INT TERM EXIT

"$B/leaky-stub" --listen 127.0.0.1:9100 --quiet &
pids+=($!)
# the agent in the background until its maps are pinned, so the gateway finds them
"$B/leaky-agent" "${dirs[@]}" attach ${RUN_ARGS:-} &
AGENT=$!
pids+=($AGENT)
for _ in $(seq 100); do
	[ -e "$PIN/lt_slots" ] && curl -s -o /dev/null http://127.0.0.1:9090/healthz && break
	kill -0 "$AGENT" 2>/dev/null || { echo "run.sh: leaky-agent exited" >&2; exit 1; }
	sleep 0.1
done
"$B/leaky-gateway" --pin-dir "$PIN" &
pids+=($!)
cat >&2 <<'TXT'
run.sh: leaky-agent (API http://127.0.0.1:9090), leaky-gateway (http://127.0.0.1:8080) and
leaky-stub (http://127.0.0.1:9100) are running. Try, in another terminal:
  T=$(sudo build/leaky-agent mint-token --sub 00000000-0000-0000-0000-000000000001)
  curl -s localhost:8080/v1/chat/completions -H "Authorization: Bearer $T" \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
The dashboard: open the one-time "dashboard: http://127.0.0.1:9090/ui/#code=..." link
leaky-agent printed above (`sudo build/leaky-agent signin-link` makes a new one).
Ctrl-C stops all three.
TXT
wait "$AGENT"
