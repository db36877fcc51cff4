/// The Python source of ``ScriptedUpstream``: a small SMTP server for the misbehaviour
/// that `RawSMTPSink` and smtp-sink cannot show — bytes injected after the 220 to
/// STARTTLS (RELIABILITY C7), 354 to DATA although no recipient was accepted (F4),
/// a hang after the final dot and a disconnect mid-transaction (F6), a 454 to
/// STARTTLS, AUTH LOGIN only. One JSON argument configures it; it writes its port to
/// `<dir>/port`, every byte it receives (TLS decrypted) to `<dir>/session-<n>.raw`
/// and each message's DATA bytes, dot-stuffed as received, to `<dir>/message-<n>.raw`.
let scriptedUpstreamSource = #"""
import base64, json, os, socket, ssl, sys, threading, time

cfg = json.loads(sys.argv[1])
out = cfg["dir"]
counter = {"session": 0, "message": 0}
lock = threading.Lock()

def next_id(kind):
    with lock:
        counter[kind] += 1
        return counter[kind]

class Session:
    def __init__(self, sock):
        self.sock, self.buf, self.tls = sock, b"", False
        self.log = open(os.path.join(out, "session-%d.raw" % next_id("session")), "wb")

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

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
        while True:
            if self.buf.startswith(b".\r\n"):
                body, self.buf = self.buf[:3], self.buf[3:]
                return body
            idx = self.buf.find(b"\r\n.\r\n")
            if idx >= 0:
                body, self.buf = self.buf[: idx + 5], self.buf[idx + 5 :]
                return body
            self.fill()

    def run(self):
        self.reply("220 scripted.test ESMTP")
        have_rcpt = False
        while True:
            text = self.line().decode("utf-8", "replace")
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                lines = ["scripted.test", "PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"]
                if cfg.get("starttls") and not self.tls:
                    lines.append("STARTTLS")
                if cfg.get("auth") and self.tls:
                    lines.append("AUTH " + " ".join(cfg.get("auth_mechanisms", ["PLAIN", "LOGIN"])))
                self.send("".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l) for i, l in enumerate(lines)))
            elif verb == "STARTTLS":
                if "starttls_reply" in cfg:
                    self.reply(cfg["starttls_reply"])
                    continue
                self.send("220 2.0.0 go ahead\r\n" + cfg.get("starttls_inject", ""))
                if "starttls_inject_delayed" in cfg:
                    time.sleep(0.3)
                    self.send(cfg["starttls_inject_delayed"])
                self.buf = b""
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cfg["cert"], cfg["key"])
                self.sock = context.wrap_socket(self.sock, server_side=True)
                self.tls = True
                self.log.write(b"--- TLS ---\r\n")
            elif verb == "AUTH":
                self.auth(text)
            elif verb == "MAIL":
                have_rcpt = False
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                reply = cfg.get("rcpt_replies", {}).get(text[text.find("<") + 1 : text.find(">")], "250 2.1.5 Ok")
                if reply == "close":
                    return
                have_rcpt = have_rcpt or reply.startswith("2")
                self.reply(reply)
            elif verb == "DATA":
                if not have_rcpt and not cfg.get("always_354"):
                    self.reply("554 5.5.1 Error: no valid recipients")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = self.data()
                with open(os.path.join(out, "message-%d.raw" % next_id("message")), "wb") as f:
                    f.write(body)
                after = cfg.get("after_dot", "250 2.0.0 queued")
                if after == "close":
                    return
                if after == "hang":
                    time.sleep(3600)
                self.reply(after)
            elif verb in ("RSET", "NOOP"):
                have_rcpt = False
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Error: command not recognized")

    def auth(self, text):
        parts = text.split(" ")
        mech = parts[1].upper() if len(parts) > 1 else ""
        if mech not in cfg.get("auth_mechanisms", ["PLAIN", "LOGIN"]):
            self.reply("504 5.5.4 unknown mechanism")
            return
        if mech == "PLAIN":
            fields = base64.b64decode(parts[2] if len(parts) > 2 else "").split(b"\0")
            ok = fields[1:] == [cfg["auth"]["user"].encode(), cfg["auth"]["password"].encode()]
        else:
            self.reply("334 VXNlcm5hbWU6")
            user = base64.b64decode(self.line()).decode()
            self.reply("334 UGFzc3dvcmQ6")
            password = base64.b64decode(self.line()).decode()
            ok = [user, password] == [cfg["auth"]["user"], cfg["auth"]["password"]]
        with open(os.path.join(out, "auth.log"), "a") as f:
            f.write("%s %s\n" % (mech, "ok" if ok else "fail"))
        self.reply("235 2.7.0 Authentication successful" if ok else "535 5.7.8 Authentication failed")

def serve(conn):
    session = Session(conn)
    try:
        session.run()
    except (EOFError, OSError, ssl.SSLError):
        pass
    finally:
        session.log.close()
        try:
            session.sock.close()
        except OSError:
            pass

def main():
    parent = os.getppid()
    def watchdog():
        deadline = time.time() + cfg.get("lifetime", 300)
        while os.getppid() == parent and time.time() < deadline:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watchdog, daemon=True).start()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    with open(os.path.join(out, "port.tmp"), "w") as f:
        f.write(str(server.getsockname()[1]))
    os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

main()
"""#
