#!/usr/bin/env python3
"""baton's benchmarks: what batond costs when nothing happens, how fast it acts.

Usage: bench.py [NAME...] (default: all). Each prints its figures and its
target. Run with `meson test -C build --benchmark -v` or scripts/bench; the
binaries come from BATOND, BATONCTL, TESTCHILD, HTTPD (the test server,
build/tests/testhttpd) and LOADGEN.
"""

import json
import os
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402
import test_load  # noqa: E402

RESULTS = []


def report(name, figure, target, ok):
    """Prints a figure beside its target (ok None: beside what it is compared with)."""
    if ok is None:
        line = "%-44s %-34s %s" % (name, figure, target)
    else:
        line = "%-44s %-34s target %-22s %s" % (name, figure, target, "met" if ok else "MISSED")
    RESULTS.append(line)
    print(line, flush=True)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(config, **kw):
    b = harness.Batond(config, **kw)
    return b


def wait_running(b, services, procs, timeout=60):
    """Polls status until every process is ready; returns the status."""
    def done():
        st = b.status()
        ready = sum(s["ready"] for s in st["services"])
        running = sum(1 for s in st["services"] if s["state"] == "running")
        return running == services and ready == procs and st
    return harness.poll(done, timeout=timeout, interval=0.002, what="every process running")


def many_services(n, command, instances=1, extra=""):
    return "".join("[service:s%d]\ncommand = %s\ninstances = %d\n%s\n" %
                   (i, command, instances, extra) for i in range(n))


def bench_idle():
    if not shutil.which("strace"):
        print("idle: strace is not installed, skipped")
        return
    b = start(many_services(10, "/bin/sleep 1000"))
    try:
        wait_running(b, 10, 10)
        time.sleep(0.5)
        r = subprocess.run(["timeout", "-s", "INT", "10", "strace", "-c", "-p", str(b.pid)],
                           capture_output=True, text=True)
        if "attached" not in r.stderr:
            raise SystemExit("strace could not attach: " + r.stderr)
        calls = 0
        for line in r.stderr.splitlines():
            parts = line.split()
            if parts and parts[-1] == "total":
                calls = int(parts[3]) if len(parts) >= 5 else int(parts[2])
        report("idle: system calls in 10 s, 10 services", "%d" % calls, "0", calls == 0)
    finally:
        b.stop()
        b.close()


def bench_memory():
    for n, target in ((100, 2048), (1000, 8192)):
        b = start("[service:s]\ncommand = /bin/sleep 1000\ninstances = %d\n" % n)
        try:
            wait_running(b, 1, n)
            kib = rss_kib(b.pid)
            report("memory: batond RSS with %d processes" % n, "%d KiB" % kib,
                   "<= %d KiB" % target, kib <= target)
        finally:
            b.stop()
            b.close()


def smaps_rollup(pid):
    """The kB figures of /proc/PID/smaps_rollup, by name."""
    figures = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                figures[parts[0].rstrip(":")] = int(parts[1])
    return figures


def pid1_pss(program, args, directory):
    """PSS of program running /bin/sleep: a copy of it, so that no other
    process shares its pages and the figure is what one container pays."""
    copy = os.path.join(directory, os.path.basename(program))
    shutil.copy(program, copy)
    p = subprocess.Popen([copy] + args + ["/bin/sleep", "1000"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        def settled():
            kids = harness.read("/proc/%d/task/%d/children" % (p.pid, p.pid)).split()
            return kids and harness.read("/proc/%s/comm" % kids[0]).strip() == "sleep"
        harness.poll(settled, timeout=10, what="%s to run sleep" % program)
        return smaps_rollup(p.pid)
    finally:
        p.terminate()
        p.wait(timeout=10)


def bench_pid1():
    """Memory of batond as a container's init, with tini and dumb-init beside
    it when Debian's are installed. libc's pages count for a share only: in a
    container with fewer processes mapping it, each pays more."""
    with tempfile.TemporaryDirectory() as d:
        control = os.path.join(d, "control.sock")
        m = pid1_pss(harness.BATOND, ["-s", control, "--"], d)
        report("pid1: batond -- sleep, PSS", "%d KiB (anon %d, file %d)" % (
            m["Pss"], m["Pss_Anon"], m["Pss_File"]), "tini's level", None)
        for program, args in (("/usr/bin/tini", ["-s", "--"]), ("/usr/bin/tini-static", ["-s", "--"]),
                              ("/usr/bin/dumb-init", [])):
            if not os.path.exists(program):
                print("pid1: %s is not installed (Debian's tini, dumb-init), skipped" % program)
                continue
            m = pid1_pss(program, args, d)
            report("pid1: %s -- sleep, PSS" % os.path.basename(program),
                   "%d KiB (anon %d, file %d)" % (m["Pss"], m["Pss_Anon"], m["Pss_File"]), "", None)


def timed_run(args, runs):
    times = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            pid = os.posix_spawn(args[0], args, os.environ,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
            os.waitpid(pid, 0)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(devnull)
    return times


def bench_control():
    b = start("[service:s]\ncommand = /bin/sleep 1000\ninstances = 1000\n")
    try:
        wait_running(b, 1, 1000)
        runs = 50
        true = timed_run(["/bin/true"], runs)
        status = timed_run([harness.BATONCTL, "-s", b.control, "status"], runs)
        med_true, med_status = statistics.median(true), statistics.median(status)
        ratio = med_status / med_true
        report("control: batonctl status, 1000 processes",
               "median %.2f ms, p99 %.2f ms" % (med_status * 1e3, percentile(status, 99) * 1e3),
               "", True)
        report("control: /bin/true the same way",
               "median %.2f ms, p99 %.2f ms" % (med_true * 1e3, percentile(true, 99) * 1e3), "", True)
        report("control: status / true (medians)", "%.2fx" % ratio, "<= 1.2x", ratio <= 1.2)
    finally:
        b.stop()
        b.close()


def spawn_floor(n):
    """What this machine takes to start n /bin/sleep, one after another, without batond."""
    t0 = time.monotonic()
    pids = [os.posix_spawn("/bin/sleep", ["sleep", "1000"], os.environ) for _ in range(n)]
    took = time.monotonic() - t0
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        os.waitpid(pid, 0)
    return took


def bench_spawn():
    for n in (100, 1000):
        report("spawn: the machine, posix_spawn of %d /bin/sleep" % n, "%.3f s" % spawn_floor(n),
               "", True)
    t0 = time.monotonic()
    b = start(many_services(100, "/bin/sleep 1000"), )
    try:
        wait_running(b, 100, 100)
        took = time.monotonic() - t0
        report("spawn: start until 100 services run", "%.3f s" % took, "<= 0.1 s", took <= 0.1)
        t0 = time.monotonic()
        b.signal(signal.SIGTERM)
        b.wait_exit()
        took = time.monotonic() - t0
        report("stop: 100 services, exit on SIGTERM", "%.3f s" % took, "<= 0.1 s", took <= 0.1)
    finally:
        b.close()
    t0 = time.monotonic()
    b = start("[service:s]\ncommand = /bin/sleep 1000\ninstances = 1000\n")
    try:
        wait_running(b, 1, 1000)
        took = time.monotonic() - t0
        report("spawn: start until 1000 processes run", "%.3f s" % took, "<= 1 s", took <= 1.0)
    finally:
        b.stop()
        b.close()


def bench_reap():
    d = tempfile.mkdtemp(prefix="baton-bench-")
    fifo = os.path.join(d, "go")
    os.mkfifo(fifo)
    b = start("[service:s]\ncommand = /bin/sh -c 'read x < %s'\ninstances = 1000\nrestart = never\n"
              % fifo)
    try:
        wait_running(b, 1, 1000)
        t0 = time.monotonic()
        with open(fifo, "w"):
            pass
        harness.poll(lambda: b.status()["services"][0]["running"] == 0, timeout=30,
                     interval=0.002, what="every process reaped")
        took = time.monotonic() - t0
        zombies = [p for p, st in harness.children_of(b.pid).items() if st == "Z"]
        report("reap: 1000 processes that exit at once", "%.3f s, %d zombies" % (took, len(zombies)),
               "no zombie", not zombies)
    finally:
        b.stop()
        b.close()
        shutil.rmtree(d, ignore_errors=True)


def kill_lateness(b, service, grace):
    """Stops service and returns, per SIGKILL, how late after the grace it came (ms)."""
    r = subprocess.run([harness.BATONCTL, "-s", b.control, "--json", "stop", "--wait", service],
                       capture_output=True, text=True, timeout=60)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    signalled = {e["pid"]: e["t"] for e in events if e.get("kind") == "signalled"}
    killed = {e["pid"]: e["t"] for e in events if e.get("kind") == "sigkill"}
    return [(killed[p] - signalled[p] - grace) * 1e3 for p in killed if p in signalled]


def bench_escalation():
    # 100 stops one after another: how precise one deadline is.
    b = start("[service:s]\ncommand = %s --ignore-term\nstop_grace = 50ms\n" % harness.TESTCHILD)
    try:
        late = []
        for _ in range(100):
            wait_running(b, 1, 1)
            late += kill_lateness(b, "s", 0.05)
            b.ctl("start", "s")
        p99 = percentile(late, 99)
        report("escalation: SIGKILL after stop_grace, %d stops" % len(late),
               "p50 %.2f ms, p99 %.2f ms" % (percentile(late, 50), p99), "p99 < 10 ms", p99 < 10)
    finally:
        b.stop()
        b.close()
    # 100 deadlines at the same moment: the machine's two cores also run 100 exits.
    b = start("[service:s]\ncommand = %s --ignore-term\ninstances = 100\nstop_grace = 100ms\n"
              % harness.TESTCHILD)
    try:
        wait_running(b, 1, 100)
        late = kill_lateness(b, "s", 0.1)
        report("escalation: 100 deadlines at once",
               "p50 %.2f ms, p99 %.2f ms" % (percentile(late, 50), percentile(late, 99)), "", True)
    finally:
        b.stop()
        b.close()


def bench_upgrade():
    if not os.path.exists(harness.HTTPD) or not os.path.exists(harness.LOADGEN):
        print("upgrade: the test server or the load generator is not built, skipped")
        return
    b = start(test_load.config(mode="all", instances=8))
    try:
        b.wait_service("web", "running")
        port = b.port("http")
        # Rounds of steady load then upgrades under the same load, one a
        # second: the machine's own drift weighs on both alike.
        steady, during, walls = [], [], []
        for _ in range(3):
            steady.append(run_load(port, 4.0))
            load = harness.Load(port, conns=32)
            t_start = time.monotonic()
            for i in range(4):
                time.sleep(max(0, t_start + i + 0.5 - time.monotonic()))
                t0 = time.monotonic()
                if b.ctl("upgrade", "--wait", "web").returncode != 0:
                    raise SystemExit("an upgrade failed")
                walls.append(time.monotonic() - t0)
            time.sleep(max(0, t_start + 4 - time.monotonic()))
            during.append(load.stop()[0])
        failed = sum(d["requests"] - d["ok"] for d in during)
        requests = sum(d["requests"] for d in during)
        report("upgrade: --wait, 8 instances, ready = notify",
               "median %.1f ms (%d upgrades)" % (statistics.median(walls) * 1e3, len(walls)), "", True)
        report("upgrade: failed requests during upgrades", "%d of %d" % (failed, requests),
               "0", failed == 0)
        steady = {"rps": statistics.mean(r["rps"] for r in steady),
                  "p99_ms": statistics.median(r["p99_ms"] for r in steady)}
        during = {"rps": statistics.mean(r["rps"] for r in during),
                  "p99_ms": statistics.median(r["p99_ms"] for r in during)}
        ratio = during["rps"] / steady["rps"]
        report("upgrade: throughput vs steady state",
               "%.0f vs %.0f req/s (%.0f%%)" % (during["rps"], steady["rps"], ratio * 100),
               ">= 90%", ratio >= 0.9)
        lat = during["p99_ms"] / steady["p99_ms"]
        report("upgrade: p99 latency vs steady state",
               "%.2f vs %.2f ms (%.2fx)" % (during["p99_ms"], steady["p99_ms"], lat), "<= 1.5x",
               lat <= 1.5)
    finally:
        b.stop()
        b.close()


def run_load(port, seconds):
    r = subprocess.run([harness.LOADGEN, "-t", "127.0.0.1:%d" % port, "-c", "32", "-q", "-d",
                        str(seconds)], capture_output=True, text=True, timeout=seconds + 30)
    fields = dict(kv.split("=", 1) for kv in r.stdout.split())
    return {k: float(v) for k, v in fields.items()}


def status_ratio(b, services, target):
    """batonctl status against /bin/true, each spawned the same way, interleaved
    so that a change in the machine's load falls on both."""
    true, status = [], []
    for _ in range(10):
        true += timed_run(["/bin/true"], 20)
        status += timed_run([harness.BATONCTL, "-s", b.control, "status"], 20)
    med_true, med_status = statistics.median(true), statistics.median(status)
    ratio = med_status / med_true
    report("scale: status, %d services" % services,
           "median %.2f ms, true %.2f ms" % (med_status * 1e3, med_true * 1e3), "", None)
    report("scale: status / true, %d services" % services, "%.2fx" % ratio,
           "<= %.1fx" % target, ratio <= target)


def bench_scale():
    b = start(many_services(100, "/bin/sleep 1000"))
    try:
        wait_running(b, 100, 100, timeout=60)
        status_ratio(b, 100, 1.3)
    finally:
        b.stop()
        b.close()
    t0 = time.monotonic()
    b = start(many_services(1000, "/bin/sleep 1000"))
    try:
        wait_running(b, 1000, 1000, timeout=120)
        report("scale: start, 1000 services", "%.3f s" % (time.monotonic() - t0), "", True)
        status_ratio(b, 1000, 2.0)
        t0 = time.perf_counter()
        r = b.ctl("reload")
        report("scale: reload, 1000 services", "%.2f ms" % ((time.perf_counter() - t0) * 1e3), "",
               r.returncode == 0)
    finally:
        b.stop()
        b.close()


def cpu_seconds(pid):
    """The user and system CPU time of a process (self), and of its reaped children, from
    /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def checks_passed(b):
    r = b.ctl("metrics")
    return sum(int(line.split()[-1]) for line in r.stdout.splitlines()
               if line.startswith("baton_checks_passed_total{"))


def bench_checks():
    # 100 services checked every 100 ms by the cheapest program, /bin/true, so that
    # batond's own cost per check shows: up to 1000 checks a second. The target, 10% of
    # one core, is 100 us a check: a fraction of what the check's own process costs (the
    # second row), and 1% of a core at the default check_interval of 1s.
    b = start(many_services(100, "/bin/sleep 1000",
                            extra="check = exec:/bin/true\ncheck_interval = 100ms\n"))
    try:
        wait_running(b, 100, 100)
        time.sleep(1)
        (cpu0, kids0), n0, t0 = cpu_seconds(b.pid), checks_passed(b), time.monotonic()
        time.sleep(10)
        (cpu1, kids1), n1, t1 = cpu_seconds(b.pid), checks_passed(b), time.monotonic()
        share, rate = (cpu1 - cpu0) / (t1 - t0), (n1 - n0) / (t1 - t0)
        report("checks: batond CPU with 100 services checked every 100 ms",
               "%.1f%% of a core, %.0f checks/s" % (share * 100, rate), "< 10% of one core",
               share < 0.10)
        report("checks: batond CPU per check, vs the check's own",
               "%.0f us vs %.0f us" % ((cpu1 - cpu0) / (n1 - n0) * 1e6,
                                      (kids1 - kids0) / (n1 - n0) * 1e6), "", True)
    finally:
        b.stop()
        b.close()


# The output benchmark: 200 MB of 100-byte lines from one process.
LOG_LINES = 2000000
LOG_LINE = 100


def generator():
    """testchild writing LOG_LINES numbered lines of LOG_LINE bytes, then exiting."""
    return [harness.TESTCHILD, "--print", str(LOG_LINES), "--print-size", str(LOG_LINE),
            "--exit", "0"]


class Reader(threading.Thread):
    """Reads a pipe to its end, noting when the generator's last line went by."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd, self.bytes, self.done_at = fd, 0, None
        self.marker = b" %d x" % LOG_LINES
        self.start()

    def run(self):
        tail = b""
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return
            self.bytes += len(chunk)
            if self.done_at is None and self.marker in tail + chunk:
                self.done_at = time.monotonic()
            tail = chunk[-32:]


def copy_with_cat(directory, to_file):
    """The generator's lines copied by cat to a file or a pipe (read by a
    Reader); returns the seconds until the last line is written, and cat's
    CPU seconds."""
    out = open(os.path.join(directory, "cat.out"), "wb") if to_file else subprocess.PIPE
    t0 = time.monotonic()
    gen = subprocess.Popen(generator(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    cat = subprocess.Popen(["cat"], stdin=gen.stdout, stdout=out)
    gen.stdout.close()
    reader = None if to_file else Reader(cat.stdout.fileno())
    _, status, usage = os.wait4(cat.pid, 0)
    took = time.monotonic() - t0
    cat.returncode = os.waitstatus_to_exitcode(status)  # reaped here, for its rusage
    gen.wait()
    if reader:
        reader.join()
        took = reader.done_at - t0
        cat.stdout.close()
    else:
        out.close()
    return took, usage.ru_utime + usage.ru_stime


def relay_with_batond(to_file):
    """The generator's lines relayed by batond to a file sink, or to its
    stderr, a pipe read by a Reader; returns the seconds until the last line
    is written and batond's CPU seconds."""
    sink = "log = file:@DIR@/out.log\nlog_max_size = 0\n" if to_file else ""
    b = harness.Batond("[service:gen]\ncommand = %s\nrestart = never\n%s" %
                       (" ".join(generator()), sink), start=False)
    reader = None
    try:
        if not to_file:
            r, w = os.pipe()
            reader = Reader(r)
            b.stderr = w
        t0 = time.monotonic()
        b.start()
        if reader:
            os.close(w)
        pid = harness.poll(lambda: [p["pid"] for p in b.procs("gen")], interval=0.001,
                           what="the generator")[0]
        if reader:
            harness.poll(lambda: reader.done_at, timeout=120, interval=0.005, what="the last line")
            took = reader.done_at - t0
        else:
            # Each line as written: TIME gen[PID] gen 1 out: TEXT
            size = LOG_LINES * (28 + len("gen[%d] gen 1 out: " % pid) + LOG_LINE)
            path = os.path.join(b.dir, "out.log")
            harness.poll(lambda: os.path.exists(path) and os.path.getsize(path) >= size,
                         timeout=120, interval=0.005, what="the last line in the file")
            took = time.monotonic() - t0
        return took, cpu_seconds(b.pid)[0]
    finally:
        b.stop()
        b.close()
        if reader:
            reader.join(10)
            os.close(r)


def bench_logs():
    mb = LOG_LINES * LOG_LINE / 1e6
    d = tempfile.mkdtemp(prefix="baton-bench-")
    try:
        t0 = time.monotonic()
        subprocess.run(generator(), stdout=subprocess.DEVNULL, check=True)
        alone = time.monotonic() - t0
        report("logs: the generator alone, %.0f MB" % mb,
               "%.2f M lines/s, %.0f MB/s" % (LOG_LINES / alone / 1e6, mb / alone), "", None)
        for to_file, where in ((True, "a file"), (False, "a pipe drained")):
            # The best of two runs of each: the machine is shared.
            cat = min(copy_with_cat(d, to_file) for _ in range(2))
            relay = min(relay_with_batond(to_file) for _ in range(2))
            if os.path.exists(os.path.join(d, "cat.out")):
                os.unlink(os.path.join(d, "cat.out"))
            report("logs: cat to %s" % where, "%.2f M lines/s, %.0f MB/s" % (
                LOG_LINES / cat[0] / 1e6, mb / cat[0]), "", None)
            report("logs: batond to %s" % ("a file sink" if to_file else "its stderr, " + where),
                   "%.2f M lines/s, %.0f MB/s" % (LOG_LINES / relay[0] / 1e6, mb / relay[0]),
                   "%.0f%% of cat's rate" % (100 * cat[0] / relay[0]), None)
            report("logs: CPU per MB, batond to %s" % ("a file" if to_file else "its stderr"),
                   "%.2f ms/MB" % (relay[1] / mb * 1e3),
                   "cat: %.2f ms/MB" % (cat[1] / mb * 1e3), None)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def version_latency(control):
    """The time of one `version` request on a new connection: how long
    batond's loop takes to come round to a client."""
    t0 = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(control)
        s.sendall(b"version\n")
        data = b""
        while not data.endswith(b"ok\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return time.perf_counter() - t0


def bench_logs_reply():
    # 250,000 lines of 148 bytes kept: a reply of every line is 33 MiB, cut.
    lines = 250000
    b = start("[service:big]\ncommand = %s --print %d --print-size 140\n"
              "log = file:@DIR@/big.log\nlog_buffer = 64MiB\n" % (harness.TESTCHILD, lines))
    try:
        last = " %d x" % lines
        harness.poll(lambda: last in b.ctl("logs", "--lines=1", "big").stdout, timeout=60,
                     what="every line kept")
        stalls, walls, stop = [], [], threading.Event()

        def probe():
            while not stop.is_set():
                stalls.append(version_latency(b.control))
                time.sleep(0.0005)
        steady = [version_latency(b.control) for _ in range(200)]
        t = threading.Thread(target=probe)
        t.start()
        try:
            for _ in range(5):
                walls.append(timed_run([harness.BATONCTL, "-s", b.control, "logs"], 1)[0])
        finally:
            stop.set()
            t.join()
        last3 = timed_run([harness.BATONCTL, "-s", b.control, "logs", "--lines=3"], 10)
        report("logs reply: batonctl logs, 33 MiB of 250,000 lines",
               "median %.0f ms (5 runs)" % (statistics.median(walls) * 1e3), "", True)
        report("logs reply: batonctl logs --lines=3 of them",
               "median %.1f ms" % (statistics.median(last3) * 1e3), "", True)
        worst = max(stalls)
        report("logs reply: a version request meanwhile",
               "max %.1f ms, p99 %.1f ms (alone: max %.1f ms; %d requests)" % (
                   worst * 1e3, percentile(stalls, 99) * 1e3, max(steady) * 1e3, len(stalls)),
               "max <= 10 ms", worst <= 0.010)
    finally:
        b.stop()
        b.close()


BENCHES = {
    "idle": bench_idle,
    "memory": bench_memory,
    "control": bench_control,
    "spawn": bench_spawn,
    "reap": bench_reap,
    "escalation": bench_escalation,
    "upgrade": bench_upgrade,
    "scale": bench_scale,
    "pid1": bench_pid1,
    "checks": bench_checks,
    "logs": bench_logs,
    "logs_reply": bench_logs_reply,
}


def main(names):
    for name in names or BENCHES:
        BENCHES[name]()
    print("\nsummary (%s):" % os.environ.get("BENCH_COMMIT", "working tree"))
    for line in RESULTS:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
