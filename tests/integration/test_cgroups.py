#!/usr/bin/env python3
"""Generations in cgroups: whatever a service starts is stopped with it.

Each test has a cgroup of its own, BASE: a directory with a random name at
the top of the cgroup v2 hierarchy that /proc/self/mountinfo names. batond
makes it, and must remove it as it exits, unless the test made it first.
The processes of a test's services are found in BASE's cgroups, the
descendants that leave their service's process groups by their arguments
(sleep 4321, where the service's own process is sleep 1234).
"""

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import alive, poll

CONTROLLERS = ("cpu", "memory", "pids", "io")
# The limits, their controller, a value, the file of the generation's
# cgroup they are written to and what it then holds.
LIMITS = (
    ("memory_max", "memory", "64MiB", "memory.max", "67108864"),
    ("memory_high", "memory", "48MiB", "memory.high", "50331648"),
    ("cpu_max", "cpu", "50%", "cpu.max", "50000 100000"),
    ("cpu_weight", "cpu", "200", "cpu.weight", "200"),
    ("pids_max", "pids", "100", "pids.max", "100"),
    ("io_weight", "io", "300", "io.weight", "default 300"),
)

# A service whose process starts a descendant in a session of its own.
SETSID = "/bin/sh -c 'setsid sleep 4321 & exec sleep 1234'"
# ...one that forks twice, the way a daemon puts itself in the background.
TWICE = "/bin/sh -c '(setsid sleep 4321 &); exec sleep 1234'"
# ...one whose descendant ignores SIGTERM, while the process itself does not.
DEAF = "/bin/sh -c '(trap \"\" TERM; exec setsid sleep 4321) & exec sleep 1234'"
# ...one whose process and descendant both ignore SIGTERM.
ALL_DEAF = "/bin/sh -c 'trap \"\" TERM; setsid sleep 4321 & exec sleep 1234'"

OWN = "sleep 1234"
STRAY = "sleep 4321"
OUTSIDE = "process outside the service's process groups still running"


def unescape(field):
    """A field of /proc/self/mountinfo with its octal escapes (\\040) undone."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def cgroup2_mount():
    """The root and the mount point of the cgroup v2 hierarchy, or (None, None)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, _, rest = line.partition(" - ")
            if rest.split()[:1] == ["cgroup2"]:
                fields = fields.split()
                return unescape(fields[3]), unescape(fields[4])
    return None, None


MOUNT_ROOT, MOUNT = cgroup2_mount()


def why_no_cgroups():
    """Why no test may make a cgroup here, or None when one may."""
    if MOUNT is None:
        return "no cgroup v2 hierarchy is mounted (no cgroup2 in /proc/self/mountinfo)"
    probe = os.path.join(MOUNT, "baton-test-probe-" + secrets.token_hex(6))
    try:
        os.mkdir(probe)
    except OSError as e:
        return "cannot make a cgroup in the cgroup v2 hierarchy at %s: %s" % (MOUNT, e.strerror)
    os.rmdir(probe)
    return None


WHY_NO_CGROUPS = why_no_cgroups()


def procs_in(cg):
    """The pids in the cgroup at cg (its cgroup.procs); [] once it is gone."""
    return [int(pid) for pid in harness.read(os.path.join(cg, "cgroup.procs")).split()]


def populated(cg):
    return "populated 1" in harness.read(os.path.join(cg, "cgroup.events"))


def cmdline(pid):
    """A process's arguments joined by blanks, "" once it is gone."""
    return harness.read("/proc/%d/cmdline" % pid).rstrip("\0").replace("\0", " ")


def find_proc(cg, command, timeout=10.0):
    """The pid of the process in the cgroup cg running command, once it is there."""
    return poll(lambda: next((p for p in procs_in(cg) if cmdline(p) == command), None), timeout,
                what="%r in %s" % (command, cg))


def cgroup_of(pid):
    """The cgroup v2 path of a process (its 0:: line of /proc/PID/cgroup)."""
    for line in harness.read("/proc/%d/cgroup" % pid).splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def hierarchy_path(cg):
    """What /proc/PID/cgroup says for a process in the cgroup directory cg."""
    return os.path.normpath(os.path.join(MOUNT_ROOT, os.path.relpath(cg, MOUNT)))


def controllers(cg):
    """The controllers the cgroup at cg has (its cgroup.controllers)."""
    return harness.read(os.path.join(cg, "cgroup.controllers")).split()


def enter(cg):
    """A preexec_fn that moves the child into the cgroup cg before it runs anything."""
    def move():
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write("0")
    return move


def config(base, services, extra=""):
    """A configuration with [baton] cgroup = base and services {name: (command, stop_grace)}."""
    text = "[baton]\ncgroup = %s\n" % base if base else ""
    for name, (command, grace) in services.items():
        text += "\n[service:%s]\ncommand = %s\nstop_grace = %s\n%s" % (
            name, command, grace, extra)
    return text


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def event(records, kind, **fields):
    """The first event of kind whose fields are those given, or None."""
    for r in records:
        if r.get("type") == "event" and r.get("kind") == kind and all(
                r.get(k) == v for k, v in fields.items()):
            return r
    return None


def metric(text, name, labels):
    """The value of the metric name{labels} in the Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("%s{%s} " % (name, labels)):
            return float(line.rsplit(" ", 1)[1])
    return None


class CgroupTestCase(harness.TestCase):
    def setUp(self):
        super().setUp()
        if WHY_NO_CGROUPS:
            self.skipTest(WHY_NO_CGROUPS)

    def base(self, make=False):
        """A new BASE below the hierarchy's top; the test makes it with make,
        else batond is to. What is left of it at the end is taken down."""
        path = os.path.join(MOUNT, "baton-test-" + secrets.token_hex(6))
        if make:
            os.mkdir(path)
        self.addCleanup(self.take_down, path)
        return path

    def take_down(self, base):
        """Kills, by pid, the processes of this test left in its own BASE (none,
        unless the test failed), then removes its empty cgroups, deepest first."""
        if not os.path.isdir(base):
            return
        dirs = [d for d, _, _ in os.walk(base, topdown=False)]
        for d in dirs:
            for pid in procs_in(d):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for d in dirs:
            poll(lambda: not populated(d), what="the processes left in %s to be gone" % d)
            os.rmdir(d)

    def start(self, config_text, files=None, **kwargs):
        """batond on config_text, with files {name: text} in its directory first."""
        b = self.batond(config_text, start=False, **kwargs)
        for name, text in (files or {}).items():
            path = os.path.join(b.dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        b.start()
        return b

    def running(self, b, base, name, gen=1):
        """The pids of a service's own process and of its descendant, once both run."""
        b.wait_service(name, "running")
        cg = os.path.join(base, name, "gen-%d" % gen)
        return find_proc(cg, OWN), find_proc(cg, STRAY)

    def assert_shuts_down(self, b, base, made_by_batond=True):
        """Stops batond; checks it exited 0, left no process, and took its cgroups away."""
        self.assert_exits_cleanly(b)
        if made_by_batond:
            self.assertFalse(os.path.exists(base), "batond left %s behind" % base)
        else:
            left = [d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))]
            self.assertEqual(left, [], "batond left cgroups in %s" % base)
            self.assertEqual(procs_in(base), [])

    def stop_wait(self, b, name):
        """batonctl --json stop --wait: its records, once it exited 0."""
        r = b.ctl("stop", "--wait", name, json_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json_lines(r.stdout)


class StraysTest(CgroupTestCase):
    """Descendants outside the process groups: stopped, and waited for."""

    def test_stop_ends_descendants_that_left_the_process_groups(self):
        base = self.base()
        b = self.start(config(base, {"setsid": (SETSID, "5s"), "twice": (TWICE, "5s")}))
        self.assertIn("containment: cgroup %s\n" % base, b.ctl("status").stdout)
        for name in ("setsid", "twice"):
            with self.subTest(name):
                own, stray = self.running(b, base, name)
                # Out of reach of the process group a stop signals.
                self.assertEqual(os.getsid(stray), stray)
                self.assertNotEqual(os.getpgid(stray), os.getpgid(own))
                gen = b.status(name)["gens"][0]
                self.assertEqual((gen["strays"], gen["stray_processes"]),
                                 (1, "sleep[%d]" % stray))
                records = self.stop_wait(b, name)
                self.assertFalse(alive(stray), "sleep[%d] outlived the stop" % stray)
                strays = event(records, "strays", gen=1)
                self.assertIsNotNone(strays, records)
                self.assertEqual((strays["count"], strays["processes"], strays["signal"]),
                                 (1, "sleep[%d]" % stray, "TERM"))
                self.assertAlmostEqual(strays["kill_in"], 5.0)
                self.assertGreaterEqual(event(records, "drained", gen=1)["t"], strays["t"])
                self.assertIsNone(event(records, "strays_killed"), records)
                self.assertFalse(os.path.exists(os.path.join(base, name)))
                b.wait_log("warning: %s gen 1: 1 %s: sleep[%d]; sent SIGTERM, SIGKILL in 5s"
                           % (name, OUTSIDE, stray))
        self.assert_shuts_down(b, base)

    @harness.timing
    def test_a_descendant_that_ignores_sigterm_is_named_then_killed_at_the_grace(self):
        base = self.base()
        b = self.start(config(base, {"app": (DEAF, "2s")}))
        own, stray = self.running(b, base, "app")
        w = self.watch(b, "watch", "app")
        w.find(lambda o: o.get("type") == "proc")
        stop = self.watch(b, "stop", "--wait", "app", json_output=False)
        line = stop.find(lambda l: OUTSIDE in l)
        self.assertTrue(alive(stray), "sleep[%d] is named once it is gone" % stray)
        self.assertIn("app: gen 1: 1 %s: sleep[%d]; sent SIGTERM, SIGKILL in 2.00s"
                      % (OUTSIDE, stray), line)
        b.wait_log("warning: app gen 1: 1 %s: sleep[%d]; sent SIGTERM, SIGKILL in 2s"
                   % (OUTSIDE, stray))
        # status lists it while it runs.
        self.assertFalse(alive(own))
        text = b.ctl("status", "app").stdout
        self.assertIn("app gen 1: 1 %s: sleep[%d]\n" % (OUTSIDE, stray), text)
        gen = b.status("app")["gens"][0]
        self.assertEqual((gen["role"], gen["procs"], gen["strays"], gen["stray_processes"]),
                         ("draining", 0, 1, "sleep[%d]" % stray))
        self.assertTrue(alive(stray), "sleep[%d] was killed before its grace ended" % stray)
        line = stop.find(lambda l: "SIGKILL to the" in l, timeout=5)
        self.assertIn("app: gen 1: SIGKILL to the 1 process left in its cgroup: sleep[%d]"
                      % stray, line)
        stop.find(lambda l: l.startswith("app: stopped"), timeout=5)
        self.assertEqual(stop.proc.wait(timeout=5), 0)
        self.assertFalse(alive(stray))
        b.wait_log("warning: app gen 1: SIGKILL to the 1 process left in its cgroup: sleep[%d]"
                   % stray)
        # At the grace, and the drain over only once it was gone.
        strays = w.find(lambda o: o.get("kind") == "strays")
        killed = w.find(lambda o: o.get("kind") == "strays_killed")
        drained = w.find(lambda o: o.get("kind") == "drained")
        self.assertEqual(killed["processes"], "sleep[%d]" % stray)
        late = killed["t"] - strays["t"] - 2.0
        self.assertGreaterEqual(late, 0, "SIGKILL before the grace ended")
        self.assertLess(late, 0.1 * harness.SLOW, "SIGKILL %.3fs after the grace" % late)
        self.assertGreaterEqual(drained["t"], killed["t"])
        self.assertEqual(b.service("app")["kills"], 1)
        self.assert_shuts_down(b, base)

    def test_a_generation_is_drained_only_once_its_cgroup_is_empty(self):
        # The descendant takes 0.7 s to go once asked; the grace is far longer.
        # Its output goes elsewhere: the pipe of a process that exited is not read.
        base = self.base()
        b = self.start(config(base, {"app": (
            "/bin/sh -c 'setsid @DIR@/slow >/dev/null 2>&1 & exec sleep 1234'",
                                             "10s")}),
                       files={"slow": "#!/bin/sh\ntrap 'sleep 0.7; exit 0' TERM\n"
                                      "while :; do sleep 0.05; done\n"})
        b.wait_service("app", "running")
        slow = find_proc(os.path.join(base, "app", "gen-1"), "/bin/sh %s/slow" % b.dir)
        records = self.stop_wait(b, "app")
        self.assertFalse(alive(slow), "the stop ended before its descendant")
        strays = event(records, "strays", gen=1)
        drained = event(records, "drained", gen=1)
        self.assertIn("slow[%d]" % slow, strays["processes"])
        took = drained["t"] - strays["t"]
        self.assertGreaterEqual(took, 0.7, "drained while its descendant still ran")
        self.assertLess(took, 10.0, "drained only at the grace")
        self.assertIsNone(event(records, "strays_killed"), records)
        self.assertEqual(b.service("app")["kills"], 0)
        self.assert_shuts_down(b, base)

    def test_a_descendant_that_writes_as_it_stops_has_its_grace(self):
        # Its stderr is the pipe batond gave the service's process, which is gone.
        base = self.base()
        b = self.start(config(base, {"app": (
            "/bin/sh -c 'setsid @DIR@/slow @DIR@/cleaned & exec sleep 1234'", "5s")}),
            files={"slow": "#!/bin/sh\ntrap 'echo cleaning up >&2; sleep 0.3; touch \"$1\"; "
                           "exit 0' TERM\nwhile :; do sleep 0.05; done\n"})
        b.wait_service("app", "running")
        slow = find_proc(os.path.join(base, "app", "gen-1"),
                         "/bin/sh %s/slow %s/cleaned" % (b.dir, b.dir))
        self.stop_wait(b, "app")
        self.assertFalse(alive(slow))
        ended = [l for l in b.log().splitlines() if "orphan %d:" % slow in l]
        self.assertTrue(os.path.exists(os.path.join(b.dir, "cleaned")),
                        "slow[%d] did not finish its cleanup: %s" % (slow, ended))
        self.assert_shuts_down(b, base)

    def test_the_drain_after_an_upgrade_ends_the_old_generations_descendants(self):
        base = self.base()
        b = self.start(config(base, {"app": (SETSID, "5s"), "deaf": (DEAF, "2s")}))
        for name in ("app", "deaf"):
            with self.subTest(name):
                _, old = self.running(b, base, name)
                w = self.watch(b, "watch", name)
                text = self.watch(b, "watch", name, json_output=False)
                w.find(lambda o: o.get("type") == "proc")
                r = b.ctl("upgrade", "--wait", name)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                _, new = self.running(b, base, name, gen=2)
                line = text.find(lambda l: OUTSIDE in l)
                if name == "deaf":
                    self.assertTrue(alive(old), "sleep[%d] is named once it is gone" % old)
                self.assertIn("%s: gen 1: 1 %s: sleep[%d]; sent SIGTERM" % (name, OUTSIDE, old),
                              line)
                w.find(lambda o: o.get("kind") == "drained" and o.get("gen") == 1)
                self.assertFalse(alive(old), "sleep[%d] outlived the drain of gen 1" % old)
                self.assertTrue(alive(new))
                gen1 = os.path.join(base, name, "gen-1")
                poll(lambda: not os.path.exists(gen1), what="%s to be removed" % gen1)
                self.assertEqual(cgroup_of(new),
                                 hierarchy_path(os.path.join(base, name, "gen-2")))
                if name == "deaf":
                    killed = w.find(lambda o: o.get("kind") == "strays_killed", timeout=0)
                    self.assertEqual(killed["processes"], "sleep[%d]" % old)
                    text.find(lambda l: "%s: gen 1: SIGKILL to the 1 process left in its "
                              "cgroup: sleep[%d]" % (name, old) in l)
                else:
                    self.assertEqual(w.events("strays_killed"), [])
        self.assert_shuts_down(b, base)

    def test_shutdown_ends_every_descendant_and_leaves_no_cgroup(self):
        base = self.base()
        b = self.start(config(base, {"app": (SETSID, "5s"), "deaf": (DEAF, "1s"),
                                     "twice": (TWICE, "5s")}))
        strays = {name: self.running(b, base, name)[1] for name in ("app", "deaf", "twice")}
        asked = time.monotonic()
        self.assertEqual(b.ctl("shutdown").returncode, 0)
        self.assertEqual(b.wait_exit(), 0, b.log())
        took = time.monotonic() - asked
        for name, pid in strays.items():
            self.assertFalse(alive(pid), "%s's sleep[%d] outlived batond" % (name, pid))
        self.assertGreaterEqual(took, 1.0, "batond exited before the grace of deaf's descendant")
        log = b.log()
        self.assertIn("warning: deaf gen 1: SIGKILL to the 1 process left in its cgroup: "
                      "sleep[%d]" % strays["deaf"], log)
        self.assertIn("warning: app gen 1: 1 %s: sleep[%d]" % (OUTSIDE, strays["app"]), log)
        self.assertFalse(os.path.exists(base), "batond left %s behind" % base)

    def test_a_base_batond_did_not_make_is_left_there_empty(self):
        base = self.base(make=True)
        b = self.start(config(base, {"app": (SETSID, "5s")}))
        _, stray = self.running(b, base, "app")
        self.assert_shuts_down(b, base, made_by_batond=False)
        self.assertFalse(alive(stray), "sleep[%d] outlived batond" % stray)

    @harness.timing
    def test_the_kill_at_the_end_of_the_grace_takes_the_cgroup_with_it(self):
        base = self.base()
        b = self.start(config(base, {"app": (ALL_DEAF, "1s")}))
        own, stray = self.running(b, base, "app")
        records = self.stop_wait(b, "app")
        self.assertFalse(alive(stray), "sleep[%d] outlived its generation" % stray)
        sigkill = event(records, "sigkill", pid=own)
        killed = event(records, "strays_killed", gen=1)
        self.assertEqual((killed["count"], killed["processes"]), (1, "sleep[%d]" % stray))
        self.assertLess(abs(killed["t"] - sigkill["t"]), 0.1 * harness.SLOW)
        self.assertGreaterEqual(event(records, "drained", gen=1)["t"], sigkill["t"])
        self.assertIn("warning: app gen 1: SIGKILL to the 1 process left in its cgroup: "
                      "sleep[%d]" % stray, b.log())
        self.assert_shuts_down(b, base)


class OutputTest(CgroupTestCase):
    """The output pipes of a generation's exited processes: held while another
    process may write to them, closed once none may."""

    APP = ("@TESTCHILD@ --notify READY=1 --watchdog-every-ms 50", "5s")
    KEYS = "ready = notify\nwatchdog = 500ms\nrestart_delay = 50ms\n"

    def ready_pid(self, b, other_than=None):
        """The pid of app's one ready process, once it is not other_than."""
        def one():
            procs = b.procs("app", "ready")
            return len(procs) == 1 and procs[0]["pid"] != other_than and procs[0]["pid"]
        return poll(one, what="app to have one ready process other than %s" % other_than)

    def assert_fds_back(self, b, expected, what):
        """batond holds as many fds as expected (its control connections aside):
        the pipes of a process that replaced another are new ones."""
        try:
            poll(lambda: len(harness.own_fds(b.pid)) <= len(expected), timeout=3,
                 what="batond's fds to come back to %d" % len(expected))
        except AssertionError:
            self.fail("batond holds %s %s; as many as these expected: %s"
                      % (harness.own_fds(b.pid), what, expected))

    def test_a_process_replaced_after_its_watchdog_leaves_no_pipe_open(self):
        base = self.base()
        b = self.start(config(base, {"app": self.APP}, self.KEYS))
        pid = self.ready_pid(b)
        before = harness.own_fds(b.pid)
        for _ in range(3):
            # No WATCHDOG=1 from a stopped process: replaced, then sent SIGTERM and SIGCONT.
            os.kill(pid, signal.SIGSTOP)
            pid = self.ready_pid(b, other_than=pid)
            b.wait_service("app", "running")
            poll(lambda: len(b.procs("app")) == 1, what="the process replaced to exit")
        self.assertEqual(b.service("app")["gen"], 1)
        self.assert_fds_back(b, before, "after 3 replacements in gen 1")
        self.assert_shuts_down(b, base)

    def test_a_process_restarted_after_a_crash_leaves_no_pipe_open(self):
        base = self.base()
        b = self.start(config(base, {"app": self.APP}, self.KEYS))
        pid = self.ready_pid(b)
        before = harness.own_fds(b.pid)
        for _ in range(3):
            os.kill(pid, signal.SIGKILL)
            pid = self.ready_pid(b, other_than=pid)
        self.assertEqual(b.service("app")["gen"], 1)
        self.assert_fds_back(b, before, "after 3 restarts in gen 1")
        self.assert_shuts_down(b, base)

    def test_a_pipe_a_descendant_holds_is_closed_once_it_is_gone(self):
        # The first process leaves sleep its stdout and stderr; sleep outlives its crash.
        base = self.base()
        b = self.start(config(base, {"app": ("@DIR@/app", "5s")}, self.KEYS),
                       files={"app": "#!/bin/sh\n[ -e \"$0.once\" ] || { touch \"$0.once\"; "
                                     "sleep 3 & }\nexec %s\n" % self.APP[0].replace(
                                         "@TESTCHILD@", harness.TESTCHILD)})
        pid = self.ready_pid(b)
        cg = os.path.join(base, "app", "gen-1")
        sleep = find_proc(cg, "sleep 3")
        os.kill(pid, signal.SIGKILL)
        pid = self.ready_pid(b, other_than=pid)
        self.assertTrue(alive(sleep), "sleep[%d] ended before the test looked" % sleep)
        before = harness.own_fds(b.pid)
        held = [fd for fd, t in before.items() if t.startswith("pipe:")
                and t in harness.own_fds(sleep).values()]
        self.assertTrue(held, "no pipe sleep[%d] writes to is held: %s" % (sleep, before))
        poll(lambda: not alive(sleep), timeout=5, what="sleep[%d] to end" % sleep)
        after = {fd: t for fd, t in before.items() if fd not in held}
        self.assert_fds_back(b, after, "once sleep[%d] ended" % sleep)
        self.assert_shuts_down(b, base)


class UsageTest(CgroupTestCase):
    """What a generation's cgroup counts, in status and the metrics."""

    def test_the_cpu_seconds_of_a_busy_generation_grow(self):
        # The busy one is a descendant in a session of its own: the cgroup counts it.
        base = self.base()
        b = self.start(config(base, {
            "busy": ("/bin/sh -c 'setsid sh -c \"while :; do :; done\" & exec sleep 1234'", "5s"),
            "idle": ("/bin/sleep 1234", "5s")}))
        b.wait_service("busy", "running")

        def cpu():
            return b.status("busy")["gens"][0].get("cpu", 0)
        first = poll(lambda: cpu() >= 0.2 and cpu(), what="busy's CPU seconds to reach 0.2")
        poll(lambda: cpu() >= first + 0.2, what="busy's CPU seconds to grow")
        labels = 'service="busy",gen="1",role="current"'
        metrics = b.ctl("metrics").stdout
        self.assertGreaterEqual(metric(metrics, "baton_generation_cpu_seconds_total", labels),
                                first, metrics)
        self.assertLess(b.status("idle")["gens"][0]["cpu"], 0.1)
        # Memory and tasks where the hierarchy counts them, and only there.
        gen = b.status("busy")["gens"][0]
        self.assertEqual("memory" in gen, "memory" in controllers(base), gen)
        self.assertEqual("tasks" in gen, "pids" in controllers(base), gen)
        if "pids" in controllers(base):
            self.assertGreaterEqual(gen["tasks"], 2)
        self.assert_shuts_down(b, base)


class LimitsTest(CgroupTestCase):
    """Limits need the controllers BASE has; where it lacks them, they are refused."""

    def base_with(self, controller):
        """A BASE the test made, when it has controller; else the test skips, saying so."""
        base = self.base(make=True)
        if controller not in controllers(base):
            self.skipTest("the %s controller is not in %s/cgroup.controllers (it has: %s)"
                          % (controller, base, " ".join(controllers(base)) or "none"))
        return base

    def check(self, conf_text, cwd, **kwargs):
        path = os.path.join(cwd, "check.conf")
        with open(path, "w") as f:
            f.write(conf_text)
        return subprocess.run([harness.BATOND, "-n", "-c", "check.conf"], cwd=cwd,
                              capture_output=True, text=True, timeout=10 * harness.SLOW, **kwargs)

    def test_batond_n_names_the_controller_each_limit_lacks(self):
        for made in (True, False):
            with self.subTest("BASE made by " + ("the test" if made else "batond")):
                base = self.base(make=made)
                # What BASE would have: a missing one gets its parent's subtree_control.
                have = controllers(base) if made else \
                    harness.read(os.path.join(MOUNT, "cgroup.subtree_control")).split()
                text = "[baton]\ncgroup = %s\n\n[service:app]\ncommand = /bin/sleep 1234\n" % base
                text += "".join("%s = %s\n" % (key, value) for key, _, value, _, _ in LIMITS)
                d = tempfile.mkdtemp(prefix="baton-test-")
                self.addCleanup(shutil.rmtree, d, ignore_errors=True)
                r = self.check(text, d)
                self.assertFalse(os.path.exists(base) and not made, "batond -n made %s" % base)
                lacking = [(6 + i, key, controller)
                           for i, (key, controller, _, _, _) in enumerate(LIMITS)
                           if controller not in have]
                listed = " ".join(c for c in CONTROLLERS if c in have) or \
                    "none of cpu, memory, pids, io"
                expected = ["check.conf:%d: %s: the %s controller is not available in %s "
                            "(it has: %s)" % (line, key, controller, base, listed)
                            for line, key, controller in lacking]
                self.assertEqual(r.returncode, 1 if lacking else 0, r.stdout + r.stderr)
                for e in expected:
                    self.assertIn(e, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), len(expected), r.stderr)

    def refused_limit(self):
        """A BASE for batond to make, configurations without and with a limit whose
        controller it would lack, and the error batond gives for that limit
        (FILE and LINE left to fill in); the test skips when it would lack none."""
        base = self.base()
        # BASE, made by batond, has what the hierarchy's top enables for its children.
        top = harness.read(os.path.join(MOUNT, "cgroup.subtree_control")).split()
        lacking = [(k, c, v) for k, c, v, _, _ in LIMITS if c not in top]
        if not lacking:
            self.skipTest("%s/cgroup.subtree_control has every controller of the limits (%s): "
                          "none is refused" % (MOUNT, " ".join(top)))
        key, controller, value = lacking[0]
        listed = " ".join(c for c in CONTROLLERS if c in top) or "none of cpu, memory, pids, io"
        error = "%%s:%%d: %s: the %s controller is not available in %s (it has: %s)" % (
            key, controller, base, listed)
        good = config(base, {"app": ("/bin/sleep 1234", "5s")})
        return base, good, good + "%s = %s\n" % (key, value), error

    def test_start_and_reload_refuse_a_limit_whose_controller_is_missing(self):
        base, good, bad, error = self.refused_limit()
        b = self.batond(bad, start=False)
        b.start(wait=False)
        self.assertEqual(b.wait_exit(), 1, b.log())
        self.assertIn(error % (b.config_path, bad.count("\n")), b.log())
        self.assertFalse(os.path.exists(base), "a refused start left %s behind" % base)

        b = self.batond(good)
        b.wait_service("app", "running")
        b.write_config(bad)
        r = b.ctl("reload")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(error % (b.config_path, bad.count("\n")), r.stderr)
        self.assertEqual(b.service("app")["gen"], 1)
        self.assert_shuts_down(b, base)

    def test_an_upgrade_refuses_a_limit_whose_controller_is_missing(self):
        base, good, bad, error = self.refused_limit()
        b = self.batond(good)
        b.wait_service("app", "running")
        b.write_config(bad)
        r = b.ctl("upgrade", "--wait", "app")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(error % (b.config_path, bad.count("\n")), r.stderr)
        # The old generation goes on, and batond with it.
        r = b.ctl("version")
        self.assertEqual(r.returncode, 0, "batond did not outlive the refused upgrade: %s%s"
                         % (r.stderr, b.log()))
        svc = b.service("app")
        self.assertEqual((svc["state"], svc["gen"]), ("running", 1))
        self.assertFalse(os.path.exists(os.path.join(base, "app", "gen-2")))
        self.assertNotIn("gen 2", b.log(), "a refused upgrade went on")
        self.assert_shuts_down(b, base)

    def test_limits_are_written_to_each_generations_cgroup(self):
        base = self.base(make=True)
        usable = [l for l in LIMITS if l[1] in controllers(base)]
        if not usable:
            self.skipTest("none of the controllers cpu, memory, pids, io is in "
                          "%s/cgroup.controllers (it has: %s)"
                          % (base, " ".join(controllers(base)) or "none"))
        text = config(base, {"app": ("/bin/sleep 1234", "5s")})
        b = self.start(text + "".join("%s = %s\n" % (k, v) for k, _, v, _, _ in usable))
        b.wait_service("app", "running")
        gen1 = os.path.join(base, "app", "gen-1")
        for key, _, _, name, content in usable:
            self.assertEqual(harness.read(os.path.join(gen1, name)).strip(), content, key)
        # An upgrade without them: the new generation has none, the old one keeps its own.
        w = self.watch(b, "watch", "app")
        b.write_config(text)
        self.assertEqual(b.ctl("upgrade", "--wait", "app").returncode, 0)
        gen2 = os.path.join(base, "app", "gen-2")
        for key, _, _, name, content in usable:
            self.assertNotEqual(harness.read(os.path.join(gen2, name)).strip(), content, key)
        w.find(lambda o: o.get("kind") == "drained")
        self.assert_shuts_down(b, base, made_by_batond=False)

    def test_memory_max_oom_kills_a_hog_and_says_so(self):
        base = self.base_with("memory")
        # No swap for its children, where the hierarchy accounts for it.
        if os.path.exists(os.path.join(base, "memory.swap.max")):
            with open(os.path.join(base, "memory.swap.max"), "w") as f:
                f.write("0")
        # It takes 1MiB at a time, up to 512MiB, once the watch has begun.
        hog = ("#!/bin/sh\nwhile [ ! -e \"$1\" ]; do sleep 0.05; done\n"
               "exec %s -c \"b = [b'x' * (1 << 20) for _ in range(512)]\"\n" % sys.executable)
        b = self.start(config(base, {"hog": ("@DIR@/hog @DIR@/go", "5s")},
                              "memory_max = 32MiB\nrestart = never\n"), files={"hog": hog})
        w = self.watch(b, "watch", "hog")
        w.find(lambda o: o.get("type") == "proc")
        with open(os.path.join(b.dir, "go"), "w"):
            pass
        said = "killed by the kernel's OOM killer (memory_max 32MiB)"
        end = w.find(lambda o: o.get("type") == "event" and said in o.get("reason", ""),
                     timeout=30)
        self.assertIn(end["kind"], ("exited", "killed", "restarting"), end)
        b.wait_log(said)
        poll(lambda: metric(b.ctl("metrics").stdout, "baton_oom_kills_total",
                            'service="hog"') == 1, what="baton_oom_kills_total to count it")
        self.assert_shuts_down(b, base, made_by_batond=False)

    def test_pids_max_bounds_the_tasks_of_a_generation(self):
        base = self.base_with("pids")
        forks = "/bin/sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 600 & done; exec sleep 1234'"
        b = self.start(config(base, {"app": (forks, "5s")}, "pids_max = 4\n"))
        gen1 = os.path.join(base, "app", "gen-1")
        poll(lambda: "max 0" not in harness.read(os.path.join(gen1, "pids.events")),
             what="a fork refused in %s" % gen1)
        gen = poll(lambda: (lambda g: "tasks" in g and g)(b.status("app")["gens"][0]),
                   what="the tasks of gen 1 in status")
        self.assertLessEqual(gen["tasks"], 4)
        self.assert_shuts_down(b, base, made_by_batond=False)


class FallbackTest(CgroupTestCase):
    """Without a cgroup batond may write: process groups, said, and limits refused."""

    def setUp(self):
        # A path outside the hierarchy is tested everywhere; the tests that
        # need a cgroup v2 hierarchy skip without one.
        harness.TestCase.setUp(self)

    def assert_process_groups(self, b, why):
        """batond says it has no cgroups and why; a service runs and stops as before."""
        b.wait_log("containment: process groups, no cgroups: %s\n" % why)
        self.assertIn("containment: process groups (%s)\n" % why, b.ctl("status").stdout)
        daemon = b.status()["daemon"]
        self.assertEqual((daemon["containment"], daemon["containment_why"]),
                         ("process group", why))
        b.wait_service("app", "running")
        pid = b.procs("app")[0]["pid"]
        self.assertEqual(cmdline(pid), "/bin/sleep 1234")
        gen = b.status("app")["gens"][0]
        self.assertNotIn("cpu", gen)
        self.assertNotIn("strays", gen)
        self.assertEqual(b.ctl("stop", "--wait", "app").returncode, 0)
        self.assertFalse(alive(pid))

    def assert_limit_refused(self, b, why, user=None):
        """batond -n (as user) and a reload refuse memory_max, saying why; returns the
        configuration with it, the line of memory_max and the message."""
        good = harness.read(b.config_path)
        bad = good + "memory_max = 64MiB\n"
        line = bad.count("\n")
        message = "memory_max: needs a cgroup, and batond has none: %s" % why
        path = os.path.join(b.dir, "bad.conf")
        with open(path, "w") as f:
            f.write(bad)
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        r = subprocess.run([harness.BATOND, "-n", "-c", path], capture_output=True, text=True,
                           timeout=10 * harness.SLOW, **extra)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:%d: %s" % (path, line, message), r.stderr)
        b.write_config(bad)
        r = b.ctl("reload")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(message, r.stdout + r.stderr)
        b.write_config(good)
        return bad, line, message

    def test_a_path_outside_the_hierarchy_means_process_groups(self):
        b = self.batond("", start=False)
        cg = os.path.join(b.dir, "cgroup")
        if MOUNT is None:
            why = "no cgroup v2 hierarchy is mounted"
        else:
            why = "%s is not under the cgroup v2 hierarchy at %s" % (cg, MOUNT)
        b.write_config(config(cg, {"app": ("/bin/sleep 1234", "5s")}))
        b.start()
        self.assert_process_groups(b, why)
        self.assertFalse(os.path.exists(cg), "batond made %s" % cg)
        bad, line, message = self.assert_limit_refused(b, why)
        self.assert_exits_cleanly(b)
        b.write_config(bad)
        b.start(wait=False)
        self.assertEqual(b.wait_exit(), 1, b.log())
        self.assertIn("%s:%d: %s" % (b.config_path, line, message), b.log())

    def test_a_cgroup_batond_may_not_write_means_process_groups(self):
        if WHY_NO_CGROUPS:
            self.skipTest(WHY_NO_CGROUPS)
        base = self.base(make=True)
        nobody = pwd.getpwnam("nobody")
        b = self.batond(config(base, {"app": ("/bin/sleep 1234", "5s")}), start=False)
        for path in [b.dir] + [os.path.join(b.dir, f) for f in os.listdir(b.dir)]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)

        def as_nobody():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        b.preexec_fn = as_nobody
        b.start()
        why = "batond may not write %s: Permission denied" % base
        self.assert_process_groups(b, why)
        self.assertEqual([d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))],
                         [], "batond made cgroups in %s" % base)
        self.assert_limit_refused(b, why, user=nobody)
        self.assert_exits_cleanly(b)

    def test_auto_when_batond_is_not_alone_in_its_cgroup(self):
        if WHY_NO_CGROUPS:
            self.skipTest(WHY_NO_CGROUPS)
        base = self.base(make=True)
        other = subprocess.Popen(["sleep", "600"], preexec_fn=enter(base))
        self.addCleanup(lambda: (other.kill(), other.wait()))
        poll(lambda: other.pid in procs_in(base), what="sleep 600 in %s" % base)
        b = self.batond("[baton]\ncgroup = auto\n" + config(None, {
            "app": ("/bin/sleep 1234", "5s")}), preexec_fn=enter(base))
        why = ("batond is not the only process in its cgroup %s; run it with Delegate=yes, "
               "or give it [baton] cgroup = PATH" % base)
        self.assertEqual(cgroup_of(b.pid), hierarchy_path(base))
        self.assert_process_groups(b, why)
        self.assertFalse(os.path.exists(os.path.join(base, "batond:self")))
        self.assertEqual(cgroup_of(b.pid), hierarchy_path(base))
        bad = harness.read(b.config_path) + "memory_max = 64MiB\n"
        path = os.path.join(b.dir, "bad.conf")
        with open(path, "w") as f:
            f.write(bad)
        r = subprocess.run([harness.BATOND, "-n", "-c", path], capture_output=True, text=True,
                           timeout=10 * harness.SLOW, preexec_fn=enter(base))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:%d: memory_max: needs a cgroup, and batond has none: %s"
                      % (path, bad.count("\n"), why), r.stderr)
        self.assert_exits_cleanly(b)

    def test_auto_in_the_root_cgroup(self):
        if WHY_NO_CGROUPS:
            self.skipTest(WHY_NO_CGROUPS)
        b = self.batond(config(None, {"app": ("/bin/sleep 1234", "5s")}),
                        preexec_fn=enter(MOUNT))
        self.assertEqual(cgroup_of(b.pid), "/")
        self.assert_process_groups(
            b, "batond runs in the root cgroup of %s; [baton] cgroup = PATH gives it one" % MOUNT)
        self.assert_exits_cleanly(b)

    def test_auto_when_batond_is_alone_uses_its_cgroup(self):
        if WHY_NO_CGROUPS:
            self.skipTest(WHY_NO_CGROUPS)
        base = self.base(make=True)
        subtree = harness.read(os.path.join(base, "cgroup.subtree_control"))
        b = self.start(config(None, {"app": (SETSID, "5s")}), preexec_fn=enter(base))
        self.assertEqual(cgroup_of(b.pid), hierarchy_path(os.path.join(base, "batond:self")))
        self.assertIn("containment: cgroup %s\n" % base, b.ctl("status").stdout)
        self.assertEqual(b.status()["daemon"]["containment"], "cgroup %s" % base)
        own, stray = self.running(b, base, "app")
        self.stop_wait(b, "app")
        self.assertFalse(alive(stray))
        self.assert_shuts_down(b, base, made_by_batond=False)
        self.assertEqual(harness.read(os.path.join(base, "cgroup.subtree_control")), subtree)


@unittest.skipIf(harness.VALGRIND, "a re-exec runs batond outside valgrind")
class ReexecTest(CgroupTestCase):
    """A re-exec finds the cgroups where they are, their processes in them."""

    def test_a_reexec_keeps_every_process_in_its_cgroup(self):
        base = self.base()
        b = self.start(config(base, {"app": (SETSID, "5s")}))
        own, stray = self.running(b, base, "app")
        where = hierarchy_path(os.path.join(base, "app", "gen-1"))
        self.assertEqual((cgroup_of(own), cgroup_of(stray)), (where, where))
        batond_cgroup = cgroup_of(b.pid)
        r = b.ctl("reexec")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((cgroup_of(own), cgroup_of(stray)), (where, where))
        self.assertEqual(cgroup_of(b.pid), batond_cgroup)
        self.assertEqual(sorted(procs_in(os.path.join(base, "app", "gen-1"))),
                         sorted([own, stray]))
        self.assertIn("containment: cgroup %s\n" % base, b.ctl("status").stdout)
        gen = b.status("app")["gens"][0]
        self.assertEqual((gen["strays"], gen["stray_processes"]), (1, "sleep[%d]" % stray))
        # Still held: a stop ends the descendant, and the cgroups go.
        records = self.stop_wait(b, "app")
        self.assertFalse(alive(stray), "sleep[%d] outlived a stop after a re-exec" % stray)
        self.assertEqual(event(records, "strays", gen=1)["processes"], "sleep[%d]" % stray)
        self.assertFalse(os.path.exists(os.path.join(base, "app")))
        self.assert_shuts_down(b, base)

    def test_a_reexec_during_the_grace_of_a_descendant_keeps_its_deadline(self):
        base = self.base()
        b = self.start(config(base, {"app": (DEAF, "2s")}))
        _, stray = self.running(b, base, "app")
        w = self.watch(b, "watch", "app")
        w.find(lambda o: o.get("type") == "proc")
        self.assertEqual(b.ctl("stop", "app").returncode, 0)
        w.find(lambda o: o.get("kind") == "strays")
        asked = time.monotonic()
        time.sleep(0.5)
        self.assertEqual(b.ctl("reexec").returncode, 0)
        self.assertTrue(alive(stray))
        poll(lambda: not alive(stray), timeout=5, interval=0.01,
             what="sleep[%d] to be killed at the end of its grace, 2s after its SIGTERM" % stray)
        took = time.monotonic() - asked
        # asked is late by the time the watch took: the bounds tell the deadline
        # (2 s) from a kill at once (0.5 s) and from a grace started again (2.5 s).
        self.assertGreaterEqual(took, 2.0 - 0.2 * harness.SLOW)
        self.assertLess(took, 2.0 + 0.3 * harness.SLOW)
        b.wait_service("app", "stopped")
        poll(lambda: not os.path.exists(os.path.join(base, "app")), what="app's cgroup to go")
        self.assert_shuts_down(b, base)

    def test_a_reexec_keeps_the_pipe_a_descendant_writes_to_as_it_stops(self):
        # slow takes two seconds to write its last words once asked to stop; the
        # re-exec comes in them, the service's own process gone.
        base = self.base()
        b = self.start(config(base, {"app": (
            "/bin/sh -c 'setsid @DIR@/slow @DIR@/cleaned & exec sleep 1234'", "5s")}),
            files={"slow": "#!/bin/sh\ntrap 'sleep 2; echo cleaning up >&2; "
                           "touch \"$1\"; exit 0' TERM\nwhile :; do sleep 0.05; done\n"})
        b.wait_service("app", "running")
        slow = find_proc(os.path.join(base, "app", "gen-1"),
                         "/bin/sh %s/slow %s/cleaned" % (b.dir, b.dir))
        w = self.watch(b, "watch", "app")
        w.find(lambda o: o.get("type") == "proc")
        self.assertEqual(b.ctl("stop", "app").returncode, 0)
        w.find(lambda o: o.get("kind") == "strays")
        r = b.ctl("reexec")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(alive(slow), "slow[%d] ended before the re-exec" % slow)
        poll(lambda: not alive(slow), timeout=5, what="slow[%d] to end" % slow)
        ended = [l for l in b.log().splitlines() if "orphan %d:" % slow in l]
        self.assertTrue(os.path.exists(os.path.join(b.dir, "cleaned")),
                        "slow[%d] did not finish its cleanup: %s" % (slow, ended))
        b.wait_service("app", "stopped")
        self.assert_shuts_down(b, base)


if __name__ == "__main__":
    harness.main()
