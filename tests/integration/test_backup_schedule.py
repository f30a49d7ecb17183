"""Scheduled runs are recorded and listed; `nndb backup verify` fails when the newest verified backup is overdue."""

from __future__ import annotations

import json
import stat
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from nexanest_db.errors import BackupError, ScheduleError
from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import STACK_PASSWORDS

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


def test_schedule_install_writes_a_cron_entry_that_runs_and_check_fails_when_absent_stale_or_not_running(
    db_stack: DbStack, tmp_path: Path
) -> None:
    run_in_process(db_stack, hooks=("nndb_preflight", "nndb_init_sql", "nndb_apply_migrations"))
    cron_dir = tmp_path / "cron.d"
    cron_dir.mkdir()
    log = tmp_path / "cron.log"
    options = ["--cron-dir", str(cron_dir), "--user", "root", "--log", str(log)]
    entry = cron_dir / "nndb-local-db"

    absent = nndb(db_stack, "backup", "schedule", "check", "local-db", *options)
    assert absent.returncode == ScheduleError.exit_code and "not installed; run `nndb backup schedule install local-db`" in absent.stderr

    installed = nndb(db_stack, "backup", "schedule", "install", "local-db", *options)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    text = entry.read_text()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644
    assert all(value not in text for value in STACK_PASSWORDS.values())
    (line,) = [row for row in text.splitlines() if row and not row.startswith(("#", "SHELL=", "PATH="))]
    fields = line.split(None, 6)
    assert fields[:6] == ["0", "2", "*", "*", "*", "root"]  # local-db: [backup] schedule = "0 2 * * *", no PITR lines
    assert f"backup run local-db --scheduled >> {log} 2>&1" in fields[6]

    # The line runs as cron runs it: sh -c, a bare environment; the secrets come from the project's .env.db.
    env_file = db_stack.project / ".env.db"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in db_stack.environ.items()))
    env_file.chmod(0o600)
    subprocess.run(["sh", "-c", fields[6]], env={"PATH": "/usr/bin:/bin", "HOME": "/root"}, check=True, timeout=300)
    assert "backup: 4 backups taken" in log.read_text()
    checked = nndb(db_stack, "backup", "schedule", "check", "local-db", *options)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "scheduled runs: 1 recorded (0 failed)" in nndb(db_stack, "backup", "list", "local-db").stdout

    # The last scheduled run was two days ago: cron stopped.
    runs_file = db_stack.backup_dir / "local-db" / "schedule.json"
    runs = json.loads(runs_file.read_text())
    runs["runs"][-1]["started_at"] = (datetime.fromisoformat(runs["runs"][-1]["started_at"]) - timedelta(days=2)).isoformat()
    runs_file.write_text(json.dumps(runs))
    stopped = nndb(db_stack, "backup", "schedule", "check", "local-db", *options)
    assert stopped.returncode == ScheduleError.exit_code and "is cron running?" in stopped.stderr
    assert len(stopped.stderr.splitlines()) == 1

    # The config's schedule changed: the installed entry is stale until installed again.
    config = db_stack.project / "config" / "local.toml"
    config.write_text(config.read_text().replace('schedule = "0 2 * * *"', 'schedule = "15 3 * * *"'))
    stale = nndb(db_stack, "backup", "schedule", "check", "local-db", *options)
    assert stale.returncode == ScheduleError.exit_code and "stale" in stale.stderr
    assert nndb(db_stack, "backup", "schedule", "install", "local-db", *options).returncode == 0
    assert entry.read_text().count("15 3 * * * root ") == 1
