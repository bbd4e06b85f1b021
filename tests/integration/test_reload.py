#!/usr/bin/env python3
"""Reloading the configuration: nothing changes on error, sockets are kept."""

import os
import signal
import socket

import harness
from harness import alive, poll

BASE = """
[socket:http]
listen = tcp:127.0.0.1:0

[service:web]
command = @TESTCHILD@ --report @REPORTS@ --log @DIR@/web.log
sockets = http
instances = 2
"""

EXTRA = """
[socket:admin]
listen = unix:@DIR@/admin.sock

[service:admin]
command = @TESTCHILD@ --log @DIR@/admin.log
sockets = admin
"""


def socket_inodes(pid):
    """The inodes of batond's own sockets, without its control clients'
    connections, which close when they will."""
    return {t for t in harness.own_fds(pid).values() if t.startswith("socket:")}


class ReloadTest(harness.TestCase):
    def test_invalid_config_changes_nothing(self):
        b = self.batond(BASE)
        b.wait_service("web", "running")
        before = ({p["pid"] for p in b.procs("web")}, b.port("http"), socket_inodes(b.pid))
        b.write_config(BASE + "instances = 3\n")
        r = b.ctl("reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("baton.conf:9: instances: set twice (first at line 8)", r.stderr)
        after = ({p["pid"] for p in b.procs("web")}, b.port("http"), socket_inodes(b.pid))
        self.assertEqual(before, after)
        self.assertEqual(b.service("web")["instances"], 2)
        b.wait_log("reload failed, the running configuration stays")

    def test_add_and_remove_a_service_and_a_socket(self):
        b = self.batond(BASE)
        b.wait_service("web", "running")
        port = b.port("http")
        inodes = socket_inodes(b.pid)
        web = {p["pid"] for p in b.procs("web")}
        b.write_config(BASE + EXTRA)
        r = b.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("socket admin: added", r.stdout)
        self.assertIn("service admin: added (starting)", r.stdout)
        b.wait_service("admin", "running")
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(os.path.join(b.dir, "admin.sock"))
        c.close()
        # The unchanged socket is the very same, on the same port.
        self.assertEqual(b.port("http"), port)
        self.assertTrue(inodes <= socket_inodes(b.pid), "a kept socket was reopened")
        self.assertEqual({p["pid"] for p in b.procs("web")}, web)
        admin = [p["pid"] for p in b.procs("admin")]
        b.write_config(BASE)
        r = b.ctl("reload", json_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        changes = {(c["kind"], c["name"], c["change"]) for c in harness.json.loads(r.stdout)["changes"]}
        self.assertEqual(changes, {("socket", "admin", "removed"), ("service", "admin", "removed")})
        poll(lambda: not alive(admin[0]), what="the removed service to stop")
        poll(lambda: "admin" not in [s["name"] for s in b.status()["services"]],
             what="the removed service to be forgotten")
        poll(lambda: not os.path.exists(os.path.join(b.dir, "admin.sock")),
             what="the removed unix socket's file to go")
        self.assertEqual(b.port("http"), port)
        self.assertEqual({p["pid"] for p in b.procs("web")}, web)

    def test_unchanged_socket_keeps_its_fd_across_reloads(self):
        b = self.batond(BASE)
        b.wait_service("web", "running")
        port = b.port("http")
        before = socket_inodes(b.pid)
        for _ in range(3):
            self.assertEqual(b.ctl("reload").returncode, 0)
        self.assertEqual(b.port("http"), port)
        self.assertEqual(socket_inodes(b.pid), before)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

    def test_changed_definition_waits_for_the_next_upgrade(self):
        b = self.batond(BASE)
        b.wait_service("web", "running")
        pids = {p["pid"] for p in b.procs("web")}
        b.write_config(BASE + "environment = RELEASE=two\n")
        b.signal(signal.SIGHUP)
        b.wait_log("reload: service web: changed: takes effect at the next upgrade or restart")
        self.assertEqual({p["pid"] for p in b.procs("web")}, pids)
        self.assertEqual(b.ctl("restart", "web").returncode, 0)
        reports = b.wait_reports(4)
        new = [r for pid, r in reports.items() if pid not in pids]
        self.assertEqual([r["env"].get("RELEASE") for r in new], ["two", "two"])

    def test_replaced_socket_serves_old_processes_until_they_go(self):
        b = self.batond(BASE)
        b.wait_service("web", "running")
        old_port = b.port("http")
        b.write_config(BASE.replace("tcp:127.0.0.1:0", "tcp:127.0.0.2:0"))
        r = b.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("socket http: replaced (127.0.0.2:", r.stdout)
        # The old processes still hold the old socket: it keeps accepting.
        with socket.create_connection(("127.0.0.1", old_port), timeout=5):
            pass
        self.assertEqual(b.ctl("upgrade", "--wait", "web").returncode, 0)
        b.wait_log("socket http: closed tcp 127.0.0.1:%d: no generation uses it any more" % old_port)
        self.assertTrue(b.status()["sockets"][0]["bound"].startswith("127.0.0.2:"))


if __name__ == "__main__":
    harness.main()
