#!/usr/bin/env bash
# Makes a throwaway CA and a server certificate for localhost/127.0.0.1 in DIR.
set -euo pipefail
dir="${1:?usage: make-certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
[ -f server.pem ] && [ -f server.key ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Tollgate demo CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile ext.cnf -out server.pem 2>/dev/null
rm -f server.csr ext.cnf ca.srl
chmod 600 server.key ca.key
echo "certificates in $dir (CA: $dir/ca.pem)"
