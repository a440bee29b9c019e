#!/usr/bin/env bash
# test_resolve.sh - how a process other than the agent gets the slot of a new
# bucket key (issue 8 item 19): lt_bucket_resolve in liblt (build/san/tests/
# lt_peer, no agent code) reads lt_keyidx and, on a miss, asks the agent, the
# only allocator, to make the bucket; repeats hit its process-local cache;
# the agent and the peer share one bucket; processes racing for one new key
# get one slot; bad keys make nothing; with the agent killed -9 known keys
# still resolve and a new key is refused with EAGAIN until it is back. TAP.
set -u
TOPIC=resolve
. "$(dirname "$0")/agent_env.sh"
PEER=$ROOT/build/san/tests/lt_peer
U1=00000000-0000-0000-0000-00000000bb01
U2=00000000-0000-0000-0000-00000000bb02
U3=00000000-0000-0000-0000-00000000bb03
U4=00000000-0000-0000-0000-00000000bb04

check "attach" start_agent
TA=$(mint --sub admin-1 --roles ADMIN)
T1=$(mint --sub $U1 --roles USER)
AGENT_API=127.0.0.1:$PORT
# the peer runs in the agent's netns (to reach its API) and on its pins
peer() { inns timeout 20 "$PEER" resolve "$PIN" "$AGENT_API" "Bearer $TA" "$@"; }
buckets() { req GET /readyz ""; jqb .buckets; }
slot_in_map() { timeout 20 bpftool map dump pinned "$PIN/lt_keyidx" -j |
	jq -r --arg k "$1" '.[] | select(.formatted.key.key == $k) | .formatted.value.slot'; }

K1=u/USER/openai/$U1
B0=$(buckets)
out=$(peer "+$K1"); rc=$?
S1=$(awk '$2 == "slot" {print $3; exit}' <<<"$out")
check "a new key: the peer gets a slot and admits on it ($(head -2 <<<"$out" | tr "\n" " "))" \
	test "$rc" = 0 -a -n "$S1" -a "$(grep -c "^charged 0$" <<<"$out")" = 1
check "made by the agent (one call), published in lt_keyidx with that slot" \
	test "$(tail -1 <<<"$out" | awk '{print $6}')/$(slot_in_map "$K1")" = "1/$S1"
check "one bucket more" test "$(buckets)" = $((B0 + 1))
req POST /api/v1/tokens/consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":5}"
expect "the agent consumes for the same user" 200
check "on the same bucket (no new one)" test "$(buckets)" = $((B0 + 1))

out=$(peer "$K1" "$K1" "$K1"); rc=$?
check "a known key: read from lt_keyidx once, then from the cache ($(tail -1 <<<"$out"))" \
	test "$rc/$(tail -1 <<<"$out")" = "0/hits 2 lookups 1 agent 0 stale 0"
check "the same slot every time" test "$(awk '$2 == "slot" {print $3}' <<<"$out" | sort -u)" = "$S1"

K4=u/USER/openai/$U4
pids=()
for i in 1 2 3 4; do peer "+$K4" >"$WORK/race.$i" & pids+=($!); done
wait "${pids[@]}" # not the agent, also a job of this shell
check "four processes racing for one new key get one slot" \
	test "$(cat "$WORK"/race.* | awk '$2 == "slot" {print $3}' | sort -u | wc -l)/$(cat "$WORK"/race.* | grep -c ' slot ')" = 1/4
check "and lt_keyidx agrees" test "$(slot_in_map "$K4")" = "$(awk '$2 == "slot" {print $3; exit}' "$WORK/race.1")"

UP=$(tr a-f A-F <<<"$U2")
out=$(peer "u/USER/openai/$UP"); rc=$?
check "a key in another spelling is refused as invalid (exit 5: $(head -1 <<<"$out"))" test "$rc" = 5
out=$(peer "x/USER/openai/$U2"); rc=$?
check "not a bucket key: refused (exit 5)" test "$rc" = 5
out=$(peer "u/USER/nosuchprovider/$U2"); rc=$?
check "an unknown provider: refused (exit 5)" test "$rc" = 5
out=$(peer "k/lk_00000000deadbeef"); rc=$?
check "an unknown API key: no quota (exit 3: $(head -1 <<<"$out"))" test "$rc" = 3
out=$(inns timeout 20 "$PEER" resolve "$PIN" "$AGENT_API" "Bearer $T1" "u/USER/openai/$U2"); rc=$?
check "a USER credential cannot make buckets (exit 6: $(head -1 <<<"$out"))" test "$rc" = 6
check "and none of these is in lt_keyidx" test -z "$(slot_in_map "u/USER/openai/$UP")$(slot_in_map \
	"u/USER/nosuchprovider/$U2")$(slot_in_map k/lk_00000000deadbeef)$(slot_in_map "u/USER/openai/$U2")"

# kill -9 the agent: every known key still resolves, a new one waits for it
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
out=$(peer "$K1"); rc=$?
check "agent killed -9: a known key still resolves, to the same slot" \
	test "$rc/$(awk '$2 == "slot" {print $3; exit}' <<<"$out")" = "0/$S1"
K3=u/USER/openai/$U3
out=$(peer "$K3"); rc=$?
check "a new key is refused with EAGAIN (exit 4: $(head -1 <<<"$out"))" test "$rc" = 4
check "and nothing half-made is in lt_keyidx" test -z "$(slot_in_map "$K3")"
check "restart" start_agent
out=$(peer "+$K3"); rc=$?
check "the agent is back: the new key gets its slot ($(head -2 <<<"$out" | tr "\n" " "))" test "$rc" = 0 -a -n "$(slot_in_map "$K3")"
out=$(peer "$K1"); rc=$?
check "and the old one kept its slot" test "$(awk '$2 == "slot" {print $3; exit}' <<<"$out")" = "$S1"
# Last, as it upsets the agent too: a slot given to another key (reclaim) bumps lt_usage[slot].gen: a cached
# entry whose generation no longer matches is not served from the cache.
usage_gen_bump() { # SLOT: gen += 1 (the counters are zeroed, as on reuse)
	local g k="$(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24))"
	g=$(timeout 20 bpftool map lookup pinned "$PIN/lt_usage" key $k -j |
		jq -r '.formatted.value.gen')
	g=$((g + 1))
	timeout 20 bpftool map update pinned "$PIN/lt_usage" key $k \
		value $(printf ' 0%.0s' $(seq 24)) $((g & 255)) $((g >> 8 & 255)) $((g >> 16 & 255)) \
		$((g >> 24)) 0 0 0 0 >&2
}
peer "$K1" @sleep:3 "$K1" >"$WORK/stale" &
ppid=$!
sleep 1.5
usage_gen_bump "$S1"
wait $ppid
check "a cached entry of a slot whose generation moved is dropped, not served ($(tail -1 "$WORK/stale"))" \
	test "$(tail -1 "$WORK/stale")" = "hits 0 lookups 2 agent 0 stale 1"

tap_done
