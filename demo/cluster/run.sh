#!/usr/bin/env bash
# The cluster demo (`make run-cluster`): a throwaway PostgreSQL in demo/var/cluster/pg
# and two Tollgate nodes on it (SPEC §6) — relay-a on 127.0.0.1:2625, relay-b on
# 127.0.0.1:2626 — sharing one queue and one rate limit, delivering into
# demo/var/cluster/outbox. Ctrl-C stops all three. TOLLGATE_BIN overrides the binary,
# CLUSTER_VAR the folder and CLUSTER_PG_PORT the database's port (the tests use them).
set -euo pipefail
cd "$(dirname "$0")/../.."
var=${CLUSTER_VAR:-demo/var/cluster}
case "$var" in /*) ;; *) var="$PWD/$var" ;; esac
bin="${TOLLGATE_BIN:-$(swift build -c release --show-bin-path)/tollgate}"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL's server is not installed (apt-get install postgresql)" >&2; exit 1; }
port=${CLUSTER_PG_PORT:-55432}
mkdir -p "$var/outbox"
as_server=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: its files and process belong to postgres.
  as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
fi
if [ ! -f "$var/pg/PG_VERSION" ]; then
  mkdir -p "$var/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$var/pg"
  "${as_server[@]}" "$pgbin/initdb" -D "$var/pg" -U tollgate --auth trust -E UTF8 --locale C --no-instructions >/dev/null
  cat >> "$var/pg/postgresql.conf" <<CONF
# Tollgate cluster demo: loopback only, its socket in its own folder.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$var/pg'
CONF
fi
"${as_server[@]}" "$pgbin/postgres" -D "$var/pg" >"$var/postgres.log" 2>&1 &
pg_pid=$!
pids=("$pg_pid")
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 100); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
  sleep 0.1
done
"$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U tollgate -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'tollgate'" | grep -q 1 \
  || "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U tollgate tollgate
for node in a b; do
  sed "s/PGPORT/$port/" "demo/cluster/relay-$node.yaml" > "$var/relay-$node.yaml"
  "$bin" check -c "$var/relay-$node.yaml"
done
"$bin" serve -c "$var/relay-a.yaml" >"$var/relay-a.log" 2>&1 &
pids+=($!)
"$bin" serve -c "$var/relay-b.yaml" >"$var/relay-b.log" 2>&1 &
pids+=($!)
cat <<MSG

Tollgate cluster demo: two nodes, one queue in PostgreSQL (127.0.0.1:$port, database tollgate)
  relay-a  127.0.0.1:2625   metrics 127.0.0.1:9564   log $var/relay-a.log
  relay-b  127.0.0.1:2626   metrics 127.0.0.1:9565   log $var/relay-b.log
Delivered mail lands in $var/outbox/. Each client address may send 5 messages an hour
across both nodes together (rate-limit on the shared counters).

Try, in another terminal:
  for p in 2625 2626 2625 2626 2625 2626; do swaks --server 127.0.0.1:\$p --from app@apps.example.com --to ops@example.net; done
  # the sixth is refused 451 4.7.1 whichever node it reaches
  $bin queue list -c $var/relay-b.yaml            # the whole cluster's queue, from either node
  curl -s 127.0.0.1:9565/metrics | grep -E 'tollgate_(cluster_claims|node_info|spool_up)'
  kill -9 \$(pgrep -f relay-a.yaml)               # relay-b delivers what relay-a held, after the lease

MSG
wait "${pids[1]}" "${pids[2]}"
