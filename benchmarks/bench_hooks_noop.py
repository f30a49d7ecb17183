"""No-op re-run: all post-apply hooks on an up-to-date stack (target < 0.3 s).

Starts a real PostgreSQL 15 pair and Redis 7 (the test servers), runs every hook once to bring them
up to date, then times --runs re-runs. Reports the in-process run (what `nndb hooks run` does after
Python start-up: entry points, five phases, connections, catalog checks) and, for reference, the
whole `nndb hooks run local-db` command including interpreter start-up and imports.

    python benchmarks/bench_hooks_noop.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nexanest_db.commands.hookrun import build_context  # noqa: E402
from nexanest_db.config import ProjectPaths, load_environment, resolve_endpoints  # noqa: E402
from nexanest_db.edge import Resolved  # noqa: E402
from nexanest_db.hook_manager import plugin_manager, run_phases  # noqa: E402
from tests.fixtures.postgres_server import init_pg_template, start_postgres  # noqa: E402
from tests.fixtures.redis_server import start_redis  # noqa: E402
from tests.fixtures.servers import DbStack  # noqa: E402
from tests.support.local_servers import STACK_PASSWORDS  # noqa: E402
from tests.support.project import copy_project  # noqa: E402

TARGET_S = 0.3


def in_process(stack: DbStack) -> tuple[float, int]:
    started = time.perf_counter()
    paths = ProjectPaths.at(stack.project)
    config = load_environment("local-db", config_dir=paths.config_dir)
    environ = stack.environ
    resolved = Resolved(stack="local-db", paths=paths, config=config, environ=environ, endpoints=resolve_endpoints(config, environ))
    report = run_phases(plugin_manager(), build_context(resolved, logger=logging.getLogger("bench"), backup_dir=stack.backup_dir))
    return time.perf_counter() - started, report.change_count


def cli(stack: DbStack) -> float:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(stack.project), **stack.environ}
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "nndb"), "hooks", "run", "local-db"], cwd=stack.project, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    assert "hooks: 0 changes (up to date)" in result.stdout, result.stdout + result.stderr
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    template = init_pg_template(durable=True)
    postgres = start_postgres(template, password=STACK_PASSWORDS["POSTGRES_PASSWORD"], durable=True)
    timescale = start_postgres(template, password=STACK_PASSWORDS["TIMESCALE_PASSWORD"], durable=True)
    redis = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    workdir = Path(tempfile.mkdtemp(prefix="nndb-bench-noop-"))
    stack = DbStack(
        postgres=postgres, timescale=timescale, redis=redis, project=copy_project(workdir / "project"), backup_dir=workdir / "backups"
    )
    try:
        first, changes = in_process(stack)
        print(f"first run: {changes} changes in {first:.2f}s")
        runs = []
        for _ in range(args.runs):
            elapsed, changes = in_process(stack)
            assert changes == 0, f"re-run changed {changes} things"
            runs.append(elapsed)
        cli_runs = [cli(stack) for _ in range(min(5, args.runs))]
    finally:
        for server in (postgres, timescale):
            server.stop()
        redis.stop()
    median, worst = statistics.median(runs), max(runs)
    verdict = "OK" if median < TARGET_S else "MISSED"
    print(
        f"no-op re-run of all hooks (in-process, {args.runs} runs): median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms): {verdict}"
    )
    print(
        f"whole `nndb hooks run local-db` command incl. Python start-up (median of {len(cli_runs)}): {statistics.median(cli_runs) * 1000:.0f} ms"
    )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_hooks_noop.json").write_text(json.dumps({"in_process_s": runs, "cli_s": cli_runs, "target_s": TARGET_S}, indent=2))
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
