#!/usr/bin/env python3
"""The example services of examples/, each run as its baton.conf says and
upgraded under load: not one request fails, every old process drains and runs
its cleanup, and one that ignores SIGTERM is killed at its stop_grace without.

What the tests ask of an example, beside its baton.conf: its cleanup prints
`example: pid PID gen GEN: drained, cleanup done` and appends that line to
$EXAMPLE_CLEANUP_FILE when set; EXAMPLE_IGNORE_TERM=1 makes it ignore SIGTERM.
"""

import os
import re
import shutil
import sys

import harness
from harness import poll

TRACE = re.compile(r"^example: pid (\d+) gen (\d+): drained, cleanup done$", re.M)


def example_config(name, command, conf="baton.conf", **keys):
    """examples/NAME/CONF on 127.0.0.1 port 0, running command: each of
    keys replaces the key of that name, or follows the command."""
    with open(os.path.join(harness.SOURCE_ROOT, "examples", name, conf)) as f:
        text = f.read()
    for key, value in dict(keys, listen="tcp:127.0.0.1:0", command=command).items():
        line = "%s = %s" % (key, value)
        text, n = re.subn(r"^%s = .*$" % key, lambda m: line, text, flags=re.M)
        if n == 0:
            text, n = re.subn(r"^command = .*$", lambda m: m.group(0) + "\n" + line, text,
                              flags=re.M)
        if n != 1:
            raise AssertionError("examples/%s/baton.conf: no single %s line" % (name, key))
    return text


class Example:
    """The tests of one example: NAME is its folder under examples/, COMMAND runs it (its program
    and arguments), MISSING says why its program may not be there."""

    name = None
    command = None
    missing = "the example is not built"

    def setUp(self):
        super().setUp()
        if not os.path.exists(harness.LOADGEN):
            self.skipTest("the load generator is not built")
        if not shutil.which(self.command[0]):
            self.skipTest("%s: not found: %s" % (self.command[0], self.missing))

    def config(self, **keys):
        return example_config(self.name, " ".join(self.command), **keys)

    def start(self, **keys):
        b = self.batond(self.config(**keys), start=False)
        self.trace_path = os.path.join(b.dir, "cleanup")
        b.env["EXAMPLE_CLEANUP_FILE"] = self.trace_path
        b.start()
        b.wait_service("web", "running")
        return b

    def draining(self, b):
        """The processes still draining, as batond and the kernel see them, and the end of
        batond's log."""
        procs = [p for p in b.procs("web") if p["role"] == "draining"]
        return "\n".join([" ".join("%s=%s" % kv for kv in p.items()) for p in procs] +
                         [harness.describe_pid(p["pid"]) for p in procs] +
                         b.log().splitlines()[-30:])

    def cleaned_up(self):
        """The pids whose cleanup ran, one per line of the trace."""
        return [int(pid) for pid, _ in TRACE.findall(harness.read(self.trace_path))]

    def test_10_upgrades_under_load(self):
        b = self.start()
        status, body = harness.http_get(b.port("http"))
        self.assertEqual(status, 200)
        self.assertRegex(body, r"^hello from pid \d+ gen 1\n$")
        load = harness.Load(b.port("http"))
        self.addCleanup(lambda: load.proc.poll() is None and load.proc.kill())
        poll(lambda: any(t.startswith("socket:") for t in harness.own_fds(load.proc.pid).values()),
             what="the load generator to connect")
        stopped = set()
        for mode in ["rolling:1"] * 5 + ["all"] * 5:
            b.write_config(self.config(upgrade=mode))
            stopped |= {p["pid"] for p in b.procs("web")}
            r = b.ctl("upgrade", "--wait", "web")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # As after a deployment: the old generation drains before the next one comes.
            poll(lambda: all(p["role"] != "draining" for p in b.procs("web")),
                 what="the old generation to drain", details=lambda: self.draining(b))
        result, err = load.stop()
        print("examples/%s: %d requests served, %d failed, in %.1fs"
              % (self.name, result["ok"], result["requests"] - result["ok"], result["seconds"]),
              file=sys.stderr)
        self.assert_no_failure(result, err)
        modes = re.findall(r"web: upgrading gen \d+ to gen \d+ \((\w+)", b.log())
        self.assertEqual(modes, ["rolling"] * 5 + ["all"] * 5)
        self.assertEqual(sorted(self.cleaned_up()), sorted(stopped))
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["upgrades"], svc["kills"]), (11, 10, 0))
        status, body = harness.http_get(b.port("http"))
        self.assertRegex(body, r"^hello from pid \d+ gen 11\n$")
        current = {p["pid"] for p in b.procs("web")}
        self.assert_exits_cleanly(b)
        self.assertEqual(sorted(self.cleaned_up()), sorted(stopped | current))

    def test_a_process_ignoring_sigterm_is_killed_before_its_cleanup(self):
        b = self.start(instances=1, stop_grace="500ms", environment="EXAMPLE_IGNORE_TERM=1")
        [old] = [p["pid"] for p in b.procs("web")]
        w = self.watch(b, "watch", "web")
        w.read_until(lambda o: o.get("type") == "proc")
        b.write_config(self.config(instances=1, stop_grace="500ms"))
        r = b.ctl("upgrade", "--wait", "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        killed = w.find(lambda o: o.get("kind") == "killed" and o.get("pid") == old)
        self.assertEqual(killed["signal"], "KILL")
        b.wait_log("web[%d] gen 1: killed by signal 9 (KILL)" % old)
        self.assertRegex(b.log(), r"web\[%d\] gen 1: killed .* its cleanup did not run" % old)
        self.assertEqual(b.service("web")["kills"], 1)
        self.assertEqual(self.cleaned_up(), [])
        # The new generation does not ignore SIGTERM: it drains and cleans up.
        [new] = [p["pid"] for p in b.procs("web")]
        self.assert_exits_cleanly(b)
        self.assertEqual(self.cleaned_up(), [new])


class CExample(Example, harness.TestCase):
    name = "c"
    command = [harness.EXAMPLE_C]


class GoExample(Example, harness.TestCase):
    name = "go"
    command = [harness.EXAMPLE_GO]
    missing = "go is not installed (scripts/deps installs golang-go)"


class PythonExample(Example, harness.TestCase):
    name = "python"
    # The Python of the tests: Debian's, as tests/meson.build finds it.
    command = [sys.executable, os.path.join(harness.SOURCE_ROOT, "examples", "python", "server.py")]


class PythonCheckedExample(harness.TestCase):
    """examples/python/baton-checked.conf: each process also answers on a socket
    of its own, and a check asks it there."""

    server = os.path.join(harness.SOURCE_ROOT, "examples", "python", "server.py")

    def setUp(self):
        super().setUp()
        if not os.path.exists(harness.LOADGEN):
            self.skipTest("the load generator is not built")

    def test_a_process_whose_check_fails_is_replaced_under_load(self):
        with open(os.path.join(harness.SOURCE_ROOT, "examples", "python",
                               "baton-checked.conf")) as f:
            self.assertIn("\ncheck = exec:python3 examples/python/server.py --check\n", f.read())
        # Run from anywhere: the server and its check by their full paths, checked more often.
        config = example_config("python", "%s %s" % (sys.executable, self.server),
                                conf="baton-checked.conf",
                                check="exec:%s %s --check" % (sys.executable, self.server),
                                check_interval="200ms", check_failures="2",
                                environment="HEALTH_DIR=@DIR@/health")
        b = self.batond(config, start=False)
        trace = os.path.join(b.dir, "cleanup")
        b.env["EXAMPLE_CLEANUP_FILE"] = trace
        b.start()
        b.wait_service("web", "running")
        poll(lambda: [p.get("check") for p in b.procs("web")] == ["ok", "ok"],
             what="both processes checked")
        status, body = harness.http_get(b.port("http"))
        self.assertEqual(status, 200)
        load = harness.Load(b.port("http"))
        self.addCleanup(lambda: load.proc.poll() is None and load.proc.kill())
        w = self.watch(b, "watch", "web")
        w.read_until(lambda o: o.get("type") == "proc")
        [sick, well] = [p["pid"] for p in sorted(b.procs("web"), key=lambda p: p["instance"])]
        path = os.path.join(b.dir, "health", "%d.sock" % sick)
        os.unlink(path)
        unhealthy = w.find(lambda o: o.get("kind") == "unhealthy" and o.get("pid") == sick)
        self.assertEqual(unhealthy["reason"], "check failed 2 times in a row: exited with "
                         "status 1: %s: No such file or directory" % path)
        spawned = w.find(lambda o: o.get("kind") == "spawned" and o.get("instance") == 0)
        ready = w.find(lambda o: o.get("kind") == "ready" and o.get("pid") == spawned["pid"])
        signalled = w.find(lambda o: o.get("kind") == "signalled" and o.get("pid") == sick)
        self.assertLess(w.lines.index(ready), w.lines.index(signalled))
        w.find(lambda o: o.get("kind") == "exited" and o.get("pid") == sick)
        result, err = load.stop()
        print("examples/python, checked: %d requests served, %d failed, in %.1fs"
              % (result["ok"], result["requests"] - result["ok"], result["seconds"]),
              file=sys.stderr)
        self.assert_no_failure(result, err)
        self.assertEqual([int(pid) for pid, _ in TRACE.findall(harness.read(trace))], [sick])
        self.assertEqual({p["pid"] for p in b.procs("web")}, {spawned["pid"], well})
        poll(lambda: [p.get("check") for p in b.procs("web")] == ["ok", "ok"],
             what="the replacement checked")
        self.assert_exits_cleanly(b)
        self.assertEqual(os.listdir(os.path.join(b.dir, "health")), [])


class NodeExample(Example, harness.TestCase):
    name = "node"
    command = ["node", os.path.join(harness.SOURCE_ROOT, "examples", "node", "server.js")]
    missing = "scripts/deps installs nodejs"


if __name__ == "__main__":
    harness.main()
