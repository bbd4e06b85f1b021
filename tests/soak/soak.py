#!/usr/bin/env python3
"""A soak of batond: continuous load and a seeded random mix of operations.

    soak.py --seconds S [--seed N] [--keep]

runs batond (a copy of BATOND in a temporary directory) with four services:
web, the test HTTP server (HTTPD) under the load generator (LOADGEN), new
connections and keep-alive ones; crashy, the same server on a socket of its
own, which takes the crashes; chatty and loud, testchild (TESTCHILD)
processes that flood a file sink and batond's stderr. For S seconds it runs
operations one after another: first one of each kind in a fixed order,
then kinds drawn by weight from a random.Random(N). Every choice an
operation makes comes from the same generator, so that a seed names a run.

Each operation checks its outcome (exit status, message, status and
counters of batonctl); a monitor checks all along that the load sees no
failed request, that batond lives and leaves no zombie, and samples its fds
and RSS. At quiet points (nothing starting or draining) the fds batond holds
beside its control connections and the file sink (open once at most) must be
as many as the first time with the same services, and RSS must stay within
RSS_GROWTH_KIB of what it was after the first pass. After the shutdown, no
process batond started may be left, nor its cgroup. The first violation ends
the run: the script prints what, the operation, the time and the seed, keeps
the directory, and exits 1.

scripts/soak MINUTES [SEED] runs it on the normal build; tests/meson.build
runs it there for 90 s with seed 1 (suite soak), not in the sanitizer build.
"""

import argparse
import collections
import ctypes
import datetime
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

SLOW = harness.SLOW
WEB_INSTANCES = 3
# Lines each chatty process writes to its file sink at a flood, and loud to batond's stderr.
FLOOD_LINES = 20000
LOUD_LINES = 2000
# A watchdog no process under a loaded machine misses, but one SIGSTOP'd does.
WATCHDOG_S = 3 * SLOW
LOADGEN_CONNS = 16
# Each request of the load waits this long in the server: enough requests to
# matter, little enough CPU to share 2 cores with the rest of the test suite.
LOADGEN_SLOW_MS = 5
# A request not answered within this is a failure (a SIGSTOP'd server holds
# some for the watchdog and the start of its replacement).
LOADGEN_TIMEOUT_MS = 20000
# Bounds: RSS at the end against after the first pass; fds at quiet points.
RSS_GROWTH_KIB = 1024
MIN_UPGRADES_PER_MINUTE = 10
# A zombie child of batond older than this is one it did not reap.
ZOMBIE_S = 1.0
# The control flood: batonctl clients and raw connections at once, well
# under the 256 batond serves at once.
FLOOD_CTL = 24
FLOOD_RAW = 48

WEIGHTS = collections.OrderedDict([
    ("upgrade-all", 10),
    ("upgrade-rolling", 10),
    ("canary-continue", 6),
    ("canary-abort", 4),
    ("gate-pass", 3),
    ("gate-fail", 2),
    ("rollback-exit", 3),
    ("rollback-never-ready", 2),
    ("rollback-missing", 3),
    ("crash", 6),
    ("sigstop", 3),
    ("reload-valid", 4),
    ("reload-invalid", 3),
    ("reexec", 4),
    ("reexec-handback", 1),
    ("control-flood", 3),
    ("log-flood-file", 3),
    ("log-flood-stderr", 2),
])

CONFIG = """\
[baton]
cgroup = {cgroup}

[socket:http]
listen = tcp:127.0.0.1:0
backlog = 1024

[socket:side]
listen = tcp:127.0.0.1:0

[service:web]
command = {web_command}
sockets = http
instances = {web_instances}
ready = notify
ready_timeout = {web_ready_timeout}
watchdog = {watchdog}
stop_grace = 10s
upgrade = {web_mode}
max_draining = 4
restart_delay = 50ms

[service:crashy]
command = {httpd} --version crashy
sockets = side
instances = 2
ready = notify
restart_delay = 20ms
restart_delay_max = 200ms
start_limit = none
stop_grace = 5s

[service:chatty]
command = {testchild} --print-on-usr1 {flood_lines} --print-size 100 --print-to out
instances = 2
log = file:{dir}/chatty.log
log_max_size = 4MiB
log_keep = 2
log_buffer = 2MiB
stop_grace = {chatty_grace}
restart_delay = 20ms
restart_delay_max = 200ms
start_limit = none

[service:loud]
command = {testchild} --print-on-usr1 {loud_lines} --print-size 120 --print-to err
stop_grace = 5s
"""

EXTRA = """
[socket:extra]
listen = tcp:127.0.0.1:0

[service:extra]
command = {httpd} --version extra
sockets = extra
ready = notify
stop_grace = 5s
"""

GATE_PASS = """#!/bin/sh
for p in $BATON_NEW_PIDS; do
	kill -0 "$p" || { echo "soak gate: new process $p is not running"; exit 1; }
done
echo "$BATON_SERVICE $BATON_OLD_GEN $BATON_NEW_GEN $BATON_UPGRADE_PHASE" >> "$0.log"
echo "soak gate: ok"
"""

GATE_FAIL = """#!/bin/sh
echo "soak gate: looking"
echo "soak gate: no, not this one"
exit 1
"""


class Violation(Exception):
    """An invariant or an expected outcome that did not hold."""


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command (state first), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def start_time(pid):
    """A process's start time (field 22 of /proc/PID/stat), or None when it is gone:
    with it, a pid names one process even once the kernel hands the number out again."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def rss_kib(pid):
    for line in harness.read("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def handles(pid, sig):
    """Whether the process has a handler for sig (SigCgt of /proc/PID/status)."""
    for line in harness.read("/proc/%d/status" % pid).splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def cgroup2_mount():
    """The cgroup v2 mount point that /proc/self/mountinfo names, or None."""
    for line in harness.read("/proc/self/mountinfo").splitlines():
        fields, _, rest = line.partition(" - ")
        if rest.split()[:1] == ["cgroup2"]:
            return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields.split()[4])
    return None


def cgroup_base():
    """A new cgroup path batond may make, or (None, why not)."""
    mount = cgroup2_mount()
    if mount is None:
        return None, "no cgroup v2 hierarchy in /proc/self/mountinfo"
    base = os.path.join(mount, "baton-soak-" + secrets.token_hex(6))
    try:
        os.mkdir(base)
    except OSError as e:
        return None, "cannot make a cgroup under %s: %s" % (mount, e.strerror)
    os.rmdir(base)
    return base, None


def describe_fds(pid):
    """batond's fds but its control connections, each pipe and socket with the other
    processes that hold it: what a violation of the fd bound shows."""
    fds = harness.own_fds(pid)
    shared = {t: [] for t in fds.values() if t.startswith(("pipe:", "socket:"))}
    for path in os.listdir("/proc"):
        if not path.isdigit() or int(path) == pid:
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % path):
                target = os.readlink("/proc/%s/fd/%s" % (path, fd))
                if target in shared:
                    name = harness.read("/proc/%s/comm" % path).strip()
                    shared[target].append("%s[%s]" % (name, path))
        except OSError:
            continue
    return ["%d %s%s" % (fd, t, " (%s)" % " ".join(sorted(set(shared[t]))) if shared.get(t)
                         else "") for fd, t in sorted(fds.items())]


def http_get(port, timeout=5.0):
    """One request with Connection: close; returns the body's fields (gen, pid, version)."""
    status, body = harness.http_get(port, timeout=timeout)
    if status != 200:
        raise Violation("GET / on port %d answered %d: %r" % (port, status, body))
    return dict(kv.split("=", 1) for kv in body.split())


def set_subreaper():
    """Makes this process the reaper of what batond leaves when it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class Soak:
    def __init__(self, seconds, seed, keep=False, cgroup=True, skip=()):
        self.seconds = seconds
        self.weights = collections.OrderedDict((k, v) for k, v in WEIGHTS.items() if k not in skip)
        self.httpd = harness.HTTPD
        self.seed = seed
        self.keep = keep
        self.rng = random.Random(seed)
        self.dir = tempfile.mkdtemp(prefix="baton-soak-")
        self.config_path = os.path.join(self.dir, "baton.conf")
        self.control = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.dir, "batond.log")
        self.binary = os.path.join(self.dir, "batond")
        self.cgroup, self.why_no_cgroup = cgroup_base() if cgroup else (None, "--no-cgroup")
        self.conf = {
            "version": 1, "web_mode": "all", "web_command": None, "web_args": "",
            "web_ready_timeout": "10s", "extra": False, "chatty_grace": "5s",
        }
        self.gen = {"web": 1, "crashy": 1, "chatty": 1, "loud": 1}
        # Every upgrade takes a generation number, whatever comes of it.
        self.last_gen = 1
        self.t0 = time.monotonic()
        self.loadavg = {"start": os.getloadavg()}
        self.op = (0, "start", 0.0)
        self.journal = collections.deque(maxlen=8)
        self.ops = collections.Counter()
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        self.violation = None
        self.proc = None
        self.load = None
        self.load_result = None
        self.load_state = {"ok": 0, "errors": 0, "lines": collections.deque(maxlen=20), "t": 0}
        self.load_stopping = False
        self.watch = None
        self.watch_expected_end = False
        self.events = collections.deque(maxlen=5000)
        # The events of processes by pid; an operation forgets a pid's before it acts on the
        # process, as pids are handed out again.
        self.unhealthy = {}
        self.exits = {}
        self.stopped_pids = set()
        # Every process batond started, as (pid, start time).
        self.tracked = set()
        self.samples = {"fds_max": 0, "rss_max": 0}
        self.quiet_fds = {}
        self.quiet_described = {}
        self.quiet_log = []
        self.rss = {}
        self.flood_done = {}
        self.shutting_down = False
        self.stop_monitor = threading.Event()
        self.threads = []

    # ---- time and failure ----

    def elapsed(self):
        return time.monotonic() - self.t0

    def fail(self, message):
        """Records the first violation (from any thread) and returns its text."""
        with self.lock:
            if self.violation is None:
                index, name, started = self.op
                self.violation = (
                    "soak: VIOLATION: %s\n  operation #%d %s (started at %.1fs), at %.1fs (%s), "
                    "seed %d" % (message, index, name, started, self.elapsed(), now_utc(),
                                 self.seed))
            return self.violation

    def check(self):
        """Raises the violation a thread recorded, if any."""
        if self.violation is not None:
            raise Violation(self.violation)

    def expect(self, cond, message):
        if not cond:
            raise Violation(message)

    def wait(self, predicate, timeout, what, interval=0.05):
        """Calls predicate until it returns a true value; Violation after timeout * SLOW."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            self.check()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise Violation("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
            time.sleep(interval)

    # ---- batond and batonctl ----

    def render(self, **changes):
        c = dict(self.conf, **changes)
        web = c["web_command"] or "%s --version v%d --watchdog" % (self.httpd, c["version"])
        text = CONFIG.format(
            cgroup=self.cgroup or "none", web_command=web + c["web_args"],
            web_instances=WEB_INSTANCES, web_ready_timeout=c["web_ready_timeout"],
            watchdog="%dms" % (WATCHDOG_S * 1000), web_mode=c["web_mode"],
            httpd=self.httpd, testchild=harness.TESTCHILD, flood_lines=FLOOD_LINES,
            loud_lines=LOUD_LINES, dir=self.dir, chatty_grace=c["chatty_grace"])
        if c["extra"]:
            text += EXTRA.format(httpd=self.httpd)
        return text

    def write_config(self, text=None):
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(self.render() if text is None else text)
        os.rename(tmp, self.config_path)

    def ctl(self, *args, json_output=False, timeout=30):
        cmd = [harness.BATONCTL, "-s", self.control] + (["--json"] if json_output else [])
        cmd += list(args)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise Violation("batonctl %s did not return within %.0fs" % (" ".join(args),
                                                                        timeout * SLOW))
        self.counts["batonctl"] += 1
        return r

    def ctl_ok(self, *args, timeout=30):
        r = self.ctl(*args, timeout=timeout)
        self.expect(r.returncode == 0, "batonctl %s exited %d, expected 0: %s%s"
                    % (" ".join(args), r.returncode, r.stdout[-2000:], r.stderr))
        return r

    def status(self, service=None):
        r = self.ctl("status", *([service] if service else []), json_output=True)
        if r.returncode != 0:
            raise Violation("batonctl status %s exited %d: %s%s"
                            % (service or "", r.returncode, r.stdout, r.stderr))
        st = json.loads(r.stdout)
        for p in st.get("procs", []):
            self.track(p["pid"])
        return st

    def service(self, name):
        st = self.status(name)
        for s in st["services"]:
            if s["name"] == name:
                return s, st.get("procs", [])
        raise Violation("no service %s in status" % name)

    def current(self, name):
        """The pids of the service's current generation, by instance; all must be ready."""
        svc, procs = self.service(name)
        return {p["instance"]: p["pid"] for p in procs
                if p["gen"] == svc["gen"] and p["role"] == "current"}

    def port(self, name):
        for s in self.status()["sockets"]:
            if s["name"] == name:
                return int(s["bound"].rsplit(":", 1)[1])
        raise Violation("no socket %s" % name)

    def metrics(self):
        r = self.ctl_ok("metrics")
        out = {}
        for line in r.stdout.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def log_counts(self, service):
        m = self.metrics()
        return (int(m.get('baton_log_lines_total{service="%s"}' % service, 0)),
                int(m.get('baton_log_dropped_total{service="%s"}' % service, 0)))

    def track(self, pid):
        """Remembers a process batond started, to find it after the shutdown."""
        fields = stat_fields(pid) if pid else None
        # batond's own child: a pid read late may belong to another process already.
        if fields and self.proc and int(fields[1]) == self.proc.pid:
            self.tracked.add((pid, int(fields[19])))

    def services(self):
        return ["web", "crashy", "chatty", "loud"] + (["extra"] if self.conf["extra"] else [])

    def instances(self, name):
        return {"web": WEB_INSTANCES, "crashy": 2, "chatty": 2}.get(name, 1)

    def steady(self, full):
        """Every service running with all its instances ready; with full, nothing else
        (no process starting or draining, no control client but the watch and this one)."""
        st = self.status()
        names = {s["name"]: s for s in st["services"]}
        if sorted(names) != sorted(self.services()):
            return False
        for name in self.services():
            s = names[name]
            if s["state"] != "running" or s["ready"] != self.instances(name) or "upgrading_to" in s:
                return False
        if full:
            return not st.get("procs") and st["daemon"]["clients"] <= 2
        return True

    def settle(self, full=False, timeout=20):
        self.wait(lambda: self.steady(full), timeout,
                  "every service running%s" % (" and nothing draining" if full else ""))
        for name in self.services():
            svc, _ = self.service(name)
            if name in self.gen:
                self.expect(svc["gen"] == self.gen[name], "%s: gen %d, expected %d"
                            % (name, svc["gen"], self.gen[name]))
            self.expect(svc["kills"] == 0, "%s: %d processes killed by batond"
                        % (name, svc["kills"]))
        if full:
            port = self.port("http")
            for _ in range(3):
                body = http_get(port)
                want = {"gen": str(self.gen["web"]), "version": "v%d" % self.conf["version"]}
                got = {k: body.get(k) for k in want}
                self.expect(got == want, "web answered %s once nothing drained, expected %s"
                            % (got, want))

    def start(self):
        shutil.copy(harness.BATOND, self.binary)
        self.write_config()
        with open(os.path.join(self.dir, "gate-pass"), "w") as f:
            f.write(GATE_PASS)
        with open(os.path.join(self.dir, "gate-fail"), "w") as f:
            f.write(GATE_FAIL)
        for gate in ("gate-pass", "gate-fail"):
            os.chmod(os.path.join(self.dir, gate), 0o755)
        env = dict(os.environ)
        env.pop("BATON_CONTROL", None)
        # Under the address sanitizer, freed memory is not held back, so that RSS tells.
        asan = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=0"
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.config_path, "-s", self.control],
                                     stdin=subprocess.DEVNULL, stdout=self.logfile,
                                     stderr=self.logfile, env=env)
        self.wait(lambda: self.proc.poll() is not None or self.ctl("version").returncode == 0,
                  10, "batond to answer")
        self.expect(self.proc.poll() is None, "batond exited at start with %s"
                    % self.proc.returncode)
        self.start_watch()
        self.settle()
        self.start_load()
        for t in (self.monitor,):
            th = threading.Thread(target=t, daemon=True)
            th.start()
            self.threads.append(th)

    # ---- the load ----

    def start_load(self):
        port = self.port("http")
        self.load = subprocess.Popen(
            [harness.LOADGEN, "-t", "127.0.0.1:%d" % port, "-c", str(LOADGEN_CONNS),
             "-k", str(LOADGEN_CONNS // 2), "-p", "/slow?ms=%d" % LOADGEN_SLOW_MS,
             "-T", str(int(LOADGEN_TIMEOUT_MS * SLOW))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        th = threading.Thread(target=self.read_load, daemon=True)
        th.start()
        self.threads.append(th)
        self.wait(lambda: self.load_state["ok"] > 0, 10, "the load's first answers")

    def read_load(self):
        """Reads the load generator's progress lines: t=Ns ok=N errors=N."""
        for line in self.load.stderr:
            line = line.rstrip("\n")
            m = re.match(r"t=(\d+)s ok=(\d+) errors=(\d+)$", line)
            if m:
                self.load_state.update(t=int(m.group(1)), ok=int(m.group(2)),
                                       errors=int(m.group(3)))
                if int(m.group(3)):
                    self.fail("the load saw %s failed requests (%s)"
                              % (m.group(3), "; ".join(self.load_state["lines"]) or line))
            else:
                self.load_state["lines"].append(line)
                if line.startswith("loadgen:"):
                    self.fail("the load generator said: %s" % line)

    def stop_load(self):
        if self.load is None or self.load.poll() is not None:
            return
        self.load_stopping = True
        self.load.send_signal(signal.SIGTERM)
        try:
            out = self.load.stdout.read()
            self.load.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Violation("the load generator did not stop")
        fields = dict(kv.split("=", 1) for kv in out.split())
        self.load_result = {k: float(v) if "." in v else int(v) for k, v in fields.items()}
        failed = {k: self.load_result.get(k) for k in
                  ("bad_status", "refused", "reset", "eof", "timeout", "other")}
        self.expect(not any(failed.values()), "the load's failures: %s" % failed)
        self.expect(self.load_result.get("ok", 0) > 0, "the load got no answer: %s"
                    % self.load_result)

    # ---- the watch stream: every process batond starts, and what happens to them ----

    def start_watch(self):
        self.watch_expected_end = False
        self.watch = subprocess.Popen([harness.BATONCTL, "-s", self.control, "--json", "watch"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        th = threading.Thread(target=self.read_watch, args=(self.watch,), daemon=True)
        th.start()
        self.threads.append(th)
        # The snapshot comes first: once its processes are there, events follow.
        self.wait(lambda: self.watch_snapshot_seen, 10, "the watch stream's snapshot")

    watch_snapshot_seen = False

    def read_watch(self, proc):
        for line in proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail("batonctl watch printed what is not JSON: %r" % line[:200])
                continue
            kind = obj.get("type")
            if kind == "proc":
                self.track(obj.get("pid"))
                self.watch_snapshot_seen = True
            elif kind == "service":
                self.watch_snapshot_seen = True
            if kind != "event":
                continue
            self.events.append(obj)
            ev = obj.get("kind")
            pid = obj.get("pid")
            if ev == "spawned":
                self.track(pid)
            elif ev in ("exited", "killed", "restarting"):
                self.exits[pid] = obj
            elif ev == "unhealthy":
                self.unhealthy[pid] = obj
                if pid not in self.stopped_pids:
                    self.fail("%s[%d] gen %d found unhealthy, and was not stopped: %s"
                              % (obj["service"], pid, obj["gen"], obj.get("reason")))
            elif ev == "sigkill":
                self.fail("batond sent SIGKILL to %s[%d] gen %d: %s"
                          % (obj["service"], pid, obj["gen"], obj.get("reason")))
            elif ev == "failed":
                self.fail("service %s failed: %s" % (obj["service"], obj.get("reason")))
        rc = proc.wait()
        if proc is self.watch and not self.watch_expected_end and not self.shutting_down:
            self.fail("batonctl watch ended with %d outside a re-exec: %s"
                      % (rc, proc.stderr.read()[-500:]))

    def restart_watch(self):
        """After a re-exec, which closes every control connection."""
        old = self.watch
        try:
            old.wait(timeout=10 * SLOW)
        except subprocess.TimeoutExpired:
            raise Violation("batonctl watch went on through a re-exec")
        self.expect(old.returncode == 3, "batonctl watch ended with %d at a re-exec, expected 3"
                    % old.returncode)
        self.watch_snapshot_seen = False
        self.start_watch()

    # ---- the monitor ----

    def monitor(self):
        zombies = {}
        while not self.stop_monitor.wait(0.5):
            try:
                self.monitor_once(zombies)
            except Exception as e:  # a bug of the soak itself must show too
                self.fail("monitor: %r" % e)

    def monitor_once(self, zombies):
        if self.proc.poll() is not None and not self.shutting_down:
            self.fail("batond exited with %s" % self.proc.returncode)
            return
        if self.load.poll() is not None and not self.load_stopping:
            self.fail("the load generator exited with %s: %s"
                      % (self.load.returncode, "; ".join(self.load_state["lines"])))
        pid = self.proc.pid
        now = time.monotonic()
        children = harness.children_of(pid)
        for child, state in children.items():
            self.track(child)
            if state == "Z":
                first = zombies.setdefault(child, now)
                if now - first > ZOMBIE_S * SLOW:
                    self.fail("zombie child of batond not reaped for %.1fs: pid %d"
                              % (now - first, child))
        for child in list(zombies):
            if children.get(child) != "Z":
                del zombies[child]
        if not self.shutting_down:
            fds, rss = fd_count(pid), rss_kib(pid)
            self.samples["fds_max"] = max(self.samples["fds_max"], fds)
            self.samples["rss_max"] = max(self.samples["rss_max"], rss)

    def counted_fds(self, pid):
        """batond's fds but its control connections and chatty's file sink: the sink is
        open only once something was written to it since the start or a re-exec, and
        never more than once."""
        fds = harness.own_fds(pid)
        sink = os.path.join(self.dir, "chatty.log")
        sinks = [t for t in fds.values() if t == sink or t.startswith(sink + ".")]
        self.expect(len(sinks) <= 1, "batond holds chatty's file sink %d times: %s"
                    % (len(sinks), sinks))
        return len(fds) - len(sinks)

    def quiet_point(self, label):
        """Nothing starting or draining: batond's fds (counted_fds) must be as many as at
        the first quiet point with the same services; RSS is recorded."""
        self.settle(full=True)
        shape = tuple(self.services())
        pid = self.proc.pid

        # A control connection closes in batond a little after the client's end.
        def stable():
            fds = self.counted_fds(pid)
            return fds if fds <= self.quiet_fds.get(shape, fds) else None

        first = self.quiet_fds.get(shape)
        try:
            fds = self.wait(stable, 5, "batond's fds to come back to %s" % first)
        except Violation:
            fds = self.counted_fds(pid)
            raise Violation("batond holds %d fds at a quiet point (%s), %d at the first one "
                            "with the same services:\n    %s\n  the first time:\n    %s"
                            % (fds, label, first, "\n    ".join(describe_fds(pid)),
                               "\n    ".join(self.quiet_described[shape])))
        if shape not in self.quiet_fds:
            self.quiet_fds[shape] = fds
            self.quiet_described[shape] = describe_fds(pid)
        rss = rss_kib(pid)
        self.quiet_log.append((round(self.elapsed(), 1), label, fds, rss))
        return fds, rss

    # ---- upgrades ----

    def wait_drains(self, most=2):
        """Old generations of web still draining: at most `most`, under max_draining."""
        def few():
            svc, procs = self.service("web")
            return len({p["gen"] for p in procs if p["role"] == "draining"}) <= most
        self.wait(few, 20, "web to have at most %d generations draining" % most)

    def begin_upgrade(self, mode=None, **changes):
        """Writes web's next definition; returns what a check of it needs."""
        self.wait_drains()
        svc, procs = self.service("web")
        old = self.current("web")
        self.expect(svc["state"] == "running" and len(old) == WEB_INSTANCES,
                    "web is not running whole before an upgrade: %s %s" % (svc, procs))
        before = dict(svc=svc, old=old, version=self.conf["version"], mode=self.conf["web_mode"])
        self.conf["web_mode"] = mode or self.rng.choice(["all", "rolling:1", "rolling:2"])
        self.write_config(self.render(version=self.conf["version"] + 1, **changes))
        return before

    def upgraded(self, before, r):
        """Checks an upgrade that must be done."""
        gen = self.last_gen = self.last_gen + 1
        self.expect(r.returncode == 0, "upgrade (%s) exited %d, expected 0: %s"
                    % (self.conf["web_mode"], r.returncode, r.stderr.strip() or r.stdout[-1000:]))
        self.expect("web: upgraded to gen %d" % gen in r.stdout,
                    "upgrade said no \"web: upgraded to gen %d\": %s" % (gen, r.stdout[-1000:]))
        self.gen["web"] = gen
        self.conf["version"] += 1
        self.write_config()
        svc, procs = self.service("web")
        self.expect(svc["gen"] == gen and svc["upgrades"] == before["svc"]["upgrades"] + 1
                    and svc["rollbacks"] == before["svc"]["rollbacks"],
                    "after an upgrade to gen %d: %s" % (gen, svc))
        self.counts["upgrades"] += 1

    def rolled_back(self, before, r, reason, aborted=False):
        """Checks an upgrade that must have been rolled back (or aborted) with reason."""
        gen = self.last_gen = self.last_gen + 1
        self.conf["web_mode"] = before["mode"]
        self.write_config()
        if not aborted:
            self.expect(r.returncode == 1, "upgrade exited %d, expected 1 (rolled back): %s%s"
                        % (r.returncode, r.stdout[-1000:], r.stderr))
            want = "upgrade to gen %d rolled back: " % gen
            self.expect(want in r.stderr and reason in r.stderr,
                        "upgrade said %r, expected %r and %r" % (r.stderr.strip(), want, reason))
        self.wait(lambda: self.service("web")[0]["state"] == "running", 20,
                  "web to be running after the %s" % ("abort" if aborted else "rollback"))
        svc, procs = self.service("web")
        want_reason = "upgrade to gen %d %s: " % (gen, "aborted" if aborted else "rolled back")
        self.expect(svc["gen"] == before["svc"]["gen"], "gen %d after a rollback, expected %d"
                    % (svc["gen"], before["svc"]["gen"]))
        self.expect(svc.get("reason", "").startswith(want_reason) and reason in svc["reason"],
                    "web's reason is %r, expected %r and %r"
                    % (svc.get("reason"), want_reason, reason))
        self.expect(svc["upgrades"] == before["svc"]["upgrades"]
                    and svc["rollbacks"] == before["svc"]["rollbacks"] + (0 if aborted else 1),
                    "counters after a %s: %s, before %s"
                    % ("abort" if aborted else "rollback", svc, before["svc"]))
        now = self.current("web")
        self.expect(now == before["old"], "the old generation's processes changed: %s, were %s"
                    % (now, before["old"]))
        self.counts["aborts" if aborted else "rollbacks"] += 1

    def op_upgrade(self, mode):
        before = self.begin_upgrade(mode)
        r = self.ctl("upgrade", "--wait", "web", timeout=60)
        self.upgraded(before, r)

    def op_upgrade_all(self):
        self.op_upgrade("all")

    def op_upgrade_rolling(self):
        self.op_upgrade(self.rng.choice(["rolling:1", "rolling:2"]))

    def paused_canaries(self, before):
        n = self.rng.choice([1, 1, 2])
        r = self.ctl("upgrade", "--canary", str(n), "--wait", "web", timeout=60)
        gen = self.last_gen + 1
        self.expect(r.returncode == 0 and "paused at its canaries" in r.stdout,
                    "upgrade --canary %d exited %d: %s%s" % (n, r.returncode, r.stdout[-1000:],
                                                             r.stderr))
        svc, procs = self.service("web")
        self.expect(svc["state"] == "upgrading" and svc.get("phase") == "paused"
                    and svc.get("upgrading_to") == gen,
                    "web paused at its canaries: %s" % svc)
        canaries = {p["instance"]: p["pid"] for p in procs if p["gen"] == gen}
        self.forget(canaries.values())
        self.expect(sorted(canaries) == list(range(n)) and all(
            p["state"] == "ready" for p in procs if p["gen"] == gen),
            "the canaries of gen %d: %s" % (gen, [p for p in procs if p["gen"] == gen]))
        self.expect(self.current("web") == before["old"], "an old process went for a canary")
        return n, gen, canaries

    def while_paused(self, gen, canaries):
        what = self.rng.choice(["upgrade", "reexec", "reload", "traffic", "none"])
        self.counts["paused-" + what] += 1
        self.paused_probe(what, canaries)
        return what

    def paused_probe(self, what, canaries):
        if what == "upgrade":
            r = self.ctl("upgrade", "--wait", "web")
            self.expect(r.returncode == 1 and "is paused at its canaries" in r.stderr,
                        "another upgrade while paused exited %d: %s%s"
                        % (r.returncode, r.stdout[-500:], r.stderr))
        elif what == "reexec":
            r = self.ctl("reexec")
            self.expect(r.returncode == 1 and "an upgrade is in progress: web" in r.stderr,
                        "reexec while paused exited %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        elif what == "reload":
            r = self.ctl("reload")
            self.expect(r.returncode == 0, "reload while paused exited %d: %s%s"
                        % (r.returncode, r.stdout, r.stderr))
        elif what == "traffic":
            # The canaries share the socket with the old processes; which accepts a new
            # connection is the kernel's choice (a busy process often wins), so that their
            # share is counted, not required.
            port = self.port("http")
            version = "v%d" % (self.conf["version"] + 1)
            for _ in range(100):
                self.counts["canary-probes"] += 1
                if http_get(port).get("version") == version:
                    self.counts["canary-probes-answered"] += 1

    def op_canary_continue(self):
        before = self.begin_upgrade()
        n, gen, canaries = self.paused_canaries(before)
        self.while_paused(gen, canaries)
        r = self.ctl("upgrade", "--continue", "--wait", "web", timeout=60)
        self.upgraded(before, r)
        now = self.current("web")
        self.expect(all(now.get(i) == pid for i, pid in canaries.items()),
                    "the canaries %s are not in gen %d: %s" % (canaries, gen, now))

    def op_canary_abort(self):
        before = self.begin_upgrade()
        n, gen, canaries = self.paused_canaries(before)
        what = self.while_paused(gen, canaries)
        r = self.ctl("upgrade", "--abort", "web")
        self.expect(r.returncode == 0 and "web: upgrade to gen %d aborted" % gen in r.stdout,
                    "upgrade --abort exited %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        self.rolled_back(before, r, "batonctl upgrade --abort", aborted=True)
        # A reload during the pause changed the definition for the next upgrade or restart,
        # also when the upgrade does not go on (batond(8), SIGHUP).
        version = before["version"] + (1 if what == "reload" else 0)
        command = self.service("web")[0]["command"]
        self.expect(" --version v%d " % version in command + " ",
                    "web's definition after an abort%s: %r, expected version v%d"
                    % (" and a reload while paused" if what == "reload" else "", command, version))
        if what == "reload":
            # Back to the definition that runs, so that a restart would run what serves.
            self.ctl_ok("reload")
        for pid in canaries.values():
            self.wait(lambda: pid in self.exits, 15, "the canary %d to exit" % pid)
            self.expect(self.exits[pid]["kind"] == "exited" and self.exits[pid].get("exit") == 0,
                        "the canary %d ended: %s" % (pid, self.exits[pid]))

    def op_gate_pass(self):
        gate = os.path.join(self.dir, "gate-pass")
        runs = len(harness.read(gate + ".log").splitlines())
        before = self.begin_upgrade()
        r = self.ctl("upgrade", "--wait", "--gate", gate, "web", timeout=60)
        gen = self.last_gen + 1
        self.upgraded(before, r)
        lines = harness.read(gate + ".log").splitlines()[runs:]
        mode = self.conf["web_mode"]
        batch = WEB_INSTANCES if mode == "all" else int(mode.split(":")[1])
        batches = -(-WEB_INSTANCES // batch)
        self.expect(len(lines) == batches, "the gate ran %d times for %d batches (%s): %s"
                    % (len(lines), batches, mode, lines))
        for line in lines:
            svc, old, new, _ = line.split(" ", 3)
            self.expect((svc, int(old), int(new)) == ("web", before["svc"]["gen"], gen),
                        "the gate was run with %r, expected web %d %d"
                        % (line, before["svc"]["gen"], gen))

    def op_gate_fail(self):
        before = self.begin_upgrade()
        r = self.ctl("upgrade", "--wait", "--gate", os.path.join(self.dir, "gate-fail"), "web",
                     timeout=60)
        self.rolled_back(before, r, "gate: soak gate: no, not this one")

    def rollback(self, reason, **changes):
        before = self.begin_upgrade(self.rng.choice(["all", "rolling:1"]), **changes)
        r = self.ctl("upgrade", "--wait", "web", timeout=60)
        self.rolled_back(before, r, reason)

    def op_rollback_exit(self):
        self.rollback("exited with status 3 before it was ready",
                      web_command="/bin/sh -c 'exit 3'")

    def op_rollback_never_ready(self):
        self.rollback("not ready after 1s (ready_timeout)", web_args=" --no-ready",
                      web_ready_timeout="1s")

    def op_rollback_missing(self):
        path = os.path.join(self.dir, "missing", "httpd")
        self.rollback("exec %s: No such file or directory" % path, web_command=path)

    # ---- crashes and a stopped process ----

    def fds_settled(self):
        """batond's fds but its control connections, once nothing starts or drains."""
        self.settle(full=True)
        return describe_fds(self.proc.pid)

    def same_fds(self, before, what):
        """A process replaced by another of the same generation leaves batond as many fds."""
        pid = self.proc.pid
        try:
            self.wait(lambda: len(harness.own_fds(pid)) <= len(before), 5,
                      "batond's fds to come back to %d" % len(before))
        except Violation:
            after = self.fds_settled()
            raise Violation("batond holds %d fds after %s, %d before:\n    %s\n  before:\n    %s"
                            % (len(after), what, len(before), "\n    ".join(after),
                               "\n    ".join(before)))

    def forget(self, pids):
        """Forgets the events of pids that are alive now: any are of earlier processes."""
        for pid in pids:
            self.exits.pop(pid, None)
            self.unhealthy.pop(pid, None)

    def op_crash(self):
        fds = self.fds_settled()
        name = self.rng.choice(["crashy", "crashy", "chatty"] + (["extra"] if self.conf["extra"]
                                                                else []))
        pids = self.current(name)
        instance = self.rng.choice(sorted(pids))
        pid = pids[instance]
        svc, _ = self.service(name)
        started = start_time(pid)
        self.forget([pid])
        os.kill(pid, signal.SIGKILL)
        self.counts["crashed-" + name] += 1
        self.wait(lambda: pid in self.exits, 10, "the crash of %s[%d] to be seen" % (name, pid))
        ev = self.exits[pid]
        self.expect(ev["kind"] == "restarting" and ev.get("signal") == "KILL",
                    "%s[%d] killed by the soak: %s" % (name, pid, ev))

        def back():
            now = self.current(name)
            return now.get(instance) not in (None, pid) and self.steady(False) and now
        now = self.wait(back, 10, "%s instance %d to be restarted" % (name, instance))
        svc2, _ = self.service(name)
        self.expect(svc2["restarts"] == svc["restarts"] + 1 and svc2["gen"] == svc["gen"],
                    "%s after a crash: %s, before %s" % (name, svc2, svc))
        self.expect(start_time(pid) != started, "%s[%d] is still there after its crash"
                    % (name, pid))
        if name == "chatty":
            self.flood_done.pop(pid, None)
        if name == "crashy":
            http_get(self.port("side"))
        self.settle(full=True)
        self.same_fds(fds, "the crash and restart of %s[%d]" % (name, pid))

    def op_sigstop(self):
        fds = self.fds_settled()
        pids = self.current("web")
        instance = self.rng.choice(sorted(pids))
        pid = pids[instance]
        svc, _ = self.service("web")
        self.forget([pid])
        self.stopped_pids.add(pid)
        os.kill(pid, signal.SIGSTOP)
        # batond(8): no WATCHDOG=1 within the watchdog makes it unhealthy; it is replaced,
        # the new one ready first, then stopped as an upgrade stops one: its stop signal
        # and SIGCONT, so that it drains and exits by itself, not killed.
        self.wait(lambda: harness.proc_state(pid) in ("T", None) or pid in self.exits, 2,
                  "web[%d] to stop" % pid)
        self.wait(lambda: pid in self.unhealthy, WATCHDOG_S + 5,
                  "web[%d], stopped, to be found unhealthy" % pid)
        reason = self.unhealthy[pid].get("reason", "")
        self.expect(reason.startswith("no WATCHDOG=1 within"),
                    "web[%d] unhealthy: %r" % (pid, reason))
        self.wait(lambda: pid in self.exits, 15, "web[%d], unhealthy, to exit" % pid)
        ev = self.exits[pid]
        self.expect(ev["kind"] == "exited" and ev.get("exit") == 0,
                    "web[%d], stopped then replaced, ended: %s" % (pid, ev))
        self.wait(lambda: self.steady(False), 10, "web running again")
        now = self.current("web")
        self.expect(now.get(instance) not in (None, pid), "instance %d of web not replaced: %s"
                    % (instance, now))
        svc2, _ = self.service("web")
        self.expect(svc2["gen"] == svc["gen"] and svc2["kills"] == 0,
                    "web after the replacement of a stopped process: %s" % svc2)
        self.stopped_pids.discard(pid)
        self.settle(full=True)
        self.same_fds(fds, "the replacement of web[%d], stopped (SIGSTOP)" % pid)

    # ---- reloads ----

    def snapshot(self):
        """What a failed reload or a re-exec must not change."""
        st = self.status()
        services = []
        for name in [s["name"] for s in st["services"]]:
            svc, procs = self.service(name)
            svc = {k: v for k, v in svc.items()}
            services.append((svc, sorted((p["gen"], p["instance"], p["pid"], p["state"], p["role"])
                                         for p in procs)))
        return st["daemon"]["pid"], st["sockets"], services

    def op_reload_valid(self):
        what = self.rng.choice(["extra", "extra", "chatty", "same"])
        before = self.snapshot()
        pids = {name: self.current(name) for name in self.services()}
        self.forget(pids.get("extra", {}).values())
        if what == "extra":
            self.conf["extra"] = not self.conf["extra"]
            want = ["service extra: added (starting)", "socket extra: added"] \
                if self.conf["extra"] else ["service extra: removed (stopping)",
                                            "socket extra: removed"]
        elif what == "chatty":
            self.conf["chatty_grace"] = "6s" if self.conf["chatty_grace"] == "5s" else "5s"
            want = ["service chatty: changed (takes effect at the next upgrade or restart)"]
        else:
            want = []
        self.write_config()
        r = self.ctl("reload")
        self.counts["reload-" + what] += 1
        self.expect(r.returncode == 0, "reload (%s) exited %d: %s%s"
                    % (what, r.returncode, r.stdout, r.stderr))
        for line in want:
            self.expect(line in r.stdout, "reload (%s) said %r, expected %r"
                        % (what, r.stdout, line))
        if not want:
            self.expect(r.stdout == "", "a reload of the same file said %r" % r.stdout)
        if what == "extra" and not self.conf["extra"]:
            gone = pids.pop("extra")
            self.wait(lambda: all(p in self.exits for p in gone.values()), 15,
                      "extra's processes to exit")
            self.wait(lambda: "extra" not in [s["name"] for s in self.status()["services"]],
                      10, "extra to be forgotten")
        self.settle()
        for name, old in pids.items():
            self.expect(self.current(name) == old, "%s's processes changed at a reload (%s)"
                        % (name, what))
        if what == "extra" and self.conf["extra"]:
            http_get(self.port("extra"))
        if what == "same":
            self.expect(self.snapshot()[1] == before[1], "a reload of the same file changed "
                        "the sockets")

    def op_reload_invalid(self):
        port = self.port("http")
        good = self.render()
        # Each is the file as it is with extra added (or removed) and one error.
        bad = self.render(extra=not self.conf["extra"])
        kind = self.rng.choice(["value", "key", "socket-name", "duplicate", "bind", "quote"])
        if kind == "value":
            bad = bad.replace("instances = 2\n", "instances = many\n", 1)
            want = "instances: expected a whole number"
        elif kind == "key":
            bad = bad.replace("[service:loud]\n", "[service:loud]\nfrobnicate = yes\n")
            want = "frobnicate: unknown key"
        elif kind == "socket-name":
            bad = bad.replace("sockets = side\n", "sockets = nosuch\n")
            want = "nosuch"
        elif kind == "duplicate":
            bad = bad.replace("stop_grace = 10s\n", "stop_grace = 10s\nstop_grace = 11s\n")
            want = "stop_grace: set twice"
        elif kind == "quote":
            bad = bad.replace("--version crashy", "--version 'crashy")
            want = "command"
        else:
            bad += "\n[socket:clash]\nlisten = tcp:127.0.0.1:%d\n" % port
            want = "socket clash: bind tcp:127.0.0.1:%d: Address already in use" % port
        self.counts["reload-invalid-" + kind] += 1
        before = self.snapshot()
        # What batond logs from here on: a count over the log's last MiB would
        # miss the new line when an older one leaves that window meanwhile.
        start = os.path.getsize(self.log_path)
        self.write_config(bad)
        try:
            r = self.ctl("reload")
        finally:
            self.write_config(good)
        self.expect(r.returncode == 1 and want in r.stderr,
                    "reload of a file with an error (%s) exited %d: %s%s, expected %r"
                    % (kind, r.returncode, r.stdout, r.stderr, want))
        self.expect(r.stdout == "", "a failed reload said %r" % r.stdout)
        after = self.snapshot()
        self.expect(after == before, "a failed reload (%s) changed something:\n%s\n%s"
                    % (kind, before, after))
        self.wait(lambda: "reload failed, the running configuration stays"
                  in self.read_log(start=start), 5, "the failed reload in batond's log")

    def read_log(self, tail=1 << 20, start=None):
        """The log's last tail bytes, or from offset start to its end."""
        with open(self.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail) if start is None else start)
            return f.read().decode(errors="replace")

    # ---- re-execs ----

    def reexec_check(self, before, r, ok):
        if ok:
            self.expect(r.returncode == 0 and "batond re-executed: pid %d," % self.proc.pid
                        in r.stdout, "reexec exited %d: %s%s"
                        % (r.returncode, r.stdout, r.stderr))
        else:
            self.expect(r.returncode == 1 and "the new batond could not resume: the one before "
                        "took the services back" in r.stderr,
                        "reexec of a binary that cannot resume exited %d: %s%s"
                        % (r.returncode, r.stdout, r.stderr))
        self.expect(self.proc.poll() is None, "batond exited at a re-exec")
        self.restart_watch()
        after = self.snapshot()
        self.expect(after == before, "a re-exec changed something:\n%s\n%s" % (before, after))
        self.settle()

    def op_reexec(self):
        self.settle()
        before = self.snapshot()
        self.watch_expected_end = True
        r = self.ctl("reexec")
        self.reexec_check(before, r, True)

    def op_reexec_handback(self):
        self.settle()
        before = self.snapshot()
        new = self.binary + ".new"
        with open(new, "w") as f:
            f.write("#!/bin/sh\nBATON_STATE_FD=-1 exec %s \"$@\"\n" % harness.BATOND)
        os.chmod(new, 0o755)
        os.rename(new, self.binary)
        self.watch_expected_end = True
        try:
            r = self.ctl("reexec")
        finally:
            shutil.copy(harness.BATOND, new)
            os.rename(new, self.binary)
        self.reexec_check(before, r, False)

    # ---- floods ----

    def op_control_flood(self):
        verbs = [["--json", "status"], ["--json", "status", "web"], ["metrics"], ["version"],
                 ["logs", "-n", "3", "web"], ["--json", "status", "chatty"],
                 # Replies of a few MB, built and sent a step at a time.
                 ["logs", "chatty"], ["--json", "logs"]]
        ctls = [subprocess.Popen([harness.BATONCTL, "-s", self.control] + self.rng.choice(verbs),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(FLOOD_CTL)]
        raws = [self.garbage(self.rng.randrange(1 << 30)) for _ in range(FLOOD_RAW)]
        threads = [threading.Thread(target=fn) for fn in raws]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30 * SLOW
        for p in ctls:
            try:
                out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise Violation("batonctl %s did not return within 30s in a control flood"
                                % " ".join(p.args[3:]))
            self.expect(p.returncode == 0, "batonctl %s exited %d in a control flood: %s"
                        % (" ".join(p.args[3:]), p.returncode, err))
        for t in threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
            self.expect(not t.is_alive(), "a raw control client hung")
        for fn in raws:
            self.expect(fn.result is True, "raw control client: %s" % fn.result)
        self.counts["flood-clients"] += FLOOD_CTL + FLOOD_RAW
        self.wait(lambda: self.status()["daemon"]["clients"] <= 2, 10,
                  "batond to close every flood client")

    def garbage(self, seed):
        """A raw client that sends a bad request and must be answered with an error."""
        rng = random.Random(seed)
        kind = rng.choice(["binary", "unknown", "long", "empty", "words", "partial", "version"])
        if kind == "binary":
            line = bytes([rng.choice([1, 2, 0x7f, 0xff, 0x80])]) + bytes(
                rng.randrange(1, 256) for _ in range(rng.randrange(1, 200)))
            line = line.replace(b"\n", b"") + b"\n"
            want = b"error "
        elif kind == "unknown":
            line, want = b"frobnicate%d now\n" % rng.randrange(1000), b"error unknown-verb "
        elif kind == "long":
            line, want = b"status " + b"x" * rng.randrange(1100, 5000) + b"\n", b"error too-long "
        elif kind == "empty":
            line, want = b"\n", b"error usage "
        elif kind == "words":
            line, want = b"status a b c d e f g h i j\n", b"error usage "
        elif kind == "partial":
            line, want = b"stat", None
        else:
            line, want = b"version\n", b"version "
        control = self.control

        def run():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(10 * SLOW)
                    s.connect(control)
                    s.sendall(line)
                    if want is None:
                        run.result = True
                        return
                    got = b""
                    while b"\n" not in got:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                    run.result = True if got.startswith(want) else (
                        "%s %r answered %r, expected %r" % (kind, line[:60], got[:200], want))
            except OSError as e:
                run.result = "%s %r: %s" % (kind, line[:60], e)

        run.result = "never ran"
        return run

    def usr1_ready(self, name):
        pids = self.current(name)
        self.wait(lambda: all(handles(p, signal.SIGUSR1) for p in pids.values()), 5,
                  "%s's processes to handle SIGUSR1" % name)
        return pids

    def op_log_flood_file(self):
        pids = self.usr1_ready("chatty")
        lines, dropped = self.log_counts("chatty")
        self.ctl_ok("signal", "chatty", "USR1")
        t0 = time.monotonic()
        # batond never waits on a pipe or a sink: status stays quick during the flood.
        self.status()
        took = time.monotonic() - t0
        self.expect(took < 2 * SLOW, "status took %.2fs during a log flood" % took)
        self.counts["status-during-flood-max-ms"] = max(self.counts["status-during-flood-max-ms"],
                                                        int(took * 1000))
        want = lines + FLOOD_LINES * len(pids)
        self.wait(lambda: self.log_counts("chatty")[0] >= want, 30,
                  "chatty's %d lines to be written" % (FLOOD_LINES * len(pids)))
        now, dropped2 = self.log_counts("chatty")
        self.expect(now == want and dropped2 == dropped,
                    "chatty's lines: %d (expected %d), dropped %d (was %d)"
                    % (now, want, dropped2, dropped))
        for pid in pids.values():
            self.flood_done[pid] = self.flood_done.get(pid, 0) + 1
        self.check_sink(pids)
        sizes = {f: os.path.getsize(os.path.join(self.dir, f)) for f in os.listdir(self.dir)
                 if f.startswith("chatty.log")}
        self.expect(sorted(sizes) in (["chatty.log"], ["chatty.log", "chatty.log.1"],
                                      ["chatty.log", "chatty.log.1", "chatty.log.2"])
                    and max(sizes.values()) <= 4 << 20,
                    "chatty's files after a flood: %s (log_max_size 4MiB, log_keep 2)" % sizes)
        self.counts["lines-flooded"] += FLOOD_LINES * len(pids)

    def check_sink(self, pids):
        """Every line of the last flood of each process is in chatty's files (the file and
        the ones rotated, oldest first), once and in order, whole."""
        seen = {pid: [] for pid in pids.values()}
        pattern = re.compile(r"^\S+ chatty\[(\d+)\] gen (\d+) out: out (\d+) (\d+) (x*)$")
        for name in ("chatty.log.2", "chatty.log.1", "chatty.log"):
            path = os.path.join(self.dir, name)
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
                for line in f:
                    m = pattern.match(line.rstrip("\n"))
                    if not m:
                        raise Violation("%s holds a line not written so: %r" % (name, line[:200]))
                    pid = int(m.group(1))
                    if pid in seen:
                        self.expect(int(m.group(3)) == pid and len(line) > 100,
                                    "%s: a line cut or mixed: %r" % (name, line[:200]))
                        seen[pid].append(int(m.group(4)))
        for pid, numbers in seen.items():
            last = FLOOD_LINES * self.flood_done[pid]
            first = last - FLOOD_LINES + 1
            got = [n for n in numbers if n >= first]
            if got != list(range(first, last + 1)):
                missing = sorted(set(range(first, last + 1)) - set(got))
                raise Violation("chatty[%d]'s lines %d to %d in its files: %d lines, %d missing "
                                "(%s...), last %s" % (pid, first, last, len(got), len(missing),
                                                      missing[:5], got[-1:]))

    def op_log_flood_stderr(self):
        [pid] = self.usr1_ready("loud").values()
        lines, dropped = self.log_counts("loud")
        self.ctl_ok("signal", "loud", "USR1")
        want = lines + LOUD_LINES
        self.wait(lambda: self.log_counts("loud")[0] >= want, 30,
                  "loud's %d lines to be written" % LOUD_LINES)
        now, dropped2 = self.log_counts("loud")
        self.expect(now == want and dropped2 == dropped,
                    "loud's lines: %d (expected %d), dropped %d (was %d)"
                    % (now, want, dropped2, dropped))
        self.flood_done[pid] = self.flood_done.get(pid, 0) + 1
        last = "loud[%d] gen %d err: err %d %d x" % (pid, self.gen["loud"], pid,
                                                     LOUD_LINES * self.flood_done[pid])
        self.wait(lambda: last in self.read_log(4 << 20), 10, "%r in batond's stderr" % last)
        self.counts["lines-flooded"] += LOUD_LINES

    # ---- the run ----

    def run_op(self, index, name):
        self.op = (index, name, self.elapsed())
        self.journal.append(self.op)
        self.check()
        getattr(self, "op_" + name.replace("-", "_"))()
        self.settle()
        self.ops[name] += 1
        self.check()

    def run(self):
        self.start()
        index = 0
        # One of each kind first, so that even a short run does everything once.
        for name in self.weights:
            index += 1
            self.run_op(index, name)
        self.op = (index, "quiet point", self.elapsed())
        self.rss["warm"] = self.quiet_point("after the first pass")[1]
        self.rss["start"] = self.rss["warm"]
        names, weights = list(self.weights), list(self.weights.values())
        last_quiet = index
        while self.elapsed() < self.seconds:
            index += 1
            self.run_op(index, self.rng.choices(names, weights)[0])
            if index - last_quiet >= 15:
                self.op = (index, "quiet point", self.elapsed())
                self.quiet_point("after %d operations" % index)
                last_quiet = index
            time.sleep(self.rng.uniform(0, 0.2))
        self.ops_seconds = self.elapsed()
        self.loadavg["end"] = os.getloadavg()
        self.op = (index, "end", self.elapsed())
        fds, self.rss["end"] = self.quiet_point("at the end")
        growth = self.rss["end"] - self.rss["warm"]
        self.expect(growth <= RSS_GROWTH_KIB, "batond's RSS grew by %d KiB from %d KiB after the "
                    "first pass to %d KiB (at most %d KiB)"
                    % (growth, self.rss["warm"], self.rss["end"], RSS_GROWTH_KIB))
        minutes = self.ops_seconds / 60
        if minutes >= 1:
            rate = self.counts["upgrades"] / minutes
            self.expect(rate >= MIN_UPGRADES_PER_MINUTE, "%.1f upgrades a minute, fewer than %d"
                        % (rate, MIN_UPGRADES_PER_MINUTE))
        self.stop_load()
        self.shutdown()

    def shutdown(self):
        self.op = (self.op[0], "shutdown", self.elapsed())
        self.shutting_down = True
        r = self.ctl("shutdown")
        self.expect(r.returncode == 0, "shutdown exited %d: %s" % (r.returncode, r.stderr))
        try:
            rc = self.proc.wait(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            raise Violation("batond did not exit within %.0fs of a shutdown" % (30 * SLOW))
        self.expect(rc == 0, "batond exited %d after a shutdown" % rc)
        self.stop_monitor.set()
        try:
            self.watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Violation("batonctl watch went on after batond exited")
        self.expect(self.watch.returncode == 0, "batonctl watch exited %d when batond exited"
                    % self.watch.returncode)
        left = [(pid, harness.read("/proc/%d/cmdline" % pid).replace("\0", " ").strip())
                for pid, st in self.tracked if start_time(pid) == st]
        self.expect(not left, "processes batond started left after its shutdown: %s" % left)
        # This process is their reaper now (PR_SET_CHILD_SUBREAPER): nothing may come to it.
        orphans = harness.children_of(os.getpid())
        self.expect(not orphans, "descendants of batond left after its shutdown: %s" % {
            pid: harness.read("/proc/%d/cmdline" % pid).replace("\0", " ") for pid in orphans})
        if self.cgroup:
            self.expect(not os.path.exists(self.cgroup), "batond's cgroup %s is left after its "
                        "shutdown: %s" % (self.cgroup, os.listdir(self.cgroup)
                                          if os.path.isdir(self.cgroup) else "?"))
        for path in (self.control, self.control.replace(".sock", "-notify.sock")):
            self.expect(not os.path.exists(path), "%s is left after the shutdown" % path)

    def summary(self, ok):
        p = print
        minutes = getattr(self, "ops_seconds", self.elapsed()) / 60
        p("soak: seed %d, %.1f minutes of operations, batond in %s" % (
            self.seed, minutes, self.dir))
        p("  containment: %s" % ("cgroup " + self.cgroup if self.cgroup else
                                 "process groups (%s)" % self.why_no_cgroup))
        p("  operations: %d: %s" % (sum(self.ops.values()), ", ".join(
            "%s %d" % (k, self.ops[k]) for k in WEIGHTS if self.ops[k])))
        p("  upgrades done: %d (%.1f a minute); rolled back as expected: %d; aborted: %d"
          % (self.counts["upgrades"], self.counts["upgrades"] / max(minutes, 1e-9),
             self.counts["rollbacks"], self.counts["aborts"]))
        details = sorted((k, v) for k, v in self.counts.items()
                         if k not in ("upgrades", "rollbacks", "aborts"))
        p("  details: %s" % ", ".join("%s %d" % kv for kv in details))
        if self.load_result:
            lr = self.load_result
            failed = lr["requests"] - lr["ok"]
            p("  load: %d requests, %d ok, %d failed (refused %d, reset %d, eof %d, timeout %d, "
              "bad status %d, other %d), %d connections, %.0f/s, p99 %.1f ms, max %.1f ms"
              % (lr["requests"], lr["ok"], failed, lr["refused"], lr["reset"], lr["eof"],
                 lr["timeout"], lr["bad_status"], lr["other"], lr["connects"], lr["rps"],
                 lr["p99_ms"], lr["max_ms"]))
        else:
            p("  load: %d ok, %d failed so far" % (self.load_state["ok"],
                                                   self.load_state["errors"]))
        quiet = ", ".join("%s: %d" % ("+".join(s[4:]) or "-", n)
                          for s, n in self.quiet_fds.items())
        p("  batond: fds max %d, at quiet points %s (by extra services); RSS after the first "
          "pass %s KiB, at the end %s KiB, max %d KiB (bound: +%d KiB)"
          % (self.samples["fds_max"], quiet or "-", self.rss.get("warm", "-"),
             self.rss.get("end", "-"), self.samples["rss_max"], RSS_GROWTH_KIB))
        p("  quiet points (s, where, fds, RSS KiB): %s" % self.quiet_log)
        p("  load average (1, 5, 15 min): at the start %s, at the end %s" % tuple(
            "/".join("%.2f" % x for x in self.loadavg[k]) if k in self.loadavg else "-"
            for k in ("start", "end")))
        p("  processes batond started: %d, none left after the shutdown" % len(self.tracked)
          if ok else "  processes batond started: %d" % len(self.tracked))
        p("soak: %s" % ("PASS" if ok else "FAIL"))

    def cleanup(self, ok):
        self.stop_monitor.set()
        self.shutting_down = True
        for proc in (self.load, self.watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, st in self.tracked:
            if start_time(pid) == st:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        # What batond left came to this process: reap it.
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.1)
                if not harness.children_of(os.getpid()):
                    break
        if self.cgroup and os.path.isdir(self.cgroup):
            for root, dirs, _ in sorted(os.walk(self.cgroup), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
        if ok and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("soak: kept %s (batond.log, baton.conf)" % self.dir)


def main():
    parser = argparse.ArgumentParser(description="batond under load and a random mix of "
                                     "operations, every invariant checked all along")
    parser.add_argument("--seconds", type=float, required=True,
                        help="how long to run operations")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one, printed")
    parser.add_argument("--keep", action="store_true", help="keep the directory")
    parser.add_argument("--no-cgroup", action="store_true",
                        help="process groups only, even where batond could make cgroups")
    parser.add_argument("--skip", action="append", default=[], choices=list(WEIGHTS),
                        metavar="KIND", help="leave out operations of this kind (repeatable)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    for tool in (harness.BATOND, harness.BATONCTL, harness.HTTPD, harness.TESTCHILD,
                 harness.LOADGEN):
        if not os.path.exists(tool):
            print("soak: %s is not built" % tool)
            return 1
    if not set_subreaper():
        print("soak: prctl(PR_SET_CHILD_SUBREAPER) failed")
        return 1
    print("soak: seed %d, %.0f s of operations" % (seed, args.seconds), flush=True)
    soak = Soak(args.seconds, seed, keep=args.keep, cgroup=not args.no_cgroup, skip=args.skip)
    ok = False
    try:
        soak.run()
        soak.check()
        ok = True
    except Violation as e:
        print(soak.fail(str(e)) if not str(e).startswith("soak: VIOLATION") else str(e))
    except Exception:
        print(soak.fail("the soak itself failed"))
        raise
    finally:
        if not ok:
            try:
                soak.stop_load()
            except Violation as e:
                print("soak: %s" % e)
        soak.summary(ok)
        if not ok:
            print("  the last operations (#, kind, started at s): %s" % list(soak.journal))
            print("---- the end of batond's log, without the floods' lines ----")
            lines = [l for l in soak.read_log(1 << 22).splitlines()
                     if not re.match(r"(loud|chatty)\[\d+\] gen \d+ (out|err): (out|err) ", l)]
            print("\n".join(lines[-60:]))
        soak.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
