#!/usr/bin/env bash
# bench/run.sh — issue 6's scenarios, our broker on every driver next to Mosquitto and
# Mochi, same load tool (cmd/mqttload), same run. Prints one table per scenario.
#
#   bench/run.sh                        # full run (about 15 minutes on 2 cores)
#   QUICK=1 bench/run.sh                # small sizes, a couple of minutes
#   BROKERS="bolt mosquitto" bench/run.sh
#   SCENARIOS="4" BROKERS="mem bolt badger postgres" bench/run.sh   # some scenarios only
#
# Sizes (env): S1_COUNT (100000), S2_COUNT (100000), S3_SESSIONS (10000),
# S3_QUEUED (10), S4_DURATION seconds (30), S4_KILLS (5), S4_QOS (2), PUBS/SUBS (16/16).
# Time caps keep the whole run under 20 minutes on 2 cores even where a broker is slow;
# a capped phase is visible in the tables (fewer messages queued, or some missing
# after a drain that ran out of time): S1_MAX (20s of publishing), S2_PUBLISH_MAX (30s),
# S2_DRAIN_MAX (45s), S3_PUBLISH_MAX (25s), S3_DRAIN_MAX (45s).
# BENCH_WORK: directory for binaries, stores, logs and results (default a new /tmp dir).
# BENCH_PROFILE=1: CPU profile of our broker (bolt) under scenario 1, summarised.
# BENCH_GOGC: GOGC for every Go broker (ours, Mochi), e.g. 400; unset: Mochi runs with Go's
# default (100), ours with the demo's own policy (-gc-percent 400 under -gc-soft-limit 64 MiB,
# cmd/demo/README.md), which GOGC in the environment turns off.
# SCENARIOS ("1 2 3 4"), BROKERS (below) and S1_EXTRA select what runs.
# TABLES_ONLY=1: print the tables of an earlier run's $BENCH_WORK/results.jsonl again.
# MQTTSTORE_POSTGRES_DSN: use this PostgreSQL server (a fresh schema per run) instead
# of a container from ${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH=/usr/local/go/bin:$PATH

if [ "${QUICK:-0}" = 1 ]; then
  : "${S1_COUNT:=20000}" "${S2_COUNT:=20000}" "${S3_SESSIONS:=1000}" "${S3_QUEUED:=10}" "${S4_DURATION:=15}" "${S4_KILLS:=3}"
fi
S1_COUNT=${S1_COUNT:-100000}
S2_COUNT=${S2_COUNT:-100000}
S3_SESSIONS=${S3_SESSIONS:-10000}
S3_QUEUED=${S3_QUEUED:-10}
S4_DURATION=${S4_DURATION:-30}
S4_KILLS=${S4_KILLS:-5}
# Scenario 4 runs at QoS 2 by default: mqttload's own exactly-once client, so a
# duplicate it reports is the broker's (S4_QOS=1 for the QoS 1 variant).
S4_QOS=${S4_QOS:-2}
S1_MAX=${S1_MAX:-20s}
S2_PUBLISH_MAX=${S2_PUBLISH_MAX:-30s}
S2_DRAIN_MAX=${S2_DRAIN_MAX:-45s}
S3_PUBLISH_MAX=${S3_PUBLISH_MAX:-25s}
S3_DRAIN_MAX=${S3_DRAIN_MAX:-45s}
PUBS=${PUBS:-16}
SUBS=${SUBS:-16}
BROKERS=${BROKERS:-"mem bolt badger postgres mosquitto mochi-bolt mochi-badger mochi-ours"}
# Scenario 1 also runs our broker with the settings whose durability matches the peers'
# (no fsync per commit): bolt sync=batch, badger sync=none, and postgres with
# synchronous_commit=off (reported beside the default's figure, never instead of it).
S1_EXTRA=${S1_EXTRA-"bolt-batch badger-none postgres-async"}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/mqttbench.XXXXXX)}
mkdir -p "$WORK/bin" "$WORK/data" "$WORK/logs"
RESULTS="$WORK/results.jsonl"
if [ "${TABLES_ONLY:-0}" = 1 ]; then
  [ -s "$RESULTS" ] || { echo "TABLES_ONLY=1 needs BENCH_WORK with a results.jsonl" >&2; exit 2; }
else
  : >"$RESULTS"
  date -u +'%Y-%m-%d %H:%M UTC' >"$WORK/started"
  cut -d' ' -f1-3 /proc/loadavg >"$WORK/load"
fi
BIN=$WORK/bin
PORT_OURS=${PORT_OURS:-18831}
PORT_MOSQ=${PORT_MOSQ:-18832}
PORT_MOCHI=${PORT_MOCHI:-18833}
PORT_PG=${PORT_PG:-18834}

# GORUN prefixes a Go broker's command: BENCH_GOGC as its GOGC, if set (env execs
# the broker, so $! is still the broker's pid).
GORUN=(env)
if [ -n "${BENCH_GOGC:-}" ]; then GORUN=(env "GOGC=$BENCH_GOGC"); fi

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- what it needs ------------------------------------------------------------------
if [ "${TABLES_ONLY:-0}" = 1 ]; then BROKERS=""; S1_EXTRA=""; SCENARIOS=" "; fi
need_apt=()
command -v mosquitto >/dev/null || need_apt+=(mosquitto)
command -v jq >/dev/null || need_apt+=(jq)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[ "${TABLES_ONLY:-0}" = 1 ] || log "building cmd/demo, cmd/mqttload, bench/mochi, bench/mochistore into $BIN"
[ "${TABLES_ONLY:-0}" = 1 ] || go build -o "$BIN/demo" ./cmd/demo
[ "${TABLES_ONLY:-0}" = 1 ] || go build -o "$BIN/mqttload" ./cmd/mqttload
[ "${TABLES_ONLY:-0}" = 1 ] || (cd bench/mochi && go build -o "$BIN/mochi" .)
[ "${TABLES_ONLY:-0}" = 1 ] || (cd bench/mochistore && go build -o "$BIN/mochistore" .)

# ---- PostgreSQL ------------------------------------------------------------------------
# shellcheck source=bench/pg.sh
. bench/pg.sh
cleanup() {
  [ -n "${BROKER_PID:-}" ] && kill -KILL "$BROKER_PID" 2>/dev/null || true
  pg_stop
}
trap cleanup EXIT
case " $BROKERS $S1_EXTRA " in *" postgres "* | *" postgres-async "*)
  if ! pg_start "$PORT_PG"; then
    log "NOTE: no MQTTSTORE_POSTGRES_DSN and no image ${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local}: skipping postgres"
    BROKERS=$(echo " $BROKERS " | sed 's/ postgres / /')
    S1_EXTRA=$(echo " $S1_EXTRA " | sed 's/ postgres-async / /')
  fi
  ;;
esac

# ---- brokers -----------------------------------------------------------------------------
# start NAME DIR [extra demo flags]: starts a broker on its own port with its state in DIR,
# sets BROKER_PID and ADDR, and waits until it accepts connections.
start() {
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir"
  local logf="$WORK/logs/$name.log"
  case $name in
    mosquitto)
      ADDR=127.0.0.1:$PORT_MOSQ
      # Started as root, Mosquitto drops to the mosquitto user, which must be able to
      # write its persistence file.
      if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$dir"; fi
      sed -e "s|@PORT@|$PORT_MOSQ|" -e "s|@DIR@|$dir|" -e "s|@AUTOSAVE@|${MOSQ_AUTOSAVE:-1}|" bench/mosquitto.conf >"$dir/mosquitto.conf"
      mosquitto -c "$dir/mosquitto.conf" >>"$logf" 2>&1 &
      ;;
    mochi-bolt | mochi-badger)
      ADDR=127.0.0.1:$PORT_MOCHI
      "${GORUN[@]}" "$BIN/mochi" -listen "$ADDR" -storage "${name#mochi-}" -path "$dir/store" -max-inflight 65535 >>"$logf" 2>&1 &
      ;;
    mochi-ours)
      # Mochi with the mqttstore hook (adapters/mochi) on our bolt driver.
      ADDR=127.0.0.1:$PORT_MOCHI
      "${GORUN[@]}" "$BIN/mochistore" -listen "$ADDR" -store "bolt://$dir/store.db?sync=${MOCHI_OURS_SYNC:-always}" -max-inflight 65535 >>"$logf" 2>&1 &
      ;;
    *)
      ADDR=127.0.0.1:$PORT_OURS
      local url
      case $name in
        mem) url="mem://" ;;
        bolt) url="bolt://$dir/bolt.db?sync=${BOLT_SYNC:-always}" ;;
        bolt-batch) url="bolt://$dir/bolt.db?sync=batch" ;;
        badger) url="badger://$dir/badger?sync=${BADGER_SYNC:-always}" ;;
        badger-none) url="badger://$dir/badger?sync=none" ;;
        postgres | postgres-async)
          [ -f "$dir/schema" ] || echo "bench_$(date +%s%N)" >"$dir/schema"
          url=$(pg_url "$(cat "$dir/schema")")
          if [ "$name" = postgres-async ]; then url="$url&synchronous_commit=off"; fi
          ;;
      esac
      # No connection rate limit (default 1000/s): the peers have none, and scenario 3
      # connects 10k sessions, scenario 4 reconnects every client after each kill.
      "${GORUN[@]}" "$BIN/demo" -listen "$ADDR" -store "$url" -log-level warn -max-connection-rate -1 \
        -max-queued "$((S2_COUNT + 1000))" -max-queued-bytes $((1 << 30)) "$@" >>"$logf" 2>&1 &
      ;;
  esac
  BROKER_PID=$!
  START_NS=$(date +%s%N)
  load -phase wait -since "$START_NS" -timeout 120s >/dev/null
  # A broker that could not bind its port has exited, and whatever answered on the
  # port is someone else's: stop rather than measure it.
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    log "$name exited at start (see $logf):"
    tail -3 "$logf" >&2
    exit 1
  fi
}

# stop: SIGTERM and wait (a clean shutdown; Mosquitto saves its state here).
stop() {
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}

crash() {
  kill -KILL "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}

peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$BROKER_PID/status" 2>/dev/null || echo "?"; }

# load ARGS: one mqttload run against $ADDR; prints its JSON line (stdout), progress to the log.
load() {
  "$BIN/mqttload" -addr "$ADDR" -json "$@" 2>>"$WORK/logs/mqttload.log" || true
}

# record SCENARIO BROKER JSON...: merges the JSON objects (mqttload's summary and the
# script's own figures) into one tagged result line.
record() {
  local sc=$1 br=$2; shift 2
  local parts=()
  for p in "$@"; do if [ -n "$p" ]; then parts+=("$p"); else parts+=("{}"); fi; done
  printf '%s\n' "${parts[@]}" | jq -cs --arg sc "$sc" --arg br "$br" --arg du "$(durability "$br")" \
    'add + {scenario: $sc, broker: $br, durability: $du}' >>"$RESULTS"
}
# json_or_empty: mqttload prints nothing when it could not run at all.
orempty() { if [ -n "$1" ]; then echo "$1"; else echo '{}'; fi; }

durability() {
  case $1 in
    mem) echo "none (RAM)" ;;
    bolt) echo "fsync per commit (sync=${BOLT_SYNC:-always})" ;;
    bolt-batch) echo "fsync every 1s (sync=batch)" ;;
    badger) echo "fsync per commit (sync=${BADGER_SYNC:-always})" ;;
    badger-none) echo "no fsync (sync=none)" ;;
    postgres) echo "WAL flush per commit" ;;
    postgres-async) echo "WAL flushed by the server within 3 x wal_writer_delay (synchronous_commit=off)" ;;
    mosquitto) echo "snapshot every ${MOSQ_AUTOSAVE:-1}s, nothing per message" ;;
    mochi-bolt) echo "bbolt fsync per event" ;;
    mochi-badger) echo "Badger, SyncWrites=false" ;;
    mochi-ours) echo "Mochi + mqttstore bolt hook, fsync per commit (sync=${MOCHI_OURS_SYNC:-always}, group commit)" ;;
  esac
}

# ---- scenarios ----------------------------------------------------------------------------
s1() {
  local b=$1 extra=()
  if [ "${BENCH_PROFILE:-0}" = 1 ] && [ "$b" = bolt ]; then extra=(-cpuprofile "$WORK/cpu-bolt.pprof"); fi
  start "$b" "$WORK/data/$b/s1" "${extra[@]}"
  local j
  j=$(load -phase run -pubs "$PUBS" -subs "$SUBS" -qos 1 -size 256 -count "$S1_COUNT" -duration "$S1_MAX" -prefix s1)
  record 1 "$b" "$j" "{\"rss_mb\":\"$(peak_rss_mb)\"}"
  stop
}

s2() {
  local b=$1
  start "$b" "$WORK/data/$b/s2"
  load -phase sessions -subs 1 -prefix s2 >/dev/null
  local p d
  p=$(load -phase publish -pubs "$PUBS" -subs 1 -qos 1 -size 256 -count "$S2_COUNT" -duration "$S2_PUBLISH_MAX" -prefix s2 -state "$WORK/s2-$b.json" -timeout 10m)
  d=$(load -phase drain -state "$WORK/s2-$b.json" -timeout "$S2_DRAIN_MAX" -settle 20s)
  local rss
  rss=$(peak_rss_mb)
  record 2 "$b" "$d" "{\"publish_rate_s2\": $(jq '.publish_rate // 0' <<<"$(orempty "$p")"), \"rss_mb\": \"$rss\"}"
  stop
}

s3() {
  local b=$1
  local dir=$WORK/data/$b/s3
  start "$b" "$dir"
  local s p
  s=$(load -phase sessions -subs "$S3_SESSIONS" -parallel 100 -prefix s3 -timeout 10m)
  p=$(load -phase publish -pubs "$PUBS" -subs "$S3_SESSIONS" -qos 1 -size 256 -count "$((S3_SESSIONS * S3_QUEUED))" -duration "$S3_PUBLISH_MAX" -prefix s3 -state "$WORK/s3-$b.json" -timeout 10m)
  local t0 t1
  t0=$(date +%s%N)
  stop
  t1=$(date +%s%N)
  start "$b" "$dir"
  local w
  w=$(load -phase wait -since "$START_NS" -timeout 5m)
  local d
  d=$(load -phase drain -state "$WORK/s3-$b.json" -parallel 200 -timeout "$S3_DRAIN_MAX" -settle 10s)
  local restart_s drained_s
  restart_s=$(jq '.wait_s // 0' <<<"$(orempty "$w")")
  drained_s=$(( ($(date +%s%N) - START_NS) / 1000000 ))
  record 3 "$b" "$d" "{\"sessions_s\": $(jq '.seconds // 0' <<<"$(orempty "$s")"), \"publish_rate_s3\": $(jq '.publish_rate // 0' <<<"$(orempty "$p")"), \"stop_s\": $(( (t1 - t0) / 1000000 ))e-3, \"restart_s\": $restart_s, \"restored_drained_s\": ${drained_s}e-3}"
  stop
}

s4() {
  local b=$1
  local dir=$WORK/data/$b/s4
  start "$b" "$dir"
  local out=$WORK/s4-$b.json
  "$BIN/mqttload" -addr "$ADDR" -json -reconnect -phase run -pubs "$PUBS" -subs "$SUBS" -qos "$S4_QOS" -size 256 \
    -duration "${S4_DURATION}s" -settle 15s -timeout 10m -prefix s4 >"$out" 2>>"$WORK/logs/mqttload.log" &
  local lpid=$! gap
  gap=$(awk -v d="$S4_DURATION" -v k="$S4_KILLS" 'BEGIN {printf "%.2f", d / (k + 1)}')
  local kills=0 t0 i wait_s
  t0=$(date +%s%N)
  for i in $(seq 1 "$S4_KILLS"); do
    # Kill i at t0 + i*gap, so that slow restarts do not push the last kills past
    # the end of the load.
    wait_s=$(awk -v t0="$t0" -v now="$(date +%s%N)" -v i="$i" -v g="$gap" 'BEGIN {w = (t0 + i * g * 1e9 - now) / 1e9; printf "%.2f", (w > 0 ? w : 0)}')
    sleep "$wait_s"
    kill -0 "$lpid" 2>/dev/null || break
    crash
    kills=$((kills + 1))
    start "$b" "$dir"
  done
  wait "$lpid" || true
  record 4 "$b" "$(cat "$out" 2>/dev/null || echo '{}')" "{\"kills\": $kills}"
  stop
}

# ---- tables --------------------------------------------------------------------------------
table() {
  local sc=$1 title=$2 header=$3 expr=$4
  # Only the scenarios that ran (SCENARIOS, or TABLES_ONLY's results).
  # (jq -e on a stream answers for the last input only: slurp the whole file.)
  jq -se --arg sc "$sc" 'any(.[]; .scenario == $sc)' "$RESULTS" >/dev/null || return 0
  echo
  echo "### Scenario $sc: $title"
  echo
  echo "$header"
  echo "$header" | sed -e 's/[^|]/-/g'
  jq -r --arg sc "$sc" "select(.scenario == \$sc) | $expr" "$RESULTS"
}

for sc in ${SCENARIOS:-1 2 3 4}; do
  list=$BROKERS
  if [ "$sc" = 1 ]; then list="$BROKERS $S1_EXTRA"; fi
  for b in $list; do
    log "scenario $sc: $b"
    "s$sc" "$b"
  done
done

if [ "${TABLES_ONLY:-0}" = 1 ]; then
  # Durability wording may have changed since the run: recompute it.
  tmp=$(mktemp)
  while IFS= read -r line; do
    jq -c --arg du "$(durability "$(jq -r .broker <<<"$line")")" '.durability = $du' <<<"$line"
  done <"$RESULTS" >"$tmp"
  mv "$tmp" "$RESULTS"
fi
MOSQ_RATE=$(jq -r 'select(.scenario == "1" and .broker == "mosquitto") | .msgs_per_s' "$RESULTS" | head -1)
{
  echo "## bench/run.sh — started $(cat "$WORK/started" 2>/dev/null || echo '?'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo
  echo "Load average at the start: $(cat "$WORK/load" 2>/dev/null || echo '?'); at the end: $(cut -d' ' -f1-3 /proc/loadavg). GOGC of the Go brokers: ${BENCH_GOGC:-unset (ours: the demo GC policy, Mochi: 100)}"
  echo
  echo "Sizes: S1_COUNT=$S1_COUNT S2_COUNT=$S2_COUNT S3_SESSIONS=$S3_SESSIONS S3_QUEUED=$S3_QUEUED S4_DURATION=${S4_DURATION}s S4_KILLS=$S4_KILLS S4_QOS=$S4_QOS PUBS=$PUBS SUBS=$SUBS"
  table 1 "steady state, $PUBS publishers → $SUBS persistent subscribers, QoS 1, 256 B, $S1_COUNT messages" \
    "| broker | durability | msgs/s | vs Mosquitto | p50 ms | p99 ms | max ms | missing | dup | peak RSS MB |" \
    "\"| \(.broker) | \(.durability) | \(.msgs_per_s // 0 | floor) | \(if ${MOSQ_RATE:-0} > 0 then ((.msgs_per_s / ${MOSQ_RATE:-1}) * 100 | floor | tostring) + \"%\" else \"-\" end) | \(.p50_ms) | \(.p99_ms) | \(.max_ms) | \(.missing) | \(.duplicates) | \(.rss_mb) |\""
  table 2 "backlog, $S2_COUNT QoS 1 messages queued for one offline persistent subscriber, then drained" \
    "| broker | publish msgs/s | queued (acked) | drain s | drain msgs/s | received | not received when the drain ended | sessions lost | peak RSS MB |" \
    '"| \(.broker) | \(.publish_rate_s2|floor) | \(.acked // 0) | \(.drain_s // 0 | . * 100 | floor / 100) | \(.msgs_per_s // 0 |floor) | \(.received // 0) | \(.missing // "?") | \(.sessions_lost // "?") | \(.rss_mb) |"'
  table 3 "restart, $S3_SESSIONS persistent sessions × $S3_QUEUED queued messages, clean stop and start" \
    "| broker | create sessions s | queued (acked) | stop s | start → accepting s | start → drain ended s | received | not received when the drain ended | sessions lost |" \
    '"| \(.broker) | \(.sessions_s | . * 100 | floor / 100) | \(.acked // 0) | \(.stop_s) | \(.restart_s | . * 1000 | floor / 1000) | \(.restored_drained_s) | \(.received // 0) | \(.missing // "?") | \(.sessions_lost // "?") |"'
  table 4 "kill, scenario 1 at QoS $S4_QOS for ${S4_DURATION}s with SIGKILL + restart $S4_KILLS times" \
    "| broker | kills | acked (owed) | received | missing | duplicates | msgs/s | verdict |" \
    '"| \(.broker) | \(.kills) | \(.acked // 0) | \(.received // 0) | \(.missing // "?") | \(.duplicates // "?") | \(.msgs_per_s // 0 | floor) | \(if .ok then (if .qos == 2 then "nothing lost, no duplicate" else "nothing lost" end) else (.reason // "no result") end) |"'
} | tee "$WORK/tables.md"

if [ "${BENCH_PROFILE:-0}" = 1 ] && [ -f "$WORK/cpu-bolt.pprof" ]; then
  echo
  echo "### CPU profile of our broker (bolt, sync=always) under scenario 1 (top 25 by cumulative, then flat)"
  go tool pprof -top -cum -nodecount=25 "$BIN/demo" "$WORK/cpu-bolt.pprof" 2>/dev/null | sed 's/^/    /'
  go tool pprof -top -nodecount=25 "$BIN/demo" "$WORK/cpu-bolt.pprof" 2>/dev/null | sed 's/^/    /'
fi | tee -a "$WORK/tables.md"
log "results: $RESULTS, tables: $WORK/tables.md, logs: $WORK/logs"
