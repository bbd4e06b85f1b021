#!/usr/bin/env python3
"""Benchmark: upgrades of the test HTTP server under load.

Prints, over a series of upgrades of 8 instances with ready = notify: the time
from `upgrade` to the new generation ready, to the old generation gone, and
the requests served (and failed) meanwhile. Run with `meson test --benchmark`
or directly with BATOND, BATONCTL, HTTPD (the test server, build/tests/testhttpd) and
LOADGEN in the environment.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402
import test_load  # noqa: E402

UPGRADES = int(os.environ.get("BENCH_UPGRADES", "20"))


def old_gone(b, gen):
    return not [p for p in b.procs("web") if p["gen"] < gen]


def main():
    b = harness.Batond(test_load.config(mode="all", instances=8))
    try:
        b.wait_service("web", "running")
        load = harness.Load(b.port("http"), conns=32)
        time.sleep(0.5)
        to_ready, to_gone = [], []
        for _ in range(UPGRADES):
            t0 = time.monotonic()
            r = b.ctl("upgrade", "--wait", "web")
            t1 = time.monotonic()
            if r.returncode != 0:
                sys.exit("upgrade failed: " + r.stderr)
            gen = b.service("web")["gen"]
            harness.poll(lambda: old_gone(b, gen), interval=0.002, what="the old generation")
            to_ready.append(t1 - t0)
            to_gone.append(time.monotonic() - t0)
        result, _ = load.stop()
    finally:
        b.stop()
        b.close()
    ms = lambda xs: "median %.1f ms, max %.1f ms" % (statistics.median(xs) * 1000, max(xs) * 1000)
    print("upgrades of 8 instances (ready = notify, upgrade = all): %d" % UPGRADES)
    print("  upgrade -> new generation ready: %s" % ms(to_ready))
    print("  upgrade -> old generation gone:  %s" % ms(to_gone))
    print("  requests served during the run: %d in %.1f s (%.0f/s), p99 %.2f ms" %
          (result["ok"], result["seconds"], result["rps"], result["p99_ms"]))
    failed = result["requests"] - result["ok"]
    print("  failed requests: %d (refused %d, reset %d, eof %d, timeout %d)" %
          (failed, result["refused"], result["reset"], result["eof"], result["timeout"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
