#!/usr/bin/env bash
# test_frames.sh - issue #7 over a real veth: crafted SYNs of a banned source
# must not reach a listener on a protected port, whatever their header shape,
# in XDP and in TC mode. The proof is the listener's SYN queue: a SYN the
# stack accepted leaves a SYN-RECV entry (the source address is not on any
# host, so no RST ever clears it). With no program attached the same frames
# do leave one, which shows that the stack accepts every shape sent here.
#
# In TC mode the frames are also sent larger than a page: a packet socket then
# hands over a non-linear skb with only the Ethernet header in the linear
# part, so the program must pull the headers (counted as aux_tc_pulled).
# BPF_PROG_RUN cannot build such an skb (tests/bpf/test_frames.c).
#
#   client ns (lfa-PID) va <==veth==> vb (lfb-PID): agent, listener on 8080
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
RAWSEND=${RAWSEND:-$ROOT/build/lt_rawsend}
ID=$$
NA=lfa-$ID NB=lfb-$ID
PIN=/sys/fs/bpf/lt-frames-$ID
STATE=$(mktemp -d /tmp/lt-frames-XXXXXX)
LOG=$STATE/agent.log
AGENT_PID= SOCAT_PID=
SRC4=10.201.0.77 SRC6=fd00:201::77 # banned; on no host, so no RST

inb() { nsenter --net=/run/netns/$NB "$@"; }
ina() { nsenter --net=/run/netns/$NA "$@"; }
agent() { inb timeout 20 "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" "$@"; }

cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	[ -n "$SOCAT_PID" ] && kill "$SOCAT_PID" 2>/dev/null
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
	ip -n "$NA" addr add 10.201.0.1/24 dev va && ip -n "$NB" addr add 10.201.0.2/24 dev vb &&
	ip -n "$NA" addr add fd00:201::1/64 dev va nodad && ip -n "$NB" addr add fd00:201::2/64 dev vb nodad &&
	ip -n "$NA" link set va up && ip -n "$NB" link set vb up &&
	ip -n "$NB" link set lo up || { echo "Bail out! netns setup"; exit 1; }
MAC_B=$(ip -n "$NB" -j link show vb | jq -r '.[0].address')

# (nsenter execs timeout, so $! is what cleanup must stop: a backgrounded function would be a
# subshell, and socat outlived the suite by up to 300 s)
nsenter --net=/run/netns/$NB timeout 300 socat TCP6-LISTEN:8080,fork,reuseaddr,ipv6only=0,backlog=256 SYSTEM:"true" \
	>/dev/null 2>&1 &
SOCAT_PID=$!

cat >"$STATE/config.json" <<JSON
{
  "protected_ports": [8080],
  "default_policy": {
    "connections": { "capacity": 1000, "rate": "1000/s" },
    "packets": { "capacity": 100000, "rate": "100000/s" }
  },
  "event_sample_every": 0,
  "max_sources": 1024
}
JSON

start_agent() {
	: >"$LOG"
	nsenter --net=/run/netns/$NB "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach \
		--iface vb --config "$STATE/config.json" "$@" >>"$LOG" 2>&1 &
	AGENT_PID=$!
	for _ in $(seq 100); do
		grep -q 'attached; pins in' "$LOG" && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$LOG" >&2
	return 1
}
stop_agent() { kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=; }
counter() { agent status --json | jq -r ".counters.$1.packets"; }

# synrecv SRC SPORT: is there a SYN-RECV entry from SRC:SPORT on the server?
# (the dual-stack listener shows v4 peers as [::ffff:a.b.c.d])
synrecv() { inb ss -Htn state syn-recv | grep -qE -- "[[ :]${1//./\\.}\]?:$2( |\$)"; }
# sendf / sendf6 SHAPE SRC SPORT PAYLOAD: one crafted SYN to the server's 8080
sendf() { ina timeout 5 "$RAWSEND" va "$MAC_B" "$1" "$2" 10.201.0.2 "$3" "$4" >&2; }
sendf6() { ina timeout 5 "$RAWSEND" va "$MAC_B" "$1" "$2" fd00:201::2 "$3" "$4" >&2; }

for _ in $(seq 50); do
	inb ss -Htln | grep -q ':8080' && break
	sleep 0.1
done

# shapes: NAME SENDER SRC SHAPE PAYLOAD. TC sees one VLAN tag fewer (the
# stack moves the outer one into skb->vlan_tci before tc ingress).
xdp_shapes=(
	"tiny-first-fragment sendf $SRC4 tinyfrag 0"
	"v6-hbh+4dst sendf6 $SRC6 v6ext 0"
	"three-vlan-tags sendf $SRC4 vlan3 0"
)
tc_shapes=(
	"tiny-first-fragment sendf $SRC4 tinyfrag 0"
	"v6-hbh+4dst sendf6 $SRC6 v6ext 0"
	"four-vlan-tags sendf $SRC4 vlan4 0"
	"nonlinear-v4-options sendf $SRC4 v4opt 5000"
	"nonlinear-v6-hbh+4dst sendf6 $SRC6 v6ext 5000"
	"nonlinear-four-vlan-tags sendf $SRC4 vlan4 5000"
)
mtu() { ip -n "$NA" link set va mtu "$1" && ip -n "$NB" link set vb mtu "$1"; }

PORT=41000
# run_shapes WHAT EXPECT(none|entry) SHAPE...
run_shapes() {
	local what=$1 expect=$2 name sender src shape payload got
	shift 2
	for s in "$@"; do
		read -r name sender src shape payload <<<"$s"
		PORT=$((PORT + 1))
		$sender "$shape" "$src" "$PORT" "$payload"
		got=none
		# an accepted SYN shows at once; give a dropped one the same time
		for _ in 1 2 3 4 5; do
			synrecv "$src" "$PORT" && { got=entry; break; }
			sleep 0.1
		done
		if [ "$expect" = none ]; then
			check "$what: banned source, $name: no SYN-RECV entry" test "$got" = none
		else
			check "$what: $name is accepted by the stack (SYN-RECV entry)" test "$got" = entry
		fi
	done
}

mtu 9000
run_shapes "no program" entry "${xdp_shapes[@]}" "${tc_shapes[@]}"
mtu 1500

check "xdp: agent attached" start_agent
mode=$(agent status --json | jq -r '.interfaces[0].mode')
check "xdp: native XDP on veth (got $mode)" test "$mode" = xdp-native
check "xdp: ban $SRC4" agent ban "$SRC4/32" --for 1h
check "xdp: ban $SRC6" agent ban "$SRC6/128" --for 1h
run_shapes xdp none "${xdp_shapes[@]}"
d=$(counter drop_penalty) t=$(counter drop_frag_tiny)
check "xdp: counted: drop_penalty $d, drop_frag_tiny $t" test "$d" -ge 2 -a "$t" -ge 1
stop_agent
agent detach >/dev/null 2>&1 # native XDP on a veth caps its MTU

mtu 9000
check "tc: agent attached (--mode tc)" start_agent --mode tc
check "tc: status shows tc" test "$(agent status --json | jq -r '.interfaces[0].mode')" = tc
check "tc: ban $SRC4" agent ban "$SRC4/32" --for 1h
check "tc: ban $SRC6" agent ban "$SRC6/128" --for 1h
run_shapes tc none "${tc_shapes[@]}"
p=$(counter aux_tc_pulled)
check "tc: non-linear skbs were pulled (aux_tc_pulled $p)" test "$p" -ge 3
stop_agent
agent detach >/dev/null 2>&1

tap_done
