#!/usr/bin/env bash
# Installs every Debian package the build, the tests, `make run` and `make bench` need, and
# mounts bpffs when it is absent. Idempotent: a second run installs nothing and exits 0.
# This is the only place in the tree that names packages.
set -euo pipefail

PKGS=(
	# build
	make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev pkg-config
	clang-format
	# libFuzzer and clang's sanitizer runtimes (make fuzz, the fuzz smoke of make test)
	libclang-rt-14-dev
	# agent and gateway libraries
	libjansson-dev libmicrohttpd-dev libssl-dev libsqlite3-dev librdkafka-dev
	libcurl4-openssl-dev
	# tests and benchmarks
	iproute2 curl jq redis-server wrk procps util-linux socat sudo bc openssl
	# leaky-gateway tests (raw-socket clients, xxd) and the proxy bench row (nginx proxy_pass)
	python3 xxd nginx-light
	# Prometheus and promtool (tests/e2e/test_prometheus.sh, the deploy/prometheus rule checks)
	prometheus
	# the Kafka suites: an independent consumer of what the agent produces
	kcat sqlite3
	# node for the OpenAPI validator (tests/openapi/) and the openai client tests (tests/openai/)
	nodejs
	# the dashboard's browser tests (tests/ui/: playwright-core drives this chromium)
	chromium
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
# Debian's nodejs needs its npm package; a nodejs that bundles npm conflicts with it.
command -v npm >/dev/null || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# packaged daemons (nginx, redis) must not start on install: the tests and the bench run
	# their own instances on private ports (policy-rc.d 101 = "action forbidden")
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
fi

# npm packages are pinned in a package-lock.json per directory (tests/openapi: the OpenAPI
# validator; tests/openai: the official openai client; ui: uPlot, embedded in leaky-agent by the
# build; tests/ui: playwright-core and axe-core). `npm ci` runs only when a lock file changed
# since its last install, so a second run needs no network.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for dir in tests/openapi tests/openai ui tests/ui; do
	LOCK=$ROOT/$dir/package-lock.json
	STAMP=$ROOT/$dir/node_modules/.lt-lock.sha256
	if [ "$(cat "$STAMP" 2>/dev/null)" != "$(sha256sum <"$LOCK")" ]; then
		echo "deps.sh: npm ci in $dir"
		(cd "$ROOT/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
		sha256sum <"$LOCK" >"$STAMP"
	fi
done

# bpffs is not mounted at boot on some machines (PROBE-NOTES.md); pins need it.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
exit 0
