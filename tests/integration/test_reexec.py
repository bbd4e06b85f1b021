#!/usr/bin/env python3
"""batond re-executing itself: same pid, same children, same sockets, same drains."""

import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import alive, poll

import test_load


def same_state(before, after):
    """The parts of status a re-exec must not change."""
    def strip(st):
        services = [{k: v for k, v in s.items()} for s in st["services"]]
        procs = [{k: v for k, v in p.items() if k not in ("age", "stopped_for", "kill_in")}
                 for p in st["procs"]]
        sockets = st["sockets"]
        return services, procs, sockets, st["daemon"]["pid"]
    return strip(before) == strip(after)


def start_copy(b):
    """Starts b's batond from a copy of the binary in its directory; returns the copy's path."""
    copy = os.path.join(b.dir, "batond-copy")
    shutil.copy(harness.BATOND, copy)
    b.logfile = open(b.log_path, "ab")
    b.proc = subprocess.Popen([copy, "-v", "-c", b.config_path, "-s", b.control],
                              stdout=b.logfile, stderr=b.logfile, env=b.env)
    poll(lambda: b.ctl("version").returncode == 0, what="batond to answer")
    return copy


def install(path, source=None, text=None):
    """Puts a new file at path the way a package manager does (rename); returns its inode."""
    new = path + ".new"
    if text is not None:
        with open(new, "w") as f:
            f.write(text)
        os.chmod(new, 0o755)
    else:
        shutil.copy(source, new)
    os.rename(new, path)
    return os.stat(path).st_ino


@unittest.skipIf(harness.VALGRIND, "a re-exec runs batond outside valgrind")
class ReexecTest(harness.TestCase):
    def test_reexec_under_load_changes_nothing(self):
        if not os.path.exists(harness.HTTPD) or not os.path.exists(harness.LOADGEN):
            self.skipTest("the test server or the load generator is not built")
        b = self.batond(test_load.config(instances=3))
        b.wait_service("web", "running")
        self.assertEqual(b.ctl("upgrade", "--wait", "web").returncode, 0)
        load = harness.Load(b.port("http"))
        self.addCleanup(lambda: load.proc.poll() is None and load.proc.kill())
        time.sleep(0.3)
        before = b.status("web")
        before["daemon"] = b.status()["daemon"]
        for _ in range(5):
            r = b.ctl("reexec")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), "batond re-executed: pid %d, version 0.1.0" % b.pid)
        after = b.status("web")
        after["daemon"] = b.status()["daemon"]
        self.assertTrue(same_state(before, after), (before, after))
        self.assertGreaterEqual(after["daemon"]["uptime"], before["daemon"]["uptime"])
        self.assert_no_failure(*load.stop())
        # Still in charge: it upgrades, and stops everything when told.
        self.assertEqual(b.ctl("upgrade", "--wait", "web").returncode, 0)
        self.assert_exits_cleanly(b)

    def test_a_drain_keeps_its_deadline(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 2s
""")
        old = list(b.wait_reports(1))[0]
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        draining = [p for p in b.procs("svc") if p["pid"] == old][0]
        signalled = time.monotonic() - draining["stopped_for"]
        time.sleep(0.5)
        self.assertEqual(b.ctl("reexec").returncode, 0)
        after = [p for p in b.procs("svc") if p["pid"] == old][0]
        self.assertEqual(after["state"], "stopping")
        self.assertAlmostEqual(after["kill_in"], 2.0 - (time.monotonic() - signalled), delta=0.2)
        poll(lambda: not alive(old), interval=0.01, what="the old process to be killed")
        took = time.monotonic() - signalled
        # signalled is late by the time batonctl took to answer: the bounds
        # tell the original deadline (2 s) from a kill at once (0.5 s) and from
        # a grace started again after the re-exec (2.5 s).
        self.assertGreaterEqual(took, 2.0 - 0.2 * harness.SLOW)
        self.assertLess(took, 2.0 + 0.3 * harness.SLOW)
        self.assertEqual(b.service("svc")["kills"], 1)

    def test_a_restart_delay_and_a_crash_loop_count_go_on(self):
        b = self.batond("""
[service:loop]
command = @TESTCHILD@ --exit 3
restart_delay = 300ms
restart_delay_max = 300ms
start_limit = 4/30s
""")
        poll(lambda: b.service("loop")["restarts"] >= 2, what="two restarts")
        self.assertEqual(b.ctl("reexec").returncode, 0)
        svc = b.wait_service("loop", "failed")
        self.assertIn("crash loop: restarted 4 times", svc["reason"])

    def reexec_then_restart(self, b, name, first):
        """Re-execs batond, checks that status shows the same command, restarts
        the service and returns the report of the process that replaced first."""
        command = b.service(name)["command"]
        self.assertEqual(b.ctl("reexec").returncode, 0)
        self.assertEqual(b.service(name)["command"], command)
        self.assertEqual(b.ctl("restart", name).returncode, 0)
        reports = b.wait_reports(2)
        return [r for pid, r in reports.items() if pid != first["pid"]][0]

    def test_unusual_words_come_back_the_same(self):
        b = self.batond("""
[service:odd]
command = @TESTCHILD@ --report @REPORTS@ a\\ b\\ \\;c 'ends in a blank ' "$HOME"
    '#not a comment' ''
environment = X=semi\\ \\;colon Y=' ' EMPTY=
""")
        first = list(b.wait_reports(1).values())[0]
        self.assertEqual(first["argv"][-5:], ["a b ;c", "ends in a blank ", "$HOME",
                                              "#not a comment", ""])
        self.assertEqual((first["env"]["X"], first["env"]["Y"]), ("semi ;colon", " "))
        second = self.reexec_then_restart(b, "odd", first)
        self.assertEqual(second["argv"], first["argv"])
        self.assertEqual({k: second["env"][k] for k in ("X", "Y", "EMPTY")},
                         {k: first["env"][k] for k in ("X", "Y", "EMPTY")})

    def test_long_words_come_back_the_same(self):
        # A command of 7,500 control characters (four bytes each in a record)
        # and a variable of 22,500 bytes: longer than a record.
        ctrl = "\x01" * 150
        command = ("command = @TESTCHILD@ --report @REPORTS@\n    '" + ctrl + "\n" +
                   "".join("    " + ctrl + "\n" for _ in range(48)) + "    " + ctrl + "'\n")
        env = ("environment = 'BIG=" + "x" * 150 + "\n" +
               "".join("    " + "x" * 150 + "\n" for _ in range(148)) + "    " + "x" * 150 + "'\n")
        b = self.batond("[service:long]\n" + command + env)
        first = list(b.wait_reports(1).values())[0]
        word = " ".join([ctrl] * 50)
        self.assertEqual(first["argv"][-1], word)
        self.assertEqual(len(first["env"]["BIG"]), 150 * 150 + 149)
        shown = b.service("long")["command"]
        self.assertTrue(shown.endswith("..."), shown[-10:])
        self.assertLessEqual(len(shown.encode()), 2048 + 3)
        second = self.reexec_then_restart(b, "long", first)
        self.assertEqual(second["argv"], first["argv"])
        self.assertEqual(second["env"]["BIG"], first["env"]["BIG"])
        self.assert_exits_cleanly(b)

    def test_sigusr2(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --report @REPORTS@
""")
        pid = list(b.wait_reports(1))[0]
        b.signal(signal.SIGUSR2)
        b.wait_log("resumed after a re-exec")
        self.assertEqual([p["pid"] for p in b.procs("svc")], [pid])
        self.assert_exits_cleanly(b)

    def test_missing_binary_leaves_batond_running(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --report @REPORTS@
""", start=False)
        copy = start_copy(b)
        pid = list(b.wait_reports(1))[0]
        os.unlink(copy)
        r = b.ctl("reexec")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exec %s: No such file or directory" % copy, r.stderr)
        self.assertEqual(b.ctl("status").returncode, 0)
        self.assertEqual([p["pid"] for p in b.procs("svc")], [pid])
        b.wait_log("re-exec failed, batond goes on as it was")
        self.assert_exits_cleanly(b)

    def test_a_new_binary_at_the_path_is_the_one_run(self):
        b = self.batond("[service:svc]\ncommand = @TESTCHILD@\n", start=False)
        copy = start_copy(b)
        new_inode = install(copy, harness.BATOND)
        self.assertNotEqual(os.stat("/proc/%d/exe" % b.pid).st_ino, new_inode)
        self.assertEqual(b.ctl("reexec").returncode, 0)
        self.assertEqual(os.stat("/proc/%d/exe" % b.pid).st_ino, new_inode)
        self.assert_exits_cleanly(b)

    def test_a_binary_that_cannot_resume_hands_the_services_back(self):
        b = self.batond("""
[socket:http]
listen = tcp:127.0.0.1:0

[service:svc]
command = @TESTCHILD@ --report @REPORTS@
sockets = http
""", start=False)
        copy = start_copy(b)
        pid = list(b.wait_reports(1))[0]
        before, fds = b.status(), harness.own_fds(b.pid)
        old_inode = os.stat("/proc/%d/exe" % b.pid).st_ino
        # A new version that finds no state where it looks: it cannot resume.
        install(copy, text="#!/bin/sh\nBATON_STATE_FD=-1 exec %s \"$@\"\n" % harness.BATOND)
        r = b.ctl("reexec")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("the new batond could not resume: the one before took the services back",
                      r.stderr)
        self.assertIsNone(b.proc.poll(), "batond must go on")
        self.assertEqual(os.stat("/proc/%d/exe" % b.pid).st_ino, old_inode)
        self.assertTrue(same_state(before, b.status()), "the services must be as they were")
        self.assertEqual(harness.own_fds(b.pid), fds, "the same fds, no more")
        b.wait_log("the new batond could not resume: batond %s took the services back"
                   % subprocess.run([harness.BATOND, "--version"], capture_output=True,
                                    text=True).stdout.split()[-1])
        socket.create_connection(("127.0.0.1", b.port("http")), timeout=5).close()
        # A binary that works, installed at the same path, is the next one run.
        new_inode = install(copy, harness.BATOND)
        self.assertEqual(b.ctl("reexec").returncode, 0)
        self.assertEqual(os.stat("/proc/%d/exe" % b.pid).st_ino, new_inode)
        self.assertEqual([p["pid"] for p in b.procs("svc")], [pid])
        self.assert_exits_cleanly(b)

    def test_refused_during_an_upgrade(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --delay-ms 3000 --notify READY=1
ready = notify
""")
        poll(lambda: b.procs("svc", "starting"), what="a starting process")
        b.write_config(b.expand("[service:svc]\ncommand = @TESTCHILD@ --delay-ms 3000 "
                                "--notify READY=1\nready = notify\n"))
        self.assertEqual(b.ctl("upgrade", "svc").returncode, 0)
        r = b.ctl("reexec")
        self.assertEqual(r.returncode, 1)
        self.assertIn("an upgrade is in progress: svc", r.stderr)


STATE_V2 = os.path.join(harness.SOURCE_ROOT, "tests", "data", "state", "v2.state")

# The configuration the state of tests/data/state/v2.state was written with.
V2_CONFIG = """[socket:http]
listen = tcp:127.0.0.1:0

[service:web]
command = sh -c 'echo >&5; exec sleep 1000'
sockets = http
instances = 2
ready = fd:5
stop_grace = 30s
stop_delay = 100ms
environment = GREETING="hello world" EMPTY=
upgrade = rolling:1
max_draining = 3
forward_signals = HUP USR1

[service:worker]
command = sleep 1000
instances = 1
restart = on-failure
stop_signal = INT
"""


class StateFromBefore:
    """
    Starts batond as a re-exec of the batond that wrote a state of version 2
    (tests/data/state/v2.state, as batond 0.1.0 wrote it, its fds, pids and
    times filled in): its sockets are opened here and passed on, and its
    processes are started by the process that then becomes batond, so that
    they are batond's children as they would be after a re-exec.
    """

    def __init__(self, b):
        self.b = b
        self.http = socket.socket()
        self.http.bind(("127.0.0.1", 0))
        self.http.listen(128)
        self.control = self.unix(socket.SOCK_STREAM, b.control)
        self.control.listen(128)
        self.notify = self.unix(socket.SOCK_DGRAM, os.path.join(b.dir, "control-notify.sock"))
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.state = os.memfd_create("baton-state", 0)
        self.pids_r, self.pids_w = os.pipe()

    def unix(self, kind, path):
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(path)
        return s

    def fill(self, pids):
        now = time.monotonic()
        values = {"CONFIG": self.b.config_path, "CONTROL": self.b.control,
                  "NOTIFY": self.notify.getsockname(), "CONTROL_FD": self.control.fileno(),
                  "NOTIFY_FD": self.notify.fileno(), "LISTENER_FD": self.http.fileno(),
                  "BOUND": "127.0.0.1:%d" % self.http.getsockname()[1],
                  "T0": "%.6f" % (now - 60), "T1": "%.6f" % (now - 1),
                  "KILL_AT": "%.6f" % (now + 2), "PROBE_AT": "%.6f" % (now + 1.9)}
        values.update(pids)
        text = harness.read(STATE_V2)
        for key, value in values.items():
            text = text.replace("@%s@" % key, str(value))
        return text

    @staticmethod
    def spawn(*argv):
        """Starts a process in a session of its own, as batond does; returns its pid."""
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.execvp(argv[0], list(argv))
            finally:
                os._exit(127)
        return pid

    def before_exec(self):
        """In the process about to become batond: its processes, then its state."""
        pids = {"WEB0": self.spawn("sleep", "1000"), "WEB1": self.spawn("sleep", "1000"),
                "DRAINING": self.spawn("sh", "-c", "trap '' TERM; exec sleep 1000"),
                "WORKER": self.spawn("sleep", "1000")}
        os.write(self.state, self.fill(pids).encode())
        os.lseek(self.state, 0, os.SEEK_SET)
        os.write(self.pids_w, (" ".join("%s=%d" % kv for kv in pids.items())).encode())

    def start(self):
        b = self.b
        b.env["BATON_STATE_FD"] = str(self.state)
        keep = [self.http.fileno(), self.control.fileno(), self.notify.fileno(), self.state]
        b.logfile = open(b.log_path, "ab")
        b.proc = subprocess.Popen([harness.BATOND, "-v", "-c", b.config_path, "-s", b.control],
                                  stdout=b.logfile, stderr=b.logfile, env=b.env,
                                  pass_fds=keep, preexec_fn=self.before_exec)
        del b.env["BATON_STATE_FD"]
        os.close(self.pids_w)
        pids = dict(kv.split("=") for kv in os.read(self.pids_r, 4096).decode().split())
        os.close(self.pids_r)
        for s in (self.http, self.control, self.notify):
            s.close()
        os.close(self.state)
        return {k: int(v) for k, v in pids.items()}


@unittest.skipIf(harness.VALGRIND, "the state's processes are started outside valgrind")
class StateVersionTest(harness.TestCase):
    def resume_v2(self):
        b = self.batond(V2_CONFIG, start=False)
        pids = StateFromBefore(b).start()
        poll(lambda: b.proc.poll() is not None or b.ctl("version").returncode == 0,
             what="batond to answer")
        self.assertIsNone(b.proc.poll(), b.log())
        return b, pids

    def test_a_state_of_the_version_before_is_resumed(self):
        b, pids = self.resume_v2()
        b.wait_log("resumed after a re-exec: 4 processes")
        st = b.status()
        web = [s for s in st["services"] if s["name"] == "web"][0]
        self.assertEqual((web["state"], web["gen"], web["upgrades"], web["rollbacks"],
                          web["restarts"], web["kills"]), ("running", 2, 1, 1, 4, 2))
        self.assertEqual(st["daemon"]["orphans"], 3)
        draining = b.procs("web", "stopping")
        self.assertEqual([(p["pid"], p["gen"], p["role"]) for p in draining],
                         [(pids["DRAINING"], 1, "draining")])
        self.assertLess(draining[0]["kill_in"], 2.5)
        ready = sorted(p["pid"] for p in b.procs("web", "ready"))
        self.assertEqual(ready, sorted([pids["WEB0"], pids["WEB1"]]))
        self.assertEqual([p["pid"] for p in b.procs("worker", "ready")], [pids["WORKER"]])
        self.assertEqual(st["sockets"][0]["bound"], "127.0.0.1:%d" % b.port("http"))
        # The draining process ignores SIGTERM: SIGKILL at the deadline the state gave.
        b.wait_log("[%d] gen 1: killed by signal 9 (KILL)" % pids["DRAINING"], timeout=10)

    def test_the_definitions_of_the_version_before_run_and_stop(self):
        b, pids = self.resume_v2()
        port = b.port("http")
        # gen 3 runs the command and environment the state carried, byte for byte.
        r = b.ctl("upgrade", "--wait", "web")
        self.assertEqual(r.returncode, 0, r.stderr + b.log())
        new = [p for p in b.procs("web", "ready") if p["gen"] == 3]
        self.assertEqual(len(new), 2)
        with open("/proc/%d/environ" % new[0]["pid"], "rb") as f:
            env = f.read().split(b"\0")
        self.assertIn(b"GREETING=hello world", env)
        self.assertIn(b"EMPTY=", env)
        self.assertIn(b"LISTEN_FDNAMES=http", env)
        poll(lambda: not alive(pids["WEB0"]) and not alive(pids["WEB1"]),
             what="gen 2 to drain")
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # worker's stop_signal is INT, as its definition said.
        self.assertEqual(b.ctl("stop", "--wait", "worker").returncode, 0)
        b.wait_log("worker[%d] gen 1: stopped: killed by signal 2 (INT)" % pids["WORKER"])
        # Written again, as version 3, and read back: nothing changes.
        before = b.status()
        self.assertEqual(b.ctl("reexec").returncode, 0)
        self.assertTrue(same_state(before, b.status()))
        self.assert_exits_cleanly(b)

    def test_a_state_of_an_unknown_version_is_refused(self):
        b = self.batond(V2_CONFIG, start=False)
        state = os.memfd_create("baton-state", 0)
        os.write(state, b"baton-state 9\ndaemon\nend\n")
        os.lseek(state, 0, os.SEEK_SET)
        env = dict(b.env, BATON_STATE_FD=str(state))
        r = subprocess.run([harness.BATOND, "-c", b.config_path, "-s", b.control], env=env,
                           pass_fds=[state], capture_output=True, text=True, timeout=10)
        os.close(state)
        self.assertEqual(r.returncode, 1)
        self.assertIn("re-exec: the state is not of a version this batond reads", r.stderr)


if __name__ == "__main__":
    harness.main()
