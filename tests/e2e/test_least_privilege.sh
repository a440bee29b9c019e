#!/usr/bin/env bash
# test_least_privilege.sh - the agent gives the gateway's pins to --gateway-group (0660, lt_apikey
# 0640, the pin dir 0750) and nothing else: a user in that group, with no capability at all,
# opens and mmaps them (and authenticates an API key, and drives a breaker, through liblt and
# gateway/identity.c); a user outside it opens nothing; the other pins stay root's; a group that
# does not exist refuses the attach before anything is made. Temporary users and group, removed
# on exit. Prints TAP.
set -u
TOPIC=lpriv
GRP=ltgw$$ USR=ltgwu$$ OUT=ltout$$
EXTRA_CLEANUP="lp_cleanup"
lp_cleanup() {
	userdel "$USR" 2>/dev/null
	userdel "$OUT" 2>/dev/null
	groupdel "$GRP" 2>/dev/null
	rm -rf "${BIN:-/nonexistent-lp}" "$PIN-x"
}
. "$(dirname "$0")/agent_env.sh"
groupadd --system "$GRP" && useradd --system -M -N -g "$GRP" -s /usr/sbin/nologin "$USR" &&
	useradd --system -M -N -g nogroup -s /usr/sbin/nologin "$OUT" ||
	{ echo "Bail out! cannot create the test users"; exit 1; }
# the tools, where any user can run them (the worktree may not be traversable)
BIN=$(mktemp -d /tmp/lt-lpriv-bin-XXXXXX)
cp "$ROOT/build/san/tests/lt_pin_probe" "$ROOT/build/san/tests/lt_gw_ident" \
	"$ROOT/build/san/tests/lt_brk_peer" "$BIN/" && chmod 755 "$BIN" "$BIN"/*
# no capabilities, no supplementary groups but the user's own
as() { local u=$1 g=$2; shift 2
	setpriv --reuid="$u" --regid="$g" --init-groups --inh-caps=-all --bounding-set=-all -- "$@"; }

printf '{"gateway_group": "bad name"}' >"$WORK/bad.json"
out=$("$AGENT" --config "$WORK/bad.json" check-config 2>&1); rc=$?
expect_err "config: a gateway_group that is not a group name is refused" $rc "$out" "/gateway_group"
out=$(nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN-x" --state-dir "$WORK/st-x" attach \
	--iface lo --api 127.0.0.1:$PORT --gateway-group "nosuch$$" 2>&1); rc=$?
expect_err "a --gateway-group that does not exist refuses the attach" $rc "$out" "does not exist"
check "and leaves no pins behind" test ! -e "$PIN-x"

check "attach --gateway-group $GRP" start_agent --gateway-group "$GRP"
mode() { stat -c '%a %U %G' "$1"; }
check "the pin dir is 750 root:$GRP ($(mode "$PIN"))" test "$(mode "$PIN")" = "750 root $GRP"
for m in lt_slots lt_rates lt_usage lt_keyidx lt_config lt_breaker lt_penalty lt_reqlog lt_reqlog_ctl lt_escal; do
	check "$m is 660 root:$GRP ($(mode "$PIN/$m"))" test "$(mode "$PIN/$m")" = "660 root $GRP"
done
check "lt_apikey is 640 root:$GRP: the gateway reads keys, never writes them" \
	test "$(mode "$PIN/lt_apikey")" = "640 root $GRP"
check "lt_src, lt_policy, lt_stats stay 600 root:root" \
	test "$(mode "$PIN/lt_src") $(mode "$PIN/lt_policy") $(mode "$PIN/lt_stats")" = \
	"600 root root 600 root root 600 root root"

echo "# unprivileged_bpf_disabled=$(cat /proc/sys/kernel/unprivileged_bpf_disabled) kernel $(uname -r)"
out=$(as "$USR" "$GRP" "$BIN/lt_pin_probe" "$PIN" gateway 2>&1); rc=$?
sed 's/^/#   /' <<<"$out"
check "a user in $GRP with no capabilities opens and mmaps the gateway's pins, and nothing else" \
	test $rc = 0
check "(it really ran without capabilities)" grep -q 'CapEff:.*0000000000000000' <<<"$out"
out=$(as "$OUT" nogroup "$BIN/lt_pin_probe" "$PIN" none 2>&1); rc=$?
sed 's/^/#   /' <<<"$out"
check "a user outside $GRP opens none of them" test $rc = 0

TA=$(mint --sub admin-1 --roles ADMIN)
req POST /api/v1/admin/keys "$TA" '{"name":"n","owner":"00000000-0000-0000-0000-00000000fe01","tier":"USER","limits":{"capacity":30,"rate":"1/m"}}'
expect "create a key (REST)" 201
out=$(echo "KEY $(jqb .secret)" | as "$USR" "$GRP" "$BIN/lt_gw_ident" "$PIN" 2>&1)
check "the unprivileged user authenticates it through gateway/identity.c: $out" \
	grep -q '^ok 00000000-0000-0000-0000-00000000fe01 USER ' <<<"$out"
out=$(as "$USR" "$GRP" "$BIN/lt_brk_peer" "$PIN" report openai 429 30000 2>&1 &&
	as "$USR" "$GRP" "$BIN/lt_brk_peer" "$PIN" allow openai 2>&1)
check "and opens the openai breaker for every process (a 429): $out" grep -q '^denied state=open' <<<"$out"
req GET /api/v1/admin/breakers "$TA"
check "the agent sees it" test "$(jqb '.breakers[] | select(.name == "openai") | .state')" = open
tap_done
