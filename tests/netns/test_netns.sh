#!/usr/bin/env bash
# test_netns.sh - tier 3: two network namespaces and a veth pair, the real
# leaky-agent attached to the server side, real TCP connections from the
# client side. Prints TAP. Needs root; everything it creates it removes.
#
#   client ns (lta-PID) 10.200.0.1 fd00:200::1  va <==veth==> vb  10.200.0.2 fd00:200::2 (ltb-PID, agent here)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
ID=$$
NA=lta-$ID NB=ltb-$ID
PIN=/sys/fs/bpf/lt-test-$ID
STATE=$(mktemp -d /tmp/lt-test-XXXXXX)
LOG=$STATE/agent.log
AGENT_PID=

inb() { nsenter --net=/run/netns/$NB "$@"; }
ina() { nsenter --net=/run/netns/$NA "$@"; }
agent() { inb "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" "$@"; }

cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	pkill -f "socat.*lt-test-$ID" 2>/dev/null
	[ -n "${SOCAT_PID:-}" ] && kill "$SOCAT_PID" 2>/dev/null
	ip netns del "$NA" 2>/dev/null
	ip netns del "$NB" 2>/dev/null
	rm -rf "$PIN" "$STATE"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP netns tests need root"
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

ip netns add "$NA" && ip netns add "$NB" &&
	ip link add va netns "$NA" type veth peer name vb netns "$NB" &&
	ip -n "$NA" addr add 10.200.0.1/24 dev va && ip -n "$NB" addr add 10.200.0.2/24 dev vb &&
	ip -n "$NA" addr add fd00:200::1/64 dev va nodad && ip -n "$NB" addr add fd00:200::2/64 dev vb nodad &&
	ip -n "$NA" link set va up && ip -n "$NB" link set vb up &&
	ip -n "$NA" link set lo up && ip -n "$NB" link set lo up || { echo "Bail out! netns setup"; exit 1; }

# A real TCP server on the protected port (socat forks one child per connection).
# (nsenter execs socat, so $! is socat: a backgrounded function would be a subshell)
nsenter --net=/run/netns/$NB socat TCP6-LISTEN:8080,fork,reuseaddr,backlog=128 SYSTEM:"echo lt-test-$ID" >/dev/null 2>&1 &
SOCAT_PID=$!

cat >"$STATE/config.json" <<JSON
{
  "protected_ports": [8080],
  "default_policy": {
    "connections": { "capacity": 5, "rate": "1/h" },
    "packets": { "capacity": 100000, "rate": "100000/s" }
  },
  "event_sample_every": 1,
  "max_sources": 1024
}
JSON

# connect DEST: 0 if a TCP connection to DEST:8080 was established within 1 s
connect() { ina timeout 1 bash -c "exec 3<>/dev/tcp/$1/8080" 2>/dev/null; }
counter() { agent status --json | jq -r ".counters.$1.packets"; }

start_agent() {
	: >"$LOG"
	# nsenter execs the agent, so $! is the agent itself (kill -9 must hit it)
	nsenter --net=/run/netns/$NB "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach \
		--iface vb --config "$STATE/config.json" --events "$@" >>"$LOG" 2>&1 &
	AGENT_PID=$!
	for _ in $(seq 100); do
		grep -q 'attached; pins in' "$LOG" && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$LOG" | sed 's/^/# /'
	return 1
}

for _ in $(seq 50); do connect 10.200.0.2 && break; sleep 0.1; done

check "attach: agent starts on the veth" start_agent
mode=$(agent status --json | jq -r '.interfaces[0].mode')
check "attach: native XDP on veth (got $mode)" test "$mode" = xdp-native
check "attach: ip link shows the XDP program" bash -c "ip -n $NB link show vb | grep -q 'prog/xdp'"

admitted=0
for i in 1 2 3 4 5; do connect 10.200.0.2 && admitted=$((admitted + 1)); done
check "enforce: 5 connections (the burst) are admitted, got $admitted" test "$admitted" = 5
check "enforce: the 6th connection is dropped" not connect 10.200.0.2
drops=$(counter drop_conn_rate)
check "enforce: drops visible in the counters ($drops)" test "$drops" -ge 1
admits=$(counter pass_admit)
check "enforce: admitted packets counted ($admits)" test "$admits" -ge 5

check "bpftool: lt_src dump shows named fields" bash -c \
	"bpftool map dump pinned $PIN/lt_src | grep -q '\"conn_tat\"'"
check "bpftool: lt_stats dump shows named fields" bash -c \
	"bpftool map dump pinned $PIN/lt_stats | grep -q '\"packets\"'"

check "ban: fd00:200::1 banned for 10m" agent ban fd00:200::1/128 --for 10m
check "ban: v6 connection is dropped" not connect fd00:200::2
check "ban: counted as drop_penalty" test "$(counter drop_penalty)" -ge 1

# a runtime edit, which the next attach must keep (it re-applies the config file)
check "policy set: fd00:200::5/128 gets 1 connection per hour" \
	agent policy set fd00:200::5/128 --conn 1:1/h
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
check "kill -9: program stays attached" bash -c "ip -n $NB link show vb | grep -q 'prog/xdp'"
check "kill -9: status says the agent is not running" bash -c \
	"$AGENT --pin-dir $PIN --state-dir $STATE status | grep -q 'not running'"
check "kill -9: enforcement continues (v4 still limited)" not connect 10.200.0.2

check "re-attach: a new agent adopts the maps" start_agent
check "re-attach: bucket state survived (v4 still limited)" not connect 10.200.0.2
check "re-attach: penalty survived (v6 still banned)" not connect fd00:200::2
check "re-attach: the runtime policy survived" bash -c \
	"$AGENT --pin-dir $PIN --state-dir $STATE policy list | grep -q 'fd00:200::5/128 .*conn 1:1/h'"
check "re-attach: one program, replaced in place" test "$(ip -n "$NB" -d link show vb | grep -c 'prog/xdp')" = 1

out=$(agent attach --iface vb 2>&1); rc=$?
expect_err "error: a second agent on the same state dir is refused" $rc "$out" 'another leaky-agent (pid'

check "unban: fd00:200::1" agent unban fd00:200::1/128
check "unban: v6 connection admitted again" connect fd00:200::2

check "dry-run on" agent dry-run on
check "dry-run: v4 over-limit connection passes" connect 10.200.0.2
check "dry-run: counted as dryrun_conn_rate" test "$(counter dryrun_conn_rate)" -ge 1
check "dry-run off" agent dry-run off
check "dry-run off: enforcing again" not connect 10.200.0.2

kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
check "tc: re-attach with --mode tc" start_agent --mode tc
check "tc: status shows tc" test "$(agent status --json | jq -r '.interfaces[0].mode')" = tc
check "tc: XDP program was removed" bash -c "! ip -n $NB link show vb | grep -q 'prog/xdp'"
check "tc: filter installed on ingress" bash -c "tc -n $NB filter show dev vb ingress | grep -q lt_tc"
check "tc: bucket state shared with XDP (still limited)" not connect 10.200.0.2

check "events: sampled decisions reached the agent (--events)" \
	grep -q '"outcome":"drop_conn_rate"' "$LOG"

check "detach --keep-maps" agent detach --keep-maps
check "detach --keep-maps: no filter, no clsact" bash -c \
	"! tc -n $NB qdisc show dev vb | grep -q clsact"
check "detach --keep-maps: pins kept" test -e "$PIN/lt_src"
AGENT_PID=
# pins of another build: one map it did not have, one it no longer has
rm -f "$PIN/lt_keyidx"
bpftool map pin pinned "$PIN/lt_src" "$PIN/lt_retired" 2>/dev/null
check "detach: removes the pins" agent detach
check "detach: pin dir gone, even with pins of another build" test ! -e "$PIN"
check "detach: runtime edits forgotten" test ! -e "$STATE/overrides.json"
check "detach: traffic flows unmetered" connect 10.200.0.2

out=$(agent attach --iface nosuch0 --config "$STATE/config.json" 2>&1); rc=$?
expect_err "error: unknown interface is one clear line" $rc "$out" "unknown interface 'nosuch0'"
agent detach >/dev/null 2>&1
echo '{"protected_ports": [0]}' >"$STATE/bad.json"
out=$(agent attach --iface vb --config "$STATE/bad.json" 2>&1); rc=$?
expect_err "error: bad config cites file and field" $rc "$out" 'bad.json: /protected_ports/0'
check "error: bad config changed nothing (no pins)" test ! -e "$PIN"
ip -n "$NB" link set dev vb xdpgeneric obj "$ROOT/build/bpf/empty.bpf.o" sec xdp 2>/dev/null
out=$(agent attach --iface vb --mode xdp-generic --config "$STATE/config.json" 2>&1); rc=$?
expect_err "error: a foreign XDP program is not replaced" $rc "$out" 'not leaky-tokens'
ip -n "$NB" link set dev vb xdpgeneric off
agent detach >/dev/null 2>&1
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
	"$AGENT" attach --pin-dir "$PIN" --state-dir "$STATE" 2>&1); rc=$?
expect_err "error: no privileges is one clear line" $rc "$out" '^leaky-agent: needs root or CAP_BPF+CAP_NET_ADMIN'
check "error: no privileges prints exactly one line" test "$(wc -l <<<"$out")" = 1

tap_done
