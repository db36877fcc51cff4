#!/usr/bin/env python3
"""raw_smtp_sink.py - a capturing SMTP server for Tollgate's tests (stdlib only).

Run by the Swift wrapper ``RawSMTPSink`` as a separate process, loopback only.
It prints ``READY <port>`` on stdout once it listens (``--port 0`` picks a free
port) and exits when its parent process goes away or after ``--lifetime`` seconds.

For every transaction that reaches the end of DATA (or BDAT ... LAST) it writes,
into ``--dir``, with ``NNNNNN`` a sequence number:

* ``NNNNNN.raw``  the exact bytes received between the 354 reply and the final
  ``.\\r\\n`` (the CRLF ending the last line is included; nothing else is
  changed). For BDAT, the concatenated chunk bytes.
* ``NNNNNN.eml``  the same bytes with dot-unstuffing applied (RFC 5321 4.5.2:
  the first character of a line that begins with "." is removed). A line
  begins at the start of the data or after CRLF; a bare CR or bare LF is
  content, not a line end, and is kept. Nothing else is changed. BDAT: equal
  to ``.raw``.
* ``NNNNNN.json`` the envelope and session facts, written last (atomically), so a
  ``.json`` file means the transaction is complete. Keys: id, connection, peer,
  helo_command, ehlo, tls, tls_version, tls_cipher, tls_sni, auth_user,
  mail_from, mail_params, rcpt_to, rcpt_params, rcpt_rejected, data_command,
  bdat_chunks, size, raw_size, data_reply, accepted, pipelining_violations
  (commands of this connection, so far, that were followed by bytes sent
  before their reply although that was not allowed; "." for the end of data),
  starttls_injected_bytes (bytes that followed STARTTLS in the same write, and
  were discarded), received_at.

Each connection also gets ``conn-NNNNNN.log``: a transcript of the commands
("C: ") and replies ("S: ") and notable events ("*: "), without message
content and without AUTH secrets.

Only ``\\r\\n.\\r\\n`` ends DATA (the CRLF of the DATA command counts, so a
first line "." is an empty message). Commands must end with CRLF.

Reply options accept ``N*<reply>``: the reply is given the first N times
(counted per address for --rcpt-reply/--mail-reply, per process for
--data-reply), then the default success reply.
"""

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import socket
import ssl
import sys
import threading
import time

MAX_LINE = 65536
MAX_MESSAGE = 256 * 1024 * 1024


def parse_args():
    p = argparse.ArgumentParser(description="capturing SMTP sink for tests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True)
    p.add_argument("--hostname", default="raw-sink.test")
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--tls-max-version", choices=["1.2", "1.3"],
                   help="the highest TLS version offered")
    p.add_argument("--tls-ciphers", help="OpenSSL cipher list for TLS 1.2")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--auth-without-tls", action="store_true",
                   help="offer AUTH on plaintext connections too")
    p.add_argument("--require-auth", action="store_true")
    p.add_argument("--require-tls", action="store_true")
    p.add_argument("--8bitmime", dest="eightbitmime", action="store_true")
    p.add_argument("--smtputf8", action="store_true")
    p.add_argument("--pipelining", action="store_true")
    p.add_argument("--chunking", action="store_true")
    p.add_argument("--dsn", action="store_true")
    p.add_argument("--max-size", type=int, default=0)
    p.add_argument("--greeting")
    p.add_argument("--ehlo-reply", help="the reply to EHLO instead of 250 (HELO still works)")
    p.add_argument("--drop-in-data", type=int, default=0, metavar="N",
                   help="the first N DATA transfers: read some content, then close without a reply")
    p.add_argument("--stall-in-data", type=int, default=0, metavar="N",
                   help="the first N DATA transfers: after 354 read nothing more and never reply, "
                        "until the client closes or --idle-timeout passes")
    p.add_argument("--data-reply-delay", type=float, default=0.0, metavar="SECONDS",
                   help="after storing a message, wait this long before the reply to its final dot")
    p.add_argument("--mail-reply", action="append", default=[], metavar="PREFIX=REPLY")
    p.add_argument("--rcpt-reply", action="append", default=[], metavar="PREFIX=REPLY")
    p.add_argument("--data-reply")
    p.add_argument("--idle-timeout", type=float, default=60.0)
    p.add_argument("--lifetime", type=float, default=900.0)
    args = p.parse_args()
    if args.tls != "none" and not (args.cert and args.key):
        p.error("--tls needs --cert and --key")
    return args


ARGS = parse_args()
LOCK = threading.Lock()
COUNTERS = {"conn": 0, "msg": 0}
REPLY_COUNTS = {}


def next_number(kind):
    with LOCK:
        COUNTERS[kind] += 1
        return COUNTERS[kind]


def parse_reply_map(items):
    table = []
    for item in items:
        prefix, sep, reply = item.partition("=")
        if not sep:
            sys.exit("bad PREFIX=REPLY: %r" % item)
        table.append((prefix, reply))
    table.sort(key=lambda pair: -len(pair[0]))  # longest prefix wins
    return table


MAIL_REPLIES = parse_reply_map(ARGS.mail_reply)
RCPT_REPLIES = parse_reply_map(ARGS.rcpt_reply)


def counted(spec, key):
    """Returns the reply for `spec`, or None once an `N*reply` spec is used up."""
    m = re.match(r"^(\d+)\*(.*)$", spec, re.S)
    if not m:
        return spec
    with LOCK:
        used = REPLY_COUNTS.get(key, 0)
        if used >= int(m.group(1)):
            return None
        REPLY_COUNTS[key] = used + 1
    return m.group(2)


def lookup_reply(table, kind, address):
    local = address.rsplit("@", 1)[0] if "@" in address else address
    for prefix, spec in table:
        if local.startswith(prefix):
            return counted(spec, (kind, prefix, address))
    return None


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    if ARGS.tls_max_version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ARGS.tls_ciphers:
        ctx.set_ciphers(ARGS.tls_ciphers)

    def on_sni(sslobj, name, _ctx):
        try:
            sslobj.tollgate_sni = name
        except AttributeError:
            pass
        return None

    ctx.sni_callback = on_sni
    return ctx


TLS_CONTEXT = tls_context() if ARGS.tls != "none" else None


def format_reply(text):
    """One or more reply lines ("\\n"-separated, each starting with its code)."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if len(line) >= 4 and line[3] in " -":
            line = line[:3] + ("-" if i < len(lines) - 1 else " ") + line[4:]
        elif len(line) == 3 and i < len(lines) - 1:
            line = line + "-"
        out.append(line)
    return out


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def unstuff(raw):
    parts = raw.split(b"\r\n")
    return b"\r\n".join(p[1:] if p.startswith(b".") else p for p in parts)


def parse_path(rest):
    """`<addr> PARAM PARAM...` -> (addr, [params]) or None."""
    if not rest.startswith("<"):
        return None
    end = rest.find(">")
    while end != -1 and not (end + 1 == len(rest) or rest[end + 1] == " "):
        end = rest.find(">", end + 1)
    if end == -1:
        return None
    params = [p for p in rest[end + 1:].split(" ") if p]
    return rest[1:end], params


class Closed(Exception):
    pass


class Session:
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = "%s:%d" % peer[:2]
        self.number = next_number("conn")
        self.buf = bytearray()
        self.log = open(os.path.join(ARGS.dir, "conn-%06d.log" % self.number), "wb")
        self.tls = False
        self.tls_version = None
        self.tls_cipher = None
        self.tls_sni = None
        self.helo = None
        self.helo_command = None
        self.auth_user = None
        self.violations = []
        self.injected = 0
        self.reset()

    # transcript -------------------------------------------------------
    def note(self, prefix, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        self.log.write(prefix + data + b"\n")
        self.log.flush()

    # I/O ---------------------------------------------------------------
    def fill(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            self.note(b"*: ", "idle timeout")
            self.reply("421 4.4.2 %s Error: timeout exceeded" % ARGS.hostname)
            raise Closed()
        except (ConnectionError, ssl.SSLError, OSError) as e:
            self.note(b"*: ", "read error: %s" % e)
            raise Closed()
        if not data:
            self.note(b"*: ", "client closed the connection")
            raise Closed()
        self.buf += data

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_LINE:
                self.reply("500 5.5.2 Error: line too long")
                raise Closed()
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_data(self):
        """Bytes up to CRLF.CRLF; the DATA command's CRLF counts as the first CRLF."""
        data = bytearray(b"\r\n")
        data += self.buf
        self.buf = bytearray()
        start = 0
        while True:
            i = data.find(b"\r\n.\r\n", start)
            if i >= 0:
                self.buf = data[i + 5:]
                return bytes(data[2:i + 2])
            if len(data) > MAX_MESSAGE:
                self.reply("552 5.3.4 Error: message too large for this sink")
                raise Closed()
            start = max(0, len(data) - 4)
            self.fill()
            data += self.buf
            self.buf = bytearray()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            self.note(b"*: ", "write error: %s" % e)
            raise Closed()

    def reply(self, text):
        for line in format_reply(text):
            self.note(b"S: ", line)
            self.send(line.encode("utf-8", "replace") + b"\r\n")

    # state -------------------------------------------------------------
    def reset(self):
        self.mail_from = None
        self.mail_params = []
        self.smtputf8 = False
        self.rcpt_to = []
        self.rcpt_params = []
        self.rcpt_rejected = []
        self.bdat_chunks = []
        self.bdat_data = bytearray()

    def auth_offered(self):
        return bool(ARGS.auth_user) and (self.tls or ARGS.auth_without_tls) and self.auth_user is None

    def ehlo_lines(self):
        lines = [ARGS.hostname]
        if ARGS.pipelining:
            lines.append("PIPELINING")
        if ARGS.max_size > 0:
            lines.append("SIZE %d" % ARGS.max_size)
        if ARGS.eightbitmime:
            lines.append("8BITMIME")
        if ARGS.smtputf8:
            lines.append("SMTPUTF8")
        if ARGS.chunking:
            lines.append("CHUNKING")
        if ARGS.dsn:
            lines.append("DSN")
        lines.append("ENHANCEDSTATUSCODES")
        if ARGS.tls == "starttls" and not self.tls:
            lines.append("STARTTLS")
        if self.auth_offered():
            lines.append("AUTH PLAIN LOGIN")
        return "\n".join("250 " + line for line in lines)

    def check_pipelining(self, verb):
        """Records (in the transcript) commands sent before the previous reply."""
        if not self.buf:
            return
        last_in_group = verb in ("EHLO", "HELO", "DATA", "QUIT", "NOOP", "VRFY", "EXPN", "STARTTLS", "AUTH")
        if not ARGS.pipelining or last_in_group:
            self.note(b"*: ", "pipelining violation after %s" % verb)
            self.violations.append(verb)

    def mark_tls(self):
        self.tls = True
        self.tls_version = self.sock.version()
        cipher = self.sock.cipher()
        self.tls_cipher = cipher[0] if cipher else None
        self.tls_sni = getattr(self.sock, "tollgate_sni", None)
        self.note(b"*: ", "tls %s %s sni=%s" % (self.tls_version, self.tls_cipher, self.tls_sni))

    def handshake(self):
        try:
            self.sock.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self.note(b"*: ", "tls handshake failed: %s" % e)
            raise Closed()
        self.mark_tls()

    # main loop -----------------------------------------------------------
    def run(self):
        try:
            self.sock.settimeout(ARGS.idle_timeout)
            if ARGS.tls == "implicit":
                self.handshake()
            greeting = ARGS.greeting or "220 %s ESMTP raw_smtp_sink" % ARGS.hostname
            self.reply(greeting)
            if greeting.startswith("421"):
                return
            refusing = not greeting.startswith("2")
            while True:
                raw = self.readline()
                text = raw.decode("utf-8", "replace")
                verb = text.split(" ", 1)[0].upper()
                self.note(b"C: ", self.redact(verb, raw))
                if b"\r" in raw or b"\n" in raw:
                    self.reply("500 5.5.2 Error: bare CR or LF in command")
                    continue
                self.check_pipelining(verb)
                if refusing:
                    if verb == "QUIT":
                        self.reply("221 2.0.0 Bye")
                        return
                    self.reply("503 5.5.1 Error: no SMTP service here")
                    continue
                handler = getattr(self, "cmd_" + verb.lower(), None) if verb.isalpha() else None
                if handler is None:
                    self.reply("500 5.5.2 Error: command not recognized")
                    continue
                if handler(text[len(verb) + 1:] if len(text) > len(verb) else "", raw) == "quit":
                    return
        except Closed:
            pass
        finally:
            self.note(b"*: ", "closed")
            try:
                self.sock.close()
            except OSError:
                pass
            self.log.close()

    def redact(self, verb, raw):
        if verb == "AUTH" or getattr(self, "in_auth", False):
            parts = raw.split(b" ")
            return b" ".join(parts[:2]) + (b" ***" if len(parts) > 2 else b"")
        return raw

    # commands -------------------------------------------------------------
    def cmd_ehlo(self, arg, raw):
        if not arg:
            self.reply("501 5.5.4 Syntax: EHLO hostname")
            return
        if ARGS.ehlo_reply:
            self.reply(ARGS.ehlo_reply)
            return
        self.helo, self.helo_command = arg, "EHLO"
        self.reset()
        self.reply(self.ehlo_lines())

    def cmd_helo(self, arg, raw):
        if not arg:
            self.reply("501 5.5.4 Syntax: HELO hostname")
            return
        self.helo, self.helo_command = arg, "HELO"
        self.reset()
        self.reply("250 %s" % ARGS.hostname)

    def cmd_starttls(self, arg, raw):
        if ARGS.tls != "starttls" or self.tls:
            self.reply("502 5.5.1 Error: STARTTLS not available")
            return
        if arg:
            self.reply("501 5.5.4 Syntax: STARTTLS")
            return
        self.reply("220 2.0.0 Ready to start TLS")
        if self.buf:
            self.note(b"*: ", "starttls injection: %d bytes discarded" % len(self.buf))
            self.injected += len(self.buf)
            self.buf = bytearray()
        self.sock = TLS_CONTEXT.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        self.handshake()
        self.helo = self.helo_command = None
        self.reset()

    def cmd_auth(self, arg, raw):
        if not self.helo or self.helo_command != "EHLO":
            self.reply("503 5.5.1 Error: send EHLO first")
            return
        if self.auth_user is not None:
            self.reply("503 5.5.1 Error: already authenticated")
            return
        if not self.auth_offered():
            self.reply("503 5.5.1 Error: authentication not enabled")
            return
        if self.mail_from is not None:
            self.reply("503 5.5.1 Error: MAIL transaction in progress")
            return
        parts = arg.split(" ")
        mech = parts[0].upper()
        initial = parts[1] if len(parts) > 1 else None
        self.in_auth = True
        try:
            if mech == "PLAIN":
                response = initial if initial is not None else self.challenge("")
                if response is None:
                    return
                decoded = self.b64(response)
                if decoded is None:
                    return
                fields = decoded.split(b"\0")
                if len(fields) != 3:
                    self.reply("535 5.7.8 Error: authentication failed: malformed PLAIN response")
                    return
                user, password = fields[1], fields[2]
            elif mech == "LOGIN":
                first = initial if initial is not None else self.challenge("VXNlcm5hbWU6")
                if first is None:
                    return
                user = self.b64(first)
                if user is None:
                    return
                second = self.challenge("UGFzc3dvcmQ6")
                if second is None:
                    return
                password = self.b64(second)
                if password is None:
                    return
            else:
                self.reply("504 5.5.4 Error: unsupported authentication mechanism")
                return
        finally:
            self.in_auth = False
        user_s = user.decode("utf-8", "replace")
        if user_s == ARGS.auth_user and password.decode("utf-8", "replace") == (ARGS.auth_password or ""):
            self.auth_user = user_s
            self.note(b"*: ", "authenticated as %s" % user_s)
            self.reply("235 2.7.0 Authentication successful")
        else:
            self.note(b"*: ", "authentication failed for %s" % user_s)
            self.reply("535 5.7.8 Error: authentication failed")

    def challenge(self, text):
        self.reply("334 " + text)
        line = self.readline()
        self.note(b"C: ", b"***")
        if line == b"*":
            self.reply("501 5.7.0 Authentication aborted")
            return None
        return line.decode("ascii", "replace")

    def b64(self, text):
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self.reply("501 5.5.2 Error: invalid base64 data")
            return None

    def check_params(self, params, allowed):
        for param in params:
            key, _, value = param.partition("=")
            key = key.upper()
            if key not in allowed:
                self.reply("555 5.5.4 Unsupported option: %s" % param)
                return False
            if key == "SIZE":
                if not value.isdigit():
                    self.reply("501 5.5.4 Bad SIZE syntax")
                    return False
                if int(value) > ARGS.max_size:
                    self.reply("552 5.3.4 Message size exceeds fixed limit")
                    return False
            if key == "BODY" and value.upper() not in ("7BIT", "8BITMIME"):
                self.reply("501 5.5.4 Unsupported BODY type: %s" % value)
                return False
            if key == "SMTPUTF8" and value:
                self.reply("501 5.5.4 SMTPUTF8 takes no value")
                return False
        return True

    def cmd_mail(self, arg, raw):
        if not self.helo:
            self.reply("503 5.5.1 Error: send HELO/EHLO first")
            return
        if ARGS.require_tls and not self.tls:
            self.reply("530 5.7.0 Must issue a STARTTLS command first")
            return
        if ARGS.require_auth and self.auth_user is None:
            self.reply("530 5.7.0 Authentication required")
            return
        if self.mail_from is not None:
            self.reply("503 5.5.1 Error: nested MAIL command")
            return
        if not arg.upper().startswith("FROM:"):
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        parsed = parse_path(arg[5:])
        if parsed is None:
            self.reply("501 5.1.7 Bad sender address syntax")
            return
        address, params = parsed
        allowed = {"AUTH"} if self.helo_command == "EHLO" else set()
        if self.helo_command == "EHLO":
            if ARGS.max_size > 0:
                allowed.add("SIZE")
            if ARGS.eightbitmime:
                allowed.add("BODY")
            if ARGS.smtputf8:
                allowed.add("SMTPUTF8")
            if ARGS.dsn:
                allowed |= {"RET", "ENVID"}
        if not self.check_params(params, allowed):
            return
        smtputf8 = any(p.upper() == "SMTPUTF8" for p in params)
        if not smtputf8 and any(b > 127 for b in raw):
            self.reply("553 5.6.7 Error: non-ASCII address needs SMTPUTF8")
            return
        special = lookup_reply(MAIL_REPLIES, "mail", address)
        if special is not None and not special.startswith("2"):
            self.reply(special)
            return
        self.mail_from, self.mail_params, self.smtputf8 = address, params, smtputf8
        self.reply(special or "250 2.1.0 Ok")

    def cmd_rcpt(self, arg, raw):
        if self.mail_from is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if not arg.upper().startswith("TO:"):
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        parsed = parse_path(arg[3:])
        if parsed is None or not parsed[0]:
            self.reply("501 5.1.3 Bad recipient address syntax")
            return
        address, params = parsed
        if not self.check_params(params, {"NOTIFY", "ORCPT"} if ARGS.dsn else set()):
            return
        if not self.smtputf8 and any(b > 127 for b in raw):
            self.reply("553 5.6.7 Error: non-ASCII address needs SMTPUTF8")
            return
        special = lookup_reply(RCPT_REPLIES, "rcpt", address)
        if special is not None and not special.startswith("2"):
            self.rcpt_rejected.append({"address": address, "reply": special})
            self.reply(special)
            return
        self.rcpt_to.append(address)
        self.rcpt_params.append(params)
        self.reply(special or "250 2.1.5 Ok")

    def cmd_data(self, arg, raw):
        if arg:
            self.reply("501 5.5.4 Syntax: DATA")
            return
        if self.mail_from is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if self.bdat_chunks:
            self.reply("503 5.5.1 Error: DATA after BDAT")
            return
        if not self.rcpt_to:
            self.reply("554 5.5.1 Error: no valid recipients")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        if ARGS.drop_in_data and counted("%d*drop" % ARGS.drop_in_data, ("drop-in-data",)) is not None:
            self.fill()
            self.note(b"*: ", "dropping the connection in DATA")
            raise Closed()
        if ARGS.stall_in_data and counted("%d*stall" % ARGS.stall_in_data, ("stall-in-data",)) is not None:
            self.note(b"*: ", "stalling in DATA")
            # Read nothing: the client's writes fill the socket buffers and stop.
            time.sleep(ARGS.idle_timeout)
            raise Closed()
        raw_data = self.read_data()
        self.note(b"*: ", "DATA: %d bytes" % len(raw_data))
        if self.buf and not ARGS.pipelining:
            self.note(b"*: ", "pipelining violation after end of data")
            self.violations.append(".")
        self.finish("DATA", raw_data, unstuff(raw_data))

    def cmd_bdat(self, arg, raw):
        m = re.match(r"^(\d+)( +LAST)? *$", arg, re.I)
        if not ARGS.chunking:
            self.reply("502 5.5.1 Error: BDAT not available")
            return
        if not m:
            self.reply("501 5.5.4 Syntax: BDAT size [LAST]")
            return
        chunk = self.read_exact(int(m.group(1)))
        last = m.group(2) is not None
        if self.mail_from is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if not self.rcpt_to:
            self.reply("554 5.5.1 Error: no valid recipients")
            return
        self.bdat_chunks.append(len(chunk))
        self.bdat_data += chunk
        if not last:
            self.reply("250 2.0.0 %d octets received" % len(chunk))
            return
        data = bytes(self.bdat_data)
        self.finish("BDAT", data, data)

    def finish(self, command, raw_data, content):
        if ARGS.max_size > 0 and len(content) > ARGS.max_size:
            reply = "552 5.3.4 Message size exceeds fixed limit"
        else:
            reply = counted(ARGS.data_reply, ("data",)) if ARGS.data_reply else None
        number = next_number("msg")
        name = "%06d" % number
        reply = reply or "250 2.0.0 Ok: queued as %s" % name
        write_atomically(os.path.join(ARGS.dir, name + ".raw"), raw_data)
        write_atomically(os.path.join(ARGS.dir, name + ".eml"), content)
        record = {
            "id": name,
            "connection": self.number,
            "peer": self.peer,
            "helo_command": self.helo_command,
            "ehlo": self.helo,
            "tls": self.tls,
            "tls_version": self.tls_version,
            "tls_cipher": self.tls_cipher,
            "tls_sni": self.tls_sni,
            "auth_user": self.auth_user,
            "mail_from": self.mail_from,
            "mail_params": self.mail_params,
            "rcpt_to": self.rcpt_to,
            "rcpt_params": self.rcpt_params,
            "rcpt_rejected": self.rcpt_rejected,
            "data_command": command,
            "bdat_chunks": self.bdat_chunks,
            "size": len(content),
            "raw_size": len(raw_data),
            "data_reply": format_reply(reply)[-1],
            "accepted": reply.startswith("2"),
            "pipelining_violations": list(self.violations),
            "starttls_injected_bytes": self.injected,
            "received_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        write_atomically(os.path.join(ARGS.dir, name + ".json"),
                         json.dumps(record, indent=1).encode("utf-8"))
        self.reset()
        if ARGS.data_reply_delay:
            time.sleep(ARGS.data_reply_delay)
        self.reply(reply)

    def cmd_rset(self, arg, raw):
        self.reset()
        self.reply("250 2.0.0 Ok")

    def cmd_noop(self, arg, raw):
        self.reply("250 2.0.0 Ok")

    def cmd_vrfy(self, arg, raw):
        self.reply("252 2.0.0 Cannot VRFY user")

    def cmd_help(self, arg, raw):
        self.reply("214 2.0.0 See RFC 5321")

    def cmd_quit(self, arg, raw):
        self.reply("221 2.0.0 Bye")
        return "quit"


def watchdog(parent):
    deadline = time.monotonic() + ARGS.lifetime
    while True:
        time.sleep(0.25)
        if os.getppid() != parent:
            os._exit(0)
        if time.monotonic() > deadline:
            sys.stderr.write("raw_smtp_sink: lifetime exceeded, exiting\n")
            sys.stderr.flush()
            os._exit(0)


def main():
    os.makedirs(ARGS.dir, exist_ok=True)
    threading.Thread(target=watchdog, args=(os.getppid(),), daemon=True).start()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ARGS.host, ARGS.port))
    server.listen(64)
    print("READY %d" % server.getsockname()[1], flush=True)
    while True:
        sock, peer = server.accept()
        if TLS_CONTEXT is not None and ARGS.tls == "implicit":
            sock = TLS_CONTEXT.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=Session(sock, peer).run, daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
