"""Migration discovery and parsing (pglast): names, versions, statements with lines, checksums."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexanest_db.config import ServiceConfig
from nexanest_db.errors import MigrationError
from nexanest_db.ledger import LedgerRow, make_plan
from nexanest_db.migration_files import discover
from nexanest_db.roles import service_roles
from tests.support.project import REPO_ROOT

REPO_SQL = REPO_ROOT / "sql"


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_repository_migrations_parse() -> None:
    for service, count in (("auth", 3), ("portfolio", 2), ("analytics", 3)):
        migrations = discover(REPO_SQL, service)
        assert [m.version for m in migrations] == list(range(count + 1))
        assert migrations[0].label == "baseline" and migrations[0].script == f"sql/schemas/{service}/schema.sql"
        assert all(m.statements for m in migrations)


def test_statements_carry_their_line(tmp_path: Path) -> None:
    sql_dir = tree(
        tmp_path, {"migrations/auth/V001__two_things.sql": "-- why\nCREATE TABLE a (x int);\n\nDO $$ BEGIN PERFORM 1; END $$;\n"}
    )
    (migration,) = discover(sql_dir, "auth")
    assert (migration.version, migration.description, migration.label) == (1, "two things", "V001")
    assert [(s.line, s.text) for s in migration.statements] == [(2, "CREATE TABLE a (x int)"), (4, "DO $$ BEGIN PERFORM 1; END $$")]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"migrations/auth/add_index.sql": "SELECT 1;"}, r"sql/migrations/auth/add_index.sql: not a migration file name"),
        ({"migrations/auth/V000__x.sql": "SELECT 1;"}, r"version 0 is the baseline"),
        ({"migrations/auth/V1__a.sql": "SELECT 1;", "migrations/auth/V001__b.sql": "SELECT 1;"}, r"version 1 is also used by"),
        ({"migrations/auth/V001__x.sql": "SELECT 1;\n\nCREAT TABLE t (a int);"}, r"sql/migrations/auth/V001__x.sql:3: syntax error"),
        (
            {"migrations/auth/V001__x.sql": "SELECT 1;\nBEGIN;\nSELECT 2;\nCOMMIT;"},
            r"V001__x.sql:2: BEGIN found; each migration already runs in its own transaction",
        ),
    ],
)
def test_bad_files_are_refused_with_file_and_line(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        for migration in discover(tree(tmp_path, files), "auth"):
            _ = migration.statements


def test_checksum_ignores_line_endings_but_not_content(tmp_path: Path) -> None:
    unix = discover(tree(tmp_path / "a", {"migrations/auth/V001__x.sql": "SELECT 1;\n"}), "auth")[0].checksum
    dos = discover(tree(tmp_path / "b", {"migrations/auth/V001__x.sql": "SELECT 1;\r\n"}), "auth")[0].checksum
    edited = discover(tree(tmp_path / "c", {"migrations/auth/V001__x.sql": "SELECT 2;\n"}), "auth")[0].checksum
    assert unix == dos != edited


def _row(version: int, checksum: str) -> LedgerRow:
    import datetime

    return LedgerRow(
        version=version,
        description="d",
        script="s",
        checksum=checksum,
        applied_at=datetime.datetime(2025, 1, 1),
        execution_ms=1,
        applied_by="x",
    )


def test_plan_sorts_pending_changed_out_of_order_and_missing(tmp_path: Path) -> None:
    sql_dir = tree(tmp_path, {f"migrations/auth/V00{n}__m{n}.sql": f"SELECT {n};" for n in (1, 2, 3, 5)})
    migrations = discover(sql_dir, "auth")
    by_version = {m.version: m for m in migrations}
    applied = {1: _row(1, by_version[1].checksum), 3: _row(3, "0" * 64), 4: _row(4, "f" * 64)}
    roles = service_roles(
        "auth", ServiceConfig.model_validate({"instance": "postgres", "database": "auth", "schema": "auth", "redis_prefix": "auth:"})
    )
    plan = make_plan(roles, migrations, applied, ledger_exists=True)
    assert [m.version for m in plan.pending] == [5]
    assert [m.version for m in plan.out_of_order] == [2]
    assert [m.version for m, _ in plan.changed] == [3]
    assert [r.version for r in plan.missing_files] == [4]
    problems = plan.problems()
    assert problems[0].startswith("sql/migrations/auth/V003__m3.sql: checksum mismatch")
    assert problems[1].startswith("sql/migrations/auth/V002__m2.sql: out of order — new V002 is below the latest applied V004")


def test_line_numbers_of_a_large_file_stay_exact(tmp_path: Path) -> None:
    """Counted incrementally (linear), they must still be the real lines; benchmarks/bench_parse.py times it."""
    text = "".join(f"-- {i}\nCREATE TABLE t_{i} (\n  id int\n);\n" for i in range(5000))
    sql_dir = tree(tmp_path, {"migrations/auth/V001__many.sql": text})
    statements = discover(sql_dir, "auth")[0].statements
    assert len(statements) == 5000
    assert [s.line for s in statements[:3]] == [2, 6, 10] and statements[-1].line == 4 * 4999 + 2


def test_a_version_larger_than_the_ledger_column_names_the_file(tmp_path: Path) -> None:
    sql_dir = tree(tmp_path, {"migrations/auth/V99999999999__x.sql": "SELECT 1;\n"})
    with pytest.raises(
        MigrationError, match=r"^sql/migrations/auth/V99999999999__x.sql: version 99999999999 is larger than the ledger holds"
    ):
        discover(sql_dir, "auth")
    ok = tree(tmp_path / "ok", {"migrations/auth/V2147483647__last.sql": "SELECT 1;\n"})
    assert discover(ok, "auth")[0].version == 2**31 - 1


@pytest.mark.parametrize("where", ["migrations/auth/V001__linked.sql", "schemas/auth/schema.sql"])
def test_symlinks_under_sql_are_refused_dangling_or_not(tmp_path: Path, where: str) -> None:
    outside = tmp_path / "outside.sql"
    outside.write_text("CREATE ROLE evil SUPERUSER;\n")
    sql_dir = tmp_path / "sql"
    link = sql_dir / where
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    with pytest.raises(MigrationError, match=rf"^sql/{where}: is a symbolic link; .*replace the link with the file"):
        discover(sql_dir, "auth")
    outside.unlink()  # dangling now: still one line, no traceback
    with pytest.raises(MigrationError, match=rf"^sql/{where}: is a symbolic link"):
        discover(sql_dir, "auth")


def test_a_symlinked_service_directory_and_a_fifo_are_refused(tmp_path: Path) -> None:
    import os

    elsewhere = tree(tmp_path / "elsewhere", {"V001__x.sql": "SELECT 1;\n"})
    sql_dir = tmp_path / "sql"
    (sql_dir / "migrations").mkdir(parents=True)
    (sql_dir / "migrations" / "auth").symlink_to(elsewhere)
    with pytest.raises(MigrationError, match=r"^sql/migrations/auth: is a symbolic link"):
        discover(sql_dir, "auth")
    fifo_dir = tmp_path / "fifo"
    (fifo_dir / "migrations" / "auth").mkdir(parents=True)
    os.mkfifo(fifo_dir / "migrations" / "auth" / "V001__pipe.sql")
    with pytest.raises(MigrationError, match=r"^sql/migrations/auth/V001__pipe.sql: not a regular file"):
        discover(fifo_dir, "auth")  # never opened: reading a FIFO would wait forever


def test_unreadable_and_binary_files_are_one_line(tmp_path: Path) -> None:
    sql_dir = tree(tmp_path, {"migrations/auth/V001__nul.sql": "SELECT 1;\0\n"})
    with pytest.raises(MigrationError, match=r"^sql/migrations/auth/V001__nul.sql: contains a NUL byte"):
        discover(sql_dir, "auth")
    (sql_dir / "migrations/auth/V001__nul.sql").write_bytes(b"SELECT '\xff';\n")
    with pytest.raises(MigrationError, match=r"^sql/migrations/auth/V001__nul.sql: not UTF-8 text"):
        discover(sql_dir, "auth")
