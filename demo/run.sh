#!/usr/bin/env bash
# Starts the demo relay in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/make-certs.sh demo/certs >/dev/null
mkdir -p demo/var/outbox
bin="$(swift build -c release --show-bin-path)/tollgate"
"$bin" check -c demo/tollgate.yaml
cat <<MSG

Tollgate demo: relay on 127.0.0.1:2525 (STARTTLS), submission on 127.0.0.1:2587 (STARTTLS + AUTH).
Delivered mail is written to demo/var/outbox/*.eml. Try, in another terminal:

  swaks --server 127.0.0.1:2525 --from app@example.com --to someone@example.net
  swaks --server 127.0.0.1:2525 -tls --tls-ca-path demo/certs/ca.pem --from app@example.com --to someone@example.net
  $bin queue list -c demo/tollgate.yaml
  curl -s 127.0.0.1:9464/metrics

MSG
exec "$bin" serve -c demo/tollgate.yaml
