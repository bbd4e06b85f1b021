"""Runs the real batond and batonctl for integration tests.

Each test gets its own temporary directory holding the config, the control
socket and the log; services listen on 127.0.0.1 port 0, so tests run in
parallel without colliding. Every wait is a poll bounded in time.
"""

import base64
import fcntl
import glob
import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import time
import unittest

BATOND = os.environ.get("BATOND", "batond")
BATONCTL = os.environ.get("BATONCTL", "batonctl")
TESTCHILD = os.environ.get("TESTCHILD", "testchild")
HTTPD = os.environ.get("HTTPD", "testhttpd")
EXAMPLE_C = os.environ.get("EXAMPLE_C", "baton-example-c")
# Empty when go is not installed: the Go example is then not built.
EXAMPLE_GO = os.environ.get("EXAMPLE_GO", "baton-example-go")
LOADGEN = os.environ.get("LOADGEN", "loadgen")
SOURCE_ROOT = os.environ.get("SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))

# Sanitizer builds are slower; deadlines scale, precision limits do not.
SLOW = float(os.environ.get("BATON_TEST_SLOW", "1"))
# Under valgrind (scripts/valgrind) tests of timing precision cannot hold.
VALGRIND = bool(os.environ.get("BATON_TEST_VALGRIND"))


def timing(test):
    """Marks a test that measures how precise or how fast batond is."""
    return unittest.skipIf(VALGRIND, "measures timing: not under valgrind")(test)


def poll(predicate, timeout=10.0, interval=0.02, what="condition", details=None):
    """Calls predicate until it returns a true value, at most timeout seconds.
    On a timeout, details() (when given) says what was seen, in the message."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            message = "timed out after %.1fs waiting for %s" % (timeout * SLOW, what)
            raise AssertionError(message + ("\n" + details() if details else ""))
        time.sleep(interval)


def describe_pid(pid):
    """What the kernel says of a process: its state, where it waits, its threads and
    command, in a line; for the message of a test that waited on it in vain."""
    fields = {}
    for line in read("/proc/%d/status" % pid).splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    if not fields:
        return "pid %d: gone" % pid
    return "pid %d: %s, wchan %s, %s threads, signals pending %s/%s blocked %s: %s" % (
        pid, fields.get("State"), read("/proc/%d/wchan" % pid) or "?", fields.get("Threads"),
        fields.get("SigPnd"), fields.get("ShdPnd"), fields.get("SigBlk"),
        read("/proc/%d/cmdline" % pid).replace("\0", " ").strip())


def proc_state(pid):
    """Returns the state letter of /proc/PID/stat (Z for a zombie), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2]


def children_of(pid):
    """Returns the pids whose parent is pid, with their state letters."""
    found = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            found[int(stat.split("/")[2])] = rest[0]
    return found


def read(path, default=""):
    """Returns a file's text, or default when it does not exist."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return default


def alive(pid):
    state = proc_state(pid)
    return state is not None and state != "Z"


class Batond:
    """One batond process, its directory, its config and its control socket."""

    def __init__(self, config, env=None, args=(), start=True, preexec_fn=None, stderr=None):
        self.dir = tempfile.mkdtemp(prefix="baton-test-")
        self.config_path = os.path.join(self.dir, "baton.conf")
        self.control = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.dir, "batond.log")
        self.reports = os.path.join(self.dir, "reports")
        os.mkdir(self.reports)
        self.write_config(config)
        self.env = dict(os.environ)
        self.env.pop("BATON_CONTROL", None)
        self.env.update(env or {})
        self.args = list(args)
        self.preexec_fn = preexec_fn
        # An fd for batond's stderr instead of the log (which then holds nothing).
        self.stderr = stderr
        self.proc = None
        if start:
            self.start()

    def expand(self, text):
        return (text.replace("@DIR@", self.dir)
                .replace("@TESTCHILD@", TESTCHILD)
                .replace("@HTTPD@", HTTPD)
                .replace("@REPORTS@", self.reports))

    def write_config(self, config):
        with open(self.config_path, "w") as f:
            f.write(self.expand(config))

    def start(self, wait=True):
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BATOND, "-v", "-c", self.config_path, "-s", self.control] + self.args,
            stdin=subprocess.DEVNULL, stdout=self.logfile,
            stderr=self.logfile if self.stderr is None else self.stderr,
            env=self.env, preexec_fn=self.preexec_fn)
        if wait:
            poll(lambda: self.proc.poll() is not None or self.ctl("version").returncode == 0,
                 what="batond to answer on its control socket")
            if self.proc.poll() is not None:
                raise AssertionError("batond exited with %d:\n%s" % (self.proc.returncode, self.log()))

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        """batond's log so far; "" when it never started (start=False)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def ctl(self, *args, json_output=False, timeout=30, user=None, group=None, input=None):
        cmd = [BATONCTL, "-s", self.control] + (["--json"] if json_output else []) + list(args)
        extra = {}
        if user is not None:
            extra = {"user": user, "group": group, "extra_groups": []}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW,
                              env=self.env, input=input, **extra)

    def status(self, service=None):
        args = ["status"] + ([service] if service else [])
        r = self.ctl(*args, json_output=True)
        if r.returncode != 0:
            raise AssertionError("batonctl status failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout)

    def service(self, name):
        for s in self.status(name)["services"]:
            if s["name"] == name:
                return s
        raise AssertionError("no service %s in status" % name)

    def procs(self, name=None, state=None):
        procs = self.status(name).get("procs", [])
        return [p for p in procs if state is None or p["state"] == state]

    def wait_service(self, name, state, timeout=10.0):
        return poll(lambda: self.service(name)["state"] == state and self.service(name),
                    timeout, what="service %s to be %s" % (name, state))

    def wait_log(self, text, timeout=10.0):
        return poll(lambda: text in self.log(), timeout, what="%r in batond's log" % text)

    def port(self, socket_name):
        for s in self.status().get("sockets", []):
            if s["name"] == socket_name:
                return int(s["bound"].rsplit(":", 1)[1])
        raise AssertionError("no socket %s" % socket_name)

    def reports_of(self):
        """Returns the JSON reports testchild processes wrote, by pid."""
        out = {}
        for path in glob.glob(os.path.join(self.reports, "report-*.json")):
            with open(path) as f:
                data = json.load(f)
            out[data["pid"]] = data
        return out

    def wait_reports(self, count, timeout=10.0):
        return poll(lambda: len(self.reports_of()) >= count and self.reports_of(), timeout,
                    what="%d testchild reports" % count)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=20.0):
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("batond did not exit within %.0fs:\n%s" % (timeout, self.log()))

    def stop(self):
        """Stops batond with SIGTERM and checks that it exits 0."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGTERM)
        return self.wait_exit()

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.logfile.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def send_and_read(s, data, errors=(ConnectionResetError,)):
    """Sends data, which batond may refuse midway, and returns all it answers
    until it closes the connection or one of errors is raised."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except errors:
        pass
    return out

def own_fds(pid):
    """A process's fds and what they are, without its control clients'
    connections (connected UNIX stream sockets), which close when they will."""
    connected = set()
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[4] == "0001" and fields[5] == "03":
                connected.add("socket:[%s]" % fields[6])
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target not in connected:
            fds[int(fd)] = target
    return fds

def parse_record(line):
    """Splits a reply line (bytes, without its newline) into a dict of its
    fields, its type under "type"; quoted values are unescaped."""
    kind, _, rest = line.partition(b" ")
    rec, i = {"type": kind.decode()}, 0
    escapes = {ord("n"): b"\n", ord("t"): b"\t", ord('"'): b'"', ord("\\"): b"\\"}
    while i < len(rest):
        eq = rest.index(b"=", i)
        key, i = rest[i:eq].decode(), eq + 1
        value = bytearray()
        if rest[i:i + 1] == b'"':
            i += 1
            while rest[i] != ord('"'):
                if rest[i] != ord("\\"):
                    value.append(rest[i])
                    i += 1
                elif rest[i + 1] == ord("x"):
                    value.append(int(rest[i + 2:i + 4], 16))
                    i += 4
                else:
                    value += escapes[rest[i + 1]]
                    i += 2
            i += 2
        else:
            end = rest.find(b" ", i)
            end = len(rest) if end < 0 else end
            value, i = rest[i:end], end + 1
        rec[key] = bytes(value).decode()
    return rec


def log_record(line):
    """A `log` record: gen and pid as numbers, and "bytes", the line's exact bytes."""
    rec = parse_record(line)
    rec["gen"], rec["pid"] = int(rec["gen"]), int(rec["pid"])
    if "line_base64" in rec:
        rec["bytes"] = base64.b64decode(rec["line_base64"])
    else:
        rec["bytes"] = rec["line"].encode()
    return rec


class Logs:
    """A `logs` request sent on the control socket as it is, its records read as they come."""

    def __init__(self, b, *args):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(b.control)
        self.sock.sendall((" ".join(("logs",) + args) + "\n").encode())
        self.buf = b""
        self.raw = []  # each line of the reply as it came, without its newline

    def next(self, timeout=10.0):
        """Returns the next record, "ok", or None when none came within timeout."""
        deadline = time.monotonic() + timeout * SLOW
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AssertionError("batond closed the connection; got %r" % self.raw[-5:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        self.raw.append(line)
        if line == b"ok":
            return "ok"
        if not line.startswith(b"log "):
            raise AssertionError("logs: %r" % line)
        return log_record(line)

    def until_ok(self, timeout=10.0):
        """Returns the records that come before ok."""
        records = []
        while True:
            rec = self.next(timeout)
            if rec is None:
                raise AssertionError("no ok within %.0fs after %d records" % (timeout, len(records)))
            if rec == "ok":
                return records
            records.append(rec)

    def close(self):
        self.sock.close()


def logs(b, *args):
    """The records of `logs ARGS` (not --follow), talking the protocol directly."""
    req = Logs(b, *args)
    try:
        return req.until_ok()
    finally:
        req.close()


class TestCase(unittest.TestCase):
    """A test case whose batonds are stopped at the end, their logs shown on failure."""

    def setUp(self):
        self.batonds = []

    def tearDown(self):
        for b in self.batonds:
            if b.proc is not None and b.proc.poll() is None:
                b.stop()

    def batond(self, config, **kwargs):
        b = Batond(config, **kwargs)
        self.batonds.append(b)
        return b

    def watch(self, b, *args, json_output=True):
        """Starts `batonctl --json ARGS` (watch, stop --wait...), closed at the end."""
        w = Watcher(b, *args, json_output=json_output)
        self.addCleanup(w.close)
        return w

    def assert_killed_at_grace(self, w, pid, grace):
        """Checks in the events that SIGKILL followed the stop signal at the grace."""
        signalled = w.find(lambda o: o.get("kind") == "signalled" and o.get("pid") == pid)
        killed = w.find(lambda o: o.get("kind") == "sigkill" and o.get("pid") == pid)
        late = killed["t"] - signalled["t"] - grace
        self.assertGreaterEqual(late, 0, "SIGKILL before the grace ended")
        self.assertLess(late, 0.1, "SIGKILL %.3fs after the grace" % late)
        w.find(lambda o: o.get("kind") == "killed" and o.get("pid") == pid)

    def assert_no_failure(self, result, err):
        """Checks the load generator's counts: no request failed, and enough were served."""
        failures = {k: result[k] for k in ("bad_status", "refused", "reset", "eof", "timeout",
                                           "other")}
        self.assertEqual(failures, dict.fromkeys(failures, 0), "%s\n%s" % (result, err))
        self.assertGreater(result["ok"], 100, result)

    def assert_exits_cleanly(self, b):
        """Stops batond and checks the exit status and that no child is left."""
        pid = b.pid
        code = b.stop()
        self.assertEqual(code, 0, "batond exited with %s:\n%s" % (code, b.log()))
        self.assertEqual(children_of(pid), {}, "processes left behind by batond")


class Load:
    """The load generator running against a port until stopped."""

    def __init__(self, port, conns=16):
        self.proc = subprocess.Popen(
            [LOADGEN, "-t", "127.0.0.1:%d" % port, "-c", str(conns), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self, settle=0.2):
        time.sleep(settle)
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        fields = dict(kv.split("=", 1) for kv in out.split())
        return {k: float(v) if "." in v else int(v) for k, v in fields.items()}, err


class Result(unittest.TextTestResult):
    """Shows the logs of a failed test's batonds, then removes their directories."""

    def show_logs(self, test):
        for b in getattr(test, "batonds", []):
            self.stream.write("\n---- batond log (%s) ----\n%s" % (b.dir, b.log()))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.show_logs(test)

    def addError(self, test, err):
        super().addError(test, err)
        self.show_logs(test)

    def stopTest(self, test):
        for b in getattr(test, "batonds", []):
            b.close()
        super().stopTest(test)


class Watcher:
    """batonctl --json watch (or another streaming verb), read line by line:
    as JSON objects, or as text lines without json_output."""

    def __init__(self, b, *args, json_output=True):
        self.proc = subprocess.Popen(
            [BATONCTL, "-s", b.control] + (["--json"] if json_output else []) + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.json = json_output
        self.lines = []
        self.pending = []
        self.buf = b""

    def next_line(self, deadline):
        # Unbuffered: select() must see every byte that is not yet parsed.
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            line = self.next_line(deadline)
            if line is None:
                break
            obj = json.loads(line) if self.json else line.decode(errors="replace")
            self.lines.append(obj)
            if predicate(obj):
                return obj
        raise AssertionError("no such record within %.0fs; got %s" % (timeout, self.lines[-20:]))

    def find(self, predicate, timeout=10.0):
        """Returns the first record, read already or to come, that predicate accepts."""
        for obj in self.lines:
            if predicate(obj):
                return obj
        return self.read_until(predicate, timeout)

    def events(self, kind):
        return [o for o in self.lines if o.get("type") == "event" and o.get("kind") == kind]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def on_terminal(args, columns=80, timeout=10.0):
    """Runs a command whose output is a terminal columns wide; returns its exit
    status and all it wrote there, read until it exited and nothing was left."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=5), out.decode(errors="replace")


def http_get(port, path="/", timeout=5.0):
    """Sends one HTTP/1.0 GET to 127.0.0.1:port; returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def main():
    unittest.main(verbosity=2, testRunner=unittest.TextTestRunner(resultclass=Result, verbosity=2))
