#!/usr/bin/env bash
# Tollgate benchmark: Tollgate and a stock Postfix relay, driven by Postfix's
# smtp-source, relaying to Postfix's smtp-sink, in the same run.
#
# usage: bench/run.sh [--quick] [--systems LIST] [--cases LIST]
#                     [--tollgate-config FILE] [--variant LABEL=FILE]...
#                     [--keep] [--no-fsync-check] [--pipeline-only|--no-pipeline]
#
#   --quick               short smoke run (also BENCH_QUICK=1)
#   --systems LIST        comma list of postfix, tollgate, tollgate:LABEL
#                         (BENCH_SYSTEMS; default postfix,tollgate plus every
#                         --variant)
#   --cases LIST          comma list of SESSIONSxSIZExRCPTS, SIZE in bytes or
#                         with a K or M suffix, e.g. 20x4Kx1 (BENCH_CASES)
#   --tollgate-config F   template for system "tollgate" (BENCH_TOLLGATE_CONFIG;
#                         default bench/tollgate.yaml.in).  Placeholders:
#                         @LISTEN_ADDRESS@ @UPSTREAM_ADDRESS@ @SPOOL_PATH@ @WORKDIR@
#   --variant LABEL=F     also run system "tollgate:LABEL" with template F
#                         (BENCH_TOLLGATE_VARIANTS="LABEL=F LABEL2=F2"), e.g.
#                         other limits (driven by smtp-source: no TLS, no
#                         AUTH; the policy pipeline has its own section)
#   --keep                keep the work directory (BENCH_KEEP=1)
#   --no-fsync-check      skip the strace check that each system fsyncs
#                         before its 250 (BENCH_FSYNC_CHECK=0)
#   --pipeline-only       run only the pipeline-overhead section
#                         (BENCH_PIPELINE=only)
#   --no-pipeline         skip it (BENCH_PIPELINE=0)
#   --signing             also run tollgate:dkim (the dkim stage, RSA-2048,
#                         bench/tollgate-dkim.yaml.in) and tollgate:milter (a
#                         real OpenDKIM as a milter, bench/tollgate-milter.yaml.in)
#                         beside tollgate; default cases 20x4Kx1, 3 repeats, no
#                         pipeline section
#   --cluster N           also run tollgate-cluster: N nodes (2 or more) on one
#                         PostgreSQL started for the case
#                         (bench/tollgate-cluster.yaml.in), smtp-source's
#                         sessions spread over them; default cases 20x4Kx1, 3
#                         repeats, no pipeline section
#   --repeat R            run every case R times (BENCH_REPEAT); the ratio
#                         lines use each system's median
#
# The pipeline-overhead section (after the Postfix comparison) drives Tollgate
# with STARTTLS and AUTH (bench/pipeline.py) with the policy pipeline off and
# on (ldap against a throwaway slapd, sender-allowlist, rate-limit, department
# policies), alternating, in the same run.  BENCH_PIPELINE_SESSIONS (default
# 1,20,100, quick 1,20), BENCH_PIPELINE_ROUNDS (3, quick 1),
# BENCH_PIPELINE_DURATION (s, 10, quick 3), BENCH_PIPELINE_WARMUP (s, 3,
# quick 1), BENCH_PIPELINE_RECONNECT (messages per session, 25).
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
PIPELINE=${BENCH_PIPELINE:-1}
REPEAT=${BENCH_REPEAT:-}
SIGNING=0
CLUSTER_NODES=0

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --systems) SYSTEMS=$2; shift ;;
    --cases) CASES=$2; shift ;;
    --tollgate-config) TG_TEMPLATE=$2; shift ;;
    --variant) VARIANTS="$VARIANTS $2"; shift ;;
    --keep) KEEP=1 ;;
    --no-fsync-check) FSYNC_CHECK=0 ;;
    --pipeline-only) PIPELINE=only ;;
    --no-pipeline) PIPELINE=0 ;;
    --signing) SIGNING=1 ;;
    --cluster) CLUSTER_NODES=$2; shift ;;
    --repeat) REPEAT=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

case "$PIPELINE" in 0|1|only) ;; *) echo "bench: BENCH_PIPELINE must be 0, 1 or only" >&2; exit 2 ;; esac
case "$CLUSTER_NODES" in 0|[2-9]) ;; *) echo "bench: --cluster takes a node count from 2 to 9" >&2; exit 2 ;; esac
if [ "$SIGNING" = 1 ] || [ "$CLUSTER_NODES" != 0 ]; then
  # the focused sections: one case, repeated, no pipeline section unless asked for
  CASES=${CASES:-20x4Kx1}
  REPEAT=${REPEAT:-3}
  [ -n "${BENCH_PIPELINE:-}" ] || PIPELINE=0
fi
if [ "$SIGNING" = 1 ]; then
  VARIANTS="$VARIANTS dkim=$HERE/tollgate-dkim.yaml.in milter=$HERE/tollgate-milter.yaml.in"
fi
if [ "$QUICK" = 1 ]; then
  DURATION=${BENCH_DURATION:-3}; LAT_DURATION=${BENCH_LAT_DURATION:-2}; DRAIN_MAX=${BENCH_DRAIN_MAX:-30}
  CASES=${CASES:-1x4Kx1,20x4Kx1,100x100Kx10}
  PL_SESSIONS=${BENCH_PIPELINE_SESSIONS:-1,20}; PL_ROUNDS=${BENCH_PIPELINE_ROUNDS:-1}
  PL_DURATION=${BENCH_PIPELINE_DURATION:-3}; PL_WARMUP=${BENCH_PIPELINE_WARMUP:-1}
else
  DURATION=${BENCH_DURATION:-10}; LAT_DURATION=${BENCH_LAT_DURATION:-6}; DRAIN_MAX=${BENCH_DRAIN_MAX:-120}
  CASES=${CASES:-1x4Kx1,1x4Kx10,1x100Kx1,1x100Kx10,20x4Kx1,20x4Kx10,20x100Kx1,20x100Kx10,100x4Kx1,100x4Kx10,100x100Kx1,100x100Kx10}
  PL_SESSIONS=${BENCH_PIPELINE_SESSIONS:-1,20,100}; PL_ROUNDS=${BENCH_PIPELINE_ROUNDS:-3}
  PL_DURATION=${BENCH_PIPELINE_DURATION:-10}; PL_WARMUP=${BENCH_PIPELINE_WARMUP:-3}
fi
PL_RECONNECT=${BENCH_PIPELINE_RECONNECT:-25}
COMPARISON=1
[ "$PIPELINE" = only ] && COMPARISON=0
if [ -z "$SYSTEMS" ]; then
  SYSTEMS=postfix,tollgate
  for v in $VARIANTS; do SYSTEMS="$SYSTEMS,tollgate:${v%%=*}"; done
  [ "$CLUSTER_NODES" = 0 ] || SYSTEMS="$SYSTEMS,tollgate-cluster"
fi
[ "$CLUSTER_NODES" != 0 ] || CLUSTER_NODES=2 # a tollgate-cluster named in --systems
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
IFS=, read -r -a CASE_LIST <<<"$CASES"
if [ -n "$REPEAT" ] && [ "$REPEAT" -gt 1 ]; then
  ONCE=("${CASE_LIST[@]}")
  CASE_LIST=()
  for ((r = 0; r < REPEAT; r++)); do CASE_LIST+=("${ONCE[@]}"); done
fi

say() { printf '%s\n' "bench: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (private Postfix instance, package installs)"

# ----------------------------------------------------------------------------
# Process bookkeeping: every background process is recorded as "PID NAME
# STARTTIME" and killed by PID at exit, only if /proc/PID still runs NAME and
# (when recorded) still has that start time, so that a reused PID is never hit.
# Never by name: other people's processes (tests under /tmp/tollgate-test-…)
# carry "tollgate" or "slapd" in their command lines too.

WORK=""
PIDS_FILE=""
PL_DIR=""
PF_DIRS=()
CREATED_POLICY_RC=0

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

starttime() { # starttime PID: field 22 of /proc/PID/stat (clock ticks since boot)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  echo "${20}"
}

runs() { # runs PID NAME [STARTTIME]: is PID alive, running NAME, started then?
  alive "$1" && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -q -- "$2" || return 1
  [ -z "${3:-}" ] || [ "$(starttime "$1")" = "$3" ]
}

STARTS=() # STARTS[PID]=start time, for stop_pid calls made by this script

track() { # track PID NAME
  local st
  st=$(starttime "$1") || st=""
  [ -n "$st" ] && STARTS[$1]=$st
  echo "$1 $2 $st" >>"$PIDS_FILE"
}

stop_pid() { # stop_pid PID NAME [GRACE_SECONDS [STARTTIME]]
  local pid=$1 name=$2 grace=${3:-10} st=${4:-} i
  [ -n "$pid" ] || return 0
  [ -n "$st" ] || st=${STARTS[$pid]:-}
  runs "$pid" "$name" "$st" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then runs "$pid" "$name" "$st" && kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  return 0
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
  local rc=$? pid name st d
  set +e
  if [ -n "$PIDS_FILE" ] && [ -f "$PIDS_FILE" ]; then
    while read -r pid name st; do stop_pid "$pid" "$name" 5 "$st"; done < <(tac "$PIDS_FILE")
  fi
  # a slapd whose start script was interrupted before run.sh could record it
  if [ -n "$PL_DIR" ] && [ -s "$PL_DIR/slapd/slapd.pid" ]; then
    pid=$(tr -d ' \n' <"$PL_DIR/slapd/slapd.pid")
    if runs "$pid" "$PL_DIR/slapd"; then stop_pid "$pid" "$PL_DIR/slapd" 5; fi
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
  if [[ ",$SYSTEMS," == *,tollgate:milter,* ]]; then
    command -v opendkim >/dev/null 2>&1 || [ -x /usr/sbin/opendkim ] || pkgs+=(opendkim)
    command -v opendkim-genkey >/dev/null 2>&1 || pkgs+=(opendkim-tools)
  fi
  if [[ ",$SYSTEMS," == *,tollgate-cluster,* ]]; then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql)
  fi
  if [ "$FSYNC_CHECK" = 1 ] && [ "$COMPARISON" = 1 ]; then command -v strace >/dev/null 2>&1 || pkgs+=(strace); fi
  if [ "$PIPELINE" != 0 ]; then
    command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || pkgs+=(slapd)
    for c in slapadd ldapadd ldapwhoami; do
      command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || { pkgs+=(ldap-utils); break; }
    done
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  fi
  [ ${#pkgs[@]} -gt 0 ] || return 0
  say "installing ${pkgs[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # keep Debian's own postfix (and slapd) service from starting
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CREATED_POLICY_RC=1
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${pkgs[@]}" >/dev/null
  if [ "$CREATED_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; CREATED_POLICY_RC=0; fi
  # should Debian's instance have started anyway, stop it
  if [ -f /var/spool/postfix/pid/master.pid ] && alive "$(tr -d ' \n' </var/spool/postfix/pid/master.pid)"; then
    postfix stop >/dev/null 2>&1 || true
  fi
  # likewise Debian's slapd (port 389), if it was installed just now
  if [[ " ${pkgs[*]} " == *" slapd "* ]] && [ -f /var/run/slapd/slapd.pid ] &&
    alive "$(tr -d ' \n' </var/run/slapd/slapd.pid)"; then
    kill -TERM "$(tr -d ' \n' </var/run/slapd/slapd.pid)" 2>/dev/null || true
  fi
}

want_tollgate() { [[ ",$SYSTEMS," == *,tollgate* ]]; }
want_plugin() { # want_plugin NAME: a variant's template uses the stage
  local v
  for v in $VARIANTS; do grep -q "use: $1\b" "${v#*=}" 2>/dev/null && return 0; done
  return 1
}

ensure_tollgate() {
  want_tollgate || [ "$PIPELINE" != 0 ] || return 0
  local bindir p missing=0
  bindir=$(dirname "$TG_BIN")
  if [ "$PIPELINE" != 0 ]; then
    # the bundled stages are built into the same folder and loaded from there
    for p in ldap sender-allowlist rate-limit; do [ -f "$bindir/libtollgate-$p.so" ] || missing=1; done
  fi
  for p in dkim milter; do
    if want_plugin "$p"; then [ -f "$bindir/libtollgate-$p.so" ] || missing=1; fi
  done
  if [ ! -x "$TG_BIN" ] || [ "$missing" = 1 ]; then
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
# The size sweep sends up to 10 MiB; Postfix's default limit is 10,240,000 bytes.
message_size_limit = 26214400
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

DKIM_KEY=""

ensure_dkim_key() { # one RSA-2048 key per run, made by Tollgate itself
  [ -z "$DKIM_KEY" ] || return 0
  mkdir -p "$WORK/dkim"
  DKIM_KEY="$WORK/dkim/bench.example.com.pem"
  "$TG_BIN" dkim keygen --domain example.com --selector bench --out "$DKIM_KEY" >"$WORK/dkim/record.txt" ||
    die "tollgate dkim keygen failed"
}

start_opendkim() { # DIR -> MILTER_PORT, MILTER_PID: a signing OpenDKIM for one case
  local d="$1/opendkim"
  mkdir -p "$d"
  chmod 755 "$1" "$d"
  opendkim-genkey --bits=2048 --domain=example.com --selector=bench --directory="$d" ||
    die "opendkim-genkey failed"
  chown opendkim "$d/bench.private" 2>/dev/null || true
  MILTER_PORT=$(freeport)
  cat >"$d/opendkim.conf" <<EOF
Syslog no
Mode s
Socket inet:$MILTER_PORT@127.0.0.1
Domain example.com
Selector bench
KeyFile $d/bench.private
RequireSafeKeys false
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
PidFile $d/opendkim.pid
UserID opendkim
EOF
  opendkim -f -x "$d/opendkim.conf" >"$d/opendkim.log" 2>&1 &
  MILTER_PID=$!
  track "$MILTER_PID" opendkim
  python3 "$HERE/util.py" wait-port "$MILTER_PORT" 20 "$MILTER_PID" ||
    die "opendkim did not listen: $(tail -5 "$d/opendkim.log")"
}

# What start_system leaves for run_one and stop_system besides SERVER_PID: every port
# that takes mail (a cluster has one per node), every relay PID, the PIDs that belong to
# the system too (its database, its milter: their CPU and memory are counted with it),
# and a command that prints a count to report per message (the database's statements).
SERVER_PORTS=""; SERVER_PIDS=""; EXTRA_PIDS=""; COUNT_CMD=""; MILTER_PID=""; PG_PID=""

start_tollgate() { # DIR PORT SINKPORT SYSTEM
  local dir=$1 port=$2 sinkport=$3 sys=$4 tpl
  tpl=$(template_for "$sys")
  [ -f "$tpl" ] || die "Tollgate config template not found: $tpl"
  mkdir -p "$dir/spool"
  sed -e "s|@LISTEN_ADDRESS@|127.0.0.1:$port|g" -e "s|@UPSTREAM_ADDRESS@|127.0.0.1:$sinkport|g" \
    -e "s|@SPOOL_PATH@|$dir/spool|g" -e "s|@WORKDIR@|$dir|g" "$tpl" >"$dir/tollgate.yaml"
  if grep -q @DKIM_KEY@ "$dir/tollgate.yaml"; then
    ensure_dkim_key
    sed -i "s|@DKIM_KEY@|$DKIM_KEY|g" "$dir/tollgate.yaml"
  fi
  MILTER_PID=""
  if grep -q @MILTER_ADDRESS@ "$dir/tollgate.yaml"; then
    start_opendkim "$dir"
    sed -i "s|@MILTER_ADDRESS@|127.0.0.1:$MILTER_PORT|g" "$dir/tollgate.yaml"
    EXTRA_PIDS=$MILTER_PID
  fi
  "$TG_BIN" serve -c "$dir/tollgate.yaml" >"$dir/tollgate.log" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID" tollgate
  SERVER_PIDS=$SERVER_PID
  if ! python3 "$HERE/util.py" wait-smtp "$port" 60 "$SERVER_PID"; then
    tail -20 "$dir/tollgate.log" >&2 || true
    return 1
  fi
}

stop_tollgate() {
  stop_pid "$SERVER_PID" tollgate 20
  [ -z "$MILTER_PID" ] || stop_pid "$MILTER_PID" opendkim 10
  MILTER_PID=""
}

PG_BIN=""
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- "$@"; }

start_postgres() { # DIR -> PG_PORT, PG_PID: a throwaway PostgreSQL for one case
  local d="$1/pg" i
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL's server is not installed (apt-get install postgresql)"
  mkdir -p "$d"
  chown postgres:postgres "$d"
  chmod 755 "$1"
  as_postgres "$PG_BIN/initdb" -D "$d" -U tollgate --auth trust -E UTF8 --locale C --no-instructions >"$1/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -5 "$1/initdb.log")"
  PG_PORT=$(freeport)
  cat >>"$d/postgresql.conf" <<EOF
# bench/run.sh --cluster: stock settings but for loopback only, its own socket folder,
# and pg_stat_statements (statements per message). fsync and synchronous_commit are on
# (the defaults): a 250 waits for the WAL flush, as Tollgate's SQLite store and Postfix
# wait for their fsync.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$d'
fsync = on
synchronous_commit = on
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track_utility = on
pg_stat_statements.track_planning = on
max_connections = 200
EOF
  as_postgres "$PG_BIN/postgres" -D "$d" >"$1/postgres.log" 2>&1 &
  PG_PID=$!
  track "$PG_PID" postgres
  for ((i = 0; i < 300; i++)); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    alive "$PG_PID" || die "postgres exited: $(tail -5 "$1/postgres.log")"
    sleep 0.1
  done
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U tollgate tollgate || die "createdb failed"
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U tollgate -d tollgate -c "CREATE EXTENSION pg_stat_statements" ||
    die "CREATE EXTENSION pg_stat_statements failed"
}

start_cluster() { # DIR PORT SINKPORT: CLUSTER_NODES nodes on one PostgreSQL
  local dir=$1 port=$2 sinkport=$3 i node p pid tpl="$HERE/tollgate-cluster.yaml.in" conns
  start_postgres "$dir"
  EXTRA_PIDS=$PG_PID
  COUNT_CMD="$PG_BIN/psql -h 127.0.0.1 -p $PG_PORT -U tollgate -d tollgate -tAc 'SELECT coalesce(sum(calls), 0) FROM pg_stat_statements'"
  conns=$(( (20 + CLUSTER_NODES - 1) / CLUSTER_NODES ))
  SERVER_PORTS=""; SERVER_PIDS=""
  for ((i = 1; i <= CLUSTER_NODES; i++)); do
    node="node$i"
    if [ "$i" = 1 ]; then p=$port; else p=$(freeport); fi
    mkdir -p "$dir/$node"
    sed -e "s|@LISTEN_ADDRESS@|127.0.0.1:$p|g" -e "s|@UPSTREAM_ADDRESS@|127.0.0.1:$sinkport|g" \
      -e "s|@POSTGRES_URL@|postgresql://tollgate@127.0.0.1:$PG_PORT/tollgate|g" -e "s|@NODE@|$node|g" \
      -e "s|@UPSTREAM_CONNECTIONS@|$conns|g" "$tpl" >"$dir/$node/tollgate.yaml"
    "$TG_BIN" serve -c "$dir/$node/tollgate.yaml" >"$dir/$node/tollgate.log" 2>&1 &
    pid=$!
    track "$pid" tollgate
    # the first node makes the schema; the others start once it is there
    if ! python3 "$HERE/util.py" wait-smtp "$p" 60 "$pid"; then
      tail -20 "$dir/$node/tollgate.log" >&2 || true
      return 1
    fi
    SERVER_PORTS="${SERVER_PORTS:+$SERVER_PORTS,}$p"
    SERVER_PIDS="${SERVER_PIDS:+$SERVER_PIDS,}$pid"
  done
  SERVER_PID=${SERVER_PIDS%%,*}
  # one log for run_one's excerpt
  ln -sf "$dir/node1/tollgate.log" "$dir/tollgate.log"
}

stop_cluster() {
  local pid
  for pid in ${SERVER_PIDS//,/ }; do stop_pid "$pid" tollgate 20; done
  [ -z "$PG_PID" ] || stop_pid "$PG_PID" postgres 20
  PG_PID=""
}

start_system() { # SYSTEM DIR PORT SINKPORT
  SERVER_PORTS=$3; SERVER_PIDS=""; EXTRA_PIDS=""; COUNT_CMD=""
  case "$1" in
    postfix) start_postfix "$2" "$3" "$4"; SERVER_PIDS=$SERVER_PID ;;
    tollgate-cluster) start_cluster "$2" "$3" "$4" ;;
    tollgate|tollgate:*) start_tollgate "$2" "$3" "$4" "$1" ;;
    *) die "unknown system $1" ;;
  esac
}

stop_system() { # SYSTEM DIR
  case "$1" in
    postfix) stop_postfix "$2" ;;
    tollgate-cluster) stop_cluster ;;
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
    *[mM]) echo $((${1%?} * 1024 * 1024)) ;;
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
      python3 "$HERE/measure.py" --system "$sys" --port "$SERVER_PORTS" \
      --sink-count-file "$dir/sink.count" --server-pid "$SERVER_PIDS" \
      --extra-pid "$EXTRA_PIDS" --count-cmd "$COUNT_CMD" \
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
  mkdir -p "$OUT/logs"
  # where the database's time goes: each statement's calls, planning and execution
  if [ "$sys" = tollgate-cluster ] && [ -n "$PG_PORT" ]; then
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U tollgate -d tollgate -P pager=off -c "
      SELECT calls, round(total_plan_time::numeric, 1) AS plan_ms, round(total_exec_time::numeric, 1) AS exec_ms,
             round(((total_plan_time + total_exec_time) / greatest(calls, 1))::numeric, 3) AS ms_per_call,
             left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
      FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT 15" \
      >"$OUT/logs/$tag.pg-statements.txt" 2>&1 || true
  fi
  stop_system "$sys" "$dir"
  stop_pid "$SINK_PID" smtp-sink
  # keep the tail of the relay's log with the results
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
# Pipeline overhead: Tollgate with the policy pipeline off and on, driven with
# STARTTLS (and AUTH when on) by bench/pipeline.py.  One slapd for the whole
# section; a fresh Tollgate and sink per measurement.

LDAP_PORT=""
SLAPD_PID=""

pipeline_setup() {
  local rc=0
  PL_DIR="$WORK/pipeline"
  mkdir -p "$PL_DIR"
  bash "$ROOT/scripts/make-certs.sh" "$PL_DIR/certs" >/dev/null || die "scripts/make-certs.sh failed"
  # the shipped department policies with only their rate-limit numbers raised
  python3 "$HERE/pipeline.py" policies "$ROOT/policies" "$PL_DIR/policies" >"$OUT/pipeline-policies.diff"
  LDAP_PORT=$(freeport)
  sh "$ROOT/demo/ldap/start-slapd.sh" "$PL_DIR/slapd" "$LDAP_PORT" >"$PL_DIR/slapd.start" 2>&1 || rc=$?
  if [ -s "$PL_DIR/slapd/slapd.pid" ]; then
    SLAPD_PID=$(tr -d ' \n' <"$PL_DIR/slapd/slapd.pid")
    track "$SLAPD_PID" slapd
  fi
  [ "$rc" = 0 ] || die "slapd did not start: $(tail -5 "$PL_DIR/slapd.start")"
  say "pipeline: slapd on 127.0.0.1:$LDAP_PORT (PID $SLAPD_PID)"
}

pipeline_config() { # MODE PORT SINKPORT METRICSPORT SPOOL FINANCESINKPORT -> stdout
  sed -e "s|@LISTEN_ADDRESS@|127.0.0.1:$2|g" -e "s|@UPSTREAM_ADDRESS@|127.0.0.1:$3|g" \
    -e "s|@FINANCE_UPSTREAM_ADDRESS@|127.0.0.1:$6|g" \
    -e "s|@METRICS_ADDRESS@|127.0.0.1:$4|g" -e "s|@SPOOL_PATH@|$5|g" -e "s|@WORKDIR@|$(dirname "$5")|g" \
    -e "s|@CERT_DIR@|$PL_DIR/certs|g" -e "s|@LDAP_URI@|ldap://127.0.0.1:$LDAP_PORT|g" \
    -e "s|@POLICIES@|$PL_DIR/policies|g" "$HERE/tollgate-pipeline-$1.yaml.in"
}

pipeline_check() { # MODE: tollgate check of the generated configuration
  local mode=$1 dir="$PL_DIR/check-$1"
  mkdir -p "$dir/spool"
  pipeline_config "$mode" "$(freeport)" "$(freeport)" "$(freeport)" "$dir/spool" "$(freeport)" >"$dir/tollgate.yaml"
  cp "$dir/tollgate.yaml" "$OUT/pipeline-tollgate-$mode.yaml"
  if ! timeout 60 "$TG_BIN" check -c "$dir/tollgate.yaml" >"$OUT/pipeline-check-$mode.txt" 2>&1; then
    cat "$OUT/pipeline-check-$mode.txt" >&2
    die "tollgate check refused the pipeline-$mode configuration"
  fi
}

pipeline_one() { # MODE SESSIONS ROUND INDEX
  local mode=$1 n=$2 round=$3 idx=$4 dir port sinkport fport mport tg mp rc=0 tag sink fsink=""
  local sinks=()
  tag="pipeline-$idx-$mode-$n"
  dir="$PL_DIR/$tag"
  mkdir -p "$dir/spool" "$dir/finance"
  port=$(freeport); sinkport=$(freeport); mport=$(freeport); fport=$(freeport)
  say "pipeline $idx: $mode, $n session(s), round $round"
  mkdir -p "$OUT/logs"
  start_sink "$dir" "$sinkport"
  sink=$SINK_PID
  sinks=(--sink-count-file "$dir/sink.count")
  if [ "$mode" = on ]; then
    # upstream finance-outbox (the finance department's route) gets its own
    # sink, which must receive exactly alice's messages
    start_sink "$dir/finance" "$fport"
    fsink=$SINK_PID
    sinks+=(--sink-count-file "$dir/finance/sink.count" --route-check alice)
  fi
  pipeline_config "$mode" "$port" "$sinkport" "$mport" "$dir/spool" "$fport" >"$dir/tollgate.yaml"
  "$TG_BIN" serve -c "$dir/tollgate.yaml" >"$dir/tollgate.log" 2>&1 &
  tg=$!
  track "$tg" tollgate
  if ! python3 "$HERE/util.py" wait-smtp "$port" 60 "$tg"; then
    tail -20 "$dir/tollgate.log" >&2 || true
    printf '{"mode":"%s","sessions":%d,"round":%d,"errors":["tollgate did not start; see %s"],"ok":false}\n' \
      "$mode" "$n" "$round" "$OUT/logs/$tag.log" >>"$OUT/pipeline.jsonl"
  else
    timeout --kill-after=15 $((200 + PL_WARMUP + PL_DURATION + 2 * ${DRAIN_MAX%.*})) \
      python3 "$HERE/pipeline.py" load --port "$port" --ca "$PL_DIR/certs/ca.pem" --mode "$mode" \
      --sessions "$n" --round "$round" --duration "$PL_DURATION" --warmup "$PL_WARMUP" \
      --reconnect "$PL_RECONNECT" "${sinks[@]}" --drain-max "$DRAIN_MAX" \
      --metrics-url "http://127.0.0.1:$mport/metrics" --slapd-log "$PL_DIR/slapd/slapd.log" \
      --server-pid "$tg" --slapd-pid "$SLAPD_PID" >"$dir/result.json" &
    mp=$!
    track "$mp" pipeline.py
    wait "$mp" || rc=$?
    if [ -s "$dir/result.json" ]; then
      cat "$dir/result.json" >>"$OUT/pipeline.jsonl"
    else
      printf '{"mode":"%s","sessions":%d,"round":%d,"errors":["pipeline.py exited %d without a result"],"ok":false}\n' \
        "$mode" "$n" "$round" "$rc" >>"$OUT/pipeline.jsonl"
    fi
    # the policy counters as Tollgate exposes them, for the record
    python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
      "http://127.0.0.1:$mport/metrics" 2>/dev/null | grep -E '^tollgate_(policy_decisions|policy_stage_duration_seconds_(sum|count)|smtp_messages_accepted)' \
      >"$OUT/logs/$tag.metrics" || true
  fi
  stop_pid "$tg" tollgate 20
  stop_pid "$sink" smtp-sink
  stop_pid "$fsink" smtp-sink
  {
    echo "== warnings and errors (first 50)"
    grep -iE 'warn|error|fatal|panic|critical' "$dir/tollgate.log" | head -n 50 || true
    echo "== last 100 lines"
    tail -n 100 "$dir/tollgate.log"
  } >"$OUT/logs/$tag.log" 2>/dev/null || true
  # a run with errors keeps its whole log
  if ! grep -q '"ok": true' "$dir/result.json" 2>/dev/null; then
    gzip -c "$dir/tollgate.log" >"$OUT/logs/$tag.tollgate.log.gz" 2>/dev/null || true
  fi
  [ "$KEEP" = 1 ] || rm -rf "$dir" # spools can be large
}

pipeline_section() {
  local n r idx=0 order
  IFS=, read -r -a PL_SESSION_LIST <<<"$PL_SESSIONS"
  : >"$OUT/pipeline.jsonl"
  pipeline_setup
  pipeline_check off
  pipeline_check on
  for n in "${PL_SESSION_LIST[@]}"; do
    for ((r = 1; r <= PL_ROUNDS; r++)); do
      idx=$((idx + 1))
      # alternate which mode goes first, so that drifts of the machine do not
      # always favour the same one
      if ((idx % 2 == 1)); then order=(off on); else order=(on off); fi
      pipeline_one "${order[0]}" "$n" "$r" "$idx"
      pipeline_one "${order[1]}" "$n" "$r" "$idx"
    done
  done
  # every BIND slapd saw in the whole section, with its result
  grep -E ' BIND dn=| RESULT tag=97 ' "$PL_DIR/slapd/slapd.log" >"$OUT/pipeline-slapd-binds.txt" 2>/dev/null || true
  stop_pid "$SLAPD_PID" slapd 10
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
  if want_tollgate || [ "$PIPELINE" != 0 ]; then
    echo "tollgate: $("$TG_BIN" version 2>&1 | head -1 || true) ($TG_BIN, built $(date -u -r "$TG_BIN" +%Y-%m-%dT%H:%M:%SZ))"
  fi
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)')"
  if [ "$COMPARISON" = 1 ]; then
    echo "systems: ${SYSTEM_LIST[*]}"
    for s in "${SYSTEM_LIST[@]}"; do
      if [[ $s == tollgate* ]]; then echo "  $s config template: $(template_for "$s")"; fi
    done
    echo "cases: ${CASE_LIST[*]}"
    echo "phases: throughput ~${DURATION}s, latency ${LAT_DURATION}s, drain wait <= ${DRAIN_MAX}s"
  fi
  if [ "$PIPELINE" != 0 ]; then
    echo "pipeline section: sessions ${PL_SESSIONS}, ${PL_ROUNDS} round(s), warm-up ${PL_WARMUP}s, measured ${PL_DURATION}s, reconnect every ${PL_RECONNECT} messages"
    echo "  slapd: $(slapd -VV 2>&1 | grep -m1 -o 'slapd [0-9.]*' || true)"
  fi
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "disk fsync rate at start: $(python3 "$HERE/util.py" fsync-rate "$WORK")/s (4 KiB write+fsync)"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

FAILED=0
if [ "$FSYNC_CHECK" = 1 ] && [ "$COMPARISON" = 1 ]; then
  : >"$OUT/fsync-check.txt"
  for s in "${SYSTEM_LIST[@]}"; do
    if [ "$s" = tollgate-cluster ]; then
      # the nodes do not write the spool themselves: PostgreSQL's WAL flush (fsync and
      # synchronous_commit on, set by start_postgres) comes before the COMMIT returns
      echo "tollgate-cluster: durability is PostgreSQL's (fsync = on, synchronous_commit = on); not traced" >>"$OUT/fsync-check.txt"
      continue
    fi
    fsync_check "$s" || { FAILED=1; say "fsync check: $s did not show an fsync before 250"; }
  done
  cat "$OUT/fsync-check.txt" >&2
fi

idx=0
[ "$COMPARISON" = 1 ] || CASE_LIST=()
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

if [ "$PIPELINE" != 0 ]; then pipeline_section; fi

echo "disk fsync rate at end: $(python3 "$HERE/util.py" fsync-rate "$WORK")/s" >>"$OUT/meta.txt"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
{
  cat "$OUT/meta.txt"
  echo
  if [ "$COMPARISON" = 1 ]; then
    if [ -f "$OUT/fsync-check.txt" ]; then echo "fsync before 250:"; cat "$OUT/fsync-check.txt"; fi
    python3 "$HERE/report.py" "$OUT/results.jsonl" postfix || FAILED=1
  fi
  if [ "$PIPELINE" != 0 ]; then
    echo
    echo "== pipeline overhead: Tollgate, STARTTLS, 4 KiB messages, 1 recipient; pipeline off (no AUTH, no"
    echo "   stages) vs on (AUTH PLAIN + ldap, sender-allowlist, rate-limit, department policies; LDAP cache warm)"
    python3 "$HERE/pipeline.py" report "$OUT/pipeline.jsonl" || FAILED=1
  fi
} >"$OUT/report.txt" 2>&1
cat "$OUT/report.txt"
say "results in $OUT (report.txt, results.jsonl, pipeline.jsonl, fsync-check.txt, logs/)"
exit "$FAILED"
