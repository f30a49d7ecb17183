"""`nndb drift local-db` wall time on a healthy tier (target < 2 s, issue 14), beside its floor.

The tier: like the integration tests' (tests/fixtures/servers.py: PostgreSQL 15, a second one in
TimescaleDB's place, Redis 7, each on a free 127.0.0.1 port; nothing of yours is touched), brought to
the deployed state with the real post-apply hooks (databases, migrations, grants, ACL users, the
monitoring identities). Then --runs complete `nndb drift local-db` processes are timed (interpreter
start included: what a person or a CI job waits for) after --warmup untimed ones; each must say
"no drift". The floor beside it: `nndb --version` (interpreter and CLI start, nothing checked) and
one `CREATE DATABASE` + `DROP DATABASE` per service through psql (the scratch databases drift builds
its reference in, nothing applied). The verdict is on the p95; exits 1 when it misses the target or
the tier drifted.

    python benchmarks/bench_drift.py [--runs 10] [--warmup 1]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.postgres_server import PG_BINDIR, PostgresServer, init_pg_template  # noqa: E402
from tests.fixtures.redis_server import start_redis  # noqa: E402
from tests.fixtures.servers import DbStack, running_db_stack  # noqa: E402
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS  # noqa: E402

TARGET_S = 2.0
NNDB = str(Path(sys.executable).parent / "nndb")


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return time.perf_counter() - started, result


def summary(times: list[float]) -> tuple[float, float, float]:
    p95 = statistics.quantiles(times, n=20, method="inclusive")[-1] if len(times) >= 2 else times[0]
    return statistics.median(times), p95, max(times)


def scratch_cycle(server: PostgresServer, secret: str, count: int, cwd: Path) -> float:
    """``count`` CREATE DATABASE + DROP DATABASE through one psql process (the password through the environment, never argv)."""
    psql_env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": STACK_PASSWORDS[secret]}
    commands = [arg for i in range(count) for arg in ("-c", f"CREATE DATABASE bench_scratch_{i}", "-c", f"DROP DATABASE bench_scratch_{i}")]
    argv = [str(PG_BINDIR / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port)]
    argv += ["-U", server.superuser, "-d", "postgres", *commands]  # one -c each: CREATE DATABASE refuses a transaction block
    elapsed, result = timed(argv, psql_env, cwd)
    assert result.returncode == 0, result.stderr
    return elapsed


def measure(tier: DbStack, runs: int, warmup: int) -> int:
    from tests.support.hooks import run_in_process

    logging.getLogger("nexanest_db").setLevel(logging.WARNING)
    run_in_process(tier)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tier.project), **CHILD_PYTHONPATH, **tier.environ}
    drift_argv = [NNDB, "drift", "local-db"]
    for _ in range(warmup):
        timed(drift_argv, env, tier.project)
    drift_times = []
    last = None
    for _ in range(runs):
        elapsed, last = timed(drift_argv, env, tier.project)
        if last.returncode != 0:
            print(f"bench_drift: the tier drifted or drift failed (exit {last.returncode}):\n{last.stdout}{last.stderr}", file=sys.stderr)
            return 1
        drift_times.append(elapsed)
    assert last is not None

    start_times = [timed([NNDB, "--version"], env, tier.project)[0] for _ in range(runs)]
    # auth and portfolio live on postgres, analytics on timescale: three scratch databases per drift run.
    scratch_times = [
        scratch_cycle(tier.postgres, "POSTGRES_PASSWORD", 2, tier.project)
        + scratch_cycle(tier.timescale, "TIMESCALE_PASSWORD", 1, tier.project)
        for _ in range(runs)
    ]

    in_process = float(last.stdout.splitlines()[-1].split(" checked in ")[-1].split()[0])  # "local-db: no drift (...; checked in 0.42 s)"
    print(f"nndb drift local-db, healthy tier (s, {runs} runs after {warmup} warm-up; target p95 < {TARGET_S:.1f} s)")
    print(f"  {'':<58} {'median':>7} {'p95':>7} {'max':>7}")
    median, p95, worst = summary(drift_times)
    verdict = "ok" if p95 < TARGET_S else "MISSED"
    print(f"  {'nndb drift local-db (whole process)':<58} {median:7.3f} {p95:7.3f} {worst:7.3f}   {verdict}")
    s_median, s_p95, s_worst = summary(start_times)
    print(f"  {'floor: nndb --version (interpreter + CLI start)':<58} {s_median:7.3f} {s_p95:7.3f} {s_worst:7.3f}")
    c_median, c_p95, c_worst = summary(scratch_times)
    print(f"  {'floor: 3x CREATE+DROP DATABASE via psql (2 processes)':<58} {c_median:7.3f} {c_p95:7.3f} {c_worst:7.3f}")
    print(f"  the check itself (the report's own timing, last run): {in_process:.3f} s")
    return 0 if verdict == "ok" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    template = init_pg_template()
    redis_server = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    workdir = Path(tempfile.mkdtemp(prefix="nndb-bench-drift-"))
    try:
        with running_db_stack(template, redis_server, workdir) as tier:
            return measure(tier, args.runs, args.warmup)
    finally:
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(template.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
