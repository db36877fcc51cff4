#!/usr/bin/env bash
# Overload: Tollgate under more mail than its upstream takes, then the backlog
# draining, with its RSS sampled every second (issue "Hardening", overload).
#
# smtp-source sends SESSIONS parallel sessions of 4 KiB messages for LOAD_SECONDS
# to a release tollgate whose upstream (smtp-sink) is slowed to UPSTREAM_CONNECTIONS
# connections; then the load stops and the backlog drains. Printed: accepted and
# refused messages, the rate of each phase, RSS at start / peak under load / peak
# while draining / after draining, and the curve as CSV (time, phase, RSS MiB,
# queued messages) in $OUT/rss.csv.
#
# usage: bash bench/overload.sh [SESSIONS] [LOAD_SECONDS] [UPSTREAM_CONNECTIONS]
#        (defaults 200, 20, 2). TOLLGATE_BIN (default .build/release/tollgate),
#        OUT (default bench/out/overload-<timestamp>).
# Needs smtp-source/smtp-sink (postfix) and sqlite3. Loopback only; stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SESSIONS=${1:-200}
LOAD=${2:-20}
UPSTREAM=${3:-2}
TOLLGATE=${TOLLGATE_BIN:-$HERE/../.build/release/tollgate}
OUT=${OUT:-$HERE/out/overload-$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /var/tmp/tollgate-overload-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$TOLLGATE" ] || { echo "overload: no $TOLLGATE (swift build -c release)" >&2; exit 1; }
mkdir -p "$OUT"
lp=$(python3 "$HERE/util.py" freeport)
sp=$(python3 "$HERE/util.py" freeport)
cat > "$WORK/tollgate.yaml" <<YAML
hostname: tollgate-overload.localdomain
listeners:
  - name: bench
    address: 127.0.0.1:$lp
    tls: none
    auth: none
limits:
  max_connections: 2000
  max_connections_per_client: 1000
  reverse_dns_timeout: 0s
spool:
  path: $WORK/spool
upstreams:
  - name: primary
    hosts: [127.0.0.1:$sp]
    tls: none
    max_connections: $UPSTREAM
delivery:
  default_upstream: primary
  retry: [5s]
log: { level: warning }
YAML
smtp-sink -u nobody 127.0.0.1:$sp 256 >/dev/null 2>&1 &
PIDS+=($!)
"$TOLLGATE" serve -c "$WORK/tollgate.yaml" >"$WORK/serve.log" 2>&1 &
tg=$!
PIDS+=($tg)
python3 "$HERE/util.py" wait-smtp "$lp" 30 "$tg"

rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$tg/status"; }
queued() { sqlite3 "file:$WORK/spool/queue.sqlite?mode=ro" "select count(*) from messages" 2>/dev/null || echo 0; }
echo "t,phase,rss_mib,queued" > "$OUT/rss.csv"
start_rss=$(rss)
t0=$(date +%s)
sample() { echo "$(( $(date +%s) - t0 )),$1,$(rss),$(queued)" >> "$OUT/rss.csv"; }

# Load: as many messages as SESSIONS sessions send in LOAD seconds.
smtp-source -c -s "$SESSIONS" -m 100000000 -l 4096 -f load@example.com -t rcpt@example.net "127.0.0.1:$lp" \
  >"$WORK/source.log" 2>&1 &
src=$!
PIDS+=($src)
for _ in $(seq "$LOAD"); do sleep 1; sample load; done
kill "$src" 2>/dev/null || true
wait "$src" 2>/dev/null || true
load_end=$(date +%s)
accepted=$(sqlite3 "file:$WORK/spool/queue.sqlite?mode=ro" "select count(*) from messages" 2>/dev/null || echo 0)
# Drain: until the queue is empty (at most 10 minutes).
for _ in $(seq 600); do
  sample drain
  [ "$(queued)" = 0 ] && break
  sleep 1
done
drain_end=$(date +%s)
for _ in $(seq 10); do sleep 1; sample idle; done
python3 - "$OUT/rss.csv" "$start_rss" "$LOAD" $((drain_end - load_end)) "$SESSIONS" "$UPSTREAM" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
peak = lambda phase: max((float(r["rss_mib"]) for r in rows if r["phase"] == phase), default=0)
last = float(rows[-1]["rss_mib"])
load_q = max((int(r["queued"]) for r in rows if r["phase"] == "load"), default=0)
print(f"overload: {sys.argv[5]} sessions for {sys.argv[3]} s, upstream {sys.argv[6]} connections")
print(f"  backlog at the end of the load: {load_q} messages; drained in {sys.argv[4]} s")
print(f"  RSS MiB: start {float(sys.argv[2]):.1f}, peak under load {peak('load'):.1f}, peak draining {peak('drain'):.1f}, idle after {last:.1f}")
PY
grep -c "" "$WORK/source.log" >/dev/null || true
echo "  curve: $OUT/rss.csv"
