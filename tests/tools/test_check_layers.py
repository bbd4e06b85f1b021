#!/usr/bin/env python3
"""scripts/check-layers: passes on the source tree, fails on a cycle, an
upward include, a file in no layer and an unknown header."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get("SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
CHECK = os.path.join(ROOT, "scripts", "check-layers")

MESON = """
layer_pure = files(
  'a.c',
  'b.c',
)
layer_daemon = files(
  'd.c',
)
"""


def run(root):
    return subprocess.run([sys.executable, CHECK, root], capture_output=True, text=True,
                          timeout=30)


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="baton-layers-")
        self.addCleanup(shutil.rmtree, self.dir)

    def tree(self, files, meson=MESON):
        """Writes a fake source tree: {path: text} under supervisor/ and protocol/."""
        os.makedirs(os.path.join(self.dir, "supervisor"))
        os.makedirs(os.path.join(self.dir, "protocol"))
        with open(os.path.join(self.dir, "supervisor", "meson.build"), "w") as f:
            f.write(meson)
        base = {"protocol/protocol.h": "", "supervisor/a.h": "", "supervisor/b.h": "",
                "supervisor/d.h": "", "supervisor/a.c": '#include "a.h"\n',
                "supervisor/b.c": '#include "b.h"\n#include "protocol.h"\n',
                "supervisor/d.c": '#include "d.h"\n#include "a.h"\n'}
        base.update(files)
        for path, text in base.items():
            with open(os.path.join(self.dir, path), "w") as f:
                f.write(text)
        return self.dir

    def assertFails(self, r, message):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(message, r.stderr)

    def test_the_source_tree_passes(self):
        r = run(ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^layers: \d+ modules, \d+ includes, no cycle$")

    def test_a_good_tree_passes(self):
        r = run(self.tree({}))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("layers: 3 modules", r.stdout)

    def test_a_cycle_fails(self):
        r = run(self.tree({"supervisor/a.c": '#include "a.h"\n#include "b.h"\n',
                           "supervisor/b.h": '#include "a.h"\n'}))
        self.assertFails(r, "include cycle: a -> b -> a")
        self.assertIn("supervisor/b.h includes a.h", r.stderr)

    def test_an_upward_include_fails(self):
        r = run(self.tree({"supervisor/b.c": '#include "d.h"\n'}))
        self.assertFails(r, "supervisor/b.c (layer_pure) includes d.h of a higher layer "
                            "(layer_daemon)")

    def test_a_file_in_no_layer_fails(self):
        r = run(self.tree({"supervisor/stray.c": ""}))
        self.assertFails(r, "supervisor/stray.c: in no layer")

    def test_an_unknown_header_fails(self):
        r = run(self.tree({"supervisor/a.c": '#include "nowhere.h"\n'}))
        self.assertFails(r, "supervisor/a.c: includes nowhere.h, which is in no layer")

    def copy_of_source(self):
        for d in ("supervisor", "protocol"):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(self.dir, d))
        return self.dir

    def append(self, path, text):
        with open(os.path.join(self.dir, path), "a") as f:
            f.write(text)

    def test_a_deliberate_cycle_in_the_source_fails(self):
        root = self.copy_of_source()
        # command.c includes control.h: control.h including command.h closes a circle.
        self.append("supervisor/control.h", '#include "command.h"\n')
        r = run(root)
        self.assertFails(r, "include cycle:")
        self.assertIn("supervisor/control.h includes command.h", r.stderr)

    def test_the_lifecycle_including_the_daemon_fails(self):
        root = self.copy_of_source()
        self.append("supervisor/proc.c", '#include "daemon.h"\n')
        r = run(root)
        self.assertFails(r, "supervisor/proc.c (layer_lifecycle) includes daemon.h of a "
                            "higher layer (layer_daemon)")


if __name__ == "__main__":
    unittest.main()
