#!/usr/bin/env bash
# test_tour.sh - the README's five-minute tour, step by step, as a reader runs it: `make run`
# (scripts/run.sh: agent, gateway, stub), a chat completion with curl and with the official
# openai client, the kernel's connection limit dropping the sixth SYN, status, a ban seen with
# bpftool and taken out, and the end of the tour: the one-time dashboard link `make run`
# printed signs in as ADMIN, and the dashboard's sources (the request log, /metrics) show the
# tour's own traffic; then detach. In a network namespace of its own with its own pin and
# state dirs (LT_PIN_DIR, LT_STATE_DIR), so it never touches the host's lo or pins; the
# ports are the README's (9090, 8080, 9100, 8443), private to the namespace. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
B=$ROOT/build
NS=lttour-$$
PIN=/sys/fs/bpf/lt-tour-$$
STATE=$(mktemp -d /tmp/lt-tour-XXXXXX)
WORK=$(mktemp -d /tmp/lt-tour-work-XXXXXX)
RUN_PID= SOCAT_PID=
export LT_JWT_SECRET=tour-$$-$(head -c 32 /dev/urandom | base64 | tr -d "=+/") # the gateway reads it too
# nsenter, not ip netns exec: that one mounts a sysfs of its own, without /sys/fs/bpf
inns() { nsenter --net=/run/netns/$NS "$@"; }
agent() { "$B/leaky-agent" --pin-dir "$PIN" --state-dir "$STATE" "$@"; }
cleanup() {
	[ -n "$SOCAT_PID" ] && kill "$SOCAT_PID" 2>/dev/null
	[ -n "$RUN_PID" ] && kill -TERM "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
	inns "$B/leaky-agent" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$STATE" "$WORK"
}
trap cleanup EXIT
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP the tour attaches BPF: needs root"
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }

# ---- terminal 1: make run (its build step is the caller's: make -j2 all)
LT_PIN_DIR=$PIN LT_STATE_DIR=$STATE nsenter --net=/run/netns/$NS bash "$ROOT/scripts/run.sh" >"$WORK/run.log" 2>&1 &
RUN_PID=$!
for _ in $(seq 150); do
	inns curl -s -o /dev/null http://127.0.0.1:8080/ && inns curl -s -o /dev/null http://127.0.0.1:9090/healthz && break
	sleep 0.1
done
if ! check "make run: agent, gateway and stub answer (9090, 8080, 9100)" \
	inns curl -sf -o /dev/null http://127.0.0.1:9100/stub/stats; then
	sed 's/^/# run: /' "$WORK/run.log"
	echo "Bail out! make run did not start"
	exit 1
fi
LINK=$(sed -n 's/^dashboard: \(http:.*\)$/\1/p' "$WORK/run.log" | head -1)
check "make run prints the dashboard link (dashboard: http://127.0.0.1:9090/ui/#code=...)" \
	grep -qE '^http://127\.0\.0\.1:9090/ui/#code=[A-Za-z0-9_-]{43}$' <<<"$LINK"

# ---- terminal 2: a chat completion through the gateway, with curl and with openai
T=$(agent mint-token --sub 00000000-0000-0000-0000-000000000001)
inns curl -si localhost:8080/v1/chat/completions -H "Authorization: Bearer $T" \
	-d '{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}' >"$WORK/chat"
check "curl: 200 from the gateway ($(head -1 "$WORK/chat" | tr -d '\r'))" grep -q '^HTTP/1.1 200' "$WORK/chat"
for h in RateLimit-Policy RateLimit x-ratelimit-remaining-tokens; do
	check "the answer carries $h" grep -qi "^$h:" "$WORK/chat"
done
out=$(cd "$ROOT/tests/openai" && OPENAI_API_KEY=$T timeout 60 nsenter --net=/run/netns/$NS node --input-type=module -e "
import OpenAI from 'openai';
const c = new OpenAI({ baseURL: 'http://127.0.0.1:8080/v1' });
const s = await c.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
  messages: [{ role: 'user', content: 'count' }] });
for await (const ch of s) process.stdout.write(ch.choices[0]?.delta?.content ?? '');" 2>&1)
check "the openai client streams an answer ($(head -c 60 <<<"$out"))" test -n "$out" -a "$?" = 0
# the charge is in the request log (the bucket itself leaks 100 tokens/s: remaining is full
# again within a second); the writer stores rows asynchronously, so poll (bounded)
for _ in $(seq 50); do
	q=$(inns curl -s "localhost:9090/api/v1/logs" -H "Authorization: Bearer $T")
	[ "$(jq '[.items[] | select(.source == "gateway" and .status == 200 and .tokens_in > 0 and
		.tokens_out > 0)] | length' <<<"$q" 2>/dev/null)" = 2 ] && break
	sleep 0.1
done
check "the agent's request log shows both requests with the tokens charged ($(jq -c '[.items[] | [.status, .tokens_in, .tokens_out]]' <<<"$q" 2>/dev/null | head -c 80))" \
	test "$(jq '[.items[] | select(.source == "gateway" and .status == 200 and .tokens_in > 0 and
		.tokens_out > 0)] | length' <<<"$q")" = 2

# ---- the kernel side: 5 new connections, then 1 per minute, for our own address
# nsenter execs socat: $! is socat's pid (a function in the background is a subshell)
nsenter --net=/run/netns/$NS socat TCP-LISTEN:8443,fork,reuseaddr SYSTEM:'echo hello' &
SOCAT_PID=$!
for _ in $(seq 50); do inns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8443' 2>/dev/null && break; sleep 0.1; done
inns "$B/leaky-agent" --pin-dir "$PIN" --state-dir "$STATE" policy set 127.0.0.1/32 --conn 5:1/m >"$WORK/policy" 2>&1
check "policy set 127.0.0.1/32 --conn 5:1/m" test "$?" = 0
line=$(for i in $(seq 8); do inns timeout 0.5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8443' 2>/dev/null && echo -n 'ok ' || echo -n 'DROPPED '; done)
eq "prints ok ok ok ok ok DROPPED DROPPED DROPPED: the sixth SYN is dropped in XDP" \
	"$line" "ok ok ok ok ok DROPPED DROPPED DROPPED "
inns "$B/leaky-agent" --pin-dir "$PIN" --state-dir "$STATE" status >"$WORK/status" 2>&1
check "status: the agent running and ready, attached, lo with a program" \
	grep -q 'agent: running (pid [0-9]*), ready' "$WORK/status"
check "status: attached: yes" grep -q '^attached: yes' "$WORK/status"
check "status: drop_conn_rate counted" grep -qE '^  drop_conn_rate +[1-9]' "$WORK/status"

# ---- the penalty box
agent ban 127.0.0.1 --for 10m >/dev/null
n=$(bpftool -j map dump pinned "$PIN/lt_penalty" | jq -c '.[].formatted | select(.value.tag != 0)' | wc -l)
eq "ban: one used slot in lt_penalty (bpftool)" "$n" 1
check "bans lists it" bash -c "'$B/leaky-agent' --pin-dir '$PIN' --state-dir '$STATE' bans | grep -q 127.0.0.1"
agent unban 127.0.0.1 >/dev/null
n=$(bpftool -j map dump pinned "$PIN/lt_penalty" | jq -c '.[].formatted | select(.value.tag != 0)' | wc -l)
eq "unban: lt_penalty empty again" "$n" 0
check "bpftool map dump lt_stats reads" bash -c "bpftool map dump pinned '$PIN/lt_stats' | head -20 | grep -q ."

# ---- last, the dashboard: the link signs in as ADMIN; its sources show the tour's traffic
CODE=${LINK##*#code=}
r=$(inns curl -s -X POST localhost:9090/api/v1/auth/token -H 'Content-Type: application/json' \
	-d "{\"signin_code\":\"$CODE\"}")
TD=$(jq -r '.access_token // empty' <<<"$r")
eq "the link's code signs in as ADMIN" "$(jq -c .roles <<<"$r")" '["ADMIN"]'
STATUS=$(inns curl -s -o /dev/null -w '%{http_code}' localhost:9090/ui/)
eq "the dashboard is served at /ui/" "$STATUS" 200
for _ in $(seq 50); do
	inns curl -s "localhost:9090/api/v1/logs?route=llm:/v1/chat/completions&limit=50" -H "Authorization: Bearer $TD" >"$WORK/logs"
	[ "$(jq '.items | length' "$WORK/logs")" -ge 2 ] && break
	sleep 0.1
done
eq "the Request log has the tour's two chat calls (curl and openai), admitted, with tokens used" \
	"$(jq -c '[.items[] | select(.outcome == "completed" and .tokens_out > 0)] | length' "$WORK/logs")" 2
inns curl -s localhost:9090/metrics -H "Authorization: Bearer $TD" >"$WORK/metrics"
check "the Overview's kernel counters: the dropped SYNs (lt_xdp_packets_total drop_conn_rate)" \
	grep -qE 'drop_conn_rate.* [1-9]' "$WORK/metrics"
out=$(agent signin-link 2>&1)
check "signin-link prints a new link" grep -qE '^dashboard: http://127\.0\.0\.1:9090/ui/#code=' <<<"$out"

# ---- detach
kill "$SOCAT_PID"; wait "$SOCAT_PID" 2>/dev/null; SOCAT_PID=
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null; RUN_PID=
inns "$B/leaky-agent" --pin-dir "$PIN" --state-dir "$STATE" detach >"$WORK/detach" 2>&1
check "detach" test "$?" = 0
check "ip link show lo: no prog/xdp any more" not bash -c "ip -n '$NS' link show lo | grep -q prog/xdp"
check "the pin dir is gone" test ! -e "$PIN"
tap_done
