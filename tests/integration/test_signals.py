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
    def test_unused_signals_do_not_kill_batond(self):
        b = self.batond("""
[service:a]
command = @TESTCHILD@ --report @REPORTS@
""")
        pid = list(b.wait_reports(1))[0]
        for sig, name in ((signal.SIGHUP, "HUP"), (signal.SIGUSR1, "USR1"),
                          (signal.SIGUSR2, "USR2"), (signal.SIGALRM, None)):
            b.signal(sig)
            if name:
                b.wait_log("received SIG%s: ignored" % name)
        self.assertIsNone(b.proc.poll())
        self.assertTrue(alive(pid))
        self.assertEqual(b.ctl("status").returncode, 0)
        self.assert_exits_cleanly(b)


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
