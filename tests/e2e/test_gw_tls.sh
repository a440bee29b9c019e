#!/usr/bin/env bash
# test_gw_tls.sh - https upstreams (the LLM providers are all https): leaky-gateway speaks
# TLS to a provider, verifies its chain and its name, keeps the connection alive across
# requests, passes a stream through, and answers a clear 502/504 when the peer cannot be
# trusted, speaks plain HTTP, or never finishes the handshake. socat (OpenSSL) terminates
# TLS in front of leaky-stub; the CAs and certificates are made here by openssl. Prints TAP.
set -u
TOPIC=gwtls
. "$(dirname "$0")/gw_env.sh"
U1=00000000-0000-0000-0000-0000000013c1
TLS_PORT=19443 HANG_PORT=19444 PLAIN_PORT=19445
SOCATS=()
# socat forks a child per connection: those go with their parents
tls_cleanup() {
	local p
	for p in "${SOCATS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
	gw_cleanup
}
EXTRA_CLEANUP=tls_cleanup

agent_config '"token": {"providers": ["openai","gemini","qwen","anthropic"],
	"tier_order": ["ADMIN","USER"], "default_tier": "USER",
	"tiers": {"USER": {"*": {"capacity": 100000, "rate": "1/d"}},
		  "ADMIN": {"*": {"capacity": 1000000, "rate": "1/d"}}},
	"key_requests": {"*": {"capacity": 1000, "rate": "1/d"}},
	"provider_pools": {"*": {"capacity": 100000000, "rate": "1/d"}}}'
check "agent attaches" start_agent --config "$WORK/agent.json"
check "stub starts" start_stub

# two CAs; the server's certificate (signed by CA 1) names only DNS:localhost
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=leaky-tokens test CA $1" -keyout "$WORK/ca$1.key" -out "$WORK/ca$1.pem" \
		2>/dev/null
}
mkca 1 && mkca 2
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
	-keyout "$WORK/srv.key" -out "$WORK/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca1.pem" -CAkey "$WORK/ca1.key" \
	-CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/srv.pem" 2>/dev/null
cat "$WORK/srv.pem" "$WORK/srv.key" >"$WORK/srv.both"
check "test certificates made" test -s "$WORK/srv.both"

nsenter --net=/run/netns/$NS socat -T 30 \
	"OPENSSL-LISTEN:$TLS_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$WORK/srv.both,verify=0" \
	"TCP:127.0.0.1:$STUB_PORT" 2>>"$WORK/socat.log" &
SOCATS+=($!)
# accepts and never says a word (reads until the gateway gives up): a handshake that does not end
nsenter --net=/run/netns/$NS socat "TCP-LISTEN:$HANG_PORT,bind=127.0.0.1,reuseaddr,fork" \
	"SYSTEM:exec cat >/dev/null" 2>>"$WORK/socat.log" &
SOCATS+=($!)
# a plain HTTP server that answers anything at once (as nginx does a TLS hello on a plain port)
nsenter --net=/run/netns/$NS socat "TCP-LISTEN:$PLAIN_PORT,bind=127.0.0.1,reuseaddr,fork" \
	"SYSTEM:printf 'HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n'" \
	2>>"$WORK/socat.log" &
SOCATS+=($!)
for _ in $(seq 50); do
	inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$TLS_PORT" 2>/dev/null &&
		inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$HANG_PORT" 2>/dev/null &&
		inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$PLAIN_PORT" 2>/dev/null && break
	sleep 0.1
done

# providers: openai on the good name; gemini on the address the certificate does not
# name; qwen on a plain HTTP server; anthropic on the silent listener
# tls_config CA_FILE: the gateway's config with those providers and tls.ca_file
tls_config() {
	gw_config
	jq --arg ca "$1" --arg t "$TLS_PORT" --arg s "$PLAIN_PORT" --arg h "$HANG_PORT" '
		.timeouts.connect_ms = 1500
		| .tls = {"ca_file": $ca}
		| .providers = [
			{"name": "openai", "kind": "openai", "base_url": ("https://localhost:" + $t)},
			{"name": "gemini", "kind": "gemini", "base_url": ("https://127.0.0.1:" + $t)},
			{"name": "qwen", "kind": "qwen", "base_url": ("https://127.0.0.1:" + $s)},
			{"name": "anthropic", "kind": "anthropic", "base_url": ("https://127.0.0.1:" + $h)}]' \
		"$WORK/gateway.json" >"$WORK/gateway.tmp" && mv "$WORK/gateway.tmp" "$WORK/gateway.json"
}
tls_config "$WORK/ca1.pem"
check "gateway starts with https providers" start_gateway
T1=$(mint --sub "$U1" --roles USER)
chat() { printf '{"model":"%s","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}' "$1"; }

gwreq POST /v1/chat/completions "jwt:$T1" "$(chat gpt-4o-mini)"
check "a chat completion over TLS to a trusted, named provider: 200 ($STATUS)" test "$STATUS" = 200
check "the answer is the stub's, with usage" test "$(jq -r '.usage.total_tokens > 0' "$RB")" = true
for _ in 1 2 3 4 5; do gwreq POST /v1/chat/completions "jwt:$T1" "$(chat gpt-4o-mini)"; done
conns=$(inns ss -Htn state established "( dport = :$TLS_PORT )" | wc -l)
check "six requests reuse one kept-alive TLS connection ($conns open)" test "$conns" = 1

gwreq POST /v1/chat/completions "jwt:$T1" \
	'{"model":"gpt-4o-mini","stream":true,"max_tokens":12,"messages":[{"role":"user","content":"count"}]}'
check "a stream over TLS: 200, events, [DONE] ($STATUS)" \
	test "$STATUS" = 200 -a "$(grep -c '^data: ' "$RB")" -gt 3 -a "$(grep -c '^data: \[DONE\]' "$RB")" = 1

gwreq POST /v1/chat/completions "jwt:$T1" "$(chat gemini-2.0-flash)"
check "a certificate that does not name the address: 502 ($STATUS)" test "$STATUS" = 502
check "... saying why ($(jq -rc '.error.message // .detail' "$RB" | cut -c1-90))" \
	grep -qi 'mismatch\|certificate' "$RB"
gwreq POST /v1/chat/completions "jwt:$T1" "$(chat qwen-max)"
check "a plain-HTTP server behind an https URL: 502 ($STATUS)" test "$STATUS" = 502
check "... saying why ($(jq -rc '.error.message // .detail' "$RB" | cut -c1-90))" \
	grep -qi 'TLS handshake' "$RB"
t0=$(date +%s%N)
gwreq POST /v1/chat/completions "jwt:$T1" "$(chat claude-3-5-haiku)"
ms=$((($(date +%s%N) - t0) / 1000000))
check "a handshake that never ends: 504 within the connect timeout ($STATUS after $ms ms)" \
	test "$STATUS" = 504 -a "$ms" -lt 10000

# an untrusted chain: SIGHUP to a config that trusts only CA 2
tls_config "$WORK/ca2.pem"
kill -HUP "$GW_PID"
for _ in $(seq 50); do [ "$(grep -c 'config reloaded from' "$GW_LOG")" -ge 2 ] && break; sleep 0.1; done
gwreq POST /v1/chat/completions "jwt:$T1" "$(chat gpt-4o-mini)" -H 'Connection: close'
# the pooled connection was made under CA 1; a new one is checked against CA 2
for _ in 1 2 3; do
	[ "$STATUS" = 502 ] && break
	inns ss -K state established "( dport = :$TLS_PORT )" >/dev/null 2>&1
	gwreq POST /v1/chat/completions "jwt:$T1" "$(chat gpt-4o-mini)"
done
check "after a reload that trusts another CA: 502 on a new connection ($STATUS)" test "$STATUS" = 502
check "... saying the certificate is not trusted" grep -qi 'not trusted\|certificate' "$RB"

# config errors are refused with their reason, before anything starts
tls_config "$WORK/nonexistent.pem"
out=$("$GW" --config "$WORK/gateway.json" --check 2>&1)
check "a missing tls.ca_file: --check refuses it ($(echo "$out" | head -c 120))" \
	grep -q 'ca_file' <<<"$out"
printf 'not a certificate\n' >"$WORK/junk.pem"
tls_config "$WORK/junk.pem"
out=$("$GW" --config "$WORK/gateway.json" --check 2>&1)
check "a tls.ca_file with no certificate in it: refused" grep -q 'ca_file' <<<"$out"
check "the gateway is still alive" kill -0 "$GW_PID"
tap_done
