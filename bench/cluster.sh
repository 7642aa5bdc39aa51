#!/usr/bin/env bash
# bench/cluster.sh — issue 12's cluster figures: three cmd/demo nodes on one PostgreSQL,
# driven by cmd/mqttload. Prints one markdown table; results in $BENCH_WORK/results.jsonl.
#
#   bench/cluster.sh                         # all three scenarios (a few minutes)
#   SCENARIOS="single cross" bench/cluster.sh
#
# Scenarios (each on a fresh schema, so a fresh store, with the three nodes started anew):
#   single    baseline: publishers and subscribers all on node n1 (n2, n3 up and idle)
#   cross     publishers on n1, subscribers on n2: every message crosses nodes
#   failover  cross with -reconnect: publishers on n1, subscribers spread over n2 and n3;
#             n2 is SIGKILLed once mid-run and restarted; its subscribers move to n3
#             (their next address) and resume their persistent sessions there
# Sizes (env): PUBS/SUBS (8/8), QOS (1), SIZE (256), COUNT messages for single and cross
# (20000), MAX_PUBLISH cap on their publishing (20s), FAIL_DURATION seconds of publishing
# for failover (20), KILL_AT seconds into it (FAIL_DURATION/3), RESTART_AFTER seconds
# between the kill and the restart (2), LEASE the nodes' -lease (5s), SETTLE (30s:
# longer than LEASE, as a dead node's sessions can be taken over after it).
# PORT_BASE: nodes on 127.0.0.1:PORT_BASE+1..+3, PostgreSQL on +4 (default 18850).
# BENCH_WORK: directory for binaries, logs and results (default a new /tmp dir).
# MQTTSTORE_POSTGRES_DSN: use this PostgreSQL server (a fresh schema per scenario) instead
# of a container from ${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local}.
#
# Cluster mode needs cmd/demo's -node and -lease flags (issue 12). With a cmd/demo that
# lacks them the script says so, runs the single-node baseline on one node alone and
# reports cross and failover as not run: two brokers on one schema are unsafe there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

SCENARIOS=${SCENARIOS:-"single cross failover"}
PUBS=${PUBS:-8}
SUBS=${SUBS:-8}
QOS=${QOS:-1}
SIZE=${SIZE:-256}
COUNT=${COUNT:-20000}
MAX_PUBLISH=${MAX_PUBLISH:-20s}
FAIL_DURATION=${FAIL_DURATION:-20}
KILL_AT=${KILL_AT:-$((FAIL_DURATION / 3))}
RESTART_AFTER=${RESTART_AFTER:-2}
LEASE=${LEASE:-5s}
SETTLE=${SETTLE:-30s}
PORT_BASE=${PORT_BASE:-18850}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/mqttcluster.XXXXXX)}
mkdir -p "$WORK/bin" "$WORK/logs"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
BIN=$WORK/bin
NODES=(n1 n2 n3)
declare -A PORT PID
for k in 0 1 2; do PORT[${NODES[$k]}]=$((PORT_BASE + 1 + k)); done
LOAD_PID=""

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
addr() { echo "127.0.0.1:${PORT[$1]}"; }

command -v jq >/dev/null || {
  log "installing jq"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
}
log "building cmd/demo and cmd/mqttload into $BIN"
go build -o "$BIN/demo" ./cmd/demo
go build -o "$BIN/mqttload" ./cmd/mqttload
CLUSTER=1
if ! "$BIN/demo" -h 2>&1 | grep -qE '^ +-node( |$)'; then
  CLUSTER=0
  log "NOTE: cmd/demo has no -node flag (no cluster mode): running the single-node baseline on one node only"
fi

# ---- PostgreSQL and cleanup -------------------------------------------------------------
# shellcheck source=bench/pg.sh
. bench/pg.sh
cleanup() {
  if [ -n "$LOAD_PID" ]; then kill -KILL "$LOAD_PID" 2>/dev/null || true; fi
  for n in "${NODES[@]}"; do
    if [ -n "${PID[$n]:-}" ]; then kill -KILL "${PID[$n]}" 2>/dev/null || true; fi
  done
  pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! pg_start $((PORT_BASE + 4)); then
  log "no MQTTSTORE_POSTGRES_DSN and no image ${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local}: nothing to run"
  exit 2
fi

# ---- nodes ----------------------------------------------------------------------------------
# start_node NAME: starts node NAME on $STORE_URL and waits (at most 120 s) until it accepts.
start_node() {
  local n=$1 cluster=()
  if [ "$CLUSTER" = 1 ]; then cluster=(-node "$n" -lease "$LEASE"); fi
  "$BIN/demo" -listen "$(addr "$n")" -store "$STORE_URL" "${cluster[@]}" -log-level warn \
    -max-queued 1000000 -max-queued-bytes $((1 << 30)) >>"$WORK/logs/$n.log" 2>&1 &
  PID[$n]=$!
  "$BIN/mqttload" -addr "$(addr "$n")" -phase wait -since "$(date +%s%N)" -timeout 120s -json >/dev/null 2>>"$WORK/logs/mqttload.log" || {
    log "node $n did not start; its log:"
    tail -20 "$WORK/logs/$n.log" >&2
    exit 1
  }
}

# stop_node NAME: SIGTERM, at most 30 s for a clean shutdown, then SIGKILL.
stop_node() {
  local n=$1 p=${PID[$1]:-}
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  PID[$n]=""
}

crash_node() {
  kill -KILL "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
  PID[$1]=""
}

# cluster_up SCENARIO: the three nodes (one without cluster mode) on a fresh schema.
cluster_up() {
  STORE_URL=$(pg_url "cluster_${1}_$(date +%s%N)")
  local n
  for n in "${NODES[@]}"; do
    start_node "$n"
    [ "$CLUSTER" = 1 ] || break
  done
}

cluster_down() {
  local n
  for n in "${NODES[@]}"; do stop_node "$n"; done
}

# record SCENARIO PUB_NODES SUB_NODES JSON [EXTRA_JSON]: one tagged result line.
record() {
  local json=${4:-} extra=${5:-}
  [ -n "$json" ] || json='{}'
  [ -n "$extra" ] || extra='{}'
  printf '%s\n%s\n' "$json" "$extra" | jq -cs --arg sc "$1" --arg pn "$2" --arg sn "$3" --argjson cl "$CLUSTER" \
    'add + {scenario: $sc, pub_nodes: $pn, sub_nodes: $sn, cluster_mode: ($cl == 1)}' >>"$RESULTS"
}

not_run() {
  record "$1" "$2" "$3" '{}' '{"not_run": "cmd/demo has no cluster mode (-node)"}'
}

# load ARGS: one bounded mqttload run; its JSON line on stdout, progress to the log.
load() {
  "$BIN/mqttload" -json -qos "$QOS" -size "$SIZE" -pubs "$PUBS" -subs "$SUBS" -timeout 10m "$@" 2>>"$WORK/logs/mqttload.log" || true
}

# ---- scenarios --------------------------------------------------------------------------------
single() {
  cluster_up single
  record single n1 n1 "$(load -addr "$(addr n1)" -count "$COUNT" -duration "$MAX_PUBLISH" -settle "$SETTLE" -prefix single)"
  cluster_down
}

cross() {
  if [ "$CLUSTER" = 0 ]; then not_run cross n1 n2; return; fi
  cluster_up cross
  record cross n1 n2 "$(load -addr "$(addr n1)" -pub-addr "$(addr n1)" -sub-addr "$(addr n2)" \
    -count "$COUNT" -duration "$MAX_PUBLISH" -settle "$SETTLE" -prefix cross)"
  cluster_down
}

failover() {
  if [ "$CLUSTER" = 0 ]; then not_run failover n1 "n2,n3 (n2 killed)"; return; fi
  cluster_up failover
  local out=$WORK/failover.json
  "$BIN/mqttload" -json -reconnect -qos "$QOS" -size "$SIZE" -pubs "$PUBS" -subs "$SUBS" \
    -addr "$(addr n1)" -pub-addr "$(addr n1)" -sub-addr "$(addr n2),$(addr n3)" \
    -duration "${FAIL_DURATION}s" -settle "$SETTLE" -timeout 10m -prefix failover \
    >"$out" 2>>"$WORK/logs/mqttload.log" &
  LOAD_PID=$!
  local kills=0 t0 down_ms=0
  sleep "$KILL_AT"
  if kill -0 "$LOAD_PID" 2>/dev/null; then
    log "failover: SIGKILL n2"
    t0=$(date +%s%N)
    crash_node n2
    kills=1
    sleep "$RESTART_AFTER"
    start_node n2
    down_ms=$((($(date +%s%N) - t0) / 1000000))
    log "failover: n2 back after ${down_ms} ms"
  fi
  wait "$LOAD_PID" || true
  LOAD_PID=""
  record failover n1 "n2,n3 (n2 killed)" "$(cat "$out" 2>/dev/null)" "{\"kills\": $kills, \"n2_down_ms\": $down_ms}"
  cluster_down
}

date -u +'%Y-%m-%d %H:%M UTC' >"$WORK/started"
for sc in $SCENARIOS; do
  case $sc in
    single | cross | failover) log "scenario $sc"; "$sc" ;;
    *) log "unknown scenario $sc (single, cross, failover)"; exit 2 ;;
  esac
done

# ---- table --------------------------------------------------------------------------------------
{
  echo "## bench/cluster.sh — started $(cat "$WORK/started"), $(nproc) cores, $(uname -sr)"
  echo
  if [ "$CLUSTER" = 1 ]; then nodes="3 nodes (cmd/demo -node nK -lease $LEASE)"; else nodes="1 node (cmd/demo without cluster mode)"; fi
  echo "$nodes on one PostgreSQL; $PUBS publishers, $SUBS persistent subscribers, QoS $QOS, $SIZE B;" \
    "single and cross: $COUNT messages (at most $MAX_PUBLISH of publishing); failover: ${FAIL_DURATION}s of publishing, n2 SIGKILLed at ${KILL_AT}s and restarted ${RESTART_AFTER}s later."
  echo
  header="| scenario | publishers on | subscribers on | msgs/s | p50 ms | p99 ms | acked (owed) | received | lost | duplicates | reconnects | failovers | verdict |"
  echo "$header"
  echo "${header//[^|]/-}"
  jq -r 'if .not_run then "| \(.scenario) | \(.pub_nodes) | \(.sub_nodes) | - | - | - | - | - | - | - | - | - | not run: \(.not_run) |"
    else "| \(.scenario) | \(.pub_nodes) | \(.sub_nodes) | \(.msgs_per_s // 0 | floor) | \(.p50_ms // "?") | \(.p99_ms // "?") | \(.acked // 0) (\(.owed // 0)) | \(.received // 0) | \(.missing // "?") | \(.duplicates // "?") | \(.reconnects // 0) | \(.failovers // 0) | \(if .ok then "nothing lost" else (.reason // "no result: see logs/mqttload.log") end) |" end' "$RESULTS"
} | tee "$WORK/tables.md"
log "results: $RESULTS, table: $WORK/tables.md, logs: $WORK/logs"
