"""Backup, restore and PITR speed on a generated database, beside plain PostgreSQL tools (issue 11).

Targets: take + verify (encrypted pg_dump -Fc, then restore into a scratch database and compare
row counts) within 1.3x of plain ``pg_dump -Fc`` to a file + ``pg_restore`` of it; ``nndb``'s restore
(decrypting into pg_restore, ``restore_service(into=...)``) within 1.3x of ``pg_restore -j 2``; and
the PITR recovery time of the same instance (barman recover + start + promote) reported.

    python benchmarks/bench_restore.py [--mb 500] [--no-pitr]

One real PostgreSQL 15 (Debian's, started here, fsync off like the tests); the data goes into the
portfolio database as one table of md5 text rows. Prints each number beside its baseline, exits 1
when a target is missed. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nexanest_db.backups import Catalog, find_tool  # noqa: E402
from nexanest_db.commands.hookrun import build_context  # noqa: E402
from nexanest_db.config import ProjectPaths, load_environment, resolve_endpoints  # noqa: E402
from nexanest_db.edge import Resolved  # noqa: E402
from nexanest_db.hook_manager import plugin_manager, run_phases  # noqa: E402
from nexanest_db.operations import pitr  # noqa: E402
from nexanest_db.operations.backup import take_and_verify  # noqa: E402
from nexanest_db.operations.restore import restore_service  # noqa: E402
from tests.fixtures.postgres_server import PG_MAJOR, init_pg_template, start_postgres  # noqa: E402
from tests.fixtures.redis_server import start_redis  # noqa: E402
from tests.support.local_servers import STACK_PASSWORDS, owned_tempdir  # noqa: E402
from tests.support.project import copy_project  # noqa: E402

TARGET = 1.3


def timed(fn):
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="approximate size of the generated table")
    parser.add_argument("--no-pitr", action="store_true")
    args = parser.parse_args()

    template = init_pg_template()
    postgres = start_postgres(template, password=STACK_PASSWORDS["POSTGRES_PASSWORD"])
    timescale = start_postgres(template, password=STACK_PASSWORDS["TIMESCALE_PASSWORD"])
    redis = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    work = Path(tempfile.mkdtemp(prefix="nndb-bench-restore-"))
    scratch = owned_tempdir("nndb-bench-pitr-")
    repo = None
    try:
        project = copy_project(work / "project")
        local = project / "config" / "local.toml"
        local.write_text(local.read_text().replace("pitr = false", "pitr = true"))
        environ = {
            "POSTGRES_HOST": postgres.host,
            "POSTGRES_PORT": str(postgres.port),
            "TIMESCALE_HOST": timescale.host,
            "TIMESCALE_PORT": str(timescale.port),
            "REDIS_HOST": redis.host,
            "REDIS_PORT": str(redis.port),
            **STACK_PASSWORDS,
        }
        paths = ProjectPaths.at(project)
        config = load_environment("local-db", config_dir=paths.config_dir)
        resolved = Resolved(stack="local-db", paths=paths, config=config, environ=environ, endpoints=resolve_endpoints(config, environ))
        logger = logging.getLogger("bench")
        context = build_context(resolved, logger=logger, backup_dir=work / "backups", run_lock=False)
        run_phases(plugin_manager(), context)
        service = next(s for s in context.services if s.service == "portfolio")
        rows = args.mb * 1024 * 1024 // 130  # ~130 bytes a row on disk
        with postgres.connect("portfolio") as conn:
            conn.execute("CREATE TABLE portfolio.bench (id bigint PRIMARY KEY, a text, b text)")
            conn.execute("INSERT INTO portfolio.bench SELECT g, md5(g::text), md5((g * 7)::text) FROM generate_series(1, %s) g", (rows,))
            conn.execute("ALTER TABLE portfolio.bench OWNER TO portfolio_owner")
            conn.execute("VACUUM ANALYZE portfolio.bench")
            size = conn.execute("SELECT pg_size_pretty(pg_database_size('portfolio'))").fetchone()[0]
        print(f"database portfolio: {size} ({rows} rows)")

        env = {"PGPASSWORD": postgres.password, "PATH": "/usr/bin:/bin"}
        target = ["--host", postgres.host, "--port", str(postgres.port), "--username", postgres.superuser]
        pg_dump, pg_restore = find_tool("pg_dump", PG_MAJOR), find_tool("pg_restore", PG_MAJOR)
        plain = work / "plain.dump"

        def baseline_take_verify() -> None:
            subprocess.run([pg_dump, "-Fc", *target, "--dbname", "portfolio", "--file", str(plain)], env=env, check=True)
            with postgres.connect() as conn:
                conn.execute("DROP DATABASE IF EXISTS bench_plain")
                conn.execute("CREATE DATABASE bench_plain TEMPLATE template0")
            subprocess.run([pg_restore, *target, "--dbname", "bench_plain", "--single-transaction", str(plain)], env=env, check=True)

        def baseline_restore_j2() -> None:
            with postgres.connect() as conn:
                conn.execute("DROP DATABASE IF EXISTS bench_j2")
                conn.execute("CREATE DATABASE bench_j2 TEMPLATE template0")
            subprocess.run([pg_restore, *target, "--dbname", "bench_j2", "-j", "2", str(plain)], env=env, check=True)

        catalog = Catalog.load(context.backup_dir, "local-db")
        base_tv, _ = timed(baseline_take_verify)
        ours_tv, _ = timed(lambda: take_and_verify(context, service, catalog))
        catalog.save()
        base_r, _ = timed(baseline_restore_j2)
        ours_r, _ = timed(lambda: restore_service(context, catalog, service, report=lambda _line: None, into="bench_nndb"))

        results = [
            ("take + verify (encrypted)", ours_tv, "pg_dump -Fc + pg_restore", base_tv),
            ("restore", ours_r, "pg_restore -j 2", base_r),
        ]
        failed = False
        for name, ours, base_name, base in results:
            ratio = ours / base
            verdict = "ok" if ratio <= TARGET else "MISSED"
            failed |= ratio > TARGET
            print(f"{name:<28} {ours:7.1f}s   baseline {base_name:<26} {base:7.1f}s   ratio {ratio:4.2f} (target <= {TARGET}) {verdict}")

        if not args.no_pitr:
            repo = pitr.Repository.for_context(context, environ=os.environ)
            setup_s, _ = timed(lambda: pitr.setup(context, repo))
            base_s, _ = timed(lambda: pitr.base_backup(context, repo, "postgres"))
            recover_s, result = timed(lambda: pitr.recover(context, repo, "postgres", target=None, destination=scratch / "r", start=True))
            print(f"PITR: setup {setup_s:.1f}s, base backup {base_s:.1f}s, recover to latest + start + promote {recover_s:.1f}s")
            pitr.stop_scratch(result.data_dir)
        context.close()
        return 1 if failed else 0
    finally:
        if repo is not None:
            for instance in ("postgres", "timescale"):
                subprocess.run(
                    ["barman", "-c", str(repo.config_file), "-q", "receive-wal", "--stop", instance], capture_output=True, check=False
                )
        postgres.stop()
        timescale.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(template.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
