#!/usr/bin/env bash
# Acceptance with a deferred backlog in the spool: Tollgate's acceptance rate
# (smtp-source, 20 sessions x 4 KiB, 10,000 messages, after a 200-message warm-up)
# with an empty spool and with N deferred messages (not due for ten days), in
# alternating rounds, each round a fresh spool and a fresh process.
#
# usage: bash bench/backlog.sh [N] [ROUNDS]     (defaults 100000 and 3)
# Needs smtp-source/smtp-sink (postfix), sqlite3 and .build/release/tollgate.
# Everything listens on 127.0.0.1 and is stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
N=${1:-100000}
ROUNDS=${2:-3}
TOLLGATE=${TOLLGATE_BIN:-$HERE/../.build/release/tollgate}
WORK=$(mktemp -d /tmp/tollgate-backlog-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$TOLLGATE" ] || { echo "backlog: no $TOLLGATE (swift build -c release)" >&2; exit 1; }

# Fills the spool with $1 deferred messages, straight in SQLite (the schema the relay made).
fill() {
  sqlite3 "$2/queue.sqlite" >/dev/null <<SQL
PRAGMA journal_mode=WAL;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1)
INSERT INTO messages (id, created, sender, envelope, size, checksum, state, next_attempt, attempts, accepted_by, received_header, checksum_kind)
SELECT printf('BACKLOG%07d', x), strftime('%s', 'now'), 'old@example.com', '{}', 10, 0, 'deferred',
       strftime('%s', 'now') + 864000, 1, 'bench', '', 1 FROM c;
INSERT INTO recipients (message_id, idx, address, state) SELECT id, 0, 'r@example.net', 'pending' FROM messages;
INSERT INTO bodies (message_id, content) SELECT id, zeroblob(10) FROM messages;
SQL
}

round() { # BACKLOG -> prints msgs/s
  local backlog=$1 dir sink tg lp sp t0 t1
  dir=$(mktemp -d "$WORK/r-XXXX")
  sp=$(python3 "$HERE/util.py" freeport); lp=$(python3 "$HERE/util.py" freeport)
  sed -e "s#@LISTEN_ADDRESS@#127.0.0.1:$lp#; s#@UPSTREAM_ADDRESS@#127.0.0.1:$sp#; s#@SPOOL_PATH@#$dir/spool#; s#@WORKDIR@#$dir#" \
    "$HERE/tollgate.yaml.in" >"$dir/t.yaml"
  # Start once so that the relay creates its schema, then fill it.
  "$TOLLGATE" serve -c "$dir/t.yaml" 2>"$dir/first.log" & tg=$!; PIDS+=("$tg")
  python3 "$HERE/util.py" wait-smtp "$lp" 10 "$tg" >/dev/null
  kill "$tg"; wait "$tg" 2>/dev/null || true
  [ "$backlog" -gt 0 ] && fill "$backlog" "$dir/spool"
  smtp-sink -c -u nobody "127.0.0.1:$sp" 1024 >"$dir/sink.count" 2>/dev/null & sink=$!; PIDS+=("$sink")
  "$TOLLGATE" serve -c "$dir/t.yaml" 2>"$dir/tollgate.log" & tg=$!; PIDS+=("$tg")
  python3 "$HERE/util.py" wait-smtp "$lp" 10 "$tg" >/dev/null
  timeout 120 smtp-source -4 -d -s 20 -m 200 -l 4096 -f bench@example.com -t rcpt@example.net -M bench.example "127.0.0.1:$lp"
  t0=$(date +%s.%N)
  timeout 300 smtp-source -4 -d -s 20 -m 10000 -l 4096 -f bench@example.com -t rcpt@example.net -M bench.example "127.0.0.1:$lp"
  t1=$(date +%s.%N)
  kill "$tg" "$sink"; wait "$tg" "$sink" 2>/dev/null || true
  python3 -c "print(round(10000 / ($t1 - $t0)))"
}

empty=(); full=()
for r in $(seq 1 "$ROUNDS"); do
  empty+=("$(round 0)")
  full+=("$(round "$N")")
  echo "round $r: empty spool ${empty[-1]} msgs/s, $N deferred ${full[-1]} msgs/s"
done
python3 - "${empty[*]}" "${full[*]}" "$N" <<'PY'
import statistics, sys
e = [float(x) for x in sys.argv[1].split()]
f = [float(x) for x in sys.argv[2].split()]
me, mf = statistics.median(e), statistics.median(f)
print(f"median: empty {me:.0f} msgs/s, {sys.argv[3]} deferred {mf:.0f} msgs/s: x{mf / me:.2f}")
PY
