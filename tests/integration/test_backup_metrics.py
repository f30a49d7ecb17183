"""nndb-<stack>-backup.prom (monitoring/README.md's contract) from `nndb backup run|verify --textfile-dir`, real servers."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb, run_in_process

pytestmark = pytest.mark.integration

SUBJECTS = {("postgres", "auth"), ("postgres", "portfolio"), ("timescale", "analytics")}


def samples(path: Path) -> dict[tuple[str, str, str], int]:
    found = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, labels = name_labels.split("{", 1)
        parts = dict(part.split("=", 1) for part in labels.rstrip("}").split(","))
        assert parts["stack"] == '"local-db"' and parts["kind"] == '"dump"'
        found[(name, parts["instance"].strip('"'), parts["database"].strip('"'))] = int(value)
    return found


def test_verify_and_run_write_the_metrics_file(db_stack: DbStack, tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile-collector"
    textfiles.mkdir()
    run_in_process(db_stack, hooks=("nndb_preflight", "nndb_init_sql", "nndb_apply_migrations"))  # no backup yet

    failed = nndb(db_stack, "backup", "verify", "local-db", "--textfile-dir", str(textfiles))
    assert failed.returncode == 7  # no backup: verify fails, and the file still says so (timestamp 0)
    written = textfiles / "nndb-local-db-backup.prom"
    assert {k[1:]: v for k, v in samples(written).items() if k[0] == "nndb_backup_last_verified_timestamp_seconds"} == dict.fromkeys(
        SUBJECTS, 0
    )

    before = int(datetime.now(UTC).timestamp()) - 5
    taken = nndb(db_stack, "backup", "run", "local-db", "--scheduled", "--textfile-dir", str(textfiles))
    assert taken.returncode == 0, taken.stderr
    assert f"backup: metrics written to {written}" in taken.stdout
    values = samples(written)
    for instance, database in SUBJECTS:
        assert values[("nndb_backup_last_verified_timestamp_seconds", instance, database)] >= before
        assert values[("nndb_backup_max_age_seconds", instance, database)] == 86400 + 3600  # local: daily at 02:00, plus grace
    assert oct(written.stat().st_mode & 0o777) == "0o644"
    assert not list(textfiles.glob(".*.tmp"))

    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is installed by scripts/setup.sh"
    checked = subprocess.run([promtool, "check", "metrics"], input=written.read_text(), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_textfile_dir_must_exist(db_stack: DbStack, tmp_path: Path) -> None:
    result = nndb(db_stack, "backup", "verify", "local-db", "--textfile-dir", str(tmp_path / "missing"))
    assert result.returncode == 2 and "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
