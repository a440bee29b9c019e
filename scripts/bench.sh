#!/usr/bin/env bash
# bench.sh - `make bench`: starts a private redis-server on a free loopback
# port for the Redis Lua reference, runs build/bench, stops redis.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mktemp -d /tmp/lt-bench-XXXXXX)
PORT=$((20000 + RANDOM % 20000))
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$DIR" --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
trap 'kill "$(cat "$DIR/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do
	redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
	sleep 0.1
done
echo "leaky-tokens bench on $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
"$ROOT/build/bench" -r "$PORT"
bash "$ROOT/scripts/bench_api.sh"
bash "$ROOT/scripts/bench_gw.sh"
bash "$ROOT/scripts/bench_kafka.sh"
bash "$ROOT/scripts/bench_global.sh"
bash "$ROOT/scripts/bench_logs.sh"
bash "$ROOT/scripts/bench_ui.sh"
