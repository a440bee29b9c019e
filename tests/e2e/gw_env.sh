# gw_env.sh - sourced by the gateway's e2e suites: agent_env.sh's private netns
# and agent, plus leaky-stub and leaky-gateway inside that netns, each on its own
# port, the gateway reading the agent's pins and secret. Set TOPIC first.
# Prints nothing on stdout (TAP only there).
. "$(dirname "${BASH_SOURCE[0]}")/agent_env.sh"
GW=${GW:-$ROOT/build/san/leaky-gateway}
STUB=${STUB:-$ROOT/build/san/leaky-stub}
STUB_PORT=19100
GW_PORT=18080
GWBASE=http://127.0.0.1:$GW_PORT
GW_LOG=$WORK/gateway.log
STUB_LOG=$WORK/stub.log
GW_PID= STUB_PID=

# What a gateway suite started: the gateway (its workers exit with it), the stub, and any
# GW_EXTRA_PIDS a suite adds. TERM (the gateway drains), then KILL what is left.
GW_EXTRA_PIDS=()
gw_cleanup() {
	local p=() q
	for q in $GW_PID $STUB_PID "${GW_EXTRA_PIDS[@]}"; do [ -n "$q" ] && p+=("$q"); done
	[ ${#p[@]} -eq 0 ] && return 0
	kill -TERM "${p[@]}" 2>/dev/null
	for _ in $(seq 20); do
		q=
		for x in "${p[@]}"; do kill -0 "$x" 2>/dev/null && q=1; done
		[ -z "$q" ] && return 0
		sleep 0.1
	done
	kill -KILL "${p[@]}" 2>/dev/null
	return 0
}
EXTRA_CLEANUP=gw_cleanup

# The agent's config for gateway suites: the four providers, request limits for
# API keys and provider pools, plus whatever JSON members are given ($1, may be "").
agent_config() {
	local extra=${1:-}
	"$AGENT" print-config | jq --argjson x "{${extra}}" '
		.token.providers = ["openai","gemini","qwen","anthropic"]
		| .token.key_requests = {"*": {"capacity": 1000, "rate": "100/s"}}
		| .token.provider_pools = {"*": {"capacity": 100000000, "rate": "1000000/s"}}
		| . * $x' >"$WORK/agent.json"
}

start_stub() {
	: >"$STUB_LOG"
	# nsenter execs the program: $! is its pid (a function in the background would be a
	# subshell, and killing that would orphan the program)
	nsenter --net=/run/netns/$NS "$STUB" --listen 127.0.0.1:$STUB_PORT "$@" >>"$STUB_LOG" 2>&1 &
	STUB_PID=$!
	for _ in $(seq 100); do
		inns curl -s -o /dev/null "http://127.0.0.1:$STUB_PORT/stub/stats" && return 0
		kill -0 "$STUB_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# stub: /' "$STUB_LOG" >&2
	return 1
}

# gw_config [ADMISSION_JSON_MEMBERS]: the gateway's config, providers on the stub
gw_config() {
	local extra=${1:-}
	local s=http://127.0.0.1:$STUB_PORT
	cat >"$WORK/gateway.json" <<JSON
{
  "listen": "127.0.0.1:$GW_PORT",
  "workers": ${GW_WORKERS:-1},
  "timeouts": { "connect_ms": 2000, "read_ms": 5000, "total_ms": 20000 },
  "providers": [
    {"name": "openai", "kind": "openai", "base_url": "$s"},
    {"name": "gemini", "kind": "gemini", "base_url": "$s"},
    {"name": "qwen", "kind": "qwen", "base_url": "$s"},
    {"name": "anthropic", "kind": "anthropic", "base_url": "$s"}
  ],
  "models": [
    {"pattern": "gemini-*", "providers": ["gemini"]},
    {"pattern": "qwen*", "providers": ["qwen"]},
    {"pattern": "claude-*", "providers": ["anthropic"]},
    {"pattern": "*", "providers": ["openai"]}
  ],
  "admission": { "pin_dir": "$PIN", "agent": "127.0.0.1:$PORT", "state_dir": "$STATE"${extra:+, $extra} }
}
JSON
}

start_gateway() {
	: >"$GW_LOG"
	nsenter --net=/run/netns/$NS "$GW" --config "$WORK/gateway.json" "$@" >>"$GW_LOG" 2>&1 &
	GW_PID=$!
	for _ in $(seq 100); do
		inns curl -s -o /dev/null "$GWBASE/" && return 0
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# gateway: /' "$GW_LOG" >&2
	return 1
}

# llm_stack USER_CAP ADMIN_CAP: the LLM suites' set-up, as TAP checks: budgets that do not
# leak during the test (1 token a day, so charges are exact) for the USER and ADMIN tiers,
# the agent, the stub on every provider, and a gateway whose tiers default to 32 (USER) and
# 64 (ADMIN) output tokens
llm_stack() {
	agent_config '"token": {"providers": ["openai","gemini","qwen","anthropic"],
		"tier_order": ["ADMIN","USER"], "default_tier": "USER",
		"tiers": {"USER": {"*": {"capacity": '"$1"', "rate": "1/d"}},
			  "ADMIN": {"*": {"capacity": '"$2"', "rate": "1/d"}}},
		"key_requests": {"*": {"capacity": 1000, "rate": "1/d"}},
		"provider_pools": {"*": {"capacity": 100000000, "rate": "1/d"}}}'
	check "agent attaches" start_agent --config "$WORK/agent.json"
	check "stub starts" start_stub
	gw_config '"tiers": [{"name": "ADMIN", "default_output_tokens": 64}, {"name": "USER", "default_output_tokens": 32}]'
	check "gateway starts" start_gateway
}

stop_gateway() {
	[ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null
	wait "$GW_PID" 2>/dev/null
	GW_PID=
}

# gwreq METHOD PATH CRED BODY [extra curl args...]: STATUS, body in $RB, headers in $HB.
# CRED: "key:<secret>" (X-API-Key), "jwt:<token>" (Authorization: Bearer) or "".
gwreq() {
	local m=$1 p=$2 cred=$3 body=$4
	shift 4
	local args=(-s -X "$m" -o "$RB" -D "$HB" -w '%{http_code}' --max-time 20)
	case $cred in
	key:*) args+=(-H "X-API-Key: ${cred#key:}") ;;
	jwt:*) args+=(-H "Authorization: Bearer ${cred#jwt:}") ;;
	esac
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	STATUS=$(inns curl "${args[@]}" "$@" "$GWBASE$p")
}
hdrv() { grep -i "^$1:" "$HB" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }
stub_stats() { inns curl -s "http://127.0.0.1:$STUB_PORT/stub/stats"; }
