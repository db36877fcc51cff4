#!/usr/bin/env bash
# Installs the Debian packages Tollgate's build, tests, demo and benchmark need,
# only those missing, without questions and without starting Debian's own
# postfix, slapd or samba services. Usage: scripts/install-deps.sh [run|cluster|test|bench]
set -euo pipefail

what="${1:-test}"
packages=(libsqlite3-dev libldap2-dev openssl swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl slapd ldap-utils python3 sqlite3)
case "$what" in
  test|bench) packages+=(postfix testssl.sh nmap) ;;
esac
# The power-loss test builds its LD_PRELOAD write-order shim with gcc (crash-test). PluginLoaderTests reads a plugin's symbols with nm (binutils).
case "$what" in
  test) packages+=(gcc libc6-dev binutils) ;;
esac
# Postfix's SASL client (Cyrus) for PLAIN/LOGIN in LiveRelayTests.PostfixClientTests.
case "$what" in test) packages+=(libsasl2-modules) ;; esac
# A real Active Directory DC for LDAPStageTests.ADStageIntegrationTests and ADRelayTests (Tests/TestSupport/SambaDC.swift).
case "$what" in test) packages+=(samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldb-tools) ;; esac
# systemd-analyze verifies dist/systemd/tollgate.service (LiveRelayTests.SystemdLiveTests).
case "$what" in test) packages+=(systemd) ;; esac
# PostgreSQL server for the cluster store's tests, benchmark and demo (a throwaway initdb; Debian's own cluster never starts).
case "$what" in test|bench|cluster) packages+=(postgresql) ;; esac
# dkimpy (with PyNaCl for Ed25519) and OpenDKIM (its test mode) verify the dkim stage's signatures (DKIMTests, LiveRelayTests.DKIMLiveTests).
case "$what" in test) packages+=(python3-dkim python3-nacl opendkim) ;; esac
# Real Postfix policy servers for PostfixPolicyTests and LiveRelayTests.PostfixPolicyLiveTests (their Debian services never start).
case "$what" in test) packages+=(postfwd policyd-rate-limit) ;; esac
# OpenDKIM's key generator and rspamd (its rspamd_proxy worker in milter mode) for MilterTests; Debian's rspamd service never starts (policy-rc.d).
case "$what" in test) packages+=(opendkim-tools rspamd) ;; esac
# htpasswd -B makes the web console's users file; headless Chromium (with python3-websocket
# for its DevTools protocol) drives the console as a browser (LiveRelayTests.ConsoleLiveTests).
case "$what" in test) packages+=(apache2-utils chromium python3-websocket) ;; esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's services must not start: Tollgate's tests and demo run their own instances.
ours=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  ours=1
fi
trap '[ -n "$ours" ] && rm -f /usr/sbin/policy-rc.d' EXIT
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" </dev/null
