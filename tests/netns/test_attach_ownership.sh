#!/usr/bin/env bash
# test_attach_ownership.sh - two installs (different pin dirs) on one host must
# not take each other's interfaces; a refused attach leaves nothing behind; the
# daemon notices losing its program and re-attaches when the interface is free;
# `status` says one consistent thing in every state. Prints TAP. Needs root;
# everything it creates it removes.
#
#   one netns (lto-PID): va <==veth==> vb   (A attaches to vb)
#                        vc <==veth==> vd   (vd carries a foreign XDP program)
# Installs: A (the daemon under test), B (a second install refused on vb),
# C (an install whose stale record points at vb), E (refused by a foreign program).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
ID=$$
NS=lto-$ID
TMP=$(mktemp -d /tmp/lt-own-XXXXXX)
PA=/sys/fs/bpf/lt-own-a-$ID PB=/sys/fs/bpf/lt-own-b-$ID
PC=/sys/fs/bpf/lt-own-c-$ID PE=/sys/fs/bpf/lt-own-e-$ID PF=/sys/fs/bpf/lt-own-f-$ID
SA=$TMP/a SB=$TMP/b SC=$TMP/c SE=$TMP/e SF=$TMP/f
PIDS=()

inns() { nsenter --net=/run/netns/$NS "$@"; }
# ag PIN STATE ARGS...: the agent of one install
ag() { local p=$1 s=$2; shift 2; inns "$AGENT" --pin-dir "$p" --state-dir "$s" "$@"; }

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PA" "$PB" "$PC" "$PE" "$PF" "$TMP"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP netns tests need root"
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

ip netns add "$NS" &&
	inns ip link add va type veth peer name vb && inns ip link add vc type veth peer name vd &&
	inns ip link set lo up && inns ip link set va up && inns ip link set vb up &&
	inns ip link set vc up && inns ip link set vd up || { echo "Bail out! netns setup"; exit 1; }

# A foreign XDP program (not leaky-tokens'), loaded by iproute2.
cat >"$TMP/foreign.c" <<'C'
#define SEC(n) __attribute__((section(n), used))
SEC("xdp") int foreign_pass(void *ctx) { return 2; /* XDP_PASS */ }
char _license[] SEC("license") = "GPL";
C
clang -O2 -g -target bpf -c "$TMP/foreign.c" -o "$TMP/foreign.o" || { echo "Bail out! clang"; exit 1; }
foreign_on() { inns ip -force link set dev "$1" xdpdrv obj "$TMP/foreign.o" sec xdp; }

# xdp_id IF: the XDP program id on IF, 0 if none
xdp_id() { inns ip -j link show "$1" | jq -r '.[0].xdp.prog.id // 0'; }
xdp_name() { inns ip -j link show "$1" | jq -r '.[0].xdp.prog.name // ""'; }
readyz() { inns curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz"; }
npins() { find "$1" -maxdepth 1 -name 'lt_*' 2>/dev/null | wc -l; }

# start PIN STATE PORT LOG IFACE [ARGS]: a daemon in the background; 0 once it is attached
start() {
	local p=$1 s=$2 port=$3 log=$4 ifc=$5 pid
	shift 5
	: >"$log"
	# nsenter execs the agent, so $! is the agent itself (kill -9 must hit it)
	nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$p" --state-dir "$s" attach --iface "$ifc" \
		--api "127.0.0.1:$port" "$@" >>"$log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	LAST_PID=$pid
	for _ in $(seq 150); do
		grep -q 'attached; pins in' "$log" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$log" >&2
	return 1
}

# wait_for SECONDS CMD...: 0 as soon as CMD succeeds
wait_for() {
	local n=$(($1 * 10)); shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}

# consistent PIN STATE: `status` and `status --json` agree with each other and
# with themselves (the attached flag, prog ids, since times, agent and mode lines).
consistent() {
	local p=$1 s=$2 txt js
	txt=$(ag "$p" "$s" status 2>&1) || { echo "status failed: $txt"; return 1; }
	js=$(ag "$p" "$s" status --json 2>&1) || { echo "status --json failed: $js"; return 1; }
	echo "$txt"
	echo "$js"
	jq -e '(.attached | type) == "boolean" and (.ready | type) == "boolean"' <<<"$js" >/dev/null || return 1
	# the flag is the conjunction over the recorded interfaces (and there is one)
	jq -e '.attached == ((.interfaces | length) > 0 and all(.interfaces[]; .attached))' <<<"$js" >/dev/null || return 1
	# an interface without our program has no program id and no since time, and vice versa
	jq -e 'all(.interfaces[]; if .attached then .prog_id > 0 and (.attached_since | type) == "string"
		else .prog_id == 0 and .attached_since == null end)' <<<"$js" >/dev/null || return 1
	jq -e '.ready == (.agent_pid > 0 and .attached)' <<<"$js" >/dev/null || return 1
	if jq -e .attached <<<"$js" >/dev/null; then
		grep -q '^attached: yes' <<<"$txt" || return 1
	else
		grep -q '^attached: no' <<<"$txt" || return 1
		! grep -q 'mode: enforcing\|^attached: .*, enforcing' <<<"$txt" || return 1
	fi
	if jq -e '.agent_pid > 0' <<<"$js" >/dev/null; then
		grep -q '^agent: running' <<<"$txt" || return 1
		if jq -e .ready <<<"$js" >/dev/null; then
			! grep -q 'NOT READY' <<<"$txt" || return 1
		else
			grep -q 'NOT READY' <<<"$txt" || return 1
		fi
	else
		grep -q '^agent: not running' <<<"$txt" || return 1
	fi
	! grep -q 'prog id 0\b' <<<"$txt" || return 1
	! grep -q 'Parent Qdisc' <<<"$txt$js" || return 1
}
attached_is() { [ "$(ag "$1" "$2" status --json | jq -r .attached)" = "$3" ]; }

check "status: no pins yet: consistent, not attached" consistent "$PA" "$SA"
check "status: no pins yet: --json says attached false" attached_is "$PA" "$SA" false

# ---- C: an install that attached vb, died, and whose program was removed ------------
check "C: attaches to vb" start "$PC" "$SC" 9093 "$TMP/c.log" vb
C_PID=$LAST_PID
kill -9 "$C_PID"; wait "$C_PID" 2>/dev/null
check "status: C not running, still attached: consistent" consistent "$PC" "$SC"
check "status: C not running, still attached: attached true" attached_is "$PC" "$SC" true
C_NPINS=$(npins "$PC")
inns ip link set dev vb xdp off
check "status: C's program removed: consistent" consistent "$PC" "$SC"
check "status: C's program removed: attached false" attached_is "$PC" "$SC" false

# ---- A: the daemon under test ------------------------------------------------------------
check "A: attaches to vb (free again)" start "$PA" "$SA" 9091 "$TMP/a.log" vb
A_PID=$LAST_PID
A_ID=$(xdp_id vb)
check "A: its program is on vb (id $A_ID)" test "$A_ID" -gt 0
check "attach log: no alarming 'Parent Qdisc' line" not grep -q 'Parent Qdisc' "$TMP/a.log" "$TMP/c.log"
check "status: A running and attached: consistent" consistent "$PA" "$SA"
check "status: A running and attached: attached true" attached_is "$PA" "$SA" true
check "readyz: A ready" test "$(readyz 9091)" = 200

# ---- B: a second install with another pin dir is refused on vb ------------------------------
out=$(timeout 30 nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PB" --state-dir "$SB" attach \
	--iface vb --api 127.0.0.1:9092 2>&1 </dev/null)
rc=$?
expect_err "B: attach on A's interface is refused, naming A's pin dir" $rc "$out" "$PA"
expect_err "B: the refusal names A's program id" $rc "$out" "id $A_ID"
echo "$out" | sed 's/^/# B: /' >&2
check "B: A's program is still on vb (id unchanged)" test "$(xdp_id vb)" = "$A_ID"
check "B: the refused attach left no pins" test ! -e "$PB"
check "B: the refused attach left no lock file" test ! -e "$SB/agent.lock"
check "B: the refused attach left no state dir" test ! -e "$SB"
check "B: A is still ready" test "$(readyz 9091)" = 200

# ---- E: a foreign (non-leaky) XDP program refuses an attach; nothing is left -------------
foreign_on vd
out=$(timeout 30 nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PE" --state-dir "$SE" attach \
	--iface vd --api 127.0.0.1:9094 2>&1 </dev/null)
expect_err "E: attach over a foreign XDP program is refused" $? "$out" "foreign_pass"
echo "$out" | sed 's/^/# E: /' >&2
check "E: the refused attach left no pins" test ! -e "$PE"
check "E: the refused attach left no lock file or state dir" test ! -e "$SE"
check "E: the foreign program is untouched" test "$(xdp_name vd)" = foreign_pass

# ---- C again: a refused attach keeps pins that existed before it --------------------------
C_STATE=$(ls -l --time-style=+%s.%N "$SC")
out=$(timeout 30 nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PC" --state-dir "$SC" attach \
	--iface vd --api 127.0.0.1:9093 2>&1 </dev/null)
expect_err "C: attach over the foreign program on vd is refused" $? "$out" "foreign_pass"
check "C: the pins that existed before are kept ($C_NPINS)" test "$(npins "$PC")" = "$C_NPINS"
check "C: the state dir is as it was (the old lock file is kept)" \
	test "$(ls -l --time-style=+%s.%N "$SC")" = "$C_STATE"

# ---- detach by another pin dir does not remove A's program -----------------------------
out=$(ag "$PC" "$SC" detach --keep-maps 2>&1)
check "C: detach --keep-maps succeeds" test $? = 0
check "C: detach left A's program on vb" test "$(xdp_id vb)" = "$A_ID"
check "status: C detached, pins kept: consistent" consistent "$PC" "$SC"
check "status: C detached: attached false" attached_is "$PC" "$SC" false
check "C: full detach succeeds" ag "$PC" "$SC" detach
check "C: full detach left A's program on vb" test "$(xdp_id vb)" = "$A_ID"
check "status: C fully detached (no pins): consistent" consistent "$PC" "$SC"

# ---- the daemon notices losing its program --------------------------------------------------
lost_lines() { grep -c 'lost its' "$TMP/a.log"; }
inns ip link set dev vb xdp off
check "watch: A logs the loss" wait_for 10 bash -c "grep -q 'lost its' $TMP/a.log"
check "watch: A re-attaches to the free interface" wait_for 10 bash -c \
	"[ \"\$(nsenter --net=/run/netns/$NS ip -j link show vb | jq -r '.[0].xdp.prog.name // \"\"')\" = lt_xdp ]"
check "watch: the loss is logged once ($(lost_lines))" test "$(lost_lines)" = 1
check "watch: ready again after re-attaching" wait_for 5 bash -c "[ \$(nsenter --net=/run/netns/$NS curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9091/readyz) = 200 ]"
check "status: A re-attached: attached true" attached_is "$PA" "$SA" true

# a foreign program replaces ours: not ready, not replaced
foreign_on vb
F_ID=$(xdp_id vb)
check "watch: A logs the second loss" wait_for 10 bash -c "[ \$(grep -c 'lost its' $TMP/a.log) = 2 ]"
check "readyz: A not ready while a foreign program sits on vb" test "$(readyz 9091)" = 503
check "status: A running but lost: consistent" consistent "$PA" "$SA"
check "status: A running but lost: attached false" attached_is "$PA" "$SA" false
sleep 2.5
check "watch: the foreign program is not replaced" test "$(xdp_id vb)" = "$F_ID"
check "watch: the foreign program is logged once" test "$(grep -c 'not replacing' "$TMP/a.log")" = 1
check "watch: still not ready" test "$(readyz 9091)" = 503
inns ip link set dev vb xdp off
check "watch: A re-attaches once the foreign program is gone" wait_for 10 bash -c \
	"[ \"\$(nsenter --net=/run/netns/$NS ip -j link show vb | jq -r '.[0].xdp.prog.name // \"\"')\" = lt_xdp ]"
check "watch: ready again" wait_for 5 bash -c "[ \$(nsenter --net=/run/netns/$NS curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9091/readyz) = 200 ]"
check "status: A attached again: consistent" consistent "$PA" "$SA"

# ---- the same in TC mode, and its probes stay quiet -----------------------------------------
tc_prog() { inns tc filter show dev vc ingress | grep -q 'lt_tc'; }
check "F: attaches to vc in tc mode" start "$PF" "$SF" 9095 "$TMP/f.log" vc --mode tc
inns tc filter del dev vc ingress
check "watch (tc): F logs the loss" wait_for 10 grep -q 'lost its' "$TMP/f.log"
check "watch (tc): F re-attaches its filter" wait_for 10 tc_prog
check "status (tc): consistent after re-attaching" consistent "$PF" "$SF"
check "F: detach" ag "$PF" "$SF" detach
check "tc attach log: no libbpf kernel error lines" not grep -q 'Kernel error message' "$TMP/f.log"

check "A: detach stops the daemon and removes the program" ag "$PA" "$SA" detach
check "A: nothing left on vb" test "$(xdp_id vb)" = 0
check "status: A detached: consistent" consistent "$PA" "$SA"
check "no 'Parent Qdisc' in any agent log" not grep -q 'Parent Qdisc' "$TMP/a.log" "$TMP/c.log" "$TMP/f.log"

sed "s/^/# A: /" "$TMP/a.log" >&2
tap_done
