#!/usr/bin/env python3
"""Measure one benchmark case against one running SMTP relay.

Called by bench/run.sh once per (case, system) with the relay and its
smtp-sink upstream already running.  Prints one JSON object (one line) with
the figures; progress goes to stderr.

Phases, all against the same relay instance:

1. warm-up    smtp-source, N sessions, a few messages per session; its rate
              sizes phase 2 so that phase 2 lasts about --duration seconds.
2. throughput smtp-source alone, N sessions, M messages, run to completion
              (no -A: any non-2xx reply aborts it and the case is marked
              failed).  accepted msg/s = M / smtp-source wall time.
              delivered msg/s = M / (time from the start of phase 2 until the
              sink has received the M-th message of this phase).
3. latency    k = max(1, N // 4) probe sessions (asyncio, below) replace k of
              smtp-source's sessions for --lat-duration seconds, so the relay
              still sees N concurrent sessions.  Each probe transaction sends
              exactly what smtp-source sends (HELO once, then MAIL, RCPT x r,
              DATA, the same headers and body, ".", one command at a time);
              its transaction time is from writing MAIL FROM until reading the
              reply to the final dot.  p50/p99 are nearest-rank percentiles
              over all probe transactions.

Memory is sampled during all phases (see MemSampler).
Python 3 standard library only.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
CHILDREN = []  # subprocess.Popen objects we started; killed on exit
PID_FILE = None  # run.sh's list of PIDs to kill at exit


def log(msg):
    print(f"    [measure] {msg}", file=sys.stderr, flush=True)


def kill_children():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
            try:
                p.wait(timeout=5)
            except Exception:
                pass


def on_signal(signum, _frame):
    kill_children()
    sys.exit(128 + signum)


# --------------------------------------------------------------------------
# Sink counter: smtp-sink -c writes "sess=N quit=N mesg=N\r" to its stdout
# every time a session ends, QUIT arrives or "." is received.  run.sh points
# that stdout at a file; we poll the tail of the file.


class SinkCounter(threading.Thread):
    def __init__(self, path, interval=0.02):
        super().__init__(daemon=True)
        self.path = path
        self.interval = interval
        self.count = 0
        self.changed_at = time.monotonic()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._read()

    def _read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256))
                data = f.read()
        except OSError:
            return
        found = re.findall(rb"mesg=(\d+)", data)
        if found:
            c = int(found[-1])
            with self.lock:
                if c != self.count:
                    self.count = c
                    self.changed_at = time.monotonic()

    def run(self):
        while not self.stopping.is_set():
            self._read()
            time.sleep(self.interval)

    def snapshot(self):
        with self.lock:
            return self.count, self.changed_at

    def wait_for(self, target, timeout):
        """Wait until count >= target.  Returns (reached, count, time the
        count last changed)."""
        deadline = time.monotonic() + timeout
        while True:
            c, t = self.snapshot()
            if c >= target:
                return True, c, t
            if time.monotonic() > deadline:
                return False, c, t
            time.sleep(self.interval)


# --------------------------------------------------------------------------
# Memory: the relay's process tree (root PID and all descendants).
#   rss  - every --rss-interval s the sum of resident pages (statm) over the
#          tree; the peak of that sum is reported.  For a single-process relay
#          the kernel's own high-water mark VmHWM (exact, not sampled) is
#          reported instead when it is larger.
#   pss  - every --pss-interval s the sum of Pss (smaps_rollup) over the tree:
#          shared pages (libraries, Postfix's shared text) counted once in
#          total.  Peak reported.


def read_tree(root):
    kids = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [root]
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ... ; comm may contain spaces/parens
        r = s.rfind(b")")
        fields = s[r + 2:].split()
        ppid = int(fields[1])
        kids.setdefault(ppid, []).append(int(e))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def read_trees(roots):
    """The process trees of several roots (a cluster's nodes and its database, a relay
    and its milter), each process once."""
    seen, out = set(), []
    for r in roots:
        for p in read_tree(r):
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def tree_cpu_seconds(roots):
    """CPU seconds (user + system) of the relay's process tree (or trees: a cluster's
    nodes and its database), including the children its processes have reaped
    (cutime/cstime): Postfix's smtpd and cleanup processes come and go, and their time
    then shows in their parent's counters."""
    ticks = 0
    for p in read_trees(roots):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(b")") + 2:].split()
        # fields[0] is the state (stat field 3): utime, stime, cutime, cstime are 14..17.
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


class MemSampler(threading.Thread):
    def __init__(self, roots, rss_interval=0.2, pss_interval=1.0):
        super().__init__(daemon=True)
        self.roots = roots
        self.root = roots[0]
        self.rss_interval = rss_interval
        self.pss_interval = pss_interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.root_hwm = 0
        self.stopping = threading.Event()

    def _hwm(self):
        try:
            with open(f"/proc/{self.root}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.root_hwm = max(self.root_hwm, int(line.split()[1]) * 1024)
        except OSError:
            pass

    def sample(self, with_pss):
        pids = read_trees(self.roots)
        rss = pss = 0
        for p in pids:
            try:
                with open(f"/proc/{p}/statm") as f:
                    rss += int(f.read().split()[1]) * PAGE
                if with_pss:
                    with open(f"/proc/{p}/smaps_rollup") as f:
                        for line in f:
                            if line.startswith("Pss:"):
                                pss += int(line.split()[1]) * 1024
                                break
            except (OSError, ValueError, IndexError):
                pass
        self.peak_rss = max(self.peak_rss, rss)
        if with_pss:
            self.peak_pss = max(self.peak_pss, pss)
        self.peak_procs = max(self.peak_procs, len(pids))
        self._hwm()

    def run(self):
        next_pss = 0.0
        while not self.stopping.is_set():
            t = time.monotonic()
            with_pss = t >= next_pss
            if with_pss:
                next_pss = t + self.pss_interval
            self.sample(with_pss)
            self.stopping.wait(self.rss_interval)

    def finish(self):
        self.stopping.set()
        self.join(timeout=5)
        self.sample(True)
        if self.peak_procs <= 1:
            return max(self.peak_rss, self.root_hwm), "VmHWM of the relay process"
        return self.peak_rss, f"peak of summed VmRSS over up to {self.peak_procs} processes, sampled every {self.rss_interval}s"


# --------------------------------------------------------------------------
# smtp-source


SENDER = "bench@example.com"
RECIPIENT = "rcpt@example.net"
HELO = "bench-client.example.com"


def source_cmd(a, sessions, count, port):
    return ["smtp-source", "-4", "-d",
            "-s", str(sessions), "-m", str(count),
            "-l", str(a.size), "-r", str(a.rcpts),
            "-f", SENDER, "-t", RECIPIENT, "-M", HELO,
            f"{a.host}:{port}"]


def split(total, parts):
    """total spread over parts as evenly as integers allow (earlier parts get the rest)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Sources:
    """One smtp-source per port of the system (a cluster's nodes behind one name: the
    sessions and messages spread evenly over them), handled as one."""

    def __init__(self, a, sessions, count):
        ports = a.ports[:max(1, min(len(a.ports), sessions))]
        self.procs = []
        for port, s, c in zip(ports, split(sessions, len(ports)), split(count, len(ports))):
            p = subprocess.Popen(source_cmd(a, s, c, port), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            CHILDREN.append(p)
            if PID_FILE:
                with open(PID_FILE, "a") as f:
                    f.write(f"{p.pid} smtp-source\n")
            self.procs.append(p)

    def poll(self):
        """None while any runs; else the first non-zero exit status, or 0."""
        codes = [p.poll() for p in self.procs]
        if any(c is None for c in codes):
            return None
        return next((c for c in codes if c != 0), 0)

    @property
    def returncode(self):
        return self.poll()

    def errors(self):
        return " / ".join(p.stderr.read().decode(errors="replace").strip()[-300:]
                          for p in self.procs if p.poll() not in (None, 0))

    def terminate(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self.procs:
            p.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))


def read_count(cmd):
    """The number a --count-cmd prints, or None (no command, or it failed)."""
    if not cmd:
        return None
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, timeout=30).stdout.decode().strip()
        return float(out.split()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def run_source(a, sessions, count, timeout):
    """Run smtp-source (one per port) to completion.  Returns (elapsed, error or None)."""
    t0 = time.monotonic()
    src = Sources(a, sessions, count)
    errs = []
    for p in src.procs:
        try:
            _, err = p.communicate(timeout=max(0.1, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            src.kill()
            for q in src.procs:
                q.communicate()
            return time.monotonic() - t0, f"smtp-source did not finish {count} messages within {timeout:.0f}s"
        if p.returncode != 0:
            errs.append("smtp-source failed (exit %d): %s" % (p.returncode, err.decode(errors="replace").strip()[-400:]))
    el = time.monotonic() - t0
    return el, (errs[0] if errs else None)


# --------------------------------------------------------------------------
# Latency probe: an SMTP client that sends what smtp-source sends.


def smtp_source_body(size):
    """The payload smtp-source -l SIZE sends (see smtp-source.c): SIZE bytes
    of 'X' with a digit at the start of each 80-byte line and CRLF at its end;
    smtp_fputs then appends another CRLF."""
    d = bytearray(b"X" * size)
    for i in range(80, size, 80):
        d[i - 80] = ord("0123456789"[(i // 80) % 10])
        d[i - 2] = 13
        d[i - 1] = 10
    return bytes(d) + b"\r\n"


class ProbeError(Exception):
    pass


async def reply(reader, timeout):
    code = None
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ProbeError("connection closed by server")
        if len(line) < 4 or not line[:3].isdigit():
            raise ProbeError(f"bad reply line {line[:60]!r}")
        code = int(line[:3])
        if line[3:4] != b"-":
            return code, line.decode(errors="replace").strip()


async def command(reader, writer, text, timeout, want):
    writer.write(text.encode() + b"\r\n")
    await writer.drain()
    code, line = await reply(reader, timeout)
    bad = code != 354 if want == 354 else code // 100 != want // 100
    if bad:
        raise ProbeError(f"{text.split(':')[0]} -> {line}")
    return code


async def probe_session(a, sid, deadline, samples, errors):
    timeout = 60
    body = smtp_source_body(a.size)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(a.host, a.ports[sid % len(a.ports)]), timeout)
    except Exception as e:  # noqa: BLE001
        errors.append(f"connect: {e}")
        return
    n = 0
    try:
        code, line = await reply(reader, timeout)
        if code != 220:
            raise ProbeError(f"greeting {line}")
        await command(reader, writer, f"HELO {HELO}", timeout, 250)
        while time.monotonic() < deadline:
            n += 1
            t0 = time.perf_counter()
            try:
                await command(reader, writer, f"MAIL FROM:<{SENDER}>", timeout, 250)
                for i in range(a.rcpts, 0, -1):
                    rcpt = f"{i}{RECIPIENT}" if a.rcpts > 1 else RECIPIENT
                    await command(reader, writer, f"RCPT TO:<{rcpt}>", timeout, 250)
                await command(reader, writer, "DATA", timeout, 354)
                head = (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nDate: {date}\r\n"
                        f"Message-Id: <probe.{os.getpid()}.{sid}.{n}@{HELO}>\r\n\r\n").encode()
                writer.write(head)
                writer.write(body)
                writer.write(b".\r\n")
                await writer.drain()
                code, line = await reply(reader, timeout)
                t1 = time.perf_counter()
                if code // 100 == 2:
                    samples.append(t1 - t0)
                else:
                    errors.append(f"end of data -> {line}")
            except ProbeError as e:
                errors.append(str(e))
                writer.write(b"RSET\r\n")
                await writer.drain()
                await reply(reader, timeout)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        try:
            await reply(reader, 5)
        except Exception:  # noqa: BLE001
            pass
    except Exception as e:  # noqa: BLE001
        errors.append(f"{type(e).__name__}: {e}")
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except Exception:  # noqa: BLE001
            pass


async def run_probe(a, sessions, duration):
    samples, errors = [], []
    deadline = time.monotonic() + duration
    await asyncio.gather(*(probe_session(a, i, deadline, samples, errors) for i in range(sessions)))
    return samples, errors


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, -(-p * len(sorted_values) // 100) - 1))
    return sorted_values[int(k)]


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", required=True, help="the relay's port, or several (a cluster's nodes), comma-separated")
    ap.add_argument("--sink-count-file", required=True)
    ap.add_argument("--server-pid", required=True,
                    help="the relay's PID, or several (a cluster's nodes), comma-separated")
    ap.add_argument("--extra-pid", default="",
                    help="PIDs whose process trees belong to the system too (its database, its milter), comma-separated")
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--rcpts", type=int, required=True)
    ap.add_argument("--duration", type=float, default=10.0, help="target length of the throughput phase")
    ap.add_argument("--lat-duration", type=float, default=6.0, help="length of the latency phase")
    ap.add_argument("--drain-max", type=float, default=120.0, help="max wait for the sink to receive everything")
    ap.add_argument("--max-messages", type=int, default=200000)
    ap.add_argument("--min-messages", type=int, default=0)
    ap.add_argument("--pid-file", help="append the PID of every smtp-source started here")
    ap.add_argument("--count-cmd", default="",
                    help="a shell command printing one number (e.g. the database's statement count), "
                         "read before and after the throughput run: reported per message as count_per_msg")
    a = ap.parse_args()
    a.ports = [int(p) for p in a.port.split(",") if p]
    extra = [int(p) for p in a.extra_pid.split(",") if p]
    roots = [int(p) for p in a.server_pid.split(",") if p] + extra
    global PID_FILE
    PID_FILE = a.pid_file

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    n = a.sessions
    res = {"system": a.system, "sessions": n, "size": a.size, "rcpts": a.rcpts, "errors": []}
    sink = SinkCounter(a.sink_count_file)
    sink.start()
    mem = MemSampler(roots)
    mem.start()
    try:
        # 1. warm-up: first a few messages per session (starts the relay's
        # processes/connections), then about 1.5 s worth at the rate seen,
        # whose rate sizes phase 2.
        warm = max(3 * n, 30)
        rate = 0.0
        res["warmup"] = []
        for step in (1, 2):
            base, _ = sink.snapshot()
            el, err = run_source(a, n, warm, timeout=max(60.0, 10 * a.duration))
            if err:
                raise RuntimeError("warm-up: " + err)
            rate = warm / el
            ok, c, _ = sink.wait_for(base + warm, a.drain_max)
            if not ok:
                raise RuntimeError(f"warm-up: sink got {c - base} of {warm} messages within {a.drain_max:.0f}s")
            res["warmup"].append({"messages": warm, "seconds": round(el, 3), "msgs_per_s": round(rate, 1)})
            warm = max(3 * n, 30, min(int(rate * min(2.0, a.duration / 4)), a.max_messages // 4))
        m = int(rate * a.duration)
        m = max(m, 3 * n, 20, a.min_messages)
        m = min(m, a.max_messages)
        log(f"warm-up {res['warmup'][-1]['messages']} msgs at {rate:.0f}/s -> {m} messages")

        # 2. throughput.  If the run took less than half the target (the
        # relay got faster once warm), it counts as warm-up and is repeated
        # with a message count sized from its own rate.
        for attempt in (1, 2):
            c0, _ = sink.snapshot()
            cpu0 = tree_cpu_seconds(roots)
            xcpu0 = tree_cpu_seconds(extra) if extra else 0.0
            count0 = read_count(a.count_cmd)
            t0 = time.monotonic()
            el, err = run_source(a, n, m, timeout=max(120.0, 6 * a.duration))
            t1 = time.monotonic()
            res["messages"] = m
            res["accept_seconds"] = round(el, 3)
            res["accepted_per_s"] = round(m / el, 1)
            if err:
                raise RuntimeError("throughput: " + err)
            ok, c, t_last = sink.wait_for(c0 + m, a.drain_max)
            if attempt == 1 and ok and el < a.duration / 2 and m < a.max_messages:
                res["warmup"].append({"messages": m, "seconds": round(el, 3), "msgs_per_s": round(m / el, 1)})
                m = min(a.max_messages, max(m, int(m / el * a.duration)))
                log(f"throughput run took {el:.2f}s, repeating with {m} messages")
                continue
            break
        got = c - c0
        # Accepting and delivering these messages: the relay's CPU from the start of the
        # run until the sink had them all, per message.
        res["cpu_ms_per_msg"] = round((tree_cpu_seconds(roots) - cpu0) * 1000 / max(1, m), 3)
        if extra:
            # the part of it spent by the database or the milter
            res["extra_cpu_ms_per_msg"] = round((tree_cpu_seconds(extra) - xcpu0) * 1000 / max(1, m), 3)
        count1 = read_count(a.count_cmd)
        if count0 is not None and count1 is not None:
            res["count_per_msg"] = round((count1 - count0) / max(1, m), 2)
        res["delivered"] = got
        res["drain_complete"] = ok
        if t_last <= t0 or got <= 0:
            res["delivered_per_s"] = 0.0
        else:
            res["deliver_seconds"] = round(t_last - t0, 3)
            res["delivered_per_s"] = round(min(got, m) / (t_last - t0), 1)
            res["drain_tail_seconds"] = round(max(0.0, t_last - t1), 3)
        if not ok:
            res["errors"].append(f"sink received {got} of {m} messages within {a.drain_max:.0f}s after the load")
        log(f"throughput {m} msgs in {el:.2f}s = {m / el:.0f}/s accepted, "
            f"{res['delivered_per_s']:.0f}/s delivered (tail {res.get('drain_tail_seconds', '?')}s)")

        # 3. latency
        k = max(1, n // 4)
        bg = None
        if n - k > 0:
            bg_count = min(a.max_messages * 5, int(rate * a.lat_duration * 3) + 1000)
            bg = Sources(a, n - k, bg_count)
        samples, perrs = asyncio.run(run_probe(a, k, a.lat_duration))
        if bg is not None:
            if bg.poll() is not None and bg.returncode != 0:
                perrs.append("background smtp-source failed: " + bg.errors())
            elif bg.poll() is not None:
                perrs.append("background smtp-source finished before the latency phase ended")
            else:
                bg.terminate()
                try:
                    bg.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    bg.kill()
                    bg.wait()
        samples.sort()
        res["probe_sessions"] = k
        res["lat_samples"] = len(samples)
        if samples:
            res["p50_ms"] = round(percentile(samples, 50) * 1000, 2)
            res["p99_ms"] = round(percentile(samples, 99) * 1000, 2)
            res["mean_ms"] = round(sum(samples) / len(samples) * 1000, 2)
            res["max_ms"] = round(samples[-1] * 1000, 2)
        if perrs:
            res["errors"].append(f"probe: {len(perrs)} error(s), first: {perrs[0]}")
        log(f"latency {len(samples)} probe transactions over {k} session(s): "
            f"p50 {res.get('p50_ms')} ms, p99 {res.get('p99_ms')} ms")
    except RuntimeError as e:
        res["errors"].append(str(e))
        log(f"ERROR {e}")
    finally:
        kill_children()
        sink.stopping.set()
        rss, how = mem.finish()
        res["rss_peak_mib"] = round(rss / 1048576, 1)
        res["rss_method"] = how
        res["pss_peak_mib"] = round(mem.peak_pss / 1048576, 1)
        res["procs_peak"] = mem.peak_procs
    res["ok"] = not res["errors"]
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
