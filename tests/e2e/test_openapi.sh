#!/usr/bin/env bash
# test_openapi.sh - docs/openapi.yaml is valid OpenAPI (checked by a real validator,
# @apidevtools/swagger-parser, installed by scripts/deps.sh from tests/openapi/package-lock.json),
# and a live agent answers every documented operation with its documented status codes and
# bodies that match the documented schemas, in one JSON style. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
NS=ltoas-$$
PIN=/sys/fs/bpf/lt-oas-$$
STATE=$(mktemp -d /tmp/lt-oas-XXXXXX)
PORT=19091
AGENT_PID=
inns() { nsenter --net=/run/netns/$NS "$@"; }
cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	wait 2>/dev/null
	"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$STATE"
}
trap cleanup EXIT

# prefix each "ok - x" / "not ok - x" line of a node script with our TAP numbering
tap_lines() {
	local l
	while IFS= read -r l; do
		case $l in
		"ok - "*) ok "${l#ok - }" ;;
		"not ok - "*) notok "${l#not ok - }" ;;
		*) echo "$l" ;;
		esac
	done
}

if [ ! -d "$ROOT/tests/openapi/node_modules/@apidevtools/swagger-parser" ]; then
	echo "Bail out! tests/openapi/node_modules is missing: run scripts/deps.sh (npm ci)"
	exit 1
fi
out=$(cd "$ROOT/tests/openapi" && timeout 60 node validate.mjs "$ROOT/docs/openapi.yaml" 2>&1)
rc=$?
if [ $rc = 0 ]; then ok "openapi: docs/openapi.yaml is valid ($out)"; else
	notok "openapi: docs/openapi.yaml is valid"; sed 's/^/#   /' <<<"$out" | head -20; fi

if [ "$(id -u)" -ne 0 ]; then
	echo "# SKIP the live part attaches BPF: needs root"
	tap_done
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }
# a small bucket table, so that the contract can reach the documented 503 bucket-table-full
"$AGENT" print-config | jq '.token.max_buckets = 64' >"$STATE/cfg.json"
inns "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach --iface lo --config "$STATE/cfg.json" \
	--api 127.0.0.1:$PORT >"$STATE/log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do
	inns curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
	sleep 0.1
done
mint() { "$AGENT" --state-dir "$STATE" mint-token "$@"; }
export BASE=http://127.0.0.1:$PORT
T_USER=$(mint --sub 00000000-0000-0000-0000-000000000001 --roles USER \
	--orgs 10000000-0000-0000-0000-000000000001)
T_ADMIN=$(mint --sub admin-1 --roles ADMIN)
export T_USER T_ADMIN
# one usage record in the ring, as the gateway writes them, for GET /api/v1/admin/requests
"$ROOT/build/san/tests/lt_reqlog_tool" put "$PIN" 1 provider=openai in=1 out=1 id=oas >/dev/null
(cd "$ROOT/tests/openapi" && timeout 120 nsenter --net=/run/netns/$NS \
	node contract.mjs "$ROOT/docs/openapi.yaml") >"$STATE/contract.out" 2>"$STATE/contract.err"
rc=$?
tap_lines <"$STATE/contract.out"
[ $rc -eq 0 ] || sed 's/^/# node: /' "$STATE/contract.err" | tail -20
check "openapi: the contract script ran to its end (exit $rc)" \
	grep -q '^# contract done$' "$STATE/contract.out"
check "openapi: the agent is still alive" kill -0 "$AGENT_PID"
tap_done
