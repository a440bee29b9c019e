# agent_env.sh - sourced by e2e suites: one leaky-agent in a private network
# namespace with its own pin dir, state dir and port, curl helpers, cleanup.
# Set TOPIC before sourcing. Prints nothing on stdout (TAP only there).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
ID=$$
NS=lt$TOPIC-$ID
PIN=/sys/fs/bpf/lt-$TOPIC-$ID
STATE=${STATE:-$(mktemp -d /tmp/lt-$TOPIC-XXXXXX)}
WORK=$(mktemp -d /tmp/lt-$TOPIC-work-XXXXXX)
LOG=$WORK/agent.log
PORT=19090
BASE=http://127.0.0.1:$PORT
AGENT_PID=
EXTRA_CLEANUP=${EXTRA_CLEANUP:-:}

inns() { nsenter --net=/run/netns/$NS "$@"; }

cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null
	$EXTRA_CLEANUP
	rm -rf "$PIN" "$STATE" "$WORK"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP this e2e suite attaches BPF: needs root"
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }

start_agent() {
	: >"$LOG"
	nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach \
		--iface lo --api 127.0.0.1:$PORT "$@" >>"$LOG" 2>&1 &
	AGENT_PID=$!
	for _ in $(seq 100); do
		inns curl -s -o /dev/null "$BASE/healthz" && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$LOG" >&2
	return 1
}

stop_agent() {
	[ -n "$AGENT_PID" ] && kill -TERM "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

# req METHOD PATH AUTH [BODY]: sets STATUS, body in $RB, headers in $HB
RB=$WORK/body HB=$WORK/hdrs
req() {
	local m=$1 p=$2 auth=$3 body=${4-}
	local args=(-s -X "$m" -o "$RB" -D "$HB" -w '%{http_code}')
	[ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	STATUS=$(inns curl "${args[@]}" "$BASE$p")
}
jqb() { jq -r "$1" "$RB"; }
expect() { # NAME STATUS: the last req returned STATUS
	if [ "$STATUS" = "$2" ]; then ok "$1"; else
		notok "$1 (got $STATUS, want $2)"; sed 's/^/#   /' "$RB"; echo; fi
}
mint() { "$AGENT" --state-dir "$STATE" mint-token "$@"; }
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
# jwt CLAIMS_JSON: an HS256 token over exactly these claims (what mint-token cannot say)
jwt() {
	local h p s
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	p=$(printf '%s' "$1" | b64url)
	s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$(cat "$STATE/jwt-secret")" -binary | b64url)
	echo "$h.$p.$s"
}
