#!/usr/bin/env bash
# test_ui.sh - the dashboard (/ui on the agent's API listener) in a real browser: Debian's
# chromium driven by playwright-core (tests/ui/ui_test.mjs) against a real agent, gateway and
# stub in a private netns, while the test sends traffic through the gateway. Before the
# browser: what curl can check of /ui itself (CSP and the other headers, content types,
# ETag revalidation, 404s). Screenshots of every view go to $LT_UI_SHOTS (default
# build/ui-screenshots; `make screenshots` writes docs/screenshots). Prints TAP.
set -u
TOPIC=ui
. "$(dirname "$0")/gw_env.sh"
SHOTS=${LT_UI_SHOTS:-$ROOT/build/ui-screenshots}
U1=00000000-0000-0000-0000-0000000000a1
O1=10000000-0000-0000-0000-0000000000a1
PEER=$ROOT/build/san/tests/lt_brk_peer

agent_config
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub
gw_config
# two upstream services with active health checks: the stub (up) and a port nothing
# listens on (down); the Routes view shows what the gateway's checks found (lt_upstream)
jq --arg s "http://127.0.0.1:$STUB_PORT" '.services = {
	"stub": {"urls": [$s], "health": {"path": "/stub/stats", "interval_ms": 500, "timeout_ms": 500}},
	"backend": {"urls": ["http://127.0.0.1:19129"], "health": {"path": "/healthz", "interval_ms": 500, "timeout_ms": 500}}}
	| .routes = [{"name": "stub-api", "prefix": "/stub/", "service": "stub"},
		{"name": "backend-api", "prefix": "/backend/", "service": "backend"}]' \
	"$WORK/gateway.json" >"$WORK/gateway.json.n" && mv "$WORK/gateway.json.n" "$WORK/gateway.json"
check "gateway starts" start_gateway
TA=$(mint --sub admin-1 --roles ADMIN)
TU=$(mint --sub "$U1" --roles USER --orgs "$O1")

# ---- /ui as curl sees it ---------------------------------------------------------------
hget() { inns curl -s -D "$HB" -o "$RB" -w '%{http_code}' "$@"; }
STATUS=$(hget "$BASE/ui/")
check "GET /ui/: 200 ($STATUS)" test "$STATUS" = 200
check "/ui/ is text/html; charset=utf-8" grep -qix 'content-type: text/html; charset=utf-8' <(tr -d '\r' <"$HB")
csp=$(hdrv Content-Security-Policy)
for d in "default-src 'none'" "script-src 'self'" "style-src 'self'" "img-src 'self' data:" \
	"connect-src 'self'" "frame-ancestors 'none'" "base-uri 'none'" "form-action 'none'"; do
	check "CSP has $d" grep -qF "$d" <<<"$csp"
done
check "CSP allows no inline script or style, eval or other origin" not grep -qiE "unsafe|\*|http" <<<"$csp"
check "X-Content-Type-Options: nosniff" test "$(hdrv X-Content-Type-Options)" = nosniff
check "X-Frame-Options: DENY" test "$(hdrv X-Frame-Options)" = DENY
check "no inline <script> or style in index.html" not grep -qiE '<script>|<script [^>]*>[^<]|<style|style=' "$RB"
etag=$(hdrv ETag)
check "an ETag ($etag) and Cache-Control: no-cache" test -n "$etag" -a "$(hdrv Cache-Control)" = no-cache
STATUS=$(hget -H "If-None-Match: $etag" "$BASE/ui/")
check "If-None-Match with the ETag: 304 ($STATUS)" test "$STATUS" = 304
for f in app.js:text/javascript app.css:text/css uplot.js:text/javascript uplot.css:text/css; do
	STATUS=$(hget "$BASE/ui/${f%%:*}")
	check "/ui/${f%%:*}: 200 ${f#*:} with the CSP ($STATUS)" \
		test "$STATUS" = 200 -a "$(hdrv Content-Type)" = "${f#*:}; charset=utf-8" -a "$(hdrv Content-Security-Policy)" = "$csp"
done
check "uplot.js is uPlot (embedded from ui/node_modules)" inns sh -c "curl -s $BASE/ui/uplot.js | grep -q uPlot"
for p in /ui/nope.js /ui/../metrics /ui/app.js/x /uix; do
	STATUS=$(hget --path-as-is "$BASE$p")
	check "GET $p: 404 ($STATUS)" test "$STATUS" = 404
done
STATUS=$(hget "$BASE/ui")
check "GET /ui: 308 to /ui/ ($STATUS $(hdrv Location))" test "$STATUS" = 308 -a "$(hdrv Location)" = /ui/
STATUS=$(hget -X POST "$BASE/ui/")
check "POST /ui/: 405 ($STATUS)" test "$STATUS" = 405

# ---- a breaker another process opened (the routes view resets it) ----------------------------
"$PEER" "$PIN" configure svc:uitest 1 600000 1 60000 >&2 && "$PEER" "$PIN" report svc:uitest 5xx >&2
req GET /api/v1/admin/breakers "$TA"
check "svc:uitest is open before the browser resets it" \
	test "$(jq -r '.breakers[] | select(.name == "svc:uitest") | .state' "$RB")" = open

# ---- the browser ---------------------------------------------------------------------------
mkdir -p "$SHOTS"
# the one-time sign-in link `attach` printed, if this agent prints one
LINK=$(sed -n 's/.*dashboard: \(http[^ ]*#code=[^ ]*\).*/\1/p' "$LOG" | tail -1)
inns env BASE="$BASE" GWBASE="$GWBASE" TA="$TA" TU="$TU" U1="$U1" O1="$O1" PIN="$PIN" \
	SHOTS="$SHOTS" LINK="$LINK" N0="$N" \
	timeout 150 node "$ROOT/tests/ui/ui_test.mjs" >"$WORK/ui.tap" 2>"$WORK/ui.err"
rc=$?
cat "$WORK/ui.tap"
N=$(sed -n 's/^\(not \)\{0,1\}ok \([0-9]*\) .*/\2/p' "$WORK/ui.tap" | tail -1)
N=${N:-0}
FAILED=$((FAILED + $(grep -c '^not ok' "$WORK/ui.tap")))
if [ "$rc" -ne 0 ] && ! grep -q '^not ok' "$WORK/ui.tap"; then
	notok "the browser test ran to its end (exit $rc)"
fi
[ "$rc" -ne 0 ] && sed 's/^/# /' "$WORK/ui.err" | tail -40
echo "# screenshots: $SHOTS"
tap_done
