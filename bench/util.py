#!/usr/bin/env python3
"""Small helpers for bench/run.sh (Python 3 standard library only).

  util.py freeport                      print a free TCP port on 127.0.0.1
  util.py wait-smtp PORT SECONDS [PID]  wait for a 220 greeting (then QUIT);
                                        exit 1 on timeout or if PID died
  util.py wait-port PORT SECONDS [PID]  wait until the port accepts (no greeting)
  util.py tree PID                      print PID and all its descendants
  util.py fsync-rate DIR                print how many 4 KiB write+fsync a
                                        second the disk does right now
  util.py fsync-evidence STRACE_FILE    summarise an `strace -f -tt` of the
                                        relay receiving one message: the sync
                                        calls between the 354 and the final
                                        250 reply; exit 1 if there were none
"""

import os
import re
import socket
import sys
import time


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def poll_port(port, seconds, pid, probe, what):
    """Connect to 127.0.0.1:PORT until probe(socket) returns None (success) or the time
    is up; probe returns a short reason when the peer is not ready yet.  Exit status."""
    deadline = time.monotonic() + float(seconds)
    last = "no attempt"
    while time.monotonic() < deadline:
        if pid and not os.path.exists(f"/proc/{pid}"):
            print(f"process {pid} exited", file=sys.stderr)
            return 1
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
                last = probe(s)
                if last is None:
                    return 0
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    print(f"{what} on 127.0.0.1:{port} within {seconds}s ({last})", file=sys.stderr)
    return 1


def greeted(s):
    s.settimeout(5)
    data = b""
    while b"\n" not in data:
        chunk = s.recv(512)
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"220"):
        return repr(data[:80])
    s.sendall(b"QUIT\r\n")
    try:
        s.recv(512)
    except OSError:
        pass
    return None


def wait_smtp(port, seconds, pid=None):
    return poll_port(port, seconds, pid, greeted, "no SMTP greeting")


def wait_port(port, seconds, pid=None):
    """Wait until 127.0.0.1:PORT accepts a connection (a milter, a database: no greeting)."""
    return poll_port(port, seconds, pid, lambda s: None, "nothing listens")


def tree(root):
    root = int(root)
    kids = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(e))
    todo = [root]
    while todo:
        p = todo.pop()
        print(p)
        todo.extend(kids.get(p, []))
    return 0


def fsync_rate(directory):
    path = os.path.join(directory, f".fsync-probe.{os.getpid()}")
    buf = b"x" * 4096
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        t0 = time.monotonic()
        while n < 2000 and time.monotonic() - t0 < 1.0:
            os.write(fd, buf)
            os.fsync(fd)
            n += 1
        el = time.monotonic() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    print(f"{n / el:.0f}")
    return 0


SYNC = re.compile(r"\b(fsync|fdatasync|sync_file_range2?|syncfs|msync)\(")
SYNC_DONE = re.compile(r"<\.\.\. (fsync|fdatasync|sync_file_range2?|syncfs|msync) resumed>.*= 0\b")


def fsync_evidence(path):
    with open(path, errors="replace") as f:
        lines = f.readlines()
    start = end = None
    for i, line in enumerate(lines):
        if start is None and '"354 ' in line and re.search(r"\b(write|writev|sendmsg|sendto)\(", line):
            start = i
        elif start is not None and re.search(r'"250[ -]', line) and re.search(r"\b(write|writev|sendmsg|sendto)\(", line):
            end = i
            break
    if start is None or end is None:
        print("  could not find the 354 reply and the final 250 reply in the trace")
        return 1
    # a call interrupted by another thread's output shows as "fsync(13 <unfinished ...>"
    # and later "<... fsync resumed>) = 0"; count the completed ones
    syncs = [l.rstrip() for l in lines[start:end]
             if (SYNC.search(l) and re.search(r"= 0\b", l)) or SYNC_DONE.search(l)]
    print(f"  354 sent:   {lines[start].rstrip()[:160]}")
    for l in lines[start:end]:
        if SYNC.search(l) or SYNC_DONE.search(l):
            print(f"  sync call:  {l.rstrip()[:160]}")
    print(f"  250 sent:   {lines[end].rstrip()[:160]}")
    if not syncs:
        print("  NO successful fsync/fdatasync between the 354 and the final 250 reply")
        return 1
    print(f"  => {len(syncs)} successful sync call(s) before the 250 reply")
    return 0


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "freeport":
        return freeport()
    if cmd == "wait-smtp":
        return wait_smtp(*args)
    if cmd == "wait-port":
        return wait_port(*args)
    if cmd == "tree":
        return tree(*args)
    if cmd == "fsync-rate":
        return fsync_rate(*args)
    if cmd == "fsync-evidence":
        return fsync_evidence(*args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
