#!/usr/bin/env bash
# test_gw_proxy.sh - leaky-gateway's data path in front of a real upstream (tests/e2e/gw_upstream.c)
# on the loopback of a private network namespace: keep-alive on both sides, bodies framed by
# Content-Length or chunked pass through byte for byte, SSE arrives event by event, hop-by-hop
# fields are dropped, X-Request-Id / traceparent are propagated or generated, upstream timeouts
# answer 502/504 problem+json and never hang, smuggling shapes and malformed heads get 400 and a
# close, a huge head 431, slowloris is closed at the header timeout while others are served, a
# stale pooled connection is retried once, unhealthy upstreams are skipped, the connection bound
# holds, SIGHUP under load loses no request and a bad config is refused, kill -9 of a worker is
# replaced, SIGTERM drains. Every step is bounded by `timeout`. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
GW=${GW:-$ROOT/build/san/leaky-gateway}
UP=$ROOT/build/san/tests/gw_upstream
PY="python3 $ROOT/tests/e2e/gw_client.py"
NS=ltgw-$$
DIR=$(mktemp -d /tmp/lt-gw-XXXXXX)
GP=19100
B=http://127.0.0.1:$GP
GW_PID= U1_PID= U2_PID= U3_PID=
inns() { nsenter --net=/run/netns/$NS "$@"; }
cleanup() {
	if [ "$FAILED" -gt 0 ]; then
		echo "# gateway log (tail):" >&2
		tail -40 "$DIR/gw.log" | sed 's/^/#   /' >&2
		[ -s "$DIR/load.err" ] && sed 's/^/# load: /' "$DIR/load.err" | sort | uniq -c | head >&2
	fi
	for p in $GW_PID $U1_PID $U2_PID $U3_PID; do kill -9 "$p" 2>/dev/null; done
	# the workers, if the master died first
	[ -n "$GW_PID" ] && pkill -9 -P "$GW_PID" 2>/dev/null
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root for a network namespace"
	exit 77
fi
for b in "$GW" "$UP"; do
	[ -x "$b" ] || { echo "Bail out! $b is missing (make all)"; exit 1; }
done
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

write_config() { # $1: extra route (JSON object) or empty; renamed into place (a reload
	# must never read a half-written file); SCHED: the workers' "scheduling", if set
	local sched=${SCHED:+\"scheduling\": \"$SCHED\",}
	cat >"$DIR/gw.json.tmp" <<EOF
{
  "workers": 2, $sched
  "limits": {"max_connections": 40},
  "timeouts": {"client_header_ms": 1000, "client_idle_ms": 5000, "drain_ms": 10000,
               "read_ms": 5000, "connect_ms": 1000},
  "services": {
    "up": {"urls": ["http://127.0.0.1:19101"]},
    "pair": {"urls": ["http://127.0.0.1:19103", "http://127.0.0.1:19102"],
             "health": {"path": "/health", "interval_ms": 200, "timeout_ms": 500}},
    "dead": {"urls": ["http://127.0.0.1:19109"]},
    "mixed": {"urls": ["http://127.0.0.1:19109", "http://127.0.0.1:19101"]}
  },
  "routes": [
    {"prefix": "/", "service": "up"},
    {"prefix": "/slow", "service": "up", "strip_prefix": true, "timeouts": {"read_ms": 500}},
    {"prefix": "/total", "service": "up", "strip_prefix": true, "timeouts": {"total_ms": 700}},
    {"prefix": "/dead", "service": "dead"},
    {"prefix": "/mixed", "service": "mixed", "strip_prefix": true, "retries": 1},
    {"prefix": "/pair", "service": "pair", "strip_prefix": true}${1:+,
    $1}
  ]
}
EOF
	mv "$DIR/gw.json.tmp" "$DIR/gw.json"
}
write_config ""

# nsenter, not the inns function: $! must be the process itself (nsenter execs it), not a
# subshell that a signal would kill instead
nsenter --net=/run/netns/$NS "$UP" 19101 >"$DIR/u1.log" 2>&1 &
U1_PID=$!
nsenter --net=/run/netns/$NS "$UP" 19102 --sick "$DIR/sick2" >"$DIR/u2.log" 2>&1 &
U2_PID=$!
# the health-checked pair is 19102 and 19103: checks never count as 19101's connections
nsenter --net=/run/netns/$NS "$UP" 19103 >"$DIR/u3.log" 2>&1 &
U3_PID=$!
nsenter --net=/run/netns/$NS "$GW" --config "$DIR/gw.json" --listen 127.0.0.1:$GP >"$DIR/gw.log" 2>&1 &
GW_PID=$!
for _ in $(seq 50); do
	inns curl -s -o /dev/null "$B/x" 2>/dev/null && break
	sleep 0.1
done
c() { inns timeout 10 curl -s "$@"; }
accepts() { grep -c accept "$DIR/u1.log"; }
# the scheduling policies of the workers (/proc/PID/stat field 41: 0 SCHED_OTHER, 3 SCHED_BATCH)
policies() { local p; for p in $(pgrep -P "$GW_PID" | sort); do awk '{printf "%s ", $41}' "/proc/$p/stat"; done; }

# --- the workers run SCHED_BATCH (config "scheduling", default "batch") ---
pol=$(policies)
check "the workers run SCHED_BATCH by default (policies: $pol)" [ "$pol" = "3 3 " ]
echo '{"scheduling": "fast", "services": {"up": {"urls": ["http://127.0.0.1:19101"]}}}' >"$DIR/bad.json"
out=$("$GW" --check --config "$DIR/bad.json" 2>&1)
expect_err "a bad \"scheduling\" is refused with its JSON pointer" $? "$out" '/scheduling: must be "batch" or "normal"'

# --- keep-alive on both sides ---
a0=$(accepts)
out=$(c -v "$B/k1" "$B/k2" "$B/k3" "$B/k4" "$B/k5" "$B/k6" 2>&1)
reused=$(grep -c 'Re-using existing connection' <<<"$out")
a1=$(accepts)
check "keep-alive to the client: one connection carries 6 requests ($reused reuses)" [ "$reused" -ge 5 ]
check "keep-alive to the upstream: 6 requests opened $((a1 - a0)) upstream connection(s)" \
	[ $((a1 - a0)) -le 1 ]

# --- bodies pass through byte for byte ---
for p in cl/300000 chunked/300000; do
	via=$(c "$B/$p" | md5sum) direct=$(c "http://127.0.0.1:19101/$p" | md5sum)
	check "response body /$p is byte-identical through the gateway" [ "$via" = "$direct" ]
done
te=$(c -D - -o /dev/null "$B/chunked/1000" | tr -d '\r' | grep -ci '^transfer-encoding: chunked')
check "a chunked response stays chunked" [ "$te" = 1 ]
head -c 200000 /dev/urandom >"$DIR/body"
via=$(c --data-binary @"$DIR/body" "$B/echo" | tail -c 200000 | md5sum)
check "a Content-Length request body arrives byte-identical" [ "$via" = "$(md5sum <"$DIR/body")" ]
# a chunked request body: its framing (sizes, an extension, a trailer) is passed unchanged
chunked='5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n'
req=$(printf "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n$chunked" | xxd -p | tr -d '\n')
out=$(inns timeout 10 $PY raw 127.0.0.1 $GP "$req")
want=$(printf "$chunked")
check "a chunked request body is forwarded with its framing unchanged" \
	grep -qF "$(printf '%s' "$want" | tail -c 40 | tr -d '\r')" <<<"$(tr -d '\r' <<<"$out")"

# --- SSE event by event ---
out=$(inns timeout 15 $PY sse 127.0.0.1 $GP /sse/5/300)
first=$(head -1 <<<"$out" | cut -d' ' -f1) last=$(tail -1 <<<"$out" | cut -d' ' -f1)
n=$(grep -c data: <<<"$out")
check "SSE: 5 events, the first at ${first}s, the last at ${last}s (not buffered to the end)" \
	[ "$n" = 5 ] && awk -v f="$first" -v l="$last" 'BEGIN { exit !(f < 0.5 && l - f > 0.9) }'

# --- hop-by-hop fields ---
req=$(printf 'GET /echo HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nUpgrade: h2c\r\nX-Kept: 1\r\n\r\n' | xxd -p | tr -d '\n')
out=$(inns timeout 10 $PY raw 127.0.0.1 $GP "$req")
check "request: Connection, the fields it names, Keep-Alive, TE, Proxy-*, Upgrade are dropped" \
	bash -c '! grep -qiE "^(x-secret|keep-alive|te|proxy-authorization|upgrade|connection):" <<<"$(tr -d "\r" <<<"$1" | sed -n "/^GET \/echo/,\$p")" && grep -q "^X-Kept: 1" <<<"$(tr -d "\r" <<<"$1")"' _ "$out"
out=$(c -D - -o /dev/null "$B/hop" | tr -d '\r')
check "response: Connection, the fields it names, Keep-Alive, Trailer, Proxy-Authenticate are dropped" \
	bash -c '! grep -qiE "^(x-hop|keep-alive|trailer|proxy-authenticate|connection):" <<<"$1" && grep -q "^X-Kept: 1" <<<"$1"' _ "$out"

# --- request id and traceparent ---
out=$(c -D "$DIR/h" -H 'X-Request-Id: test-id-42' -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' "$B/echo" | tr -d '\r')
check "X-Request-Id is propagated upstream and returned" \
	bash -c 'grep -q "^X-Request-Id: test-id-42$" <<<"$1" && tr -d "\r" <"$2" | grep -q "^X-Request-Id: test-id-42$"' _ "$out" "$DIR/h"
check "a valid traceparent is propagated" grep -q '^traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01$' <<<"$out"
out=$(c -D "$DIR/h" "$B/echo" | tr -d '\r')
rid=$(tr -d '\r' <"$DIR/h" | sed -n 's/^X-Request-Id: //p')
check "X-Request-Id is generated when absent ($rid), the same upstream and back" \
	bash -c '[[ "$1" =~ ^[0-9a-f]{32}$ ]] && grep -q "^X-Request-Id: $1$" <<<"$2"' _ "$rid" "$out"
check "traceparent is generated when absent" grep -qE '^traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$' <<<"$out"

# --- X-Forwarded-For: the client's address for our own services ---
out=$(c "$B/echo" | tr -d '\r')
check "X-Forwarded-For carries the client's address to a service" \
	grep -q '^X-Forwarded-For: 127.0.0.1$' <<<"$out"
out=$(c -H 'X-Forwarded-For: 203.0.113.7' -H 'X-Forwarded-For: 198.51.100.2' "$B/echo" | tr -d '\r')
check "an incoming X-Forwarded-For list is kept, the address appended, one field" \
	bash -c 'grep -q "^X-Forwarded-For: 203.0.113.7, 198.51.100.2, 127.0.0.1$" <<<"$1" &&
		[ "$(grep -ci "^X-Forwarded-For:" <<<"$1")" = 1 ]' _ "$out"

# --- upstream failures: 502/504 problem+json, never a hang ---
t0=$(date +%s%N)
code=$(c -o "$DIR/b" -w '%{http_code} %{content_type}' "$B/slow/hang")
ms=$((($(date +%s%N) - t0) / 1000000))
check "read timeout: 504 problem+json after ${ms} ms (route read_ms 500)" \
	bash -c '[ "$1" = "504 application/problem+json" ] && [ "$2" -lt 4000 ] && grep -q upstream-timeout "$3"' _ "$code" "$ms" "$DIR/b"
code=$(c -o "$DIR/b" -w '%{http_code} %{content_type}' "$B/dead/x")
check "connection refused: 502 problem+json" [ "$code" = "502 application/problem+json" ]
# round robin over a dead and a live URL, retries 1: idempotent methods are retried on the
# other URL, POST never (a worker alternates, so 8 POSTs over 2 workers meet the dead one)
codes=$(for _ in 1 2 3 4 5 6 7 8; do c -o /dev/null -w '%{http_code} ' "$B/mixed/x"; done)
check "retries: every GET reaches the live upstream ($codes)" [ "$codes" = "200 200 200 200 200 200 200 200 " ]
codes=$(for _ in 1 2 3 4 5 6 7 8; do c -o /dev/null -w '%{http_code} ' -d x "$B/mixed/x"; done)
check "retries: a POST is never retried ($codes)" grep -q 502 <<<"$codes"
t0=$(date +%s%N)
c -o /dev/null "$B/total/sse/50/100"
rc=$? ms=$((($(date +%s%N) - t0) / 1000000))
check "total timeout mid-stream: the client sees a truncated response (curl rc $rc) after ${ms} ms" \
	bash -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ] && [ "$2" -lt 4000 ]' _ "$rc" "$ms"

# --- malformed heads and smuggling shapes: 400 (or 501) and the connection closes ---
bad() { # name, status, raw request (printf format)
	local hex out
	hex=$(printf "$3" | xxd -p | tr -d '\n')
	out=$(inns timeout 10 $PY raw 127.0.0.1 $GP "$hex")
	check "$1: $2 and close" bash -c 'head -1 <<<"$1" | grep -q "^HTTP/1.1 $2 " && tail -1 <<<"$1" | grep -q "<EOF>$" && grep -q "problem+json" <<<"$1"' _ "$out" "$2"
}
bad "two Content-Length (equal)" 400 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc'
bad "Content-Length with Transfer-Encoding" 400 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
bad "Transfer-Encoding other than chunked" 501 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'
bad "Transfer-Encoding in HTTP/1.0" 400 'POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
bad "obs-fold" 400 'GET /echo HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n'
bad "bare LF" 400 'GET /echo HTTP/1.1\nHost: t\r\n\r\n'
bad "whitespace before colon" 400 'GET /echo HTTP/1.1\r\nHost : t\r\n\r\n'
bad "invalid token in a field name" 400 'GET /echo HTTP/1.1\r\nHost: t\r\nX(a): 1\r\n\r\n'
bad "no Host" 400 'GET /echo HTTP/1.1\r\n\r\n'
bad "bad chunk size" 400 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'
bad "chunk size overflow (2^64+5)" 400 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n'
big=$(head -c 20000 /dev/zero | tr '\0' a)
bad "a huge header" 431 "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: $big\r\n\r\n"
code=$(c -o /dev/null -w '%{http_code}' "$B/echo")
check "the gateway still serves after the bad requests" [ "$code" = 200 ]

# --- slowloris: closed at the header timeout (1 s), others served meanwhile ---
inns timeout 30 $PY slowloris 127.0.0.1 $GP 20 10 >"$DIR/slow.out" &
SL=$!
sleep 0.5
t0=$(date +%s%N)
code=$(c -o /dev/null -w '%{http_code}' "$B/echo")
ms=$((($(date +%s%N) - t0) / 1000000))
wait $SL
check "slowloris: another client is served meanwhile ($code in ${ms} ms)" \
	bash -c '[ "$1" = 200 ] && [ "$2" -lt 3000 ]' _ "$code" "$ms"
check "slowloris: every trickling connection is closed ($(cat "$DIR/slow.out"))" \
	grep -qE '^closed=20 of 20 after [0-8]\.' "$DIR/slow.out"

# --- a pooled connection the upstream dropped is retried once on a fresh one ---
out=$(c "$B/flaky" "$B/flaky")
check "stale pooled connection: the request is retried on a fresh connection ($out)" [ "$out" = freshfresh ]

# --- health checks: an unhealthy upstream is skipped ---
touch "$DIR/sick2"
sleep 0.8
ports=$(for _ in $(seq 8); do c "$B/pair/x"; echo; done | grep -o 'port=[0-9]*' | sort -u | tr '\n' ' ')
check "an upstream failing its health check is skipped ($ports)" [ "$ports" = "port=19103 " ]
check "the unhealthy upstream is logged" grep -q 'unhealthy' "$DIR/gw.log"
rm -f "$DIR/sick2"
sleep 0.8
ports=$(for _ in $(seq 8); do c "$B/pair/x"; echo; done | grep -o 'port=[0-9]*' | sort -u | tr '\n' ' ')
check "it is used again once healthy ($ports)" [ "$ports" = "port=19102 port=19103 " ]
check "the recovery is logged with its latency" grep -qE 'healthy again \([0-9]+ us\)' "$DIR/gw.log"

# --- the bound on open connections ---
out=$(inns timeout 20 $PY conns 127.0.0.1 $GP 120)
busy=$(sed -n 's/^busy=\([0-9]*\).*/\1/p' <<<"$out")
# 120 connections over 2 workers of 40: at least 40 are over a worker's bound
check "beyond limits.max_connections (40 per worker) a connection gets 503 ($out)" \
	[ "${busy:-0}" -ge 40 ]
sleep 0.3

# --- SIGHUP under load: no request lost; a bad config is refused ---
inns timeout 30 $PY load 127.0.0.1 $GP /echo 3 4 >"$DIR/load.out" 2>"$DIR/load.err" &
LP=$!
for i in 1 2 3 4 5; do
	if [ $((i % 2)) = 1 ]; then
		write_config '{"prefix": "/added", "service": "up", "strip_prefix": true}'
	else
		write_config ""
	fi
	sleep 0.4
	kill -HUP "$GW_PID"
done
wait $LP
write_config '{"prefix": "/added", "service": "up", "strip_prefix": true}'
kill -HUP "$GW_PID"
# both workers have it once two requests in a row (each a new connection) see it
for _ in $(seq 50); do
	[ "$(c "$B/added/x")$(c "$B/added/x")$(c "$B/added/x")" = "path=/x port=19101path=/x port=19101path=/x port=19101" ] && break
	sleep 0.1
done
read -r sent okc other errs < <(sed 's/[a-z]*=//g' "$DIR/load.out")
check "SIGHUP x5 under load: $sent requests, $okc answered 200, $other other, $errs errors" \
	bash -c '[ "$1" -gt 50 ] && [ "$1" = "$2" ] && [ "$3" = 0 ] && [ "$4" = 0 ]' _ "$sent" "$okc" "$other" "$errs"
out=$(c "$B/added/x")
check "the reloaded route table is in use ($out)" [ "$out" = "path=/x port=19101" ]
echo '{"routes": [{"prefix": "/", "service": "nope"}]}' >"$DIR/gw.json"
kill -HUP "$GW_PID"
for _ in $(seq 50); do grep -q 'reload refused' "$DIR/gw.log" && break; sleep 0.1; done
check "a bad config on reload is refused with a log line" grep -q 'reload refused.*unknown service' "$DIR/gw.log"
out=$(c "$B/added/x")
check "and the running config stays ($out)" [ "$out" = "path=/x port=19101" ]
SCHED=normal write_config '{"prefix": "/added", "service": "up", "strip_prefix": true}'
kill -HUP "$GW_PID"
for _ in $(seq 50); do [ "$(policies)" = "0 0 " ] && break; sleep 0.1; done
pol=$(policies)
check "\"scheduling\": \"normal\" on reload puts the workers back on SCHED_OTHER ($pol)" [ "$pol" = "0 0 " ]

# --- kill -9 of a worker: replaced ---
before=$(pgrep -P "$GW_PID" | sort | tr '\n' ' ')
victim=$(pgrep -P "$GW_PID" | head -1)
kill -9 "$victim"
for _ in $(seq 30); do
	after=$(pgrep -P "$GW_PID" | sort | tr '\n' ' ')
	[ "$(wc -w <<<"$after")" = 2 ] && ! grep -qw "$victim" <<<"$after" && break
	sleep 0.1
done
check "a worker killed with -9 is replaced (workers: $before-> $after)" \
	bash -c '[ "$(wc -w <<<"$1")" = 2 ] && ! grep -qw "$2" <<<"$1"' _ "$after" "$victim"
code=$(c -o /dev/null -w '%{http_code}' "$B/echo")
check "and requests are served after it" [ "$code" = 200 ]

# --- SIGTERM drains the in-flight stream, then exits ---
inns timeout 15 $PY sse 127.0.0.1 $GP /sse/8/200 >"$DIR/drain.out" &
SP=$!
# SIGTERM once the stream is under way (its first event is here)
for _ in $(seq 100); do grep -q data: "$DIR/drain.out" && break; sleep 0.05; done
kill -TERM "$GW_PID"
wait $SP
n=$(grep -c data: "$DIR/drain.out")
check "SIGTERM: the in-flight stream completes ($n of 8 events)" [ "$n" = 8 ]
for _ in $(seq 50); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM: the gateway exits after draining" not kill -0 "$GW_PID"
wait "$GW_PID"
rc=$?
GW_PID=
check "SIGTERM: exit status 0 and no sanitizer report (rc $rc)" \
	bash -c '[ "$1" = 0 ] && ! grep -q "ERROR: \(Address\|Leak\)Sanitizer\|runtime error" "$2"' _ "$rc" "$DIR/gw.log"
tap_done
