#!/usr/bin/env python3
"""Hostile control clients, children and signals; running out of fds and processes."""

import os
import pwd
import random
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import alive, children_of, poll, proc_state

# How long `batonctl status` may take while batond is under attack.
STATUS_MAX = 0.1

CONFIG = """
[service:svc]
command = @TESTCHILD@
instances = 2
"""


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def cpu_seconds(pid):
    """Returns utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid, during=0.0):
    """Counts a process's open fds: the fewest seen during that many seconds,
    to leave out those of a child being started."""
    deadline = time.monotonic() + during
    fewest = len(os.listdir("/proc/%d/fd" % pid))
    while time.monotonic() < deadline:
        fewest = min(fewest, len(os.listdir("/proc/%d/fd" % pid)))
    return fewest


def ignores(pid, sig):
    """Tells whether a process ignores sig (SigIgn of /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def timed_status(b):
    t0 = time.monotonic()
    r = b.ctl("status")
    return r.returncode, time.monotonic() - t0


def timed_answer(b):
    """Sends `status` as batonctl does; returns the answer and how long it took."""
    t0 = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(b.control)
        s.settimeout(10 * harness.SLOW)
        s.sendall(b"status\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, time.monotonic() - t0
            out += chunk


def assert_answers(test, b):
    """Checks that `batonctl status` works, and answers within STATUS_MAX."""
    out, took = timed_answer(b)
    test.assertTrue(out.endswith(b"\nok\n"), out[-200:])
    test.assertLess(took, STATUS_MAX * harness.SLOW, "batond took %.3fs to answer status" % took)
    code, took = timed_status(b)
    test.assertEqual(code, 0, "batonctl status failed")
    # Under sanitizers batonctl's own start takes about STATUS_MAX: there,
    # batond's answer alone is timed.
    if harness.SLOW == 1:
        test.assertLess(took, STATUS_MAX, "batonctl status took %.3fs" % took)


def connect(b, blocking=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if blocking:
        # A blocking connect waits for room in the backlog (one with a
        # timeout fails with EAGAIN at once on a UNIX socket).
        s.connect(b.control)
        s.settimeout(5)
    else:
        s.setblocking(False)
        if s.connect_ex(b.control) != 0:
            s.close()
            return None
    return s


def closed_by_peer(s):
    """Reads what is there; tells whether the peer has closed the connection."""
    # poll(), not recv(MSG_DONTWAIT): on a socket with a timeout, Python
    # waits for data before it calls recv().
    p = select.poll()
    p.register(s, select.POLLIN)
    try:
        while p.poll(0):
            if not s.recv(65536):
                return True
    except OSError:
        return True
    return False


LABEL = re.compile(r"[\w.-]+\[\d+\]|instance \d+")


def cause(line):
    """A log line with its numbers replaced, except in a process's label:
    the same message about two processes has two causes."""
    numbers = [re.sub(r"\d+", "#", part) for part in LABEL.split(line)]
    labels = LABEL.findall(line) + [""]
    return "".join(part + label for part, label in zip(numbers, labels))


class LogClock:
    """Follows batond's log as it grows, noting when each line appeared."""

    def __init__(self, b):
        self.path = b.log_path
        self.offset = os.path.getsize(self.path)
        self.buf = b""
        self.lines = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.02):
            self.read()

    def read(self):
        with self.lock:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            now = time.monotonic()
            self.offset += len(data)
            self.buf += data
            *lines, self.buf = self.buf.split(b"\n")
            self.lines += [(now, line.decode(errors="replace")) for line in lines]

    def close(self):
        self.done.set()
        self.thread.join()
        self.read()

    def repeats(self, window=0.9):
        """Lines of one cause logged again within window seconds of the last time."""
        self.read()
        last, found = {}, []
        for t, line in self.lines:
            if not line.startswith("batond: "):
                continue  # a service's own output
            key = cause(line)
            if key in last and t - last[key] < window:
                found.append(line)
            last[key] = t
        return found


class Guard:
    """What a user notices of an attack on batond: slow answers, memory, log floods."""

    def __init__(self, test, b):
        self.test = test
        self.b = b
        self.rss = rss_kb(b.pid)
        self.log = LogClock(b)
        test.addCleanup(self.log.close)

    def status(self):
        assert_answers(self.test, self.b)

    def check(self):
        self.status()
        rss = rss_kb(self.b.pid)
        self.test.assertLess(rss, 3 * self.rss, "batond's RSS grew from %d kB to %d kB"
                             % (self.rss, rss))
        repeats = self.log.repeats()
        self.test.assertEqual(repeats[:5], [], "%d log lines repeated within a second"
                              % len(repeats))


def run_for(seconds, fn, interval=0.05):
    """Calls fn every interval seconds, for that many seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fn()
        time.sleep(interval)


class ClientsTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        self.socks = []
        self.addCleanup(lambda: [s.close() for s in self.socks])

    def start(self, config=CONFIG):
        b = self.batond(config)
        b.wait_service("svc", "running")
        return b, Guard(self, b)

    def test_a_thousand_clients_at_once(self):
        if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1200:
            self.skipTest("RLIMIT_NOFILE is too low for 1000 connections")
        b, guard = self.start()

        def flood():
            for _ in range(1000):
                self.socks.append(connect(b))
        # The guard's status connects, then sends its request: a client idle in
        # between, which 256 newer connections make the oldest and evict. Python
        # hands its lock between threads every 5 ms, time for hundreds of
        # connects; every 0.1 ms, as for batonctl, which sends at once.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0001)
        self.addCleanup(sys.setswitchinterval, switch)
        flooder = threading.Thread(target=flood)
        flooder.start()
        while flooder.is_alive():
            guard.status()
            time.sleep(0.02)
        flooder.join()
        self.assertEqual(len(self.socks), 1000)
        guard.check()
        # The oldest idle clients made room; the newest are still served.
        poll(lambda: sum(closed_by_peer(s) for s in self.socks) >= 1000 - 256,
             what="batond to close the oldest idle clients")
        newest = self.socks[-1]
        newest.sendall(b"version\n")
        self.assertTrue(newest.recv(4096).startswith(b"version version="))
        b.wait_log("256 clients connected: closing the oldest idle one")
        guard.check()
        self.assertEqual(b.service("svc")["state"], "running")

    def test_silent_slow_huge_and_garbage_clients(self):
        b, guard = self.start()
        stop = threading.Event()
        results = {"slow": b"", "huge": [], "garbage": []}
        silent = [connect(b) for _ in range(20)]
        self.socks += silent

        def slow():
            # A byte a second, never a newline: cut off 10 s after the first.
            s = connect(b)
            self.socks.append(s)
            s.settimeout(1)
            for ch in b"status please" * 2:
                try:
                    s.send(bytes([ch]))
                    results["slow"] += s.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if results["slow"] or stop.is_set():
                    break

        def huge():
            # A request line of 10 MiB, again and again.
            line = b"status " + b"x" * (10 << 20) + b"\n"
            for _ in range(20):
                if stop.is_set():
                    break
                with connect(b) as s:
                    results["huge"].append(harness.send_and_read(
                        s, line, (ConnectionResetError, socket.timeout)))
                time.sleep(0.2)

        def garbage():
            # Binary garbage, many short lines of it, and never a read.
            rng = random.Random(1)
            for _ in range(8):
                if stop.is_set():
                    break
                s = connect(b, blocking=True)
                s.setblocking(False)
                self.socks.append(s)
                data = b"".join(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
                                + b"\n" for _ in range(40000))
                try:
                    while data:
                        n = s.send(data)
                        data = data[n:]
                except OSError:
                    pass  # full: batond no longer reads it
                results["garbage"].append(s)
                time.sleep(0.3)

        threads = [threading.Thread(target=fn) for fn in (slow, huge, garbage)]
        for t in threads:
            t.start()
        try:
            run_for(11.5 * harness.SLOW, guard.status)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        guard.check()
        self.assertEqual(results["slow"],
                         b"error usage no complete request line within 10 seconds\n")
        self.assertGreaterEqual(len(results["huge"]), 3)
        for out in results["huge"]:
            self.assertTrue(out.startswith(b"error too-long request line longer than 1023 bytes"),
                            out[:200])
        self.assertEqual(len(results["garbage"]), 8)
        # 10 s after its last reply, a client that reads none is closed.
        self.assertTrue(closed_by_peer(results["garbage"][0]),
                        "a client that neither sends requests nor reads replies is kept")
        self.assertEqual(b.service("svc")["state"], "running")

    def test_a_watcher_that_never_reads(self):
        b, guard = self.start(CONFIG + """
[service:noisy]
command = @TESTCHILD@ --status-spam 20000 --notify READY=1
ready = notify
instances = 2
restart = never
""")
        s = connect(b)
        self.socks.append(s)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"watch\n")
        time.sleep(0.1)
        self.assertEqual(b.ctl("restart", "noisy").returncode, 0)
        dropped = "control: dropped a client (pid %d) that does not read its events" % os.getpid()
        deadline = time.monotonic() + 10 * harness.SLOW
        while dropped not in b.log() and time.monotonic() < deadline:
            guard.status()
            time.sleep(0.05)
        self.assertIn(dropped, b.log())
        self.assertEqual(b.log().count(dropped), 1)
        guard.check()
        poll(lambda: b.service("noisy")["state"] == "running", what="noisy to be running")


class ExhaustionTest(harness.TestCase):
    def out_of_fds(self):
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        b = self.batond(CONFIG, preexec_fn=limit)
        b.wait_service("svc", "running")
        log = LogClock(b)
        self.addCleanup(log.close)
        return b, log

    def flood(self, b, request):
        flood = []
        self.addCleanup(lambda: [s.close() for s in flood])
        # More than 64 fds' worth; what the backlog cannot take is not connected.
        for _ in range(300):
            s = connect(b, blocking=False)
            if s:
                if request:
                    s.send(request)
                flood.append(s)
        return flood

    @harness.timing
    def test_out_of_fds_an_idle_client_makes_room(self):
        b, log = self.out_of_fds()
        self.flood(b, None)
        poll(lambda: b.log().count("closing the oldest idle one") > 0,
             what="idle clients closed to make room")
        assert_answers(self, b)
        self.assertEqual(log.repeats(), [])

    def test_out_of_fds_accepting_pauses_and_resumes(self):
        b, log = self.out_of_fds()
        # Watchers are never closed to make room: accepting has to pause.
        flood = self.flood(b, b"watch\n")
        b.wait_log("control: accept: Too many open files: pausing for 100 ms")
        cpu, t0 = cpu_seconds(b.pid), time.monotonic()
        time.sleep(1.5)
        used = (cpu_seconds(b.pid) - cpu) / (time.monotonic() - t0)
        self.assertLess(used, 0.2, "batond used %.0f%% of a CPU while out of fds" % (used * 100))
        self.assertGreaterEqual(b.log().count("Too many open files: pausing"), 2,
                                "accepting must resume and pause again while the flood lasts")
        self.assertEqual(log.repeats(), [])
        for s in flood:
            s.close()
        poll(lambda: b.ctl("status").returncode == 0, timeout=2,
             what="batonctl status once the flood is gone")
        assert_answers(self, b)
        self.assertEqual(b.service("svc")["state"], "running")

    def test_out_of_processes_retries_with_backoff(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run batond as nobody")
        nobody = pwd.getpwnam("nobody")
        b = self.batond("""
[service:crowd]
command = @DIR@/testchild --report @REPORTS@
instances = 3
restart_delay = 100ms
restart_delay_max = 400ms
""", start=False)
        # batond runs as nobody, in a directory of its own, with its own testchild.
        shutil.copy(harness.TESTCHILD, os.path.join(b.dir, "testchild"))
        os.chmod(os.path.join(b.dir, "testchild"), 0o755)
        for path in (b.dir, b.reports):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        os.chmod(b.config_path, 0o644)
        # Placeholders hold nobody's room: ending them is one way to make room
        # again (root without CAP_SYS_RESOURCE may not raise batond's limit).
        holders = []
        for _ in range(3):
            holders.append(subprocess.Popen(["sleep", "600"], user=nobody.pw_uid,
                                            group=nobody.pw_gid, extra_groups=[]))
            self.addCleanup(holders[-1].wait)
            self.addCleanup(holders[-1].kill)
        # RLIMIT_NPROC counts every task of the user: room for batond and one child.
        nproc = tasks_of(nobody.pw_uid) + 2

        def become_nobody():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            os.setuid(nobody.pw_uid)
        b.preexec_fn = become_nobody
        b.start()
        failed = poll(lambda: [p for p in b.procs("crowd")
                               if p.get("error") == "fork: Resource temporarily unavailable"],
                      what="a fork error in status")
        self.assertEqual(failed[0]["state"], "waiting")
        self.assertLess(len(b.wait_reports(1)), 3)
        # Backoff, not a spin: 100, 200, 400, 400 ms... between attempts.
        cpu, t0 = cpu_seconds(b.pid), time.monotonic()
        time.sleep(1.5)
        used = (cpu_seconds(b.pid) - cpu) / (time.monotonic() - t0)
        self.assertLess(used, 0.2, "batond used %.0f%% of a CPU retrying" % (used * 100))
        attempts = re.findall(r"crowd instance (\d) gen 1: cannot start: fork: Resource "
                              r"temporarily unavailable; retrying in (\d+)ms", b.log())
        self.assertTrue(attempts, b.log())
        per_instance = {}
        for instance, delay in attempts:
            per_instance.setdefault(instance, []).append(int(delay))
        for delays in per_instance.values():
            self.assertLessEqual(len(delays), 15, delays)
            self.assertEqual(delays[:3], [100, 200, 400][:len(delays)], delays)
        self.assertEqual(b.service("crowd")["state"], "starting")
        try:
            resource.prlimit(b.pid, resource.RLIMIT_NPROC,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except PermissionError:
            for h in holders:
                h.kill()
                h.wait()
        b.wait_service("crowd", "running", timeout=2)
        self.assertEqual(len(b.wait_reports(3)), 3)
        self.assertTrue(all(r["uid"] == nobody.pw_uid for r in b.reports_of().values()))
        self.assertFalse([p for p in b.procs("crowd") if p.get("error")])
        self.assert_exits_cleanly(b)

    @unittest.skipIf(harness.VALGRIND, "valgrind's own memory is in the RSS; memcheck checks leaks")
    def test_no_leak_over_a_thousand_restarts(self):
        # Freed memory is not held back by the address sanitizer's quarantine.
        asan = os.environ.get("ASAN_OPTIONS", "")
        b = self.batond("""
[service:brief]
command = /bin/true
restart = always
restart_delay = 1ms
restart_delay_max = 1ms
start_limit = none
""", env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"})
        # Allocators settle: glibc's in the first few hundred restarts, the
        # sanitizer's in a few thousand. A leak grows in every window of a
        # thousand restarts; settling stops: the last of at most five counts.
        poll(lambda: b.service("brief")["restarts"] >= 300, timeout=20, what="300 restarts")
        fds = open_fds(b.pid, during=0.5)
        growth = []
        for _ in range(5):
            rss, first = rss_kb(b.pid), b.service("brief")["restarts"]
            poll(lambda: b.service("brief")["restarts"] >= first + 1000, timeout=30,
                 what="1000 more restarts")
            growth.append(rss_kb(b.pid) - rss)
            if growth[-1] < 256:
                break
        self.assertEqual(open_fds(b.pid, during=0.5), fds, "fds leaked over 1000 restarts")
        self.assertLess(growth[-1], 256, "RSS grew by %s kB in each 1000 restarts" % growth)
        self.assert_exits_cleanly(b)


def tasks_of(uid):
    """Counts the tasks (threads) whose real uid is uid, as RLIMIT_NPROC does."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid:
            n += int(fields["Threads"])
    return n


class ChildrenTest(harness.TestCase):
    def test_a_stopped_process_still_stops_at_once(self):
        b = self.batond("""
[service:frozen]
command = @TESTCHILD@ --stop-self --log @DIR@/log --report @REPORTS@
stop_grace = 10s
""")
        pid = list(b.wait_reports(1))[0]
        poll(lambda: proc_state(pid) == "T", what="the process to stop itself")
        t0 = time.monotonic()
        r = b.ctl("stop", "--wait", "frozen")
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(took, 1.0 * harness.SLOW, "the stop took %.2fs" % took)
        self.assertFalse(alive(pid))
        self.assertEqual(b.service("frozen")["kills"], 0)
        log = harness.read(os.path.join(b.dir, "log"))
        self.assertIn(" continued ", log)
        self.assertIn(" term ", log)
        b.wait_log("stopped: exited with status 0")

    def test_double_forks_leave_no_zombie(self):
        b = self.batond("""
[service:daemonizer]
command = @TESTCHILD@ --orphan-ms 100 --exit 0
restart = always
restart_delay = 20ms
restart_delay_max = 20ms
start_limit = none
""")
        poll(lambda: b.service("daemonizer")["restarts"] >= 20, what="20 restarts")
        self.assertEqual(b.ctl("stop", "--wait", "daemonizer").returncode, 0)
        restarts = b.service("daemonizer")["restarts"]
        poll(lambda: children_of(b.pid) == {}, timeout=2,
             what="every orphan to be reaped")
        poll(lambda: b.status()["daemon"]["orphans"] >= restarts, timeout=2,
             what="the orphans to be counted")

    def test_a_main_process_in_its_own_group_is_killed_at_the_grace(self):
        b = self.batond("""
[service:escapee]
command = @TESTCHILD@ --own-group --ignore-term --report @REPORTS@
ready = notify
stop_grace = 500ms
""")
        report = list(b.wait_reports(1).values())[0]
        pid = report["pid"]
        self.assertEqual(report["pgid"], pid)
        self.assertNotEqual(report["sid"], pid)
        poll(lambda: [p["pid"] for p in b.procs("escapee")] == [pid], what="MAINPID to be taken")
        poll(lambda: ignores(pid, signal.SIGTERM), what="SIGTERM to be ignored")
        w = self.watch(b, "stop", "--wait", "escapee")
        self.assert_killed_at_grace(w, pid, 0.5)
        self.assertTrue(w.read_until(lambda o: "ok" in o)["ok"])
        self.assertFalse(alive(pid))
        self.assertEqual(b.service("escapee")["kills"], 1)

    def check_clobbered_socket(self, how):
        b = self.batond("""
[socket:http]
listen = tcp:127.0.0.1:0

[service:vandal]
command = @TESTCHILD@ --clobber-fd3 %s --log @DIR@/vandal.log --report @REPORTS@
sockets = http
instances = 2

[service:worker]
command = @TESTCHILD@ --accept --term-close-every-ms 10 --log @DIR@/worker.log
sockets = http
""" % how)
        vandal_log = os.path.join(b.dir, "vandal.log")
        worker_log = os.path.join(b.dir, "worker.log")
        poll(lambda: harness.read(vandal_log).count(" clobbered ") == 2,
             what="both vandals to clobber fd 3")
        b.wait_service("worker", "running")
        fds = len(harness.own_fds(b.pid))
        port = b.port("http")
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])

        def served(n):
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            poll(lambda: harness.read(worker_log).count(" accept ") == n,
                 what="connection %d to be accepted" % n)
        served(1)
        socket_of = {r["fds"]["3"] for r in b.reports_of().values()}
        self.assertEqual(len(socket_of), 1)
        self.assertTrue(socket_of.pop().startswith("socket:"))
        # New generations get the socket whole, and it still takes connections.
        self.assertEqual(b.ctl("upgrade", "--wait", "vandal").returncode, 0)
        poll(lambda: harness.read(vandal_log).count(" clobbered ") == 4,
             what="the new vandals to clobber fd 3")
        reports = b.wait_reports(4)
        self.assertEqual(len({r["fds"]["3"] for r in reports.values()}), 1, reports)
        self.assertEqual(b.ctl("upgrade", "--wait", "worker").returncode, 0)
        served(2)
        self.assertEqual(b.service("worker")["gen"], 2)
        # Pipes of processes just started close as their exec is seen.
        poll(lambda: len(harness.own_fds(b.pid)) == fds, timeout=5,
             what="batond's fds back to %d" % fds)
        self.assert_exits_cleanly(b)

    def test_a_child_that_closes_its_socket(self):
        self.check_clobbered_socket("close")

    def test_a_child_that_dup2s_over_its_socket(self):
        self.check_clobbered_socket("dup2")

    def test_garbage_on_the_notify_socket(self):
        b = self.batond(CONFIG)
        b.wait_service("svc", "running")
        fds, rss = len(harness.own_fds(b.pid)), rss_kb(b.pid)
        log = LogClock(b)
        self.addCleanup(log.close)
        b.write_config(b.expand(CONFIG + """
[service:noisy]
command = @TESTCHILD@ --notify-garbage 5000 --notify STATUS=fine --notify READY=1
ready = notify
ready_timeout = 20s
instances = 2
"""))
        self.assertEqual(b.ctl("reload").returncode, 0)
        # And the same from a stranger, which batond must not believe.
        path = os.path.join(b.dir, "control-notify.sock")
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(stranger.close)
        for i in range(2000):
            stranger.sendto(b"READY=1\nSTATUS=stranger %d" % i, path)
        b.wait_service("noisy", "running", timeout=10)
        procs = b.procs("noisy")
        self.assertEqual([p["status"] for p in procs], ["fine", "fine"])
        assert_answers(self, b)
        # Beyond the output pipes of the two new processes and their program, nothing.
        self.assertLessEqual(len(harness.own_fds(b.pid)), fds + 2 * 2 + 1,
                             "fds passed with the garbage were kept")
        self.assertLess(rss_kb(b.pid), 3 * rss)
        self.assertIn("notify: ignored a message from pid %d" % os.getpid(), b.log())
        self.assertEqual(log.repeats(), [])
        self.assert_exits_cleanly(b)


class SignalsTest(harness.TestCase):
    # SIGTERM twice is tested in test_signals.py.

    def start_upgrade(self, new_config):
        """A ready service svc, then its upgrade started to new_config;
        returns batond and the old process's pid."""
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --notify READY=1 --report @REPORTS@
ready = notify
""")
        old = list(b.wait_reports(1))[0]
        b.wait_service("svc", "running")
        b.write_config(b.expand(new_config))
        self.assertEqual(b.ctl("upgrade", "svc").returncode, 0)
        return b, old

    def check_sighup_during_upgrade(self, new_command):
        b, old = self.start_upgrade("""
[service:svc]
command = %s
ready = notify

[service:extra]
command = @TESTCHILD@
""" % new_command)
        self.assertEqual(b.service("svc")["state"], "upgrading")
        b.signal(signal.SIGHUP)
        # The signal is handled in batond's next turn: a status may come first.
        poll(lambda: any(s["name"] == "extra" for s in b.status()["services"]),
             what="the reload to add extra")
        b.wait_service("extra", "running")
        svc = poll(lambda: b.service("svc")["state"] != "upgrading" and b.service("svc"),
                   what="the upgrade to end")
        log = b.log()
        self.assertLess(log.index("reload: service extra: added"),
                        log.index("svc: upgrade to gen 2"),
                        "the reload must happen during the upgrade")
        return b, old, svc

    def test_sighup_during_an_upgrade_that_completes(self):
        b, old, svc = self.check_sighup_during_upgrade(
            "@TESTCHILD@ --delay-ms 800 --notify READY=1")
        self.assertEqual((svc["state"], svc["gen"], svc["upgrades"]), ("running", 2, 1))
        poll(lambda: not alive(old), what="the old generation to drain")
        self.assert_exits_cleanly(b)

    def test_sighup_during_an_upgrade_that_rolls_back(self):
        b, old, svc = self.check_sighup_during_upgrade("@TESTCHILD@ --delay-ms 800 --exit 1")
        self.assertEqual((svc["state"], svc["gen"], svc["rollbacks"]), ("running", 1, 1))
        self.assertIn("rolled back", svc["reason"])
        self.assertEqual([p["pid"] for p in b.procs("svc")], [old])
        self.assert_exits_cleanly(b)

    def test_sigusr2_during_a_drain_keeps_its_deadline(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 2s
""")
        old = list(b.wait_reports(1))[0]
        poll(lambda: ignores(old, signal.SIGTERM), what="SIGTERM to be ignored")
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        draining = [p for p in b.procs("svc") if p["pid"] == old][0]
        signalled = time.monotonic() - draining["stopped_for"]
        time.sleep(0.5)
        b.signal(signal.SIGUSR2)
        b.wait_log("resumed after a re-exec")
        after = [p for p in b.procs("svc") if p["pid"] == old][0]
        self.assertEqual(after["state"], "stopping")
        poll(lambda: not alive(old), interval=0.01, what="the old process to be killed")
        took = time.monotonic() - signalled
        # As in test_reexec.py: the original deadline (2 s), not at once (0.5 s)
        # nor a grace started again after the re-exec (2.5 s).
        self.assertGreaterEqual(took, 2.0 - 0.2 * harness.SLOW)
        self.assertLess(took, 2.0 + 0.3 * harness.SLOW)
        # Counted once batond has reaped it, which may come after it is a zombie.
        poll(lambda: b.service("svc")["kills"] == 1, what="the kill counted")
        self.assertIsNone(b.proc.poll())
        self.assert_exits_cleanly(b)

    def test_sigusr2_during_an_upgrade_is_refused(self):
        b, old = self.start_upgrade("[service:svc]\ncommand = @TESTCHILD@ --delay-ms 800 "
                                    "--notify READY=1\nready = notify\n")
        b.signal(signal.SIGUSR2)
        b.wait_log("re-exec refused: an upgrade is in progress: svc")
        svc = b.wait_service("svc", "running")
        self.assertEqual((svc["gen"], svc["upgrades"]), (2, 1))
        self.assertNotIn("re-executing /", b.log())
        self.assertNotIn("resumed after a re-exec", b.log())
        self.assertIsNone(b.proc.poll())
        self.assertEqual(b.status()["daemon"]["pid"], b.pid)
        poll(lambda: not alive(old), what="the old generation to drain")
        self.assert_exits_cleanly(b)


if __name__ == "__main__":
    harness.main()
