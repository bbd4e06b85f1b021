#!/usr/bin/env python3
"""The peers benchmark: batond beside Server::Starter (start_server) and supervisord, in one
run, on the same test servers and the same load.

- Upgrades under load: 10 upgrades, one in each of 10 rounds, of the C test server
  (testhttpd, 8 processes), and of a Python server (pyserver.py, 1 and 2 processes). batond
  upgrades with `batonctl upgrade --wait`; start_server gets SIGHUP (it starts a new worker on
  its socket and, after its --interval of 1 s, sends SIGTERM to the old one); supervisord gets
  `supervisorctl restart` (it hands over no socket: the server binds its own port, and the
  restart drops connections: the baseline). Under start_server and supervisord, more than one
  process is prefork (tests/helpers/prefork.c) running the copies. Each case alternates 2 s of
  steady load and 2 s with an upgrade 0.5 s in under the same load 10 times, and ends with 2 s
  of steady load, so that the machine's drift weighs on both alike; the figures are the
  failed requests, the mean throughput and the median p99 of the upgrade windows beside those
  of the steady ones. The load is the load generator (tests/loadgen.c) with 32 connections,
  half of them kept alive.
- 100 services of /bin/sleep: the time until the 100 run, the PSS of the supervisor's
  processes (/proc/PID/smaps_rollup), the time of a `status` beside /bin/true's, and the time
  until all is stopped after SIGTERM to the supervisor.
- A plot of throughput and p99 over time during the upgrades, batond beside start_server
  (PNG, made with gnuplot): BENCH_PLOT, by default peers-upgrades.png in BENCH_OUT.

Usage: peers.py [upgrades] [services] (default: both), or --help. Each figure is printed
beside its target and how loaded the machine was (the load average, and the cores other work
kept busy during the case); a case first waits, a minute at most, for a quiet machine. At the
end the figures are printed again as Markdown tables, a column per supervisor, for
tests/bench/RESULTS.md. Run with `scripts/bench --peers`, which installs start_server,
supervisord and gnuplot with apt-get. In the environment, PEERS_SUPERVISORS (e.g. batond) and
PEERS_CASES (e.g. 1,3, numbered from 1) run a part, START_NICE=N gives batond's service
start_nice = N, STOP_DELAY=D its stop_delay = D, UPGRADE=S its upgrade = S (e.g. rolling:1), and PEERS_RATE=F puts the upgrade cases' load at a fixed rate, F times the
throughput the case's server reaches closed loop (measured first), latency counted from when
each request was due.
"""

import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYSERVER = os.path.join(HERE, "pyserver.py")
PREFORK = os.environ.get("PREFORK", "prefork")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
OUT = os.environ.get("BENCH_OUT", ".")
PLOT = os.environ.get("BENCH_PLOT", os.path.join(OUT, "peers-upgrades.png"))

SUPERVISORS = ("batond", "start_server", "supervisord")
# For a run of a part: PEERS_SUPERVISORS=batond and PEERS_CASES=1,3 (numbered from 1) run
# only those; START_NICE=N gives batond's service start_nice = N.
ONLY_SUPERVISORS = os.environ.get("PEERS_SUPERVISORS", "").split(",")
START_NICE = int(os.environ.get("START_NICE", "0"))
# STOP_DELAY=D gives batond's service stop_delay = D (e.g. 1s): the old processes serve on
# beside the new ones that long, as start_server's --interval has them do.
STOP_DELAY = os.environ.get("STOP_DELAY", "0s")
# UPGRADE=S gives batond's service upgrade = S (e.g. rolling:1): its old processes stopped a
# batch at a time, each once its replacements are ready.
UPGRADE = os.environ.get("UPGRADE", "all")
# PEERS_RATE=F: the load at a fixed rate, F times the throughput a case's server reaches
# (measured first, closed loop), instead of each connection sending again once answered.
RATE = float(os.environ.get("PEERS_RATE", "0"))
# (label, server, processes, p99 target: during upgrades / steady)
CASES = (
    ("C test server, 8 processes", "c", 8, 1.2),
    ("Python server, 1 process", "python", 1, 1.5),
    ("Python server, 2 processes", "python", 2, 1.5),
)
ONLY_CASES = [int(c) for c in os.environ.get("PEERS_CASES", "").split(",") if c]
# Short rounds, alternated: the machine's drift weighs on the steady windows and the upgrade
# windows alike. Under this load the throughput of a server settles at one of two levels (on
# the project's machine about 50,000 and 80,000 requests/s for the Python server, at the same
# CPU), and may change level at an upgrade or at a new window: the more windows, the more of
# these draws a figure averages.
ROUNDS = 10
PER_ROUND = 1  # upgrades in a round: 10 in all
SPACING = 1.5  # seconds between two upgrades
WINDOW = 0.5 + PER_ROUND * SPACING  # seconds of a round's upgrade window
STEADY = 2.0  # seconds of steady load in a round
CONNS = 32
THROUGHPUT_TARGET = 0.95
MAX_LOAD = 3.0
SERVICES = 100

RESULTS = []  # (table, row, supervisor, figure, target, ok, load)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def busy_seconds():
    """The CPU time the machine's processes took, all cores: user, nice, system and steal
    from /proc/stat (interrupts left out: the load's loopback traffic is counted there)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[7]) / os.sysconf("SC_CLK_TCK")


def own_seconds():
    """The CPU time of this benchmark and of its processes reaped so far (each supervisor
    reaps its own, and is reaped here)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Machine:
    """How loaded the machine was around a case: the 1-minute load average when it began
    (which counts this benchmark's own recent work too), and the cores that other work kept
    busy while it ran (the machine's CPU time less this benchmark's)."""

    def __init__(self, limit=60):
        self.load = wait_quiet(limit)
        self.t0, self.busy0, self.own0 = time.monotonic(), busy_seconds(), own_seconds()
        self.others = None

    def done(self):
        """Called once every process of the case has been reaped."""
        took = time.monotonic() - self.t0
        self.others = max(0.0, (busy_seconds() - self.busy0) - (own_seconds() - self.own0)) / took

    def __str__(self):
        return "load %.2f, others %.2f cores" % (self.load, self.others)


def others_now(seconds=2.0):
    """The cores that other work keeps busy, sampled while this benchmark runs nothing."""
    busy0, own0 = busy_seconds(), own_seconds()
    time.sleep(seconds)
    return max(0.0, (busy_seconds() - busy0) - (own_seconds() - own0)) / seconds


def wait_quiet(limit):
    """Waits, up to limit seconds, until the 1-minute load average is MAX_LOAD or less or, as
    it counts this benchmark's own work of the last minutes too, until other work keeps less
    than one core busy; returns the load average."""
    deadline = time.monotonic() + limit
    said = False
    while True:
        load = loadavg()
        if load <= MAX_LOAD:
            return load
        others = others_now()
        if others < 1.0 or time.monotonic() >= deadline:
            return load
        if not said:
            print("load average %.2f, other work keeping %.2f cores busy: waiting up to %.0f s"
                  % (load, others, limit), flush=True)
            said = True
        time.sleep(3)


def report(table, row, sup, figure, target="", ok=None, machine=None):
    RESULTS.append((table, row, sup, figure, target, ok, machine))
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    print("%-27s %-13s %-44s %-11s %-6s %s" % (row, sup, figure, target, verdict, machine),
          flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(server):
    return [harness.HTTPD] if server == "c" else [PYTHON, PYSERVER]


def wait_serving(port, proc, what):
    def serving():
        if proc.poll() is not None:
            raise SystemExit("%s exited with %d" % (what, proc.returncode))
        try:
            return harness.http_get(port, timeout=1)[0] == 200
        except OSError:
            return False
    harness.poll(serving, timeout=30, interval=0.05, what="%s to serve on %d" % (what, port))


class Batond:
    """The server under batond: its processes take the socket batond holds."""
    name = "batond"

    def __init__(self, server, n):
        config = ("[socket:http]\nlisten = tcp:127.0.0.1:0\nbacklog = 1024\n\n"
                  "[service:web]\ncommand = %s\nsockets = http\ninstances = %d\n"
                  "ready = notify\nready_timeout = 10s\nstop_grace = 10s\nupgrade = %s\n"
                  "max_draining = 4\nrestart_delay = 50ms\nstart_nice = %d\nstop_delay = %s\n"
                  % (" ".join(server_command(server)), n, UPGRADE, START_NICE, STOP_DELAY))
        self.b = harness.Batond(config)
        self.b.wait_service("web", "running")
        self.port = self.b.port("http")

    def upgrade(self):
        r = self.b.ctl("upgrade", "--wait", "web")
        if r.returncode != 0:
            raise SystemExit("batonctl upgrade failed: " + r.stderr)

    def stop(self):
        self.b.stop()
        self.b.close()


class Starter:
    """The server under start_server, which holds the socket and passes it in
    SERVER_STARTER_PORT; SIGHUP starts a new worker and, a second later, stops the old one."""
    name = "start_server"

    def __init__(self, server, n):
        self.dir = tempfile.mkdtemp(prefix="baton-peers-")
        self.port = free_port()
        cmd = server_command(server)
        if n > 1:
            cmd = [PREFORK, str(n)] + cmd
        self.log = open(os.path.join(self.dir, "start_server.log"), "wb")
        self.proc = subprocess.Popen(
            ["start_server", "--port", "127.0.0.1:%d" % self.port, "--backlog", "1024",
             "--status-file", os.path.join(self.dir, "status"), "--"] + cmd,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_serving(self.port, self.proc, "start_server")

    def upgrade(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


SUPERVISORD_CONF = """[unix_http_server]
file = %(dir)s/supervisor.sock

[supervisord]
logfile = %(dir)s/supervisord.log
pidfile = %(dir)s/supervisord.pid
childlogdir = %(dir)s

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://%(dir)s/supervisor.sock
"""

SUPERVISORD_PROGRAM = """
[program:%(name)s]
command = %(command)s
stopsignal = TERM
stopwaitsecs = 10
"""


def supervisord_conf(d, programs):
    return SUPERVISORD_CONF % {"dir": d} + "".join(
        SUPERVISORD_PROGRAM % {"name": name, "command": " ".join(cmd)} for name, cmd in programs)


class Supervisord:
    """The server under supervisord, which cannot hand over a socket: the server binds its own
    port, and a restart stops it, then starts it."""
    name = "supervisord"

    def __init__(self, server, n):
        self.dir = tempfile.mkdtemp(prefix="baton-peers-")
        self.port = free_port()
        listen = ["--listen", "127.0.0.1:%d" % self.port]
        cmd = server_command(server)
        cmd = [PREFORK] + listen + [str(n)] + cmd if n > 1 else cmd + listen
        self.conf = os.path.join(self.dir, "supervisord.conf")
        with open(self.conf, "w") as f:
            f.write(supervisord_conf(self.dir, [("web", cmd)]))
        self.log = open(os.path.join(self.dir, "out.log"), "wb")
        self.proc = subprocess.Popen(["supervisord", "-n", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_serving(self.port, self.proc, "supervisord")

    def upgrade(self):
        r = subprocess.run(["supervisorctl", "-c", self.conf, "restart", "web"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or "started" not in r.stdout:
            raise SystemExit("supervisorctl restart failed: " + r.stdout + r.stderr)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


RUNNERS = {"batond": Batond, "start_server": Starter, "supervisord": Supervisord}


def parse_summary(text):
    fields = dict(kv.split("=", 1) for kv in text.split())
    return {k: float(v) for k, v in fields.items()}


def rate_args(rate):
    return ["-r", "%.0f" % rate] if rate else []


def steady_load(port, seconds, rate=0):
    r = subprocess.run([harness.LOADGEN, "-t", "127.0.0.1:%d" % port, "-c", str(CONNS), "-q",
                        "-d", str(seconds)] + rate_args(rate),
                       capture_output=True, text=True, timeout=seconds + 30)
    return parse_summary(r.stdout)


class IntervalLoad:
    """The load generator until stopped, with a line every 100 ms of that interval."""

    def __init__(self, port, rate=0):
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [harness.LOADGEN, "-t", "127.0.0.1:%d" % port, "-c", str(CONNS), "-q", "-i", "100"]
            + rate_args(rate), stdout=subprocess.PIPE, stderr=self.err, text=True)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.err.seek(0)
        series = []
        for line in self.err:
            if line.startswith("interval "):
                f = parse_summary(line[len("interval "):])
                series.append((f["mono"], f["ok"], f["failed"], f["p99_ms"]))
        self.err.close()
        return parse_summary(out), series


def sleep_until(t):
    time.sleep(max(0, t - time.monotonic()))


def upgrade_case(sup, label, server, n, target):
    """Rounds of steady load, then upgrades under the same load; reports the figures and
    returns the upgrade windows' time series and upgrade instants, laid end to end (seconds
    from the first window's start)."""
    machine = Machine()
    runner = RUNNERS[sup](server, n)
    try:
        steady, during, series, instants = [], [], [], []
        rate = 0
        if RATE:
            top = steady_load(runner.port, STEADY)
            rate = RATE * top["ok"] / top["seconds"]
            report("rate", label, sup, "%.0f req/s (%.0f%% of %.0f)" %
                   (rate, 100 * RATE, top["ok"] / top["seconds"]))
        for r in range(ROUNDS):
            steady.append(steady_load(runner.port, STEADY, rate))
            lg = IntervalLoad(runner.port, rate)
            t0 = time.monotonic()
            shift = r * WINDOW - t0
            for i in range(PER_ROUND):
                sleep_until(t0 + 0.5 + i * SPACING)
                instants.append(time.monotonic() + shift)
                runner.upgrade()
            sleep_until(t0 + WINDOW)
            result, got = lg.stop()
            during.append(result)
            series += [(mono + shift, ok, failed, p99) for mono, ok, failed, p99 in got
                       if mono <= t0 + WINDOW]
        steady.append(steady_load(runner.port, STEADY, rate))
    finally:
        runner.stop()
    machine.done()
    failed = sum(d["requests"] - d["ok"] for d in during)
    requests = sum(d["requests"] for d in during)
    kinds = ", ".join("%s %d" % (k, sum(d[k] for d in during))
                      for k in ("refused", "reset", "eof", "timeout", "other", "bad_status")
                      if sum(d[k] for d in during))
    report("failed", label, sup,
           "%d of %d%s" % (failed, requests, " (%s)" % kinds if kinds else ""), "0", failed == 0,
           machine)
    s_rps = statistics.mean(r["ok"] / r["seconds"] for r in steady)
    d_rps = statistics.mean(r["ok"] / r["seconds"] for r in during)
    report("throughput", label, sup,
           "%.0f vs %.0f req/s (%.0f%%)" % (d_rps, s_rps, 100 * d_rps / s_rps),
           ">= %.0f%%" % (THROUGHPUT_TARGET * 100), d_rps / s_rps >= THROUGHPUT_TARGET, machine)
    s_p99 = statistics.median(r["p99_ms"] for r in steady)
    d_p99 = statistics.median(r["p99_ms"] for r in during)
    report("p99", label, sup, "%.2f vs %.2f ms (%.2fx)" % (d_p99, s_p99, d_p99 / s_p99),
           "<= %.1fx" % target, d_p99 / s_p99 <= target, machine)
    return series, instants, 0.0


# ---- 100 services ----

def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def sleeps_running(pids):
    return sum(1 for p in pids for c in children(p) if comm(c) == "sleep")


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def median_ms(args, runs):
    devnull = os.open(os.devnull, os.O_WRONLY)
    times = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            pid = os.posix_spawnp(args[0], args, os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
            _, status = os.waitpid(pid, 0)
            times.append(time.perf_counter() - t0)
            if status != 0:
                raise SystemExit("%s failed" % " ".join(args))
    finally:
        os.close(devnull)
    return statistics.median(times) * 1e3


class ManyBatond:
    def __init__(self, d):
        self.b = harness.Batond("".join("[service:s%d]\ncommand = /bin/sleep 1000\n\n" % i
                                        for i in range(SERVICES)), start=False)
        self.b.start(wait=False)
        self.pids = [self.b.pid]

    def status(self):
        return [harness.BATONCTL, "-s", self.b.control, "status"]

    def stop(self):
        self.b.signal(signal.SIGTERM)
        self.b.wait_exit()

    def close(self):
        self.b.close()


class ManyStarters:
    """One start_server a service: it runs one program."""

    def __init__(self, d):
        self.log = open(os.path.join(d, "start_server.log"), "wb")
        self.procs = [subprocess.Popen(["start_server", "--", "/bin/sleep", "1000"],
                                       stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
                      for _ in range(SERVICES)]
        self.pids = [p.pid for p in self.procs]

    def status(self):
        return None

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(timeout=60)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.log.close()


class ManySupervisord:
    def __init__(self, d):
        self.conf = os.path.join(d, "supervisord.conf")
        with open(self.conf, "w") as f:
            f.write(supervisord_conf(d, [("s%d" % i, ["/bin/sleep", "1000"])
                                         for i in range(SERVICES)]))
        self.log = open(os.path.join(d, "out.log"), "wb")
        self.proc = subprocess.Popen(["supervisord", "-n", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.pids = [self.proc.pid]

    def status(self):
        return ["supervisorctl", "-c", self.conf, "status"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


MANY = {"batond": ManyBatond, "start_server": ManyStarters, "supervisord": ManySupervisord}


def services_case(sup, true_ms):
    machine = Machine()
    d = tempfile.mkdtemp(prefix="baton-peers-")
    label = "%d services" % SERVICES
    figures = []
    try:
        t0 = time.monotonic()
        many = MANY[sup](d)
        try:
            harness.poll(lambda: sleeps_running(many.pids) == SERVICES, timeout=60, interval=0.01,
                         what="%d services running under %s" % (SERVICES, sup))
            took = time.monotonic() - t0
            figures.append(("spawn", "%.3f s" % took, "<= 0.1 s", took <= 0.1))
            time.sleep(1)
            kib = sum(pss_kib(p) for p in many.pids)
            figures.append(("memory", "%d KiB in %d process%s" % (
                kib, len(many.pids), "es" if len(many.pids) > 1 else ""), "<= 2048 KiB",
                kib <= 2048))
            if many.status():
                ms = median_ms(many.status(), 10)
                figures.append(("status", "median %.2f ms (%.2fx /bin/true)" % (ms, ms / true_ms),
                                "<= 1.2x", ms / true_ms <= 1.2))
            else:
                figures.append(("status", "no status command", "<= 1.2x", None))
            t0 = time.monotonic()
            many.stop()
            took = time.monotonic() - t0
            figures.append(("stop", "%.3f s" % took, "<= 0.1 s", took <= 0.1))
        finally:
            many.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    machine.done()
    for table, figure, target, ok in figures:
        report(table, label, sup, figure, target, ok, machine)


# ---- the plot ----

def write_series(path, series, instants, t0):
    """Writes the series (seconds from t0, requests/s, failed/s, p99 ms); returns the
    instants in seconds from t0."""
    with open(path, "w") as f:
        for mono, ok, failed, p99 in series:
            f.write("%.3f %.0f %.0f %.3f\n" % (mono - t0, ok * 10, failed * 10, p99))
    return [t - t0 for t in instants]


def plot(kept):
    """kept: {(sup, server label): (series, instants, t0)}; one panel each, batond above
    start_server, a column per server."""
    if not shutil.which("gnuplot"):
        print("plot: gnuplot is not installed, no plot", flush=True)
        return
    d = tempfile.mkdtemp(prefix="baton-peers-plot-")
    labels = [c[0] for c in CASES if ("batond", c[0]) in kept][:2]
    script = ["set terminal png size 1200,720 font 'DejaVuSans,9'",
              "set output '%s'" % PLOT,
              "set multiplot layout 2,%d title 'Throughput and p99 latency every 100 ms under "
              "load (32 connections) during 10 upgrades (black lines): the %d upgrade windows "
              "of %.1f s, laid end to end (wide grey lines)'" % (len(labels), ROUNDS, WINDOW),
              "set xlabel 'seconds'", "set xrange [0:%.1f]" % (ROUNDS * WINDOW),
              "set ylabel 'requests/s'", "set y2label 'p99 (ms)'",
              "set ytics nomirror", "set y2tics", "set yrange [0:*]", "set y2range [0:*]",
              "set key top right opaque", "set grid"]
    # A column's panels share their scales.
    ymax, y2max = {}, {}
    for label in labels:
        both = [kept[(sup, label)][0] for sup in ("batond", "start_server")
                if (sup, label) in kept]
        ymax[label] = max(max(s[1] for s in series) for series in both) * 10 * 1.15
        y2max[label] = max(max(s[3] for s in series) for series in both) * 1.15
    for sup in ("batond", "start_server"):
        for label in labels:
            if (sup, label) not in kept:
                continue
            series, instants, t0 = kept[(sup, label)]
            dat = os.path.join(d, "%s-%d.dat" % (sup, labels.index(label)))
            marks = write_series(dat, series, instants, t0)
            script.append("unset arrow")
            for t in marks:
                script.append("set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lc "
                              "rgb 'black'" % (t, t))
            for r in range(1, ROUNDS):
                script.append("set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lw 6 lc "
                              "rgb 'gray85' back" % (r * WINDOW, r * WINDOW))
            script.append("set yrange [0:%.0f]" % ymax[label])
            script.append("set y2range [0:%.3f]" % y2max[label])
            script.append("set title '%s: %s' noenhanced" % (sup, label))
            script.append("plot '%s' using 1:2 with lines lw 1.5 lc rgb '#1f77b4' "
                          "title 'requests/s', '' using 1:4 axes x1y2 with lines lw 1.5 "
                          "lc rgb '#d62728' title 'p99 (ms)'" % dat)
    script.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", capture_output=True,
                       text=True)
    shutil.rmtree(d, ignore_errors=True)
    if r.returncode != 0:
        print("plot: gnuplot failed: " + r.stderr, flush=True)
    else:
        print("plot: %s" % os.path.abspath(PLOT), flush=True)


# ---- the tables ----

TABLES = (
    ("rate", "fixed rate of the load (PEERS_RATE)"),
    ("failed", "failed requests during 10 upgrades"),
    ("throughput", "throughput during upgrades vs steady"),
    ("p99", "p99 latency during upgrades vs steady"),
    ("spawn", "start until 100 services run"),
    ("memory", "PSS of the supervisor's processes, 100 services"),
    ("status", "`status` with 100 services, beside /bin/true"),
    ("stop", "stop 100 services (SIGTERM to the supervisor)"),
)


def markdown():
    print("\nMarkdown (%s):" % os.environ.get("BENCH_COMMIT", "working tree"))
    for table, title in TABLES:
        rows = []
        for t, row, *_ in RESULTS:
            if t == table and row not in rows:
                rows.append(row)
        if not rows:
            continue
        print("\n%s\n\n| | %s | target | machine |\n|---|%s---|---|" % (
            title, " | ".join(SUPERVISORS), "---|" * len(SUPERVISORS)))
        for row in rows:
            cells, target, machines = [], "", []
            for sup in SUPERVISORS:
                found = [r for r in RESULTS if r[0] == table and r[1] == row and r[2] == sup]
                if not found:
                    cells.append("")
                    continue
                _, _, _, figure, target, ok, machine = found[0]
                cells.append(figure + ("" if ok is None else " (met)" if ok else " (missed)"))
                if machine:
                    machines.append(machine)
            print("| %s | %s | %s | %s |" % (row, " | ".join(cells), target, loads(machines)))


def loads(machines):
    """The load averages and other work's cores of a row's cases, as ranges."""
    def span(values, fmt):
        lo, hi = min(values), max(values)
        return fmt % lo if fmt % lo == fmt % hi else (fmt + "–" + fmt) % (lo, hi)
    if not machines:
        return ""
    return "load %s, others %s cores" % (span([m.load for m in machines], "%.1f"),
                                         span([m.others for m in machines], "%.2f"))


def missing_tools():
    return [t for t in ("start_server", "supervisord", "supervisorctl")
            if not shutil.which(t)]


def chosen(sups):
    return [s for s in sups if s in ONLY_SUPERVISORS or ONLY_SUPERVISORS == [""]]


def main(parts):
    if any(p in ("-h", "--help") for p in parts):
        print(__doc__.strip())
        return 0
    unknown = [p for p in parts if p not in ("upgrades", "services")]
    if unknown:
        print("usage: peers.py [upgrades] [services] (not %s)" % " ".join(unknown),
              file=sys.stderr)
        return 2
    parts = parts or ("upgrades", "services")
    missing = missing_tools()
    if missing:
        print("peers: %s not installed (scripts/bench --peers installs them), skipped"
              % ", ".join(missing))
        return 0
    t_start = time.monotonic()
    print("peers (%s), load average %.2f%s%s%s%s" % (
        os.environ.get("BENCH_COMMIT", "working tree"), wait_quiet(300),
        ", batond's start_nice %d" % START_NICE if START_NICE else "",
        ", batond's stop_delay %s" % STOP_DELAY if STOP_DELAY != "0s" else "",
        ", batond's upgrade = %s" % UPGRADE if UPGRADE != "all" else "",
        ", load at %.0f%% of each server's throughput" % (100 * RATE) if RATE else ""),
        flush=True)
    if "upgrades" in parts:
        kept = {}
        for i, (label, server, n, target) in enumerate(CASES, 1):
            if ONLY_CASES and i not in ONLY_CASES:
                continue
            for sup in chosen(SUPERVISORS):
                series, instants, t0 = upgrade_case(sup, label, server, n, target)
                if sup != "supervisord":
                    kept[(sup, label)] = (series, instants, t0)
        plot(kept)
    if "services" in parts:
        true_ms = median_ms(["/bin/true"], 20)
        print("/bin/true: median %.2f ms" % true_ms, flush=True)
        for sup in chosen(SUPERVISORS):
            services_case(sup, true_ms)
    markdown()
    print("\npeers: %.0f s" % (time.monotonic() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
