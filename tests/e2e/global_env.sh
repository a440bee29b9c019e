# global_env.sh - sourced by tests/e2e/test_global.sh and scripts/bench_global.sh after setting
# GHOSTS (host letters, e.g. "a b" or "a b c") and GNAME (a short name for namespaces and
# dirs): one leaky-agent per host, each in its own network namespace, pin dir, state dir, on one
# librdkafka mock cluster (tests/e2e/lt_kafka_mock) in the first host's namespace; the others
# reach it through a socat that listens on their loopback and connects from the first
# namespace (tests/e2e/hosts_env.sh, shared with test_config_sync.sh). Nothing listens on the
# host's loopback. Set AGENT, MOCK, GLOAD before sourcing to use other builds (the bench uses
# release ones).
# The grants topic of mode lease (global.grants_topic's default: the topic + ".grants") has as
# many partitions as the global topic: an allocator sends a bucket's grants to the partition of
# its demand.
HOSTS=$GHOSTS HNAME=$GNAME HTOPIC=global HMORE="lt.global.$GNAME.$$.grants:3"
. "$(dirname "${BASH_SOURCE[0]}")/hosts_env.sh"
GLOAD=${GLOAD:-$ROOT/build/san/tests/lt_gload}
GTOPIC=$XTOPIC

# gconfig JQ_OBJECT: each host's config, the global section as given (topic filled in)
gconfig() {
	local h
	for h in $GHOSTS; do
		"$AGENT" print-config | jq --arg b "$BOOT" --arg t "$UTOPIC" --arg g "$GTOPIC" \
			--arg s "host-$h" \
			'.kafka = {enabled: true, brokers: $b, topic: $t, config_topic: "",
				source: $s, message_timeout: "2s"} | .global = ({topic: $g} + '"$1"')' \
			>"$WORK/$h.json"
	done
}

gstatus() { req "$1" GET /api/v1/global/status; }
# until_is HOST JQ WANT [TRIES]: polls the global status (0.05 s a try; default 30 s)
until_is() {
	local i
	for ((i = 0; i < ${4:-600}; i++)); do
		gstatus "$1"
		[ "$(jqb "$2" 2>/dev/null)" = "$3" ] && return 0
		sleep 0.05
	done
	echo "# $1: $2 is $(jqb "$2" 2>/dev/null), want $3; status:" >&2
	jq -c 'del(.buckets)' "$RB" | sed 's/^/# /' >&2
	return 1
}
# until_allocators: mode lease: every partition of the global topic (3) is ready at one agent,
# and every host (at most 3) has one: the allocators' group has settled with every member in it
# (the mock cluster joins a member a few seconds after the first) and each owner has read its
# grants; bounded (40 s)
until_allocators() {
	local i h got idle
	for ((i = 0; i < 800; i++)); do
		idle=0
		got=$(for h in $GHOSTS; do
			gstatus "$h" && jq -c '.lease.ready[]' "$RB"
		done | sort | tr '\n' ,)
		for h in $GHOSTS; do
			gstatus "$h"
			[ "$(jqb '.lease.ready | length')" -gt 0 ] || idle=1
		done
		[ "$got" = '0,1,2,' ] && [ "$idle" = 0 ] && return 0
		sleep 0.05
	done
	echo "# ready partitions: $got (a host with none: $idle)" >&2
	return 1
}
# quota HOST ORG PROVIDER CAPACITY RATE: an org quota, set on that host
quota() {
	req "$1" PUT "/api/v1/admin/orgs/$2/quotas/$3" "{\"capacity\":$4,\"rate\":\"$5\"}"
	[ "$STATUS" = 200 ] || { echo "# quota on $1: $STATUS $(cat "$RB")" >&2; return 1; }
}
# consume HOST ORG PROVIDER TOKENS: one consume as a user of ORG; STATUS
consume() {
	local tok
	tok=$("$AGENT" --state-dir "${STATE[$1]}" mint-token --sub 00000000-0000-0000-0000-000000000001 \
		--roles USER --orgs "$2" --ttl 1h)
	STATUS=$(inns "$1" curl -s -o "$RB" -w '%{http_code}' -H "Authorization: Bearer $tok" \
		-H 'Content-Type: application/json' --data-binary \
		"{\"userId\":\"00000000-0000-0000-0000-000000000001\",\"orgId\":\"$2\",\"provider\":\"$3\",\"tokens\":$4}" \
		"http://127.0.0.1:$PORT/api/v1/tokens/consume")
}
# load HOST ORG PROVIDER TOKENS RATE SECONDS OUT: lt_gload from that host's namespace (GCONNS
# connections, default 4)
load() {
	local tok
	tok=$("$AGENT" --state-dir "${STATE[$1]}" mint-token --sub 00000000-0000-0000-0000-000000000001 \
		--roles USER --orgs "$2" --ttl 1h)
	inns "$1" "$GLOAD" -a 127.0.0.1:$PORT -H "Authorization: Bearer $tok" -c "${GCONNS:-4}" -r "$5" -d "$6" \
		-b "{\"userId\":\"00000000-0000-0000-0000-000000000001\",\"orgId\":\"$2\",\"provider\":\"$3\",\"tokens\":$4}" \
		>"$7"
}
# overshoot_run ORG PROVIDER C R_PER_S COST RATE SECONDS: every host drives the bucket at once,
# then tests/e2e/global_bound.py compares the overshoot with the formula; its JSON in $WORK/bound.json
overshoot_run() {
	local org=$1 prov=$2 cap=$3 rate=$4 cost=$5 rps=$6 secs=$7 h end n pids=() args=()
	local key="o/$2/$1"
	for h in $GHOSTS; do req "$h" POST /api/v1/global/measure; done
	for h in $GHOSTS; do
		load "$h" "$org" "$prov" "$cost" "$rps" "$secs" "$WORK/load-$h.txt" &
		pids+=($!)
	done
	wait "${pids[@]}"
	end=$(now_ms)
	n=$(($(wc -w <<<"$GHOSTS") - 1))
	# every host has applied a record of every other's stream stamped after the run: the
	# last admissions' unseen time is in tau
	for h in $GHOSTS; do
		until_is "$h" "[.buckets[] | select(.key == \"$key\") | .remote[] |
			select(.lastEventMs > $end)] | length" "$n" || return 1
	done
	for h in $GHOSTS; do
		gstatus "$h"
		cp "$RB" "$WORK/status-$h.json"
		args+=("$h=$WORK/load-$h.txt=$WORK/status-$h.json")
	done
	for h in $GHOSTS; do
		echo "# host $h answers: $(awk '{print $3}' "$WORK/load-$h.txt" | sort | uniq -c | tr '\n' ' ')" >&2
	done
	python3 "$ROOT/tests/e2e/global_bound.py" --capacity "$cap" --rate "$rate" --cost "$cost" \
		"${args[@]}" >"$WORK/bound.json"
}

# lease_run ORG LIMIT WINDOW_MS RATE SECONDS: mode lease, every host drives ORG's openai bucket
# (10 tokens, 100 requests/s each) for SECONDS at once; then tests/e2e/lease_bound.py counts
# every window from the admissions and the agents' status into $WORK/bound.json
lease_run() {
	local org=$1 lim=$2 w=$3 rate=$4 secs=$5 h pids=() args=()
	for h in $GHOSTS; do req "$h" POST /api/v1/global/measure; done
	for h in $GHOSTS; do
		load "$h" "$org" openai 10 100 "$secs" "$WORK/load-$h.txt" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for h in $GHOSTS; do
		gstatus "$h"
		cp "$RB" "$WORK/status-$h.json"
		args+=("$h=$WORK/load-$h.txt=$WORK/status-$h.json")
	done
	python3 "$ROOT/tests/e2e/lease_bound.py" --limit "$lim" --window-ms "$w" --rate "$rate" \
		--interval-ms 100 --cost 10 "${args[@]}" >"$WORK/bound.json"
}

