#!/usr/bin/env bash
# test_gw_least_privilege.sh - leaky-gateway itself as an unprivileged user (issue #9 item 7):
# a temporary system user in a temporary group (removed on exit) that the agent gives its
# gateway pins to (--gateway-group, 0660). The gateway runs as that user with no capability and
# no other group, the JWT secret given in LT_JWT_SECRET (the agent's jwt-secret file stays 0600
# root), and it serves a chat completion through the stub with admission (the tokens charged in
# the shared buckets), answers 429, and escalates: its ban is in the penalty box. The same
# credentials cannot read the agent's state (SQLite, secret) or open the agent's private pins.
# Run as root, the gateway warns. Prints TAP.
set -u
TOPIC=gwlp
GRP=ltgwg$$ USR=ltgwu$$
. "$(dirname "$0")/gw_env.sh"
lp_cleanup() {
	gw_cleanup
	[ -n "${ROOT_GW:-}" ] && kill -KILL "$ROOT_GW" 2>/dev/null
	userdel "$USR" 2>/dev/null
	groupdel "$GRP" 2>/dev/null
	rm -rf "${BIN:-/nonexistent-gwlp}"
	return 0
}
EXTRA_CLEANUP=lp_cleanup
U1=00000000-0000-0000-0000-0000000017a1
U2=00000000-0000-0000-0000-0000000017a2

groupadd --system "$GRP" && useradd --system -M -N -g "$GRP" -s /usr/sbin/nologin "$USR" ||
	{ echo "Bail out! cannot create the test user and group"; exit 1; }
# as USER: the gateway's credentials (its group only, no capability)
as_gw() { setpriv --reuid="$USR" --regid="$GRP" --clear-groups --inh-caps=-all \
	--bounding-set=-all -- "$@"; }

# budgets that do not leak during the test; an API key may send 2 requests, then 1 a minute
agent_config '"token": {"tier_order": ["ADMIN","USER"], "default_tier": "USER",
	"tiers": {"USER": {"*": {"capacity": 100000, "rate": "1/d"}},
		  "ADMIN": {"*": {"capacity": 1000000, "rate": "1/d"}}},
	"key_requests": {"*": {"capacity": 2, "rate": "1/m"}}}'
check "agent attaches with --gateway-group $GRP" \
	start_agent --config "$WORK/agent.json" --gateway-group "$GRP"
check "stub starts" start_stub
# loopback is exempt from escalation by default; here it is the client to ban
gw_config '"tiers": [{"name": "ADMIN", "default_output_tokens": 64}, {"name": "USER", "default_output_tokens": 32}],
	"escalation": {"rejections": 3, "window_s": 10, "ttl_s": 2, "max_ttl_s": 4, "exempt": []}'
# the binary and its config where that user can read them (the worktree may not be traversable)
BIN=$(mktemp -d /tmp/lt-gwlp-bin-XXXXXX)
cp "$GW" "$ROOT/build/san/tests/lt_pin_probe" "$WORK/gateway.json" "$BIN/" &&
	chmod 755 "$BIN" "$BIN/leaky-gateway" "$BIN/lt_pin_probe" && chmod 644 "$BIN/gateway.json"

start_gw_unpriv() {
	: >"$GW_LOG"
	# nsenter and setpriv exec: $! is the gateway's master
	LT_JWT_SECRET=$(cat "$STATE/jwt-secret") nsenter --net=/run/netns/$NS setpriv \
		--reuid="$USR" --regid="$GRP" --clear-groups --inh-caps=-all --bounding-set=-all \
		-- "$BIN/leaky-gateway" --config "$BIN/gateway.json" >>"$GW_LOG" 2>&1 &
	GW_PID=$!
	for _ in $(seq 100); do
		inns curl -s -o /dev/null "$GWBASE/" && return 0
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# gateway: /' "$GW_LOG" >&2
	return 1
}
check "the gateway starts as $USR" start_gw_unpriv

uid=$(id -u "$USR") gid=$(getent group "$GRP" | cut -d: -f3)
# creds PID: "uid gid groups capeff" of a process
creds() {
	awk '/^Uid:/ { u = $2 "/" $3 "/" $4 "/" $5 } /^Gid:/ { g = $2 "/" $3 "/" $4 "/" $5 }
	     /^Groups:/ { $1 = ""; gr = $0 } /^CapEff:/ { c = $2 }
	     END { gsub(/ /, "", gr); print u, g, "[" gr "]", c }' "/proc/$1/status"
}
want="$uid/$uid/$uid/$uid $gid/$gid/$gid/$gid [] 0000000000000000"
WORKER=$(pgrep -P "$GW_PID" | head -1)
check "the master runs as $USR:$GRP, no other group, no capability ($(creds "$GW_PID"))" \
	test "$(creds "$GW_PID")" = "$want"
check "and so does its worker ($(creds "${WORKER:-$GW_PID}"))" \
	test -n "$WORKER" -a "$(creds "${WORKER:-$GW_PID}")" = "$want"
check "it got the JWT secret from LT_JWT_SECRET (no 'JWTs refused' warning)" \
	not grep -q 'JWTs refused' "$GW_LOG"
check "it opened the shared maps (no 'shared maps unavailable' warning)" \
	not grep -q 'shared maps unavailable' "$GW_LOG"
check "and did not warn about root" not grep -q 'running as root' "$GW_LOG"

# --- it serves, with admission ------------------------------------------------------------
TA=$(mint --sub admin-1 --roles ADMIN)
T1=$(mint --sub "$U1" --roles USER)
remaining() {
	req GET "/api/v1/tokens/quota?userId=$U1&provider=openai" "$T1"
	jqb .remaining
}
gwreq POST /v1/chat/completions "jwt:$T1" '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}'
check "a chat completion through the stub, with a JWT: 200 ($STATUS)" test "$STATUS" = 200
total=$(jq -r .usage.total_tokens "$RB")
left=$(remaining)
charged=$((100000 - ${left:-100000}))
# as test_gw_llm: the bucket's clock may lag by a fraction of a token
check "the tokens the stub reported ($total) are charged to the user's bucket ($charged)" \
	test "$total" -gt 0 -a "$charged" -ge $((total - 1)) -a "$charged" -le $((total + 1))

# --- 429, then escalation ----------------------------------------------------------------
req POST /api/v1/admin/keys "$TA" '{"name":"lp","owner":"'$U2'","tier":"USER","limits":{"capacity":1000000,"rate":"1000/s"}}'
expect "create an API key" 201
KEY=$(jqb .secret)
codes=
for _ in $(seq 8); do
	gwreq POST /v1/chat/completions "key:$KEY" '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
	codes="$codes $STATUS"
done
echo "# back to back with the key:$codes"
check "the key's 2 requests are served, then 429s" \
	test "$(echo $codes | cut -d' ' -f1-3)" = "200 200 429"
gwreq POST /v1/chat/completions "key:$KEY" '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
check "the 429 carries Retry-After and retry-after-ms" \
	test -n "$(hdrv retry-after)" -a -n "$(hdrv retry-after-ms)"
req GET /api/v1/admin/penalties "$TA"
check "the unprivileged gateway wrote its ban into the penalty box: 127.0.0.1/32 gateway-escalation" \
	test "$(jq -r '.penalties[] | select(.prefix == "127.0.0.1/32") | .reason' "$RB")" = \
	gateway-escalation
check "and logged it" grep -q 'escalation: .*127.0.0.1 banned for 2000 ms' "$GW_LOG"

# --- what the same credentials cannot do ---------------------------------------------------
ls -l "$STATE" | sed 's/^/#   /'
check "the agent's state dir is root's alone ($(stat -c '%a %U' "$STATE"))" \
	test "$(stat -c '%a %U' "$STATE")" = "700 root"
check "the JWT secret file is 0600 root" test "$(stat -c '%a %U' "$STATE/jwt-secret")" = "600 root"
cant_read() { ! as_gw cat "$1" >/dev/null 2>&1; }
check "as $USR: reading the JWT secret is refused" cant_read "$STATE/jwt-secret"
for db in leaky.db requests.db; do
	check "the SQLite store $db is 0600 root" test "$(stat -c '%a %U' "$STATE/$db")" = "600 root"
	check "as $USR: reading $db is refused" cant_read "$STATE/$db"
done
out=$(as_gw "$BIN/lt_pin_probe" "$PIN" gateway 2>&1); rc=$?
sed 's/^/#   /' <<<"$out"
check "as $USR: only the gateway's pins open (lt_apikey read-only); lt_src, lt_policy, lt_stats, lt_ports refused; no map can be made" \
	test $rc = 0

# --- as root it warns -------------------------------------------------------------------
: >"$WORK/root.log"
nsenter --net=/run/netns/$NS "$GW" --config "$WORK/gateway.json" --listen 127.0.0.1:18081 \
	--pin-dir "$PIN-none" >>"$WORK/root.log" 2>&1 &
ROOT_GW=$!
for _ in $(seq 50); do grep -q 'running as root' "$WORK/root.log" && break; sleep 0.1; done
kill -TERM "$ROOT_GW" 2>/dev/null
wait "$ROOT_GW" 2>/dev/null
ROOT_GW=
check "run as root, the gateway warns that it does not need it" \
	grep -q 'running as root, which it does not need' "$WORK/root.log"
tap_done
