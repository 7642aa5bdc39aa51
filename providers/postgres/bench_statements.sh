#!/bin/bash
# bench_statements.sh BINDIR LABEL [COUNT] [URL-OPTIONS]: statements, commits and the busiest
# statements per message of bench scenario 1 on PostgreSQL, from pg_stat_statements.
# BINDIR holds demo and mqttload (go build -o BINDIR/demo ./cmd/demo; same for
# ./cmd/mqttload). Starts (once) a container "b11pgstat" on 127.0.0.1:28840 with
# pg_stat_statements loaded; remove it with docker rm -f b11pgstat. See BENCH.md.
set -u
BIN=$1; LABEL=$2; COUNT=${3:-20000}
. "$(dirname "$0")/bench_pgstat.sh"
pgstat_start
SCHEMA=rt_${LABEL}_$(date +%s)
URL="postgres://bench:bench@127.0.0.1:28840/bench?sslmode=disable&schema=$SCHEMA${4:-}"
$BIN/demo -listen 127.0.0.1:28850 -store "$URL" -log-level warn -max-queued 200000 > /tmp/bench_statements-$LABEL.log 2>&1 &
PID=$!
$BIN/mqttload -addr 127.0.0.1:28850 -json -phase wait -timeout 60s >/dev/null
psql_ "SELECT pg_stat_statements_reset()" >/dev/null
X0=$(psql_ "SELECT xact_commit FROM pg_stat_database WHERE datname='bench'")
( while :; do psql_ "SELECT count(*) FILTER (WHERE state = 'active' AND query NOT ILIKE '%pg_stat_activity%'), count(*) FROM pg_stat_activity WHERE datname = 'bench' AND backend_type = 'client backend'"; sleep 0.2; done ) > /tmp/bench_statements-$LABEL.conns 2>/dev/null &
SAMPLER=$!
OUT=$($BIN/mqttload -addr 127.0.0.1:28850 -json -phase run -pubs 16 -subs 16 -qos 1 -size 256 -count $COUNT -duration 60s -prefix rt$LABEL 2>/dev/null)
X1=$(psql_ "SELECT xact_commit FROM pg_stat_database WHERE datname='bench'")
kill $SAMPLER 2>/dev/null; wait $SAMPLER 2>/dev/null
kill -TERM $PID; wait $PID
echo "pool: connections busy at once (samples every 0.2 s): max $(cut -d'|' -f1 /tmp/bench_statements-$LABEL.conns | sort -n | tail -1), mean $(cut -d'|' -f1 /tmp/bench_statements-$LABEL.conns | awk '{s+=$1; n++} END {if (n) printf "%.1f", s/n}'); open: max $(cut -d'|' -f2 /tmp/bench_statements-$LABEL.conns | sort -n | tail -1)"
echo "== $LABEL: $OUT"
echo "commits: $((X1 - X0)) for $COUNT messages"
psql_ "SELECT calls, round(calls::numeric/$COUNT, 3) AS per_msg, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname='bench') ORDER BY calls DESC LIMIT 14"
psql_ "SELECT sum(calls), round(sum(calls)::numeric/$COUNT,3) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname='bench') AND query NOT ILIKE '%pg_stat%'"
