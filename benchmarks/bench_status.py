"""`nndb status local-db` wall time on a healthy tier (target < 1 s, issue 12), beside its floor.

Starts a tier like the integration tests' (tests/fixtures/servers.py: PostgreSQL 15, a second one in
TimescaleDB's place, Redis 7), brings it to the deployed state with the real post-apply hooks
(databases, migrations, ACL users, monitoring identities, verified backups), then times --runs
complete `nndb status local-db` processes (interpreter start included: what on-call waits for)
after --warmup untimed ones. The floor: `psql -c 'select 1'` to each PostgreSQL instance as the
superuser (a process start, a SCRAM login and one query, per instance, one after the other) and
`redis-cli ping`. The verdict is on the p95 of `nndb status`; exits 1 when it misses the target or
the tier is not green.

    python benchmarks/bench_status.py [--runs 20] [--warmup 2]
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

from tests.fixtures.postgres_server import PG_BINDIR, init_pg_template  # noqa: E402
from tests.fixtures.redis_server import start_redis  # noqa: E402
from tests.fixtures.servers import DbStack, running_db_stack  # noqa: E402
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS  # noqa: E402

TARGET_S = 1.0
NNDB = str(Path(sys.executable).parent / "nndb")


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    return time.perf_counter() - started, result


def summary(times: list[float]) -> tuple[float, float, float]:
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
    return statistics.median(times), p95, max(times)


def measure(tier: DbStack, runs: int, warmup: int) -> int:
    from tests.support.hooks import run_in_process

    logging.getLogger("nexanest_db").setLevel(logging.WARNING)
    run_in_process(tier)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tier.project), **CHILD_PYTHONPATH, **tier.environ}
    status_argv = [NNDB, "status", "local-db"]
    for _ in range(warmup):
        _, result = timed(status_argv, env, tier.project)
    status_times = []
    last = result
    for _ in range(runs):
        elapsed, last = timed(status_argv, env, tier.project)
        if last.returncode != 0:
            print(f"bench_status: the tier is not green:\n{last.stderr.strip()}", file=sys.stderr)
            return 1
        status_times.append(elapsed)

    floor_times = []
    for _ in range(runs):
        total = 0.0
        for server, secret in ((tier.postgres, "POSTGRES_PASSWORD"), (tier.timescale, "TIMESCALE_PASSWORD")):
            psql_env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": STACK_PASSWORDS[secret]}  # the env, never argv
            argv = [
                str(PG_BINDIR / "psql"),
                "-X",
                "-q",
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                server.superuser,
                "-d",
                "postgres",
            ]
            elapsed, result = timed([*argv, "-c", "select 1"], psql_env, tier.project)
            assert result.returncode == 0, result.stderr
            total += elapsed
        elapsed, result = timed(
            ["redis-cli", "-h", tier.redis.host, "-p", str(tier.redis.port), "ping"],
            {"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": STACK_PASSWORDS["REDIS_PASSWORD"]},
            tier.project,
        )
        assert result.stdout.strip() == "PONG", result.stdout + result.stderr
        floor_times.append(total + elapsed)

    in_process = float(last.stdout.splitlines()[0].split(" in ")[-1].split()[0])  # "local-db: OK  (checked ... in 0.12 s)"
    print(f"nndb status local-db, healthy tier (s, {runs} runs after {warmup} warm-up; target p95 < {TARGET_S:.1f} s)")
    print(f"  {'':<52} {'median':>7} {'p95':>7} {'max':>7}")
    median, p95, worst = summary(status_times)
    verdict = "ok" if p95 < TARGET_S else "MISSED"
    print(f"  {'nndb status local-db (whole process)':<52} {median:7.3f} {p95:7.3f} {worst:7.3f}   {verdict}")
    f_median, f_p95, f_worst = summary(floor_times)
    print(f"  {'floor: psql select 1 x2 + redis-cli ping (processes)':<52} {f_median:7.3f} {f_p95:7.3f} {f_worst:7.3f}")
    print(f"  checks themselves (the report's own timing, last run): {in_process:.3f} s; the rest is interpreter and imports")
    return 0 if verdict == "ok" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    template = init_pg_template()
    redis_server = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    workdir = Path(tempfile.mkdtemp(prefix="nndb-bench-status-"))
    try:
        with running_db_stack(template, redis_server, workdir) as tier:
            return measure(tier, args.runs, args.warmup)
    finally:
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(template.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
