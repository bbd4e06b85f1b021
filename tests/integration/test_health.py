#!/usr/bin/env python3
"""Health checks (ready = exec:, check = exec:) and the watchdog, on the real batond.

A check reaches one process, not the shared socket: the test server
(testhttpd --health-dir DIR) also listens on DIR/PID.sock, answering "ok",
and `testchild --check-unix DIR` is the check that connects there for
$BATON_PID. With --health-after-ms the socket opens only after a warm-up, as
a server that is up but not yet able to serve.
"""

import os
import re
import sys
import time

import harness
from harness import poll

WEB = """
[socket:http]
listen = tcp:127.0.0.1:0

[service:web]
command = @HTTPD@ --no-ready --health-dir @DIR@/health %(httpd)s
sockets = http
instances = 2
ready = exec:@TESTCHILD@ --check-unix @DIR@/health
ready_timeout = 10s
check_interval = 100ms
stop_grace = 10s
restart_delay = 100ms
%(keys)s
"""

# A check that says why it fails, the way a real one would.
FAILING = "exec:sh -c 'echo backend 10.0.0.7:5432 unreachable; exit 1'"


def web(httpd="", keys=""):
    return WEB % dict(httpd=httpd, keys=keys)


def child(keys, args="--notify READY=1"):
    """A testchild service, web, with keys."""
    return "[service:web]\ncommand = @TESTCHILD@ %s\n%s\n" % (args, keys)


class HealthTest(harness.TestCase):
    def need_load(self):
        if not os.path.exists(harness.HTTPD) or not os.path.exists(harness.LOADGEN):
            self.skipTest("the test server or the load generator is not built")

    def start(self, config, service="web", state="running", timeout=10.0):
        """batond on config, with @DIR@/health made first; waits for service to be in state."""
        b = self.batond(config, start=False)
        os.mkdir(os.path.join(b.dir, "health"))
        b.start()
        b.wait_service(service, state, timeout)
        return b

    def load(self, b):
        load = harness.Load(b.port("http"))
        self.addCleanup(lambda: load.proc.poll() is None and (load.proc.kill(), load.proc.wait()))
        poll(lambda: any(t.startswith("socket:") for t in harness.own_fds(load.proc.pid).values()),
             what="the load generator to connect")
        return load

    def stop_load(self, load, what):
        result, err = load.stop()
        print("%s: %d requests served, %d failed, in %.1fs"
              % (what, result["ok"], result["requests"] - result["ok"], result["seconds"]),
              file=sys.stderr)
        self.assert_no_failure(result, err)

    def watching(self, b):
        w = self.watch(b, "watch", "web")
        w.read_until(lambda o: o.get("type") == "proc")
        return w

    def pids(self, b, gen=None):
        return {p["pid"] for p in b.procs("web") if gen is None or p["gen"] == gen}

    @staticmethod
    def event(w, kind, pid=None, timeout=10.0, **fields):
        """The first event of kind (about pid), read already or to come, with its index."""
        def match(o):
            return (o.get("type") == "event" and o.get("kind") == kind and
                    (pid is None or o.get("pid") == pid) and
                    all(o.get(k) == v for k, v in fields.items()))
        found = w.find(match, timeout)
        return w.lines.index(found), found

    def metric(self, b, name):
        r = b.ctl("metrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r'^%s\{service="web"\} (\d+)$' % name, r.stdout, re.M)
        self.assertIsNotNone(m, "%s not in:\n%s" % (name, r.stdout))
        return int(m.group(1))

    # ---- ready = exec: ----

    def test_an_upgrade_waits_for_the_check_of_a_warming_up_server(self):
        self.need_load()
        b = self.start(web("--health-after-ms 1500"))
        for p in b.procs("web"):
            self.assertGreaterEqual(p["ready_after"], 1.5, p)
        load = self.load(b)
        w = self.watching(b)
        old = self.pids(b)
        t0 = time.monotonic()
        r = b.ctl("upgrade", "--wait", "web")
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreaterEqual(took, 1.5)
        self.event(w, "drained", gen=1)
        self.stop_load(load, "an upgrade waiting 1.5s for its check")
        new = self.pids(b, gen=2)
        self.assertEqual(len(new), 2)
        ready_at = []
        for pid in new:
            _, spawned = self.event(w, "spawned", pid)
            i, ready = self.event(w, "ready", pid)
            self.assertGreaterEqual(ready["t"] - spawned["t"], 1.5, ready)
            ready_at.append(i)
            # The check ran while it warmed up, and failed saying why.
            _, check = self.event(w, "check", pid, result="failed", readiness="yes")
            self.assertLess(check["t"], ready["t"])
            self.assertIn("%d.sock: No such file or directory" % pid, check["output"])
        for pid in old:
            i, signalled = self.event(w, "signalled", pid)
            self.assertGreater(i, max(ready_at), "gen 1 stopped before gen 2 was ready")
        status, body = harness.http_get(b.port("http"))
        self.assertTrue(body.startswith("gen=2 "), body)

    def test_a_failing_readiness_check_rolls_the_upgrade_back_quoting_it(self):
        b = self.start(child("ready = exec:true", args=""))
        old = self.pids(b)
        b.write_config(child("ready = %s\nready_timeout = 1s\ncheck_interval = 100ms" % FAILING,
                             args=""))
        r = b.ctl("upgrade", "--wait", "web")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"rolled back: web\[\d+\] gen 2: not ready after 1s "
                         r"\(ready_timeout\); its check: exited with status 1: "
                         r"backend 10\.0\.0\.7:5432 unreachable")
        poll(lambda: b.service("web")["state"] == "running" and self.pids(b) == old,
             what="gen 1 alone")
        self.assertTrue(all(harness.alive(pid) for pid in old))
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["rollbacks"], svc["restarts"]), (1, 1, 0))

    def test_a_hung_check_is_killed_with_what_it_started_at_check_timeout(self):
        b = self.start(child("ready = exec:true", args=""))
        old = self.pids(b)
        pids = os.path.join(b.dir, "check-pids")
        # The check and a process it started: both must go.
        hang = "exec:sh -c 'echo $$ >>%s; sleep 60 & echo $! >>%s; wait'" % (pids, pids)
        b.write_config(child("ready = %s\nready_timeout = 1s\ncheck_interval = 100ms\n"
                             "check_timeout = 300ms" % hang, args=""))
        r = b.ctl("upgrade", "--wait", "web")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"not ready after 1s \(ready_timeout\); its check: "
                         r"timed out after 300ms")
        started = [int(line) for line in harness.read(pids).split()]
        # Runs at 0, 0.4 and 0.8s: the last one is cut short by the rollback.
        self.assertGreaterEqual(len(started), 4, started)
        poll(lambda: not any(harness.alive(pid) for pid in started), timeout=5,
             what="every check's process to be gone")
        poll(lambda: set(harness.children_of(b.pid)) == old, what="gen 1 alone")
        self.assertEqual(self.pids(b), old)

    # ---- check = exec: ----

    def test_a_process_whose_check_fails_is_replaced_under_load(self):
        self.need_load()
        b = self.start(web(keys="check = exec:@TESTCHILD@ --check-unix @DIR@/health\n"
                                "check_failures = 2"))
        load = self.load(b)
        w = self.watching(b)
        [sick, well] = sorted(b.procs("web"), key=lambda p: p["instance"])
        # Its health socket stops answering; the process still serves.
        os.unlink(os.path.join(b.dir, "health", "%d.sock" % sick["pid"]))
        _, unhealthy = self.event(w, "unhealthy", sick["pid"])
        self.assertRegex(unhealthy["reason"], r"^check failed 2 times in a row: exited with "
                         r"status 1: connect .*/%d\.sock: No such file or directory$" % sick["pid"])
        self.assertEqual(unhealthy["replace_in"], 0.1)
        _, spawned = self.event(w, "spawned", instance=0, gen=1)
        new = spawned["pid"]
        self.assertGreaterEqual(spawned["t"] - unhealthy["t"], 0.1)
        i_ready, _ = self.event(w, "ready", new)
        i_stop, _ = self.event(w, "signalled", sick["pid"])
        self.assertGreater(i_stop, i_ready, "stopped before its replacement was ready")
        self.event(w, "exited", sick["pid"])
        self.stop_load(load, "a replacement of an unhealthy process")
        self.assertEqual(self.pids(b), {new, well["pid"]})
        svc = b.service("web")
        self.assertEqual((svc["state"], svc["ready"], svc["gen"]), ("running", 2, 1))
        self.assertEqual(self.metric(b, "baton_unhealthy_total"), 1)
        self.assertIn("web[%d] gen 1: unhealthy: check failed 2 times in a row" % sick["pid"],
                      b.log())

    def test_a_check_failing_in_every_process_fails_the_service(self):
        sick = "exec:sh -c 'test ! -e @DIR@/sick || { echo sick; exit 1; }'"
        b = self.start(child("check = %s\ncheck_interval = 100ms\ncheck_failures = 1\n"
                             "ready = notify\nrestart_delay = 50ms\nstart_limit = 3/30s" % sick))
        w = self.watching(b)
        [first] = self.pids(b)
        open(os.path.join(b.dir, "sick"), "w").close()
        svc = b.wait_service("web", "failed")
        self.assertEqual(svc["reason"], "crash loop: replaced 3 times within 30s (start_limit); "
                         "last: check failed 1 time in a row: exited with status 1: sick")
        self.event(w, "failed")
        poll(lambda: not self.pids(b), what="every process to stop")
        unhealthy = [o["pid"] for o in w.events("unhealthy")]
        spawned = [o["pid"] for o in w.events("spawned")]
        self.assertEqual(len(unhealthy), 4, unhealthy)
        self.assertEqual(unhealthy[0], first)
        self.assertEqual(spawned, unhealthy[1:])
        # Each replacement was ready before the process it replaced was stopped.
        for old, new in zip(unhealthy, unhealthy[1:]):
            self.assertLess(self.event(w, "ready", new)[0], self.event(w, "signalled", old)[0])
        self.assertEqual(self.metric(b, "baton_unhealthy_total"), 4)
        # Nothing starts again.
        time.sleep(0.5)
        self.assertEqual(b.service("web")["state"], "failed")
        self.assertEqual(self.pids(b), set())

    def test_a_check_runs_as_the_service_with_its_process_named_and_nothing_else(self):
        b = self.batond("[socket:http]\nlisten = tcp:127.0.0.1:0\n" + child(
            "sockets = http\nready = notify\nenvironment = GREETING=\"hello world\"\n"
            "directory = @DIR@\ncheck = exec:@TESTCHILD@ --report @DIR@/checks --exit 0\n"
            "check_interval = 200ms", args="--report @REPORTS@ --notify READY=1"),
            start=False)
        checks = os.path.join(b.dir, "checks")
        os.mkdir(checks)
        b.start()
        [pid] = b.wait_reports(1)
        poll(lambda: [n for n in os.listdir(checks) if n.endswith(".json")],
             what="a check's report")
        for name in [n for n in os.listdir(checks) if n.endswith(".json")]:
            with open(os.path.join(checks, name)) as f:
                report = harness.json.load(f)
            env = report["env"]
            self.assertEqual((env["BATON_PID"], env["BATON_SERVICE"], env["BATON_GENERATION"],
                              env["BATON_INSTANCE"], env["GREETING"]),
                             (str(pid), "web", "1", "0", "hello world"))
            for name in ("LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
                self.assertNotIn(name, env)
            self.assertEqual(report["cwd"], b.dir)
            # Its output goes to batond, through one pipe; no socket of the service.
            self.assertEqual(sorted(report["fds"]), ["0", "1", "2"])
            self.assertTrue(report["fds"]["1"].startswith("pipe:"), report["fds"])
            self.assertEqual(report["fds"]["1"], report["fds"]["2"])
            self.assertEqual((report["blocked"], report["ignored"]), ([], []))
            self.assertEqual(report["sid"], report["pid"])

    # ---- the watchdog ----

    def test_a_process_that_stops_pinging_the_watchdog_is_replaced(self):
        b = self.start(child("ready = notify\nwatchdog = 300ms\nrestart_delay = 100ms",
                             args="--report @REPORTS@ --notify READY=1 --watchdog-every-ms 50 "
                                  "--watchdog-stop-after-ms 1000"))
        w = self.watching(b)
        [pid] = self.pids(b)
        env = b.wait_reports(1)[pid]["env"]
        self.assertEqual(env["WATCHDOG_USEC"], "300000")
        self.assertEqual(env["WATCHDOG_PID"], str(pid))
        self.assertIn("NOTIFY_SOCKET", env)
        _, unhealthy = self.event(w, "unhealthy", pid)
        self.assertEqual(unhealthy["reason"], "no WATCHDOG=1 within 300ms (watchdog)")
        # It pinged for a second after its start, which came after batond's (t = 0).
        self.assertGreaterEqual(unhealthy["t"], 1.0 + 0.3 - 0.06)
        _, spawned = self.event(w, "spawned", instance=0)
        i_ready, _ = self.event(w, "ready", spawned["pid"])
        i_stop, _ = self.event(w, "signalled", pid)
        self.assertGreater(i_stop, i_ready)
        self.assertEqual(b.wait_reports(2)[spawned["pid"]]["env"]["WATCHDOG_PID"],
                         str(spawned["pid"]))

    def test_watchdog_trigger_makes_a_process_unhealthy_at_once(self):
        b = self.start(child("ready = notify\nwatchdog = 1m",
                             args="--notify READY=1 --delay-ms 1000 --notify WATCHDOG=trigger"))
        w = self.watching(b)
        [pid] = self.pids(b)
        _, unhealthy = self.event(w, "unhealthy", pid)
        self.assertEqual(unhealthy["reason"], "WATCHDOG=trigger")
        # Times are from batond's start: the process started after it, and said
        # WATCHDOG=trigger 1s after READY=1, a minute before the watchdog's end.
        self.assertGreaterEqual(unhealthy["t"], 1.0)
        self.assertLess(unhealthy["t"], 1.0 + 2 * harness.SLOW)
        self.assertIn("web[%d] gen 1: unhealthy: WATCHDOG=trigger" % pid, b.log())

    # ---- what status and metrics show ----

    def test_status_and_metrics_show_the_checks(self):
        up = os.path.join("@DIR@", "up")
        b = self.start(child("ready = exec:sh -c 'echo waiting for the database; test -e %s'\n"
                             "check = exec:sh -c 'echo all good'\ncheck_interval = 200ms" % up,
                             args=""), state="starting")
        def starting():
            [p] = b.procs("web")
            return p["state"] == "starting" and p.get("check_failures", 0) >= 2 and p
        p = poll(starting, what="two failed readiness checks")
        self.assertEqual(p["check"], "failed")
        self.assertEqual(p["check_output"], "exited with status 1: waiting for the database")
        self.assertGreaterEqual(p["checking_for"], 0.2)
        self.assertLess(p["checked_ago"], 1)
        open(b.expand(up), "w").close()
        p = poll(lambda: [q for q in b.procs("web") if q["state"] == "ready" and
                          q.get("check_output") == "all good"], what="a liveness check")[0]
        self.assertEqual((p["check"], p["check_failures"]), ("ok", 0))
        self.assertNotIn("checking_for", p)
        self.assertLess(p["checked_ago"], 1)
        passed = self.metric(b, "baton_checks_passed_total")
        failed = self.metric(b, "baton_checks_failed_total")
        self.assertGreaterEqual(passed, 2)  # its readiness, then its liveness
        self.assertGreaterEqual(failed, 2)
        self.assertEqual(self.metric(b, "baton_unhealthy_total"), 0)
        poll(lambda: self.metric(b, "baton_checks_passed_total") > passed, what="more checks")
        self.assertEqual(self.metric(b, "baton_checks_failed_total"), failed)

    # ---- batond -n ----

    def test_check_config_finds_check_programs_on_the_services_path(self):
        b = self.batond("", start=False)
        bindir = os.path.join(b.dir, "bin")
        os.mkdir(bindir)
        with open(os.path.join(bindir, "app-health"), "w") as f:
            f.write("#!/bin/sh\necho fine\n")
        os.chmod(os.path.join(bindir, "app-health"), 0o755)
        with open(os.path.join(bindir, "not-executable"), "w") as f:
            f.write("#!/bin/sh\n")
        ok = ("[service:a]\ncommand = @TESTCHILD@\nready = exec:true\ncheck = exec:sh -c true\n"
              "[service:b]\ncommand = @TESTCHILD@\nenvironment = PATH=%s:/usr/bin:/bin\n"
              "check = exec:app-health\ncheck_interval = 100ms\n" % bindir)
        b.write_config(ok)
        r = harness.subprocess.run([harness.BATOND, "-n", "-c", b.config_path],
                                   capture_output=True, text=True, timeout=10)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("configuration OK", r.stdout)
        # What -n finds is what runs.
        b.start()
        poll(lambda: [p for p in b.procs("b") if p.get("check_output") == "fine"],
             what="service b's check to run")
        b.stop()
        b.write_config("[service:c]\ncommand = @TESTCHILD@\ncheck = exec:app-health\n"
                       "[service:d]\ncommand = @TESTCHILD@\nenvironment = PATH=%s\n"
                       "ready = exec:not-executable\n" % bindir)
        r = harness.subprocess.run([harness.BATOND, "-n", "-c", b.config_path],
                                   capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "%s:3: check: exec app-health: No such file or directory\n"
                         "%s:7: ready: exec not-executable: Permission denied\n"
                         % (b.config_path, b.config_path))

    # ---- many ----

    def test_100_services_checked_every_100ms(self):
        b = self.batond("", start=False)
        checks = os.path.join(b.dir, "checks")
        os.mkdir(checks)
        b.write_config("".join(
            "[service:s%d]\ncommand = @TESTCHILD@\ncheck = exec:@TESTCHILD@ --check-log %s "
            "--exit-after-ms 50\ncheck_interval = 100ms\ncheck_timeout = 2s\n" % (i, checks)
            for i in range(100)))
        b.start()
        poll(lambda: sum(s["ready"] for s in b.status()["services"]) == 100, timeout=20,
             what="100 services ready")
        cpu0, t0 = cpu_seconds(b.pid), time.monotonic()
        time.sleep(5)
        cpu, t1 = cpu_seconds(b.pid) - cpu0, time.monotonic()
        took = t1 - t0
        # The services' processes, not their checks.
        pids = {pid for pid in harness.children_of(b.pid)
                if harness.read("/proc/%d/cmdline" % pid) == harness.TESTCHILD + "\0"}
        self.assertEqual(b.stop(), 0)
        runs, most, checkers = check_runs(checks, t0, t1)
        self.assertEqual(set(runs), pids)
        total = sum(runs.values())
        print("100 services checked every 100ms: %d checks in %.1fs (%.0f a second), at most "
              "%d at once; batond used %.2fs of CPU (%.1f%% of one core)"
              % (total, took, total / took, most, cpu, 100 * cpu / took), file=sys.stderr)
        # Each process is checked again and again, none much less than the others (how
        # often depends on the machine: 2 cores start ~500 checks a second, or ~100 in
        # the sanitizers' build).
        self.assertGreaterEqual(min(runs.values()), max(3, total / len(runs) / 2), runs)
        self.assertLessEqual(most, 32)
        # Checks cut short by the stop are killed: none outlives batond.
        poll(lambda: not any(harness.alive(pid) for pid in checkers), timeout=5,
             what="no check left running")
        # A guard against a busy loop; tests/bench/bench.py has the target. Sanitizer
        # builds fork instead of vfork, and cost more.
        if harness.SLOW == 1 and not harness.VALGRIND:
            self.assertLess(cpu / took, 0.25, "batond took %.0f%% of a core" % (100 * cpu / took))


def cpu_seconds(pid):
    """The user and system CPU time of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_runs(checks, t0, t1):
    """Reads the files of `testchild --check-log`: one per process checked, of
    "PID start T" and "PID end T" lines (T on the monotonic clock). Fails when
    two checks of a process overlapped; returns the runs per process that
    started between t0 and t1, the most checks at once and the pids of the
    checks."""
    runs, spans, checkers = {}, [], set()
    for name in os.listdir(checks):
        lines = [line.split() for line in harness.read(os.path.join(checks, name)).splitlines()]
        checkers |= {int(line[0]) for line in lines}
        # batond stopped with a check running: it may have no end.
        if lines and lines[-1][1] == "start":
            lines.pop()
        for i in range(0, len(lines), 2):
            start, end = lines[i], lines[i + 1] if i + 1 < len(lines) else ["-", "-"]
            if start[1] != "start" or end[1:2] != ["end"] or start[0] != end[0]:
                raise AssertionError("checks of %s overlap: %s then %s" % (name, start, end))
            if i and float(start[2]) < float(lines[i - 1][2]):
                raise AssertionError("checks of %s overlap at %s" % (name, start))
            spans.append((float(start[2]), 1))
            spans.append((float(end[2]), -1))
        runs[int(name)] = sum(1 for line in lines[::2] if t0 <= float(line[2]) < t1)
    most = now = 0
    for _, step in sorted(spans):
        now += step
        most = max(most, now)
    return runs, most, checkers


if __name__ == "__main__":
    harness.main()
