#!/usr/bin/env bash
# test_lpm_sites.sh - each caller of the exact-prefix test on the LPM tries
# (issue 8 item 14) behaves by its exact prefix, not by a prefix covering it:
#   allow add, allow del, policy set (CLI), a ban's strikes (REST and CLI:
#   lt_penalty_ban), and the restore of stored bans into a fresh lt_penalty.
# Own netns, pin dir and state dir. Prints TAP.
set -u
TOPIC=lpm
# one agent in a private netns, own pins, state, port; start_agent, inns, cleanup
. "$(dirname "$0")/agent_env.sh"
cli() { inns "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" "$@" 2>&1; }
RB=$STATE/body
req() {
	local args=(-s -X "$1" -o "$RB" -w '%{http_code}' -H "Authorization: Bearer $TA")
	[ -n "${3-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	STATUS=$(inns curl "${args[@]}" "$BASE$2")
}
# the CLI line of one prefix in `policy list` / `allow list`
line_of() { grep -E "^$1[[:space:]]" <<<"$2"; }
# failed RC OUT PATTERN: the command failed and said PATTERN
failed() { [ "$1" != 0 ] && grep -q -- "$3" <<<"$2"; }

check "attach: agent and API start" start_agent
TA=$("$AGENT" --state-dir "$STATE" mint-token --sub admin-1 --roles ADMIN)

# ---- allow add: a policy that covers the prefix is not this prefix's policy ------------
out=$(cli policy set 10.9.0.0/16 --conn 5:1/s)
check "setup: a /16 policy ($out)" test $? = 0
out=$(cli allow add 10.9.3.0/24); rc=$?
check "allow add 10.9.3.0/24 inside a /16 policy is accepted (rc $rc: $out)" test $rc = 0
check "allow list shows it" bash -c "grep -q '^10.9.3.0/24' <<<\"$(cli allow list)\""
out=$(cli allow add 10.9.0.0/16); rc=$?
check "allow add of the /16 itself is still refused: it has a policy (rc $rc)" \
	failed $rc "$out" 'has a policy'

# ---- allow del: an allow entry covering a policy does not make the policy deletable -------
cli allow add 10.8.0.0/16 >/dev/null
cli policy set 10.8.3.0/24 --conn 7:1/s >/dev/null
out=$(cli allow del 10.8.3.0/24); rc=$?
check "allow del of a policy inside an allowed /16 is refused (rc $rc: $out)" \
	failed $rc "$out" 'not in the allowlist'
check "and the /24 policy is still there" bash -c "grep -q '^10.8.3.0/24.*conn 7:1/s' <<<\"$(cli policy list)\""

# ---- policy set: starts from this prefix's policy, else the default, never the cover ----------
cli policy set 10.7.0.0/16 --conn 9:9/s >/dev/null
cli policy set 10.7.3.0/24 --packets 50:5/s >/dev/null
pl=$(cli policy list)
dflt=$(line_of default "$pl" | sed 's/.*conn \([^ ]*\).*/\1/')
l24=$(line_of 10.7.3.0/24 "$pl")
check "policy set inside a /16 starts from the default ($dflt), not the /16's 9:9/s: $l24" \
	bash -c "grep -q 'conn $dflt .*packets 50:5/s' <<<'$l24'"
cli policy set 10.7.3.0/24 --conn 3:1/s >/dev/null
check "a second policy set keeps this prefix's own fields" \
	bash -c "grep -q '^10.7.3.0/24.*conn 3:1/s.*packets 50:5/s' <<<\"$(cli policy list)\""

# ---- bans: strikes are the prefix's own --------------------------------------------------------
for i in 1 2 3; do req POST /api/v1/admin/penalties '{"prefix":"10.6.0.0/16","duration":"10m"}'; done
req POST /api/v1/admin/penalties '{"prefix":"10.6.3.0/24","duration":"10m"}'
req GET /api/v1/admin/penalties
s16=$(jq -r '.penalties[] | select(.prefix == "10.6.0.0/16") | .strikes' "$RB")
s24=$(jq -r '.penalties[] | select(.prefix == "10.6.3.0/24") | .strikes' "$RB")
check "a new ban inside a /16 banned 3 times starts at 1 strike (got $s24; /16 $s16)" \
	test "$s24:$s16" = "1:3"
out=$(cli ban 10.6.4.0/24 --for 10m); rc=$?
l=$(line_of 10.6.4.0/24 "$(cli bans)")
check "the CLI ban inside the /16 too (rc $rc: $l)" grep -q 'strikes 1 ' <<<"$l"

# ---- restore: a fresh host gets every stored ban back, nested ones included ---------------------
req POST /api/v1/admin/penalties '{"prefix":"10.5.0.0/16","duration":"10m"}'
req POST /api/v1/admin/penalties '{"prefix":"10.5.3.0/24","duration":"10m"}'
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
rm -f "$PIN/lt_penalty" # a reboot, as far as the penalty box knows: only the store has the bans
check "restart on a fresh lt_penalty" start_agent
req GET /api/v1/admin/penalties
check "restore: the /16 and the /24 inside it are both back" \
	test "$(jq -r '[.penalties[].prefix | select(startswith("10.5."))] | sort | join(",")' "$RB")" = "10.5.0.0/16,10.5.3.0/24"
check "agent: no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
