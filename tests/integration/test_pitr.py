"""Point-in-time recovery through barman (Debian's 3.4) against a real Debian PostgreSQL 15.

Rows at t1 and at t2; recovering to a time between brings back only the t1 rows, to the latest
all of them, and a target before the first base backup is one clear line (exit 11, PitrError).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from nexanest_db.errors import PitrError
from nexanest_db.operations.pitr import stop_scratch
from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS, owned_tempdir
from tests.support.project import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def pitr_stack(db_stack: DbStack) -> Iterator[DbStack]:
    local = db_stack.project / "config" / "local.toml"
    local.write_text(local.read_text().replace("pitr = false", "pitr = true"))
    run_in_process(db_stack)
    yield db_stack
    conf = db_stack.backup_dir / "local-db" / "pitr" / "barman.conf"
    for instance in ("postgres", "timescale"):  # receive-wal runs in the background (barman cron starts it)
        subprocess.run(["barman", "-c", str(conf), "-q", "receive-wal", "--stop", instance], capture_output=True, check=False)


def scratch_rows(port: int) -> int:
    with psycopg.connect(
        host="127.0.0.1", port=port, dbname="portfolio", user="nexanest", password=STACK_PASSWORDS["POSTGRES_PASSWORD"], connect_timeout=5
    ) as conn:
        return conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone()[0]


def recover(stack: DbStack, destination: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], int | None]:
    result = nndb(stack, "backup", "pitr", "recover", "local-db", "postgres", "--to", str(destination), "--scratch", *extra, timeout=300)
    return result, scratch_port(result.stdout)


RUNBOOK = REPO_ROOT / "docs" / "runbooks" / "restore.md"


def runbook_pitr(stack: DbStack, when: datetime) -> subprocess.CompletedProcess[str]:
    """The runbook's point-in-time section (its ``bash`` blocks), as written, for the stack's postgres instance."""
    blocks = re.findall(r"^```bash\n(.*?)^```", RUNBOOK.read_text(encoding="utf-8"), re.S | re.M)
    script = "set -euo pipefail\nSTACK=local-db\n" + "\n".join(blocks)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(stack.project),
        **CHILD_PYTHONPATH,
        **stack.environ,
        "TIME": when.isoformat(),
    }
    return subprocess.run(["bash", "-c", script], cwd=stack.project, env=env, capture_output=True, text=True, timeout=300, check=False)


def scratch_port(output: str) -> int | None:
    for line in output.splitlines():
        if "scratch instance on 127.0.0.1:" in line:
            return int(line.split("127.0.0.1:")[1].split()[0])
    return None


def test_recover_an_instance_to_a_time_between_two_writes(pitr_stack: DbStack) -> None:
    setup = nndb(pitr_stack, "backup", "pitr", "setup", "local-db", timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "postgres: created replication role nndb_replication" in setup.stdout
    with pitr_stack.postgres.connect() as conn:
        role = conn.execute("SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = 'nndb_replication'").fetchone()
    assert role == (True, False)

    base = nndb(pitr_stack, "backup", "pitr", "base", "local-db", "--instance", "postgres", timeout=300)
    assert base.returncode == 0, base.stdout + base.stderr

    with pitr_stack.postgres.connect("portfolio") as conn:
        conn.execute("INSERT INTO portfolio.portfolios (owner_user_id, name) SELECT g, 't1-' || g FROM generate_series(1, 10) g")
    time.sleep(1.5)
    between = datetime.now(UTC)
    time.sleep(1.5)
    with pitr_stack.postgres.connect("portfolio") as conn:
        conn.execute("INSERT INTO portfolio.portfolios (owner_user_id, name) SELECT g, 't2-' || g FROM generate_series(1, 7) g")

    scratch_base = owned_tempdir("nndb-pitr-scratch-")
    started: list[Path] = []
    try:
        result = runbook_pitr(pitr_stack, between)  # docs/runbooks/restore.md section 5, as written
        port = scratch_port(result.stdout)
        assert result.returncode == 0 and port is not None, result.stdout + result.stderr
        assert "pitr: postgres: 1 base backups" in result.stdout
        started.append(Path(result.stdout.split(" into ")[-1].split()[0]))
        assert started[0].parent == Path("/var/tmp")
        assert scratch_rows(port) == 10, "only the rows written before the target time"

        result, port = recover(pitr_stack, scratch_base / "latest")
        assert result.returncode == 0 and port is not None, result.stdout + result.stderr
        started.append(scratch_base / "latest")
        assert scratch_rows(port) == 17, "every row, to the latest WAL"

        result, _ = recover(pitr_stack, scratch_base / "too-early", "--time", "2001-01-01T00:00:00Z")
        assert result.returncode == PitrError.exit_code, result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert "postgres: recovery target 2001-01-01T00:00:00+00:00 is outside the retained window" in line
        assert not (scratch_base / "too-early").exists()
    finally:
        for data_dir in started:
            stop_scratch(data_dir)
        for path in (scratch_base, *started):
            subprocess.run(["rm", "-rf", str(path)], check=False)

    listing = nndb(pitr_stack, "backup", "pitr", "list", "local-db", "--instance", "postgres")
    assert listing.returncode == 0 and "pitr: postgres: 1 base backups" in listing.stdout, listing.stdout + listing.stderr
    passfile = pitr_stack.backup_dir / "local-db" / "pitr" / ".nndb" / "pgpass"
    assert passfile.stat().st_mode & 0o077 == 0
    for path in (pitr_stack.backup_dir / "local-db" / "pitr").glob("*.conf"):
        assert STACK_PASSWORDS["POSTGRES_REPLICATION_PASSWORD"] not in path.read_text()

    # Retention of base backups (the same repository, one more base backup).
    check_retention_keeps_the_base_backup_the_window_start_needs(pitr_stack)


def _age_base_backup(stack: DbStack, backup_id: str, days: float) -> None:
    """Make barman's record of a base backup ``days`` older (what waiting that long would do)."""
    info = stack.backup_dir / "local-db" / "pitr" / "postgres" / "base" / backup_id / "backup.info"
    lines = []
    for line in info.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in ("begin_time", "end_time") and value and value != "None":
            value = (datetime.fromisoformat(value) - timedelta(days=days)).isoformat(sep=" ")
        lines.append(f"{key}={value}" if _ else line)
    info.write_text("\n".join(lines) + "\n")


def base_backup_ids(stack: DbStack) -> list[str]:
    """The base backups barman keeps for postgres (one directory each)."""
    base = stack.backup_dir / "local-db" / "pitr" / "postgres" / "base"
    return sorted(path.name for path in base.iterdir() if (path / "backup.info").is_file())


def check_retention_keeps_the_base_backup_the_window_start_needs(stack: DbStack) -> None:
    """local-db keeps 3 days. Two base backups, 6 and 5 days old: the newer one (with the WAL after it) is the only
    way to reach any point of the window, so it stays, whatever its age; the older one is pruned (issue 11 point 5)."""
    base = nndb(stack, "backup", "pitr", "base", "local-db", "--instance", "postgres", timeout=300)
    assert base.returncode == 0, base.stdout + base.stderr
    oldest, anchor = base_backup_ids(stack)
    _age_base_backup(stack, oldest, days=6)
    _age_base_backup(stack, anchor, days=5)

    cron = nndb(stack, "backup", "pitr", "cron", "local-db", timeout=300)
    assert cron.returncode == 0, cron.stdout + cron.stderr
    assert base_backup_ids(stack) == [anchor], "pruned only what no point in the window needs"
