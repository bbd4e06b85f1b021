#!/usr/bin/env python3
"""Golden-file tests of `batond -n`, and every example config."""

import glob
import os
import subprocess

import harness

DATA = os.path.join(harness.SOURCE_ROOT, "tests", "data", "configs")
EXAMPLES = os.path.join(harness.SOURCE_ROOT, "examples")


def check(path, verbose=False):
    args = [harness.BATOND, "-nv" if verbose else "-n", "-c", os.path.basename(path)]
    return subprocess.run(args, cwd=os.path.dirname(path), capture_output=True, text=True,
                          timeout=10)


class GoldenTest(harness.TestCase):
    def test_golden_files(self):
        confs = sorted(glob.glob(os.path.join(DATA, "*.conf")))
        self.assertGreater(len(confs), 3)
        for conf in confs:
            base = conf[:-len(".conf")]
            with self.subTest(conf=os.path.basename(conf)):
                if os.path.exists(base + ".err"):
                    r = check(conf)
                    self.assertEqual(r.returncode, 1)
                    self.assertEqual(r.stderr, harness.read(base + ".err"))
                    self.assertEqual(r.stdout, "")
                else:
                    r = check(conf, verbose=True)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout, harness.read(base + ".out"))

    def test_normal_form_reads_back_the_same(self):
        r = check(os.path.join(DATA, "full.conf"), verbose=True)
        b = self.batond("", start=False)
        with open(b.config_path, "w") as f:
            f.write(r.stdout)
        again = check(b.config_path, verbose=True)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout, r.stdout)

    def test_missing_file(self):
        r = subprocess.run([harness.BATOND, "-n", "-c", "/nonexistent/baton.conf"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "/nonexistent/baton.conf: cannot open: No such file or directory\n")

    def test_environment_files_are_read_by_the_check(self):
        b = self.batond("[service:web]\ncommand = app\n"
                        "environment_file = @DIR@/good.env -@DIR@/missing.env\n"
                        "    @DIR@/bad.env\n", start=False)
        with open(os.path.join(b.dir, "good.env"), "w") as f:
            f.write("# fine\nA='1'\nB=\"two\\\nlines\"\n")
        with open(os.path.join(b.dir, "bad.env"), "w") as f:
            f.write("A=1\n\nexport B=2\n")
        r = check(b.config_path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "baton.conf:3: environment_file: %s/bad.env:3: \"export B\" is "
                         "not a variable name: write NAME=VALUE without export\n" % b.dir)
        os.unlink(os.path.join(b.dir, "bad.env"))
        with open(os.path.join(b.dir, "bad.env"), "w") as f:
            f.write("B=2\n")
        r = check(b.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_bad_config_at_start_is_an_exit_1(self):
        b = self.batond("[service:web]\ncommand = app\nbogus = 1\n", start=False)
        r = subprocess.run([harness.BATOND, "-c", b.config_path, "-s", b.control],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("baton.conf:3: bogus: unknown key in [service:NAME]", r.stderr)

    def test_examples_are_valid(self):
        confs = glob.glob(os.path.join(EXAMPLES, "**", "*.conf"), recursive=True)
        self.assertGreater(len(confs), 0)
        for conf in confs:
            with self.subTest(conf=os.path.relpath(conf, EXAMPLES)):
                r = check(conf)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("configuration OK", r.stdout)

    def test_usage_errors(self):
        r = subprocess.run([harness.BATOND, "--frobnicate"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: batond", r.stderr)
        r = subprocess.run([harness.BATOND, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("-n, --check", r.stdout)


if __name__ == "__main__":
    harness.main()
