#!/bin/bash
# bench_drain.sh BINDIR LABEL [COUNT] [URL-OPTIONS]: statements and their server time for
# bench scenario 2's drain on PostgreSQL (COUNT messages, default 50000, queued for one
# offline persistent subscriber, then drained), from pg_stat_statements, reset between
# the publish and the drain. BINDIR holds demo and mqttload (go build -o BINDIR/demo
# ./cmd/demo; same for ./cmd/mqttload). Uses the container of bench_statements.sh
# ("b11pgstat" on 127.0.0.1:28840, started here when missing; remove it with
# docker rm -f b11pgstat). See BENCH.md.
set -u
BIN=$1; LABEL=$2; COUNT=${3:-50000}
. "$(dirname "$0")/bench_pgstat.sh"
pgstat_start
URL="postgres://bench:bench@127.0.0.1:28840/bench?sslmode=disable&schema=dr_${LABEL}_$(date +%s)${4:-}"
"$BIN/demo" -listen 127.0.0.1:28850 -store "$URL" -log-level warn -max-connection-rate -1 -max-queued 200000 \
  -max-queued-bytes 1073741824 >"/tmp/bench_drain-$LABEL.log" 2>&1 &
PID=$!
L() { "$BIN/mqttload" -addr 127.0.0.1:28850 -json "$@" 2>/dev/null; }
L -phase wait -timeout 60s >/dev/null
L -phase sessions -subs 1 -prefix dr >/dev/null
L -phase publish -pubs 16 -subs 1 -qos 1 -size 256 -count "$COUNT" -duration 60s -prefix dr -state "/tmp/bench_drain-$LABEL.json" -timeout 10m >/dev/null
psql_ "SELECT pg_stat_statements_reset()" >/dev/null
X0=$(psql_ "SELECT xact_commit FROM pg_stat_database WHERE datname='bench'")
echo "== $LABEL: $(L -phase drain -state "/tmp/bench_drain-$LABEL.json" -timeout 2m -settle 5s | jq -c '{drain_s, msgs_per_s, received}')"
X1=$(psql_ "SELECT xact_commit FROM pg_stat_database WHERE datname='bench'")
kill -TERM $PID; wait $PID
echo "commits: $((X1 - X0)) for $COUNT messages"
echo "calls | per message | rows | server ms | statement"
psql_ "SELECT calls, round(calls::numeric/$COUNT, 3), rows, round(total_exec_time::numeric), left(regexp_replace(query, '\s+', ' ', 'g'), 100) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname='bench') AND query NOT ILIKE '%pg_stat%' ORDER BY total_exec_time DESC LIMIT 8"
