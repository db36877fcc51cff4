import Foundation

/// The Python source of ``FakeUpstream``: a scripted SMTP server whose every quirk is a
/// switch — STARTTLS and implicit TLS, AUTH, extension lists, per-recipient replies,
/// the reply after the dot (or a hang, or a disconnect), bytes injected after the 220
/// to STARTTLS (RELIABILITY C7). It stores the exact bytes it receives.
let fakeUpstreamScript = #"""
# A scripted SMTP upstream for SMTPClientTests. One JSON argument configures it.
# Writes its port to <dir>/port once listening. Records, per session, every byte received
# (after TLS: the decrypted bytes) to <dir>/session-<n>.raw and each message's DATA
# bytes exactly as received (dot-stuffed, up to and including the final ".\r\n")
# to <dir>/message-<n>.raw.
import json, os, socket, ssl, sys, threading, base64, time

cfg = json.loads(sys.argv[1])
out = cfg["dir"]
counter = {"session": 0, "message": 0}
lock = threading.Lock()

def next_id(kind):
    with lock:
        counter[kind] += 1
        return counter[kind]

def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    return ctx

class Session:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.tls = False
        self.sid = next_id("session")
        self.log = open(os.path.join(out, "session-%d.raw" % self.sid), "wb")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self, line):
        self.send(line + "\r\n")

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError()
        self.log.write(data)
        self.log.flush()
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def data(self):
        # Up to and including CRLF.CRLF, exactly as received.
        while True:
            idx = self.buf.find(b"\r\n.\r\n")
            if self.buf.startswith(b".\r\n"):
                body, self.buf = self.buf[:3], self.buf[3:]
                return body
            if idx >= 0:
                body, self.buf = self.buf[: idx + 5], self.buf[idx + 5 :]
                return body
            self.fill()

    def ehlo_lines(self):
        lines = list(cfg.get("extensions", ["PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"]))
        if cfg.get("starttls") and not self.tls:
            lines.append("STARTTLS")
        if cfg.get("auth") and (self.tls or cfg.get("auth_plaintext")):
            lines.append("AUTH " + " ".join(cfg.get("auth_mechanisms", ["PLAIN", "LOGIN"])))
        return lines

    def run(self):
        if cfg.get("implicit_tls"):
            self.sock = tls_context().wrap_socket(self.sock, server_side=True)
            self.tls = True
        self.reply(cfg.get("greeting", "220 fake.test ESMTP"))
        if cfg.get("close_after_greeting"):
            return
        have_rcpt = False
        while True:
            raw = self.line()
            text = raw.decode("utf-8", "replace")
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if "ehlo_reply" in cfg:
                    self.reply(cfg["ehlo_reply"])
                    continue
                lines = ["fake.test"] + self.ehlo_lines()
                self.send("".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l) for i, l in enumerate(lines)))
            elif verb == "HELO":
                self.reply("250 fake.test")
            elif verb == "STARTTLS":
                if "starttls_reply" in cfg:
                    self.reply(cfg["starttls_reply"])
                    continue
                self.send(("220 2.0.0 go ahead\r\n" + cfg.get("starttls_inject", "")).encode())
                if "starttls_inject_delayed" in cfg:
                    time.sleep(0.3)
                    self.send(cfg["starttls_inject_delayed"])
                self.buf = b""
                self.sock = tls_context().wrap_socket(self.sock, server_side=True)
                self.tls = True
                self.log.write(b"--- TLS ---\r\n")
                if "after_tls_inject" in cfg:
                    self.send(cfg["after_tls_inject"])
            elif verb == "AUTH":
                self.auth(text)
            elif verb == "MAIL":
                have_rcpt = False
                self.reply(cfg.get("mail_reply", "250 2.1.0 Ok"))
            elif verb == "RCPT":
                addr = text[text.find("<") + 1 : text.find(">")]
                r = cfg.get("rcpt_replies", {}).get(addr, "250 2.1.5 Ok")
                if r.startswith("2"):
                    have_rcpt = True
                if r == "close":
                    return
                self.reply(r)
            elif verb == "DATA":
                if not have_rcpt and not cfg.get("always_354"):
                    self.reply("554 5.5.1 Error: no valid recipients")
                    continue
                if "data_cmd_reply" in cfg:
                    self.reply(cfg["data_cmd_reply"])
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = self.data()
                mid = next_id("message")
                with open(os.path.join(out, "message-%d.raw" % mid), "wb") as f:
                    f.write(body)
                after = cfg.get("after_dot", "250 2.0.0 queued")
                if after == "close":
                    return
                if after == "hang":
                    time.sleep(3600)
                self.reply(after)
            elif verb == "RSET":
                have_rcpt = False
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Error: command not recognized")

    def auth(self, text):
        parts = text.split(" ")
        mech = parts[1].upper() if len(parts) > 1 else ""
        user, password = cfg["auth"]["user"], cfg["auth"]["password"]
        if not self.tls and not cfg.get("auth_plaintext"):
            self.reply("538 5.7.11 Encryption required")
            return
        if mech == "PLAIN":
            resp = parts[2] if len(parts) > 2 else None
            if resp is None:
                self.reply("334 ")
                resp = self.line().decode()
            fields = base64.b64decode(resp).split(b"\0")
            ok = len(fields) == 3 and fields[1].decode() == user and fields[2].decode() == password
        elif mech == "LOGIN":
            self.reply("334 VXNlcm5hbWU6")
            u = base64.b64decode(self.line()).decode()
            self.reply("334 UGFzc3dvcmQ6")
            p = base64.b64decode(self.line()).decode()
            ok = u == user and p == password
        else:
            self.reply("504 5.5.4 unknown mechanism")
            return
        with open(os.path.join(out, "auth.log"), "a") as f:
            f.write("%s %s\n" % (mech, "ok" if ok else "fail"))
        self.reply("235 2.7.0 Authentication successful" if ok else "535 5.7.8 Authentication failed")

def serve(conn):
    s = Session(conn)
    try:
        s.run()
    except (EOFError, ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        s.log.close()
        try:
            s.sock.close()
        except OSError:
            pass

def main():
    # Exit with the test process: stdin is a pipe from it.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    threading.Timer(cfg.get("lifetime", 300), lambda: os._exit(0)).start()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with open(os.path.join(out, "port.tmp"), "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

main()
"""#
