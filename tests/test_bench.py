"""The benchmark's helpers measure what they say: each contender's own memory. The
contenders run as the benchmark runs them, in fresh processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_fresh_process_reports_its_own_peak_rss_not_its_parents() -> None:
    """A parent that once held 300 MiB starts a child, as bench.submission starts the floor
    after building the day: the child's figure must be its own (ru_maxrss, carried across
    exec on Linux, made both contenders report the builder's peak)."""
    parent = textwrap.dedent("""
        import subprocess, sys
        from bench.common import max_rss_mib
        held = bytearray(300 * 2**20)
        for i in range(0, len(held), 4096):  # touch every page, so it is resident
            held[i] = 1
        del held
        child = subprocess.run(
            [sys.executable, "-c", "from bench.common import max_rss_mib; print(max_rss_mib())"],
            capture_output=True, text=True, check=True)
        print(max_rss_mib(), float(child.stdout))
    """)
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    parent_peak, child_peak = map(float, done.stdout.split())
    assert parent_peak >= 300
    assert child_peak < 150, (parent_peak, child_peak)  # an interpreter and bench.common
