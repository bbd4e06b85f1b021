#!/usr/bin/env python3
"""Readiness, upgrades, rollback and drains, with testchild as the service."""

import os
import socket
import time

import harness
from harness import alive, poll


def notify_path(b):
    return b.control[:-len(".sock")] + "-notify.sock"


def pids(b, name, role=None):
    return {p["pid"] for p in b.procs(name) if role is None or p["role"] == role}


class ReadinessTest(harness.TestCase):
    def test_notify_ready_and_status(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --notify "STATUS=warming up" --delay-ms 400 --notify 'READY=1\\nSTATUS=serving'
ready = notify
""")
        st = poll(lambda: (lambda st: [p for p in st["procs"] if p.get("status") == "warming up"]
                           and st)(b.status("svc")), what="STATUS=warming up")
        self.assertEqual(st["procs"][0]["state"], "starting")
        self.assertEqual(st["services"][0]["state"], "starting")
        proc = poll(lambda: [p for p in b.procs("svc", "ready")], what="READY=1")[0]
        self.assertEqual(proc["status"], "serving")
        self.assertGreaterEqual(proc["ready_after"], 0.4)
        self.assertEqual(b.service("svc")["state"], "running")

    def test_notify_from_strangers_is_ignored(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --notify-from-child READY=1 --report @REPORTS@
ready = notify
ready_timeout = 10s
""")
        report = list(b.wait_reports(1).values())[0]
        self.assertEqual(report["env"]["NOTIFY_SOCKET"], notify_path(b))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1", notify_path(b))
        b.wait_log("notify: ignored a message from pid")
        time.sleep(0.2)
        self.assertEqual([p["state"] for p in b.procs("svc")], ["starting"])

    def test_mainpid_hands_over_the_main_process(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --hand-over --report @REPORTS@ --log @DIR@/log
ready = notify
""")
        child = list(b.wait_reports(1))[0]
        proc = poll(lambda: b.procs("svc", "ready"), what="READY=1 with MAINPID")[0]
        self.assertEqual(proc["pid"], child)
        b.wait_log("main process is now %d (MAINPID)" % child)
        time.sleep(0.4)
        self.assertEqual([(p["pid"], p["state"]) for p in b.procs("svc")], [(child, "ready")])
        self.assertEqual(b.ctl("stop", "--wait", "svc").returncode, 0)
        self.assertIn("%d term" % child, harness.read(os.path.join(b.dir, "log")))
        self.assertFalse(alive(child))

    def test_mainpid_of_a_stranger_is_refused(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --notify MAINPID=1 --report @REPORTS@
ready = notify
""")
        pid = list(b.wait_reports(1))[0]
        b.wait_log("MAINPID=1 ignored: not a process of this service")
        self.assertEqual([p["pid"] for p in b.procs("svc")], [pid])

    def test_ready_timeout_replaces_the_process(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --report @REPORTS@
ready = notify
ready_timeout = 300ms
restart_delay = 50ms
""")
        first = list(b.wait_reports(1))[0]
        b.wait_log("not ready after 300ms (ready_timeout)")
        poll(lambda: not alive(first), what="the unready process to be stopped")
        b.wait_reports(2)

    def test_fd_readiness(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --delay-ms 300 --ready-fd 5 --report @REPORTS@
ready = fd:5
""")
        report = list(b.wait_reports(1).values())[0]
        self.assertIn("5", report["fds"])
        self.assertTrue(report["fds"]["5"].startswith("pipe:"))
        self.assertEqual(sorted(report["fds"]), ["0", "1", "2", "5"])
        proc = poll(lambda: b.procs("svc", "ready"), what="fd readiness")[0]
        self.assertGreaterEqual(proc["ready_after"], 0.3)

    @harness.timing
    def test_delay_readiness(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@
ready = delay:1s
""")
        poll(lambda: b.procs("svc", "starting"), what="a starting process")
        proc = poll(lambda: b.procs("svc", "ready"), what="the delay to pass")[0]
        self.assertGreaterEqual(proc["ready_after"], 1.0)
        self.assertLess(proc["ready_after"], 1.0 + 0.1 * harness.SLOW)


UPGRADABLE = """
[socket:http]
listen = tcp:127.0.0.1:0

[service:svc]
sockets = http
command = @TESTCHILD@ --delay-ms %(delay)d --notify READY=1 --report @REPORTS@ --log @DIR@/log
ready = notify
ready_timeout = %(timeout)s
instances = %(instances)d
upgrade = %(mode)s
stop_grace = %(grace)s
"""


def upgradable(delay=50, timeout="10s", instances=3, mode="all", grace="10s"):
    return UPGRADABLE % dict(delay=delay, timeout=timeout, instances=instances, mode=mode,
                             grace=grace)


class UpgradeTest(harness.TestCase):
    def test_upgrade_all(self):
        b = self.batond(upgradable())
        b.wait_service("svc", "running")
        old = pids(b, "svc")
        r = b.ctl("upgrade", "--wait", "svc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("svc: upgraded to gen 2", r.stdout)
        new = pids(b, "svc", "current")
        self.assertEqual(len(new), 3)
        self.assertFalse(old & new)
        poll(lambda: not any(alive(p) for p in old), what="the old generation to exit")
        svc = b.wait_service("svc", "running")
        self.assertEqual((svc["gen"], svc["upgrades"]), (2, 1))
        for pid, report in b.reports_of().items():
            if pid in new:
                self.assertEqual(report["env"]["BATON_GENERATION"], "2")
                self.assertEqual(report["env"]["SERVER_STARTER_GENERATION"], "2")

    def test_rolling_never_drops_below_instances(self):
        b = self.batond(upgradable(delay=150, mode="rolling:1"))
        b.wait_service("svc", "running")
        r = b.ctl("upgrade", "svc")
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = []
        deadline = time.monotonic() + 10 * harness.SLOW
        while time.monotonic() < deadline:
            st = b.status("svc")
            ready = [p for p in st["procs"] if p["state"] == "ready"]
            seen.append((len(ready), st["services"][0]["state"]))
            if st["services"][0]["state"] == "running" and st["services"][0]["gen"] == 2:
                break
            time.sleep(0.01)
        self.assertEqual(b.service("svc")["gen"], 2)
        self.assertGreaterEqual(min(n for n, _ in seen), 3, seen)
        self.assertIn("upgrading", [s for _, s in seen])

    def test_upgrade_rereads_the_definition(self):
        b = self.batond(upgradable(instances=1))
        b.wait_service("svc", "running")
        b.write_config(upgradable(instances=2) + "environment = RELEASE=two\n")
        r = b.ctl("upgrade", "--wait", "svc")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = pids(b, "svc", "current")
        self.assertEqual(len(new), 2)
        reports = b.wait_reports(3)
        for pid in new:
            self.assertEqual(reports[pid]["env"]["RELEASE"], "two")

    def test_invalid_config_changes_nothing(self):
        b = self.batond(upgradable(instances=1))
        b.wait_service("svc", "running")
        old = pids(b, "svc")
        b.write_config(upgradable(instances=1) + "bogus = 1\n")
        r = b.ctl("upgrade", "svc")
        self.assertEqual(r.returncode, 1)
        self.assertIn("baton.conf:13: bogus: unknown key in [service:NAME]", r.stderr)
        self.assertEqual(pids(b, "svc"), old)
        self.assertEqual(b.service("svc")["gen"], 1)

    def test_second_upgrade_is_refused_while_one_runs(self):
        b = self.batond(upgradable(instances=1))
        b.wait_service("svc", "running")
        b.write_config(upgradable(instances=1, delay=2000))
        self.assertEqual(b.ctl("upgrade", "svc").returncode, 0)
        r = b.ctl("upgrade", "svc")
        self.assertEqual(r.returncode, 1)
        self.assertIn("an upgrade of svc to gen 2 is already in progress", r.stderr)
        self.assertEqual(b.ctl("upgrade", "--wait", "nosuch").returncode, 1)

    def test_upgrade_of_a_stopped_service_is_refused(self):
        b = self.batond(upgradable(instances=1))
        b.ctl("stop", "--wait", "svc")
        r = b.ctl("upgrade", "svc")
        self.assertEqual(r.returncode, 1)
        self.assertIn("svc is stopped; start it first", r.stderr)


class RollbackTest(harness.TestCase):
    def rollback(self, new_command, reason, timeout="10s", mode="all"):
        b = self.batond(upgradable(timeout=timeout, mode=mode))
        b.wait_service("svc", "running")
        old = pids(b, "svc")
        b.write_config(upgradable(timeout=timeout, mode=mode).replace(
            "command = @TESTCHILD@ --delay-ms 50 --notify READY=1", "command = " + new_command))
        r = b.ctl("upgrade", "--wait", "svc")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("upgrade to gen 2 rolled back", r.stderr)
        self.assertIn(reason, r.stderr)
        poll(lambda: pids(b, "svc") == old, what="only the old processes to remain")
        svc = b.service("svc")
        self.assertEqual((svc["gen"], svc["state"], svc["rollbacks"]), (1, "running", 1))
        self.assertIn(reason, svc["reason"])
        return b

    def test_new_process_exits_at_once(self):
        self.rollback(harness.TESTCHILD + " --exit 1", "exited with status 1 before it was ready")

    def test_new_process_never_ready(self):
        self.rollback(harness.TESTCHILD, "not ready after 500ms (ready_timeout)", timeout="500ms")

    def test_new_binary_missing(self):
        self.rollback("/nonexistent/new-app",
                      "exec /nonexistent/new-app: No such file or directory")

    def test_rolling_rollback(self):
        self.rollback(harness.TESTCHILD + " --exit 1", "before it was ready", mode="rolling:1")

    def test_after_a_rollback_the_next_upgrade_works(self):
        b = self.rollback(harness.TESTCHILD + " --exit 1", "before it was ready")
        b.write_config(upgradable())
        r = b.ctl("upgrade", "--wait", "svc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(b.service("svc")["gen"], 3)


class DrainTest(harness.TestCase):
    @harness.timing
    def test_old_process_ignoring_term_is_killed_at_grace(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
instances = 1
stop_grace = 400ms
""")
        old = list(b.wait_reports(1))[0]
        w = self.watch(b, "watch", "svc")
        w.read_until(lambda o: o.get("type") == "proc")
        r = b.ctl("upgrade", "svc")
        self.assertEqual(r.returncode, 0)
        self.assert_killed_at_grace(w, old, 0.4)
        self.assertFalse(alive(old))
        svc = b.wait_service("svc", "running")
        self.assertEqual((svc["gen"], svc["kills"]), (2, 1))
        self.assertEqual(len(b.procs("svc", "ready")), 1)

    @harness.timing
    def test_each_draining_generation_keeps_its_deadline(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 1s
max_draining = 2
""")
        gen1 = list(b.wait_reports(1))[0]
        w = self.watch(b, "watch", "svc")
        w.read_until(lambda o: o.get("type") == "proc")
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        gen2 = (pids(b, "svc", "current") - {gen1}).pop()
        time.sleep(0.4)
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        roles = {p["pid"]: (p["role"], p["gen"]) for p in b.procs("svc")}
        self.assertEqual(roles[gen1], ("draining", 1))
        self.assertEqual(roles[gen2], ("draining", 2))
        self.assert_killed_at_grace(w, gen1, 1.0)
        self.assertTrue(alive(gen2), "gen 2 must keep its own, later deadline")
        self.assert_killed_at_grace(w, gen2, 1.0)
        poll(lambda: not alive(gen2), what="gen 2 to end")

    def test_max_draining_kills_the_oldest(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --ignore-term --report @REPORTS@
stop_grace = 5s
max_draining = 1
""")
        gen1 = list(b.wait_reports(1))[0]
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        self.assertTrue(alive(gen1))
        # Ready is not yet ignoring SIGTERM: its report, written after, says it does.
        b.wait_reports(2)
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        poll(lambda: not alive(gen1), timeout=1, what="gen 1 to be killed past max_draining")
        b.wait_log("more than max_draining = 1 generations draining: killing gen 1 now")
        # Killed, then reaped: only gen 2 drains.
        poll(lambda: [p["gen"] for p in b.procs("svc") if p["role"] == "draining"] == [2],
             what="gen 2 alone to drain")

    def test_stop_delay_before_the_signal(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --log @DIR@/log --report @REPORTS@
stop_delay = 300ms
""")
        pid = list(b.wait_reports(1))[0]
        t0 = time.monotonic()
        b.ctl("stop", "svc")
        st = poll(lambda: b.procs("svc"), what="the stopping process")[0]
        self.assertEqual(st["state"], "stopping")
        self.assertNotIn("kill_in", st, "no signal yet: still in stop_delay")
        poll(lambda: not alive(pid), what="the process to stop")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertIn("%d term" % pid, harness.read(os.path.join(b.dir, "log")))


if __name__ == "__main__":
    harness.main()
