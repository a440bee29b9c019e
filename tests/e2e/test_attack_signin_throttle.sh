#!/usr/bin/env bash
# test_attack_signin_throttle.sh - the failed-sign-in throttle of POST /api/v1/auth/token
# (agent/signin.c) holds against an attacker with more than one source address: an address
# that failed LT_SIGNIN_FAILS (20) times gets 429 whatever other addresses do meanwhile (the
# direct-mapped table let a second address in the same slot reset the first one's count: two
# addresses alternating got unlimited guesses), and failures spread over many addresses are
# bounded too (once the table is full of live entries, new addresses share one count).
# Prints TAP.
set -u
TOPIC=atkthr
. "$(dirname "$0")/agent_env.sh"
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
check "agent attaches" start_agent

# POST a wrong sign-in code from each source address given (127/8 is all on lo), in order;
# prints the statuses, one per line
cat >"$WORK/fail.py" <<'PY'
import http.client, sys
port = int(sys.argv[1])
body = '{"signin_code":"' + 'z' * 43 + '"}'
for src in sys.argv[2:]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(src, 0))
    c.request("POST", "/api/v1/auth/token", body, {"Content-Type": "application/json"})
    print(c.getresponse().status)
    c.close()
PY
# two addresses in one slot of the old table (FNV-1a of the v4-mapped address, mod 256)
read -r A B < <(python3 - <<'PY'
def slot(ip):
    h = 2166136261
    for b in bytes(10) + b'\xff\xff' + bytes(int(x) for x in ip.split('.')):
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % 256
a = '127.0.9.1'
print(a, next(ip for ip in ('127.0.%d.%d' % (j, i) for j in range(10, 250) for i in range(1, 255))
              if slot(ip) == slot(a)))
PY
)
args=()
for _ in $(seq 25); do args+=("$A" "$B"); done
out=$(inns python3 "$WORK/fail.py" "$PORT" "${args[@]}")
# the odd lines are A's attempts: 20 failures, then 429 for the rest of the window
eq "two addresses alternating (one slot of the old table): each is refused after its 20 failures" \
	"$(awk 'NR % 2 == 1' <<<"$out" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "401:20 429:5 "
eq "(and so is the other one)" \
	"$(awk 'NR % 2 == 0' <<<"$out" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "401:20 429:5 "

# one failure from each of 1100 addresses (127.1.x.y): the table holds 1024 live entries (A
# and B hold two of them), the addresses after them share one count of 20, then they wait
args=()
for i in $(seq 0 1099); do args+=("127.1.$((i / 250)).$((i % 250 + 1))"); done
out=$(inns python3 "$WORK/fail.py" "$PORT" "${args[@]}")
eq "1100 addresses failing once each: 1022 + 20 failures answered, the other 58 get 429" \
	"$(sort <<<"$out" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "401:1042 429:58 "
req GET /healthz ""
eq "an address that never failed still reaches the agent" "$STATUS" 200
stop_agent
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$LOG"
tap_done
