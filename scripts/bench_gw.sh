#!/usr/bin/env bash
# bench_gw.sh - the proxy row of `make bench` (issue #9, PROBE-NOTES.md §10 harness):
# leaky-gateway (build/leaky-gateway, plain forwarding) vs nginx proxy_pass with upstream
# keepalive vs the upstream alone, all in front of one nginx `return 200` upstream (a 204-byte
# JSON body), keep-alive on both sides. Load: wrk -t2 -c64 -d10s --latency after a 2 s warm-up;
# the load generator shares the cores. Prints req/s, p50, p99 and the proxy's CPU µs per request
# (utime+stime of all its processes from /proc/<pid>/stat), then the ratios against nginx.
# Figures drift ±20% between runs on a shared VM: compare the ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GW=${GW:-$ROOT/build/leaky-gateway}
SECS=${GW_BENCH_SECS:-10}
DIR=$(mktemp -d /tmp/lt-benchgw-XXXXXX)
UPORT=$((20000 + RANDOM % 10000))
NPORT=$((UPORT + 1))
GPORT=$((UPORT + 2))
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$DIR/up.pid" ] && kill "$(cat "$DIR/up.pid")" 2>/dev/null
	[ -f "$DIR/px.pid" ] && kill "$(cat "$DIR/px.pid")" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT
for t in nginx wrk "$GW"; do
	command -v "$t" >/dev/null || { echo "bench_gw: $t is missing (make deps; make all)" >&2; exit 1; }
done
BODY='{"id":"chatcmpl-bench","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}'
BODY=${BODY:0:204}

nginx_conf() { # name, workers, server block
	cat >"$DIR/$1.conf" <<EOF
user root;
worker_processes $2;
daemon on;
pid $DIR/$1.pid;
error_log $DIR/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $DIR/$1-body;
  proxy_temp_path $DIR/$1-proxy;
  fastcgi_temp_path $DIR/$1-fcgi;
  uwsgi_temp_path $DIR/$1-uwsgi;
  scgi_temp_path $DIR/$1-scgi;
  keepalive_requests 1000000;
  $3
}
EOF
}
nginx_conf up 1 "server { listen 127.0.0.1:$UPORT; location / { default_type application/json; return 200 '$BODY'; } }"
nginx_conf px auto "upstream u { server 127.0.0.1:$UPORT; keepalive 64; }
  server { listen 127.0.0.1:$NPORT;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -c "$DIR/up.conf"
nginx -c "$DIR/px.conf"
cat >"$DIR/gw.json" <<EOF
{"services": {"up": {"urls": ["http://127.0.0.1:$UPORT"]}},
 "routes": [{"prefix": "/", "service": "up"}]}
EOF
"$GW" --config "$DIR/gw.json" --listen "127.0.0.1:$GPORT" 2>"$DIR/gw.log" &
GW_PID=$!
PIDS+=("$GW_PID")
for port in $UPORT $NPORT $GPORT; do
	for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# ticks (utime+stime) of a set of pids
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else if (v ~ /s$/) print v * 1000; else print v }'; }
HZ=$(getconf CLK_TCK)

# run NAME PORT PIDS...: prints "name rps p50ms p99ms cpu_us_per_req"
run() {
	local name=$1 port=$2 out t0 t1 rps p50 p99 req cpu
	shift 2
	wrk -t2 -c64 -d2s "http://127.0.0.1:$port/v1/x" >/dev/null 2>&1 || true
	t0=$(ticks "$@")
	out=$(wrk -t2 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$port/v1/x")
	t1=$(ticks "$@")
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	req=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	if [ $# -gt 0 ] && [ "$req" -gt 0 ]; then
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$req" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
	else
		cpu=-
	fi
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "bench_gw: $name answered non-2xx: $(grep Non-2xx <<<"$out")" >&2
	fi
	echo "$name $rps $p50 $p99 $cpu"
}
gw_pids() { echo "$GW_PID $(pgrep -P "$GW_PID" | tr '\n' ' ')"; }
nginx_pids() { echo "$(cat "$DIR/px.pid") $(pgrep -P "$(cat "$DIR/px.pid")" | tr '\n' ' ')"; }

echo "proxy row: wrk -t2 -c64 -d${SECS}s --latency, 2 s warm-up, upstream nginx return 200 (${#BODY} B), $(nproc) cores"
# shellcheck disable=SC2046
G=$(run leaky-gateway "$GPORT" $(gw_pids))
# shellcheck disable=SC2046
N=$(run nginx-proxy "$NPORT" $(nginx_pids))
U=$(run upstream-alone "$UPORT")
printf '%-16s %10s %9s %9s %14s\n' contestant req/s p50_ms p99_ms cpu_us/req
for l in "$G" "$N" "$U"; do
	# shellcheck disable=SC2086
	printf '%-16s %10s %9s %9s %14s\n' $l
done
read -r _ grps _ gp99 gcpu <<<"$G"
read -r _ nrps _ np99 ncpu <<<"$N"
read -r _ urps _ _ _ <<<"$U"
awk -v g="$grps" -v n="$nrps" -v u="$urps" -v gp="$gp99" -v np="$np99" -v gc="$gcpu" -v nc="$ncpu" 'BEGIN {
	printf "ratios: gateway/nginx req/s %.2fx (target >= 1.2), CPU/req %.2fx (target <= 0.8), p99 %.2fx (target <= 1); gateway/upstream-alone req/s %.2fx\n", g / n, gc / nc, gp / np, g / u }'
