#!/usr/bin/python3
"""Verifies the DKIM signatures of messages with dkimpy (Debian's python3-dkim).

Usage: dkim_verify.py RECORDS.json MESSAGE...

RECORDS.json maps DNS names ("sel._domainkey.example.com") to TXT record text; the
key is looked up there instead of in DNS (dkimpy's dnsfunc). For each message file
(the exact bytes an SMTP server received, dot-unstuffed) prints one line
"PASS d=... s=..." or "FAIL reason"; exits 0 only if every message has a signature
and every signature verifies.
"""
import json
import sys

import dkim


def main():
    with open(sys.argv[1]) as f:
        records = json.load(f)

    def dnsfunc(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        return records.get(key.rstrip("."), "").encode()

    ok = True
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            message = f.read()
        verifier = dkim.DKIM(message)
        try:
            count = sum(1 for h in verifier.headers if h[0].lower() == b"dkim-signature")
            if count == 0:
                print("FAIL no DKIM-Signature")
                ok = False
                continue
            for index in range(count):
                good = verifier.verify(idx=index, dnsfunc=dnsfunc)
                tags = verifier.signature_fields
                ident = "d=%s s=%s a=%s" % (tags.get(b"d", b"").decode(), tags.get(b"s", b"").decode(), tags.get(b"a", b"").decode())
                if good:
                    print("PASS " + ident)
                else:
                    print("FAIL " + ident)
                    ok = False
        except dkim.DKIMException as error:
            print("FAIL %s" % error)
            ok = False
    sys.exit(0 if ok else 1)


main()
