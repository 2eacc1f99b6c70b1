"""``python -m bench --quick`` runs end to end and prints every kernel beside its twin."""

from __future__ import annotations

import subprocess
import sys


def test_quick_bench_prints_all_tables() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for kernel in ("placement GREEDY", "placement BESTFIT", "netalloc", "ledger start+end", "imagecache", "digest"):
        assert kernel in out
    assert "Packing quality" in out
    for policy in ("GREEDY", "ROUNDROBIN", "POWERSAVE", "BESTFIT", "SPREAD", "ALIGNED", "CACHEAWARE"):
        assert f"\n{policy} " in out
    assert "Traceback" not in done.stderr
