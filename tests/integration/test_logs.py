#!/usr/bin/env python3
"""What services write: each line attributed to its process and generation in
every sink, their last lines kept when they die, rotated files, `logs` and its
filters, lines carried across a re-exec, a flood that delays nothing, binary
bytes and long lines, and log = inherit."""

import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import alive, poll

import test_hostile

# A line of a text sink: [TIME ]SERVICE[PID] gen N STREAM: TEXT
SINK_LINE = re.compile(rb"^(?:(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) )?"
                       rb"([\w.@-]+)\[(\d+)\] gen (\d+) (out|err): (.*)$")
# A line of testchild --print: STREAM PID N, maybe padded.
NUMBERED = re.compile(rb"^(out|err) (\d+) (\d+)(?: x*)?$")

# How late a SIGKILL may come after its deadline, and how long status may take.
KILL_LATE_MAX = 0.010
STATUS_MAX = test_hostile.STATUS_MAX


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def sink_lines(data, service=None):
    """The lines of a text sink, batond's own left out: dicts with time,
    service, pid, gen, stream and bytes (the text after the prefix)."""
    out = []
    for line in data.split(b"\n"):
        m = SINK_LINE.match(line)
        if m and (service is None or m.group(2).decode() == service):
            out.append({"time": m.group(1), "service": m.group(2).decode(),
                        "pid": int(m.group(3)), "gen": int(m.group(4)),
                        "stream": m.group(5).decode(), "bytes": m.group(6)})
    return out


def numbered(line):
    """(stream, pid, n) of a line testchild --print wrote, or None."""
    m = NUMBERED.match(line["bytes"])
    return m and (m.group(1).decode(), int(m.group(2)), int(m.group(3)))


def metrics(b):
    """The log counters of `batonctl metrics`: {(name, service): value}."""
    r = b.ctl("metrics")
    if r.returncode != 0:
        raise AssertionError("batonctl metrics failed: %s" % r.stderr)
    out = {}
    for m in re.finditer(r'^(baton_log_\w+)\{service="([^"]+)"\} (\d+)$', r.stdout, re.M):
        out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


def pids_of(b, service, gen=None):
    return [p["pid"] for p in b.procs(service) if gen is None or p["gen"] == gen]


def last_number(b, service):
    """The number of the last line `logs` keeps of service, or 0."""
    recs = harness.logs(b, "--lines=1", service)
    n = recs and numbered(recs[0])
    return n[2] if n else 0


def catches(pid, sig):
    """Tells whether a process has a handler for sig (SigCgt of /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def kill_lateness(w, pid, grace):
    """Seconds from the grace deadline to the SIGKILL, from the watch events."""
    signalled = w.find(lambda o: o.get("kind") == "signalled" and o.get("pid") == pid, timeout=5)
    killed = w.find(lambda o: o.get("kind") == "sigkill" and o.get("pid") == pid, timeout=5)
    return killed["t"] - signalled["t"] - grace


def where(pid):
    """What a process waits in, for a failure's message."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            call = f.read().split()
        with open("/proc/%d/wchan" % pid) as f:
            wchan = f.read()
        fd = int(call[1], 16) if len(call) > 1 else -1
        target = os.readlink("/proc/%d/fd/%d" % (pid, fd)) if fd >= 0 else "?"
    except (OSError, ValueError) as e:
        return "not known (%s)" % e
    return "in system call %s (fd %d: %s), kernel function %s" % (call[0], fd, target, wchan)


class Drain:
    """Reads a pipe in a thread until its end: all of it as it comes, or chunk
    bytes every pause seconds; keeps what it read when keep is set."""

    def __init__(self, fd, chunk=1 << 20, pause=0.0, keep=False):
        self.fd, self.chunk, self.pause, self.keep = fd, chunk, pause, keep
        self.data = bytearray()
        self.count = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                chunk = os.read(self.fd, self.chunk)
            except OSError:
                return
            if not chunk:
                return
            self.count += len(chunk)
            if self.keep:
                self.data += chunk
            if self.pause:
                time.sleep(self.pause)


def assert_attributed(test, lines, gens):
    """Checks that each numbered line names the pid, the generation and the
    stream of the process that wrote it; returns {pid: {stream: [n...]}}."""
    seen = {}
    for line in lines:
        stream, pid, n = numbered(line) or test.fail("not a numbered line: %r" % line)
        test.assertEqual((line["pid"], line["stream"]), (pid, stream), line)
        test.assertEqual(line["gen"], gens[pid], line)
        seen.setdefault(pid, {}).setdefault(stream, []).append(n)
    return seen


class AttributionTest(harness.TestCase):
    CONFIG = """
[service:web]
command = @TESTCHILD@ --report @REPORTS@ --print 100000 --print-every-us 5000 --print-to both
ready = delay:300ms

[service:filed]
command = @TESTCHILD@ --report @REPORTS@ --print 100000 --print-every-us 5000 --print-to both
ready = delay:300ms
log = file:@DIR@/%s
"""

    def test_two_generations_during_an_upgrade(self):
        b = self.batond(self.CONFIG % "gen1.log")
        b.wait_service("web", "running")
        b.wait_service("filed", "running")
        old = {name: pids_of(b, name)[0] for name in ("web", "filed")}
        # Each generation writes to its own sink: gen 2 of filed to another file.
        b.write_config(self.CONFIG % "gen2.log")
        for name in ("web", "filed"):
            r = b.ctl("upgrade", "--wait", name)
            self.assertEqual(r.returncode, 0, r.stderr)
        new = {name: pids_of(b, name, gen=2)[0] for name in ("web", "filed")}
        gens = {pid: 1 for pid in old.values()}
        gens.update({pid: 2 for pid in new.values()})
        for pid in old.values():
            poll(lambda: not alive(pid), what="gen 1 to end")
        poll(lambda: last_number(b, "web") > 80 and last_number(b, "filed") > 80,
             what="gen 2 to write 80 lines")
        # Once gen 1 is gone, batond holds gen1.log open no more, and gen2.log still.
        held = lambda: set(harness.own_fds(b.pid).values())
        one, two = (os.path.realpath(os.path.join(b.dir, n)) for n in ("gen1.log", "gen2.log"))
        poll(lambda: one not in held(), what="gen1.log closed")
        self.assertIn(two, held())
        self.assertIn("log file %s closed: no service writes to it now" % one,
                      harness.read(b.log_path))

        # batond's stderr: both generations of web, interleaved while both ran.
        web = sink_lines(read_bytes(b.log_path), "web")
        seen = assert_attributed(self, web, gens)
        self.assertEqual(set(seen), {old["web"], new["web"]})
        order = [line["pid"] for line in web]
        overlap = sum(1 for i, pid in enumerate(order)
                      if pid == new["web"] and old["web"] in order[i:])
        self.assertGreater(overlap, 10, "gen 2's lines before gen 1's last")
        self.assert_whole(seen, old["web"], new["web"])

        # The file sinks: gen 1's lines in the file gen 1 named, gen 2's in the other.
        gen1 = sink_lines(read_bytes(os.path.join(b.dir, "gen1.log")), "filed")
        gen2 = sink_lines(read_bytes(os.path.join(b.dir, "gen2.log")), "filed")
        self.assertTrue(all(line["time"] for line in gen1 + gen2), "a time on each line")
        self.assertEqual(set(assert_attributed(self, gen1, gens)), {old["filed"]})
        self.assertEqual(set(assert_attributed(self, gen2, gens)), {new["filed"]})
        self.assert_whole(assert_attributed(self, gen1 + gen2, gens), old["filed"], new["filed"])

        # logs: what each service kept, attributed the same way.
        for name in ("web", "filed"):
            kept = harness.logs(b, name)
            self.assertTrue(all(r["service"] == name for r in kept))
            seen = assert_attributed(self, kept, gens)
            self.assertEqual(set(seen), {old[name], new[name]})
        print("\n  web: %d lines of gen 1, %d of gen 2, %d of gen 2 before gen 1's last" % (
            order.count(old["web"]), order.count(new["web"]), overlap))
        self.assert_exits_cleanly(b)

    def assert_whole(self, seen, ended, running):
        """The process that ended: every line, once, in order; the running one:
        each stream in order with no gap."""
        both = sorted(seen[ended]["out"] + seen[ended]["err"])
        self.assertEqual(both, list(range(1, len(both) + 1)))
        for pid in (ended, running):
            self.assertEqual(seen[pid]["out"], list(range(1, 2 * len(seen[pid]["out"]), 2)))
            self.assertEqual(seen[pid]["err"], list(range(2, 2 * len(seen[pid]["err"]) + 1, 2)))


class LastWordsTest(harness.TestCase):
    def test_last_lines_before_the_exit(self):
        b = self.batond("""
[service:stubborn]
command = @TESTCHILD@ --print 2 --print-at-term 'got SIGTERM\\nunfinished' --ignore-term
stop_grace = 300ms
log = file:@DIR@/stubborn.log

[service:quitter]
command = @TESTCHILD@ --print 2 --print-at-term 'got SIGTERM\\n' --partial bye --term-exit-ms 50
log = file:@DIR@/quitter.log

[service:crash]
command = @TESTCHILD@ --print 2 --partial 'last words' --exit-after-ms 500 --exit 3
restart_delay = 30s
restart_delay_max = 30s
log = file:@DIR@/crash.log

[service:crash_err]
command = @TESTCHILD@ --print 2 --partial 'last words' --exit-after-ms 500 --exit 3
restart_delay = 30s
restart_delay_max = 30s
""")
        w = self.watch(b, "watch")
        w.read_until(lambda o: o.get("type") == "proc")
        pids = {name: poll(lambda: pids_of(b, name), what=name)[0]
                for name in ("stubborn", "quitter", "crash", "crash_err")}
        for name in ("stubborn", "quitter"):
            poll(lambda: last_number(b, name) == 2, what="%s's first lines" % name)
            self.assertEqual(b.ctl("stop", name).returncode, 0)

        # Killed at its grace: what it wrote at SIGTERM, its unfinished line too.
        pid = pids["stubborn"]
        self.assert_killed_at_grace(w, pid, 0.3)
        self.assert_told_before(w, pid, "killed", ["got SIGTERM", "unfinished"])
        # Exited on SIGTERM with a last line without a newline.
        self.assert_told_before(w, pids["quitter"], "exited", ["got SIGTERM", "bye"])
        # Crashed while running: its lines are no events (it was not stopping),
        # but they are written, and told before its exit in batond's stderr.
        restarting = w.find(lambda o: o.get("kind") == "restarting" and
                            o.get("pid") == pids["crash"])
        self.assertEqual(restarting["exit"], 3)
        for name, last in (("stubborn", [b"got SIGTERM", b"unfinished"]),
                           ("quitter", [b"got SIGTERM", b"bye"]), ("crash", [b"last words"])):
            lines = sink_lines(read_bytes(os.path.join(b.dir, name + ".log")), name)
            self.assertEqual([line["bytes"] for line in lines][-len(last):], last, name)
            self.assertEqual({line["pid"] for line in lines}, {pids[name]}, name)
            kept = harness.logs(b, name)
            self.assertEqual([r["bytes"] for r in kept][-len(last):], last, name)
        w.find(lambda o: o.get("kind") == "restarting" and o.get("pid") == pids["crash_err"])
        log = read_bytes(b.log_path)
        label = b"crash_err[%d] gen 1" % pids["crash_err"]
        told = log.find(label + b" out: last words\n")
        exited = log.find(label + b": exited with status 3")
        self.assertGreaterEqual(told, 0, "the last line in batond's stderr")
        self.assertGreater(exited, told, "the last line before the exit")
        self.assert_exits_cleanly(b)

    def assert_told_before(self, w, pid, kind, texts):
        """Checks that the output events of pid end with texts, before its exit event."""
        end = w.find(lambda o: o.get("kind") == kind and o.get("pid") == pid)
        before = w.lines[:w.lines.index(end)]
        said = [o["line"] for o in before if o.get("kind") == "output" and o.get("pid") == pid]
        self.assertEqual(said[-len(texts):], texts, w.lines[-20:])


class RotationTest(harness.TestCase):
    def test_rotation_and_reopen_lose_and_double_nothing(self):
        b = self.batond("""
[service:rot]
command = @TESTCHILD@ --report @REPORTS@ --print-on-usr1 10 --print-every-us 200 --print-size 100
log = file:@DIR@/rot.log
log_max_size = 4KiB
log_keep = 3
""")
        pid = list(b.wait_reports(1))[0]
        # It reports before it sets its handlers: SIGUSR1 would end it until then.
        poll(lambda: catches(pid, signal.SIGUSR1), what="a handler for SIGUSR1")
        path = os.path.join(b.dir, "rot.log")
        written = 0

        def write(batches):
            nonlocal written
            for _ in range(batches):
                os.kill(pid, signal.SIGUSR1)
                written += 10
                poll(lambda: last_number(b, "rot") == written, what="line %d" % written)

        def files():
            names = sorted(n for n in os.listdir(b.dir) if n.startswith("rot.log"))
            return names, {n: [numbered(line)[2] for line in
                               sink_lines(read_bytes(os.path.join(b.dir, n)), "rot")]
                           for n in names}

        def in_order(lines):
            return lines["rot.log.3"] + lines["rot.log.2"] + lines["rot.log.1"] + lines["rot.log"]

        # 90 lines of 150 bytes: three files of about 4 KiB and the one in use.
        write(9)
        names, lines = files()
        self.assertEqual(names, ["rot.log", "rot.log.1", "rot.log.2", "rot.log.3"])
        self.assertEqual(in_order(lines), list(range(1, 91)))
        for n in names[1:]:
            size = os.path.getsize(os.path.join(b.dir, n))
            self.assertLessEqual(size, 4096, n)
            self.assertGreater(size, 3 * 4096 // 4, n)
        # 110 lines do not fit in four: the oldest file goes, the others stay.
        write(2)
        names, lines = files()
        self.assertEqual(names, ["rot.log", "rot.log.1", "rot.log.2", "rot.log.3"])
        first = in_order(lines)[0]
        self.assertEqual(in_order(lines), list(range(first, 111)))
        self.assertLessEqual(first - 1, 4096 // 150, "only the oldest file removed")

        # logrotate moves the file away; lines go on to it until the reopen.
        os.rename(path, path + "-moved")
        write(1)
        self.assertFalse(os.path.exists(path), "no rotation was due")
        r = harness.Logs(b, "--reopen")
        self.assertEqual(r.until_ok(), [])
        r.close()
        self.assertTrue(os.path.exists(path), "reopen makes a new file at the path")
        write(2)
        names, lines = files()
        self.assertEqual(lines["rot.log"], list(range(121, 141)))
        self.assertEqual(lines["rot.log-moved"][-10:], list(range(111, 121)))
        everything = sorted(sum(lines.values(), []))
        self.assertEqual(everything, list(range(first, 141)), "no line lost or doubled")
        self.assertEqual(metrics(b)[("baton_log_dropped_total", "rot")], 0)
        print("\n  %d lines; files %s" % (written, ", ".join(
            "%s %d-%d" % (n, v[0], v[-1]) for n, v in sorted(lines.items()) if v)))
        self.assert_exits_cleanly(b)


class FilterTest(harness.TestCase):
    def test_lines_gen_pid_and_follow(self):
        b = self.batond("""
[service:f]
command = @TESTCHILD@ --report @REPORTS@ --print 10 --print-on-usr1 1

[service:g]
command = @TESTCHILD@ --print 3 --print-to err
""")
        b.wait_service("f", "running")
        first = pids_of(b, "f")[0]
        poll(lambda: last_number(b, "f") == 10, what="gen 1's lines")
        self.assertEqual(b.ctl("upgrade", "--wait", "f").returncode, 0)
        second = pids_of(b, "f", gen=2)[0]
        poll(lambda: not alive(first), what="gen 1 to end")
        poll(lambda: last_number(b, "f") == 10 and len(harness.logs(b, "f")) == 20,
             what="gen 2's lines")

        def lines(*args):
            return [(r["gen"], r["pid"], numbered(r)[2]) for r in harness.logs(b, *args)]

        self.assertEqual(lines("f"), [(1, first, n) for n in range(1, 11)] +
                         [(2, second, n) for n in range(1, 11)])
        self.assertEqual(lines("--lines=5", "f"), [(2, second, n) for n in range(6, 11)])
        self.assertEqual(lines("--gen=1", "f"), [(1, first, n) for n in range(1, 11)])
        self.assertEqual(lines("--pid=%d" % second, "f"), [(2, second, n) for n in range(1, 11)])
        self.assertEqual(lines("--gen=1", "--lines=3", "f"), [(1, first, n) for n in (8, 9, 10)])
        self.assertEqual(lines("--gen=3", "f"), [])
        self.assertEqual(lines("--lines=100", "f"), lines("f"))
        # Without a service: every service's, oldest first.
        every = harness.logs(b)
        self.assertEqual({r["service"] for r in every}, {"f", "g"})
        self.assertEqual(len(every), 23)
        self.assertEqual([r["time"] for r in every], sorted(r["time"] for r in every))
        self.assertEqual([numbered(r)[2] for r in every if r["service"] == "g"], [1, 2, 3])
        self.assertTrue(all(r["stream"] == "err" for r in every if r["service"] == "g"))

        # --follow: the kept lines, then each new one as it comes, no ok.
        follow = harness.Logs(b, "--follow", "--lines=2", "--pid=%d" % second, "f")
        other = harness.Logs(b, "--follow", "--gen=1", "f")
        self.addCleanup(follow.close)
        self.addCleanup(other.close)
        self.assertEqual([numbered(follow.next())[2] for _ in range(2)], [9, 10])
        self.assertEqual(len([other.next() for _ in range(10)]), 10)
        t0 = time.monotonic()
        os.kill(second, signal.SIGUSR1)
        rec = follow.next(timeout=5)
        took = time.monotonic() - t0
        self.assertIsNotNone(rec, "the new line followed")
        self.assertEqual((rec["pid"], rec["gen"], numbered(rec)[2]), (second, 2, 11))
        self.assertIsNone(follow.next(timeout=0.3), "nothing else, and no ok")
        self.assertIsNone(other.next(timeout=0.3), "gen 2's line is not gen 1's")
        print("\n  a followed line came %.1f ms after its process was told to write it" % (
            took * 1e3))
        self.assert_exits_cleanly(b)

    def test_unknown_service(self):
        b = self.batond("[service:f]\ncommand = @TESTCHILD@\n")
        req = harness.Logs(b, "nosuch")
        self.addCleanup(req.close)
        with self.assertRaises(AssertionError) as e:
            req.next()
        self.assertIn("error", str(e.exception))


@unittest.skipIf(harness.VALGRIND, "a re-exec runs batond outside valgrind")
class ReexecTest(harness.TestCase):
    def test_a_thousand_lines_across_a_reexec(self):
        printing = "@TESTCHILD@ --delay-ms 300 --print 1000 --print-every-us 100 --print-split"
        b = self.batond("""
[service:tofile]
command = %s
log = file:@DIR@/lines.log

[service:toerr]
command = %s --print-to both
""" % (printing, printing))
        pids = {name: poll(lambda: pids_of(b, name), what=name)[0] for name in ("tofile", "toerr")}
        poll(lambda: last_number(b, "toerr") >= 200, interval=0.002, what="200 lines")
        t0 = time.monotonic()
        r = b.ctl("reexec")
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        path = os.path.join(b.dir, "lines.log")
        poll(lambda: (len(sink_lines(read_bytes(path))) >= 1000 and
                      len(sink_lines(read_bytes(b.log_path), "toerr")) >= 1000),
             what="1000 lines of each")
        time.sleep(0.1)  # a line told twice would come now

        # The file: each line once, in order.
        lines = sink_lines(read_bytes(path))
        self.assertEqual({(line["service"], line["pid"]) for line in lines},
                         {("tofile", pids["tofile"])})
        self.assertEqual([numbered(line)[2] for line in lines], list(range(1, 1001)))
        # batond's stderr: each line once, each stream in order, the re-exec
        # among them.
        log = read_bytes(b.log_path)
        lines = sink_lines(log, "toerr")
        seen = assert_attributed(self, lines, {pids["toerr"]: 1})[pids["toerr"]]
        self.assertEqual(seen["out"], list(range(1, 1001, 2)))
        self.assertEqual(seen["err"], list(range(2, 1001, 2)))
        at = log.index(b"batond: re-executing ")
        before = len(sink_lines(log[:at], "toerr"))
        self.assertGreater(before, 0, "lines before the re-exec")
        self.assertLess(before, 1000, "lines after the re-exec")
        print("\n  re-exec took %.1f ms; %d lines to stderr before it, %d after" % (
            took * 1e3, before, 1000 - before))
        self.assert_exits_cleanly(b)

    def test_counters_and_kept_lines_survive_a_reexec(self):
        # DESIGN: nothing is lost across a re-exec, counters included.
        b = self.batond("""
[service:s]
command = @TESTCHILD@ --print 50 --print-size 100
""")
        poll(lambda: last_number(b, "s") == 50, what="50 lines")
        before = metrics(b)
        kept = [(r["pid"], r["gen"], r["bytes"]) for r in harness.logs(b, "s")]
        self.assertEqual(b.ctl("reexec").returncode, 0)
        with self.subTest("the log counters"):
            after = metrics(b)
            self.assertEqual(after[("baton_log_lines_total", "s")], 50, after)
            self.assertEqual(after, before)
        with self.subTest("the lines kept"):
            now = [(r["pid"], r["gen"], r["bytes"]) for r in harness.logs(b, "s")]
            self.assertEqual(len(now), 50)
            self.assertEqual(now, kept)

    def records(self, b, service):
        """The `log` records of `logs service` as they came, not parsed."""
        req = harness.Logs(b, service)
        try:
            while True:
                chunk = req.sock.recv(1 << 20)
                if not chunk:
                    raise AssertionError("batond closed the connection")
                req.buf += chunk
                if req.buf.endswith(b"\nok\n") or req.buf == b"ok\n":
                    return req.buf.split(b"\n")[:-2]
        finally:
            req.close()

    def test_a_reexec_carries_the_newest_16_mib_of_kept_lines(self):
        # 24 MiB kept: a re-exec's state carries 16 MiB of them at most, as
        # log_buffer counts them (each line its bytes and 48 more), the newest.
        b = self.batond("""
[service:big]
command = @TESTCHILD@ --print 2500 --print-size 10000
log = file:@DIR@/big.log
log_max_size = 0
log_buffer = 24MiB
""")
        poll(lambda: metrics(b).get(("baton_log_lines_total", "big")) == 2500, what="2500 lines")
        kept = self.records(b, "big")
        self.assertEqual(len(kept), 2500)
        self.assertEqual(b.ctl("reexec").returncode, 0)
        now = self.records(b, "big")
        # The lines are printable ASCII: each has its length between the quotes.
        lengths = [len(re.search(rb' line="([^"\\]*)"', r).group(1)) for r in kept]
        self.assertEqual(set(lengths), {9999})
        cost, n = 0, 0
        while n < len(kept) and cost + lengths[-1 - n] + 48 <= 16 << 20:
            cost += lengths[-1 - n] + 48
            n += 1
        self.assertLess(n, len(kept))
        self.assertEqual(len(now), n)
        self.assertEqual(now, kept[-n:], "the newest lines, each as it was")
        self.assertEqual(metrics(b)[("baton_log_lines_total", "big")], 2500)


FLOOD = """
[service:flood]
command = @TESTCHILD@ --report @REPORTS@ --delay-ms %d --flood --print-size 100
%s

[service:stubborn]
command = @TESTCHILD@ --ignore-term
stop_grace = 100ms
log = file:@DIR@/stubborn.log
"""
# What batond's stderr may hold beyond what its reader took: its pending
# bytes (256 KiB) and the pipe's buffer (64 KiB).
BUFFERED = (256 + 64) << 10
# What batond says of lines it dropped from its stderr, once that takes lines again.
SAID_DROPPED = re.compile(rb"^batond: warning: (\w+): (\d+) lines? dropped: "
                          rb"batond's stderr took no more \(log_overflow = drop\)$", re.M)
SAID_OWN_DROPPED = re.compile(rb"^batond: warning: (\d+) lines? of its own log dropped: "
                              rb"its stderr took no more$", re.M)


def own_dropped(b):
    """baton_log_own_dropped_total of `batonctl metrics`."""
    m = re.search(r"^baton_log_own_dropped_total (\d+)$", b.ctl("metrics").stdout, re.M)
    if not m:
        raise AssertionError("no baton_log_own_dropped_total in metrics")
    return int(m.group(1))


class FloodTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.pipes = []

    def tearDown(self):
        for drain, r in self.pipes:
            if drain:
                drain.pause = 0  # what batond writes as it stops, read at once
            else:
                os.close(r)  # its writes fail rather than wait
        super().tearDown()
        for drain, r in self.pipes:
            if drain:
                drain.thread.join(5)
                os.close(r)

    def read_later(self):
        """Starts reading batond's stderr, a pipe nobody read so far; returns its Drain."""
        drain, r = self.pipes[-1]
        self.assertIsNone(drain)
        drain = Drain(r, keep=True)
        self.pipes[-1] = (drain, r)
        return drain

    def flood(self, sink, reader=None, pipe=True, delay=0):
        """Starts batond with a service that floods its output (sink, its log
        lines) after delay ms and a stubborn one; batond's stderr a pipe read
        by a Drain(**reader), or by nobody."""
        b = self.batond(FLOOD % (delay, sink), start=False)
        if not pipe:
            b.start()
            return b, None
        r, w = os.pipe()
        drain = Drain(r, **reader) if reader is not None else None
        self.pipes.append((drain, r))
        b.stderr = w
        try:
            b.start()
        finally:
            os.close(w)
        return b, drain

    def stops(self, b, count=5):
        """Stops and starts stubborn count times; returns how late each SIGKILL
        came, and how long status took after each."""
        late, answers = [], []
        for _ in range(count):
            b.wait_service("stubborn", "running")
            pid = pids_of(b, "stubborn")[0]
            # Running is not yet ignoring SIGTERM: a SIGTERM before would end it.
            poll(lambda: test_hostile.ignores(pid, signal.SIGTERM), what="SIGTERM ignored")
            w = self.watch(b, "stop", "--wait", "stubborn")
            try:
                late.append(kill_lateness(w, pid, 0.1))
                w.read_until(lambda o: "ok" in o, timeout=5)
            except AssertionError as e:
                raise AssertionError("stop --wait stubborn did not end: %s\nbatond is %s" % (
                    e, where(b.pid))) from None
            out, took = test_hostile.timed_answer(b)
            self.assertTrue(out.endswith(b"\nok\n"), out[-200:])
            answers.append(took)
            self.assertEqual(b.ctl("start", "stubborn").returncode, 0)
        return late, answers

    def assert_on_time(self, late, answers):
        self.assertGreaterEqual(min(late), 0, "SIGKILL before the deadline")
        self.assertLess(max(late), KILL_LATE_MAX * harness.SLOW,
                        "SIGKILL %.1f ms after the deadline" % (max(late) * 1e3))
        self.assertLess(max(answers), STATUS_MAX * harness.SLOW,
                        "status took %.1f ms" % (max(answers) * 1e3))

    def relayed(self, b, what, stops=5):
        """Measures the stops while the flood runs; returns lines per second."""
        poll(lambda: metrics(b).get(("baton_log_lines_total", "flood"), 0) > 10000,
             what="the flood")
        m0, t0 = metrics(b), time.monotonic()
        late, answers = self.stops(b, stops)
        m1, t1 = metrics(b), time.monotonic()
        lines = ("baton_log_lines_total", "flood")
        rate = (m1[lines] - m0[lines]) / (t1 - t0)
        print("\n  flood to %s: %.0f lines/s relayed; SIGKILL late by %s ms; status in %s ms" % (
            what, rate, " ".join("%.2f" % (x * 1e3) for x in late),
            " ".join("%.2f" % (x * 1e3) for x in answers)))
        self.assert_on_time(late, answers)
        test_hostile.assert_answers(self, b)
        return m1

    @harness.timing
    def test_a_flood_to_stderr_delays_no_kill_and_no_answer(self):
        b, _ = self.flood("log = stderr", reader={})
        m = self.relayed(b, "stderr (a pipe read as fast as it can be)")
        self.assertEqual(m[("baton_log_dropped_total", "flood")], 0)
        self.assert_exits_cleanly(b)

    @harness.timing
    def test_a_flood_to_a_file_delays_no_kill_and_no_answer(self):
        b, _ = self.flood("log = file:@DIR@/flood.log\nlog_max_size = 4MiB\nlog_keep = 1",
                          pipe=False)
        m = self.relayed(b, "a file")
        self.assertEqual(m[("baton_log_dropped_total", "flood")], 0)
        names = sorted(n for n in os.listdir(b.dir) if n.startswith("flood.log"))
        self.assertEqual(names, ["flood.log", "flood.log.1"])
        self.assert_exits_cleanly(b)

    @harness.timing
    def test_drop_counts_and_answers_while_stderr_is_not_read(self):
        # The flood waits until batond has started, which it logs to the same pipe.
        b, _ = self.flood("log_overflow = drop", delay=500)
        poll(lambda: metrics(b).get(("baton_log_dropped_total", "flood"), 0) > 0,
             what="lines dropped")
        m0 = metrics(b)
        time.sleep(0.5)
        test_hostile.assert_answers(self, b)
        m1 = metrics(b)
        lines = m1[("baton_log_lines_total", "flood")] - m0[("baton_log_lines_total", "flood")]
        dropped = (m1[("baton_log_dropped_total", "flood")] -
                   m0[("baton_log_dropped_total", "flood")])
        print("\n  stderr not read: %d lines read from the flood in 0.5 s, %d dropped" % (
            lines, dropped))
        self.assertGreater(lines, 10000, "the flood is not slowed")
        self.assertEqual(dropped, lines, "every line dropped while stderr takes nothing")
        # Its own duties go on: a stop, a SIGKILL at its deadline, status.
        pid = poll(lambda: pids_of(b, "stubborn"), what="stubborn")[0]
        late, answers = self.stops(b, 1)
        print("  SIGKILL late by %.2f ms; status in %.2f ms" % (late[0] * 1e3, answers[0] * 1e3))
        self.assert_on_time(late, answers)
        # What it logged meanwhile waited beyond the flood's lines, and comes
        # once stderr is read, then how many of the flood's lines it dropped.
        before = metrics(b)[("baton_log_dropped_total", "flood")]
        drain = self.read_later()
        poll(lambda: SAID_DROPPED.search(drain.data), what="the lines dropped said")
        data = bytes(drain.data)
        killed = rb"^batond: warning: stubborn\[%d\] gen 1: [^\n]*sent SIGKILL" % pid
        self.assertTrue(re.search(killed, data, re.M), "no SIGKILL of stubborn in stderr")
        said = SAID_DROPPED.search(data)
        self.assertEqual(said.group(1), b"flood")
        self.assertGreaterEqual(int(said.group(2)), before, "every line dropped until then")
        self.assertEqual(own_dropped(b), 0)
        self.assertIsNone(SAID_OWN_DROPPED.search(data))

    def test_shutdown_while_stderr_holds_a_services_output_back(self):
        # The flood's output is not read while batond's stderr takes nothing
        # (log_overflow = block). batond is stopped meanwhile, and its stderr
        # read once every process is gone: as it writes what it held, at exit,
        # its services are already freed, and nothing of them may be touched.
        # On SIGTERM the flood flushes what it buffered, a write that waits on
        # the held pipe: it goes at its stop_grace.
        b, _ = self.flood("log = stderr\nstop_grace = 200ms")
        poll(lambda: metrics(b).get(("baton_log_lines_total", "flood"), 0) > 1000,
             what="the flood")
        lines = lambda: metrics(b)[("baton_log_lines_total", "flood")]
        seen = [lines()]
        poll(lambda: seen.append(lines()) or seen[-1] == seen[-2], interval=0.2,
             what="the flood's output held back")
        b.signal(signal.SIGTERM)
        poll(lambda: not harness.children_of(b.pid), what="every process gone")
        drain = self.read_later()
        code = b.wait_exit()
        drain.thread.join(10)
        self.assertEqual(code, 0, bytes(drain.data[-3000:]).decode(errors="replace"))
        self.assertIn(b"batond: every service has stopped; exiting", bytes(drain.data))

    @harness.timing
    def test_own_lines_past_what_stderr_holds_dropped_counted_and_said(self):
        # A process restarted every millisecond, each restart logged (batond
        # -v), while the flood fills stderr, which nobody reads.
        b, _ = self.flood("log_overflow = drop\n\n[service:crashing]\ncommand = /bin/false\n"
                          "restart_delay = 1ms\nrestart_delay_max = 1ms\nstart_limit = none",
                          delay=500)
        poll(lambda: own_dropped(b) > 0, timeout=20, what="batond's own lines dropped")
        test_hostile.assert_answers(self, b)
        before = own_dropped(b)
        drain = self.read_later()
        # What was dropped is said, in one line or in several: a line saying
        # so, shorter than the line dropped, may fit where that one did not.
        said = lambda: sum(int(n) for n in SAID_OWN_DROPPED.findall(bytes(drain.data)))
        poll(lambda: said() >= before, what="every line dropped until then said")
        print("\n  %d of batond's lines dropped, %d said" % (before, said()))
        self.assertLessEqual(said(), own_dropped(b))
        # Every line is whole: a service's or batond's own.
        data = bytes(drain.data)
        for line in data[:data.rindex(b"\n")].split(b"\n"):
            self.assertTrue(line.startswith(b"batond: ") or SINK_LINE.match(line), line[:200])

    @harness.timing
    def test_block_slows_the_flood_and_drops_nothing(self):
        # batond's stderr read 16 KiB at a time, 50 times a second at most.
        b, drain = self.flood("log_overflow = block", reader={"chunk": 16384, "pause": 0.02,
                                                             "keep": True})
        pid = list(b.wait_reports(1))[0]
        poll(lambda: metrics(b).get(("baton_log_lines_total", "flood"), 0) > 1000,
             what="the flood")
        time.sleep(0.3)

        def sample():
            return metrics(b), test_hostile.cpu_seconds(pid), drain.count, time.monotonic()

        m0, cpu0, read0, t0 = sample()
        time.sleep(1.0)
        m1, cpu1, read1, t1 = sample()
        test_hostile.assert_answers(self, b)
        lines = m1[("baton_log_lines_total", "flood")] - m0[("baton_log_lines_total", "flood")]
        # Each line as batond writes it: flood[PID] gen 1 out: TEXT (99 bytes)
        relayed = lines * (len("flood[%d] gen 1 out: " % pid) + 100)
        print("\n  block: %.0f lines/s relayed, stderr read at %.0f KB/s, the flood's CPU "
              "%.3f s in %.1f s" % (lines / (t1 - t0), (read1 - read0) / (t1 - t0) / 1e3,
                                    cpu1 - cpu0, t1 - t0))
        self.assertEqual(m1[("baton_log_dropped_total", "flood")], 0)
        self.assertLess(relayed, read1 - read0 + BUFFERED, "relayed no faster than stderr took")
        self.assertLess(cpu1 - cpu0, 0.2 * (t1 - t0), "the flood waits on its pipe")
        data = bytes(drain.data)
        lines = sink_lines(data[:data.rindex(b"\n")], "flood")
        self.assertEqual([numbered(line)[2] for line in lines], list(range(1, len(lines) + 1)),
                         "no line lost")
        self.assertGreater(len(lines), 1000)
        drain.pause = 0
        self.assert_exits_cleanly(b)


class BytesTest(harness.TestCase):
    WRITTEN = (b"plain line\n"
               b"ctl \x00\x01\x1b[31mred\x7f tab\there\n"
               b"bad utf8 \xff\xfe\xc3\x28 ok \xc3\xa9\n" +
               b"y" * 20000 + b"\n"
               b"after the long one\n" +
               b"\x01" * 4096 + b"\n"
               b"no newline at the end")
    LINES = [b"plain line", b"ctl \x00\x01\x1b[31mred\x7f tab\there",
             b"bad utf8 \xff\xfe\xc3\x28 ok \xc3\xa9", b"y" * 16384, b"after the long one",
             b"\x01" * 4096, b"no newline at the end"]
    CONFIG = """
[service:text]
command = /bin/cat @DIR@/bytes
restart = never

[service:json]
command = /bin/cat @DIR@/bytes
restart = never
log = file:@DIR@/json.log
log_format = json
"""

    def start(self):
        b = self.batond(self.CONFIG, start=False)
        with open(os.path.join(b.dir, "bytes"), "wb") as f:
            f.write(self.WRITTEN)
        b.start()
        for name in ("text", "json"):
            poll(lambda: metrics(b).get(("baton_log_lines_total", name)) == 7,
                 what="the lines of %s" % name)
        return b

    def test_escaped_in_text_exact_in_json_cut_marked(self):
        b = self.start()
        text = [line["bytes"] for line in sink_lines(read_bytes(b.log_path), "text")]
        self.assertEqual(text, [b"plain line", b"ctl \\x00\\x01\\x1b[31mred\\x7f tab\there",
                                b"bad utf8 \\xff\\xfe\\xc3( ok \xc3\xa9", b"y" * 16384 + b" [cut]",
                                b"after the long one", b"\\x01" * 4096,
                                b"no newline at the end"])
        written = read_bytes(os.path.join(b.dir, "json.log"))
        objs = [json.loads(line) for line in written.splitlines()]
        exact = [base64.b64decode(o["line_base64"]) if "line_base64" in o else o["line"].encode()
                 for o in objs]
        self.assertEqual(exact, self.LINES)
        self.assertEqual([o.get("cut", False) for o in objs], [False] * 3 + [True] + [False] * 3)
        self.assertEqual(objs[2]["line"], "bad utf8 \ufffd\ufffd\ufffd( ok \xe9")
        self.assertEqual({(o["service"], o["gen"], o["stream"]) for o in objs},
                         {("json", 1, "out")})
        # logs: a record is at most 16383 bytes (baton-protocol(7)), so the
        # long line and the 4096 control characters (each \x01 in a record)
        # come as the longest start that fits, marked cut.
        for name in ("text", "json"):
            req = harness.Logs(b, name)
            self.addCleanup(req.close)
            kept = req.until_ok()
            self.assertEqual([r.get("cut") for r in kept], [None] * 3 + ["yes", None, "yes", None])
            for line, rec, raw in zip(self.LINES, kept, req.raw):
                if rec.get("cut"):
                    self.assertTrue(line.startswith(rec["bytes"]), name)
                    self.assertLessEqual(len(raw), 16383, "%s: within a reply line" % name)
                    self.assertGreater(len(raw), 16383 - len(b"\\x01"),
                                       "%s: a character more would not fit" % name)
                else:
                    self.assertEqual(rec["bytes"], line, name)
            self.assertEqual(metrics(b)[("baton_log_cut_total", name)], 1)
        self.assert_exits_cleanly(b)

    def test_logs_records_fit_in_a_reply_line(self):
        # baton-protocol(7): a reply line is at most 16383 bytes without its
        # newline; batonctl refuses a longer one.
        b = self.start()
        req = harness.Logs(b, "text")
        self.addCleanup(req.close)
        req.until_ok()
        # {length of the line: length of its record}
        longer = {len(text): len(record) for text, record in zip(self.LINES, req.raw)
                  if len(record) > 16383}
        self.assertEqual(longer, {}, "records longer than a reply line")


class InheritTest(harness.TestCase):
    OUT = b"to stdout \x00\xff\r\n" + b"z" * 5000 + b"\nno newline"
    ERR = b"to stderr \x1b[1m\xfe\n" + b"half"
    SCRIPT = "cat \"$0\"/out.bin; cat \"$0\"/err.bin >&2"

    def write_bytes(self, d):
        for name, data in (("out.bin", self.OUT), ("err.bin", self.ERR)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)

    def test_inherit_writes_to_batonds_own_stdout_and_stderr(self):
        b = self.batond("""
[service:inh]
command = /bin/sh -c '%s' @DIR@
log = inherit
restart = never
""" % self.SCRIPT, start=False)
        self.write_bytes(b.dir)
        err_path = os.path.join(b.dir, "stderr")
        with open(err_path, "ab") as err:
            b.stderr = err.fileno()
            b.start()
        poll(lambda: self.ERR in read_bytes(err_path) and read_bytes(b.log_path) == self.OUT,
             what="the output as it was written")
        self.assertEqual(harness.logs(b, "inh"), [])
        self.assertEqual(metrics(b)[("baton_log_lines_total", "inh")], 0)
        self.assertIsNone(re.search(rb"inh\[\d+\] gen 1 (out|err):", read_bytes(err_path)))
        self.assert_exits_cleanly(b)

    def single(self, options):
        d = self.batond("", start=False).dir
        self.write_bytes(d)
        paths = os.path.join(d, "stdout"), os.path.join(d, "stderr")
        with open(paths[0], "wb") as out, open(paths[1], "wb") as err:
            p = subprocess.Popen([harness.BATOND, "-s", os.path.join(d, "control.sock")] +
                                 options + ["--", "/bin/sh", "-c", self.SCRIPT, d],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            try:
                self.assertEqual(p.wait(timeout=20 * harness.SLOW), 0, read_bytes(paths[1]))
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        return read_bytes(paths[0]), read_bytes(paths[1])

    def test_single_command_mode_inherits_by_default(self):
        out, err = self.single([])
        self.assertEqual(out, self.OUT)
        self.assertIn(self.ERR, err)
        out, err = self.single(["--log", "stderr"])
        self.assertEqual(out, b"")
        # Two pipes: the order between them is not kept, each one's is.
        lines = [(line["stream"], line["bytes"]) for line in sink_lines(err, "sh")]
        self.assertEqual([text for stream, text in lines if stream == "out"],
                         [b"to stdout \\x00\\xff", b"z" * 5000, b"no newline"])
        self.assertEqual([text for stream, text in lines if stream == "err"],
                         [b"to stderr \\x1b[1m\\xfe", b"half"])


if __name__ == "__main__":
    harness.main()
