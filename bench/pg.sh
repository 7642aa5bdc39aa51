# shellcheck shell=bash
# bench/pg.sh — sourced by run.sh and cluster.sh: PostgreSQL for the postgres driver.
#
# pg_start PORT: sets PG_BASE to MQTTSTORE_POSTGRES_DSN when given, else starts a
# container from ${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local} on
# 127.0.0.1:PORT (waiting at most 60 s for it), sets PG_CONTAINER and PG_BASE. Returns 1
# when neither is available. The caller's EXIT trap calls pg_stop.
# pg_url SCHEMA: prints PG_BASE with schema=SCHEMA added (a fresh schema is a fresh store).
PG_BASE=""
PG_CONTAINER=""

pg_start() {
  local port=$1 img=${MQTTSTORE_POSTGRES_IMAGE:-mqttstore/postgres:15-local}
  if [ -n "${MQTTSTORE_POSTGRES_DSN:-}" ]; then
    PG_BASE=$MQTTSTORE_POSTGRES_DSN
    return 0
  fi
  command -v docker >/dev/null && docker image inspect "$img" >/dev/null 2>&1 || return 1
  printf '[%s] starting PostgreSQL (%s) on 127.0.0.1:%s\n' "$(date +%T)" "$img" "$port" >&2
  PG_CONTAINER=$(docker run -d --rm -p "127.0.0.1:$port:5432" -e POSTGRES_PASSWORD=bench -e POSTGRES_USER=bench -e POSTGRES_DB=bench "$img")
  for _ in $(seq 1 120); do
    docker exec "$PG_CONTAINER" pg_isready -h 127.0.0.1 -U bench -d bench >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker exec "$PG_CONTAINER" pg_isready -h 127.0.0.1 -U bench -d bench >/dev/null
  PG_BASE="postgres://bench:bench@127.0.0.1:$port/bench?sslmode=disable"
}

pg_stop() {
  if [ -n "$PG_CONTAINER" ]; then docker rm -f "$PG_CONTAINER" >/dev/null 2>&1 || true; fi
  PG_CONTAINER=""
}

pg_url() {
  case $PG_BASE in
    *\?*) echo "$PG_BASE&schema=$1" ;;
    *) echo "$PG_BASE?schema=$1" ;;
  esac
}
