#!/usr/bin/env bash
# test_install.sh - `make install` / `make uninstall` (README "Install as a service"):
# what lands where under DESTDIR, that the installed binaries run, that an existing or edited
# config is never written over or removed, that uninstall puts the tree back as it was, and
# that systemd-analyze verify, systemd-tmpfiles and systemd-sysusers accept what is installed.
# Needs no root and attaches nothing; the binaries are the release ones `make all` built.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
WORK=$(mktemp -d /tmp/lt-install-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# a make of its own, not a job of the `make test` that runs this
mk() { env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C "$ROOT" --no-print-directory "$@"; }
tree() { (cd "$1" && find . | sort); }

# a root that looks like a host's: the standard directories exist before the install
R=$WORK/root
mkdir -p "$R/usr/local/bin" "$R/usr/local/lib" "$R/etc" "$R/var/lib"
tree "$R" >"$WORK/before"
check "make install DESTDIR= succeeds" mk install DESTDIR="$R"
for f in usr/local/bin/leaky-agent usr/local/bin/leaky-gateway usr/local/bin/leaky-stub; do
	[ "$(stat -c %a "$R/$f" 2>/dev/null)" = 755 ] && ok "$f installed 0755" || notok "$f installed 0755"
done
for f in usr/local/lib/systemd/system/leaky-agent.service \
	usr/local/lib/systemd/system/leaky-gateway@.service \
	usr/local/lib/sysusers.d/leaky-tokens.conf usr/local/lib/tmpfiles.d/leaky-tokens.conf \
	etc/leaky-tokens/agent.json etc/leaky-tokens/gateway.json; do
	[ "$(stat -c %a "$R/$f" 2>/dev/null)" = 644 ] && ok "$f installed 0644" || notok "$f installed 0644"
done
for b in leaky-agent leaky-gateway leaky-stub; do
	"$R/usr/local/bin/$b" --help >/dev/null && ok "the installed $b runs --help" ||
		notok "the installed $b runs --help"
done
check "units name the installed binaries and configs, no @placeholder@ left" \
	bash -c "grep -q '^ExecStart=/usr/local/bin/leaky-agent attach --config /etc/leaky-tokens/agent.json' '$R/usr/local/lib/systemd/system/leaky-agent.service' &&
		grep -q 'exec /usr/local/bin/leaky-gateway --config /etc/leaky-tokens/%i.json' '$R/usr/local/lib/systemd/system/leaky-gateway@.service' &&
		! grep -r '@[A-Z]*@' '$R/usr/local/lib/systemd/system'"
check "the default agent.json passes check-config" \
	"$R/usr/local/bin/leaky-agent" check-config --config "$R/etc/leaky-tokens/agent.json"
check "the default gateway.json passes --check" \
	"$R/usr/local/bin/leaky-gateway" --check --config "$R/etc/leaky-tokens/gateway.json"
# the pins' group the agent defaults to is the group sysusers.d makes
check "sysusers.d makes the agent's default gateway_group (leaky)" \
	bash -c "'$R/usr/local/bin/leaky-agent' --help | grep -q 'gateway_group  \[leaky\]' &&
		grep -q '^u leaky ' '$R/usr/local/lib/sysusers.d/leaky-tokens.conf'"

# systemd's own tools on what was installed, in the DESTDIR root
check "systemd-tmpfiles creates the state dir 0700 root" bash -c \
	"systemd-tmpfiles --root='$R' --create &&
	 [ \"\$(stat -c '%a %U' '$R/var/lib/leaky-tokens')\" = '700 root' ]"
rmdir "$R/var/lib/leaky-tokens" 2>/dev/null
check "systemd-sysusers creates the system user and group leaky" bash -c \
	"systemd-sysusers --root='$R' &&
	 grep -q '^leaky:' '$R/etc/passwd' && grep -q '^leaky:' '$R/etc/group'"
# sysusers' files are not ours to uninstall
find "$R/etc" -maxdepth 1 -type f ! -name '*.json' -delete

# an operator's config survives a second install, and an uninstall
echo '{"protected_ports": [443]}' >"$R/etc/leaky-tokens/agent.json"
out=$(mk install DESTDIR="$R" 2>&1)
check "a second install keeps the existing agent.json" grep -q 443 "$R/etc/leaky-tokens/agent.json"
grep -q 'keeping the existing' <<<"$out" && ok "a second install says it kept it" ||
	notok "a second install says it kept it"
out=$(mk uninstall DESTDIR="$R" 2>&1)
check "uninstall keeps the edited agent.json" grep -q 443 "$R/etc/leaky-tokens/agent.json"
grep -q 'keeping .*agent.json (edited)' <<<"$out" && ok "uninstall says it kept it" ||
	notok "uninstall says it kept it"
check "uninstall removed the unedited gateway.json" test ! -e "$R/etc/leaky-tokens/gateway.json"
rm -f "$R/etc/leaky-tokens/agent.json"
rmdir "$R/etc/leaky-tokens"

# install then uninstall: the tree is exactly as it was (files and directories)
check "install + uninstall leaves the tree as it was (nothing behind)" bash -c \
	"env -u MAKEFLAGS -u MAKELEVEL make -s -C '$ROOT' install DESTDIR='$R' >/dev/null &&
	 env -u MAKEFLAGS -u MAKELEVEL make -s -C '$ROOT' uninstall DESTDIR='$R' >/dev/null &&
	 diff <(cd '$R' && find . | sort) '$WORK/before'"

# systemd-analyze verify needs the binaries at the paths ExecStart names: install with a
# PREFIX and SYSCONFDIR inside the work dir (no DESTDIR), so those paths exist
P=$WORK/p
mk install PREFIX="$P/usr" SYSCONFDIR="$P/etc" >/dev/null 2>&1
U=$P/usr/lib/systemd/system
ln -s leaky-gateway@.service "$U/leaky-gateway@gateway.service"
for u in leaky-agent.service leaky-gateway@gateway.service; do
	out=$(timeout 60 systemd-analyze verify "$U/$u" 2>&1)
	rc=$?
	# it warns (and exits 0) on a bad value: any output is a failure
	if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify $u: clean"; else
		notok "systemd-analyze verify $u: clean (rc $rc)"; sed 's/^/# /' <<<"$out"; fi
done
# and it does check: with the binary gone the same unit is refused
mv "$P/usr/bin/leaky-agent" "$P/usr/bin/leaky-agent.away"
out=$(timeout 60 systemd-analyze verify "$U/leaky-agent.service" 2>&1)
expect_err "systemd-analyze verify refuses a unit whose ExecStart binary is missing" $? "$out" \
	'is not executable'
tap_done
