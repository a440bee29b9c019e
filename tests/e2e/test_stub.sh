#!/usr/bin/env bash
# test_stub.sh - leaky-stub (issue #9, item 10), black-box with curl and jq: every provider
# shape answers JSON and SSE that parse, with the documented usage (prompt = ceil(text bytes/4),
# completion = N tokens of "tok ", N = min(limit, wanted)); max_tokens is honoured or ignored on
# command; latency, hang, disconnect and chunk delay do what they say; /stub/stats sums the
# usage the answers carried and /stub/reset clears it; a sleeping stream does not hold up
# another request; bad input gets a provider-shaped 4xx and the stub (ASan build) survives it
# and exits cleanly. Needs no root. Prints TAP.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/tap.sh"
WORK=$(mktemp -d /tmp/lt-stubt-XXXXXX)
STUB_LOG=$WORK/stub.log
. "$ROOT/tests/e2e/stub_env.sh"
STUB2_PID=
cleanup() {
	[ -n "$STUB_PID" ] && kill -9 "$STUB_PID" 2>/dev/null
	[ -n "$STUB2_PID" ] && kill -9 "$STUB2_PID" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
for t in curl jq; do
	command -v $t >/dev/null || { echo "Bail out! $t missing (scripts/deps.sh installs it)"; exit 1; }
done

start_stub || { echo "Bail out! leaky-stub did not start"; exit 1; }
B=$STUB_URL
RB=$WORK/body HB=$WORK/hdrs
# post PATH BODY [CURL ARGS...]: sets STATUS, body in $RB, headers in $HB (10 s bound)
post() {
	local p=$1 body=$2
	shift 2
	STATUS=$(curl -s -m 10 -o "$RB" -D "$HB" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$body" "$@" "$B$p")
}
jqb() { jq -r "$1" "$RB"; }
# the data: payloads of an SSE body, one JSON per line ([DONE] left out), CR stripped
sse_data() { tr -d '\r' <"$RB" | sed -n 's/^data: //p' | grep -v '^\[DONE\]$'; }
eq() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}
toks() { local s= i; for ((i = 0; i < $1; i++)); do s+="tok "; done; printf '%s' "$s"; }

# "hello world!" is 12 bytes: 3 prompt tokens. The default output length is --tokens (16).
MSG='[{"role":"user","content":"hello world!"}]'
CHAT='{"model":"gpt-x","messages":'"$MSG"',"max_tokens":5}'

# --- help and flags --------------------------------------------------------------------------
help=$("$STUB" --help)
missing=
grep -q -- "x-stub-error-after" <<<"$help" || missing+=" x-stub-error-after"
for f in listen threads tokens ignore-max-tokens gemini-array latency-ms chunk-delay-ms status retry-after \
	hang disconnect-after error-after embedding-dims max-body quiet; do
	grep -q -- "--$f" <<<"$help" || missing+=" $f"
	grep -q "\"$f\"" "$ROOT/stub/opts.c" || missing+=" (not in the table: $f)"
done
eq "--help lists every flag of the option table" "$missing" ""
out=$("$STUB" --tokens x 2>&1); rc=$?
expect_err "a bad flag value is refused with a message" $rc "$out" "--tokens x: expected"
out=$("$STUB" --nope 2>&1); rc=$?
expect_err "an unknown flag is refused" $rc "$out" "unknown option"
out=$(timeout 5 "$STUB" --listen "127.0.0.1:$STUB_PORT" 2>&1); rc=$?
expect_err "a second stub on a taken port fails (no silent port sharing)" $rc "$out" "in use"

# --- every shape, JSON -------------------------------------------------------------------------
post /v1/chat/completions "$CHAT"
eq "openai chat JSON: 200" "$STATUS" 200
eq "openai chat JSON: content is N=max_tokens tokens, finish length" \
	"$(jqb '[.object,.choices[0].message.content,.choices[0].finish_reason]|@csv')" \
	"\"chat.completion\",\"$(toks 5)\",\"length\""
eq "openai chat JSON: usage 3 + 5 = 8" "$(jqb '[.usage.prompt_tokens,.usage.completion_tokens,.usage.total_tokens]|@csv')" "3,5,8"
post /v1/chat/completions '{"model":"m","messages":[{"role":"system","content":"abc"},{"role":"user","content":[{"type":"text","text":"defgh"},{"type":"image_url","image_url":{"url":"x"}}]}],"max_completion_tokens":100}'
eq "openai chat JSON: prompt counts every message's text (8 bytes: 2), default length 16, stop" \
	"$(jqb '[.usage.prompt_tokens,.usage.completion_tokens,.choices[0].finish_reason]|@csv')" '2,16,"stop"'
grep -qi '^content-length:' "$HB" && ok "JSON answers carry Content-Length" || notok "JSON answers carry Content-Length"

post /v1/completions '{"model":"m","prompt":["abcd","efghi"],"max_tokens":2}'
eq "openai completions JSON: 9 bytes -> 3, 2 tokens" \
	"$(jqb '[.object,.choices[0].text,.usage.prompt_tokens,.usage.completion_tokens]|@csv')" \
	"\"text_completion\",\"$(toks 2)\",3,2"
post /v1/embeddings '{"model":"e","input":["abcd","abcdefgh"]}'
eq "openai embeddings JSON: 2 vectors of 8 floats, 12 bytes -> 3, no completion" \
	"$(jqb '[(.data|length),(.data[1].embedding|length),.usage.prompt_tokens,.usage.total_tokens]|@csv')" "2,8,3,3"
post /v1/embeddings '{"model":"e","input":"abcd","encoding_format":"base64","dimensions":3}'
eq "openai embeddings base64: 3 float32 = 12 bytes" "$(jqb '.data[0].embedding' | base64 -d | wc -c)" 12
post /v1/responses '{"model":"m","instructions":"abcd","input":[{"role":"user","content":"efgh"}],"max_output_tokens":4}'
eq "openai responses JSON: incomplete at max_output_tokens, usage 2 + 4" \
	"$(jqb '[.status,.incomplete_details.reason,.output[0].content[0].text,.usage.input_tokens,.usage.output_tokens]|@csv')" \
	"\"incomplete\",\"max_output_tokens\",\"$(toks 4)\",2,4"
post /v1beta/models/gemini-x:generateContent '{"contents":[{"role":"user","parts":[{"text":"hello world!"}]}],"generationConfig":{"maxOutputTokens":3}}'
eq "gemini JSON: model from the path, MAX_TOKENS, usageMetadata 3 + 3" \
	"$(jqb '[.modelVersion,.candidates[0].finishReason,.candidates[0].content.parts[0].text,.usageMetadata.promptTokenCount,.usageMetadata.candidatesTokenCount,.usageMetadata.totalTokenCount]|@csv')" \
	"\"gemini-x\",\"MAX_TOKENS\",\"$(toks 3)\",3,3,6"
post /v1beta/openai/chat/completions "$CHAT"
eq "gemini openai-compatible JSON: usage 3 + 5" "$(jqb '[.usage.prompt_tokens,.usage.completion_tokens]|@csv')" "3,5"
post /compatible-mode/v1/chat/completions "$CHAT"
eq "dashscope compatible JSON: usage 3 + 5" "$(jqb '[.usage.prompt_tokens,.usage.completion_tokens]|@csv')" "3,5"
post /v1/messages '{"model":"claude-x","max_tokens":5,"system":"abcd","messages":[{"role":"user","content":[{"type":"text","text":"hello world!"}]}]}'
eq "anthropic JSON: 16 bytes -> 4, max_tokens stop, usage" \
	"$(jqb '[.type,.stop_reason,.content[0].text,.usage.input_tokens,.usage.output_tokens]|@csv')" \
	"\"message\",\"max_tokens\",\"$(toks 5)\",4,5"

# --- every shape, SSE --------------------------------------------------------------------------
post /v1/chat/completions '{"model":"m","messages":'"$MSG"',"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}'
eq "openai chat SSE: text/event-stream, chunked" "$(grep -ci -e '^content-type: text/event-stream' -e '^transfer-encoding: chunked' "$HB")" 2
eq "openai chat SSE: every event parses; role, 4 tokens, finish, usage chunk, [DONE]" \
	"$(sse_data | jq -sc '[length, (map(.choices[0].delta.content // "")|join("")), (map(.choices[0].finish_reason // empty)|join(",")), .[-1].usage.prompt_tokens, .[-1].usage.completion_tokens, (.[-1].choices|length), .[0].choices[0].delta.role]')|$(grep -c '^data: \[DONE\]' "$RB")" \
	"[7,\"$(toks 4)\",\"length\",3,4,0,\"assistant\"]|1"
post /v1/chat/completions '{"model":"m","messages":'"$MSG"',"max_tokens":2,"stream":true}'
eq "openai chat SSE without include_usage: no usage anywhere" "$(sse_data | jq -s '[.[]|select(has("usage"))]|length')" 0
post /v1/completions '{"model":"m","prompt":"abcd","max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}'
eq "openai completions SSE: 2 tokens, usage 1 + 2" \
	"$(sse_data | jq -sc '[(map(.choices[0].text // "")|join("")), .[-1].usage.prompt_tokens, .[-1].usage.completion_tokens]')" \
	"[\"$(toks 2)\",1,2]"
post /v1/responses '{"model":"m","input":"hello world!","max_output_tokens":3,"stream":true}'
eq "openai responses SSE: event names match types, sequence numbers 0.., deltas, final usage" \
	"$(tr -d '\r' <"$RB" | sed -n 's/^event: //p' | paste -sd, | md5sum | cut -c1-8)|$(sse_data | jq -sc '[(map(.type)|join(",")|length > 0), ([.[].sequence_number] == [range(length)]), (map(select(.type=="response.output_text.delta").delta)|join("")), .[-1].response.usage.input_tokens, .[-1].response.usage.output_tokens]')" \
	"$(sse_data | jq -r .type | paste -sd, | md5sum | cut -c1-8)|[true,true,\"$(toks 3)\",3,3]"
post '/v1beta/models/gemini-x:streamGenerateContent?alt=sse' '{"contents":[{"parts":[{"text":"hello world!"}]}],"generationConfig":{"maxOutputTokens":3}}'
eq "gemini SSE: CRLF-separated events, cumulative usageMetadata, finishReason last" \
	"$(grep -c $'\r$' "$RB")|$(sse_data | jq -sc '[length, (map(.candidates[0].content.parts[0].text)|join("")), (map(.usageMetadata.candidatesTokenCount)), .[-1].candidates[0].finishReason, .[-1].usageMetadata.promptTokenCount]')" \
	"6|[3,\"$(toks 3)\",[1,2,3],\"MAX_TOKENS\",3]"
post /v1beta/models/gemini-x:streamGenerateContent '{"contents":[{"parts":[{"text":"hello world!"}]}],"generationConfig":{"maxOutputTokens":2}}'
eq "gemini stream without alt=sse: one JSON array" "$(jqb '[length, .[-1].usageMetadata.candidatesTokenCount]|@csv')" "2,2"
# a client that accepts gzip gets its JSON answer compressed, as from OpenAI's servers
post /v1/chat/completions '{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}' \
	-H 'Accept-Encoding: deflate, gzip'
eq "Accept-Encoding: gzip: a gzip JSON answer (Content-Encoding)" \
	"$(grep -ci '^content-encoding: gzip' "$HB"),$(gzip -dc <"$RB" | jq -r .usage.completion_tokens)" "1,3"
for p in /v1beta/openai/chat/completions /compatible-mode/v1/chat/completions; do
	post $p '{"model":"m","messages":'"$MSG"',"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}'
	eq "$p SSE: usage chunk 3 + 2, [DONE]" \
		"$(sse_data | jq -sc '[.[-1].usage.prompt_tokens, .[-1].usage.completion_tokens]')|$(grep -c '^data: \[DONE\]' "$RB")" "[3,2]|1"
done
post /v1/messages '{"model":"c","max_tokens":3,"stream":true,"messages":[{"role":"user","content":"hello world!"}]}'
eq "anthropic SSE: the event sequence" "$(tr -d '\r' <"$RB" | sed -n 's/^event: //p' | uniq | paste -sd,)" \
	"message_start,content_block_start,ping,content_block_delta,content_block_stop,message_delta,message_stop"
eq "anthropic SSE: message_start input 3, deltas, message_delta output 3, stop max_tokens" \
	"$(sse_data | jq -sc '[.[0].message.usage.input_tokens, (map(select(.type=="content_block_delta").delta.text)|join("")), (map(select(.type=="message_delta"))[0]|.usage.output_tokens, .delta.stop_reason)]')" \
	"[3,\"$(toks 3)\",3,\"max_tokens\"]"

# --- output length controls --------------------------------------------------------------------
post /v1/chat/completions "$CHAT" -H 'x-stub-tokens: 50' -H 'x-stub-ignore-max-tokens: 1'
eq "x-stub-ignore-max-tokens: 50 tokens past max_tokens 5, reported honestly" \
	"$(jqb '[.usage.completion_tokens, (.choices[0].message.content|length)]|@csv')" "50,200"
post /v1/chat/completions "$CHAT" -H 'x-stub-tokens: 50'
eq "max_tokens honoured: 5 of 50 wanted" "$(jqb .usage.completion_tokens)" 5
post /v1/chat/completions '{"model":"m","messages":'"$MSG"'}' -H 'x-stub-tokens: 0'
eq "x-stub-tokens 0: empty content, 0 completion tokens" "$(jqb '[.choices[0].message.content,.usage.completion_tokens]|@csv')" '"",0'
post /v1/messages '{"model":"c","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"x"}]}' \
	-H 'x-stub-ignore-max-tokens: true' -H 'x-stub-tokens: 7'
eq "anthropic stream ignoring max_tokens: 7 deltas, message_delta says 7" \
	"$(sse_data | jq -sc '[(map(select(.type=="content_block_delta"))|length), (map(select(.type=="message_delta"))[0].usage.output_tokens)]')" "[7,7]"

# --- latency, hang, disconnect, chunk delay ----------------------------------------------------
t=$(curl -s -m 10 -o /dev/null -w '%{time_total}' -d "$CHAT" -H 'x-stub-latency-ms: 400' "$B/v1/chat/completions")
check "x-stub-latency-ms 400: the answer takes at least 0.4 s" awk -v t="$t" 'BEGIN { exit !(t >= 0.4) }'
rm -f "$RB"
curl -s -m 0.5 -o "$RB" -d "$CHAT" -H 'x-stub-hang: 1' "$B/v1/chat/completions"; rc=$?
eq "x-stub-hang: no answer within 0.5 s (curl timeout 28), no bytes" "$rc:$(cat "$RB" 2>/dev/null | wc -c)" "28:0"
curl -s -m 10 -N -o "$RB" -d '{"model":"m","messages":'"$MSG"',"stream":true}' -H 'x-stub-disconnect-after: 3' \
	"$B/v1/chat/completions"; rc=$?
eq "x-stub-disconnect-after 3: 3 events, then the connection closes mid-stream (curl 18)" \
	"$rc:$(grep -c '^data: ' "$RB")" "18:3"
curl -s -m 10 -o "$RB" -d "$CHAT" -H 'x-stub-disconnect-after: 10' "$B/v1/chat/completions"; rc=$?
eq "x-stub-disconnect-after on a JSON answer: 10 body bytes, then closed" "$rc:$(wc -c <"$RB")" "18:10"
curl -s -m 10 -N -o "$RB" -d '{"model":"m","messages":'"$MSG"',"stream":true}' -H 'x-stub-error-after: 2' \
	"$B/v1/chat/completions"; rc=$?
eq "x-stub-error-after 2 (openai): 2 events, then an error event, and the stream ends cleanly" \
	"$rc|$(sse_data | jq -sc '[length, .[-1].error.type]')|$(grep -c '^data: \[DONE\]' "$RB")" '0|[3,"server_error"]|0'
post /v1/messages '{"model":"c","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}' \
	-H 'x-stub-error-after: 4'
eq "x-stub-error-after 4 (anthropic): event: error with overloaded_error, no message_stop" \
	"$(tr -d '\r' <"$RB" | sed -n 's/^event: //p' | tail -1)|$(sse_data | jq -sc '.[-1].error.type')|$(grep -c message_stop "$RB")" \
	'error|"overloaded_error"|0'
post '/v1beta/models/g:streamGenerateContent?alt=sse' '{"contents":[{"parts":[{"text":"x"}]}]}' -H 'x-stub-error-after: 1'
eq "x-stub-error-after 1 (gemini): the second event is an INTERNAL error" \
	"$(sse_data | jq -sc '[length, .[-1].error.status]')" '[2,"INTERNAL"]'
eq "stats: stream_errors counts the three" "$(stub_stat total stream_errors)" 3
# 6 events (role, 3 tokens, finish, DONE) 150 ms apart: the first is read well before the last
curl -s -m 10 -N -d '{"model":"m","messages":'"$MSG"',"stream":true}' -H 'x-stub-tokens: 3' \
	-H 'x-stub-chunk-delay-ms: 150' "$B/v1/chat/completions" |
	while IFS= read -r l; do [ -n "$l" ] && echo "$(date +%s.%N) ${l:0:12}"; done >"$WORK/times"
eq "x-stub-chunk-delay-ms: all 6 events arrive" "$(wc -l <"$WORK/times")" 6
check "x-stub-chunk-delay-ms 150: each event is flushed when produced (first to last >= 0.7 s)" \
	awk 'NR==1 { a = $1 } END { exit !($1 - a >= 0.7) }' "$WORK/times"

# --- a slow stream does not hold up other requests ---------------------------------------------
curl -s -m 20 -N -o "$WORK/slow" -d '{"model":"m","messages":'"$MSG"',"stream":true}' -H 'x-stub-tokens: 10' \
	-H 'x-stub-chunk-delay-ms: 150' "$B/v1/chat/completions" &
slow=$!
curl -s -m 20 -o /dev/null -d "$CHAT" -H 'x-stub-hang: 1' "$B/v1/chat/completions" &
hang=$!
sleep 0.3
fast_ok=0
for i in 1 2 3 4 5 6; do
	s=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -d "$CHAT" "$B/v1/chat/completions")
	[ "$s" = 200 ] && fast_ok=$((fast_ok + 1))
done
check "while a stream sleeps and a request hangs, 6 other requests are answered (2 s bound each)" \
	test "$fast_ok" = 6
check "... and the slow stream was still running then" kill -0 $slow
kill $hang 2>/dev/null
wait $slow
eq "... and it completes whole (13 events)" "$(grep -c '^data: ' "$WORK/slow")" 13

# --- errors on command ------------------------------------------------------------------------
post /v1/chat/completions "$CHAT" -H 'x-stub-status: 429' -H 'x-stub-retry-after: 7'
eq "429 (openai): rate_limit_exceeded body" "$STATUS|$(jqb '[.error.type,.error.code]|@csv')" '429|"requests","rate_limit_exceeded"'
eq "429 (openai): Retry-After, retry-after-ms and x-ratelimit-reset-*" \
	"$(tr -d '\r' <"$HB" | grep -iE '^(retry-after|retry-after-ms|x-ratelimit-reset-requests|x-ratelimit-reset-tokens):' | sort -f | paste -sd' ')" \
	"retry-after-ms: 7000 Retry-After: 7 x-ratelimit-reset-requests: 7s x-ratelimit-reset-tokens: 7s"
post /v1beta/models/g:generateContent '{"contents":[{"parts":[{"text":"x"}]}]}' -H 'x-stub-status: 429'
eq "429 (gemini): RESOURCE_EXHAUSTED with RetryInfo" "$STATUS|$(jqb '[.error.code,.error.status,.error.details[0].retryDelay]|@csv')" '429|429,"RESOURCE_EXHAUSTED","1s"'
post /v1/messages '{}' -H 'x-stub-status: 529'
eq "529 (anthropic): overloaded_error" "$STATUS|$(jqb '[.type,.error.type]|@csv')" '529|"error","overloaded_error"'
post /compatible-mode/v1/chat/completions "$CHAT" -H 'x-stub-status: 503'
eq "503 (dashscope): server_error" "$STATUS|$(jqb .error.type)" "503|server_error"

# --- runtime defaults: /stub/config ------------------------------------------------------------
eq "GET /stub/config: the runtime defaults" \
	"$(curl -s -m 5 "$B/stub/config" | jq -c '[.tokens,.status,.latency_ms,.hang,.disconnect_after]')" '[16,200,0,false,-1]'
s=$(curl -s -m 5 -o "$RB" -w '%{http_code}' -d '{"status":503,"tokens":2}' "$B/stub/config")
eq "POST /stub/config {status 503, tokens 2}: 200, echoed" "$s|$(jqb '[.status,.tokens]|@csv')" "200|503,2"
post /v1/messages '{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}]}'
eq "... then every request is a 503 in its provider's shape" "$STATUS|$(jqb .error.type)" "503|api_error"
post /v1/messages '{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}]}' -H 'x-stub-status: 200'
eq "... unless its header says otherwise (and tokens 2 is the default length)" "$STATUS|$(jqb .usage.output_tokens)" "200|2"
s=$(curl -s -m 5 -o "$RB" -w '%{http_code}' -d '{"status":200,"nope":1}' "$B/stub/config")
eq "an unknown key: 400, and nothing changes (status still 503)" \
	"$s|$(curl -s -m 5 "$B/stub/config" | jq .status)" "400|503"
s=$(curl -s -m 5 -o "$RB" -w '%{http_code}' -d '{"threads":4}' "$B/stub/config")
eq "a start-up option (threads) is not settable at run time: 400" "$s" 400
s=$(curl -s -m 5 -o "$RB" -w '%{http_code}' -d '{"status":200,"tokens":16,"hang":false,"disconnect_after":null}' "$B/stub/config")
eq "back to the defaults" "$s|$(jqb "[.status,.tokens,.disconnect_after]|@csv")" "200|200,16,-1"

# --- bad input ----------------------------------------------------------------------------------
bad() { # NAME PATH BODY WANT_STATUS JQ_FIELD [CURL ARGS]
	local n=$1 p=$2 body=$3 want=$4 f=$5
	shift 5
	post "$p" "$body" "$@"
	if [ "$STATUS" = "$want" ] && [ -n "$(jqb "$f // empty" 2>/dev/null)" ]; then ok "$n"; else
		notok "$n (got $STATUS: $(head -c 200 "$RB"))"; fi
}
bad "bad JSON: 400 openai-shaped" /v1/chat/completions '{"model":' 400 .error.message
bad "missing model: 400" /v1/chat/completions '{"messages":'"$MSG"'}' 400 .error.message
bad "max_tokens 0: 400" /v1/chat/completions '{"model":"m","messages":'"$MSG"',"max_tokens":0}' 400 .error.message
bad "max_tokens -5: 400" /v1/completions '{"model":"m","prompt":"x","max_tokens":-5}' 400 .error.message
bad "max_tokens 1.5: 400" /v1/chat/completions '{"model":"m","messages":'"$MSG"',"max_tokens":1.5}' 400 .error.message
bad "stream as a string: 400" /v1/chat/completions '{"model":"m","messages":'"$MSG"',"stream":"yes"}' 400 .error.message
bad "a duplicate key: 400" /v1/chat/completions '{"model":"m","model":"n","messages":'"$MSG"'}' 400 .error.message
bad "empty messages: 400" /v1/chat/completions '{"model":"m","messages":[]}' 400 .error.message
bad "gemini without contents: 400 INVALID_ARGUMENT" /v1beta/models/g:generateContent '{}' 400 '.error|select(.status=="INVALID_ARGUMENT")|.message'
bad "anthropic without max_tokens: 400 invalid_request_error" /v1/messages '{"model":"c","messages":'"$MSG"'}' 400 '.error|select(.type=="invalid_request_error")|.message'
bad "a bad x-stub-tokens: 400" /v1/chat/completions "$CHAT" 400 .error.message -H 'x-stub-tokens: many'
bad "an x-stub-status out of range: 400" /v1/chat/completions "$CHAT" 400 .error.message -H 'x-stub-status: 42'
bad "an unknown path: 404" /v2/nothing '{}' 404 .error.message
bad "GET on an LLM path: 405" /v1/chat/completions '' 405 .error.message -X GET
bad "a huge max_tokens is an upper bound, not an allocation" /v1/chat/completions \
	'{"model":"m","messages":'"$MSG"',"max_tokens":9223372036854775807}' 200 .usage.completion_tokens
raw() { # send raw bytes, print the status line's code
	timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$STUB_PORT"'; printf "%b" "$1" >&3; head -c 12 <&3 | cut -c10-12' _ "$1"
}
eq "two Content-Length headers: 400" "$(raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}')" 400
eq "Content-Length with Transfer-Encoding: 400" "$(raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}')" 400
eq "a malformed request line: 400" "$(raw 'GARBAGE\r\n\r\n')" 400
eq "a header without a colon: 400" "$(raw 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n')" 400
eq "a 20 KB header: 431" "$(raw "GET /healthz HTTP/1.1\r\nX-Big: $(head -c 20000 /dev/zero | tr '\0' a)\r\n\r\n")" 431
eq "a chunked request body is read" "$(raw 'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{"mod\r\n1b\r\nel":"e","input":"abcdefgh"}\r\n0\r\n\r\n')" 200
# a second stub with a small body limit
"$STUB" --listen 127.0.0.1:0 --max-body 1000 >"$WORK/stub2.out" 2>"$WORK/stub2.log" &
STUB2_PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/stub2.out" && break; sleep 0.1; done
P2=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$WORK/stub2.out")
s=$(head -c 5000 /dev/zero | tr '\0' a | curl -s -m 5 -o "$RB" -w '%{http_code}' --data-binary @- "http://127.0.0.1:$P2/v1/chat/completions")
eq "a body over --max-body: 413, openai-shaped" "$s|$(jqb .error.type)" "413|invalid_request_error"
kill -TERM "$STUB2_PID"
for _ in $(seq 200); do kill -0 "$STUB2_PID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$STUB2_PID" 2>/dev/null
wait "$STUB2_PID"; rc=$?
STUB2_PID=
eq "the second stub exits 0 on SIGTERM" $rc 0

# --- keep-alive and pipelining ------------------------------------------------------------------
n=$(curl -s -m 10 -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}\n' -d "$CHAT" \
	"$B/v1/chat/completions" "$B/v1/chat/completions" "$B/v1/chat/completions" | paste -sd,)
eq "keep-alive: three requests on one connection" "$n" "1,0,0"
REQ='POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n{"model":"e","input":"abcdefgh"}'
got=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$STUB_PORT"'; printf "%b%b%b" "$1" "$1" "$2" >&3; cat <&3' _ \
	"$REQ" 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n' | grep -o 'HTTP/1.1 200' | wc -l)
eq "pipelining: three requests in one write, three answers in order" "$got" 3
s=$(curl -s -m 10 -0 -N -o "$RB" -w '%{http_code}' -d '{"model":"m","messages":'"$MSG"',"stream":true}' "$B/v1/chat/completions")
eq "an HTTP/1.0 stream is not chunked and ends with the connection" "$s|$(grep -c '^data: \[DONE\]' "$RB")|$(grep -c '^[0-9a-f]*\r$' "$RB")" "200|1|0"

# --- stats and reset ----------------------------------------------------------------------------
stub_reset
eq "reset: every counter is 0" "$(curl -s -m 5 "$B/stub/stats" | jq '[.[][]]|add')" 0
sum_p=0 sum_c=0
post /v1/chat/completions "$CHAT"
sum_p=$((sum_p + $(jqb .usage.prompt_tokens))) sum_c=$((sum_c + $(jqb .usage.completion_tokens)))
post /v1/chat/completions '{"model":"m","messages":'"$MSG"',"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}'
sum_p=$((sum_p + $(sse_data | jq -s '.[-1].usage.prompt_tokens'))) sum_c=$((sum_c + $(sse_data | jq -s '.[-1].usage.completion_tokens')))
post '/v1beta/models/g:streamGenerateContent?alt=sse' '{"contents":[{"parts":[{"text":"hello world! hello"}]}]}' -H 'x-stub-tokens: 6'
sum_p=$((sum_p + $(sse_data | jq -s '.[-1].usageMetadata.promptTokenCount'))) sum_c=$((sum_c + $(sse_data | jq -s '.[-1].usageMetadata.candidatesTokenCount')))
post /v1/messages '{"model":"c","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hello world!"}]}'
sum_p=$((sum_p + $(sse_data | jq -s '.[0].message.usage.input_tokens'))) sum_c=$((sum_c + $(sse_data | jq -s 'map(select(.type=="message_delta"))[0].usage.output_tokens')))
post /v1/messages '{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"hello world!"}]}' -H 'x-stub-status: 500'
curl -s -m 10 -N -o /dev/null -d '{"model":"m","messages":'"$MSG"',"stream":true,"stream_options":{"include_usage":true}}' \
	-H 'x-stub-disconnect-after: 4' "$B/v1/chat/completions"
curl -s -m 0.5 -o /dev/null -d "$CHAT" -H 'x-stub-hang: 1' "$B/v1/chat/completions"
sleep 0.2
S=$(curl -s -m 5 "$B/stub/stats")
eq "stats: total prompt/completion tokens = the sum of the usage the answers carried" \
	"$(jq -c '[.total.prompt_tokens,.total.completion_tokens]' <<<"$S")" "[$sum_p,$sum_c]"
eq "stats: per shape (openai_chat requests, streams, cut, client_gone, hung; generated counts the cut stream's 3 tokens)" \
	"$(jq -c '.openai_chat|[.requests,.streams,.cut,.client_gone,.hung,.generated_tokens,.stream_errors]' <<<"$S")" "[4,2,1,1,1,12,0]"
eq "stats: gemini and anthropic (errors count the 500)" \
	"$(jq -c '[.gemini.requests,.gemini.completion_tokens,.anthropic.requests,.anthropic.errors,.anthropic.prompt_tokens]' <<<"$S")" "[1,6,2,1,3]"

# --- many connections at once --------------------------------------------------------------------
if command -v wrk >/dev/null; then
	printf "wrk.method = \"POST\"\nwrk.body = '%s'\n" "$CHAT" >"$WORK/w.lua"
	wrk -t1 -c200 -d1s -s "$WORK/w.lua" "$B/v1/chat/completions" >"$WORK/wrk" 2>&1
	check "200 concurrent keep-alive connections: no socket errors, no non-2xx" \
		not grep -qE 'Socket errors|Non-2xx' "$WORK/wrk"
fi

check "the stub survived all of it" curl -s -m 5 -o /dev/null "$B/healthz"
stop_stub; rc=$?
eq "SIGTERM: exit 0 (ASan: no leak, no error)" "$rc" 0
check "nothing on the stub's stderr" test ! -s "$STUB_LOG"
tap_done
