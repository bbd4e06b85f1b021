#!/usr/bin/env python3
"""What a child gets from batond: fds, environment, signals, session, ids."""

import os
import pwd
import signal
import socket
import stat

import harness

CONFIG = """
[socket:http]
listen = tcp:127.0.0.1:0

[socket:admin]
listen = unix:@DIR@/admin.sock
mode = 0660

[service:probe]
command = @TESTCHILD@ --report @REPORTS@
sockets = http admin
instances = 2
environment = GREETING="hello world" LISTEN_FDS_EXTRA=kept
"""


def leaky_parent():
    """Starts batond the way a careless parent would: signals blocked and ignored."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGHUP})
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class ChildTest(harness.TestCase):
    def start(self):
        # A stray fd batond inherits without close-on-exec must not reach children.
        r, w = os.pipe()
        os.set_inheritable(w, True)
        env = {"LISTEN_FDS": "9", "LISTEN_PID": "1", "LISTEN_FDNAMES": "bogus",
               "EINHORN_FD_7": "7", "EINHORN_FD_COUNT": "8", "SERVER_STARTER_PORT": "x=9",
               "BATON_SERVICE": "wrong", "NOTIFY_SOCKET": "/nonexistent", "KEEP_ME": "yes"}
        b = self.batond(CONFIG, env=env, preexec_fn=leaky_parent)
        os.close(r)
        os.close(w)
        reports = b.wait_reports(2)
        return b, list(reports.values())

    def test_fds_are_the_sockets_in_order_and_nothing_else(self):
        b, reports = self.start()
        for r in reports:
            self.assertEqual(sorted(int(fd) for fd in r["fds"]), [0, 1, 2, 3, 4], r["fds"])
            self.assertTrue(r["fds"]["3"].startswith("socket:"))
            self.assertTrue(r["fds"]["4"].startswith("socket:"))

    def test_sockets_are_listening_and_shared(self):
        b, reports = self.start()
        port = b.port("http")
        # The same listening sockets in every process: the kernel's inode.
        self.assertEqual(len({r["fds"]["3"] for r in reports}), 1)
        self.assertEqual(len({r["fds"]["4"] for r in reports}), 1)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        mode = stat.S_IMODE(os.stat(os.path.join(b.dir, "admin.sock")).st_mode)
        self.assertEqual(mode, 0o660)

    def test_socket_activation_variables(self):
        b, reports = self.start()
        port = b.port("http")
        admin = os.path.join(b.dir, "admin.sock")
        for r in reports:
            env = r["env"]
            self.assertEqual(env["LISTEN_FDS"], "2")
            self.assertEqual(env["LISTEN_PID"], str(r["pid"]))
            self.assertEqual(env["LISTEN_FDNAMES"], "http:admin")
            self.assertEqual(env["SERVER_STARTER_PORT"], "127.0.0.1:%d=3;%s=4" % (port, admin))
            self.assertEqual(env["SERVER_STARTER_GENERATION"], "1")
            self.assertEqual(env["EINHORN_FD_COUNT"], "2")
            self.assertEqual(env["EINHORN_FD_0"], "3")
            self.assertEqual(env["EINHORN_FD_1"], "4")
            self.assertEqual(env["BATON_SERVICE"], "probe")
            self.assertEqual(env["BATON_GENERATION"], "1")
        self.assertEqual(sorted(r["env"]["BATON_INSTANCE"] for r in reports), ["0", "1"])

    def test_batonds_own_variables_of_those_names_do_not_pass(self):
        b, reports = self.start()
        for r in reports:
            env = r["env"]
            self.assertNotIn("EINHORN_FD_7", env)
            self.assertNotIn("NOTIFY_SOCKET", env)
            self.assertEqual(env["KEEP_ME"], "yes")
            self.assertEqual(env["GREETING"], "hello world")
            self.assertEqual(env["LISTEN_FDS_EXTRA"], "kept")

    def test_clean_signal_state_and_own_session(self):
        b, reports = self.start()
        for r in reports:
            self.assertEqual(r["blocked"], [], "signals blocked in the child")
            self.assertEqual(r["ignored"], [], "signals ignored in the child")
            self.assertEqual(r["sid"], r["pid"])
            self.assertEqual(r["pgid"], r["pid"])
            self.assertEqual(r["ppid"], b.pid)

    def test_user_group_directory(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to change user")
        nobody = pwd.getpwnam("nobody")
        b = self.batond("""
[service:probe]
command = @TESTCHILD@ --report @REPORTS@
user = nobody
directory = /
""", start=False)
        os.chmod(b.dir, 0o755)
        os.chmod(b.reports, 0o777)
        b.start()
        r = list(b.wait_reports(1).values())[0]
        self.assertEqual(r["uid"], nobody.pw_uid)
        self.assertEqual(r["gid"], nobody.pw_gid)
        self.assertNotIn(0, r["groups"])
        self.assertEqual(r["cwd"], "/")

    def test_path_lookup_without_a_slash(self):
        b = self.batond("""
[service:probe]
command = testchild --report @REPORTS@
environment = PATH=%s:/usr/bin:/bin
""" % os.path.dirname(os.path.abspath(harness.TESTCHILD)))
        r = list(b.wait_reports(1).values())[0]
        self.assertEqual(r["env"]["BATON_SERVICE"], "probe")


if __name__ == "__main__":
    harness.main()
