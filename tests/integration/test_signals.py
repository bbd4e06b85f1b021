#!/usr/bin/env python3
"""batond's own signals and its duties as a reaper."""

import signal
import time

import harness
from harness import alive, children_of, poll


class ShutdownTest(harness.TestCase):
    def check_shutdown(self, sig):
        b = self.batond("""
[service:a]
command = @TESTCHILD@ --report @REPORTS@
instances = 2

[service:b]
command = @TESTCHILD@ --report @REPORTS@ --term-exit-ms 200
""")
        pids = list(b.wait_reports(3))
        b.signal(sig)
        self.assertEqual(b.wait_exit(), 0, b.log())
        self.assertFalse([pid for pid in pids if alive(pid)])
        self.assertEqual(children_of(b.pid), {})
        b.wait_log("every service has stopped; exiting")

    def test_sigterm_stops_everything_and_exits_0(self):
        self.check_shutdown(signal.SIGTERM)

    def test_sigint_too(self):
        self.check_shutdown(signal.SIGINT)

    def test_shutdown_waits_out_the_grace_then_kills(self):
        b = self.batond("""
[service:stubborn]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 300ms
""")
        pid = list(b.wait_reports(1))[0]
        t0 = time.monotonic()
        b.signal(signal.SIGTERM)
        # Signals of one kind do not queue: send the second once the first is seen.
        b.wait_log("shutting down")
        b.signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(), 0)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, 0.3 + 0.5 * harness.SLOW)
        self.assertFalse(alive(pid))
        self.assertIn("already shutting down", b.log())
        self.assertIn("its cleanup did not run", b.log())


class OtherSignalsTest(harness.TestCase):
    def test_other_signals_do_not_kill_batond(self):
        b = self.batond("""
[service:a]
command = @TESTCHILD@ --report @REPORTS@
""")
        pid = list(b.wait_reports(1))[0]
        for sig, logged in ((signal.SIGUSR1, "received SIGUSR1: ignored"),
                            (signal.SIGQUIT, "received SIGQUIT: ignored"),
                            (signal.SIGHUP, "received SIGHUP: reloading"),
                            (signal.SIGUSR2, "resumed after a re-exec"),
                            (signal.SIGWINCH, None), (signal.SIGALRM, None)):
            b.signal(sig)
            if logged:
                b.wait_log(logged)
        self.assertIsNone(b.proc.poll())
        self.assertTrue(alive(pid))
        self.assertEqual([p["pid"] for p in b.procs("a")], [pid])
        self.assert_exits_cleanly(b)

    def test_forward_signals(self):
        b = self.batond("""
[service:a]
command = @TESTCHILD@ --log @DIR@/a.log
forward_signals = HUP USR2

[service:b]
command = @TESTCHILD@ --log @DIR@/b.log
""")
        poll(lambda: " start " in harness.read(b.dir + "/b.log"), what="b to start")
        b.signal(signal.SIGHUP)
        poll(lambda: " hup " in harness.read(b.dir + "/a.log"), what="SIGHUP to reach a")
        self.assertNotIn(" hup ", harness.read(b.dir + "/b.log"))
        self.assertNotIn("reloading", b.log(), "a forwarded SIGHUP does not also reload")
        self.assertEqual(b.ctl("reload").returncode, 0, "batonctl still reloads")


class ReaperTest(harness.TestCase):
    def test_orphaned_grandchild_is_reaped(self):
        b = self.batond("""
[service:parent]
command = @TESTCHILD@ --report @REPORTS@ --orphan-ms 700
""")
        service_pid = list(b.wait_reports(1))[0]
        # The grandchild's parent died: it now belongs to batond, the subreaper.
        orphans = poll(lambda: [p for p in children_of(b.pid) if p != service_pid],
                       what="the orphan to be reparented to batond")
        self.assertEqual(len(orphans), 1)
        poll(lambda: orphans[0] not in children_of(b.pid), what="the orphan to be reaped")
        self.assertNotIn("Z", children_of(b.pid).values())
        b.wait_log("reaped orphan %d: exited with status 0" % orphans[0])
        self.assertEqual(b.service("parent")["state"], "running")
        self.assert_exits_cleanly(b)


if __name__ == "__main__":
    harness.main()
