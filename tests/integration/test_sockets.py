#!/usr/bin/env python3
"""The sockets batond binds and owns."""

import os
import socket
import stat
import subprocess

import harness


class SocketTest(harness.TestCase):
    def test_port_0_shows_the_port_bound(self):
        b = self.batond("""
[socket:http]
listen = tcp:127.0.0.1:0
""")
        st = b.status()
        sock = st["sockets"][0]
        self.assertEqual(sock["listen"], "tcp:127.0.0.1:0")
        port = b.port("http")
        self.assertGreater(port, 0)
        self.assertEqual(sock["bound"], "127.0.0.1:%d" % port)
        # batond owns it: connections queue even with no service running.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        self.assertIn("127.0.0.1:%d" % port, b.ctl("status").stdout)

    def test_ipv6(self):
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        b = self.batond("""
[socket:v6]
listen = tcp:[::1]:0
""")
        bound = b.status()["sockets"][0]["bound"]
        self.assertTrue(bound.startswith("[::1]:"), bound)
        port = int(bound.rsplit(":", 1)[1])
        with socket.create_connection(("::1", port), timeout=5):
            pass

    def test_udp(self):
        b = self.batond("""
[socket:dns]
listen = udp:127.0.0.1:0

[service:probe]
command = @TESTCHILD@ --report @REPORTS@
sockets = dns
""")
        report = list(b.wait_reports(1).values())[0]
        self.assertTrue(report["fds"]["3"].startswith("socket:"))
        self.assertEqual(b.status()["sockets"][0]["kind"], "udp")

    def test_unix_stale_file_replaced_mode_set_and_removed(self):
        b = self.batond("""
[socket:app]
listen = unix:@DIR@/app.sock
mode = 0640
""", start=False)
        path = os.path.join(b.dir, "app.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        b.start()
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.close()
        self.assert_exits_cleanly(b)
        self.assertFalse(os.path.exists(path))

    def test_unix_socket_in_use_is_not_stolen(self):
        b = self.batond("""
[socket:app]
listen = unix:@DIR@/app.sock
""", start=False)
        path = os.path.join(b.dir, "app.sock")
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        live.bind(path)
        live.listen(1)
        r = subprocess.run([harness.BATOND, "-c", b.config_path, "-s", b.control],
                           capture_output=True, text=True, timeout=10)
        live.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("socket app: bind unix:%s: Address already in use" % path, r.stderr)

    def test_address_in_use_is_a_clear_error(self):
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        b = self.batond("""
[socket:http]
listen = tcp:127.0.0.1:%d
""" % port, start=False)
        r = subprocess.run([harness.BATOND, "-c", b.config_path, "-s", b.control],
                           capture_output=True, text=True, timeout=10)
        taken.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("socket http: bind tcp:127.0.0.1:%d: Address already in use" % port, r.stderr)
        self.assertFalse(os.path.exists(b.control), "a failed start leaves no control socket")


if __name__ == "__main__":
    harness.main()
