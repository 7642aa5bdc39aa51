# shellcheck shell=bash
# bench_pgstat.sh — sourced by bench_statements.sh and bench_drain.sh.
# pgstat_start: starts (once) the container "b11pgstat" from
# ${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local} on 127.0.0.1:28840 with
# pg_stat_statements loaded, and sets C to its name; remove it with docker rm -f b11pgstat.
# psql_ SQL: runs SQL in it, unaligned, tuples only.
C=b11pgstat

pgstat_start() {
  docker ps --format '{{.Names}}' | grep -q "^$C$" && return 0
  docker run -d --rm --name $C -p 127.0.0.1:28840:5432 -e POSTGRES_PASSWORD=bench -e POSTGRES_USER=bench -e POSTGRES_DB=bench \
    "${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local}" \
    -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all >/dev/null
  for _ in $(seq 60); do docker exec $C pg_isready -h 127.0.0.1 -U bench -d bench >/dev/null 2>&1 && break; sleep 1; done
  sleep 2
  docker exec $C psql -U bench -d bench -qc 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
}

psql_() { docker exec $C psql -U bench -d bench -tAc "$1"; }
