#!/usr/bin/env bash
# test_gw_stream_attack.sh - a provider that tries to slip output past the gateway's
# counter (issue 9: "a stream never runs past its reservation"), end to end with
# leaky-stub: events longer than the 64 KiB hold (x-stub-event-tokens packs many
# tokens in one event), in SSE and in Gemini's JSON array, and answers compressed
# although the gateway asked for identity (x-stub-gzip). Each is cut or refused,
# and charged as README "What a request is charged" says. Prints TAP.
set -u
TOPIC=gwsatk
. "$(dirname "$0")/gw_env.sh"
U1=00000000-0000-0000-0000-0000000051a1
CAP=10000000

llm_stack "$CAP" "$CAP"
T1=$(mint --sub "$U1" --roles USER)

# as test_gw_llm.sh: whole tokens, so a charge may read one off (leak and clock tick)
exact() { [ "$1" = "$2" ] || [ "$1" = $(($2 - 1)) ] || [ "$1" = $(($2 + 1)) ]; }
used() {
	req GET "/api/v1/tokens/quota?userId=$U1&provider=$1" "$T1"
	echo $((CAP - $(jqb .remaining)))
}
# content bytes the client received in the chat chunks it could parse
content_bytes() {
	grep '^data: {' "$1" | sed 's/^data: //' | jq -R 'fromjson? // empty' |
		jq -s '[.[] | .choices[0].delta.content? // "" | length] | add // 0'
}
chat() { # chat MAX_TOKENS: a streamed chat body with that output limit
	echo "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"max_tokens\":$1,\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}"
}
IGN=(-H 'x-stub-ignore-max-tokens: 1')
# call NAME gwreq-args...: gwreq, its body kept in $WORK/NAME.out and head in $WORK/NAME.hdr
# (used() reads into $RB and $HB)
call() {
	local n=$1
	shift
	gwreq "$@"
	cp "$RB" "$WORK/$n.out"
	cp "$HB" "$WORK/$n.hdr"
}
stub_reset() { inns curl -s -X POST "http://127.0.0.1:$STUB_PORT/stub/reset" >/dev/null; }
stub_total() { stub_stats | jq '.total.prompt_tokens + .total.completion_tokens'; }

# --- the yardstick: small events, cut at the allowance (5 tokens) ---------------------
before=$(used openai)
call small POST /v1/chat/completions "jwt:$T1" "$(chat 5)" "${IGN[@]}" -H 'x-stub-tokens: 200'
after=$(used openai)
small=$((after - before))
check "small events past the limit are cut (200, $(content_bytes "$WORK/small.out") content bytes <= 20)" \
	test "$STATUS" = 200 -a "$(content_bytes "$WORK/small.out")" -le 20
# a cut stream is charged the prompt bound plus the allowance: the bound is what is left
bound=$((small - 5))
check "... and charged the prompt bound + 5 ($small, bound $bound)" test "$bound" -gt 0

# --- hole 1: one event longer than the 64 KiB hold ------------------------------------
# 20000 tokens a chunk: each event carries 80,000 bytes of text, far past the allowance.
before=$(used openai)
call big POST /v1/chat/completions "jwt:$T1" "$(chat 5)" "${IGN[@]}" -H 'x-stub-tokens: 40000' \
	-H 'x-stub-event-tokens: 20000'
after=$(used openai)
size=$(stat -c %s "$WORK/big.out")
check "an event past the hold is cut before it goes out ($size bytes received < 4096)" \
	test "$STATUS" = 200 -a "$size" -lt 4096
check "... the client saw no more output than the allowance ($(content_bytes "$WORK/big.out") <= 5 bytes)" \
	test "$(content_bytes "$WORK/big.out")" -le 5
check "... and the stream ends with output_limit_reached and [DONE]" \
	eval 'grep -q output_limit_reached "$WORK/big.out" && tail -c 100 "$WORK/big.out" | grep -q "data: \[DONE\]"'
check "... charged as a cut stream: prompt bound + allowance ($((after - before)) = $small)" \
	exact "$((after - before))" "$small"

# Under the hold: 16,000 tokens (64,000 bytes) in each event. Counted one token a delta, five
# such events went out against an allowance of 5; a delta now counts one token per 256 bytes.
before=$(used openai)
call packed POST /v1/chat/completions "jwt:$T1" "$(chat 5)" "${IGN[@]}" -H 'x-stub-tokens: 80000' \
	-H 'x-stub-event-tokens: 16000'
after=$(used openai)
check "events packed with 64,000 bytes each are counted by their bytes: cut ($(content_bytes "$WORK/packed.out") <= 5 content bytes)" \
	eval 'test "$STATUS" = 200 && test "$(content_bytes "$WORK/packed.out")" -le 5 && grep -q output_limit_reached "$WORK/packed.out"'
# a cut stream is charged the larger of its allowance and what the provider was seen to make:
# the event it cut holds at least 64,000 / 256 = 250 tokens
check "... charged the prompt bound + the 250 tokens the cut event held at least ($((after - before)) = $bound + 250)" \
	exact "$((after - before))" "$((bound + 250))"

# The allowance (70,000) lets the first 64 KiB of an event go, not its 80,000 bytes: the cut
# falls inside the event, after at most the allowance's worth of its bytes went out.
before=$(used openai)
call mid POST /v1/chat/completions "jwt:$T1" "$(chat 70000)" "${IGN[@]}" -H 'x-stub-tokens: 40000' \
	-H 'x-stub-event-tokens: 20000'
after=$(used openai)
size=$(stat -c %s "$WORK/mid.out")
check "a cut inside a streamed event: at most the allowance went out ($size <= 70000 + 4096)" \
	test "$STATUS" = 200 -a "$size" -le 74096 -a "$size" -gt 65536
check "... then output_limit_reached and [DONE]" \
	eval 'tail -c 600 "$WORK/mid.out" | grep -q output_limit_reached && tail -c 100 "$WORK/mid.out" | grep -q "data: \[DONE\]"'
check "... the provider's usage (40000) never reached the client" \
	test "$(grep -c completion_tokens "$WORK/mid.out")" = 0
check "... charged the reservation: prompt bound + 70000 ($((after - before)) = $((bound + 70000)))" \
	exact "$((after - before))" "$((bound + 70000))"

# the same provider within a large enough allowance: streamed whole, charged its usage
before=$(used openai)
stub_reset
call whole POST /v1/chat/completions "jwt:$T1" "$(chat 200000)" -H 'x-stub-tokens: 40000' \
	-H 'x-stub-event-tokens: 20000'
after=$(used openai)
check "within its allowance a stream of 80 KB events goes through whole ($(content_bytes "$WORK/whole.out") = 160000 bytes)" \
	test "$STATUS" = 200 -a "$(content_bytes "$WORK/whole.out")" = 160000
rep=$(stub_total)
check "... and is charged the usage the provider reported ($((after - before)) = $rep)" \
	exact "$((after - before))" "$rep"

# Gemini without alt=sse: one element of the JSON array past the hold
G='{"contents":[{"parts":[{"text":"go"}]}],"generationConfig":{"maxOutputTokens":5}}'
call garray POST /gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent "jwt:$T1" "$G" \
	"${IGN[@]}" -H 'x-stub-tokens: 40000' -H 'x-stub-event-tokens: 20000'
size=$(stat -c %s "$WORK/garray.out")
check "a JSON-array element past the hold is cut before it goes out ($size bytes < 4096)" \
	test "$STATUS" = 200 -a "$size" -lt 4096
check "... and the array stays valid, ending with the error element" \
	eval 'jq -e "type == \"array\" and .[-1].error.code == 429" "$WORK/garray.out" >/dev/null'

# --- framing: every byte its own HTTP chunk (events split across reads anywhere), CR, CRLF or
# LF line ends: the same cut and the same charges as the plain stream
for eol in 1 2 3; do
	before=$(used openai)
	call fr POST /v1/chat/completions "jwt:$T1" "$(chat 5)" "${IGN[@]}" -H 'x-stub-tokens: 200' \
		-H 'x-stub-chunk-bytes: 1' -H "x-stub-eol: $eol"
	after=$(used openai)
	check "1-byte chunks, line ends $eol: cut ($(tr '\r' '\n' <"$WORK/fr.out" | grep -c output_limit_reached) error event), charged as the plain cut ($((after - before)) = $small)" \
		eval 'grep -q output_limit_reached "$WORK/fr.out" && exact "$((after - before))" "$small"'
	before=$(used openai)
	stub_reset
	call fr POST /v1/chat/completions "jwt:$T1" "$(chat 12)" -H 'x-stub-chunk-bytes: 1' \
		-H "x-stub-eol: $eol"
	after=$(used openai)
	rep=$(stub_total)
	check "... an honest stream so framed: whole, charged its usage ($((after - before)) = $rep)" \
		eval 'test "$STATUS" = 200 && exact "$((after - before))" "$rep" && test "$rep" -gt 12'
done

# --- a stream labelled as something else: what the client reads is a stream all the same ----
for ct in application/json text/plain; do
	call lbl POST /v1/chat/completions "jwt:$T1" "$(chat 5)" "${IGN[@]}" -H 'x-stub-tokens: 200' \
		-H "x-stub-content-type: $ct"
	check "a stream labelled $ct is read as one: cut ($(content_bytes "$WORK/lbl.out") <= 20 content bytes)" \
		eval 'test "$STATUS" = 200 && test "$(content_bytes "$WORK/lbl.out")" -le 20 && grep -q output_limit_reached "$WORK/lbl.out"'
done
gtexts() { # text parts with text, in SSE events ($1 sse) or in an array ($1 array)
	if [ "$1" = sse ]; then
		grep '^data: {' "$2" | sed 's/^data: //' | jq -R 'fromjson? // empty' | jq -s '.'
	else
		cat "$2"
	fi | jq '[.[] | select(.candidates[0].content.parts[0].text? // "" | length > 0)] | length'
}
G5='{"contents":[{"parts":[{"text":"go"}]}],"generationConfig":{"maxOutputTokens":5}}'
call glbl POST '/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse' "jwt:$T1" "$G5" \
	"${IGN[@]}" -H 'x-stub-tokens: 200' -H 'x-stub-content-type: application/json'
check "Gemini events labelled application/json are read as events: cut ($(gtexts sse "$WORK/glbl.out") <= 5, RESOURCE_EXHAUSTED)" \
	eval 'test "$(gtexts sse "$WORK/glbl.out")" -le 5 && grep -q RESOURCE_EXHAUSTED "$WORK/glbl.out"'
call garr2 POST '/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent' "jwt:$T1" "$G5" \
	"${IGN[@]}" -H 'x-stub-tokens: 200' -H 'x-stub-content-type: text/event-stream'
check "a Gemini array labelled text/event-stream is read as an array: cut, still valid ($(gtexts array "$WORK/garr2.out") <= 5)" \
	eval 'test "$(gtexts array "$WORK/garr2.out")" -le 5 && jq -e ".[-1].error.code == 429" "$WORK/garr2.out" >/dev/null'

# --- hole 2: a provider that compresses although asked for identity -------------------
for mode in stream json; do
	body=$(chat 8)
	[ $mode = json ] && body=${body/\"stream\":true,/}
	before=$(used openai)
	call gz POST /v1/chat/completions "jwt:$T1" "$body" -H 'x-stub-gzip: 1'
	after=$(used openai)
	check "a gzip $mode answer is refused: 502 ($STATUS), OpenAI-shaped, saying why" \
		eval 'test "$STATUS" = 502 && jq -e ".error.code == \"upstream_content_encoding\"" "$WORK/gz.out" >/dev/null'
	check "... no compressed byte reached the client" not grep -qi "^content-encoding" "$WORK/gz.hdr"
	check "... charged the whole reservation ($((after - before)) = $bound + 8)" \
		exact "$((after - before))" "$((bound + 8))"
done
before=$(used anthropic)
call gzn POST /v1/messages "jwt:$T1" '{"model":"claude-3-5-haiku","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"go"}]}' \
	-H 'x-stub-gzip: 1'
after=$(used anthropic)
check "a gzip answer on a native route: 502 problem+json ($STATUS)" \
	eval 'test "$STATUS" = 502 && grep -qi "content-type: application/problem+json" "$WORK/gzn.hdr"'
check "... charged the whole reservation ($((after - before)) > 10)" test "$((after - before))" -gt 10
# a client that asks for gzip itself changes nothing: the provider is asked for identity
gwreq POST /v1/chat/completions "jwt:$T1" "$(chat 8)" -H 'Accept-Encoding: gzip'
check "a client's Accept-Encoding: gzip with an honest provider: 200, plain SSE" \
	eval 'test "$STATUS" = 200 && test -z "$(hdrv Content-Encoding)" && grep -q "data: \[DONE\]" "$RB"'

check "the gateway logged no sanitizer error" eval '! grep -q "ERROR: AddressSanitizer\|runtime error" "$GW_LOG"'
check "the gateway is still alive" kill -0 "$GW_PID"
tap_done
