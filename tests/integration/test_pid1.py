#!/usr/bin/env python3
"""Single-command mode, batond as PID 1 in a new PID namespace, and under systemd."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import alive, children_of, poll


class Single:
    """batond running one command, in a PID namespace when asked."""

    def __init__(self, test, command, options=(), namespace=False):
        self.dir = tempfile.mkdtemp(prefix="baton-test-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.control = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.dir, "batond.log")
        args = [harness.BATOND, "-v", "-s", self.control] + list(options) + ["--"] + command
        if namespace:
            args = ["unshare", "--pid", "--fork", "--mount-proc"] + args
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("BATON_CONTROL", None)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env)
        test.addCleanup(self.close)
        poll(lambda: self.proc.poll() is not None or self.ctl("version").returncode == 0,
             what="batond to answer")

    def ctl(self, *args):
        return subprocess.run([harness.BATONCTL, "-s", self.control, "--json"] + list(args),
                              capture_output=True, text=True, timeout=30)

    def status(self):
        """The status of the one service, with all its processes."""
        r = self.ctl("status")
        if r.returncode != 0:
            return None
        name = json.loads(r.stdout)["services"][0]["name"]
        r = self.ctl("status", name)
        st = json.loads(r.stdout) if r.returncode == 0 else None
        if st:
            st["daemon"] = json.loads(self.ctl("status").stdout)["daemon"]
        return st

    def batond_pid(self):
        """batond's pid as this (the outer) namespace sees it."""
        if self.proc.args[0] != "unshare":
            return self.proc.pid
        return poll(lambda: list(children_of(self.proc.pid)), what="batond under unshare")[0]

    def text(self):
        return harness.read(self.log_path)

    def wait(self, timeout=20):
        return self.proc.wait(timeout=timeout * harness.SLOW)

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.batond_pid(), signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def need_unshare(test):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        test.skipTest("needs root and unshare for a PID namespace")


class SingleCommandTest(harness.TestCase):
    def test_runs_the_command_as_a_service_and_exits_with_it(self):
        s = Single(self, [harness.TESTCHILD, "--exit-after-ms", "300",
                          "--exit", "3"], ["--listen", "tcp:127.0.0.1:0"])
        self.assertEqual(s.wait(), 3)
        self.assertIn("the command has ended: exiting with status 3", s.text())

    def test_arguments_reach_the_command_as_they_are(self):
        out = os.path.join(tempfile.mkdtemp(prefix="baton-args-"), "args")
        self.addCleanup(shutil.rmtree, os.path.dirname(out), True)
        script = "set -e\nprintf '%s\\0' \"$@\" > \"$0\"\n"
        args = ["two\nlines", "x" * 3000, "it's \"q\" $HOME `id` ; # \\", " \t ", "", "a ;b"]
        s = Single(self, ["/bin/sh", "-c", script, out] + args)
        self.assertEqual(s.wait(), 0, s.text())
        with open(out, "rb") as f:
            self.assertEqual(f.read().decode().split("\0")[:-1], args)
        self.assertIn("of /bin/sh -c $'set -e\\nprintf", s.text())

    def test_sockets_upgrade_and_sigterm(self):
        reports = tempfile.mkdtemp(prefix="baton-reports-")
        self.addCleanup(shutil.rmtree, reports, True)
        s = Single(self, [harness.TESTCHILD, "--report", reports, "--notify", "READY=1"],
                   ["--listen", "tcp:127.0.0.1:0", "--ready", "notify", "--name", "app"])
        st = poll(lambda: s.status() and s.status()["services"][0]["state"] == "running" and
                  s.status(), what="the command to run")
        self.assertEqual(st["services"][0]["name"], "app")
        self.assertEqual(st["sockets"][0]["name"], "listen")
        first = st["procs"][0]["pid"]
        self.assertEqual(s.ctl("upgrade", "--wait", "app").returncode, 0)
        second = s.status()["procs"][-1]["pid"]
        self.assertNotEqual(first, second)
        poll(lambda: not alive(first), what="the first generation to end")
        self.assertIsNone(s.proc.poll(), "an upgrade must not end batond")
        with open(os.path.join(reports, "report-%d.json" % second)) as f:
            self.assertEqual(json.load(f)["env"]["LISTEN_FDS"], "1")
        os.kill(s.batond_pid(), signal.SIGTERM)
        self.assertEqual(s.wait(), 0, s.text())

    def test_killed_by_a_signal_is_128_plus_n(self):
        s = Single(self, [harness.TESTCHILD, "--report", tempfile.gettempdir()])
        pid = poll(lambda: s.status() and s.status()["procs"] and s.status()["procs"][0]["pid"],
                   what="the command")
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(s.wait(), 128 + 9)

    def test_signals_are_passed_on(self):
        log = os.path.join(tempfile.mkdtemp(prefix="baton-log-"), "log")
        self.addCleanup(shutil.rmtree, os.path.dirname(log), True)
        s = Single(self, [harness.TESTCHILD, "--log", log])
        poll(lambda: " start " in harness.read(log), what="the command to start")
        os.kill(s.batond_pid(), signal.SIGHUP)
        poll(lambda: " hup " in harness.read(log), what="SIGHUP to reach the command")
        self.assertIsNone(s.proc.poll())
        os.kill(s.batond_pid(), signal.SIGTERM)
        # Once seen 137 under load (SIGKILL at the grace): what batond and
        # the command said is kept for such a failure.
        self.assertEqual(s.wait(), 0, "batond's log:\n%s\nthe command's:\n%s" % (
            s.text(), harness.read(log)))

    def test_usage_errors(self):
        for args, message in (
                (["--listen", "tcp:nowhere:1", "--", "true"], "--listen: expected a numeric"),
                (["--ready", "soon", "--", "true"], "--ready: expected notify"),
                (["--instances", "2"], "single-command options need a COMMAND after --"),
                (["-c", "x.conf", "--", "true"], "a COMMAND and -c exclude each other")):
            r = subprocess.run([harness.BATOND] + args, capture_output=True, text=True, timeout=10)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(message, r.stderr, args)


class Pid1Test(harness.TestCase):
    def setUp(self):
        super().setUp()
        need_unshare(self)

    def test_reaps_orphans_as_pid_1(self):
        s = Single(self, [harness.TESTCHILD, "--orphan-ms", "300", "--notify", "READY=1"],
                   ["--ready", "notify"], namespace=True)
        st = poll(lambda: s.status(), what="status")
        self.assertEqual(st["daemon"]["pid"], 1)
        batond = s.batond_pid()
        poll(lambda: s.status()["daemon"]["orphans"] == 1, what="the orphan to be reaped")
        self.assertNotIn("Z", children_of(batond).values())
        self.assertNotIn("neither PID 1 nor a subreaper", s.text())

    def test_drains_on_sigterm_and_exits_with_the_status(self):
        s = Single(self, [harness.TESTCHILD, "--term-exit-ms", "200"], namespace=True)
        poll(lambda: s.status() and s.status()["procs"], what="the command")
        t0 = time.monotonic()
        os.kill(s.batond_pid(), signal.SIGTERM)
        self.assertEqual(s.wait(), 0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)

    def test_a_command_killed_by_a_signal(self):
        s = Single(self, [harness.TESTCHILD, "--ignore-term"], ["--stop-grace", "300ms"],
                   namespace=True)
        poll(lambda: s.status() and s.status()["procs"], what="the command")
        os.kill(s.batond_pid(), signal.SIGTERM)
        self.assertEqual(s.wait(), 128 + 9)
        self.assertIn("its cleanup did not run", s.text())


class SystemdTest(harness.TestCase):
    def test_sockets_from_listen_fds_and_ready_on_notify_socket(self):
        b = self.batond("""
[socket:http]
listen = tcp:127.0.0.1:0

[service:web]
command = @TESTCHILD@ --accept --log @DIR@/log
sockets = http
""", start=False)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        notify_path = os.path.join(b.dir, "systemd-notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(10 * harness.SLOW)
        env = dict(b.env, LISTEN_FDS="1", LISTEN_FDNAMES="http", NOTIFY_SOCKET=notify_path)
        fd = listener.fileno()

        def as_fd_3():
            if fd != 3:
                os.dup2(fd, 3)
            os.set_inheritable(3, True)
        b.logfile = open(b.log_path, "ab")
        # LISTEN_PID must be batond's own pid: sh sets it, then becomes batond.
        b.proc = subprocess.Popen(
            ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', harness.BATOND, "-v", "-c",
             b.config_path, "-s", b.control],
            env=env, stdout=b.logfile, stderr=b.logfile, close_fds=False,
            preexec_fn=as_fd_3)
        message = notify.recv(4096).decode()
        self.assertIn("READY=1", message)
        self.assertIn("MAINPID=%d" % b.pid, message)
        st = b.status()
        self.assertEqual(st["sockets"][0]["bound"], "127.0.0.1:%d" % port)
        b.wait_log("socket http: from systemd: tcp 127.0.0.1:%d" % port)
        listener.close()
        # batond holds the socket systemd passed: connections reach the service.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            poll(lambda: " accept " in harness.read(os.path.join(b.dir, "log")),
                 what="the service to accept")
        b.signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", notify.recv(4096).decode())
        self.assertEqual(b.wait_exit(), 0)
        notify.close()


if __name__ == "__main__":
    harness.main()
