#!/usr/bin/env python3
"""A generation is what it started with: its program, directory and environment.

The program of these tests is pinchild, copied into the test's directory
with its version written into its bytes (program()), so that what a process
reports is what it was executed from. A new version is installed the way
package managers do, written beside the old one and renamed over it
(install()), or behind a `current` symlink switched to another release
(switch()).
"""

import errno
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import alive, poll

PINCHILD = os.environ.get("PINCHILD", "pinchild")
MARKER = b"PINCHILD-VERSION:"


def program(version):
    """pinchild's bytes with version (1 to 8 characters) written into them."""
    with open(PINCHILD, "rb") as f:
        data = f.read()
    if data.count(MARKER) != 1:
        raise AssertionError("%s holds %s %d times" % (PINCHILD, MARKER, data.count(MARKER)))
    at = data.index(MARKER) + len(MARKER)
    return data[:at] + version.encode().ljust(8, b"-") + data[at + 8:]


def script(version):
    """A #! /bin/sh service that reports its version, then becomes sleep."""
    return ("#!/bin/sh\n"
            "version=%s\n"
            "printf '{\"pid\":%%d,\"version\":\"%%s\",\"gen\":\"%%s\",\"instance\":\"%%s\"}\\n' "
            "$$ \"$version\" \"$BATON_GENERATION\" \"$BATON_INSTANCE\" >\"$1/.$$.tmp\"\n"
            "mv \"$1/.$$.tmp\" \"$1/$$.json\"\n"
            "exec sleep 3600\n" % version).encode()


def sha256_16(data):
    return hashlib.sha256(data).hexdigest()[:16]


def write(path, data, mode=0o755):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def install(path, data):
    """Puts data at path as a new file: written beside it, renamed over it."""
    write(path + ".new", data)
    os.rename(path + ".new", path)


def switch(link, target):
    """Points the symlink link at target at once (a new link renamed over it)."""
    os.symlink(target, link + ".new")
    os.rename(link + ".new", link)


def reports(b):
    """What the processes wrote in @DIR@/versions, by pid."""
    out = {}
    directory = os.path.join(b.dir, "versions")
    for name in os.listdir(directory):
        if name.endswith(".json") and not name.startswith("."):
            with open(os.path.join(directory, name)) as f:
                report = json.load(f)
            out[report["pid"]] = report
    return out


def report_of(b, pid):
    """The report of the process pid, once it has written it."""
    return poll(lambda: reports(b).get(pid), what="the report of pid %d" % pid)


def ready_procs(b, name, gen=None):
    """The ready processes of a service (of generation gen), by instance."""
    return {p["instance"]: p for p in b.procs(name, "ready") if gen is None or p["gen"] == gen}


def crash(b, name, instance):
    """SIGKILLs the ready process of instance; returns its replacement once ready."""
    old = ready_procs(b, name)[instance]
    os.kill(old["pid"], signal.SIGKILL)
    return poll(lambda: (lambda p: p and p["pid"] != old["pid"] and p)(
        ready_procs(b, name).get(instance)), what="instance %d to be restarted" % instance)


def gens(b, name):
    """The gens records of status --json, by generation number."""
    return {g["gen"]: g for g in b.status(name).get("gens", [])}


def known_hash(b, name, gen):
    """The gen record of status once its program's hash is known."""
    return poll(lambda: (lambda g: g and "sha256" in g and g)(gens(b, name).get(gen)),
                what="the sha256 of %s gen %d in status" % (name, gen))


def read_bytes(pid):
    """The bytes pid has read (rchar of /proc/PID/io)."""
    with open("/proc/%d/io" % pid) as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def cwd(pid):
    return os.readlink("/proc/%d/cwd" % pid)


def proc_error(b, name, instance, text):
    """The process of instance, once its error says text."""
    return poll(lambda: [p for p in b.procs(name) if p["instance"] == instance
                         and text in p.get("error", "")],
                what="the error %r in status" % text)[0]


def check(test, config, files=None):
    """batond -n on config (@DIR@ a temporary directory holding files) in that
    directory; returns its result and the directory."""
    d = tempfile.mkdtemp(prefix="baton-test-")
    test.addCleanup(shutil.rmtree, d, ignore_errors=True)
    for name, content in (files or {}).items():
        write(os.path.join(d, name), content, 0o644)
    write(os.path.join(d, "baton.conf"), config.replace("@DIR@", d)
          .replace("@TESTCHILD@", harness.TESTCHILD).encode(), 0o644)
    r = subprocess.run([harness.BATOND, "-n", "-c", "baton.conf"], cwd=d, capture_output=True,
                       text=True, timeout=10)
    return r, d


def overwrite_between_crash_and_restart(b, path, data, tries=3):
    """Kills the one process of app and, before its restart (restart_delay)
    while no process runs the program, writes data over path in place; tries
    again after the restart if that came first (the kernel refused: busy)."""
    for attempt in range(tries):
        pid = poll(lambda: ready_procs(b, "app").get(0), what="a ready process")["pid"]
        os.kill(pid, signal.SIGKILL)
        poll(lambda: not alive(pid), what="the killed process to be reaped")
        try:
            with open(path, "r+b") as f:
                f.write(data)
            return
        except OSError as e:
            if e.errno != errno.ETXTBSY or attempt == tries - 1:
                raise


class PinTestCase(harness.TestCase):
    def start(self, config, files, service="app", state="running"):
        """batond on config, with files ({path under @DIR@: bytes or a symlink
        target given as str}) made first; waits for service to be in state
        (None: does not wait)."""
        b = self.batond(config, start=False)
        os.mkdir(os.path.join(b.dir, "versions"))
        for path, content in files.items():
            full = os.path.join(b.dir, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if isinstance(content, str):
                os.symlink(content, full)
            else:
                write(full, content)
        b.start()
        if state:
            b.wait_service(service, state)
        return b

    def path(self, b, *parts):
        return os.path.realpath(os.path.join(b.dir, *parts))

    def upgrade(self, b, name="app"):
        r = b.ctl("upgrade", "--wait", name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def assert_version(self, b, pid, version, gen):
        report = report_of(b, pid)
        self.assertEqual((report["version"], report["gen"]), (version, str(gen)),
                         "pid %d runs version %s of gen %s" % (pid, report["version"],
                                                                report["gen"]))


APP = """
[service:app]
command = @DIR@/app --report @DIR@/versions
ready = notify
instances = 2
restart_delay = 50ms
"""


class PinnedProgramTest(PinTestCase):
    def test_program_renamed_over_changes_only_the_next_generation(self):
        b = self.start(APP, {"app": program("1")})
        first = ready_procs(b, "app")
        for p in first.values():
            self.assert_version(b, p["pid"], "1", 1)
        install(os.path.join(b.dir, "app"), program("2"))
        # A crash restart is still gen 1: the version gen 1 started with.
        for _ in range(2):
            again = crash(b, "app", 0)
            self.assertEqual(again["gen"], 1)
            self.assert_version(b, again["pid"], "1", 1)
        self.upgrade(b)
        new = ready_procs(b, "app", gen=2)
        self.assertEqual(sorted(new), [0, 1])
        for p in new.values():
            self.assert_version(b, p["pid"], "2", 2)
        again = crash(b, "app", 1)
        self.assert_version(b, again["pid"], "2", 2)

    def test_switched_symlink_changes_only_the_next_generation(self):
        b = self.start("""
[service:app]
command = @DIR@/current/app --report @DIR@/versions
directory = @DIR@/current
ready = notify
restart_delay = 50ms
""", {"releases/1/app": program("1"), "releases/2/app": program("2"), "current": "releases/1"})
        one, two = self.path(b, "releases", "1"), self.path(b, "releases", "2")
        pid = ready_procs(b, "app")[0]["pid"]
        self.assert_version(b, pid, "1", 1)
        self.assertEqual(cwd(pid), one)
        switch(os.path.join(b.dir, "current"), "releases/2")
        again = crash(b, "app", 0)
        self.assert_version(b, again["pid"], "1", 1)
        self.assertEqual(cwd(again["pid"]), one)
        self.upgrade(b)
        new = ready_procs(b, "app", gen=2)[0]["pid"]
        self.assert_version(b, new, "2", 2)
        self.assertEqual(cwd(new), two)

    def test_program_changed_in_place_is_refused_to_its_old_generation(self):
        b = self.start("""
[service:app]
command = @DIR@/app --report @DIR@/versions
ready = notify
restart_delay = 1s
restart_delay_max = 1s
start_limit = none
""", {"app": program("1")})
        app = self.path(b, "app")
        inode = os.stat(app).st_ino
        # While a process runs it, the kernel refuses to write the program.
        with self.assertRaises(OSError) as cm:
            open(app, "r+b")
        self.assertEqual(cm.exception.errno, errno.ETXTBSY, cm.exception)
        overwrite_between_crash_and_restart(b, app, program("3"))
        self.assertEqual(os.stat(app).st_ino, inode)
        why = "%s was changed in place after gen 1 pinned it: upgrade to run it" % app
        waiting = proc_error(b, "app", 0, why)
        self.assertEqual((waiting["gen"], waiting["state"], waiting["pid"]), (1, "waiting", 0))
        b.wait_log("app instance 0 gen 1: cannot start: " + why)
        r = b.ctl("status", "app")
        self.assertIn(why, r.stdout)
        self.assertEqual([x for x in reports(b).values() if x["version"] != "1"], [])
        self.upgrade(b)
        new = ready_procs(b, "app", gen=2)[0]["pid"]
        self.assert_version(b, new, "3", 2)
        self.assertEqual(known_hash(b, "app", 2)["sha256"], sha256_16(program("3")))


class RollbackTest(PinTestCase):
    def test_processes_started_again_by_a_rollback_run_the_old_version(self):
        # Version 2 fails in instance 1, the second batch of a rolling:1 upgrade.
        b = self.start("""
[service:app]
command = @DIR@/app --report @DIR@/versions --fail 2:1
ready = notify
instances = 2
upgrade = rolling:1
restart_delay = 50ms
""", {"app": program("1")})
        old = {i: p["pid"] for i, p in ready_procs(b, "app").items()}
        install(os.path.join(b.dir, "app"), program("2"))
        r = b.ctl("upgrade", "--wait", "app")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("upgrade to gen 2 rolled back", r.stderr)
        self.assertIn("exited with status 1 before it was ready", r.stderr)
        # The first batch ran version 2 and replaced old instance 0.
        ran = {(x["gen"], x["instance"], x["version"]) for x in reports(b).values()}
        self.assertIn(("2", "0", "2"), ran)
        self.assertIn(("2", "1", "2"), ran)
        poll(lambda: not alive(old[0]), what="old instance 0, stopped by the first batch, to exit")
        back = poll(lambda: (lambda r: len(r) == 2 and r)(ready_procs(b, "app", gen=1)),
                    what="gen 1 to have its two instances back")
        self.assertEqual(back[1]["pid"], old[1])
        self.assertNotEqual(back[0]["pid"], old[0])
        self.assert_version(b, back[0]["pid"], "1", 1)
        svc = b.wait_service("app", "running")
        self.assertEqual((svc["gen"], svc["rollbacks"]), (1, 1))
        self.assertEqual(known_hash(b, "app", 1)["sha256"], sha256_16(program("1")))


SCRIPT = """
[socket:http]
listen = tcp:127.0.0.1:0

[service:app]
command = @DIR@/%s @DIR@/versions
sockets = http
ready = none
restart_delay = 300ms
start_limit = none
"""


def sleeping(pid):
    """Whether the script has become sleep (exec sleep)."""
    try:
        return os.readlink("/proc/%d/exe" % pid).endswith("/sleep")
    except FileNotFoundError:
        return False


class ScriptTest(PinTestCase):
    def assert_only_its_fds(self, b, pid):
        """The process holds 0-2 and its socket, nothing batond had open."""
        poll(lambda: sleeping(pid), what="the script to exec sleep")
        fds = harness.own_fds(pid)
        self.assertEqual(sorted(fds), [0, 1, 2, 3], fds)
        self.assertTrue(fds[3].startswith("socket:"), fds)

    def test_script_behind_a_switched_symlink(self):
        b = self.start(SCRIPT % "current/run.sh", {
            "releases/1/run.sh": script("1"), "releases/2/run.sh": script("2"),
            "current": "releases/1"})
        pid = ready_procs(b, "app")[0]["pid"]
        self.assert_version(b, pid, "1", 1)
        self.assert_only_its_fds(b, pid)
        g = known_hash(b, "app", 1)
        self.assertEqual((g["exe"], g["script"]), (self.path(b, "releases/1/run.sh"), "yes"))
        self.assertEqual(g["sha256"], sha256_16(script("1")))
        switch(os.path.join(b.dir, "current"), "releases/2")
        again = crash(b, "app", 0)
        self.assert_version(b, again["pid"], "1", 1)
        self.upgrade(b)
        new = ready_procs(b, "app", gen=2)[0]["pid"]
        self.assert_version(b, new, "2", 2)
        self.assert_only_its_fds(b, new)
        again = crash(b, "app", 0)
        self.assert_version(b, again["pid"], "2", 2)
        self.assert_only_its_fds(b, again["pid"])

    def test_script_replaced_or_changed_in_place_is_refused(self):
        b = self.start(SCRIPT % "run.sh", {"run.sh": script("1")})
        run = self.path(b, "run.sh")
        install(run, script("2"))
        os.kill(ready_procs(b, "app")[0]["pid"], signal.SIGKILL)
        proc_error(b, "app", 0, "%s was replaced by another file after gen 1 pinned it: "
                   "upgrade to run it" % run)
        self.upgrade(b)
        pid = ready_procs(b, "app", gen=2)[0]["pid"]
        self.assert_version(b, pid, "2", 2)
        # A script is not busy while it runs: it can be written in place.
        with open(run, "r+b") as f:
            f.write(script("3-longer"))
        os.kill(pid, signal.SIGKILL)
        proc_error(b, "app", 0, "%s was changed in place after gen 2 pinned it: "
                   "upgrade to run it" % run)
        self.upgrade(b)
        self.assert_version(b, ready_procs(b, "app", gen=3)[0]["pid"], "3-longer", 3)
        self.assertEqual({r["version"] for r in reports(b).values()}, {"1", "2", "3-longer"})


READY_FD = """
[service:app]
command = @TESTCHILD@ --ready-fd %d --report @REPORTS@
ready = fd:%d
restart_delay = 100ms
"""


def pinned_fd(pid, path):
    """The number of batond's descriptor that holds path open, or None."""
    for fd, target in harness.own_fds(pid).items():
        if target == path:
            return fd
    return None


class DescriptorTest(PinTestCase):
    def test_a_readiness_pipe_at_the_number_of_the_pinned_program(self):
        # batond holds a generation's program by a descriptor of whatever
        # number was free; a process's readiness pipe, put at the number its
        # service asks for, must not take its place before the exec.
        exe = os.path.realpath(harness.TESTCHILD)
        first = self.start(READY_FD % (40, 40), {})
        number = pinned_fd(first.pid, exe)
        self.assertIsNotNone(number, harness.own_fds(first.pid))
        self.assert_exits_cleanly(first)
        b = self.start(READY_FD % (number, number), {}, state=None)
        self.assertEqual(pinned_fd(b.pid, exe), number, "another layout of batond's fds")
        proc = poll(lambda: [p for p in b.procs("app") if p["state"] == "ready"
                             or p.get("error")], what="the process to be ready or fail")[0]
        self.assertEqual((proc["state"], proc.get("error")), ("ready", None))
        self.assertEqual(b.wait_reports(1)[proc["pid"]]["fds"][str(number)][:5], "pipe:")


ENV = """
[service:app]
command = @TESTCHILD@ --report @REPORTS@
environment = MODE=one GREETING=config
environment_file = @DIR@/app.env
    -@DIR@/local.env
restart_delay = 50ms
"""


def environ(pid):
    """/proc/PID/environ: the values of each name, in order (a name may be there twice)."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        data = f.read().decode(errors="replace")
    out = {}
    for entry in data.split("\0"):
        if "=" in entry:
            name, value = entry.split("=", 1)
            out.setdefault(name, []).append(value)
    return out


def env_of(b, pid):
    return poll(lambda: b.reports_of().get(pid), what="the report of pid %d" % pid)["env"]


class EnvironmentFileTest(PinTestCase):
    def test_a_changed_file_reaches_the_next_generation_only(self):
        b = self.start(ENV, {"app.env": b"GREETING=hello\nSECRET=\"s3cret value\"\n"})
        env = env_of(b, ready_procs(b, "app")[0]["pid"])
        self.assertEqual((env["MODE"], env["GREETING"], env["SECRET"]),
                         ("one", "hello", "s3cret value"))
        self.assertNotIn("LOCAL", env)
        write(os.path.join(b.dir, "app.env"), b"GREETING=bonjour\nSECRET=\"s3cret value\"\n")
        write(os.path.join(b.dir, "local.env"), b"LOCAL=local-value\n")
        env = env_of(b, crash(b, "app", 0)["pid"])
        self.assertEqual(env["GREETING"], "hello")
        self.assertNotIn("LOCAL", env)
        self.upgrade(b)
        env = env_of(b, ready_procs(b, "app", gen=2)[0]["pid"])
        self.assertEqual((env["GREETING"], env["LOCAL"]), ("bonjour", "local-value"))
        # What changed, by name: values are no one's business.
        self.assertEqual(gens(b, "app")[2]["changed"], "environment (GREETING LOCAL)")
        shown = b.ctl("status", "app").stdout + b.ctl("status", "--json", "app").stdout
        self.assertIn("environment (GREETING LOCAL)", shown)
        for value in ("bonjour", "hello", "s3cret", "local-value"):
            self.assertNotIn(value, shown)

    def test_a_file_that_does_not_parse_fails_the_upgrade_and_changes_nothing(self):
        b = self.start(ENV, {"app.env": b"GREETING=hello\n"})
        self.upgrade(b)
        poll(lambda: sorted(gens(b, "app")) == [2], what="gen 1 to be gone")
        before = {p["pid"] for p in b.procs("app")}
        started = len(b.reports_of())
        env_file = self.path(b, "app.env")
        write(env_file, b"GREETING=bonjour\n# the next value is never closed\nBROKEN=\"oops\n")
        r = b.ctl("upgrade", "--wait", "app")
        self.assertEqual(r.returncode, 1, r.stdout)
        error = "app: cannot start gen 3: %s:3: " % env_file
        self.assertIn(error, r.stderr)
        b.wait_log("upgrade refused: " + error)
        svc = b.service("app")
        self.assertEqual((svc["state"], svc["gen"], svc["upgrades"]), ("running", 2, 1))
        self.assertEqual({p["pid"] for p in b.procs("app")}, before)
        self.assertEqual(sorted(gens(b, "app")), [2])
        self.assertEqual(len(b.reports_of()), started)
        write(env_file, b"GREETING=bonjour\n")
        self.upgrade(b)
        env = env_of(b, ready_procs(b, "app", gen=3)[0]["pid"])
        self.assertEqual(env["GREETING"], "bonjour")

    def test_a_file_cannot_change_what_batond_sets(self):
        b = self.start("""
[socket:http]
listen = tcp:127.0.0.1:0

[service:app]
command = @TESTCHILD@ --report @REPORTS@ --notify READY=1
sockets = http
ready = notify
ready_timeout = 10s
environment_file = @DIR@/app.env
""", {"app.env": b"NOTIFY_SOCKET=/nonexistent/notify.sock\nLISTEN_FDS=7\n"
                 b"LISTEN_PID=1\nBATON_GENERATION=99\nBATON_INSTANCE=5\nMINE=kept\n"},
            state=None)
        pid = list(b.wait_reports(1))[0]
        env = environ(pid)
        expected = {"NOTIFY_SOCKET": [b.control[:-len(".sock")] + "-notify.sock"],
                    "LISTEN_FDS": ["1"], "LISTEN_PID": [str(pid)], "BATON_GENERATION": ["1"],
                    "BATON_INSTANCE": ["0"], "MINE": ["kept"]}
        self.assertEqual({name: env.get(name) for name in expected}, expected)
        poll(lambda: ready_procs(b, "app"), what="the process to be ready")

    def test_check_names_the_line_of_environment_file(self):
        r, d = check(self, ENV, {"app.env": b"A=1\n\nBROKEN=\"oops\n"})
        self.assertEqual(r.returncode, 1, r.stderr)
        # The key's line (5), as for every other key, not the section's (2).
        self.assertEqual(r.stderr, "baton.conf:5: environment_file: %s/app.env:3: BROKEN: "
                         "unterminated double quote\n" % d)


def limits(pid):
    """/proc/PID/limits: (soft, hard) by name."""
    out = {}
    with open("/proc/%d/limits" % pid) as f:
        for line in f.readlines()[1:]:
            name, soft, hard = re.split(r"\s{2,}", line.strip())[:3]
            out[name] = (soft, hard)
    return out


def status_field(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return None


def nice_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    return int(data[data.rindex(")") + 2:].split()[16])


class SettingsTest(PinTestCase):
    def test_limits_umask_nice_and_oom_score_adjust(self):
        # sleep, not a test program: a sanitizer's runtime lowers its own core limit.
        b = self.start("""
[service:app]
command = sleep 3600
ready = none
limit_nofile = 1234:2345
limit_nproc = 3000:4000
limit_core = 1MiB:infinity
limit_memlock = 64KiB:128KiB
limit_stack = 8MiB:16MiB
umask = 0027
nice = 7
oom_score_adjust = 321
""", {})
        pid = ready_procs(b, "app")[0]["pid"]
        got = limits(pid)
        self.assertEqual(got["Max open files"], ("1234", "2345"))
        self.assertEqual(got["Max processes"], ("3000", "4000"))
        self.assertEqual(got["Max core file size"], ("1048576", "unlimited"))
        self.assertEqual(got["Max locked memory"], ("65536", "131072"))
        self.assertEqual(got["Max stack size"], ("8388608", "16777216"))
        self.assertEqual(status_field(pid, "Umask"), "0027")
        self.assertEqual(nice_of(pid), 7)
        self.assertEqual(harness.read("/proc/%d/oom_score_adj" % pid).strip(), "321")
        # batond's own are untouched.
        self.assertNotEqual(limits(b.pid)["Max open files"], ("1234", "2345"))
        self.assertEqual(nice_of(b.pid), nice_of(os.getpid()))

    def test_a_limit_the_kernel_refuses_fails_the_start(self):
        with open("/proc/sys/fs/nr_open") as f:
            too_many = int(f.read()) + 1
        b = self.batond("""
[service:app]
command = @TESTCHILD@ --report @REPORTS@
limit_nofile = %d
restart_delay = 100ms
""" % too_many)
        b.wait_log("gen 1: setrlimit limit_nofile: Operation not permitted; restarting in")
        proc_error(b, "app", 0, "setrlimit limit_nofile: Operation not permitted")
        self.assertNotEqual(b.service("app")["state"], "running")
        self.assertEqual(b.reports_of(), {})

    def test_check_names_the_line_of_a_bad_setting(self):
        r, _ = check(self, """
[service:app]
command = /bin/true
limit_nofile = 5:3
umask = 0999
nice = 20
oom_score_adjust = -1001
limit_stack = 8Mb
""")
        self.assertEqual(r.returncode, 1)
        for line in ("baton.conf:4: limit_nofile: the soft limit 5 is above the hard limit 3",
                     "baton.conf:5: umask: expected an octal umask from 0000 to 0777",
                     "baton.conf:6: nice: expected a whole number from -20 to 19",
                     "baton.conf:7: oom_score_adjust: expected a whole number from -1000 to",
                     "baton.conf:8: limit_stack: expected SOFT[:HARD]"):
            self.assertIn(line, r.stderr)


def someone():
    """A user and a group other than root's, by name and by number."""
    try:
        user, other = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
        group = grp.getgrnam("daemon")
    except KeyError:
        raise unittest.SkipTest("no user nobody or daemon, or no group daemon")
    return user, other, group


SOCKETS = """
[socket:admin]
listen = unix:@DIR@/admin.sock
mode = 0660
owner = %(user)s
group = %(group)s

[socket:ops]
listen = unix:@DIR@/ops.sock
mode = 0640
owner = %(uid)d
group = %(gid)d

[service:app]
command = @TESTCHILD@ --report @REPORTS@
sockets = admin, ops
%(extra)s
"""


@unittest.skipUnless(os.geteuid() == 0, "sets the owner of a socket: needs root")
class SocketOwnerTest(PinTestCase):
    def sockets(self, extra=""):
        user, other, group = someone()
        return SOCKETS % dict(user=user.pw_name, group=group.gr_name, uid=other.pw_uid,
                              gid=user.pw_gid, extra=extra)

    def assert_owned(self, path, uid, gid, mode):
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual((st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))),
                         (uid, gid, oct(mode)), path)
        return st.st_ino

    def test_owner_and_group_at_bind_and_across_reloads(self):
        user, other, group = someone()
        b = self.start(self.sockets(), {})
        admin, ops = os.path.join(b.dir, "admin.sock"), os.path.join(b.dir, "ops.sock")
        inodes = (self.assert_owned(admin, user.pw_uid, group.gr_gid, 0o660),
                  self.assert_owned(ops, other.pw_uid, user.pw_gid, 0o640))
        b.write_config(self.sockets(extra="environment = RELEASE=2") + """
[socket:late]
listen = unix:@DIR@/late.sock
mode = 0600
owner = %s
""" % user.pw_name)
        r = b.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("socket late: added", r.stdout)
        self.assertEqual((self.assert_owned(admin, user.pw_uid, group.gr_gid, 0o660),
                          self.assert_owned(ops, other.pw_uid, user.pw_gid, 0o640)), inodes)
        self.assert_owned(os.path.join(b.dir, "late.sock"), user.pw_uid, os.getegid(), 0o600)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(admin)


STATUS = """
[service:app]
command = @DIR@/current/app --report @DIR@/versions %(args)s
directory = @DIR@/current
environment = TOKEN=%(token)s
ready = notify
stop_delay = 5s
"""


class StatusTest(PinTestCase):
    def test_each_generation_shows_what_it_runs(self):
        files = {"releases/1/app": program("1"), "releases/2/app": program("2"),
                 "current": "releases/1"}
        b = self.start(STATUS % dict(args="", token="first-secret"), files)
        one, two = self.path(b, "releases/1/app"), self.path(b, "releases/2/app")
        g = known_hash(b, "app", 1)
        st = os.stat(one)
        self.assertEqual((g["exe"], g["inode"], g["mtime"], g["directory"]),
                         (one, st.st_ino, st.st_mtime_ns // 10**9, os.path.dirname(one)))
        self.assertEqual(g["sha256"], sha256_16(program("1")))
        self.assertNotIn("changed", g)
        self.assertNotIn("script", g)
        switch(os.path.join(b.dir, "current"), "releases/2")
        b.write_config(STATUS % dict(args="--tag two", token="second-secret"))
        r = self.upgrade(b)
        self.assertEqual(r.stdout.splitlines()[-1],
                         "app: gen 1 \u2192 gen 2: %s (sha256 %s) \u2192 %s (sha256 %s)"
                         % (one, sha256_16(program("1")), two, sha256_16(program("2"))))
        # Gen 1 is draining (stop_delay): both are shown.
        shown = gens(b, "app")
        self.assertEqual((shown[1]["role"], shown[2]["role"]), ("draining", "current"))
        self.assertEqual((shown[1]["exe"], shown[1]["sha256"]), (one, sha256_16(program("1"))))
        self.assertEqual((shown[2]["exe"], shown[2]["sha256"], shown[2]["directory"]),
                         (two, sha256_16(program("2")), os.path.dirname(two)))
        self.assertEqual(shown[2]["inode"], os.stat(two).st_ino)
        self.assertEqual(shown[2]["changed"],
                         "program, arguments, directory, environment (TOKEN)")
        text = b.ctl("status", "app").stdout
        self.assertIn("SERVICE  GEN  ROLE", text)
        for word in ("PROGRAM", "DIRECTORY", "CHANGED"):
            self.assertIn(word, text)
        self.assertIn("%s (sha256 %s)" % (one, sha256_16(program("1"))), text)
        self.assertIn("%s (sha256 %s)" % (two, sha256_16(program("2"))), text)
        self.assertIn("program, arguments, directory, environment (TOKEN)", text)
        self.assertNotIn("secret", text + json.dumps(shown))

    def test_an_upgrade_to_the_same_program_does_not_read_it_again(self):
        # 16 MiB after pinchild's bytes: hashing the program reads them all.
        big = 16 << 20
        b = self.start(APP, {"app": program("1") + bytes(big)})
        app = self.path(b, "app")
        first = known_hash(b, "app", 1)["sha256"]
        before = read_bytes(b.pid)
        self.upgrade(b)
        self.assertEqual(gens(b, "app")[2]["sha256"], first)
        self.assertLess(read_bytes(b.pid) - before, big // 4)
        # Its modification time set back as it was, its ctime is not: read again.
        st = os.stat(app)
        os.utime(app, ns=(st.st_atime_ns, st.st_mtime_ns))
        before = read_bytes(b.pid)
        self.upgrade(b)
        self.assertEqual(known_hash(b, "app", 3)["sha256"], first)
        self.assertGreaterEqual(read_bytes(b.pid) - before, big)

    def test_services_that_run_one_program_read_it_once(self):
        # Four services start together on one program of 16 MiB and more:
        # the first hashed gives its hash to the others, which do not read it.
        big = 16 << 20
        config = "".join(APP.replace("[service:app]", "[service:app%d]" % i) for i in range(4))
        b = self.start(config, {"app": program("1") + bytes(big)}, service="app0")
        hashes = {known_hash(b, "app%d" % i, 1)["sha256"] for i in range(4)}
        self.assertEqual(hashes, {sha256_16(program("1") + bytes(big))})
        self.assertLess(read_bytes(b.pid), 2 * big)

    def test_upgrade_json_names_both_programs(self):
        b = self.start(APP, {"app": program("1")})
        app = self.path(b, "app")
        install(app, program("2"))
        r = b.ctl("upgrade", "--wait", "app", json_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        records = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(records[-1], {"ok": True})
        last = records[-2]
        self.assertEqual(
            {k: last.get(k) for k in ("type", "service", "gen", "exe", "sha256", "from",
                                      "from_exe", "from_sha256")},
            {"type": "upgrade", "service": "app", "gen": 2, "exe": app,
             "sha256": sha256_16(program("2")), "from": 1, "from_exe": app,
             "from_sha256": sha256_16(program("1"))})


@unittest.skipIf(harness.VALGRIND, "a re-exec runs batond outside valgrind")
class ReexecTest(PinTestCase):
    def test_a_reexec_keeps_what_each_generation_pinned(self):
        b = self.start("""
[service:app]
command = @DIR@/current/app --report @DIR@/versions
directory = @DIR@/current
ready = notify
instances = 2
restart_delay = 50ms
""", {"releases/1/app": program("1"), "releases/2/app": program("2"), "current": "releases/1"})
        one = self.path(b, "releases", "1")
        before = known_hash(b, "app", 1)
        switch(os.path.join(b.dir, "current"), "releases/2")
        install(os.path.join(b.dir, "releases/1/app"), program("1b"))
        for _ in range(2):
            r = b.ctl("reexec")
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(gens(b, "app")[1], before)
        for instance in (0, 1):
            again = crash(b, "app", instance)
            self.assert_version(b, again["pid"], "1", 1)
            self.assertEqual(cwd(again["pid"]), one)
        self.upgrade(b)
        new = ready_procs(b, "app", gen=2)[0]["pid"]
        self.assert_version(b, new, "2", 2)
        self.assertEqual(cwd(new), self.path(b, "releases", "2"))


if __name__ == "__main__":
    harness.main()
