#!/usr/bin/env bash
# test_metrics.sh - decision metrics scale: 600 (tier, provider) series, more than the 512 an
# old fixed table held, are all exported with exact counts, none dropped (and the dropped count
# is itself exported), and /metrics, far over the old 64 KiB buffer, is never cut. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
NS=ltmet-$$
PIN=/sys/fs/bpf/lt-met-$$
STATE=$(mktemp -d /tmp/lt-met-XXXXXX)
PORT=19094
BASE=http://127.0.0.1:$PORT
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
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP attaches BPF: needs root"
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }

NT=10 NP=60 # 600 series
provs=$(seq 0 $((NP - 1)) | sed 's/^/"p/;s/$/"/' | paste -sd,)
order=$(seq 0 $((NT - 1)) | sed 's/^/"T/;s/$/"/' | paste -sd,)
tiers=$(seq 0 $((NT - 1)) | sed 's/.*/"T&": {"*": {"capacity": 1000, "rate": "10\/s"}}/' | paste -sd,)
cat >"$STATE/config.json" <<JSON
{"token": {"providers": [$provs], "tier_order": [$order], "default_tier": "T0",
           "tiers": {$tiers}, "org_default": {"*": {"capacity": 1000, "rate": "10/s"}}}}
JSON
inns "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach --iface lo --api 127.0.0.1:$PORT \
	--config "$STATE/config.json" >"$STATE/log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do inns curl -s -o /dev/null "$BASE/healthz" && break; sleep 0.1; done
check "attach with $NT tiers and $NP providers" inns curl -sf -o /dev/null "$BASE/healthz"

U=00000000-0000-0000-0000-000000000001
CFG=$STATE/curl.cfg
: >"$CFG"
for t in $(seq 0 $((NT - 1))); do
	tok=$("$AGENT" --state-dir "$STATE" mint-token --sub $U --roles "T$t")
	for p in $(seq 0 $((NP - 1))); do
		[ -s "$CFG" ] && echo next >>"$CFG"
		printf 'url = "%s/api/v1/tokens/consume"\nheader = "Authorization: Bearer %s"\ndata = "{\\"userId\\":\\"%s\\",\\"provider\\":\\"p%d\\",\\"tokens\\":%d}"\noutput = /dev/null\nsilent\nwrite-out = "%%{http_code}\\n"\n' \
			"$BASE" "$tok" "$U" "$p" $((t + 1)) >>"$CFG"
	done
done
inns timeout 60 curl -s --parallel --parallel-max 16 -K "$CFG" >"$STATE/codes"
check "600 consumes admitted ($(sort "$STATE/codes" | uniq -c | tr '\n' ' '))" \
	test "$(grep -c '^200$' "$STATE/codes")" = $((NT * NP))

inns curl -s -o "$STATE/metrics" "$BASE/metrics"
size=$(stat -c %s "$STATE/metrics")
n=$(grep -c '^lt_tokens_charged_total{' "$STATE/metrics")
check "metrics: all $((NT * NP)) series exported ($n)" test "$n" = $((NT * NP))
check "metrics: exact counts in the last tier's series" \
	test "$(grep -c "^lt_token_decisions_total{verdict=\"admitted\",tier=\"T$((NT - 1))\",provider=\"p[0-9]*\"} 1$" "$STATE/metrics")" = $NP
check "metrics: tokens per series are the tier's (T7 charged 8 on p59)" \
	grep -q '^lt_tokens_charged_total{tier="T7",provider="p59"} 8$' "$STATE/metrics"
check "metrics: the dropped-series count is exported (0)" \
	grep -q '^lt_metric_series_dropped_total 0$' "$STATE/metrics"
check "metrics: $size bytes, over the old 64 KiB" test "$size" -gt 65536
check "metrics: not cut: ends with the slot gauge line" \
	bash -c "tail -c 200 '$STATE/metrics' | tail -1 | grep -q '^lt_map_entries{map=\"lt_slots\"} [0-9]*\$'"
check "metrics: every line is whole (name{labels} value, or a comment)" \
	not grep -vE '^(# (HELP|TYPE) .*|[a-z_]+(\{[^}]*\})? [0-9.e+-]+)$' "$STATE/metrics"
tap_done
