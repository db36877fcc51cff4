#!/usr/bin/env bash
# Tollgate benchmark: Tollgate and a stock Postfix relay, driven by Postfix's
# smtp-source, relaying to Postfix's smtp-sink, in the same run.
#
# usage: bench/run.sh [--quick] [--systems LIST] [--cases LIST]
#                     [--tollgate-config FILE] [--variant LABEL=FILE]...
#                     [--keep] [--no-fsync-check]
#
#   --quick               short smoke run (also BENCH_QUICK=1)
#   --systems LIST        comma list of postfix, tollgate, tollgate:LABEL
#                         (BENCH_SYSTEMS; default postfix,tollgate plus every
#                         --variant)
#   --cases LIST          comma list of SESSIONSxSIZExRCPTS, SIZE in bytes or
#                         with K suffix, e.g. 20x4Kx1 (BENCH_CASES)
#   --tollgate-config F   template for system "tollgate" (BENCH_TOLLGATE_CONFIG;
#                         default bench/tollgate.yaml.in).  Placeholders:
#                         @LISTEN_ADDRESS@ @UPSTREAM_ADDRESS@ @SPOOL_PATH@ @WORKDIR@
#   --variant LABEL=F     also run system "tollgate:LABEL" with template F
#                         (BENCH_TOLLGATE_VARIANTS="LABEL=F LABEL2=F2"), e.g.
#                         pipeline stages on vs off
#   --keep                keep the work directory (BENCH_KEEP=1)
#   --no-fsync-check      skip the strace check that each system fsyncs
#                         before its 250 (BENCH_FSYNC_CHECK=0)
#
# Other environment: BENCH_DURATION (s, target length of the throughput phase,
# default 10, quick 3), BENCH_LAT_DURATION (latency phase, 6 / 2),
# BENCH_DRAIN_MAX (max wait for the sink after a phase, 120 / 30),
# TOLLGATE_BIN (default .build/release/tollgate, built if missing),
# BENCH_OUT (results folder, default bench/out/<timestamp>),
# BENCH_WORKDIR_BASE (where queues and spools go, default /var/tmp).
#
# Needs root (it starts a private Postfix instance and may install Postfix).
# Every process it starts is stopped by PID when it exits.  See bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

QUICK=${BENCH_QUICK:-0}
SYSTEMS=${BENCH_SYSTEMS:-}
CASES=${BENCH_CASES:-}
TG_TEMPLATE=${BENCH_TOLLGATE_CONFIG:-$HERE/tollgate.yaml.in}
VARIANTS=${BENCH_TOLLGATE_VARIANTS:-}
KEEP=${BENCH_KEEP:-0}
FSYNC_CHECK=${BENCH_FSYNC_CHECK:-1}
TG_BIN=${TOLLGATE_BIN:-$ROOT/.build/release/tollgate}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --systems) SYSTEMS=$2; shift ;;
    --cases) CASES=$2; shift ;;
    --tollgate-config) TG_TEMPLATE=$2; shift ;;
    --variant) VARIANTS="$VARIANTS $2"; shift ;;
    --keep) KEEP=1 ;;
    --no-fsync-check) FSYNC_CHECK=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$QUICK" = 1 ]; then
  DURATION=${BENCH_DURATION:-3}; LAT_DURATION=${BENCH_LAT_DURATION:-2}; DRAIN_MAX=${BENCH_DRAIN_MAX:-30}
  CASES=${CASES:-1x4Kx1,20x4Kx1,100x100Kx10}
else
  DURATION=${BENCH_DURATION:-10}; LAT_DURATION=${BENCH_LAT_DURATION:-6}; DRAIN_MAX=${BENCH_DRAIN_MAX:-120}
  CASES=${CASES:-1x4Kx1,1x4Kx10,1x100Kx1,1x100Kx10,20x4Kx1,20x4Kx10,20x100Kx1,20x100Kx10,100x4Kx1,100x4Kx10,100x100Kx1,100x100Kx10}
fi
if [ -z "$SYSTEMS" ]; then
  SYSTEMS=postfix,tollgate
  for v in $VARIANTS; do SYSTEMS="$SYSTEMS,tollgate:${v%%=*}"; done
fi
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
IFS=, read -r -a CASE_LIST <<<"$CASES"

say() { printf '%s\n' "bench: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (private Postfix instance, package installs)"

# ----------------------------------------------------------------------------
# Process bookkeeping: every background process is recorded as "PID NAME" and
# killed by PID at exit (only if /proc/PID still runs NAME).

WORK=""
PIDS_FILE=""
PF_DIRS=()
CREATED_POLICY_RC=0

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

runs() { # runs PID NAME: is PID alive and running NAME?
  alive "$1" && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -q -- "$2"
}

track() { echo "$1 $2" >>"$PIDS_FILE"; }

stop_pid() { # stop_pid PID NAME [GRACE_SECONDS]
  local pid=$1 name=$2 grace=${3:-10} i
  runs "$pid" "$name" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do alive "$pid" || return 0; sleep 0.1; done
  runs "$pid" "$name" && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

postfix_pids() { # PIDs of every process of the private instance in DIR
  local dir=$1 p
  for p in /proc/[0-9]*; do
    if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "MAIL_CONFIG=$dir/etc"; then
      echo "${p#/proc/}"
    fi
  done
}

postfix_stop() { # postfix_stop DIR
  local dir=$1 master="" pids i p
  [ -f "$dir/spool/pid/master.pid" ] && master=$(tr -d ' \n' <"$dir/spool/pid/master.pid")
  pids=$(postfix_pids "$dir")
  [ -n "$pids" ] || return 0
  timeout 20 postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
  for ((i = 0; i < 100; i++)); do alive "$master" || break; sleep 0.1; done
  for p in $pids; do alive "$p" && kill -KILL "$p" 2>/dev/null || true; done
  return 0
}

cleanup() {
  local rc=$? pid name d
  set +e
  if [ -n "$PIDS_FILE" ] && [ -f "$PIDS_FILE" ]; then
    while read -r pid name; do stop_pid "$pid" "$name" 5; done < <(tac "$PIDS_FILE")
  fi
  for d in "${PF_DIRS[@]}"; do postfix_stop "$d"; done
  if [ "$CREATED_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$KEEP" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ----------------------------------------------------------------------------
# Tools

ensure_packages() {
  local pkgs=() c
  for c in postfix postconf smtp-source smtp-sink; do
    command -v "$c" >/dev/null 2>&1 || { pkgs+=(postfix); break; }
  done
  command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
  if [ "$FSYNC_CHECK" = 1 ]; then command -v strace >/dev/null 2>&1 || pkgs+=(strace); fi
  [ ${#pkgs[@]} -gt 0 ] || return 0
  say "installing ${pkgs[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # keep Debian's own postfix service from starting on port 25
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CREATED_POLICY_RC=1
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
  if [ "$CREATED_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; CREATED_POLICY_RC=0; fi
  # should Debian's instance have started anyway, stop it
  if [ -f /var/spool/postfix/pid/master.pid ] && alive "$(tr -d ' \n' </var/spool/postfix/pid/master.pid)"; then
    postfix stop >/dev/null 2>&1 || true
  fi
}

want_tollgate() { [[ ",$SYSTEMS," == *,tollgate* ]]; }

ensure_tollgate() {
  want_tollgate || return 0
  if [ ! -x "$TG_BIN" ]; then
    say "building Tollgate (swift build -c release)"
    (cd "$ROOT" && swift build -c release) >"$OUT/build.log" 2>&1 ||
      die "swift build -c release failed; see $OUT/build.log"
    [ -x "$TG_BIN" ] || die "no $TG_BIN after the build"
  fi
}

template_for() { # template_for SYSTEM
  local sys=$1 v
  if [ "$sys" = tollgate ]; then echo "$TG_TEMPLATE"; return; fi
  for v in $VARIANTS; do
    if [ "tollgate:${v%%=*}" = "$sys" ]; then echo "${v#*=}"; return; fi
  done
  die "no template for system $sys (use --variant ${sys#tollgate:}=FILE)"
}

# ----------------------------------------------------------------------------
# Servers.  Each start_* sets SERVER_PID; each runs in its own directory.

freeport() { python3 "$HERE/util.py" freeport; }

start_sink() { # start_sink DIR PORT -> SINK_PID; count file DIR/sink.count
  local dir=$1 port=$2
  # -c: running counters on stdout (measure.py counts "mesg="), no dump files
  smtp-sink -c -u nobody "127.0.0.1:$port" 1024 >"$dir/sink.count" 2>"$dir/sink.err" &
  SINK_PID=$!
  track "$SINK_PID" smtp-sink
  python3 "$HERE/util.py" wait-smtp "$port" 10 "$SINK_PID" || die "smtp-sink did not start: $(cat "$dir/sink.err")"
}

postfix_write_config() { # DIR PORT SINKPORT
  local dir=$1 port=$2 sinkport=$3
  mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
  chmod 755 "$dir" "$dir/etc" "$dir/spool"
  chown postfix "$dir/data"
  cat >"$dir/etc/main.cf" <<EOF
# Private Postfix instance for bench/run.sh: a plain relay, stock settings
# except where a relay that listens on 127.0.0.1 and relays everything to one
# smarthost needs them.  Queue files are fsync'd before 250 (stock behaviour,
# mail_stream_finish_file() in Postfix's src/global/mail_stream.c).
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$sinkport
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
biff = no
EOF
  # smtpd on the bench port only; chroot off (no chroot jail to populate)
  cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

start_postfix() { # DIR PORT SINKPORT
  local dir=$1 port=$2 sinkport=$3
  postfix_write_config "$dir" "$port" "$sinkport"
  PF_DIRS+=("$dir")
  if ! timeout 60 postfix -c "$dir/etc" check >"$dir/check.out" 2>&1 ||
    ! timeout 60 postfix -c "$dir/etc" start >"$dir/start.out" 2>&1; then
    # postfix(1) reports to a terminal or syslog only: script(1) gives it one
    timeout 60 script -qec "postfix -c $dir/etc check" /dev/null >&2 || true
    tail -5 "$dir/maillog" >&2 2>/dev/null || true
    die "postfix -c $dir/etc check/start failed"
  fi
  local i
  for ((i = 0; i < 100; i++)); do [ -s "$dir/spool/pid/master.pid" ] && break; sleep 0.1; done
  SERVER_PID=$(tr -d ' \n' <"$dir/spool/pid/master.pid")
  python3 "$HERE/util.py" wait-smtp "$port" 30 "$SERVER_PID" || die "postfix did not answer on port $port"
}

stop_postfix() { postfix_stop "$1"; }

start_tollgate() { # DIR PORT SINKPORT SYSTEM
  local dir=$1 port=$2 sinkport=$3 sys=$4 tpl
  tpl=$(template_for "$sys")
  [ -f "$tpl" ] || die "Tollgate config template not found: $tpl"
  mkdir -p "$dir/spool"
  sed -e "s|@LISTEN_ADDRESS@|127.0.0.1:$port|g" -e "s|@UPSTREAM_ADDRESS@|127.0.0.1:$sinkport|g" \
    -e "s|@SPOOL_PATH@|$dir/spool|g" -e "s|@WORKDIR@|$dir|g" "$tpl" >"$dir/tollgate.yaml"
  "$TG_BIN" serve -c "$dir/tollgate.yaml" >"$dir/tollgate.log" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID" tollgate
  if ! python3 "$HERE/util.py" wait-smtp "$port" 60 "$SERVER_PID"; then
    tail -20 "$dir/tollgate.log" >&2 || true
    return 1
  fi
}

stop_tollgate() { stop_pid "$SERVER_PID" tollgate 20; }

start_system() { # SYSTEM DIR PORT SINKPORT
  case "$1" in
    postfix) start_postfix "$2" "$3" "$4" ;;
    tollgate|tollgate:*) start_tollgate "$2" "$3" "$4" "$1" ;;
    *) die "unknown system $1" ;;
  esac
}

stop_system() { # SYSTEM DIR
  case "$1" in
    postfix) stop_postfix "$2" ;;
    *) stop_tollgate ;;
  esac
}

# ----------------------------------------------------------------------------
# fsync before 250: trace one message through each system.

fsync_check() { # SYSTEM
  local sys=$1 dir port sinkport st rc=0
  dir="$WORK/fsync-${sys//:/-}"
  mkdir -p "$dir"
  port=$(freeport); sinkport=$(freeport)
  start_sink "$dir" "$sinkport"
  if ! start_system "$sys" "$dir" "$port" "$sinkport"; then
    echo "$sys: did not start" >>"$OUT/fsync-check.txt"
    stop_system "$sys" "$dir"; stop_pid "$SINK_PID" smtp-sink
    return 1
  fi
  # attach to the relay's whole process tree (-f adds threads and new children)
  local attach=()
  for p in $(python3 "$HERE/util.py" tree "$SERVER_PID"); do attach+=(-p "$p"); done
  strace -f -tt -s 64 -o "$dir/strace.out" \
    -e trace=fsync,fdatasync,sync_file_range,syncfs,msync,write,writev,sendmsg,sendto \
    "${attach[@]}" 2>"$dir/strace.err" &
  st=$!
  track "$st" strace
  sleep 1.5 # let strace attach to every thread
  timeout 30 smtp-source -4 -s 1 -m 1 -l 512 -f bench@example.com -t rcpt@example.net \
    "127.0.0.1:$port" || rc=1
  sleep 0.5
  kill -INT "$st" 2>/dev/null || true
  wait "$st" 2>/dev/null || true
  {
    echo "$sys (strace -f of PID $SERVER_PID while it received one message):"
    python3 "$HERE/util.py" fsync-evidence "$dir/strace.out" || rc=1
    echo
  } >>"$OUT/fsync-check.txt"
  cp "$dir/strace.out" "$OUT/fsync-${sys//:/-}.strace"
  stop_system "$sys" "$dir"
  stop_pid "$SINK_PID" smtp-sink
  return $rc
}

# ----------------------------------------------------------------------------
# One case on one system.

parse_size() { # 4K -> 4096
  case "$1" in
    *[kK]) echo $((${1%?} * 1024)) ;;
    *) echo "$1" ;;
  esac
}

run_one() { # SYSTEM SESSIONS SIZE RCPTS INDEX
  local sys=$1 n=$2 size=$3 rcpts=$4 idx=$5 dir port sinkport mp rc=0 tag
  tag="$idx-${sys//:/-}-${n}x${size}x${rcpts}"
  dir="$WORK/$tag"
  mkdir -p "$dir"
  port=$(freeport); sinkport=$(freeport)
  say "case $idx: $sys, $n session(s), $size bytes, $rcpts rcpt(s)"
  start_sink "$dir" "$sinkport"
  if ! start_system "$sys" "$dir" "$port" "$sinkport"; then
    printf '{"system":"%s","sessions":%d,"size":%d,"rcpts":%d,"errors":["%s did not start; see %s"],"ok":false}\n' \
      "$sys" "$n" "$size" "$rcpts" "$sys" "$OUT/logs/$tag.log" >>"$OUT/results.jsonl"
  else
    timeout --kill-after=15 $((120 + 8 * (DURATION + LAT_DURATION) + 3 * ${DRAIN_MAX%.*})) \
      python3 "$HERE/measure.py" --system "$sys" --port "$port" \
      --sink-count-file "$dir/sink.count" --server-pid "$SERVER_PID" \
      --sessions "$n" --size "$size" --rcpts "$rcpts" \
      --duration "$DURATION" --lat-duration "$LAT_DURATION" --drain-max "$DRAIN_MAX" \
      --pid-file "$PIDS_FILE" >"$dir/result.json" &
    mp=$!
    track "$mp" measure.py
    wait "$mp" || rc=$?
    if [ -s "$dir/result.json" ]; then
      cat "$dir/result.json" >>"$OUT/results.jsonl"
    else
      printf '{"system":"%s","sessions":%d,"size":%d,"rcpts":%d,"errors":["measure.py exited %d without a result"],"ok":false}\n' \
        "$sys" "$n" "$size" "$rcpts" "$rc" >>"$OUT/results.jsonl"
    fi
  fi
  stop_system "$sys" "$dir"
  stop_pid "$SINK_PID" smtp-sink
  # keep the tail of the relay's log with the results
  mkdir -p "$OUT/logs"
  local lf="$dir/tollgate.log"
  [ "$sys" = postfix ] && lf="$dir/maillog"
  if [ -f "$lf" ]; then
    {
      echo "== warnings and errors (first 50)"
      grep -iE 'warn|error|fatal|panic|critical' "$lf" | head -n 50 || true
      echo "== last 100 lines"
      tail -n 100 "$lf"
    } >"$OUT/logs/$tag.log" 2>/dev/null || true
  fi
  rm -rf "$dir" # spools can be large
}

# ----------------------------------------------------------------------------

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${BENCH_OUT:-$HERE/out/$STAMP}
mkdir -p "$OUT"
ensure_packages
ensure_tollgate
command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null || die "smtp-source/smtp-sink missing"

# on a real disk (never tmpfs, where fsync costs nothing): /var/tmp by default
WORK=$(mktemp -d "${BENCH_WORKDIR_BASE:-/var/tmp}/tollgate-bench.XXXXXX")
if [ "$(df --output=fstype "$WORK" | tail -1)" = tmpfs ]; then
  say "WARNING: $WORK is on tmpfs: fsync is free there, the durability cost is not measured"
fi
chmod 755 "$WORK" # Postfix's unprivileged daemons must reach their queue
PIDS_FILE="$WORK/pids"
: >"$PIDS_FILE"
: >"$OUT/results.jsonl"
ln -sfn "$OUT" "$HERE/out/latest" 2>/dev/null || true

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm), $(nproc) CPU(s), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "work dir: $WORK ($(df --output=fstype "$WORK" | tail -1))"
  echo "postfix: $(postconf -d -h mail_version 2>/dev/null)"
  if want_tollgate; then echo "tollgate: $("$TG_BIN" version 2>&1 | head -1 || true) ($TG_BIN)"; fi
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')"
  echo "systems: ${SYSTEM_LIST[*]}"
  for s in "${SYSTEM_LIST[@]}"; do
    if [[ $s == tollgate* ]]; then echo "  $s config template: $(template_for "$s")"; fi
  done
  echo "cases: ${CASE_LIST[*]}"
  echo "phases: throughput ~${DURATION}s, latency ${LAT_DURATION}s, drain wait <= ${DRAIN_MAX}s"
  echo "disk fsync rate at start: $(python3 "$HERE/util.py" fsync-rate "$WORK")/s (4 KiB write+fsync)"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

FAILED=0
if [ "$FSYNC_CHECK" = 1 ]; then
  : >"$OUT/fsync-check.txt"
  for s in "${SYSTEM_LIST[@]}"; do
    fsync_check "$s" || { FAILED=1; say "fsync check: $s did not show an fsync before 250"; }
  done
  cat "$OUT/fsync-check.txt" >&2
fi

idx=0
for c in "${CASE_LIST[@]}"; do
  IFS=x read -r n size rcpts <<<"$c"
  size=$(parse_size "$size")
  idx=$((idx + 1))
  # alternate the order of systems per case so that the disk's swings do not
  # always hit the same one
  order=("${SYSTEM_LIST[@]}")
  if ((idx % 2 == 0)); then
    order=()
    for ((i = ${#SYSTEM_LIST[@]} - 1; i >= 0; i--)); do order+=("${SYSTEM_LIST[$i]}"); done
  fi
  for s in "${order[@]}"; do run_one "$s" "$n" "$size" "$rcpts" "$idx"; done
done

echo "disk fsync rate at end: $(python3 "$HERE/util.py" fsync-rate "$WORK")/s" >>"$OUT/meta.txt"
{
  cat "$OUT/meta.txt"
  echo
  if [ -f "$OUT/fsync-check.txt" ]; then echo "fsync before 250:"; cat "$OUT/fsync-check.txt"; fi
  python3 "$HERE/report.py" "$OUT/results.jsonl" postfix || FAILED=1
} >"$OUT/report.txt" 2>&1
cat "$OUT/report.txt"
say "results in $OUT (report.txt, results.jsonl, fsync-check.txt, logs/)"
exit "$FAILED"
