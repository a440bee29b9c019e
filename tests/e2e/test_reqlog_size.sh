#!/usr/bin/env bash
# test_reqlog_size.sh - the request log's byte bound (issue #11 item 2, "retention by age and
# by size"): token.request_log_max_bytes keeps requests.db (page_count * page_size) under it
# while records stream in, deleting the oldest rows first and keeping the newest; a bound
# lowered at a restart shrinks the file of an idle agent, converting a database made without
# incremental vacuum once; on a full disk (a 3 MiB tmpfs as the state dir) the agent says so
# in one clear line, stays up, keeps answering, lowers the bound below the size it filled at
# and keeps storing the newest records. Records come from lt_reqlog_tool, which writes the
# pinned ring as leaky-gateway does. Prints TAP.
set -u
TOPIC=rlsz
EXTRA_CLEANUP=full_cleanup
full_cleanup() {
	[ -n "${FULL:-}" ] && mountpoint -q "$FULL" && umount -l "$FULL"
	[ -n "${FIRST_STATE:-}" ] && rm -rf "$FIRST_STATE"
	[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
	return 0
}
. "$(dirname "$0")/agent_env.sh"
TOOL=$ROOT/build/san/tests/lt_reqlog_tool
U1=00000000-0000-0000-0000-00000000b5b1
M=$WORK/metrics
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
met() { inns curl -s -o "$M" "$BASE/metrics"; }
v() { awk -v n="$1" '$1 == n { print $2 }' "$M"; }
# wait_consumed N: until the agent has read N records from the ring and written them (30 s)
wait_consumed() {
	for _ in $(seq 300); do
		met
		[ "$(v lt_reqlog_consumed_total)" -ge "$1" ] 2>/dev/null &&
			[ "$(v lt_reqlog_backlog)" = 0 ] && return 0
		sleep 0.1
	done
	echo "# consumed $(v lt_reqlog_consumed_total), want $1" >&2
	return 1
}
# the writer has committed everything it read since it started: stored + dropped =
# consumed - CBASE (lt_reqlog_consumed_total is the pinned ring's, across agents) (30 s)
CBASE=0
wait_written() {
	local s d c
	for _ in $(seq 300); do
		met
		c=$(v lt_reqlog_consumed_total)
		s=$(v lt_reqlog_stored_total)
		d=$(awk '$1 ~ /^lt_reqlog_store_dropped_total/ { t += $2 } END { print t + 0 }' "$M")
		[ -n "$c" ] && [ "$((s + d))" -ge "$((c - CBASE))" ] && return 0
		sleep 0.1
	done
	echo "# consumed $c, stored $s, dropped $d" >&2
	return 1
}
# rows of the request log as the admin sees them: count, newest and oldest request id
rows() {
	python3 - "$STATE/requests.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
n, = db.execute("SELECT count(*) FROM requests").fetchone()
new = db.execute("SELECT request_id FROM requests ORDER BY id DESC LIMIT 1").fetchone()
old = db.execute("SELECT request_id FROM requests ORDER BY id LIMIT 1").fetchone()
print(n, new[0] if new else "-", old[0] if old else "-")
PY
}
dbsize() { stat -c %s "$STATE/requests.db"; }
# the largest size requests.db had while the sampler ran (it samples every 20 ms)
sample() {
	local max=0 s
	while :; do
		s=$(stat -c %s "$STATE/requests.db" 2>/dev/null || echo 0)
		[ "$s" -gt "$max" ] && max=$s && echo "$max" >"$WORK/max"
		sleep 0.02
	done
}
put() { timeout 60 "$TOOL" put "$PIN" "$@" >/dev/null; }
LONG=$(printf 'm%.0s' $(seq 60)) # a 60-byte model name: rows of some 500 bytes

# ---- the bound holds while records stream in
"$AGENT" print-config | jq '.token.request_log_rows = 10000000
	| .token.request_log_max_bytes = "2MiB" | .token.request_log_consume_rate = 0' >"$WORK/agent.json"
check "agent attaches with request_log_max_bytes 2MiB" start_agent --config "$WORK/agent.json"
met
eq "/metrics: lt_reqlog_db_max_bytes is the bound" "$(v lt_reqlog_db_max_bytes)" 2097152
echo 0 >"$WORK/max"
sample &
SAMPLER=$!
total=0
for r in $(seq 12); do
	put 2000 id=r$r provider=openai model="$LONG" user=$U1 in=10 out=20
	total=$((total + 2000))
	wait_consumed $total && wait_written || break
done
check "24,000 records read from the ring" wait_written
kill "$SAMPLER"
wait "$SAMPLER" 2>/dev/null
SAMPLER=
max=$(cat "$WORK/max")
read -r n newest oldest <<<"$(rows)"
met
echo "# 24000 records of ~500 bytes under a 2 MiB bound: the file peaked at $max bytes, is $(dbsize) now (-wal $(stat -c %s "$STATE/requests.db-wal" 2>/dev/null || echo 0)); $n rows kept, $(v lt_reqlog_size_deleted_total) deleted for size"
check "requests.db never grew past 2 MiB while they streamed in (peak $max bytes)" \
	test "$max" -gt 0 -a "$max" -le 2097152
check "and is under it now ($(dbsize) bytes)" test "$(dbsize)" -le 2097152
eq "every record was stored (none dropped)" "$(v lt_reqlog_stored_total)" 24000
eq "the newest row is the last record put" "$newest" r12-1999
check "the oldest rows are gone (the oldest kept is $oldest, not r1-0)" test "$oldest" != r1-0
check "a few thousand rows fit ($n): the bound does not empty the log" test "$n" -ge 2000
eq "rows kept + rows deleted for size = records stored" \
	"$((n + $(v lt_reqlog_size_deleted_total)))" 24000
# the file changes at a checkpoint (the next commit, or the idle writer's within a second)
for _ in $(seq 50); do
	met
	[ "$(v lt_reqlog_db_bytes)" = "$(dbsize)" ] && break
	sleep 0.1
done
eq "/metrics: lt_reqlog_db_bytes is the file's size" "$(v lt_reqlog_db_bytes)" "$(dbsize)"
req GET "/api/v1/logs?limit=1" "$(mint --sub admin-1 --roles ADMIN)"
eq "GET /api/v1/logs: the newest first" "$STATUS $(jqb '.items[0].request_id')" "200 r12-1999"
walsz() { stat -c %s "$STATE/requests.db-wal" 2>/dev/null || echo 0; }
for _ in $(seq 50); do
	[ "$(walsz)" -le 262144 ] && break
	sleep 0.1
done
check "idle, the -wal is cut back under 1/8 of the bound within a second or two ($(walsz) bytes)" \
	test "$(walsz)" -le 262144

# ---- a lower bound at a restart, on a database made without incremental vacuum
stop_agent
python3 - "$STATE/requests.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA auto_vacuum=NONE")
db.execute("VACUUM")
assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
PY
"$AGENT" print-config | jq '.token.request_log_rows = 10000000
	| .token.request_log_max_bytes = 1048576' >"$WORK/agent.json"
check "agent restarts with a 1 MiB bound" start_agent --config "$WORK/agent.json"
check "it converts the older database to incremental vacuum once, and says so" \
	grep -q 'converted to incremental vacuum' "$LOG"
for _ in $(seq 50); do
	[ "$(dbsize)" -le 1048576 ] && break
	sleep 0.1
done
read -r n2 newest oldest <<<"$(rows)"
check "idle, the file shrinks under the new bound within a second or two ($(dbsize) bytes)" \
	test "$(dbsize)" -le 1048576
check "keeping the newest rows ($n2 of $n, newest $newest)" test "$newest" = r12-1999 -a "$n2" -lt "$n" -a "$n2" -ge 500
"$AGENT" print-config | jq '.token.request_log_max_bytes = 1000' >"$WORK/bad.json"
bad=$("$AGENT" check-config --config "$WORK/bad.json" 2>&1)
check "check-config refuses a bound under 1 MiB, naming the field ($bad)" \
	grep -q 'request_log_max_bytes.*1MiB to 1TiB' <<<"$bad"
"$AGENT" print-config | jq '.token.request_log_max_bytes = "2 MiB"' >"$WORK/bad.json"
bad=$("$AGENT" check-config --config "$WORK/bad.json" 2>&1)
check "and a size it cannot read" grep -q 'request_log_max_bytes' <<<"$bad"
"$AGENT" print-config | jq '.token.request_log_max_bytes = "512GiB"' >"$WORK/ok.json"
check "\"512GiB\" is a size it reads" "$AGENT" check-config --config "$WORK/ok.json"
check "--help lists token.request_log_max_bytes and its default" \
	bash -c "'$AGENT' --help | grep -A1 '^  token.request_log_max_bytes' | grep -q '\[256MiB\]'"
stop_agent
check "no sanitizer report so far" not grep -q 'runtime error\|AddressSanitizer' "$LOG"

# ---- a full disk: the state dir on a 3 MiB tmpfs, the bound (256 MiB) larger than the disk
FIRST_STATE=$STATE
FULL=$WORK/full
mkdir -p "$FULL"
mount -t tmpfs -o size=3m,mode=0700 tmpfs "$FULL"
STATE=$FULL/state
mkdir -m 0700 "$STATE"
# 1 MiB of it taken by something else, given back once the disk is full
head -c 1048576 /dev/zero >"$FULL/filler"
"$AGENT" print-config | jq '.token.request_log_rows = 10000000 | .token.request_log_consume_rate = 0' >"$WORK/agent.json"
check "agent starts on a 3 MiB tmpfs, default bound (256 MiB)" start_agent --config "$WORK/agent.json"
TA=$(mint --sub admin-1 --roles ADMIN)
T1=$(mint --sub $U1 --roles USER)
req POST /api/v1/tokens/consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
eq "a consume before the disk fills (the user's bucket exists from now on)" "$STATUS" 200
met
CBASE=$(v lt_reqlog_consumed_total)
total=$CBASE
for r in $(seq 8); do
	put 2000 id=f$r provider=openai model="$LONG" user=$U1 in=10 out=20
	total=$((total + 2000))
	wait_consumed $total && wait_written || break
	grep -q 'the disk is full' "$LOG" && break
done
check "the disk filled, and the agent said so in one clear line" \
	grep -q 'request log: .*requests.db: the disk is full at [0-9]* bytes (ENOSPC); requests.db is kept under' "$LOG"
grep 'disk is full' "$LOG" | head -2 | sed 's/^/# /'
check "the agent is still running" kill -0 "$AGENT_PID"
STATUS=$(inns curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
eq "/healthz answers" "$STATUS" 200
req POST /api/v1/tokens/consume "$T1" "{\"userId\":\"$U1\",\"provider\":\"openai\",\"tokens\":1}"
eq "the consume API still decides (200)" "$STATUS" 200
met
lowered=$(v lt_reqlog_db_max_bytes)
check "the bound in force dropped under the disk's size ($lowered bytes)" test "$lowered" -lt 3145728
met
dropped=$(awk '$1 ~ /^lt_reqlog_store_dropped_total/ { t += $2 } END { print t + 0 }' "$M")
check "records that found no room are counted in lt_reqlog_store_dropped_total ($dropped)" test "$dropped" -gt 0
# the space comes back: the writer resumes by itself, under the lowered bound
rm "$FULL/filler"
put 50 id=after provider=openai model="$LONG" user=$U1
total=$((total + 50))
wait_consumed $total
stored0=$(v lt_reqlog_stored_total)
for _ in $(seq 100); do
	read -r n3 newest oldest <<<"$(rows)"
	[ "$newest" = after-49 ] && break
	sleep 0.1
done
eq "records put after the disk filled are stored: the newest row is the last one put" "$newest" after-49
check "and requests.db is under the lowered bound ($(dbsize) <= $lowered)" test "$(dbsize)" -le "$lowered"
req GET "/api/v1/logs?limit=1" "$TA"
eq "GET /api/v1/logs answers with it" "$STATUS $(jqb '.items[0].request_id')" "200 after-49"
met
echo "# full disk: stored $stored0, dropped $(awk '$1 ~ /^lt_reqlog_store_dropped_total/ { t += $2 } END { print t + 0 }' "$M"), $n3 rows kept, file $(dbsize) bytes, tmpfs $(df --output=used,size -B1 "$FULL" | tail -1)"
# (the -wal is not cut back while the disk stays full: a checkpoint must first grow
# requests.db to what the -wal holds; it is, once there is room: see above)
ls -l "$STATE" | sed 's/^/# /'
stop_agent
check "it stops cleanly" test -z "$AGENT_PID"
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
