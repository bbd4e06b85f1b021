#!/usr/bin/env python3
"""Upgrades and rollbacks of the test HTTP server (HTTPD, tests/helpers/httpd.c) under
continuous load.

The load generator counts every refused connect, reset, early close, timeout
and non-200 answer; the promise is that there are none.
"""

import os

import harness
from harness import poll

CONFIG = """
[socket:http]
listen = tcp:127.0.0.1:0
backlog = 1024

[service:web]
command = @HTTPD@ %(args)s
sockets = http
instances = %(instances)d
ready = notify
ready_timeout = %(timeout)s
stop_grace = 10s
upgrade = %(mode)s
max_draining = 4
restart_delay = 50ms
"""


def config(mode="all", instances=2, timeout="10s", args=""):
    return CONFIG % dict(mode=mode, instances=instances, timeout=timeout, args=args)


class LoadTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(harness.HTTPD) or not os.path.exists(harness.LOADGEN):
            self.skipTest("the test server or the load generator is not built")
        self.loads = []

    def tearDown(self):
        for load in self.loads:
            if load.proc.poll() is None:
                load.proc.kill()
                load.proc.wait()
        super().tearDown()

    def start(self, conf):
        b = self.batond(conf)
        b.wait_service("web", "running")
        load = harness.Load(b.port("http"))
        self.loads.append(load)
        poll(lambda: harness.http_get(b.port("http"))[0] == 200, what="the server to answer")
        return b, load

    def upgrades(self, mode):
        b, load = self.start(config(mode=mode))
        gens = set()
        for _ in range(20):
            r = b.ctl("upgrade", "--wait", "web")
            self.assertEqual(r.returncode, 0, r.stderr + b.log()[-2000:])
            gens.add(b.service("web")["gen"])
        result, err = load.stop()
        self.assert_no_failure(result, err)
        self.assertEqual(len(gens), 20)
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["upgrades"], svc["kills"]), (21, 20, 0))
        status, body = harness.http_get(b.port("http"))
        self.assertEqual(status, 200)
        self.assertTrue(body.startswith("gen=21 "), body)

    def test_20_upgrades_all_at_once(self):
        self.upgrades("all")

    def test_20_upgrades_rolling(self):
        self.upgrades("rolling:1")

    def rollback(self, new_args, reason, timeout="10s", new_command=None):
        b, load = self.start(config(timeout=timeout))
        old = {p["pid"] for p in b.procs("web")}
        conf = config(timeout=timeout, args=new_args)
        if new_command:
            conf = conf.replace("command = @HTTPD@", "command = " + new_command)
        b.write_config(conf)
        r = b.ctl("upgrade", "--wait", "web")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("rolled back", r.stderr)
        self.assertIn(reason, r.stderr)
        poll(lambda: {p["pid"] for p in b.procs("web")} == old, what="only the old processes")
        result, err = load.stop()
        self.assert_no_failure(result, err)
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["state"], svc["rollbacks"]), (1, "running", 1))

    def test_rollback_when_the_new_command_exits(self):
        self.rollback("", "exited with status 1 before it was ready",
                      new_command="/bin/sh -c 'exit 1'")

    def test_rollback_when_never_ready(self):
        self.rollback("--no-ready", "not ready after 1s (ready_timeout)", timeout="1s")

    def test_rollback_when_the_binary_is_missing(self):
        self.rollback("", "exec /nonexistent/httpd: No such file or directory",
                      new_command="/nonexistent/httpd")


if __name__ == "__main__":
    harness.main()
