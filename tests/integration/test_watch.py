#!/usr/bin/env python3
"""Watching a drain: events, open connections, the live view, metrics."""

import json
import os
import socket
import sys
import time

import harness
from harness import alive, poll

HOLDER = """
[socket:http]
listen = tcp:127.0.0.1:0

[service:holder]
command = @TESTCHILD@ --accept %(close)s --log @DIR@/log --report @REPORTS@
sockets = http
stop_grace = %(grace)s
"""


Watcher = harness.Watcher


class DrainTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.sockets = []

    def tearDown(self):
        for s in self.sockets:
            s.close()
        super().tearDown()

    def hold(self, b, count):
        port = b.port("http")
        for _ in range(count):
            self.sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        log = os.path.join(b.dir, "log")
        poll(lambda: harness.read(log).count(" accept ") == count, what="the connections held")

    def test_connections_fall_to_zero_and_the_drain_ends_early(self):
        every = int(300 * harness.SLOW)
        b = self.batond(HOLDER % dict(close="--term-close-every-ms %d" % every, grace="60s"))
        pid = list(b.wait_reports(1))[0]
        self.hold(b, 5)
        w = self.watch(b, "watch", "holder")
        w.read_until(lambda o: o.get("type") == "proc")
        t0 = time.monotonic()
        self.assertEqual(b.ctl("stop", "holder").returncode, 0)
        seen = []
        while alive(pid) and time.monotonic() - t0 < 20 * harness.SLOW:
            procs = [p for p in b.procs("holder") if p["pid"] == pid]
            if procs and "conns" in procs[0]:
                seen.append(procs[0]["conns"])
            time.sleep(0.05)
        self.assertLess(time.monotonic() - t0, every * 6 / 1000 + harness.SLOW,
                        "the drain must end long before the grace")
        self.assertEqual(seen, sorted(seen, reverse=True), seen)
        self.assertGreaterEqual(seen[0], 4, seen)
        self.assertLessEqual(seen[-1], 1, seen)
        self.assertGreaterEqual(len(set(seen)), 4, "each closed connection shows: %s" % seen)
        exited = w.read_until(lambda o: o.get("kind") == "exited")
        self.assertEqual((exited["pid"], exited["exit"]), (pid, 0))
        self.assertLess(exited["elapsed"], every * 6 / 1000 + harness.SLOW)
        progress = [e["conns"] for e in w.events("progress") if "conns" in e]
        self.assertTrue(progress and progress == sorted(progress, reverse=True), progress)
        w.read_until(lambda o: o.get("kind") == "stopped")
        self.assertEqual(b.service("holder")["kills"], 0)

    def test_a_process_that_never_closes_is_killed_with_its_connections(self):
        b = self.batond(HOLDER % dict(close="", grace="1s"))
        pid = list(b.wait_reports(1))[0]
        self.hold(b, 3)
        w = self.watch(b, "stop", "--wait", "holder")
        sigkill = w.read_until(lambda o: o.get("kind") == "sigkill")
        self.assertEqual((sigkill["pid"], sigkill["conns"]), (pid, 3))
        killed = w.read_until(lambda o: o.get("kind") == "killed")
        self.assertEqual((killed["pid"], killed["conns"], killed["signal"]), (pid, 3, "KILL"))
        self.assertGreaterEqual(killed["elapsed"], 1.0)
        final = w.read_until(lambda o: "ok" in o)
        self.assertTrue(final["ok"])
        w.proc.wait(timeout=5)
        self.assertEqual(w.proc.returncode, 0)
        b.wait_log("holding 3 connections after its 1s stop_grace: its cleanup did not run")
        self.assertEqual(b.service("holder")["kills"], 1)

    def test_connections_of_each_family_are_counted(self):
        # One walk of the kernel's TCP table serves IPv4 and IPv6 both.
        servers = [socket.create_server(("127.0.0.1", 0))]
        self.addCleanup(servers[0].close)
        try:
            servers.append(socket.create_server(("::1", 0), family=socket.AF_INET6))
        except OSError as e:
            self.skipTest("no IPv6 loopback on this machine: %s" % e)
        self.addCleanup(servers[1].close)
        b = self.batond("""
[service:client]
command = %s @DIR@/holder.py
""" % sys.executable, start=False)
        path = os.path.join(b.dir, "held.sock")
        local = socket.socket(socket.AF_UNIX)
        self.addCleanup(local.close)
        local.bind(path)
        local.listen()
        with open(os.path.join(b.dir, "holder.py"), "w") as f:
            f.write("import socket, time\n"
                    "held = [socket.create_connection(('127.0.0.1', %d)),\n"
                    "        socket.create_connection(('::1', %d))]\n"
                    "u = socket.socket(socket.AF_UNIX)\n"
                    "u.connect(%r)\n"
                    "held.append(u)\n"
                    "open(%r, 'w').close()\n"
                    "time.sleep(600)\n" % (servers[0].getsockname()[1],
                                            servers[1].getsockname()[1], path,
                                            os.path.join(b.dir, "connected")))
        b.start()
        poll(lambda: os.path.exists(os.path.join(b.dir, "connected")), what="connected")
        gens = b.status("client")["gens"]
        self.assertEqual([(g["gen"], g.get("conns")) for g in gens], [(1, 3)], gens)
        # A stream's snapshot leaves out a current generation's: counting
        # them walks the host's TCP table at the start of every --wait.
        w = self.watch(b, "watch", "client")
        gen = w.read_until(lambda o: o.get("type") == "gen")
        self.assertEqual((gen["gen"], gen["procs"], gen.get("conns")), (1, 1, None), gen)

    def test_upgrade_wait_streams_events_as_json(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --notify READY=1
ready = notify
instances = 2
""")
        b.wait_service("svc", "running")
        w = self.watch(b, "upgrade", "--wait", "svc")
        final = w.read_until(lambda o: "ok" in o)
        w.proc.wait(timeout=5)
        self.assertEqual(w.proc.returncode, 0)
        self.assertTrue(final["ok"])
        kinds = [o.get("kind") for o in w.lines if o.get("type") == "event"]
        self.assertEqual(kinds.count("spawned"), 2)
        self.assertEqual(kinds.count("ready"), 2)
        self.assertIn("upgrade", kinds)
        states = [o["state"] for o in w.events("upgrade")]
        self.assertEqual((states[0], states[-1]), ("started", "done"))
        # The state first: the service, what its generation runs, its processes.
        self.assertEqual([o["type"] for o in w.lines[:4]], ["service", "gen", "proc", "proc"])
        self.assertEqual(w.lines[1]["exe"], os.path.realpath(harness.TESTCHILD))
        result = [o for o in w.lines if o.get("type") == "upgrade"]
        self.assertEqual(result[-1]["gen"], 2)
        times = [o["t"] for o in w.lines if o.get("type") == "event"]
        self.assertEqual(times, sorted(times))

    def test_rollback_in_the_stream_and_exit_1(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@
""")
        b.wait_service("svc", "running")
        b.write_config("[service:svc]\ncommand = /nonexistent/app\n")
        w = self.watch(b, "upgrade", "--wait", "svc")
        final = w.read_until(lambda o: "ok" in o)
        w.proc.wait(timeout=5)
        self.assertEqual(w.proc.returncode, 1)
        self.assertFalse(final["ok"])
        self.assertIn("exec /nonexistent/app: No such file or directory",
                      final["error"]["message"])
        self.assertEqual(w.events("upgrade")[-1]["state"], "rolled-back")

    def test_plain_lines_when_not_a_terminal(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --term-exit-ms 200
instances = 2
""")
        b.wait_service("svc", "running")
        r = b.ctl("stop", "--wait", "svc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\x1b", r.stdout)
        self.assertEqual(r.stdout.count(": sent SIGTERM; SIGKILL in 10.0s"), 2, r.stdout)
        self.assertEqual(r.stdout.count(": exited with status 0"), 2, r.stdout)
        self.assertTrue(r.stdout.rstrip().endswith("svc: stopped (gen 0, 0/2 ready)"), r.stdout)


class TerminalTest(harness.TestCase):
    def test_live_view_redraws_in_place(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --ignore-term --notify READY=1
ready = notify
instances = 2
stop_grace = 1500ms
upgrade = rolling:1
""")
        b.wait_service("svc", "running")
        code, text = harness.on_terminal([harness.BATONCTL, "-s", b.control, "stop", "--wait",
                                          "svc"])
        self.assertEqual(code, 0, text)
        self.assertIn("\x1b[2K", text, "lines are cleared and redrawn")
        self.assertIn("\x1bF", text.replace("\x1b[3F", "\x1bF").replace("\x1b[2F", "\x1bF"),
                      "the cursor goes back up to redraw")
        self.assertIn("svc gen 1: 2 draining", text)
        self.assertIn("SIGKILL in 1.", text)
        self.assertIn("2 draining, 0 connections", text, "a progress tick counts connections")
        self.assertIn("SIGKILL in 0.", text, "the countdown moves between events")
        self.assertIn("killed: 2", text)
        self.assertIn("svc: stopped", text)


class MetricsTest(harness.TestCase):
    def test_metrics_parse_and_counters_move(self):
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            self.skipTest("python3-prometheus-client is not installed")
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --report @REPORTS@ --notify READY=1 --ignore-term
ready = notify
stop_grace = 200ms
restart_delay = 10ms
""")
        b.wait_service("svc", "running")

        def samples():
            r = b.ctl("metrics")
            self.assertEqual(r.returncode, 0, r.stderr)
            out = {}
            for family in text_string_to_metric_families(r.stdout):
                for s in family.samples:
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
            return out

        def value(m, name, **labels):
            return m[(name, tuple(sorted(dict(service="svc", **labels).items())))]

        m = samples()
        self.assertEqual(value(m, "baton_processes", state="ready"), 1)
        self.assertEqual(value(m, "baton_restarts_total"), 0)
        self.assertEqual(value(m, "baton_ready_seconds_count"), 1)
        self.assertEqual(m[("baton_build_info", (("version", "0.1.0"),))], 1)
        os.kill(list(b.wait_reports(1))[0], 9)
        poll(lambda: value(samples(), "baton_restarts_total") == 1, what="a restart counted")
        b.wait_service("svc", "running")
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
        poll(lambda: value(samples(), "baton_kills_total") == 1, what="the old process killed")
        m = samples()
        self.assertEqual(value(m, "baton_upgrades_total"), 1)
        self.assertEqual(value(m, "baton_drain_seconds_count"), 1)
        self.assertGreaterEqual(value(m, "baton_drain_seconds_sum"), 0.2)
        self.assertEqual(value(m, "baton_drain_seconds_bucket", le="0.1"), 0)
        self.assertEqual(value(m, "baton_drain_seconds_bucket", le="+Inf"), 1)
        b.write_config("[service:svc]\ncommand = /nonexistent/app\n")
        self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 1)
        self.assertEqual(value(samples(), "baton_rollbacks_total"), 1)


class SlowSubscriberTest(harness.TestCase):
    def test_a_watcher_that_does_not_read_delays_nothing(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --notify READY=1
ready = notify
instances = 4

[service:spam]
command = @TESTCHILD@ --status-spam 30000 --notify READY=1
ready = notify
start_limit = none
restart = never
""")
        b.wait_service("svc", "running")
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(b.control)
        stuck.sendall(b"watch\n")
        try:
            b.ctl("restart", "spam")
            for _ in range(5):
                t0 = time.monotonic()
                self.assertEqual(b.ctl("upgrade", "--wait", "svc").returncode, 0)
                self.assertLess(time.monotonic() - t0, 2 * harness.SLOW)
            t0 = time.monotonic()
            self.assertEqual(b.ctl("status").returncode, 0)
            self.assertLess(time.monotonic() - t0, 0.5 * harness.SLOW)
            b.wait_log("dropped a client", timeout=20)
        finally:
            stuck.close()


if __name__ == "__main__":
    harness.main()
