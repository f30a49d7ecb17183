"""Migration speed: 1,000 generated migrations through the ledger vs. one psql session applying the
same files, each wrapped in BEGIN/COMMIT (the same semantics without a ledger).

Target (issue 3): the ledger run within 1.5x of the psql run. Both run side by side against the same
real PostgreSQL 15 (started here, durable settings: fsync on), into fresh databases, for --runs rounds
(order alternating). The verdict uses the median of the per-round ratios (each round pairs the two
sides on the same server at about the same time, which cancels most of a shared machine's noise);
best times and medians are printed too. Exits 1 when the target is missed.

    python benchmarks/bench_migrations.py [--count 1000] [--runs 3] [--fast]

``--fast`` starts the server with fsync off (shows the tool's own overhead, not the disk's).
The ledger side is the `migrations` plugin in-process (preflight + apply phases, run lock included):
the same code `nndb migrate apply` runs, minus Python start-up.
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

from nexanest_db.commands.hookrun import build_context  # noqa: E402
from nexanest_db.config import ProjectPaths, load_environment, resolve_endpoints  # noqa: E402
from nexanest_db.edge import Resolved  # noqa: E402
from nexanest_db.hook_manager import plugin_manager, run_phases  # noqa: E402
from tests.fixtures.postgres_server import PG_BINDIR, init_pg_template, start_postgres  # noqa: E402
from tests.support.local_servers import STACK_PASSWORDS  # noqa: E402
from tests.support.project import copy_project  # noqa: E402

TARGET_RATIO = 1.5
SERVICE = "portfolio"  # generated files go after portfolio's own V001-V002
FIRST_VERSION = 3


def migration_text(i: int) -> str:
    return (
        f"-- generated benchmark migration {i}\n"
        f"CREATE TABLE bench_{i} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    name text NOT NULL,\n"
        f"    created_at timestamptz NOT NULL DEFAULT now()\n);\n"
        f"CREATE INDEX bench_{i}_name_idx ON bench_{i} (name);\n"
        f"INSERT INTO bench_{i} (name) SELECT 'row ' || g FROM generate_series(1, 5) g;\n"
        f"COMMENT ON TABLE bench_{i} IS 'benchmark table {i}';\n"
    )


def generate(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(count):
        path = directory / f"V{FIRST_VERSION + n:04d}__bench_{n}.sql"
        path.write_text(migration_text(n))
        files.append(path)
    return files


def run_psql(server, files: list[Path], workdir: Path, database: str) -> float:
    with server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    driver = workdir / f"{database}.sql"
    driver.write_text("".join(f"BEGIN;\n\\i {path}\nCOMMIT;\n" for path in files))
    env = {**os.environ, "PGPASSWORD": server.password}
    argv = [str(PG_BINDIR / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port), "-U", server.superuser]
    argv += ["-d", database, "-f", str(driver)]
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def run_ledger(project: Path, environ: dict[str, str]) -> float:
    paths = ProjectPaths.at(project)
    config = load_environment("local-db", config_dir=paths.config_dir)
    resolved = Resolved(stack="local-db", paths=paths, config=config, environ=environ, endpoints=resolve_endpoints(config, environ))
    logger = logging.getLogger("bench")
    manager = plugin_manager(disabled=("backup", "redis_acl", "permissions"))
    hooks = ("nndb_preflight", "nndb_apply_migrations")
    started = time.perf_counter()
    report = run_phases(manager, build_context(resolved, logger=logger, backup_dir=project / "backups"), hooks=hooks)
    elapsed = time.perf_counter() - started
    applied = sum(1 for _, change in report.changes if change.summary.startswith("applied V"))
    assert applied >= 1, "nothing applied"
    return elapsed


def one_round(template: Path, count: int, durable: bool, psql_first: bool) -> tuple[float, float]:
    servers = [start_postgres(template, password=STACK_PASSWORDS[v], durable=durable) for v in ("POSTGRES_PASSWORD", "TIMESCALE_PASSWORD")]
    workdir = Path(tempfile.mkdtemp(prefix="nndb-bench-"))
    try:
        postgres = servers[0]
        project = copy_project(workdir / "project")
        environ = {
            **STACK_PASSWORDS,
            "POSTGRES_HOST": postgres.host,
            "POSTGRES_PORT": str(postgres.port),
            "TIMESCALE_HOST": servers[1].host,
            "TIMESCALE_PORT": str(servers[1].port),
            "REDIS_PORT": "1",
        }
        # Databases, roles and the service's own migrations first: the timed part is only the 1,000.
        paths = ProjectPaths.at(project)
        config = load_environment("local-db", config_dir=paths.config_dir)
        resolved = Resolved(stack="local-db", paths=paths, config=config, environ=environ, endpoints=resolve_endpoints(config, environ))
        run_phases(
            plugin_manager(disabled=("backup", "redis_acl", "permissions")),
            build_context(resolved, logger=logging.getLogger("bench"), backup_dir=workdir / "backups"),
            hooks=("nndb_preflight", "nndb_init_sql", "nndb_apply_migrations"),
        )
        files = generate(project / "sql" / "migrations" / SERVICE, count)
        results: dict[str, float] = {}
        for side in ("psql", "ledger") if psql_first else ("ledger", "psql"):
            if side == "psql":
                results[side] = run_psql(postgres, files, workdir, "bench_psql")
            else:
                results[side] = run_ledger(project, environ)
        return results["ledger"], results["psql"]
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fast", action="store_true", help="fsync off on the benchmark server")
    args = parser.parse_args()
    template = init_pg_template(durable=not args.fast)
    ledger_times, psql_times = [], []
    try:
        for run in range(args.runs):
            ledger_s, psql_s = one_round(template, args.count, durable=not args.fast, psql_first=run % 2 == 0)
            ledger_times.append(ledger_s)
            psql_times.append(psql_s)
            print(f"run {run + 1}: ledger {ledger_s:.3f}s  psql {psql_s:.3f}s  ratio {ledger_s / psql_s:.2f}")
    finally:
        shutil.rmtree(template.parent, ignore_errors=True)
    ledger_med, psql_med = statistics.median(ledger_times), statistics.median(psql_times)
    ratio = statistics.median(ledger / psql for ledger, psql in zip(ledger_times, psql_times, strict=True))
    verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
    fsync = "off" if args.fast else "on"
    print(f"{args.count} migrations, fsync {fsync}, {args.runs} rounds:")
    print(f"  ledger: median {ledger_med:.3f}s, best {min(ledger_times):.3f}s")
    print(f"  psql:   median {psql_med:.3f}s, best {min(psql_times):.3f}s")
    print(
        f"  best/best {min(ledger_times) / min(psql_times):.2f}; median of per-round ratios {ratio:.2f} (target <= {TARGET_RATIO}): {verdict}"
    )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_migrations{'-fast' if args.fast else ''}.json").write_text(
        json.dumps({"count": args.count, "fsync": fsync, "ledger_s": ledger_times, "psql_s": psql_times, "ratio": ratio}, indent=2)
    )
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
