"""Scheduled runs are recorded and listed; `nndb backup verify` fails when the newest verified backup is overdue."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from nexanest_db.errors import BackupError
from tests.fixtures.servers import DbStack
from tests.integration.hooks_support import nndb, run_in_process

pytestmark = pytest.mark.integration


def test_scheduled_runs_are_listed_and_an_overdue_backup_fails_verify(db_stack: DbStack, tmp_path: Path) -> None:
    run_in_process(db_stack, hooks=("nndb_preflight", "nndb_init_sql", "nndb_apply_migrations"))
    (tmp_path / "repo").mkdir()  # a --backup-dir that does not exist is an error, not an empty catalog
    repo = ["--backup-dir", str(tmp_path / "repo")]
    listing = nndb(db_stack, "backup", "list", "local-db", *repo)
    assert "scheduled runs: none recorded" in listing.stdout

    result = nndb(db_stack, "backup", "run", "local-db", "--scheduled", *repo)
    assert result.returncode == 0, result.stdout + result.stderr
    listing = nndb(db_stack, "backup", "list", "local-db", *repo)
    assert "scheduled runs: 1 recorded (0 failed), last at " in listing.stdout and "(ok)" in listing.stdout
    assert nndb(db_stack, "backup", "verify", "local-db", *repo).returncode == 0

    # The scheduler stopped two days ago (local-db's schedule is daily: 24 h + 1 h grace allowed).
    catalog_file = tmp_path / "repo" / "local-db" / "catalog.json"
    entries = json.loads(catalog_file.read_text())
    for backup in entries["backups"]:
        backup["taken_at"] = (datetime.fromisoformat(backup["taken_at"]) - timedelta(days=2)).isoformat()
    catalog_file.write_text(json.dumps(entries))
    late = nndb(db_stack, "backup", "verify", "local-db", *repo)
    assert late.returncode == BackupError.exit_code, late.stdout + late.stderr
    (line,) = late.stderr.splitlines()
    assert "backup verify: 3 of 3 databases overdue — first: postgres/auth: newest verified backup" in line
    assert "the schedule (0 2 * * *) allows 25.0 h" in line

    # A scheduled run that fails is on record too.
    broken = dict(db_stack.environ, POSTGRES_PORT="1")
    failed = nndb(db_stack, "backup", "run", "local-db", "--scheduled", *repo, environ=broken)
    assert failed.returncode != 0
    listing = nndb(db_stack, "backup", "list", "local-db", *repo)
    assert "scheduled runs: 2 recorded (1 failed)" in listing.stdout and "FAILED: " in listing.stdout
