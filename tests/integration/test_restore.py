"""`nndb backup restore|export` against real PostgreSQL: a service database put back safely.

One stack per test (each changes live databases): refusal while sessions exist, --force, the swap
with grants and ledger, --into and --before, a restore that fails halfway, and export.
"""

from __future__ import annotations

import io
import json
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest

from nexanest_db.backup_crypto import BackupKey, decrypt_stream, encrypt_stream
from nexanest_db.backups import find_tool
from nexanest_db.errors import RestoreError
from tests.fixtures.postgres_server import PG_MAJOR
from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

LEFTOVERS = "SELECT datname FROM pg_database WHERE datname LIKE 'nndb\\_%%'"


@pytest.fixture
def deployed(db_stack: DbStack) -> DbStack:
    run_in_process(db_stack)
    return db_stack


def catalog(stack: DbStack) -> dict:
    return json.loads((stack.backup_dir / "local-db" / "catalog.json").read_text())


def portfolios(stack: DbStack, database: str = "portfolio") -> int:
    with stack.postgres.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone()[0]


def add_portfolios(stack: DbStack, count: int) -> None:
    with stack.postgres.connect("portfolio") as conn:
        conn.execute(
            "INSERT INTO portfolio.portfolios (owner_user_id, name) SELECT g, md5(random()::text) FROM generate_series(1, %s) g", (count,)
        )


def one_line(result: subprocess.CompletedProcess[str], code: int = RestoreError.exit_code) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.stdout + result.stderr
    for value in STACK_PASSWORDS.values():
        assert value not in result.stdout + result.stderr
    return line


def leftovers(stack: DbStack) -> list[str]:
    with stack.postgres.connect() as conn:
        return [r[0] for r in conn.execute(LEFTOVERS).fetchall()]


def app_session(stack: DbStack) -> psycopg.Connection:
    return stack.postgres.connect("portfolio", user="portfolio_app", password=STACK_PASSWORDS["PORTFOLIO_DB_PASSWORD"])


def test_restore_refuses_sessions_then_swaps_with_force(deployed: DbStack) -> None:
    add_portfolios(deployed, 100)
    assert nndb(deployed, "backup", "run", "local-db").returncode == 0
    add_portfolios(deployed, 50)
    before = catalog(deployed)

    session = app_session(deployed)
    try:
        line = one_line(nndb(deployed, "backup", "restore", "local-db", "portfolio"))
        assert "postgres/portfolio: 1 session(s) connected (pid" in line and "portfolio_app" in line
        assert "pass --force" in line and "nothing was changed" in line
        assert catalog(deployed) == before and portfolios(deployed) == 150

        result = nndb(deployed, "backup", "restore", "local-db", "portfolio", "--force")
        assert result.returncode == 0, result.stdout + result.stderr
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")  # ended at the swap
    finally:
        session.close()
    lines = result.stdout.splitlines()
    steps = [line.split("s  ", 1)[1].split(":")[0] for line in lines[:-1]]
    assert steps[:3] == ["chose backup", "checked sessions", "fresh backup of the live database"]
    assert steps[3].startswith("restored into nndb_restore_portfolio_") and steps[4:7] == ["swapped in by rename", "grants", "ledger"]
    assert steps[7].startswith("dropped the replaced database nndb_replaced_portfolio_")
    assert all(line.startswith("restore postgres/portfolio: ") for line in lines[:-1])
    assert "latest applied V002, 0 pending" in result.stdout
    assert lines[-1].startswith("restore: postgres/portfolio backup ") and "into portfolio (" in lines[-1]

    assert portfolios(deployed) == 100, "the backup's rows, not the 50 added after it"
    fresh = max((b for b in catalog(deployed)["backups"] if b["subject"] == "postgres/portfolio"), key=lambda b: b["taken_at"])
    assert fresh["row_counts"]["portfolio.portfolios"] == 150 and fresh["verified"], "the state before the restore is kept"
    assert leftovers(deployed) == []
    with app_session(deployed) as conn:  # grants: the app reads and writes the restored tables
        conn.execute("INSERT INTO portfolio.portfolios (owner_user_id, name) VALUES (1, 'after restore')")
        assert conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone() == (101,)
    with deployed.postgres.connect("portfolio") as conn:
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'portfolio'").fetchone()
        tables = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'portfolio'").fetchall()
        public = conn.execute("SELECT has_database_privilege('auth_app', 'portfolio', 'CONNECT')").fetchone()
    assert owner == ("portfolio_owner",) and tables == [("portfolio_owner",)] and public == (False,)

    # `nndb migrate status` sees the restored ledger as current.
    status = nndb(deployed, "migrate", "status", "local-db")
    assert status.returncode == 0, status.stdout + status.stderr


def test_restore_before_a_time_into_a_new_database_beside(deployed: DbStack) -> None:
    first = max((b for b in catalog(deployed)["backups"] if b["subject"] == "postgres/portfolio"), key=lambda b: b["taken_at"])
    add_portfolios(deployed, 30)
    assert nndb(deployed, "backup", "run", "local-db").returncode == 0
    second = max((b for b in catalog(deployed)["backups"] if b["subject"] == "postgres/portfolio"), key=lambda b: b["taken_at"])

    result = nndb(
        deployed, "backup", "restore", "local-db", "postgres/portfolio", "--before", second["taken_at"], "--into", "portfolio_then"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert first["id"] in result.stdout and "beside portfolio" in result.stdout
    assert portfolios(deployed, "portfolio_then") == 0 and portfolios(deployed) == 30, "the live database is untouched"
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        deployed.postgres.connect("portfolio_then", user="portfolio_app", password=STACK_PASSWORDS["PORTFOLIO_DB_PASSWORD"])

    assert "already exists" in one_line(nndb(deployed, "backup", "restore", "local-db", "portfolio", "--into", "portfolio_then"))
    assert "no usable backup taken before 2001-01-01T00:00:00+00:00" in one_line(
        nndb(deployed, "backup", "restore", "local-db", "portfolio", "--before", "2001-01-01")
    )
    assert "not an ISO 8601 time" in one_line(nndb(deployed, "backup", "restore", "local-db", "portfolio", "--before", "yesterday"))
    assert f"backup {first['id']} is a backup of postgres/portfolio, not of postgres/auth" in one_line(
        nndb(deployed, "backup", "restore", "local-db", "auth", "--backup", first["id"])
    )
    assert "no such service in this stack; pick one of" in one_line(nndb(deployed, "backup", "restore", "local-db", "billing"))


def test_a_restore_that_fails_halfway_leaves_the_live_database_untouched(deployed: DbStack) -> None:
    add_portfolios(deployed, 20)
    assert nndb(deployed, "backup", "run", "local-db").returncode == 0
    entries = catalog(deployed)
    record = max((b for b in entries["backups"] if b["subject"] == "postgres/portfolio"), key=lambda b: b["taken_at"])
    path = deployed.backup_dir / "local-db" / record["file"]
    # A correctly encrypted archive cut in half: it authenticates, and pg_restore fails partway through.
    key = BackupKey(STACK_PASSWORDS["BACKUP_ENCRYPTION_KEY"])
    archive, broken = io.BytesIO(), io.BytesIO()
    decrypt_stream(io.BytesIO(path.read_bytes()), archive, key)
    encrypt_stream(io.BytesIO(archive.getvalue()[: len(archive.getvalue()) * 2 // 3]), broken, key)
    path.write_bytes(broken.getvalue())
    import hashlib

    record["sha256"] = hashlib.sha256(broken.getvalue()).hexdigest()
    (deployed.backup_dir / "local-db" / "catalog.json").write_text(json.dumps(entries))
    add_portfolios(deployed, 5)

    line = one_line(nndb(deployed, "backup", "restore", "local-db", "portfolio"))
    assert f"restore of postgres/portfolio backup {record['id']} into nndb_restore_portfolio_" in line
    assert portfolios(deployed) == 25 and leftovers(deployed) == []
    with app_session(deployed) as conn:  # connections allowed as before
        assert conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone() == (25,)

    # The failed attempt still left its fresh backup of the live state (now the latest one).
    fresh = max((b for b in catalog(deployed)["backups"] if b["subject"] == "postgres/portfolio"), key=lambda b: b["taken_at"])
    assert fresh["row_counts"]["portfolio.portfolios"] == 25 and fresh["verified"]

    path.write_bytes(broken.getvalue()[:-10])  # a file that no longer matches its checksum is refused before anything
    line = one_line(nndb(deployed, "backup", "restore", "local-db", "portfolio", "--backup", record["id"]))
    assert "does not match its recorded checksum" in line
    assert len(catalog(deployed)["backups"]) == len(entries["backups"]) + 1, "refused before the fresh backup"


def test_export_writes_a_plain_archive_pg_restore_reads(deployed: DbStack, tmp_path: Path) -> None:
    add_portfolios(deployed, 40)
    assert nndb(deployed, "backup", "run", "local-db").returncode == 0
    (tmp_path / "exports").mkdir()
    output = tmp_path / "exports" / "portfolio.dump"
    result = nndb(deployed, "backup", "export", "local-db", "portfolio", "--output", str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"written to {output}" in result.stdout
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.read_bytes().startswith(b"PGDMP")
    assert sorted(p.name for p in output.parent.iterdir()) == ["portfolio.dump"], "no partial file left"

    with deployed.postgres.connect() as conn:
        conn.execute("CREATE DATABASE plain_copy")
    env = {"PGPASSWORD": deployed.postgres.password, "PATH": "/usr/bin:/bin"}
    target = ["--host", deployed.postgres.host, "--port", str(deployed.postgres.port), "--username", deployed.postgres.superuser]
    plain = subprocess.run(
        [find_tool("pg_restore", PG_MAJOR), *target, "--dbname", "plain_copy", "--exit-on-error", str(output)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert portfolios(deployed, "plain_copy") == 40

    assert "already exists; name a new file" in one_line(nndb(deployed, "backup", "export", "local-db", "portfolio", "-o", str(output)))
    assert "no such directory" in one_line(nndb(deployed, "backup", "export", "local-db", "portfolio", "-o", str(tmp_path / "no" / "x")))
