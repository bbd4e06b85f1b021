#!/usr/bin/env python3
"""Canary and gated upgrades (upgrade --canary, --observe, --continue, --abort,
--gate) of the test HTTP server (HTTPD, tests/helpers/httpd.c), under load
where no request may fail.

Each answer of the server names its generation and pid ("gen=2 pid=123"), so
a test can count what the canaries served while the upgrade was paused. With
--cleanup-dir the server writes DIR/PID once its drain has run to its end:
the mark that a canary sent away by --abort ran its cleanup. With --watch-closed
it says so when the kernel still reports events on a connection it has closed,
which happens while another process holds that socket.
"""

import collections
import json
import os
import re
import socket
import time

import harness
from harness import alive, poll

CONFIG = """
[socket:http]
listen = tcp:127.0.0.1:0
backlog = 1024

[service:web]
command = @HTTPD@ --cleanup-dir @DIR@/cleanup --watch-closed %(args)s
sockets = http
instances = %(instances)d
ready = notify
ready_timeout = 10s
stop_grace = 10s
upgrade = %(mode)s
max_draining = 4
restart_delay = 50ms
%(keys)s
"""


def config(mode="all", instances=4, args="", keys=""):
    return CONFIG % dict(mode=mode, instances=instances, args=args, keys=keys)


PAUSED = ("web: upgrade to gen 2 paused at its canaries: batonctl upgrade --continue web goes "
          "on, --abort ends it")

# A gate that keeps what it was given (DIR/gate-env.N, its Nth run, and which of the old
# processes were still alive), says what it looks at, and fails from its run FAIL_FROM on.
GATE = """#!/bin/sh
n=$(( $(cat @DIR@/gate-runs 2>/dev/null || echo 0) + 1 ))
echo $n > @DIR@/gate-runs
env | grep '^BATON_' > @DIR@/gate-env.$n
for pid in $BATON_OLD_PIDS; do kill -0 $pid 2>/dev/null && echo $pid; done > @DIR@/gate-alive.$n
echo "looking at gen $BATON_NEW_GEN: $BATON_UPGRADE_PHASE"
if [ $n -ge %(fail_from)d ]; then
    echo "error rate 7%% on gen $BATON_NEW_GEN after run $n" >&2
    exit 1
fi
echo "gen $BATON_NEW_GEN looks fine after run $n"
"""


def answer(port):
    """One GET on a new connection: the (gen, pid) that answered it."""
    status, body = harness.http_get(port)
    m = re.match(r"gen=(\d+) pid=(\d+)\n$", body)
    if status != 200 or not m:
        raise AssertionError("unexpected answer %d %r" % (status, body))
    return int(m.group(1)), int(m.group(2))


def held_connection(port):
    """A keep-alive connection that has had one answer, left open: (socket, gen, pid)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * harness.SLOW)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not re.search(rb"gen=\d+ pid=\d+\n$", data):
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("the server closed a keep-alive connection: %r" % data)
        data += chunk
    m = re.search(rb"gen=(\d+) pid=(\d+)\n$", data)
    return s, int(m.group(1)), int(m.group(2))


def metric(text, name, **labels):
    """The value of one sample of the metrics text, or None when it is not there."""
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
    return None if m is None else float(m.group(1))


class CanaryTest(harness.TestCase):
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

    # ---- helpers ----

    def start(self, conf):
        """batond on conf with @DIR@/cleanup made first, its service running."""
        b = self.batond(conf, start=False)
        os.mkdir(os.path.join(b.dir, "cleanup"))
        b.start()
        b.wait_service("web", "running")
        return b

    def load(self, b):
        load = harness.Load(b.port("http"))
        self.loads.append(load)
        poll(lambda: any(t.startswith("socket:") for t in harness.own_fds(load.proc.pid).values()),
             what="the load generator to connect")
        return load

    def watching(self, b):
        w = self.watch(b, "watch", "web")
        w.read_until(lambda o: o.get("type") == "proc")
        return w

    @staticmethod
    def pids(b, gen=None, state=None):
        return {p["pid"] for p in b.procs("web")
                if (gen is None or p["gen"] == gen) and (state is None or p["state"] == state)}

    @staticmethod
    def event(w, kind, pid=None, timeout=10.0, **fields):
        """The first event of kind (about pid) with fields, read already or to come, and
        its index among the lines read."""
        def match(o):
            return (o.get("type") == "event" and o.get("kind") == kind and
                    (pid is None or o.get("pid") == pid) and
                    all(o.get(k) == v for k, v in fields.items()))
        found = w.find(match, timeout)
        return w.lines.index(found), found

    @staticmethod
    def upgrade_events(w):
        return [o["state"] for o in w.events("upgrade")]

    def paused(self, b, *args):
        """upgrade --wait --canary 1 ARGS web, which returns once the canary is ready."""
        r = b.ctl("upgrade", "--wait", "--canary", "1", *args, "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(PAUSED, r.stdout)
        svc = b.service("web")
        self.assertEqual((svc["state"], svc["phase"], svc["gen"], svc["upgrading_to"]),
                         ("upgrading", "paused", 1, 2))
        return r

    def whole(self, b, old):
        """Waits until the old generation alone serves, with old as its processes, all ready."""
        poll(lambda: self.pids(b) == old and self.pids(b, 1, "ready") == old,
             what="the old processes %s alone, ready" % sorted(old))
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["state"], svc["ready"]), (1, "running", 4))
        self.assertNotIn("phase", svc)

    def count_answers(self, port, enough, limit=2000):
        """GETs on new connections until enough(counts) holds for the counts of answers by
        generation, at most limit of them; returns the counts and the pids that answered."""
        counts, pids = collections.Counter(), collections.defaultdict(set)
        deadline = time.monotonic() + 20 * harness.SLOW
        for _ in range(limit):
            gen, pid = answer(port)
            counts[gen] += 1
            pids[gen].add(pid)
            if enough(counts) or time.monotonic() > deadline:
                break
        return counts, pids

    def gate_script(self, b, fail_from=99):
        path = os.path.join(b.dir, "gate.sh")
        with open(path, "w") as f:
            f.write(b.expand(GATE % dict(fail_from=fail_from)))
        return "/bin/sh " + path

    @staticmethod
    def gate_run(b, n):
        """What the gate's Nth run had in its environment, and the old pids alive then."""
        env = dict(line.split("=", 1) for line in
                   harness.read(os.path.join(b.dir, "gate-env.%d" % n)).splitlines())
        alive_then = {int(p) for p in harness.read(os.path.join(b.dir, "gate-alive.%d" % n)).split()}
        return env, alive_then

    def assert_served(self, load):
        result, err = load.stop()
        self.assert_no_failure(result, err)
        return result

    # ---- 1. canary, then continue, under load ----

    def test_a_canary_serves_beside_every_old_process_then_continue_under_load(self):
        b = self.start(config(mode="all"))
        load = self.load(b)
        w = self.watching(b)
        old = self.pids(b, 1)
        self.assertEqual(len(old), 4)
        self.paused(b)
        (canary,) = self.pids(b, 2)
        self.assertEqual(self.pids(b, 1, "ready"), old, "no old process may go for a canary")

        # Paused: the canary takes its share of new connections, beside the 4 old processes.
        counts, answered = self.count_answers(b.port("http"), lambda c: c[1] >= 5 and c[2] >= 5)
        self.assertGreaterEqual(counts[2], 5, counts)
        self.assertGreaterEqual(counts[1], 5, counts)
        self.assertEqual(answered[2], {canary})
        self.assertLessEqual(answered[1], old)
        # ...and nothing else of gen 2 started meanwhile.
        self.assertEqual(self.pids(b, 2), {canary})
        self.assertEqual(b.service("web")["phase"], "paused")

        r = b.ctl("upgrade", "--wait", "--continue", "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("web: upgraded to gen 2", r.stdout)
        new = self.pids(b, 2, "ready")
        self.assertEqual(len(new), 4)
        self.assertIn(canary, new, "the canary is one of the 4: only 3 more start")

        # The events: the canary started and was ready before the pause; the other three
        # only after the continue.
        paused_at, _ = self.event(w, "upgrade", state="paused", gen=2)
        continued_at, continued = self.event(w, "upgrade", state="continued", gen=2)
        self.assertEqual(continued["reason"], "batonctl upgrade --continue")
        self.event(w, "upgrade", state="done", gen=2)
        spawned = [(w.lines.index(o), o["instance"]) for o in w.events("spawned") if o["gen"] == 2]
        self.assertEqual(len(spawned), 4, spawned)
        self.assertLess(spawned[0][0], paused_at)
        self.assertTrue(all(i > continued_at for i, _ in spawned[1:]), spawned)
        self.assertEqual(sorted(n for _, n in spawned), [0, 1, 2, 3])

        poll(lambda: not any(alive(p) for p in old), what="the old generation to drain")
        self.assert_served(load)
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["upgrades"], svc["rollbacks"], svc["kills"]),
                         (2, 1, 0, 0))
        self.assertEqual(answer(b.port("http"))[0], 2)

    # ---- 2. canary, then abort, under load ----

    def test_abort_drains_the_canary_with_its_cleanup_and_keeps_every_old_process(self):
        b = self.start(config(mode="rolling:1"))
        load = self.load(b)
        w = self.watching(b)
        old = self.pids(b, 1)
        self.paused(b)
        (canary,) = self.pids(b, 2)
        counts, _ = self.count_answers(b.port("http"), lambda c: c[2] >= 1)
        self.assertGreaterEqual(counts[2], 1, "the canary served nothing: %s" % counts)

        r = b.ctl("upgrade", "--abort", "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("web: upgrade to gen 2 aborted", r.stdout)
        _, aborted = self.event(w, "upgrade", state="aborted", gen=2)
        self.assertEqual(aborted["reason"], "batonctl upgrade --abort")

        # The canary drains: its stop signal, then it exits by itself well within its grace.
        _, signalled = self.event(w, "signalled", canary)
        self.assertEqual(signalled["signal"], "TERM")
        self.assertEqual(signalled["kill_in"], 10.0)
        end = w.find(lambda o: o.get("type") == "event" and o.get("pid") == canary and
                     o.get("kind") in ("exited", "killed", "sigkill"), timeout=15)
        self.assertEqual((end["kind"], end.get("exit")), ("exited", 0), end)
        self.assertLess(end["t"] - signalled["t"], 10.0)
        self.assertFalse(alive(canary))
        marker = os.path.join(b.dir, "cleanup", str(canary))
        self.assertEqual(harness.read(marker), "gen=2 pid=%d\n" % canary,
                         "the canary's drain did not run to its end")

        self.whole(b, old)
        svc = b.service("web")
        self.assertEqual(svc["reason"], "upgrade to gen 2 aborted: batonctl upgrade --abort")
        self.assertEqual((svc["upgrades"], svc["kills"]), (0, 0))
        self.assertEqual(os.listdir(os.path.join(b.dir, "cleanup")), [str(canary)],
                         "an old process drained")
        self.assertEqual(self.upgrade_events(w), ["started", "paused", "aborted"])
        self.assertEqual([o["pid"] for o in w.events("stopping")], [canary])
        self.assert_served(load)
        self.assertEqual(self.pids(b), old)
        self.assertEqual(answer(b.port("http"))[0], 1)

    # ---- 3. a canary that fails while it is observed ----

    def test_a_canary_that_crashes_while_observed_rolls_the_upgrade_back(self):
        b = self.start(config())
        w = self.watching(b)
        old = self.pids(b, 1)
        b.write_config(config(args="--crash-after-ms 500"))
        t0 = time.monotonic()
        self.paused(b, "--observe", "3s")
        (canary,) = self.pids(b, 2)
        _, paused = self.event(w, "upgrade", state="paused", gen=2)
        _, rolled = self.event(w, "upgrade", state="rolled-back", gen=2)
        why = "web[%d] gen 2: exited with status 70 during the upgrade" % canary
        self.assertEqual(rolled["reason"], why)
        _, exited = self.event(w, "exited", canary)
        self.assertEqual(exited["exit"], 70)
        self.whole(b, old)
        svc = b.service("web")
        self.assertEqual(svc["reason"], "upgrade to gen 2 rolled back: " + why)
        self.assertEqual((svc["rollbacks"], svc["upgrades"]), (1, 0))
        self.assertIn("web: upgrade to gen 2 rolled back: " + why, b.log())

        # The observation ended with the upgrade: past its 3s nothing goes on.
        left = t0 + 3.5 * harness.SLOW - time.monotonic()
        if left > 0:
            try:
                w.read_until(lambda o: o.get("state") == "continued", timeout=left / harness.SLOW)
            except AssertionError:
                pass
        self.assertEqual(self.upgrade_events(w), ["started", "paused", "rolled-back"])
        self.assertEqual([o["pid"] for o in w.events("spawned")], [canary])
        self.assertEqual(self.pids(b), old)
        self.assertGreater(rolled["t"] - paused["t"], 0.4)

    def test_a_canary_that_fails_its_check_while_observed_rolls_the_upgrade_back(self):
        b = self.start(config())
        w = self.watching(b)
        old = self.pids(b, 1)
        check = os.path.join(b.dir, "check.sh")
        sick = os.path.join(b.dir, "sick")
        with open(check, "w") as f:
            f.write("if [ -e %s ]; then echo 'error rate 9%% on the canary'; exit 1; fi\n"
                    "echo fine\n" % sick)
        b.write_config(config(keys="check = exec:/bin/sh %s\ncheck_interval = 100ms\n"
                                   "check_failures = 1\n" % check))
        self.paused(b, "--observe", "60s")
        (canary,) = self.pids(b, 2)
        open(sick, "w").close()
        _, rolled = self.event(w, "upgrade", state="rolled-back", gen=2)
        self.assertTrue(rolled["reason"].startswith("web[%d] gen 2: unhealthy: " % canary),
                        rolled["reason"])
        self.assertIn("error rate 9% on the canary", rolled["reason"])
        self.whole(b, old)
        svc = b.service("web")
        self.assertEqual(svc["reason"], "upgrade to gen 2 rolled back: " + rolled["reason"])
        self.assertEqual(svc["rollbacks"], 1)
        poll(lambda: not alive(canary), what="the sick canary to go")

    # ---- 4. a gate that fails after the second batch of a rolling upgrade ----

    def test_a_gate_failing_after_the_second_rolling_batch_rolls_everything_back(self):
        b = self.start(config(mode="rolling:1"))
        load = self.load(b)
        w = self.watching(b)
        old = self.pids(b, 1)
        gate = self.gate_script(b, fail_from=2)
        r = b.ctl("upgrade", "--wait", "--gate", gate, "web")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        why = "gate: error rate 7% on gen 2 after run 2"
        self.assertEqual(r.stderr, "batonctl: upgrade to gen 2 rolled back: %s\n" % why)
        self.assertEqual(harness.read(os.path.join(b.dir, "gate-runs")), "2\n")
        self.event(w, "upgrade", state="rolled-back", gen=2)

        # Each batch was judged before an old process went for it: the first old process
        # stopped only once the gate had passed the first batch.
        states = [(i, o["state"]) for i, o in enumerate(w.lines)
                  if o.get("kind") == "upgrade" and o.get("type") == "event"]
        self.assertEqual([s for _, s in states],
                         ["started", "gating", "gate-passed", "batch", "gating", "rolled-back"])
        passed = w.lines[states[2][0]]
        self.assertEqual(passed["reason"], "gen 2 looks fine after run 1")
        self.assertEqual(w.lines[states[-1][0]]["reason"], why)
        stops = [w.lines.index(o) for o in w.events("stopping") if o["gen"] == 1]
        self.assertEqual(len(stops), 1, "one old process is retired per batch passed")
        self.assertGreater(stops[0], states[2][0])

        env1, alive1 = self.gate_run(b, 1)
        env2, _ = self.gate_run(b, 2)
        self.assertEqual((env1["BATON_UPGRADE_PHASE"], env2["BATON_UPGRADE_PHASE"]),
                         ("batch 1 of 4", "batch 2 of 4"))
        self.assertEqual(len(env1["BATON_NEW_PIDS"].split()), 1)
        self.assertEqual(len(env2["BATON_NEW_PIDS"].split()), 2)
        self.assertEqual({int(p) for p in env1["BATON_OLD_PIDS"].split()}, old)
        self.assertEqual(alive1, old)

        # The old generation is whole again: the process the first batch retired is back,
        # anew, and the other three never stopped.
        retired = w.events("stopping")[0]["pid"]
        self.assertIn(retired, old)
        poll(lambda: len(self.pids(b, 1, "ready")) == 4 and not self.pids(b, 2),
             what="4 ready old processes and no new one")
        now = self.pids(b, 1, "ready")
        self.assertEqual(now & old, old - {retired})
        self.assertFalse(alive(retired))
        for pid in env2["BATON_NEW_PIDS"].split():
            poll(lambda: not alive(int(pid)), what="gen 2's pid %s to drain" % pid)
        svc = b.service("web")
        self.assertEqual((svc["gen"], svc["state"], svc["rollbacks"], svc["kills"]),
                         (1, "running", 1, 0))
        self.assertEqual(svc["reason"], "upgrade to gen 2 rolled back: " + why)
        self.assertNotIn("phase", svc)
        self.assert_served(load)

    # ---- 5. what status, metrics, watch, the gate and refusals show ----

    def test_status_and_metrics_while_paused_under_load_disturb_no_process(self):
        # What an operator does while a canary is observed: look, again and again. Counting
        # each generation's connections must not touch what the processes serve.
        b = self.start(config())
        load = self.load(b)
        self.paused(b)
        before = self.pids(b)

        def after_close():
            return [line for line in b.log().splitlines() if "after its close" in line]
        deadline = time.monotonic() + 10 * harness.SLOW
        for i in range(1000):
            r = b.ctl("metrics") if i % 2 else b.ctl("status", "web")
            self.assertEqual(r.returncode, 0, r.stderr)
            if time.monotonic() > deadline or (i % 50 == 49 and after_close()):
                break
        self.assert_served(load)
        svc = b.service("web")
        self.assertEqual((svc["restarts"], svc["phase"]), (0, "paused"))
        self.assertEqual(self.pids(b), before)
        found = after_close()
        if found:
            self.fail("%d events on connections after their close, while batond held their sockets; "
                      "the first:\n%s" % (len(found), "\n".join(found[:3])))

    def test_status_shows_the_phase_and_each_generations_processes(self):
        b = self.start(config())
        r = b.ctl("upgrade", "--wait", "--canary", "1", "web", json_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        records = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(records[-1], {"ok": True})
        self.assertEqual(records[-2], {"type": "upgrade", "service": "web", "gen": 2,
                                       "state": "paused"})

        st = b.status("web")
        (svc,) = st["services"]
        self.assertEqual((svc["state"], svc["phase"], svc["upgrading_to"]),
                         ("upgrading", "paused", 2))
        gens = {g["gen"]: (g["role"], g["procs"]) for g in st["gens"]}
        self.assertEqual(gens, {1: ("current", 4), 2: ("next", 1)})
        text = b.ctl("status", "web").stdout
        self.assertRegex(text, r"(?m)^web\s+upgrading \(paused\)\s+1->2\s+4/4\s")
        self.assertRegex(text, r"(?m)^SERVICE\s+GEN\s+ROLE\s+PROCS\s+CONNS\s")
        self.assertRegex(text, r"(?m)^web\s+1\s+current\s+4\s+\d+\s")
        self.assertRegex(text, r"(?m)^web\s+2\s+next\s+1\s+\d+\s")

        r = b.ctl("upgrade", "--wait", "--continue", "web", json_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        svc = b.service("web")
        self.assertEqual((svc["state"], svc["gen"]), ("running", 2))
        self.assertNotIn("phase", svc)
        self.assertNotRegex(b.ctl("status", "web").stdout, r"\(paused\)")

    def test_the_paused_event_counts_its_canaries_as_a_number(self):
        b = self.start(config())
        w = self.watching(b)
        self.paused(b)
        _, started = self.event(w, "upgrade", state="started", gen=2)
        _, paused = self.event(w, "upgrade", state="paused", gen=2)
        self.assertEqual((started["canary"], paused["canary"]), (1, 1))
        self.assertEqual((paused["spawned"], paused["instances"]), (1, 4))

    def test_metrics_count_each_generations_processes_and_connections(self):
        b = self.start(config())
        self.paused(b)
        (canary,) = self.pids(b, 2)
        port = b.port("http")
        # Connections held on each generation, as many as want says; the kernel shares them
        # out as it will.
        want = {1: 4, 2: 2}
        held, by_gen = [], collections.Counter()
        self.addCleanup(lambda: [s.close() for s, _, _ in held])
        deadline = time.monotonic() + 20 * harness.SLOW
        for _ in range(3000):
            conn = held_connection(port)
            if by_gen[conn[1]] < want[conn[1]]:
                held.append(conn)
                by_gen[conn[1]] += 1
            else:
                conn[0].close()
            if by_gen == want or time.monotonic() > deadline:
                break
        self.assertEqual(by_gen, want, "the canary took too few connections")
        self.assertEqual({pid for _, gen, pid in held if gen == 2}, {canary})

        def counted():
            text = b.ctl("metrics").stdout
            return {gen: metric(text, "baton_generation_connections", service="web",
                                gen=str(gen), role=role)
                    for gen, role in ((1, "current"), (2, "next"))}
        poll(lambda: counted() == want, what="metrics to count %s connections" % want)
        text = b.ctl("metrics").stdout
        self.assertEqual(metric(text, "baton_generation_processes", service="web", gen="1",
                                role="current"), 4)
        self.assertEqual(metric(text, "baton_generation_processes", service="web", gen="2",
                                role="next"), 1)
        self.assertEqual(metric(text, "baton_upgrade_phase", service="web", gen="2",
                                phase="paused"), 1)
        gens = {g["gen"]: g["conns"] for g in b.status("web")["gens"]}
        self.assertEqual(gens, want)
        self.assertRegex(b.ctl("status", "web").stdout,
                         r"(?m)^web\s+2\s+next\s+1\s+2\s")

        # What they hold now: closed connections are no longer counted.
        for s, _, _ in held:
            s.close()
        poll(lambda: counted() == {1: 0, 2: 0}, what="the connections to be counted out")

        self.assertEqual(b.ctl("upgrade", "--abort", "web").returncode, 0)
        poll(lambda: metric(b.ctl("metrics").stdout, "baton_upgrade_phase", service="web",
                            gen="2", phase="paused") is None,
             what="the phase to leave the metrics")

    def test_a_second_upgrade_and_a_reexec_are_refused_while_paused(self):
        b = self.start(config())
        self.paused(b)
        before = self.pids(b)
        refused = ("batonctl: the upgrade of web to gen 2 is paused at its canaries: batonctl "
                   "upgrade --continue web goes on, --abort ends it\n")
        for args in (("upgrade", "web"), ("upgrade", "--wait", "web"),
                     ("upgrade", "--canary", "2", "web")):
            r = b.ctl(*args)
            self.assertEqual((r.returncode, r.stderr), (1, refused), args)
        r = b.ctl("reexec")
        self.assertEqual((r.returncode, r.stderr), (1, "batonctl: an upgrade is in progress: web\n"))
        self.assertIsNone(b.proc.poll())
        self.assertEqual(self.pids(b), before)
        self.assertEqual(b.service("web")["phase"], "paused")
        # Still paused: the operator's word goes on.
        r = b.ctl("upgrade", "--wait", "--continue", "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(b.service("web")["gen"], 2)

    def test_continue_and_abort_need_an_upgrade_paused_at_its_canaries(self):
        b = self.start(config(instances=2))
        for verb in ("--continue", "--abort"):
            r = b.ctl("upgrade", verb, "web")
            self.assertEqual((r.returncode, r.stderr),
                             (1, "batonctl: web has no upgrade in progress\n"), verb)
        # Its canary not ready yet: nothing to continue from.
        b.write_config(config(instances=2, args="--ready-delay-ms 5000"))
        self.assertEqual(b.ctl("upgrade", "--canary", "1", "web").returncode, 0)
        poll(lambda: b.service("web").get("phase") == "canary", what="the canary phase")
        r = b.ctl("upgrade", "--continue", "web")
        self.assertEqual((r.returncode, r.stderr), (1, "batonctl: the upgrade of web to gen 2 "
                                                       "is not paused: it is canary\n"))
        self.assertEqual(b.ctl("upgrade", "--abort", "web").returncode, 0)
        self.assertEqual(b.service("web")["gen"], 1)
        for args in (("--continue", "--abort"), ("--continue", "--canary", "1"),
                     ("--observe", "1s"), ("--gate", "/bin/sh -c 'exit 0'")):
            r = b.ctl("upgrade", *args, "web")
            self.assertEqual(r.returncode, 2, (args, r.stderr))

    def test_upgrade_wait_fails_when_the_canary_fails_before_the_pause(self):
        b = self.start(config())
        old = self.pids(b, 1)
        b.write_config(config().replace("command = @HTTPD@", "command = /bin/sh -c 'exit 3' "))
        r = b.ctl("upgrade", "--wait", "--canary", "1", "web")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"^batonctl: upgrade to gen 2 rolled back: web\[\d+\] gen 2: "
                                   r"exited with status 3 before it was ready\n$")
        self.assertNotIn("paused", r.stdout)
        self.whole(b, old)

    def test_observe_goes_on_by_itself_when_no_canary_failed(self):
        b = self.start(config(mode="rolling:2"))
        w = self.watching(b)
        old = self.pids(b, 1)
        self.paused(b, "--observe", "1s")
        (canary,) = self.pids(b, 2)
        _, paused = self.event(w, "upgrade", state="paused", gen=2)
        _, continued = self.event(w, "upgrade", state="continued", gen=2)
        self.assertEqual(continued["reason"], "observed for 1s: no canary failed")
        self.assertGreaterEqual(continued["t"] - paused["t"], 1.0)
        self.event(w, "upgrade", state="done", gen=2)
        svc = b.wait_service("web", "running")
        self.assertEqual((svc["gen"], svc["upgrades"]), (2, 1))
        procs = [p for p in b.procs("web") if p["gen"] == 2]
        self.assertEqual(sorted(p["instance"] for p in procs), [0, 1, 2, 3])
        self.assertIn(canary, {p["pid"] for p in procs})
        self.assertEqual(len([o for o in w.events("spawned") if o["gen"] == 2]), 4)
        poll(lambda: not any(alive(p) for p in old), what="the old generation to drain")
        self.assertIn("web: upgrade to gen 2 goes on: observed for 1s: no canary failed", b.log())

    def test_the_gate_judges_the_canaries_on_continue_then_the_rest(self):
        b = self.start(config())
        w = self.watching(b)
        old = self.pids(b, 1)
        gate = self.gate_script(b)
        self.paused(b, "--gate", gate)
        self.assertFalse(os.path.exists(os.path.join(b.dir, "gate-runs")),
                         "the gate ran before the continue")
        (canary,) = self.pids(b, 2)
        r = b.ctl("upgrade", "--wait", "--continue", "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(harness.read(os.path.join(b.dir, "gate-runs")), "2\n")
        new = self.pids(b, 2)

        env1, alive1 = self.gate_run(b, 1)
        named = ("BATON_SERVICE", "BATON_OLD_GEN", "BATON_NEW_GEN", "BATON_NEW_PIDS")
        self.assertEqual({k: env1.get(k) for k in named},
                         {"BATON_SERVICE": "web", "BATON_OLD_GEN": "1", "BATON_NEW_GEN": "2",
                          "BATON_NEW_PIDS": str(canary)})
        self.assertEqual({int(p) for p in env1["BATON_OLD_PIDS"].split()}, old)
        self.assertNotEqual(env1["BATON_UPGRADE_PHASE"], "")
        self.assertEqual(alive1, old)
        env2, alive2 = self.gate_run(b, 2)
        self.assertEqual({int(p) for p in env2["BATON_NEW_PIDS"].split()}, new)
        self.assertEqual(len(new), 4)
        self.assertEqual(alive2, old, "an old process stopped before the gate passed the rest")

        self.event(w, "upgrade", state="done", gen=2)
        states = self.upgrade_events(w)
        self.assertEqual(states, ["started", "paused", "continued", "gating", "gate-passed",
                                  "batch", "gating", "gate-passed", "done"])
        passed = [o["reason"] for o in w.events("upgrade") if o["state"] == "gate-passed"]
        self.assertEqual(passed, ["gen 2 looks fine after run 1", "gen 2 looks fine after run 2"])

    def test_a_gate_failing_on_the_canaries_leaves_every_old_process(self):
        b = self.start(config())
        w = self.watching(b)
        old = self.pids(b, 1)
        self.paused(b, "--gate", self.gate_script(b, fail_from=1))
        (canary,) = self.pids(b, 2)
        r = b.ctl("upgrade", "--wait", "--continue", "web")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        why = "gate: error rate 7% on gen 2 after run 1"
        self.assertEqual(r.stderr, "batonctl: upgrade to gen 2 rolled back: %s\n" % why)
        self.whole(b, old)
        self.event(w, "stopping", canary)
        self.assertEqual([o["pid"] for o in w.events("stopping")], [canary])
        self.assertEqual([o["pid"] for o in w.events("spawned")], [canary])
        poll(lambda: not alive(canary), what="the canary to drain")
        self.assertEqual(b.service("web")["reason"], "upgrade to gen 2 rolled back: " + why)


    def test_abort_while_the_gate_runs_kills_the_gate_and_everything_it_started(self):
        b = self.start(config())
        w = self.watching(b)
        old = self.pids(b, 1)
        gate = os.path.join(b.dir, "slow-gate.sh")
        with open(gate, "w") as f:
            f.write("sleep 60 &\necho $$ $! > %s/gate-pids\nwait\n" % b.dir)
        self.paused(b, "--gate", "/bin/sh " + gate)
        (canary,) = self.pids(b, 2)
        r = b.ctl("upgrade", "--continue", "web")
        self.assertEqual((r.returncode, r.stdout), (0, "web: upgrade to gen 2 continued\n"))
        shell, sleeper = map(int, poll(lambda: harness.read(os.path.join(b.dir, "gate-pids")).split(),
                                       what="the gate to start"))
        self.assertEqual(b.service("web")["phase"], "gating")
        self.assertRegex(b.ctl("status", "web").stdout, r"(?m)^web\s+upgrading \(gating\)\s+1->2\s")
        self.assertEqual(metric(b.ctl("metrics").stdout, "baton_upgrade_phase", service="web",
                                gen="2", phase="gating"), 1)
        r = b.ctl("upgrade", "--abort", "web")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        poll(lambda: not alive(shell) and not alive(sleeper), what="the gate and its sleep to end")
        self.whole(b, old)
        poll(lambda: not alive(canary), what="the canary to drain")
        self.event(w, "upgrade", state="aborted", gen=2)
        self.assertEqual(self.upgrade_events(w), ["started", "paused", "continued", "gating",
                                                  "aborted"])
        self.assertEqual(b.service("web")["reason"],
                         "upgrade to gen 2 aborted: batonctl upgrade --abort")

    def test_status_names_each_batch_of_a_rolling_upgrade(self):
        b = self.start(config(mode="rolling:1"))
        b.write_config(config(mode="rolling:1", args="--ready-delay-ms 400"))
        self.assertEqual(b.ctl("upgrade", "web").returncode, 0)
        seen = []
        deadline = time.monotonic() + 20 * harness.SLOW
        while time.monotonic() < deadline:
            svc = b.service("web")
            if svc["gen"] == 2:
                break
            if svc.get("phase") and svc["phase"] not in seen:
                seen.append(svc["phase"])
            time.sleep(0.02)
        self.assertEqual(b.service("web")["gen"], 2)
        self.assertEqual(seen, ["batch 1 of 4", "batch 2 of 4", "batch 3 of 4", "batch 4 of 4"])


if __name__ == "__main__":
    harness.main()
