#!/usr/bin/env bash
# test_5xx_cause.sh - every 5xx is logged with its cause: the agent's state dir sits on a tiny
# tmpfs that we fill; the store's writes then fail, the API answers 500 and the log names the
# operation and SQLite's own words ("database or disk is full"), not a bare -EIO. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
NS=lt5xx-$$
PIN=/sys/fs/bpf/lt-5xx-$$
STATE=$(mktemp -d /tmp/lt-5xx-XXXXXX)
PORT=19093
BASE=http://127.0.0.1:$PORT
AGENT_PID=
inns() { nsenter --net=/run/netns/$NS "$@"; }
cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	wait 2>/dev/null
	"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null
	umount -l "$STATE" 2>/dev/null
	rm -rf "$PIN" "$STATE"
}
trap cleanup EXIT
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP mounts a tmpfs and attaches BPF: needs root"
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs -o size=2m,mode=0700 "lt5xx-$$" "$STATE" || { echo "Bail out! tmpfs"; exit 1; }
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }
LOG=$(mktemp /tmp/lt-5xx-log-XXXXXX)
trap 'cleanup; rm -f "$LOG"' EXIT
inns "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach --iface lo --api 127.0.0.1:$PORT \
	>"$LOG" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do inns curl -s -o /dev/null "$BASE/healthz" && break; sleep 0.1; done
TA=$("$AGENT" --state-dir "$STATE" mint-token --sub admin-1 --roles ADMIN)

# fill the disk, then write until the store refuses (the WAL has some room left at first)
dd if=/dev/zero of="$STATE/filler" bs=64k 2>/dev/null
status=
for i in $(seq 200); do
	status=$(inns curl -s -o "$LOG.body" -w '%{http_code}' -H "Authorization: Bearer $TA" \
		--data-binary "{\"name\":\"k$i-$(head -c 100 /dev/zero | tr '\0' x)\",\"owner\":\"00000000-0000-0000-0000-000000000001\",\"tier\":\"USER\",\"limits\":{\"capacity\":1,\"rate\":\"1/s\"}}" \
		"$BASE/api/v1/admin/keys")
	[ "$status" = 201 ] || break
done
check "full disk: a key create gets a 5xx ($status after $i tries)" test "${status:-0}" -ge 500
check "full disk: the problem says why ($(jq -r .detail "$LOG.body" 2>/dev/null))" \
	grep -q "No space left on device" "$LOG.body"
check "full disk: the log names the operation and SQLite's cause" \
	grep -q "store: INSERT OR REPLACE INTO api_keys: database or disk is full" "$LOG"
check "full disk: the log names the request and its 5xx" \
	grep -q "api: POST /api/v1/admin/keys -> 500 Store error: key not created" "$LOG"
rm -f "$STATE/filler" "$LOG.body"
check "room again: the agent is still alive and serving" inns curl -sf -o /dev/null "$BASE/healthz"
[ "$FAILED" = 0 ] || sed 's/^/#   /' "$LOG" | tail -20
tap_done
