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
            self.skipTest("the example server or the load generator is not built")
        b = self.batond(test_load.config(instances=3))
        b.wait_service("web", "running")
        self.assertEqual(b.ctl("upgrade", "--wait", "web").returncode, 0)
        load = test_load.Load(b.port("http"))
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
        result, err = load.stop()
        failures = {k: result[k] for k in ("bad_status", "refused", "reset", "eof", "timeout",
                                           "other")}
        self.assertEqual(failures, dict.fromkeys(failures, 0), "%s\n%s" % (result, err))
        self.assertGreater(result["ok"], 100)
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


if __name__ == "__main__":
    harness.main()
