#!/usr/bin/env python3
"""batonctl logs: the lines services write, as text and as JSON, the last ones,
by generation and process, followed; the lines of stopping processes in watch."""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import time

import harness
import test_hostile
from harness import poll

# Writes known lines, then echoes each line written into the fifo.
ECHO_SCRIPT = r"""
printf 'first line\n'
printf 'to stderr\tand a tab\n' >&2
printf 'bad \377 byte, nul \000 and \033[31mcolour\n'
printf 'crlf\r\n'
exec 3<>"$1"
echo "pid $$ ready"
while read -r line <&3; do echo "$line"; done
"""

ECHO = """
[service:echo]
command = sh @DIR@/echo.sh @DIR@/fifo
%s
"""

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
BAD = b"bad \xff byte, nul \x00 and \x1b[31mcolour"
# The lines of the echo service as text, without the prefix; batond reads
# stdout and stderr apart, so that the stderr line may come anywhere.
SHOWN = ["out: first line", "err: to stderr\tand a tab",
         r"out: bad \xff byte, nul \x00 and \x1b[31mcolour", "out: crlf", "out: pid %d ready"]


def with_script(test, config, name, script):
    """Starts batond once the shell script name is written in its directory."""
    b = test.batond(config, start=False)
    with open(os.path.join(b.dir, name), "w") as f:
        f.write(script)
    if name == "echo.sh":
        os.mkfifo(os.path.join(b.dir, "fifo"))
    b.start()
    return b


class LogsTest(harness.TestCase):
    def echo(self, keys="", more=""):
        """Starts batond with the echo service; returns it once the service is ready."""
        b = with_script(self, ECHO % keys + more, "echo.sh", ECHO_SCRIPT)
        self.wait_ready(b, 1)
        return b

    def wait_ready(self, b, count):
        """Waits for the count-th "ready" line of the echo service; returns its pid."""
        def ready():
            lines = re.findall(r"out: pid (\d+) ready$", b.ctl("logs", "echo").stdout, re.M)
            return len(lines) >= count and int(lines[count - 1])
        return poll(ready, what="the echo service's line number %d" % count)

    def feed(self, b, text, wait=False):
        """Makes the echo service write text as a line to its stdout."""
        fd = os.open(os.path.join(b.dir, "fifo"), os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, text.encode() + b"\n")
        finally:
            os.close(fd)
        if wait:
            poll(lambda: "out: %s\n" % text in b.ctl("logs", "echo").stdout,
                 what="the line %r kept" % text)

    def file_lines(self, b, count):
        path = os.path.join(b.dir, "echo.log")
        return poll(lambda: len(harness.read(path).splitlines()) >= count and
                    open(path, "rb").read(), what="%d lines in the log file" % count)

    def test_text_lines_are_those_of_a_log_file(self):
        b = self.echo("log = file:@DIR@/echo.log")
        pid = b.procs("echo")[0]["pid"]
        held = self.file_lines(b, 5)
        r = b.ctl("logs", "echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.encode(), held)
        prefix = r"%s echo\[%d\] gen 1 " % (TIME, pid)
        lines = r.stdout.splitlines()
        for line in lines:
            self.assertRegex(line, "^" + prefix)
        self.assertEqual(sorted(re.sub(prefix, "", line) for line in lines),
                         sorted(SHOWN[:-1] + [SHOWN[-1] % pid]))

    def test_json_objects_are_those_of_a_log_file(self):
        b = self.echo("log = file:@DIR@/echo.log\nlog_format = json")
        pid = b.procs("echo")[0]["pid"]
        held = self.file_lines(b, 5)
        r = b.ctl("logs", "echo", json_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.encode(), held)
        objs = {}
        for line in r.stdout.splitlines():
            o = json.loads(line)
            self.assertRegex(o.pop("time"), "^%s$" % TIME)
            self.assertEqual((o.pop("service"), o.pop("pid"), o.pop("gen")), ("echo", pid, 1))
            objs[o["line"]] = o
        bad = "bad \ufffd byte, nul \x00 and \x1b[31mcolour"
        self.assertEqual(objs, {
            "first line": {"stream": "out", "line": "first line"},
            "to stderr\tand a tab": {"stream": "err", "line": "to stderr\tand a tab"},
            bad: {"stream": "out", "line": bad,
                  "line_base64": base64.b64encode(BAD).decode()},
            "crlf\r": {"stream": "out", "line": "crlf\r"},
            "pid %d ready" % pid: {"stream": "out", "line": "pid %d ready" % pid}})
        keys = [list(json.loads(line)) for line in r.stdout.splitlines()]
        self.assertIn(["time", "service", "pid", "gen", "stream", "line"], keys)
        self.assertIn(["time", "service", "pid", "gen", "stream", "line", "line_base64"], keys)
        times = [json.loads(line)["time"] for line in r.stdout.splitlines()]
        self.assertEqual(times, sorted(times))

    def test_the_last_lines_and_those_of_a_generation_or_a_process(self):
        b = self.echo()
        first = b.procs("echo")[0]["pid"]
        self.assertEqual(b.ctl("restart", "echo").returncode, 0)
        second = self.wait_ready(b, 2)
        self.assertNotEqual(first, second)
        self.feed(b, "one")
        self.feed(b, "two", wait=True)
        r = b.ctl("logs", "-n", "2", "echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([line.split(" ", 1)[1] for line in r.stdout.splitlines()],
                         ["echo[%d] gen 2 out: one" % second, "echo[%d] gen 2 out: two" % second])
        for args, pid, gen, count in ((["--gen", "1"], first, 1, 5), (["--gen=2"], second, 2, 7),
                                      (["--pid", str(first)], first, 1, 5),
                                      (["--pid=%d" % second], second, 2, 7)):
            objs = [json.loads(line) for line in
                    b.ctl("logs", *args, "echo", json_output=True).stdout.splitlines()]
            self.assertEqual(len(objs), count, (args, objs))
            self.assertEqual({(o["pid"], o["gen"]) for o in objs}, {(pid, gen)}, args)
        r = b.ctl("logs", "--gen", "2", "--lines", "1", "echo")
        self.assertRegex(r.stdout, r"^%s echo\[%d\] gen 2 out: two\n$" % (TIME, second))
        self.assertEqual(b.ctl("logs", "--gen", "3", "echo").stdout, "")

    def test_every_service_in_time_order(self):
        b = self.echo(more="""
[service:other]
command = sh -c 'echo other one; sleep 0.2; echo other two; exec sleep 600'
""")
        poll(lambda: "other two" in b.ctl("logs", "other").stdout, what="other's lines")
        self.feed(b, "echo after other")
        poll(lambda: "echo after other" in b.ctl("logs").stdout, what="the line fed")
        objs = [json.loads(line) for line in b.ctl("logs", json_output=True).stdout.splitlines()]
        self.assertEqual({o["service"] for o in objs}, {"echo", "other"})
        self.assertEqual(len(objs), 8, objs)
        self.assertEqual([o["line"] for o in objs if o["service"] == "other"],
                         ["other one", "other two"])
        self.assertEqual([o["time"] for o in objs], sorted(o["time"] for o in objs))
        self.assertEqual(objs[-1]["line"], "echo after other")

    def test_follow_shows_a_line_written_after_it_started_until_interrupted(self):
        b = self.echo()
        pid = b.procs("echo")[0]["pid"]
        self.feed(b, "written before", wait=True)
        w = self.watch(b, "logs", "-f", "-n", "1", "echo", json_output=False)
        w.read_until(lambda line: line.endswith("out: written before"))
        self.feed(b, "written after")
        line = w.read_until(lambda line: "written after" in line)
        self.assertRegex(line, r"^%s echo\[%d\] gen 1 out: written after$" % (TIME, pid))
        self.assertEqual(len(w.lines), 2, w.lines)
        w.proc.send_signal(signal.SIGINT)
        self.assertEqual(w.proc.wait(timeout=5 * harness.SLOW), -signal.SIGINT)

    def test_follow_with_no_lines_kept_shows_only_new_ones(self):
        b = self.echo()
        self.feed(b, "written before", wait=True)
        self.assertEqual(b.ctl("logs", "-n", "0", "echo").stdout, "")
        w = self.watch(b, "logs", "-f", "-n", "0", "echo", json_output=False)
        poll(lambda: b.status()["daemon"]["clients"] >= 2, what="batonctl following")
        self.feed(b, "written after")
        w.read_until(lambda line: "written after" in line)
        self.assertEqual(len(w.lines), 1, w.lines)

    def test_follow_ends_with_status_0_when_batond_exits(self):
        b = self.echo()
        w = self.watch(b, "logs", "--follow", "--gen", "1", "echo")
        w.read_until(lambda o: o["line"].endswith(" ready"))
        self.feed(b, "last words")
        w.read_until(lambda o: o["line"] == "last words")
        self.assertEqual(b.stop(), 0)
        out, err = w.proc.communicate(timeout=10 * harness.SLOW)
        self.assertEqual(w.proc.returncode, 0, err)
        self.assertEqual(w.buf + out, b"", "nothing but lines, and no final object")
        self.assertTrue(all(set(o) >= {"time", "line"} for o in w.lines), w.lines)

    def test_follow_ends_when_its_reader_does(self):
        b = self.echo()
        proc = subprocess.Popen("'%s' -s '%s' logs -f echo | head -n 1"
                                % (harness.BATONCTL, b.control), shell=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(proc.kill)
        poll(lambda: b.status()["daemon"]["clients"] >= 2, what="batonctl following")

        def ended():
            # A line written before head exits goes into the pipe: write until one fails.
            self.feed(b, "one more")
            return proc.poll() is not None
        poll(ended, interval=0.1, what="batonctl to end after head")
        out, err = proc.communicate(timeout=10 * harness.SLOW)
        self.assertRegex(out.decode(errors="replace"), r"^%s echo\[\d+\] gen 1 [^\n]*\n$" % TIME)
        self.assertEqual(err, b"")

    def test_reopen_follows_a_file_logrotate_moved(self):
        b = self.echo("log = file:@DIR@/echo.log")
        path = os.path.join(b.dir, "echo.log")
        self.file_lines(b, 5)
        os.rename(path, path + ".1")
        r = b.ctl("logs", "--reopen")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.feed(b, "after the rotation")
        poll(lambda: "after the rotation" in harness.read(path), what="the line in the new file")
        self.assertNotIn("after the rotation", harness.read(path + ".1"))
        self.assertEqual(b.ctl("--json", "logs", "--reopen").stdout, "")

    def test_a_reply_holds_the_newest_lines_that_fit(self):
        # 250,000 lines of 148 bytes, all kept: their records take more than
        # the 32 MiB a reply may hold.
        total = 250000
        script = ("awk 'BEGIN { for (i = 0; i < %d; i++) printf \"%%06d %%0140d\\n\", i, 0 }'\n"
                  "exec sleep 1000\n" % total)
        b = with_script(self, "[service:big]\ncommand = sh @DIR@/big.sh\n"
                        "log = file:@DIR@/big.log\nlog_buffer = 64MiB\n", "big.sh", script)
        last = "%06d %0140d" % (total - 1, 0)
        poll(lambda: last in b.ctl("logs", "--lines=1", "big").stdout, timeout=60,
             what="the last line kept")
        r = b.ctl("logs", "big")
        self.assertEqual(r.returncode, 0, r.stderr)
        left = re.search(r"the (\d+) oldest lines asked for were left out", r.stderr)
        self.assertTrue(left, r.stderr)
        left = int(left.group(1))
        lines = r.stdout.splitlines()
        self.assertGreater(left, 0)
        self.assertEqual(len(lines) + left, total)
        self.assertTrue(lines[0].endswith("%06d %0140d" % (left, 0)), lines[0][:80])
        self.assertTrue(lines[-1].endswith(last))
        # The last lines asked for fit: nothing is said.
        r = b.ctl("logs", "--lines=1000", "big")
        self.assertEqual((r.returncode, r.stderr, len(r.stdout.splitlines())), (0, "", 1000))

    def big(self, more=""):
        """batond with a service whose 250,000 kept lines make replies of 40 MB,
        once they are all kept; returns it and the last line."""
        total = 250000
        script = ("awk 'BEGIN { for (i = 0; i < %d; i++) printf \"%%06d %%0140d\\n\", i, 0 }'\n"
                  "exec sleep 1000\n" % total)
        b = with_script(self, "[service:big]\ncommand = sh @DIR@/big.sh\n"
                        "log = file:@DIR@/big.log\nlog_buffer = 64MiB\n" + more, "big.sh", script)
        last = "%06d %0140d" % (total - 1, 0)
        poll(lambda: last in b.ctl("logs", "--lines=1", "big").stdout, timeout=60,
             what="the last line kept")
        return b, last

    def test_big_replies_are_sent_while_batond_goes_on(self):
        # A reply of every line kept is built and sent a step at a time: a
        # process's SIGKILL comes when its grace ends while three clients get
        # theirs, asked for during the grace.
        b, last = self.big("\n[service:slow]\ncommand = @TESTCHILD@ --ignore-term\n"
                           "stop_grace = 500ms\n")
        b.wait_service("slow", "running")
        pid = b.procs("slow")[0]["pid"]
        poll(lambda: test_hostile.ignores(pid, signal.SIGTERM), what="SIGTERM ignored")
        w = self.watch(b, "stop", "--wait", "slow")
        w.find(lambda o: o.get("kind") == "signalled" and o.get("pid") == pid)
        clients = [socket.socket(socket.AF_UNIX) for _ in range(3)]
        for c, request in zip(clients, [b"logs\n", b"logs big\nversion\n", b"logs big\n"]):
            c.connect(b.control)
            c.sendall(request)
        # One leaves before its reply is built, one never reads its own.
        with socket.socket(socket.AF_UNIX) as gone:
            gone.connect(b.control)
            gone.sendall(b"logs\n")
        stalled = socket.socket(socket.AF_UNIX)
        self.addCleanup(stalled.close)
        stalled.connect(b.control)
        stalled.sendall(b"logs big\n")
        stalled_at = time.monotonic()
        # Built at once, the replies made it 0.2-0.7 s late.
        self.assert_killed_at_grace(w, pid, 0.5)
        w.read_until(lambda o: "ok" in o, timeout=5)
        fds = harness.own_fds(b.pid)
        # One reader leaves in the middle of its reply.
        clients[2].recv(65536)
        clients[2].close()
        replies = []
        for c in clients[:2]:
            c.settimeout(30 * harness.SLOW)
            data = b""
            while not data.endswith(b"\nok\n") or data.count(b"\nok\n") < (2 if c is clients[1] else 1):
                chunk = c.recv(1 << 20)
                self.assertTrue(chunk, "the reply ended early: %r" % data[-200:])
                data += chunk
            c.close()
            replies.append(data.decode().splitlines())
        record = re.compile(r'log time=(\S+) service=(\S+) .* line="?(\d+)')
        for lines in replies:
            self.assertTrue(lines[0].startswith("cut lines="), lines[0])
            logs = [record.match(line).groups() for line in lines if line.startswith("log ")]
            times = [t for t, _, _ in logs]
            self.assertEqual(times, sorted(times))
            numbers = [int(n) for _, service, n in logs if service == "big"]
            self.assertEqual(numbers, list(range(numbers[0], 250000)))
        # The pipelined request is answered after the reply before it.
        self.assertTrue(replies[1][-2].startswith("version "), replies[1][-2:])
        self.assertEqual(replies[1][-1], "ok")
        self.assertEqual(replies[1][-3], "ok")
        poll(lambda: harness.own_fds(b.pid) == fds, what="batond's fds back to those before")
        self.assertIn(last, b.ctl("logs", "--lines=1", "big").stdout)
        # The reader that took nothing is closed once it has taken nothing for
        # 10 s, its reply dropped: only this status's client is left.
        poll(lambda: b.status()["daemon"]["clients"] == 1, timeout=20,
             what="the reader that never reads closed")
        self.assertGreater(time.monotonic() - stalled_at, 9.5)

    def test_follow_after_a_big_reply_misses_no_line_and_repeats_none(self):
        # The lines that come while the kept ones are sent follow them.
        b, _ = self.big("\n[service:ticker]\n"
                        "command = @TESTCHILD@ --print 100000 --print-every-us 2000\n"
                        "log_buffer = 8MiB\n")
        follow = subprocess.Popen([harness.BATONCTL, "-s", b.control, "logs", "--follow"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            numbers = []
            deadline = time.monotonic() + 60 * harness.SLOW
            while (len(numbers) < 2 or numbers[-1] < numbers[0] + 2000) and \
                    time.monotonic() < deadline:
                line = follow.stdout.readline()
                self.assertTrue(line, "batonctl logs --follow ended")
                m = re.search(r" ticker\[\d+\] gen 1 out: out \d+ (\d+)$", line)
                if m:
                    numbers.append(int(m.group(1)))
            self.assertGreaterEqual(numbers[-1], numbers[0] + 2000, "ticker's lines came too slowly")
            self.assertEqual(numbers, list(range(numbers[0], numbers[-1] + 1)))
        finally:
            follow.kill()
            follow.wait()
            follow.stdout.close()

    def test_usage_errors_and_a_service_that_does_not_exist(self):
        b = self.echo()
        for args in (["logs", "--lines", "x"], ["logs", "-n"], ["logs", "-n", "-1"],
                     ["logs", "--lines=", "echo"], ["logs", "--gen", "-1"],
                     ["logs", "--pid", "99999999999"], ["logs", "--follow=1"],
                     ["logs", "--reopen", "echo"], ["logs", "--reopen", "-f"],
                     ["status", "--follow"], ["upgrade", "-n", "2", "echo"],
                     ["logs", "echo", "other"]):
            r = b.ctl(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(r.stdout, "", args)
            self.assertTrue(r.stderr.startswith("batonctl: "), r.stderr)
        r = b.ctl("logs", "nosuch", json_output=True)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, 'batonctl: no service named "nosuch"\n')
        help_text = b.ctl("--help").stdout
        for word in ("logs [--follow]", "--follow", "--lines N", "--gen N", "--pid PID",
                     "--reopen"):
            self.assertIn(word, help_text)


# Writes lines once asked to stop (on_term), then holds on until SIGKILL.
DRAIN_SCRIPT = r"""
on_term() {
%s
}
trap 'on_term; exec sleep 600' TERM
echo up
while :; do sleep 1 & wait $!; done
"""

DRAIN = """
[service:svc]
command = sh @DIR@/drain.sh
stop_grace = %s
"""


class StoppingOutputTest(harness.TestCase):
    def drain(self, on_term, grace):
        b = with_script(self, DRAIN % grace, "drain.sh", DRAIN_SCRIPT % on_term)
        b.wait_service("svc", "running")
        return b

    def test_watch_shows_the_lines_of_a_stopping_process(self):
        b = self.drain("echo draining now; printf 'red \\033[31mtext\\n' >&2", "1s")
        pid = b.procs("svc")[0]["pid"]
        r = b.ctl("stop", "--wait", "svc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^ +\d+\.\d{3} svc\[%d\] gen 1 out: draining now$" % pid)
        self.assertRegex(r.stdout, r"(?m)^ +\d+\.\d{3} svc\[%d\] gen 1 err: red \\x1b\[31mtext$"
                         % pid)
        self.assertNotIn("\x1b", r.stdout)
        self.assertNotIn("up", re.findall(r"out: (.*)", r.stdout), "only the stopping one's")

    def test_lines_not_sent_are_counted(self):
        b = self.drain("i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; "
                       "sleep 1.2; echo after", "3s")
        w = self.watch(b, "watch", "svc", json_output=False)
        w.read_until(lambda line: "svc[" in line)
        self.assertEqual(b.ctl("stop", "svc").returncode, 0)
        w.read_until(lambda line: re.search(r"out: after( \(\d+ lines skipped\))?$", line),
                     timeout=10)
        told = [line for line in w.lines if re.search(r"out: line \d+", line)]
        skipped = sum(int(n) for n in re.findall(r"\((\d+) lines skipped\)$", "\n".join(w.lines),
                                                 re.M))
        self.assertGreater(skipped, 0, w.lines)
        self.assertLessEqual(len(told), 150)
        self.assertEqual(len(told) + skipped, 200, w.lines)

    def test_a_flood_of_one_service_does_not_drown_anothers_last_words(self):
        flood = DRAIN_SCRIPT % ("i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done; "
                                "sleep 1.2; echo after")
        quiet = DRAIN_SCRIPT % "sleep 0.1; echo last words"
        b = self.batond("[service:flood]\ncommand = sh @DIR@/flood.sh\nstop_grace = 3s\n\n"
                        "[service:quiet]\ncommand = sh @DIR@/quiet.sh\nstop_grace = 3s\n",
                        start=False)
        for name, script in (("flood.sh", flood), ("quiet.sh", quiet)):
            with open(os.path.join(b.dir, name), "w") as f:
                f.write(script)
        b.start()
        b.wait_service("flood", "running")
        b.wait_service("quiet", "running")
        w = self.watch(b, "watch", json_output=False)
        w.read_until(lambda line: "quiet[" in line)
        for name in ("flood", "quiet"):
            self.assertEqual(b.ctl("stop", name).returncode, 0)
        w.read_until(lambda line: re.search(r"quiet\[\d+\] gen 1 out: last words$", line),
                     timeout=10)
        # The flood's lines not told are counted on its own next one, all 300 of them.
        w.read_until(lambda line: re.search(r"flood\[\d+\] gen 1 out: after", line), timeout=10)
        flood_lines = [line for line in w.lines if re.search(r"flood\[\d+\] gen 1 out: ", line)]
        told = [line for line in flood_lines if re.search(r"out: line \d+", line)]
        skipped = sum(int(n) for n in re.findall(r"\((\d+) lines skipped\)$",
                                                 "\n".join(flood_lines), re.M))
        self.assertLessEqual(len(told), 150)
        self.assertEqual(len(told) + skipped, 300, w.lines)

    def test_the_live_view_shows_the_last_line_cut_to_the_terminal(self):
        long_line = "waiting for the last of 3 connections to close, then bye"
        b = self.drain("echo first; echo %s" % long_line, "1500ms")
        pid = b.procs("svc")[0]["pid"]
        code, text = harness.on_terminal(
            [harness.BATONCTL, "-s", b.control, "stop", "--wait", "svc"], columns=50)
        self.assertEqual(code, 0, text)
        head = "    svc[%d]: " % pid
        shown = head + long_line[:49 - len(head)]
        lines = text.split("\r\n")
        self.assertIn("\x1b[2K" + head + "first", lines)
        self.assertIn("\x1b[2K" + shown, lines)
        self.assertNotIn(head + "first", "\n".join(lines[lines.index("\x1b[2K" + shown):]),
                         "the last line replaces the one before")
        plain = [re.sub(r"\x1b\[[0-9]*[A-Za-z]", "", line) for line in lines]
        self.assertIn("  killed: 1, holding 0 connections: their cleanup did not run"[:49], plain)
        self.assertEqual([line for line in plain if len(line) > 49], [])


if __name__ == "__main__":
    harness.main()
