"""`nndb plan local-db` wall time on a healthy local tier (target < 2 s, issue 14), beside `nndb migrate status`.

The tier is the integration tests' (tests/fixtures/servers.py: PostgreSQL 15, a second one in
TimescaleDB's place, Redis 7) brought to the deployed state by the real post-apply hooks; the project
is a git copy of this one (tests/support/project.py's files, committed once) with one new migration
in its working tree, as in a pull request. Timed, as complete processes (interpreter start included),
--runs times after --warmup untimed ones:

* `nndb plan local-db` — the databases part (ledger, role/grant/ACL statements, secrets); the
  infrastructure part says in one line that the stack cannot be planned here (not initialized);
* `nndb plan local-db --base main` — the same plus the structural diff: the stack synthesized at
  the base ref and in the working tree (two `python main.py` runs, in parallel);
* the baseline: `nndb migrate status local-db` (one read of every ledger: the floor of the first).

The verdict is on the p95 of each `nndb plan` beside the target; exits 1 when the plain one misses it.

    python benchmarks/bench_plan.py [--runs 10] [--warmup 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.postgres_server import init_pg_template  # noqa: E402
from tests.fixtures.redis_server import start_redis  # noqa: E402
from tests.fixtures.servers import DbStack, running_db_stack  # noqa: E402
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS  # noqa: E402
from tests.support.project import copy_project  # noqa: E402

TARGET_S = 2.0
NNDB = str(Path(sys.executable).parent / "nndb")


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    return time.perf_counter() - started, result


def summary(times: list[float]) -> tuple[float, float, float]:
    p95 = statistics.quantiles(times, n=20, method="inclusive")[-1] if len(times) >= 2 else times[0]
    return statistics.median(times), p95, max(times)


def git_project(directory: Path) -> Path:
    repo = copy_project(directory)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "base")):
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@nexanest.invalid", "-C", str(repo), *args], check=True)
    (repo / "sql" / "migrations" / "auth" / "V004__bench_probe.sql").write_text(
        "ALTER TABLE auth.users ADD COLUMN bench_probe text;\n", encoding="utf-8"
    )
    return repo


def series(argv: list[str], env: dict[str, str], cwd: Path, runs: int, warmup: int) -> list[float] | str:
    for _ in range(warmup):
        timed(argv, env, cwd)
    times = []
    for _ in range(runs):
        elapsed, result = timed(argv, env, cwd)
        if result.returncode != 0:
            return f"{' '.join(argv[1:])}: exit {result.returncode}: {result.stderr.strip()}"
        times.append(elapsed)
    return times


def measure(tier: DbStack, repo: Path, runs: int, warmup: int) -> int:
    from tests.support.hooks import run_in_process

    logging.getLogger("nexanest_db").setLevel(logging.WARNING)
    run_in_process(tier)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(repo),
        **CHILD_PYTHONPATH,
        **tier.environ,
        "NNDB_PROJECT_DIR": str(repo),
    }
    rows = [
        ("nndb plan local-db", [NNDB, "plan", "local-db"], True),
        ("nndb plan local-db --base main (+ 2 synths)", [NNDB, "plan", "local-db", "--base", "main"], True),
        ("baseline: nndb migrate status local-db", [NNDB, "migrate", "status", "local-db"], False),
    ]
    print(f"nndb plan, healthy local tier (s, {runs} runs after {warmup} warm-up; target p95 < {TARGET_S:.1f} s)")
    print(f"  {'':<48} {'median':>7} {'p95':>7} {'max':>7}")
    code = 0
    for label, argv, judged in rows:
        times = series(argv, env, repo, runs, warmup)
        if isinstance(times, str):
            print(f"bench_plan: {times}", file=sys.stderr)
            return 1
        median, p95, worst = summary(times)
        verdict = ("ok" if p95 < TARGET_S else "MISSED") if judged else ""
        if label == rows[0][0] and verdict == "MISSED":
            code = 1
        print(f"  {label:<48} {median:7.3f} {p95:7.3f} {worst:7.3f}   {verdict}".rstrip())
    _, last = timed([NNDB, "plan", "local-db", "--json"], env, repo)
    if '"label": "V004"' not in last.stdout:
        print("bench_plan: the pending migration is missing from the report", file=sys.stderr)
        return 1
    own = json.loads(last.stdout)["seconds"]
    print(f"  the plan's own work (the report's timing, last run): {own:.3f} s; the rest is interpreter and imports")
    load = os.getloadavg()[0]
    print(f"  load average at the end: {load:.1f} on {os.cpu_count()} CPUs (numbers scale with it on a shared machine)")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    template = init_pg_template()
    redis_server = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    workdir = Path(tempfile.mkdtemp(prefix="nndb-bench-plan-"))
    try:
        repo = git_project(workdir / "repo")
        with running_db_stack(template, redis_server, workdir / "tier") as tier:
            return measure(tier, repo, args.runs, args.warmup)
    finally:
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(template.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
