#!/usr/bin/env python3
"""Process lifecycle: stop escalation, restarts with backoff, crash loops, exec errors."""

import os
import subprocess
import time

import harness
from harness import alive, poll


def starts(path):
    """Reads a testchild --log file: the monotonic times of each start."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [float(line.split()[2]) for line in f if line.split()[1] == "start"]


class StopTest(harness.TestCase):
    @harness.timing
    def test_sigkill_lands_at_stop_grace(self):
        b = self.batond("""
[service:stubborn]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 500ms
""")
        pid = list(b.wait_reports(1))[0]
        w = self.watch(b, "stop", "--wait", "stubborn")
        self.assert_killed_at_grace(w, pid, 0.5)
        self.assertTrue(w.read_until(lambda o: "ok" in o)["ok"])
        self.assertFalse(alive(pid))
        svc = b.wait_service("stubborn", "stopped")
        self.assertEqual(svc["kills"], 1)
        b.wait_log("killed by signal 9 (KILL) holding 0 connections after its 500ms stop_grace: "
                   "its cleanup did not run")

    def test_stop_ends_when_the_process_exits(self):
        b = self.batond("""
[service:polite]
command = @TESTCHILD@ --term-exit-ms 100 --report @REPORTS@
stop_grace = 30s
""")
        pid = list(b.wait_reports(1))[0]
        t0 = time.monotonic()
        b.ctl("stop", "polite")
        poll(lambda: not alive(pid), timeout=5, what="the process to exit")
        b.wait_service("polite", "stopped", timeout=2)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(b.service("polite")["kills"], 0)
        b.wait_log("stopped: exited with status 0")

    def test_stop_wait_returns_when_stopped(self):
        b = self.batond("""
[service:polite]
command = @TESTCHILD@ --term-exit-ms 300 --report @REPORTS@
instances = 3
""")
        b.wait_reports(3)
        r = b.ctl("stop", "--wait", "polite")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("polite: stopped", r.stdout)
        self.assertEqual(b.procs("polite"), [])

    def test_start_stop_restart(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --report @REPORTS@
instances = 2
""")
        b.wait_service("svc", "running")
        first = {p["pid"] for p in b.procs("svc")}
        self.assertEqual(b.ctl("stop", "svc").returncode, 0)
        b.wait_service("svc", "stopped")
        self.assertFalse(any(alive(pid) for pid in first))
        self.assertEqual(b.ctl("start", "svc").returncode, 0)
        svc = b.wait_service("svc", "running")
        self.assertEqual(svc["gen"], 2)
        second = {p["pid"] for p in b.procs("svc")}
        self.assertEqual(b.ctl("restart", "svc").returncode, 0)
        svc = poll(lambda: b.service("svc")["gen"] == 3 and b.service("svc")["state"] == "running"
                   and b.service("svc"), what="a restarted generation")
        third = {p["pid"] for p in b.procs("svc")}
        self.assertFalse(second & third)
        self.assertEqual(len(third), 2)
        self.assertEqual(b.ctl("start", "svc").returncode, 0, "start of a running service is a no-op")
        self.assertEqual({p["pid"] for p in b.procs("svc")}, third)


class RestartTest(harness.TestCase):
    def test_crash_is_restarted_with_growing_delays(self):
        b = self.batond("""
[service:crashy]
command = @TESTCHILD@ --log @DIR@/starts --exit-after-ms 20 --exit 1
restart_delay = 100ms
restart_delay_max = 400ms
start_limit = none
""")
        log = os.path.join(b.dir, "starts")
        times = poll(lambda: len(starts(log)) >= 6 and starts(log), timeout=10,
                     what="six starts")
        gaps = [b2 - a for a, b2 in zip(times, times[1:])]
        # Each gap is the 20 ms run plus the delay: 100, 200, 400, 400, 400 ms.
        for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.4, 0.4]):
            self.assertGreaterEqual(gap, delay + 0.02, gaps)
            self.assertLess(gap, delay + 0.02 + 0.15 * harness.SLOW, gaps)
        svc = b.service("crashy")
        self.assertGreaterEqual(svc["restarts"], 5)
        b.wait_log("exited with status 1; restarting in")

    def test_crash_loop_fails_the_service(self):
        b = self.batond("""
[service:loop]
command = @TESTCHILD@ --exit 3
restart_delay = 10ms
start_limit = 3/10s
""")
        svc = b.wait_service("loop", "failed")
        self.assertIn("crash loop", svc["reason"])
        self.assertIn("exited with status 3", svc["reason"])
        self.assertEqual(svc["restarts"], 3)
        out = b.ctl("status", "loop").stdout
        self.assertIn("failed", out)
        self.assertIn("crash loop", out)
        # It stays failed: nothing restarts it until it is started again.
        time.sleep(0.3)
        self.assertEqual(b.service("loop")["state"], "failed")
        self.assertEqual(b.ctl("start", "loop").returncode, 0)
        self.assertIn(b.service("loop")["state"], ("starting", "running", "failed"))
        b.wait_service("loop", "failed")

    def test_exec_failure_is_reported(self):
        b = self.batond("""
[service:missing]
command = /nonexistent/app --flag
restart_delay = 10ms
start_limit = 2/10s
""")
        svc = b.wait_service("missing", "failed")
        self.assertIn("exec /nonexistent/app: No such file or directory", svc["reason"])
        self.assertNotIn("127", svc["reason"])
        b.wait_log("exec /nonexistent/app: No such file or directory")

    def test_exec_failure_without_permission(self):
        b = self.batond("""
[service:noexec]
command = @DIR@/script
restart = never
""", start=False)
        with open(os.path.join(b.dir, "script"), "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(os.path.join(b.dir, "script"), 0o644)
        b.start()
        svc = b.wait_service("noexec", "failed")
        self.assertIn("exec %s/script: Permission denied" % b.dir, svc["reason"])

    def test_exec_error_shows_in_status_while_retrying(self):
        b = self.batond("""
[service:missing]
command = nonexistent-program-name
restart_delay = 1s
""")
        # The error shows as soon as the child reports it, then while it waits.
        proc = poll(lambda: [p for p in b.procs("missing")
                             if p.get("error") and p["state"] == "waiting"], what="an error")[0]
        self.assertEqual(proc["error"], "exec nonexistent-program-name: No such file or directory")

    def test_lost_instances_degrade_and_start_brings_them_back(self):
        b = self.batond("""
[service:pair]
command = @TESTCHILD@ --report @REPORTS@
instances = 2
restart = never
""")
        first = b.wait_reports(2)
        victim = sorted(first)[0]
        os.kill(victim, 9)
        svc = b.wait_service("pair", "degraded")
        self.assertEqual(svc["ready"], 1)
        self.assertIn("killed by signal 9 (KILL); restart = never", svc["reason"])
        self.assertEqual(b.ctl("start", "pair").returncode, 0)
        b.wait_service("pair", "running")
        self.assertEqual(len(b.procs("pair")), 2)
        self.assertEqual(b.service("pair")["gen"], 1)

    def test_stop_wait_ends_when_started_again(self):
        b = self.batond("""
[service:slow]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 3s
""")
        b.wait_reports(1)
        waiter = subprocess.Popen([harness.BATONCTL, "-s", b.control, "stop", "--wait", "slow"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        poll(lambda: b.service("slow")["state"] == "stopping", what="the stop to begin")
        self.assertEqual(b.ctl("start", "slow").returncode, 0)
        out, err = waiter.communicate(timeout=2 * harness.SLOW)
        self.assertEqual(waiter.returncode, 1)
        self.assertIn("the service was started again", err)

    def test_restart_never_and_on_failure(self):
        b = self.batond("""
[service:once]
command = @TESTCHILD@ --exit 0
restart = never

[service:fine]
command = @TESTCHILD@ --exit 0
restart = on-failure

[service:bad]
command = @TESTCHILD@ --log @DIR@/bad --exit 2
restart = on-failure
restart_delay = 10ms
start_limit = none
""")
        b.wait_service("once", "exited")
        b.wait_service("fine", "exited")
        poll(lambda: len(starts(os.path.join(b.dir, "bad"))) >= 3, what="bad to be restarted")
        failed = self.batond("""
[service:never]
command = @TESTCHILD@ --exit 4
restart = never
""")
        svc = failed.wait_service("never", "failed")
        self.assertIn("exited with status 4; restart = never", svc["reason"])


if __name__ == "__main__":
    harness.main()
