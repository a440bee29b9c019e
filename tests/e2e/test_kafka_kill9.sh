#!/usr/bin/env bash
# test_kafka_kill9.sh - an agent killed with -9 loses no usage event (issue #10). The broker is
# down, so a backlog waits in the outbox (committed, synchronous=FULL); more records are read
# from the ring while requests.db is locked by another process, so the writer cannot commit
# them (they are read, not committed). kill -9, then the broker comes back and the agent is
# started again: the outbox drains, the uncommitted records are read again from the pinned
# ring (the committed ring position is kept with the batch), and after deduplication every
# record arrives exactly once. Prints TAP.
set -u
TOPIC=kfk9
. "$(dirname "$0")/kafka_env.sh"
NA=400 NB=60
LOCK_PID=

start_mock || exit 1
kafka_config
start_agent --config "$CFG" || { echo "Bail out! the agent did not start"; exit 1; }
check "the mock's broker goes down" mock down all
put $NA provider=openai in=5 out=6 latency_us=1000 user=u-a id=a
check "broker down: a backlog of $NA committed events" wait_for lt_outbox_backlog $NA

# another process holds requests.db's write lock: the agent's writer reads on, commits nothing
python3 - "$STATE/requests.db" "$WORK/locked" <<'EOF' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(60)
EOF
LOCK_PID=$!
for _ in $(seq 100); do [ -e "$WORK/locked" ] && break; sleep 0.1; done
c0=$(awk '{ print $6 }' <<<"$(timeout 10 "$TOOL" ctl "$PIN")")
put $NB provider=openai in=5 out=6 latency_us=1000 user=u-b id=b
for _ in $(seq 100); do
	c=$(awk '{ print $6 }' <<<"$(timeout 10 "$TOOL" ctl "$PIN")")
	[ "$c" -ge $((c0 + NB)) ] && break
	sleep 0.1
done
met
eq "store locked: the $NB records were read from the ring, none committed" \
	"$((c - c0)) $(v lt_outbox_appended_total)" "$NB $NA"

kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=
kill "$LOCK_PID" 2>/dev/null
wait "$LOCK_PID" 2>/dev/null
check "the broker comes back" mock up all
start_agent --config "$CFG" || { echo "Bail out! restart"; exit 1; }
check "restart: the records read but not committed are read again" \
	grep -q "reading again $NB records" "$LOG"
check "restart: the $NB records reach the outbox" wait_for lt_outbox_appended_total "$NB"
check "restart: the outbox drains" wait_for lt_outbox_backlog 0 300

OUT=$WORK/out.jsonl
consume "$OUT"
eq "after deduplication, every record once ($((NA + NB)))" "$(distinct "$OUT")" $((NA + NB))
eq "every request id exactly once" \
	"$(jq -r '.value.request_id' "$OUT" | sort -u | wc -l) $(jq -r '[.headers.ce_id, .value.request_id] | @tsv' "$OUT" | sort -u | cut -f2 | sort | uniq -d | wc -l)" \
	"$((NA + NB)) 0"
req GET "/api/v1/admin/requests?limit=1000" "$(mint --sub admin-1 --roles ADMIN)"
eq "the request log has each record once too" \
	"$(jqb '[.requests[].requestId] | length, (unique | length)' | paste -sd' ')" \
	"$((NA + NB)) $((NA + NB))"
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$LOG"
tap_done
