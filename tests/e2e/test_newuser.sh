#!/usr/bin/env bash
# test_newuser.sh - what a new user hits first: `make help`, `make bench` from a fresh clone,
# the README's numbers and its break-glass example followed in order, and commands that say
# something when there is nothing to say. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
AGENT=${AGENT:-$ROOT/build/san/leaky-agent}
NS=ltnew-$$
PIN=/sys/fs/bpf/lt-new-$$
STATE=$(mktemp -d /tmp/lt-new-XXXXXX)
AGENT_PID=
cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	wait 2>/dev/null
	"$AGENT" --pin-dir "$PIN" --state-dir "$STATE" detach >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$STATE"
}
trap cleanup EXIT
cd "$ROOT"

# ---- make help and make bench ----------------------------------------------------------
help=$(make --no-print-directory help)
phony=$(sed -n 's/^\.PHONY: *//p' Makefile | tr ' ' '\n' | sort -u)
missing=$(for t in $phony; do [ "$t" = all ] || [ "$t" = help ] ||
	grep -q "^make $t\b" <<<"$help" || echo "$t"; done)
check "make help: names every .PHONY target (missing: ${missing:-none})" test -z "$missing"
tiers=$(for d in tests/*/; do d=$(basename "$d"); ls "tests/$d"/test_* >/dev/null 2>&1 && echo "$d"; done)
missing=$(for t in $tiers; do grep -qw "$t" <<<"$help" || echo "$t"; done)
check "make help: names every test tier (missing: ${missing:-none})" test -z "$missing"
# a fresh clone has no build/: the bench target must build the agent the API bench runs
dry=$(make --no-print-directory -n bench BUILD="$STATE/fresh" 2>&1)
check "make bench builds build/leaky-agent on a fresh clone" grep -q -- "-o $STATE/fresh/leaky-agent" <<<"$dry"

# ---- the README's numbers are true ------------------------------------------------------
rows=$(awk '/^static const struct tcase cases\[\] = \{/{f=1;next} f&&/^};/{f=0} f&&/^\t\{/{n++} END{print n+0}' tests/bpf/test_admit.c)
claim=$(grep -o 'fixture table of [0-9]* cases' README.md | grep -o '[0-9]*' || true)
check "README: no fixture count other than the table's ($rows rows, README: ${claim:-none})" \
	test -z "$claim" -o "$claim" = "$rows"
rows=$(awk '/^BAD=\(/{f=1;next} f&&/^\)/{f=0} f&&/^\t"/{n++} END{print n+0}' tests/e2e/test_api.sh)
claim=$(grep -o '[0-9]* bad inputs' README.md | grep -o '[0-9]*' || true)
check "README: no bad-input count other than test_api.sh's ($rows, README: ${claim:-none})" \
	test -z "$claim" -o "$claim" = "$rows"

if [ "$(id -u)" -ne 0 ]; then
	echo "# SKIP the rest attaches BPF: needs root"
	tap_done
	exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "Bail out! netns"; exit 1; }
nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" attach --iface lo \
	--api 127.0.0.1:19092 >"$STATE/log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do # the API answers once the maps hold the config
	nsenter --net=/run/netns/$NS curl -s -o /dev/null http://127.0.0.1:19092/healthz && break
	sleep 0.1
done
la() { nsenter --net=/run/netns/$NS "$AGENT" --pin-dir "$PIN" --state-dir "$STATE" "$@" 2>&1; }

# ---- commands say something when there is nothing to say -----------------------------
out=$(la bans)
check "bans: an empty penalty box says so ($out)" grep -q "no bans" <<<"$out"
out=$(la allow list)
check "allow list: an empty allowlist says so ($out)" grep -q "no allowlist entries" <<<"$out"
out=$(la policy set 198.51.100.0/24 --conn 5:1/m)
check "policy set: prints the policy now in force ($out)" grep -q "198.51.100.0/24.*5:1/m" <<<"$out"
out=$(la policy del 198.51.100.0/24)
check "policy del: says it is deleted ($out)" grep -q "198.51.100.0/24 deleted" <<<"$out"

# ---- the README's break-glass block, followed in order, on our own pins --------------
block=$(awk '/^## When the agent is down/{f=1} f&&/^```sh/{g=1;next} g&&/^```/{exit} g' README.md)
script=$(sed -e 's/^sudo //' -e "s|build/leaky-agent|\"$AGENT\" --pin-dir \"$PIN\" --state-dir \"$STATE\"|g" \
	-e "s|/sys/fs/bpf/leaky|$PIN|g" <<<"$block")
out=$(nsenter --net=/run/netns/$NS bash -e -c "$script" 2>&1)
rc=$?
check "README break-glass block runs in order without an error (rc $rc)" test $rc = 0
[ $rc = 0 ] || sed 's/^/#   /' <<<"$out"
check "README break-glass block: the ban it takes out is gone" not grep -q "10.0.0.1" <<<"$(la bans)"
tap_done
