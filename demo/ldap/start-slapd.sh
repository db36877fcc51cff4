#!/bin/sh
# Starts a throwaway slapd for the demo, loaded with directory.ldif.
#   demo/ldap/start-slapd.sh FOLDER PORT
# FOLDER is created (and must not hold another running slapd); slapd listens only
# on ldap://127.0.0.1:PORT and writes its PID to FOLDER/slapd.pid and its log to
# FOLDER/slapd.log. Stop it with: kill "$(cat FOLDER/slapd.pid)"
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
port=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/slapd.d" "$dir/data"
mkdir -p "$dir/slapd.d" "$dir/data"
sed "s|@DIR@|$dir|g" "$here/slapd-config.ldif" | slapadd -n 0 -F "$dir/slapd.d" -q
# -d keeps slapd in the foreground with its log on stderr; run it in the background.
slapd -F "$dir/slapd.d" -h "ldap://127.0.0.1:$port/" -d stats >"$dir/slapd.log" 2>&1 &
echo $! >"$dir/slapd.pid"
tries=0
until ldapwhoami -x -H "ldap://127.0.0.1:$port" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 100 ]; then echo "slapd did not start; see $dir/slapd.log" >&2; exit 1; fi
    sleep 0.05
done
ldapadd -x -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=com -w admin-pw -f "$here/directory.ldif" >/dev/null
echo "slapd running on ldap://127.0.0.1:$port (pid $(cat "$dir/slapd.pid"))"
