#!/usr/bin/env python3
"""examples/Containerfile built with Debian's podman, as root, from what the
build produced (scripts/container-context), and run: batond as the
container's PID 1 serves the Go example, upgrades it under load through
`podman exec` with no request failed, reaps orphans, drains on `podman stop`
and exits with the service's status. And the manifests of examples/kubernetes/
say what they must.

podman keeps its storage, its state and its configuration in the test's
temporary directory: a run leaves nothing behind, and runs can go in
parallel. What podman needs on machines like the ones the tests run on:
runc (crun refuses cgroups in hybrid mode) and cgroupfs; default ulimits no
higher than the current hard limits (without CAP_SYS_RESOURCE podman's own
fail). The containers share the host's network, the service on 127.0.0.1 and
a free port: podman's bridge network would leave a bridge and firewall rules
on the machine.
"""

import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import children_of, poll

GO = "/usr/local/bin/baton-example-go"
TESTCHILD = "/usr/local/bin/testchild"
CONTAINERFILE = os.path.join(harness.SOURCE_ROOT, "examples", "Containerfile")
KUBERNETES = os.path.join(harness.SOURCE_ROOT, "examples", "kubernetes")


def limit(which, value):
    """value, or the hard limit of which when it is lower: podman's defaults
    (1048576 files) would raise it, which takes CAP_SYS_RESOURCE. Small
    values, as podman passes lower limits to the runtime than its own
    (32768 processes here)."""
    hard = resource.getrlimit(which)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def containers_conf():
    nofile, nproc = limit(resource.RLIMIT_NOFILE, 1024), limit(resource.RLIMIT_NPROC, 1024)
    return """[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
log_driver = "k8s-file"

[engine]
events_logger = "file"
""" % (nofile, nofile, nproc, nproc)


def free_port():
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installable(package):
    """Whether apt knows a version of package to install."""
    if not shutil.which("apt-cache"):
        return False
    r = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True,
                       timeout=60)
    m = re.search(r"Candidate: (\S+)", r.stdout)
    return bool(m) and m.group(1) != "(none)"


def need_podman():
    """Skips when the machine cannot run podman; fails when it could, but
    podman or runc is missing."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root: the test runs podman as root")
    if not harness.EXAMPLE_GO or not os.path.exists(harness.EXAMPLE_GO):
        raise unittest.SkipTest("the image holds the Go example, which is not built: go is not "
                                "installed (scripts/deps installs golang-go)")
    for program in ("podman", "runc"):
        if shutil.which(program):
            continue
        if not installable(program):
            raise unittest.SkipTest("%s: not found, and apt-cache policy %s shows no version "
                                    "to install" % (program, program))
        raise AssertionError("%s: not found: scripts/deps installs podman and runc" % program)


class Podman:
    """podman with its storage, state and configuration under dir."""

    def __init__(self, dir):
        conf = os.path.join(dir, "containers.conf")
        with open(conf, "w") as f:
            f.write(containers_conf())
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.env.pop("CONTAINERS_STORAGE_CONF", None)
        paths = {}
        for option in ("root", "runroot", "tmpdir", "network-config-dir"):
            paths[option] = os.path.join(dir, option)
            os.mkdir(paths[option])
        self.base = ["podman", "--runtime", shutil.which("runc"), "--cgroup-manager", "cgroupfs"]
        for option, path in paths.items():
            self.base += ["--" + option, path]

    def popen(self, *args):
        return subprocess.Popen(self.base + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)

    def __call__(self, *args, timeout=60, check=True):
        """Runs podman ARGS; fails, saying the command and its output, when
        it does not exit 0 (check) or within timeout seconds."""
        cmd = self.base + list(args)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                               timeout=timeout * harness.SLOW)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%s: still running after %.0fs:\n%s%s"
                                 % (" ".join(cmd), timeout * harness.SLOW, e.stdout or "",
                                    e.stderr or ""))
        if check and r.returncode != 0:
            raise AssertionError("%s: exit status %d:\n%s%s"
                                 % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r


class ContainerTest(harness.TestCase):
    """One image for the class, in one podman storage; each test's containers
    are named after the run's prefix and removed at its end."""

    @classmethod
    def setUpClass(cls):
        need_podman()
        cls.dir = tempfile.mkdtemp(prefix="baton-container-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.prefix = "baton-test-%s" % secrets.token_hex(4)
        cls.image = "localhost/%s-example:latest" % cls.prefix
        cls.podman = Podman(cls.dir)
        cls.addClassCleanup(cls.nothing_left)
        context = os.path.join(cls.dir, "context")
        r = subprocess.run([os.path.join(harness.SOURCE_ROOT, "scripts", "container-context"),
                            context, os.path.dirname(harness.BATOND)],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("scripts/container-context: exit status %d:\n%s"
                                 % (r.returncode, r.stderr))
        t0 = time.monotonic()
        cls.addClassCleanup(cls.podman, "rmi", "--force", cls.image, check=False)
        cls.podman("build", "--pull=never", "-f", CONTAINERFILE, "-t", cls.image, context,
                   timeout=120)
        print("container: image built in %.1fs" % (time.monotonic() - t0), file=sys.stderr)

    @classmethod
    def nothing_left(cls):
        for what in ("ps", "--all"), ("images", "--all"):
            r = cls.podman(*what, "--format", "{{.ID}}")
            if r.stdout.strip():
                raise AssertionError("podman %s: left behind: %s" % (" ".join(what), r.stdout))

    def container(self, name, *args, network="host", volumes=(), detach=True):
        """Runs the image as the container PREFIX-NAME, ARGS replacing its
        CMD (batond's options and the command), each of volumes (a file of
        this machine, its path in the container) mounted read-only; it is
        removed at the end of the test."""
        full = "%s-%s" % (self.prefix, name)
        self.addCleanup(self.podman, "rm", "--force", "--time", "0", full, check=False)
        opts = ["run", "--name", full, "--network", network]
        for source, target in volumes:
            opts += ["--volume", "%s:%s:ro" % (source, target)]
        if detach:
            opts.append("--detach")
        r = self.podman(*(opts + [self.image] + list(args)), check=detach)
        # podman's own failures: 125 (podman), 126 and 127 (the entry point).
        self.assertLess(r.returncode, 125, "podman run %s: exit status %d:\n%s%s"
                        % (full, r.returncode, r.stdout, r.stderr))
        return full

    def run_go(self, name, port, *options):
        """The Go example on 127.0.0.1:port, batond's options added."""
        return self.container(name, "-v", "--listen", "tcp:127.0.0.1:%d" % port,
                              "--name", "web", "--ready", "notify", *options, "--", GO)

    def status(self, container, *args, check=True):
        """`batonctl status` in the container; None if it fails and not check."""
        r = self.podman("exec", container, "batonctl", "--json", "status", *args, check=check)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def daemon(self, container):
        """batond's status once it answers."""
        return poll(lambda: (self.status(container, check=False) or {}).get("daemon"),
                    what="batond to answer in %s" % container)

    def logs(self, container):
        r = self.podman("logs", container)
        return r.stdout + r.stderr

    def exit_status(self, container, timeout=30):
        code = self.podman("wait", container, timeout=timeout).stdout.strip()
        self.assertEqual(self.podman("inspect", "--format", "{{.State.ExitCode}}",
                                     container).stdout.strip(), code)
        return int(code)

    def get(self, port, container):
        """GET / once the service answers; its status and body."""
        def answer():
            try:
                return harness.http_get(port)
            except OSError:
                return None
        return poll(answer, timeout=20, what="the service in %s to answer on 127.0.0.1:%d"
                    % (container, port))

    def test_serves_and_upgrades_under_load(self):
        port = free_port()
        c = self.run_go("web", port, "--stop-grace", "10s")
        status, body = self.get(port, c)
        self.assertEqual(status, 200)
        self.assertRegex(body, r"^hello from pid \d+ gen 1\n$")
        self.assertEqual(self.daemon(c)["pid"], 1)
        if not os.path.exists(harness.LOADGEN):
            self.skipTest("the load generator is not built")
        load = harness.Load(port)
        self.addCleanup(lambda: load.proc.poll() is None and load.proc.kill())
        poll(lambda: any(t.startswith("socket:") for t in harness.own_fds(load.proc.pid).values()),
             what="the load generator to connect")
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            r = self.podman("exec", c, "batonctl", "upgrade", "--wait", "web", check=False)
            took.append(time.monotonic() - t0)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.logs(c))
            poll(lambda: all(p["role"] != "draining" for p in self.status(c, "web")["procs"]),
                 what="the old generation to drain")
        result, err = load.stop()
        logs = self.logs(c)
        done = re.findall(r"batond: web: upgrade to gen \d+ done in ([\d.]+)s", logs)
        print("container: %d requests served, %d failed, in %.1fs; 3 upgrades through podman "
              "exec in %s s, done in %s s by batond's log"
              % (result["ok"], result["requests"] - result["ok"], result["seconds"],
                 ", ".join("%.2f" % t for t in took), ", ".join(done)), file=sys.stderr)
        self.assert_no_failure(result, err)
        self.assertEqual(len(done), 3, logs)
        status, body = self.get(port, c)
        self.assertRegex(body, r"^hello from pid \d+ gen 4\n$")
        for gen in (1, 2, 3):
            self.assertRegex(logs, r"example: pid \d+ gen %d: drained, cleanup done" % gen)

    def test_podman_stop_drains_and_the_container_exits_0(self):
        port = free_port()
        c = self.run_go("stop", port, "--stop-delay", "2s", "--stop-grace", "10s")
        self.assertEqual(self.get(port, c)[0], 200)
        t0 = time.monotonic()
        stop = self.podman.popen("stop", "--time", "30", c)
        self.addCleanup(lambda: stop.poll() is None and stop.kill())
        poll(lambda: "batond: received SIGTERM" in self.logs(c), what="batond to get SIGTERM")
        # The stop delay: the endpoints stop sending; what still comes is served.
        self.assertLess(time.monotonic() - t0, 1.5, "SIGTERM seen too late to ask in the delay")
        try:
            status = harness.http_get(port)[0]
        except OSError as e:
            # Seen once under ASan and load: what batond said is kept for it.
            self.fail("no answer in the stop delay: %s; the container's log:\n%s"
                      % (e, self.logs(c)))
        self.assertEqual(status, 200)
        out, err = stop.communicate(timeout=30 * harness.SLOW)
        took = time.monotonic() - t0
        self.assertEqual(stop.returncode, 0, out + err)
        self.assertEqual(self.exit_status(c), 0, self.logs(c))
        print("container: podman stop took %.2fs with a 2s stop delay" % took, file=sys.stderr)
        self.assertGreaterEqual(took, 2.0)
        logs = self.logs(c)
        self.assertRegex(logs, r"web\[\d+\] gen 1: sent SIGTERM")
        self.assertRegex(logs, r"example: pid \d+ gen 1: drained, cleanup done")
        self.assertIn("batond: the command has ended: exiting with status 0", logs)

    def test_the_container_exits_with_the_service_status(self):
        c = self.container("exit", "--", TESTCHILD, "--exit-after-ms", "300", "--exit", "3",
                           volumes=[(harness.TESTCHILD, TESTCHILD)])
        self.assertEqual(self.exit_status(c), 3, self.logs(c))
        self.assertIn("the command has ended: exiting with status 3", self.logs(c))

    def test_orphans_are_reaped(self):
        c = self.container("orphans", "-v", "--ready", "notify", "--", TESTCHILD,
                           "--orphan-ms", "300", "--notify", "READY=1",
                           volumes=[(harness.TESTCHILD, TESTCHILD)])
        self.assertEqual(self.daemon(c)["pid"], 1)
        poll(lambda: self.status(c)["daemon"]["orphans"] == 1, what="the orphan to be reaped")
        pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", c).stdout)
        self.assertNotIn("Z", children_of(pid).values(), "a zombie in the container")
        self.assertRegex(self.logs(c), r"reaped orphan \d+: exited with status 0")

    def test_the_image_alone_runs_the_example(self):
        # Its own network: the CMD listens on 0.0.0.0:8080.
        c = self.container("default", network="none")
        self.daemon(c)
        st = poll(lambda: (lambda s: s["services"][0]["ready"] == 1 and s)(self.status(c)),
                  what="the image's CMD to run the example")
        self.assertEqual(st["services"][0]["name"], "web")
        self.assertEqual(st["sockets"][0]["bound"], "0.0.0.0:8080")
        self.assertEqual(st["services"][0]["command"], GO)

    def test_user_names_resolve_in_the_image(self):
        # batond -n reads user = as batond does: getpwnam and getgrouplist, in
        # the image's glibc and /etc.
        conf = os.path.join(self.dir, "%s.conf" % self._testMethodName)
        for user, code, message in (("nobody", 0, "configuration OK"),
                                    ("nosuchuser", 1, 'no such user "nosuchuser"')):
            with open(conf, "w") as f:
                f.write("[service:web]\ncommand = %s\nuser = %s\n" % (GO, user))
            c = self.container("users-" + user, "-n", "-c", "/etc/baton.conf", detach=False,
                               volumes=[(conf, "/etc/baton.conf")])
            self.assertEqual(self.exit_status(c), code, self.logs(c))
            self.assertIn(message, self.logs(c))


def duration(text):
    """Seconds of a batond duration: 500ms, 5s, 2m, 1h."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not m:
        raise AssertionError("not a duration: %r" % text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def containerfile_array(instruction):
    """The JSON array of an instruction of examples/Containerfile."""
    with open(CONTAINERFILE) as f:
        text = f.read().replace("\\\n", "")
    m = re.search(r"^%s (\[.*\])$" % instruction, text, re.M)
    if not m:
        raise AssertionError("examples/Containerfile: no %s [...]" % instruction)
    return json.loads(m.group(1))


class KubernetesTest(unittest.TestCase):
    """The manifests of examples/kubernetes/ run the image as it is built."""

    def setUp(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml is not installed (scripts/deps installs it)")
        self.docs = {}
        for name in sorted(os.listdir(KUBERNETES)):
            with open(os.path.join(KUBERNETES, name)) as f:
                for doc in yaml.safe_load_all(f):
                    self.docs.setdefault(doc["kind"], []).append(doc)

    def pod(self):
        [deployment] = self.docs["Deployment"]
        return deployment["spec"]["template"]

    def test_kinds(self):
        self.assertEqual(sorted(self.docs), ["Deployment", "Service"])

    def test_the_deployment_runs_the_image_with_its_cmd(self):
        [container] = self.pod()["spec"]["containers"]
        self.assertEqual(container["image"], "baton-example")
        self.assertEqual(containerfile_array("ENTRYPOINT"), ["/usr/sbin/batond"])
        self.assertEqual(container["args"], containerfile_array("CMD"))

    def test_the_grace_period_exceeds_stop_delay_and_grace(self):
        spec = self.pod()["spec"]
        args = spec["containers"][0]["args"]
        options = dict(zip(args[:args.index("--")][::2], args[:args.index("--")][1::2]))
        need = duration(options["--stop-delay"]) + duration(options["--stop-grace"])
        self.assertGreater(spec["terminationGracePeriodSeconds"], need)

    def test_the_readiness_probe_asks_the_service(self):
        [container] = self.pod()["spec"]["containers"]
        args = container["args"]
        port = int(args[args.index("--listen") + 1].rsplit(":", 1)[1])
        [declared] = container["ports"]
        self.assertEqual(declared["containerPort"], port)
        probe = container["readinessProbe"]["httpGet"]
        self.assertIn(probe["port"], (port, declared["name"]))

    def test_the_service_selects_the_pods(self):
        [service] = self.docs["Service"]
        labels = self.pod()["metadata"]["labels"]
        self.assertLessEqual(service["spec"]["selector"].items(), labels.items())
        [declared] = self.pod()["spec"]["containers"][0]["ports"]
        for p in service["spec"]["ports"]:
            self.assertIn(p["targetPort"], (declared["containerPort"], declared["name"]))


if __name__ == "__main__":
    harness.main()
