"""Synth speed: ``python main.py`` (all four stacks) against a minimal one-container-per-stack app.

Target (issue 2): within 1.4x of the baseline's wall time. Runs both side by side, alternating,
and prints the medians and the ratio. Usage: python benchmarks/bench_synth.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.4


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "TIMESCALE_", "REDIS_", "DB_HOST"))}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    ours, baseline = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            out = Path(scratch) / f"baseline-{run}"
            baseline.append(timed([sys.executable, str(ROOT / "benchmarks" / "minimal_app.py"), str(out)], ROOT, env))
            ours.append(timed([sys.executable, "main.py"], ROOT, env))
    ours_median, base_median = statistics.median(ours), statistics.median(baseline)
    ratio = ours_median / base_median
    print(f"{'':28}{'median':>9}{'min':>9}{'max':>9}   runs={args.runs}")
    print(f"{'baseline (1 container/stack)':28}{base_median:8.2f}s{min(baseline):8.2f}s{max(baseline):8.2f}s")
    print(f"{'python main.py (4 stacks)':28}{ours_median:8.2f}s{min(ours):8.2f}s{max(ours):8.2f}s")
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
