#!/usr/bin/env bash
# test_attack_gw_metrics_slowloris.sh - silent clients cannot keep a scrape from the gateway's
# metrics listener (gateway/stats.c): the master read one connection at a time, up to 1 s
# each, so 100 silent connections queued a real scrape behind them for 19 s (past any
# Prometheus scrape_timeout). Now it reads them side by side. Also what the listener answers
# to heads that never end, bad heads, HEAD and pipelined requests while under that load.
# Prints TAP.
set -u
TOPIC=atkmet
. "$(dirname "$0")/gw_env.sh"
MPORT=18189
MURL=http://127.0.0.1:$MPORT/metrics

agent_config ''
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
cat >"$WORK/gateway.json" <<JSON
{
  "listen": "127.0.0.1:$GW_PORT",
  "workers": 1,
  "metrics": {"listen": "127.0.0.1:$MPORT"},
  "providers": [{"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:$STUB_PORT"}],
  "models": [{"pattern": "*", "providers": ["openai"]}],
  "admission": { "pin_dir": "$PIN", "agent": "127.0.0.1:$PORT", "state_dir": "$STATE" }
}
JSON
check "gateway starts (metrics listener)" start_gateway

# 100 connections that never send a byte, each opened again when the gateway cuts it,
# for $2 seconds; prints how many it opened (stderr)
cat >"$WORK/silent.py" <<'PY'
import select, socket, sys, time
port, n, end = int(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
socks, opened = [], 0
while time.time() < end:
    while len(socks) < n:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            print("silent: connect: %s after %d" % (e, opened), file=sys.stderr)
            s.close()
            break
        socks.append(s)
        opened += 1
    for s in select.select(socks, [], [], 0.05)[0]:
        if not s.recv(4096):
            socks.remove(s)
            s.close()
print("silent connections opened:", opened, file=sys.stderr)
PY
# raw BYTES: what the listener answers to these bytes (its status line, or "cut")
raw() {
	inns python3 - "$MPORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
data = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
except (socket.timeout, ConnectionResetError):
    pass
print(data.split(b"\r\n")[0].decode() if data else "cut", data.count(b"HTTP/1.1 "))
PY
}

nsenter --net=/run/netns/$NS python3 "$WORK/silent.py" "$MPORT" 100 30 &
SIL=$!
GW_EXTRA_PIDS+=("$SIL")
sleep 2
good=0
for _ in 1 2 3; do
	s=$(inns curl -s -o "$WORK/m.txt" -w '%{http_code}' --max-time 5 "$MURL")
	[ "$s" = 200 ] && grep -q '^lt_gateway_workers 1$' "$WORK/m.txt" && good=$((good + 1))
done
check "100 silent connections held: 3 scrapes of 3 answered (200, within 5 s each)" test "$good" = 3
check "HEAD /metrics: 200, once" test "$(raw 'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n')" = "HTTP/1.1 200 OK 1"
check "two pipelined GETs: one answer (Connection: close)" \
	test "$(raw 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')" = "HTTP/1.1 200 OK 1"
check "a head that never ends (9000 bytes): 400" \
	test "$(raw "GET /metrics HTTP/1.1\\r\\nX: $(printf 'a%.0s' $(seq 9000))")" = "HTTP/1.1 400 Bad Request 1"
check "a malformed head: 400" test "$(raw 'GET\r\n\r\n')" = "HTTP/1.1 400 Bad Request 1"
check "POST /metrics: 405" test "$(raw 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')" = "HTTP/1.1 405 Method Not Allowed 1"
gwreq GET /v1/models "" ""
check "the gateway's own traffic is served meanwhile (got $STATUS)" test "$STATUS" != 000
kill "$SIL" 2>/dev/null
wait "$SIL" 2>/dev/null
GW_EXTRA_PIDS=()
stop_gateway
check "no sanitizer report" not grep -q 'runtime error\|AddressSanitizer' "$GW_LOG" "$LOG"
tap_done
