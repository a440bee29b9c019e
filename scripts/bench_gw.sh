#!/usr/bin/env bash
# bench_gw.sh - the gateway rows of `make bench` (issue #9 "Benchmark"; harness of
# PROBE-NOTES.md §10). Every contestant runs in front of ONE upstream process (nginx
# `return 200`, a 204-byte JSON body; leaky-stub for the stream row), keep-alive on both
# sides, inside a private network namespace (B); the load generator shares the 2 cores.
#   leaky-gateway  admission ON: a general API route with "key_limit", so every request is
#                  identified by its X-API-Key and takes 1 from r/USER/<key> in the pinned
#                  maps of a leaky-agent attached in its own namespace (A, reached over a
#                  veth only to make buckets); the key's limit admits everything;
#   nginx          limit_req keyed on $http_x_api_key (admits everything) + proxy_pass to
#                  an upstream { keepalive 64; } (worker_processes auto, as the gateway's
#                  one worker per CPU);
#   upstream alone the ceiling / the latency floor.
# Rows, each with its ratio against the reference measured in the same run:
#   1 proxied: req/s, p50, p99 (wrk -t2 -c64 --latency) and the proxy's CPU µs per request
#     (utime+stime of all its processes from /proc/<pid>/stat) and context switches per request
#     (/proc/<pid>/status: on this VM each costs microseconds), GW_BENCH_REPS paired rounds
#     in rotating order, the ratios are the median of the per-round ratios;
#   2 the reject path, every request over the limit: 429/s and CPU µs per 429 (nginx logs
#     nothing per reject either: error_log crit);
#   3 the added latency at a fixed GW_BENCH_RATE req/s (build/lt_loadgen, open loop, latency
#     from the scheduled send time), p50/p99 minus the upstream alone's;
#   4 SSE events per second through one connection (leaky-stub streaming N tokens with no
#     delay through the gateway's LLM route, admission and the stream's token count on);
#   5 memory of the proxy with 1,000 open client connections (lt_loadgen -c 1000): PSS
#     summed over its processes (RSS too; PSS counts shared pages once).
# No assertion: figures and ratios only. Figures drift ±20% on a shared VM: compare ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GW=${GW:-$ROOT/build/leaky-gateway}
AGENT=${AGENT:-$ROOT/build/leaky-agent}
STUB=${STUB:-$ROOT/build/leaky-stub}
LG=$ROOT/build/lt_loadgen
SECS=${GW_BENCH_SECS:-6}
REPS=${GW_BENCH_REPS:-3}
RATE=${GW_BENCH_RATE:-10000}
SSE_N=${GW_BENCH_SSE_TOKENS:-100000}
CONNS=${GW_BENCH_CONNS:-1000}
# GW_BENCH_ROWS: the rows to run (digits of 1-5), all by default; "12" is the req/s and 429 rows
ROWS=${GW_BENCH_ROWS:-12345}
row() { [[ $ROWS == *$1* ]]; }
if [ "$(id -u)" -ne 0 ]; then
	echo "bench_gw: needs root (network namespaces, the agent's BPF pins)" >&2
	exit 1
fi
for t in nginx wrk curl jq "$GW" "$AGENT" "$STUB" "$LG"; do
	command -v "$t" >/dev/null || { echo "bench_gw: $t is missing (make deps; make bench builds the rest)" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/lt-benchgw-XXXXXX)
NSA=ltbga$$ NSB=ltbgb$$ VA=ltva$$ VB=ltvb$$
PIN=/sys/fs/bpf/lt-benchgw-$$
AGENT_IP=10.251.0.1 B_IP=10.251.0.2 APORT=18190
UPORT=18100 NPORT=18101 GPORT=18102 SPORT=18103
PIDS=()
AGENT_PID=
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in up px; do [ -f "$DIR/$p.pid" ] && kill "$(cat "$DIR/$p.pid")" 2>/dev/null; done
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
	wait 2>/dev/null || true
	"$AGENT" --pin-dir "$PIN" --state-dir "$DIR/state" detach >/dev/null 2>&1 || true
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	rm -rf "$PIN" "$DIR"
}
trap cleanup EXIT
ina() { nsenter --net=/run/netns/$NSA "$@"; }
inb() { nsenter --net=/run/netns/$NSB "$@"; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NSA"
ip netns add "$NSB"
ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB"
ip -n "$NSA" addr add $AGENT_IP/30 dev "$VA"
ip -n "$NSB" addr add $B_IP/30 dev "$VB"
for n in "$NSA" "$NSB"; do ip -n "$n" link set lo up; done
ip -n "$NSA" link set "$VA" up
ip -n "$NSB" link set "$VB" up

# --- the agent (namespace A): pins and the bucket API; its XDP sees only the veth ---------
mkdir -p "$DIR/state"
"$AGENT" print-config | jq '
	.token.tiers.USER = {"*": {"capacity": 1000000000, "rate": "100000000/s"}}
	| .token.key_requests = {"USER": {"capacity": 100000000, "rate": "10000000/s"},
				 "ADMIN": {"capacity": 1, "rate": "1/d"}}
	| .token.provider_pools = {"*": {"capacity": 1000000000, "rate": "100000000/s"}}' >"$DIR/agent.json"
# nsenter execs the program, so $! is its pid (a backgrounded function would be a subshell)
nsenter --net=/run/netns/$NSA "$AGENT" --pin-dir "$PIN" --state-dir "$DIR/state" attach \
	--iface "$VA" --api $AGENT_IP:$APORT --config "$DIR/agent.json" >"$DIR/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do ina curl -s -o /dev/null "http://$AGENT_IP:$APORT/healthz" && break; sleep 0.1; done
TA=$("$AGENT" --state-dir "$DIR/state" mint-token --sub bench-admin --roles ADMIN)
newkey() { # TIER: a key of that tier (its own token limit admits everything)
	ina curl -sf -X POST -H "Authorization: Bearer $TA" -H 'Content-Type: application/json' \
		--data "{\"name\":\"bench\",\"owner\":\"00000000-0000-0000-0000-0000000b0001\",\"tier\":\"$1\",\"limits\":{\"capacity\":1000000000,\"rate\":\"100000000/s\"}}" \
		"http://$AGENT_IP:$APORT/api/v1/admin/keys" | jq -r .secret
}
KEY=$(newkey USER) # admitted: key_requests USER is far above any rate here
KEY_SPENT=$(newkey ADMIN) # key_requests ADMIN: 1 a day, spent by its first request
[ -n "$KEY" ] && [ -n "$KEY_SPENT" ] || { echo "bench_gw: the agent made no keys" >&2; sed 's/^/  /' "$DIR/agent.log" >&2; exit 1; }

# --- the contestants (namespace B) --------------------------------------------------------
BODY='{"id":"chatcmpl-bench","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}'
BODY=${BODY:0:204}
nginx_conf() { # name, workers, http block
	cat >"$DIR/$1.conf" <<EOF
user root;
worker_processes $2;
worker_rlimit_nofile 16384;
daemon on;
pid $DIR/$1.pid;
error_log $DIR/$1.err crit;
events { worker_connections 8192; }
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
  upstream s { server 127.0.0.1:$SPORT; keepalive 8; }
  limit_req_zone \$http_x_api_key zone=keys:10m rate=100000000r/s;
  limit_req_zone \$http_x_api_key zone=spent:1m rate=1r/m;
  limit_req_status 429;
  server { listen 127.0.0.1:$NPORT;
    proxy_http_version 1.1; proxy_set_header Connection \"\";
    location / { limit_req zone=keys burst=1000000 nodelay; proxy_pass http://u; }
    location /rej/ { limit_req zone=spent; proxy_pass http://u; }
    location /v1/chat/completions { limit_req zone=keys burst=1000000 nodelay;
      proxy_buffering off; proxy_pass http://s; } }"
inb nginx -c "$DIR/up.conf"
inb nginx -c "$DIR/px.conf"
nsenter --net=/run/netns/$NSB "$STUB" --listen 127.0.0.1:$SPORT --quiet >"$DIR/stub.log" 2>&1 &
PIDS+=($!)
# GW_BENCH_SCHED=normal|batch: the gateway's "scheduling" (its default when unset)
SCHED_JSON=${GW_BENCH_SCHED:+\"scheduling\": \"$GW_BENCH_SCHED\",}
cat >"$DIR/gw.json" <<EOF
{"listen": "127.0.0.1:$GPORT", $SCHED_JSON
 "limits": {"max_connections": 20000}, "timeouts": {"drain_ms": 1000},
 "services": {"up": {"urls": ["http://127.0.0.1:$UPORT"]}},
 "routes": [{"prefix": "/", "service": "up", "key_limit": true}],
 "providers": [{"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:$SPORT"}],
 "models": [{"pattern": "*", "providers": ["openai"]}],
 "admission": {"pin_dir": "$PIN", "agent": "$AGENT_IP:$APORT", "state_dir": "$DIR/state"}}
EOF
nsenter --net=/run/netns/$NSB "$GW" --config "$DIR/gw.json" >"$DIR/gw.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
for port in $UPORT $NPORT $GPORT $SPORT; do
	for _ in $(seq 50); do inb curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
st=$(inb curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "http://127.0.0.1:$GPORT/v1/x")
[ "$st" = 200 ] || { echo "bench_gw: the gateway answered $st with the bench key" >&2; sed 's/^/  /' "$DIR/gw.log" >&2; exit 1; }

# --- measuring ------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
# ticks (utime+stime) of a set of pids
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else if (v ~ /s$/) print v * 1000; else print v }'; }
gw_pids() { echo "$GW_PID $(pgrep -P "$GW_PID" | tr '\n' ' ')"; }
nginx_pids() { echo "$(cat "$DIR/px.pid") $(pgrep -P "$(cat "$DIR/px.pid")" | tr '\n' ' ')"; }
up_pids() { echo "$(cat "$DIR/up.pid") $(pgrep -P "$(cat "$DIR/up.pid")" | tr '\n' ' ')"; }
pids_of() { case $1 in gateway) gw_pids ;; nginx) nginx_pids ;; *) ;; esac; }
port_of() { case $1 in gateway) echo $GPORT ;; nginx) echo $NPORT ;; *) echo $UPORT ;; esac; }
median() { sort -g | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minmax() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END { printf "%s-%s", lo, hi }'; }

# context switches (voluntary and not) of a set of pids: the proxy's costliest kernel work here
csw() { local s=0 p; for p in "$@"; do s=$((s + $(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $s; }

# wrk_run NAME PATH KEY: "rps p50ms p99ms cpu_us_per_req non2xx requests cswitches_per_req"
wrk_run() {
	local name=$1 path=$2 key=$3 port out t0 t1 c0 c1 rps p50 p99 req cpu bad cs
	port=$(port_of "$name")
	# shellcheck disable=SC2046
	set -- $(pids_of "$name")
	inb wrk -t2 -c64 -d2s -H "X-API-Key: $key" "http://127.0.0.1:$port$path" >/dev/null 2>&1 || true
	t0=$(ticks "$@")
	c0=$(csw "$@")
	out=$(inb wrk -t2 -c64 -d"${SECS}s" --latency -H "X-API-Key: $key" "http://127.0.0.1:$port$path")
	t1=$(ticks "$@")
	c1=$(csw "$@")
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	req=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	cpu=- cs=-
	if [ $# -gt 0 ] && [ "$req" -gt 0 ]; then
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$req" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
		cs=$(awk -v d=$((c1 - c0)) -v n="$req" 'BEGIN { printf "%.2f", d / n }')
	fi
	echo "$rps $p50 $p99 $cpu ${bad:-0} $req $cs"
}

# GW_BENCH_HOLD=FILE: no rows; the set-up stays up for measuring by hand (perf, strace, nstat)
# while FILE exists; FILE holds the namespace, ports, keys and pids as shell assignments
if [ -n "${GW_BENCH_HOLD:-}" ]; then
	cat >"$GW_BENCH_HOLD" <<EOF
NSB=$NSB UPORT=$UPORT NPORT=$NPORT GPORT=$GPORT SPORT=$SPORT
KEY=$KEY KEY_SPENT=$KEY_SPENT
GW_PIDS="$(gw_pids)" NGINX_PIDS="$(nginx_pids)" UP_PIDS="$(up_pids)"
EOF
	while [ -f "$GW_BENCH_HOLD" ]; do sleep 1; done
	exit 0
fi

# GW_BENCH_PROFILE=DIR: no rows; perf record of the gateway's processes under the proxied and the
# reject load instead, reports in DIR (perf.ok.txt, perf.429.txt)
if [ -n "${GW_BENCH_PROFILE:-}" ]; then
	mkdir -p "$GW_BENCH_PROFILE"
	for k in ok 429; do
		key=$KEY
		[ $k = 429 ] && key=$KEY_SPENT
		# shellcheck disable=SC2046
		perf record -q -g -o "$DIR/perf.data" -p "$(gw_pids | tr ' ' ',' | sed 's/,*$//')" -- \
			nsenter --net=/run/netns/$NSB wrk -t2 -c64 -d"${SECS}s" -H "X-API-Key: $key" \
			"http://127.0.0.1:$GPORT/v1/x" >"$GW_BENCH_PROFILE/wrk.$k.txt" 2>&1
		perf report -i "$DIR/perf.data" --no-children -g none --percent-limit 0.4 --stdio \
			>"$GW_BENCH_PROFILE/perf.$k.txt" 2>/dev/null
		perf report -i "$DIR/perf.data" --no-children -g none --sort dso --stdio \
			>"$GW_BENCH_PROFILE/perf.$k.dso.txt" 2>/dev/null
	done
	exit 0
fi

echo "gateway rows (issue #9): $(nproc) cores, upstream nginx return 200 (${#BODY} B), load: $(uptime | sed 's/.*load average/load average/')"
ORDER=(gateway nginx upstream)
if row 1; then
echo "[1] proxied with admission on: wrk -t2 -c64 -d${SECS}s --latency (2 s warm-up), X-API-Key on every request, $REPS paired rounds in rotating order"
printf '  %-5s %-15s %10s %8s %8s %11s %12s\n' round contestant req/s p50_ms p99_ms cpu_us/req cswitch/req
: >"$DIR/r1"
for r in $(seq "$REPS"); do
	declare -A R=()
	for k in 0 1 2; do
		c=${ORDER[$(((k + r - 1) % 3))]}
		R[$c]=$(wrk_run "$c" /v1/x "$KEY")
		read -r rps p50 p99 cpu bad _ cs <<<"${R[$c]}"
		[ "$bad" != 0 ] && echo "  ($c answered $bad non-2xx)"
		printf '  %-5s %-15s %10s %8s %8s %11s %12s\n' "$r" "$c" "$rps" "$p50" "$p99" "$cpu" "$cs"
	done
	read -r grps gp50 gp99 gcpu _ <<<"${R[gateway]}"
	read -r nrps np50 np99 ncpu _ <<<"${R[nginx]}"
	read -r urps _ _ _ _ <<<"${R[upstream]}"
	echo "$grps $nrps $urps $gcpu $ncpu $gp99 $np99 $gp50 $np50" >>"$DIR/r1"
	unset R
done
col() { awk -v c="$1" -v d="$2" '{ printf "%.3f\n", $c / $d }' "$DIR/r1"; }
for spec in "1 2 req/s 'target >= 1.2'" "4 5 cpu/req 'target <= 0.8'" "6 7 p99 'target <= 1'" "8 9 p50 ''"; do
	eval "set -- $spec"
	printf '  gateway/nginx %-8s %sx (rounds %s) %s\n' "$3" "$(col "$1" "$2" | median)" "$(col "$1" "$2" | minmax)" "$4"
done
printf '  gateway/upstream-alone req/s %sx, nginx/upstream-alone %sx\n' "$(col 1 3 | median)" "$(col 2 3 | median)"

fi
if row 2; then
echo "[2] reject path, every request over the limit (a spent key): wrk as above, 1 round"
printf '  %-15s %10s %8s %8s %12s %10s\n' contestant 429/s p50_ms p99_ms cpu_us/429 non-429
inb curl -s -o /dev/null -H "X-API-Key: $KEY_SPENT" "http://127.0.0.1:$GPORT/v1/x"
inb curl -s -o /dev/null -H "X-API-Key: $KEY_SPENT" "http://127.0.0.1:$NPORT/rej/x"
G=$(wrk_run gateway /v1/x "$KEY_SPENT")
N=$(wrk_run nginx /rej/x "$KEY_SPENT")
st=$(inb curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY_SPENT" "http://127.0.0.1:$GPORT/v1/x")
for l in "gateway $G" "nginx $N"; do
	read -r c rps p50 p99 cpu bad req _ <<<"$l"
	# wrk counts non-2xx: every one of them is a 429 here (checked once by curl: $st)
	printf '  %-15s %10s %8s %8s %12s %10s\n' "$c" "$rps" "$p50" "$p99" "$cpu" $((req - bad))
done
read -r grps _ _ gcpu _ <<<"$G"
read -r nrps _ _ ncpu _ <<<"$N"
awk -v g="$grps" -v n="$nrps" -v gc="$gcpu" -v nc="$ncpu" -v st="$st" 'BEGIN {
	printf "  gateway/nginx 429/s %.2fx, CPU per 429 %.2fx (target <= 0.5); the gateway answered %s\n", g / n, gc / nc, st }'

fi
if row 3; then
echo "[3] added latency at a fixed $RATE req/s: lt_loadgen -r $RATE -d $SECS -w 1 -c 64 (open loop), $REPS rounds"
printf '  %-5s %-15s %9s %9s %9s %9s %7s\n' round contestant p50_us p99_us p999_us max_us errors
: >"$DIR/r3"
for r in $(seq "$REPS"); do
	declare -A L=()
	for k in 0 1 2; do
		c=${ORDER[$(((k + r) % 3))]}
		out=$(inb "$LG" -u "http://127.0.0.1:$(port_of "$c")/v1/x" -r "$RATE" -d "$SECS" -w 1 -c 64 -H "X-API-Key: $KEY")
		v() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$out"; }
		L[$c]="$(v p50_us) $(v p99_us)"
		printf '  %-5s %-15s %9s %9s %9s %9s %7s\n' "$r" "$c" "$(v p50_us)" "$(v p99_us)" \
			"$(v p999_us)" "$(v max_us)" "$(($(v errors) + $(v non2xx)))"
	done
	echo "${L[gateway]} ${L[nginx]} ${L[upstream]}" >>"$DIR/r3"
	unset L
done
added() { awk -v a="$1" -v b="$2" '{ printf "%.1f\n", $a - $b }' "$DIR/r3"; }
printf '  added over the upstream alone (median of rounds): gateway p50 +%s us, p99 +%s us (target < 1000); nginx p50 +%s us, p99 +%s us\n' \
	"$(added 1 5 | median)" "$(added 2 6 | median)" "$(added 3 5 | median)" "$(added 4 6 | median)"
printf '  gateway/nginx added p99 %sx\n' "$(awk '{ printf "%.3f\n", ($2 - $6) / ($4 - $6) }' "$DIR/r3" | median)"
awk '$5 > 1000 { n++ } END { if (n) printf "  (%d of %d rounds: the upstream alone had p50 > 1 ms: the machine did not keep up with the schedule, so these rounds measure queueing, not the proxies)\n", n, NR }' "$DIR/r3"

fi
if row 4; then
echo "[4] SSE through one connection: leaky-stub streams $SSE_N tokens (one event each, no delay); POST /v1/chat/completions stream"
sse() { # PORT: events per second
	local t
	t=$(inb curl -s -N -o "$DIR/sse.out" -w '%{time_total}' -H "X-API-Key: $KEY" \
		-H 'Content-Type: application/json' -H "x-stub-tokens: $SSE_N" \
		--data "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"max_tokens\":$SSE_N,\"messages\":[{\"role\":\"user\",\"content\":\"bench\"}]}" \
		"http://127.0.0.1:$1/v1/chat/completions")
	local n
	n=$(grep -c '^data: {' "$DIR/sse.out" || true)
	awk -v n="$n" -v t="$t" 'BEGIN { printf "%.0f %d %.3f\n", n / t, n, t }'
}
printf '  %-15s %12s %9s %9s\n' contestant events/s events seconds
for c in gateway nginx stub-alone; do
	case $c in gateway) p=$GPORT ;; nginx) p=$NPORT ;; *) p=$SPORT ;; esac
	sse "$p" >/dev/null
	read -r eps n t <<<"$(sse "$p")"
	printf '  %-15s %12s %9s %9s\n' "$c" "$eps" "$n" "$t"
	eval "E_${c%%-*}=$eps"
done
awk -v g="$E_gateway" -v n="$E_nginx" -v s="$E_stub" 'BEGIN {
	printf "  gateway/nginx %.2fx, gateway/stub-alone %.2fx (the gateway parses every event and counts its tokens)\n", g / n, g / s }'

fi
if row 5; then
echo "[5] memory with $CONNS open client connections (lt_loadgen -c $CONNS -r 1000: every connection carries requests), summed over the proxy's processes"
echo "  own: PSS of every mapping but the pinned BPF maps (the agent's, allocated by the kernel whether a"
echo "  gateway maps them or not; mmap maps them whole, so they are in RSS: shown apart as maps)"
printf '  %-15s %7s %10s %10s %10s %12s\n' contestant conns own_PSS_MB maps_PSS_MB RSS_MB idle_own_MB
mem() { # pids...: "own_pss_kB maps_pss_kB rss_kB" from /proc/<pid>/smaps
	local p
	for p in "$@"; do cat "/proc/$p/smaps" 2>/dev/null; done | awk '
		/^[0-9a-f]+-[0-9a-f]+ / { bpf = ($0 ~ /anon_inode:bpf-map/) }
		$1 == "Pss:" { if (bpf) m += $2; else o += $2 }
		$1 == "Rss:" { r += $2 }
		END { printf "%d %d %d\n", o, m, r }'
}
for c in gateway nginx; do
	# shellcheck disable=SC2046
	set -- $(pids_of "$c")
	read -r idle _ _ <<<"$(mem "$@")"
	nsenter --net=/run/netns/$NSB "$LG" -u "http://127.0.0.1:$(port_of "$c")/v1/x" -r 1000 -d 5 \
		-c "$CONNS" -H "X-API-Key: $KEY" >"$DIR/lg.out" &
	lgp=$!
	sleep 3.5
	conns=$(inb ss -Htn state established "( sport = :$(port_of "$c") )" | wc -l)
	read -r own maps rss <<<"$(mem "$@")"
	wait $lgp || true
	awk -v c="$c" -v n="$conns" -v o="$own" -v m="$maps" -v r="$rss" -v i="$idle" 'BEGIN {
		printf "  %-15s %7d %10.1f %10.1f %10.1f %12.1f\n", c, n, o / 1024, m / 1024, r / 1024, i / 1024 }'
	eval "M_$c=$own"
done
awk -v g="$M_gateway" -v n="$M_nginx" 'BEGIN { printf "  gateway own PSS %.1f MB (target < 30), gateway/nginx %.2fx\n", g / 1024, g / n }'
fi
echo "  (load after: $(uptime | sed 's/.*load average/load average/'))"
