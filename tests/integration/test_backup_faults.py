"""Backups under faults: tampered or corrupt catalogs, a full disk, a blocked directory, a killed run's leftovers.

Each ends in one line naming the path and a documented exit code (7), and nothing outside the
backup directory is ever read or removed.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from nexanest_db.errors import BackupError
from tests.fixtures.servers import DbStack
from tests.support.hooks import NNDB, nndb, run_in_process, summaries
from tests.support.local_servers import CHILD_PYTHONPATH

pytestmark = pytest.mark.integration


@pytest.fixture
def deployed(db_stack: DbStack) -> DbStack:
    run_in_process(db_stack)
    return db_stack


def catalog_path(stack: DbStack) -> Path:
    return stack.backup_dir / "local-db" / "catalog.json"


def tamper(stack: DbStack, change) -> None:
    path = catalog_path(stack)
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


def one_error_line(result: subprocess.CompletedProcess[str], code: int = BackupError.exit_code) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("file", ["../../victim.txt", "/VICTIM", "postgres/../../../victim.txt", "postgres/auth/../../../../victim.txt"])
def test_a_catalog_path_outside_the_backup_directory_is_refused_and_nothing_is_deleted(deployed: DbStack, file: str) -> None:
    victim = deployed.backup_dir.parent / "victim.txt"
    victim.write_text("precious\n")
    target = file.replace("/VICTIM", str(victim))

    def old_record_pointing_outside(raw: dict) -> None:
        raw["backups"][0]["file"] = target
        raw["backups"][0]["taken_at"] = "2000-01-01T00:00:00.000000+00:00"
        raw["backups"][0]["verified"] = False  # not the latest verified one: retention would delete it

    tamper(deployed, old_record_pointing_outside)
    for command in ("run", "verify", "list"):
        line = one_error_line(nndb(deployed, "backup", command, "local-db"))
        assert str(catalog_path(deployed)) in line and "leads outside the backup directory" in line, line
    assert victim.read_text() == "precious\n"


def test_a_symlinked_dump_pointing_outside_is_refused(deployed: DbStack) -> None:
    victim = deployed.backup_dir.parent / "victim.txt"
    victim.write_text("precious\n")
    record = json.loads(catalog_path(deployed).read_text())["backups"][0]
    dump = catalog_path(deployed).parent / record["file"]
    dump.unlink()
    dump.symlink_to(victim)
    line = one_error_line(nndb(deployed, "backup", "verify", "local-db"))
    assert "leads outside" in line and record["id"] in line
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"backups": {"a": 1}}', "'databases' must be an object and 'backups' a list"),
        ('{"backups": [1]}', "backups[0]: expected an object"),
        ('{"backups": [{"id": "x"}]}', "backups[0]: missing"),
        ("{not json", "Expecting property name"),
        ("\xff\xfe", "not UTF-8"),
    ],
)
def test_a_corrupt_catalog_is_one_line(deployed: DbStack, content: str, reason: str) -> None:
    catalog_path(deployed).write_bytes(content.encode("latin-1"))
    for command in ("run", "list"):
        line = one_error_line(nndb(deployed, "backup", command, "local-db"))
        assert line.startswith(f"nndb: error: {catalog_path(deployed)}: unreadable backup catalog (") and reason in line, line


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("taken_at", "yesterday", "taken_at 'yesterday' is not an ISO date and time"),
        ("taken_at", "2026-01-01T00:00:00", "has no time zone"),
        ("size", "12", "size must be a non-negative integer"),
        ("sha256", "abc", "sha256 is not 64 hex digits"),
        ("row_counts", [1], "row_counts must map table names to integers"),
    ],
)
def test_a_bad_record_is_one_line_naming_it(deployed: DbStack, field: str, value: object, reason: str) -> None:
    tamper(deployed, lambda raw: raw["backups"][0].__setitem__(field, value))
    line = one_error_line(nndb(deployed, "backup", "run", "local-db"))
    assert str(catalog_path(deployed)) in line and "backups[0]" in line and reason in line, line
    # The hooks refuse it the same way (exit 7 through the run).
    hooks = nndb(deployed, "hooks", "run", "local-db")
    assert one_error_line(hooks).endswith("restore it from a copy or move it aside")


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_partial(deployed: DbStack) -> None:
    """The kernel refuses writes past RLIMIT_FSIZE (EFBIG) like a full disk (ENOSPC): same code path, real errors."""
    directory = catalog_path(deployed).parent
    before = sorted(p.name for p in directory.rglob("*"))

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(deployed.project), **CHILD_PYTHONPATH, **deployed.environ}
    result = subprocess.run(
        [NNDB, "backup", "run", "local-db"],
        cwd=deployed.project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=small_files,
    )
    line = one_error_line(result)
    assert "cannot write the backup file: the file size limit was reached" in line and str(directory) in line, line
    assert sorted(p.name for p in directory.rglob("*")) == before  # no .partial, no new dump, catalog unchanged
    assert nndb(deployed, "backup", "run", "local-db").returncode == 0  # with room again, it works


def test_a_backup_directory_that_cannot_be_created_is_one_line(deployed: DbStack) -> None:
    blocker = deployed.project / "blocked"
    blocker.write_text("a file where the directory should be\n")
    result = nndb(deployed, "backup", "run", "local-db", "--backup-dir", str(blocker / "sub"))
    line = one_error_line(result)
    assert str(blocker / "sub" / "local-db") in line and "not a directory" in line, line


def test_a_killed_runs_leftovers_are_cleaned_on_the_next_run(deployed: DbStack) -> None:
    directory = catalog_path(deployed).parent
    partial = directory / "postgres" / "auth" / ".20260101T000000000000Z.dump.enc.partial"
    partial.write_bytes(b"half a dump")
    orphan = directory / "postgres" / "portfolio" / "20260101T000000000000Z.dump.enc"
    orphan.write_bytes(b"a dump the catalog never recorded")
    (directory / ".catalog.json.tmp").write_text("{")
    keep = directory / "postgres" / "auth" / "NOTES.txt"
    keep.write_text("not ours to delete\n")
    with deployed.postgres.connect() as conn:
        conn.execute("CREATE DATABASE nndb_verify_auth_deadbeef")
    changes = summaries(run_in_process(deployed, hooks=("nndb_preflight", "nndb_register_backups")))
    assert sorted(changes) == [
        "local-db: removed .catalog.json.tmp (left behind by an interrupted backup)",
        "local-db: removed postgres/auth/.20260101T000000000000Z.dump.enc.partial (left behind by an interrupted backup)",
        "local-db: removed postgres/portfolio/20260101T000000000000Z.dump.enc (left behind by an interrupted backup)",
        "postgres: dropped scratch database nndb_verify_auth_deadbeef (left behind by an interrupted verification)",
    ]
    assert not partial.exists() and not orphan.exists() and keep.exists()
    with deployed.postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'nndb_verify_%%'").fetchone() == (0,)
    # `nndb backup run` cleans the same way, and says so.
    partial.write_bytes(b"half a dump")
    result = nndb(deployed, "backup", "run", "local-db")
    assert result.returncode == 0, result.stderr
    assert "removed postgres/auth/.20260101T000000000000Z.dump.enc.partial" in result.stdout
    assert summaries(run_in_process(deployed, hooks=("nndb_preflight", "nndb_register_backups"))) == []
