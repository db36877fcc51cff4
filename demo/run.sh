#!/usr/bin/env bash
# Starts the demo: a throwaway slapd with the example directory (demo/ldap), then
# the relay in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo's certificates last 30 days: make new ones when either expires within 7.
for pem in demo/certs/server.pem demo/certs/ca.pem; do
  if [ -f "$pem" ] && ! openssl x509 -checkend $((7 * 86400)) -noout -in "$pem" >/dev/null; then
    echo "demo: $pem expires within 7 days; making new certificates" >&2
    rm -f demo/certs/server.pem demo/certs/server.key demo/certs/ca.pem demo/certs/ca.key
  fi
done
bash scripts/make-certs.sh demo/certs >/dev/null
mkdir -p demo/var/outbox demo/var/outbox-finance
bin="$(swift build -c release --show-bin-path)/tollgate"
sh demo/ldap/start-slapd.sh demo/var/ldap 3389
# Read the PID now: slapd removes its own slapd.pid when it stops (on Ctrl-C it gets
# the signal too), so reading the file in the trap printed "No such file" on every stop.
slapd_pid=$(cat demo/var/ldap/slapd.pid)
trap 'kill "$slapd_pid" 2>/dev/null || true' EXIT
"$bin" check -c demo/tollgate.yaml
cat <<MSG

Tollgate demo
  relay      127.0.0.1:2525  STARTTLS, no AUTH: local applications sending as *@apps.example.com
  submission 127.0.0.1:2587  STARTTLS + AUTH against the demo directory (demo/ldap/directory.ldif)
  console    http://127.0.0.1:9465/  the queue and statistics; sign in as admin / admin-pw
Delivered mail lands in demo/var/outbox/ (finance's in demo/var/outbox-finance/).

Try, in another terminal:
  # allowed: alice (finance) sends as her own address
  swaks --server 127.0.0.1:2587 -tls --tls-verify --tls-ca-path demo/certs/ca.pem -a PLAIN -au alice -ap alice-pw \\
        --from alice@finance.example.com --to someone@example.net
  # refused (553 5.7.1): alice sends as bob
  swaks --server 127.0.0.1:2587 -tls --tls-verify --tls-ca-path demo/certs/ca.pem -a PLAIN -au alice -ap alice-pw \\
        --from bob@engineering.example.com --to someone@example.net
  # an application on this host
  swaks --server 127.0.0.1:2525 --from backup@apps.example.com --to ops@example.net
  $bin explain -c demo/tollgate.yaml --user alice --from alice@finance.example.com --to someone@example.net
  $bin queue list -c demo/tollgate.yaml
  curl -s 127.0.0.1:9464/metrics

MSG
"$bin" serve -c demo/tollgate.yaml
