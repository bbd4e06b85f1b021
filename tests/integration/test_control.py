#!/usr/bin/env python3
"""The control socket: permissions, one batond per socket, bad clients, batonctl."""

import grp
import json
import re
import os
import pwd
import socket
import stat
import subprocess
import time

import harness
from harness import poll

CONFIG = """
[service:svc]
command = @TESTCHILD@
instances = 2
"""


def connect(b):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b.control)
    s.settimeout(5)
    return s


def request(b, data, shut=True):
    """Sends raw bytes and returns everything batond answers until it closes."""
    with connect(b) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode(errors="replace")
            out += chunk


def timed_status(b):
    t0 = time.monotonic()
    r = b.ctl("status")
    return r.returncode, time.monotonic() - t0


class SocketTest(harness.TestCase):
    def test_mode_0600_from_creation(self):
        b = self.batond(CONFIG)
        st = os.stat(b.control)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_second_batond_refused_on_a_live_socket(self):
        b = self.batond(CONFIG)
        r = subprocess.run([harness.BATOND, "-c", b.config_path, "-s", b.control],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("another batond is running there", r.stderr)
        self.assertEqual(b.ctl("status").returncode, 0, "the first batond must keep serving")

    def test_stale_socket_is_replaced(self):
        b = self.batond(CONFIG, start=False)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(b.control)
        stale.close()
        b.start()
        self.assertEqual(b.ctl("status").returncode, 0)

    def test_socket_removed_at_exit(self):
        b = self.batond(CONFIG)
        self.assert_exits_cleanly(b)
        self.assertFalse(os.path.exists(b.control))


class PeerTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root to act as another user")
        self.nobody = pwd.getpwnam("nobody")

    def open_up(self, b):
        # Let nobody reach the socket file, so that batond's own check is what refuses.
        os.chmod(b.dir, 0o755)
        os.chmod(b.control, 0o666)

    def test_other_uid_refused(self):
        b = self.batond(CONFIG)
        self.open_up(b)
        r = b.ctl("status", user=self.nobody.pw_uid, group=self.nobody.pw_gid)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("uid %d may not use batond" % self.nobody.pw_uid, r.stderr)
        b.wait_log("control: refused uid %d" % self.nobody.pw_uid)
        self.assertEqual(b.ctl("status").returncode, 0)

    def test_control_group_members_allowed(self):
        group = grp.getgrgid(self.nobody.pw_gid).gr_name
        b = self.batond("[baton]\ncontrol_group = %s\n" % group + CONFIG)
        st = os.stat(b.control)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, self.nobody.pw_gid)
        os.chmod(b.dir, 0o755)
        r = b.ctl("status", user=self.nobody.pw_uid, group=self.nobody.pw_gid)
        self.assertEqual(r.returncode, 0, r.stderr)


class BadClientTest(harness.TestCase):
    def test_malformed_requests_get_errors(self):
        b = self.batond(CONFIG)
        cases = {
            b"\x00\x01\xff garbage\n": "error usage request has a non-printable byte",
            b"\n": "error usage empty request",
            b"frobnicate\n": 'error unknown-verb unknown verb "frobnicate"',
            b"status a b\n": "error usage usage: status [SERVICE]",
            b"start\n": "error usage usage: start SERVICE",
            b"upgrade --now svc\n": "error usage upgrade: unknown option --now",
            b"status --wait\n": "error usage status: unknown option --wait",
            b"signal svc NOSUCH\n": "error usage expected a signal name",
        }
        for data, expected in cases.items():
            self.assertTrue(request(b, data).startswith(expected), (data, request(b, data)))
        self.assertEqual(b.ctl("status").returncode, 0)

    def test_oversized_request_is_refused_and_closed(self):
        b = self.batond(CONFIG)
        with connect(b) as s:
            out = harness.send_and_read(s, b"status " + b"x" * (10 << 20) + b"\n")
        self.assertTrue(out.startswith(b"error too-long request line longer than 1023 bytes"), out)
        self.assertEqual(b.ctl("status").returncode, 0)

    def test_by_hand_and_pipelined(self):
        b = self.batond(CONFIG)
        out = request(b, b"version\r\nstatus svc\n")
        lines = out.splitlines()
        self.assertEqual(lines[0], "version version=0.1.0 protocol=1")
        self.assertEqual(lines[1], "ok")
        self.assertTrue(lines[2].startswith("socket ") or lines[2].startswith("service name=svc"))
        self.assertEqual(lines[-1], "ok")

    def test_silent_and_slow_clients_do_not_stall_others(self):
        b = self.batond(CONFIG)
        silent = [connect(b) for _ in range(20)]
        slow = connect(b)
        for ch in b"statu":
            slow.send(bytes([ch]))
            code, took = timed_status(b)
            self.assertEqual(code, 0)
            self.assertLess(took, 1.0)
        for s in silent + [slow]:
            s.close()

    def test_many_idle_clients_make_room(self):
        b = self.batond(CONFIG)
        idle = []
        for _ in range(300):
            idle.append(connect(b))
        code, took = timed_status(b)
        self.assertEqual(code, 0)
        b.wait_log("clients connected: closing the oldest idle one")
        for s in idle:
            s.close()

    def test_client_that_disconnects_mid_reply(self):
        b = self.batond(CONFIG)
        for _ in range(50):
            with connect(b) as s:
                s.sendall(b"status\n")
        self.assertEqual(b.ctl("status").returncode, 0)


class BatonctlTest(harness.TestCase):
    def test_exit_codes(self):
        b = self.batond(CONFIG)
        self.assertEqual(b.ctl("status").returncode, 0)
        self.assertEqual(b.ctl("status", "nosuch").returncode, 1)
        self.assertEqual(b.ctl("frobnicate").returncode, 2)
        self.assertEqual(b.ctl("start").returncode, 2)
        self.assertEqual(b.ctl("status", "a", "b").returncode, 2)
        self.assertEqual(b.ctl("status", "--wait").returncode, 2)
        self.assertEqual(b.ctl("--bogus", "status").returncode, 2)
        r = subprocess.run([harness.BATONCTL, "-s", os.path.join(b.dir, "none.sock"), "status"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot reach batond at", r.stderr)

    def test_json(self):
        b = self.batond(CONFIG)
        b.wait_service("svc", "running")
        st = b.status()
        self.assertTrue(st["ok"])
        self.assertEqual(st["daemon"]["pid"], b.pid)
        self.assertEqual(st["services"][0]["name"], "svc")
        self.assertEqual(st["services"][0]["instances"], 2)
        # Without a service, only processes that need attention are listed.
        self.assertEqual(st["procs"], [])
        st = b.status("svc")
        self.assertEqual(len(st["procs"]), 2)
        self.assertIsInstance(st["procs"][0]["pid"], int)
        r = b.ctl("status", "nosuch", json_output=True)
        self.assertEqual(r.returncode, 1)
        err = json.loads(r.stdout)
        self.assertEqual(err, {"ok": False, "error": {"code": "not-found",
                                                      "message": 'no service named "nosuch"'}})

    def test_text_status(self):
        b = self.batond(CONFIG)
        b.wait_service("svc", "running")
        out = b.ctl("status").stdout
        self.assertIn("SERVICE  STATE    GEN  READY", out)
        self.assertRegex(out, r"svc\s+running\s+1\s+2/2")
        self.assertIn("2 ready processes of current generations not listed", out)
        out = b.ctl("status", "svc").stdout
        # Every process (instance, pid), and once what its generation runs.
        self.assertEqual(len(re.findall(r"^svc\s+1\s+current\s+\d+\s+\d+\s+ready", out, re.M)), 2)
        self.assertEqual(len(re.findall(r"^svc\s+1\s+current\s+2\s+\d+\s+/\S+", out, re.M)), 1, out)

    def test_text_status_rows_say_what_json_says(self):
        # A service's row of `batonctl status`, in each state that adds to it:
        # an upgrade's phase and next generation, removed, a reason; one whose
        # command is quoted in its record too.
        config = """
[service:plain]
command = @TESTCHILD@

[service:quoted]
command = /bin/sh -c "exit 3"
restart = never

[service:upgrading]
command = @TESTCHILD@
instances = 2

[service:leaving]
command = @TESTCHILD@ --ignore-term
stop_grace = 4s
"""
        b = self.batond(config)
        b.wait_service("upgrading", "running")
        b.wait_service("leaving", "running")
        b.wait_service("quoted", "failed")
        r = b.ctl("upgrade", "--canary", "1", "upgrading")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        poll(lambda: b.service("upgrading").get("phase") == "paused", what="the canary's pause")
        b.write_config(config[:config.index("[service:leaving]")])
        self.assertEqual(b.ctl("reload").returncode, 0)
        poll(lambda: any(s["name"] == "leaving" and s.get("removed")
                         for s in b.status()["services"]), what="leaving removed, draining")
        services = b.status()["services"]
        out = b.ctl("status").stdout
        # The services' table: from its head to the first blank line; the reasons,
        # its last lines, have not seven cells.
        table = out[out.index("SERVICE  "):].split("\n\n")[0].splitlines()[1:]
        rows = {cells[0]: cells for cells in (re.split(r"\s{2,}", l.strip()) for l in table)
                if len(cells) == 7}
        for svc in services:
            state = svc["state"] + (" (%s)" % svc["phase"] if svc.get("phase") else "") + \
                (" (removed)" if svc.get("removed") else "")
            gen = str(svc["gen"]) + ("->%d" % svc["upgrading_to"] if "upgrading_to" in svc else "")
            want = [svc["name"], state, gen, "%d/%d" % (svc["ready"], svc["instances"]),
                    str(svc["restarts"]), str(svc["upgrades"]), str(svc["kills"])]
            self.assertEqual(rows.get(svc["name"]), want, out)
        self.assertEqual(len(rows), 4, out)
        self.assertEqual(rows["upgrading"][1:3], ["upgrading (paused)", "1->2"], out)
        self.assertEqual(rows["leaving"][1], "stopping (removed)", out)
        self.assertIn("\nquoted: %s\n" % b.service("quoted")["reason"], out)
        self.assertIn("exited with status 3", b.service("quoted")["reason"])

    def test_status_of_many_services_is_whole(self):
        # 400 services' records outgrow the 32 KiB that batond sends as it
        # builds the rest: every one arrives, once, in order, in both forms.
        names = ["s%03d" % i for i in range(400)]
        b = self.batond("".join("[service:%s]\ncommand = /bin/sleep 1000\n\n" % n
                                for n in names))
        poll(lambda: sum(s["state"] == "running" for s in b.status()["services"]) == 400,
             timeout=30, what="400 services running")
        st = b.status()
        self.assertEqual([s["name"] for s in st["services"]], names)
        self.assertEqual(st["procs"], [])
        out = b.ctl("status").stdout
        rows = re.findall(r"^(s\d{3})\s+running\s+1\s+1/1\s+0\s+0\s+0$", out, re.M)
        self.assertEqual(rows, names, out[-500:])
        self.assertTrue(out.rstrip().endswith(
            "400 ready processes of current generations not listed: "
            "batonctl status SERVICE lists them."), out[-300:])

    def test_status_of_every_service_follows_each_change(self):
        # batond sends a service's record again as it was made while nothing it
        # is made of has changed. After each change the record in the status of
        # every service shows it, and is the one `status SERVICE` builds anew.
        config = """
[service:a]
command = @TESTCHILD@
restart = always
stop_grace = 200ms

[service:b]
command = @TESTCHILD@ --ignore-term
stop_grace = 200ms
"""
        b = self.batond(config)

        def services():
            return {s["name"]: s for s in b.status()["services"]}

        def follows(name, **want):
            # Polled until the two agree: a draining process may go between them.
            def seen():
                s = services().get(name)
                return (s is not None and all(s.get(k) == v for k, v in want.items()) and
                        s == b.service(name))
            poll(seen, what="service %s with %r in the status of every service, "
                 "as in status %s" % (name, want, name))

        follows("a", state="running", gen=1, ready=1, restarts=0)
        follows("b", state="running", kills=0)
        os.kill(b.procs("a")[0]["pid"], 9)
        follows("a", state="running", restarts=1)
        self.assertEqual(b.ctl("upgrade", "--wait", "a").returncode, 0)
        follows("a", state="running", gen=2, upgrades=1)
        self.assertEqual(b.ctl("stop", "--wait", "b").returncode, 0)
        follows("b", state="stopped", running=0, kills=1)
        b.write_config(config.replace("restart = always", "restart = always\ninstances = 2")
                       .replace("--ignore-term", "--exit 0"))
        self.assertEqual(b.ctl("reload").returncode, 0)
        # A reload changes what the next generation runs, and the command shown.
        follows("b", state="stopped", command=harness.TESTCHILD + " --exit 0")
        self.assertEqual(b.ctl("upgrade", "--wait", "a").returncode, 0)
        follows("a", state="running", gen=3, instances=2, ready=2, upgrades=2)
        b.write_config(config.split("[service:b]")[0])
        self.assertEqual(b.ctl("reload").returncode, 0)
        poll(lambda: list(services()) == ["a"], what="b gone from the status")
        follows("a", state="running", gen=3, ready=2)

    def test_signal(self):
        b = self.batond("""
[service:svc]
command = @TESTCHILD@ --log @DIR@/log
instances = 2
""")
        b.wait_service("svc", "running")
        r = b.ctl("signal", "svc", "TERM")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "svc: sent SIGTERM to 2 processes")
        poll(lambda: harness.read(os.path.join(b.dir, "log")).count(" term ") == 2,
             what="both processes to get SIGTERM")

    def test_shutdown(self):
        b = self.batond(CONFIG)
        self.assertEqual(b.ctl("shutdown").returncode, 0)
        self.assertEqual(b.wait_exit(), 0)

    def test_help_and_version(self):
        r = subprocess.run([harness.BATONCTL, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("upgrade [--wait] [--canary N [--observe DURATION]] [--gate COMMAND] SERVICE", r.stdout)
        r = subprocess.run([harness.BATONCTL, "--version"], capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "batonctl 0.1.0")


if __name__ == "__main__":
    harness.main()
