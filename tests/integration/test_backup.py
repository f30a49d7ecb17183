"""Backups: registration takes a first backup proven by a restore; verify fails loudly on a bad dump."""

from __future__ import annotations

import io
import json

import pytest

from nexanest_db.backup_crypto import BackupKey, decrypt_stream, encrypt_stream
from nexanest_db.errors import BackupError
from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb, run_in_process, summaries

pytestmark = pytest.mark.integration


@pytest.fixture
def deployed(db_stack: DbStack) -> DbStack:
    run_in_process(db_stack)
    return db_stack


def catalog(db_stack: DbStack) -> dict:
    return json.loads((db_stack.backup_dir / "local-db" / "catalog.json").read_text())


def test_registration_is_recorded_and_idempotent(deployed: DbStack) -> None:
    first = catalog(deployed)
    assert {b["subject"] for b in first["backups"]} == {"postgres/auth", "postgres/portfolio", "timescale/analytics"}
    assert all(b["verified"] and b["row_counts"] for b in first["backups"])
    assert summaries(run_in_process(deployed, hooks=("nndb_preflight", "nndb_register_backups"))) == []
    assert catalog(deployed) == first

    # A policy change in config is recorded (no new backup needed: the existing one is proven).
    config = deployed.project / "config" / "local.toml"
    config.write_text(config.read_text().replace("retention_days = 3", "retention_days = 5"))
    changes = summaries(run_in_process(deployed, hooks=("nndb_preflight", "nndb_register_backups")))
    assert changes == [
        "postgres/auth: backup policy updated (0 2 * * *, keep 5 d, PITR off)",
        "postgres/portfolio: backup policy updated (0 2 * * *, keep 5 d, PITR off)",
        "timescale/analytics: backup policy updated (0 2 * * *, keep 5 d, PITR off)",
    ]


def test_backup_run_captures_data_and_verify_restores_it(deployed: DbStack) -> None:
    with deployed.postgres.connect("portfolio") as conn:
        conn.execute("INSERT INTO portfolio.portfolios (owner_user_id, name) SELECT g, 'p' || g FROM generate_series(1, 250) g")
    result = nndb(deployed, "backup", "run", "local-db")
    assert result.returncode == 0, result.stderr
    assert "backup: 4 backups taken" in result.stdout  # 3 databases and Redis
    latest = max((b for b in catalog(deployed)["backups"] if b["subject"] == "postgres/portfolio"), key=lambda b: b["taken_at"])
    assert latest["row_counts"]["portfolio.portfolios"] == 250
    verify = nndb(deployed, "backup", "verify", "local-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "postgres/portfolio" in verify.stdout and "restored" in verify.stdout
    listing = nndb(deployed, "backup", "list", "local-db")
    assert "backup: 3 databases registered, 7 backups" in listing.stdout
    with deployed.postgres.connect() as conn:  # scratch databases are always dropped
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'nndb_verify_%%'").fetchone() == (0,)


def test_verify_exits_non_zero_when_the_latest_backup_cannot_be_restored(deployed: DbStack) -> None:
    latest = max((b for b in catalog(deployed)["backups"] if b["subject"] == "postgres/auth"), key=lambda b: b["taken_at"])
    dump = deployed.backup_dir / "local-db" / latest["file"]
    original = dump.read_bytes()
    dump.write_bytes(original[: len(original) // 2])  # truncated on its way to storage
    result = nndb(deployed, "backup", "verify", "local-db")
    assert result.returncode == BackupError.exit_code
    assert "backup verify: 1 of 3 latest backups cannot be restored" in result.stderr
    assert "postgres/auth: backup" in result.stderr and "checksum" in result.stderr

    # Same file, but the catalog believes it (checksum updated): decryption notices the missing tail.
    entries = catalog(deployed)
    import hashlib

    def believe(data: bytes) -> None:
        dump.write_bytes(data)
        for b in entries["backups"]:
            if b["id"] == latest["id"]:
                b["sha256"] = hashlib.sha256(data).hexdigest()
        (deployed.backup_dir / "local-db" / "catalog.json").write_text(json.dumps(entries))

    believe(dump.read_bytes())
    result = nndb(deployed, "backup", "verify", "local-db")
    assert result.returncode == BackupError.exit_code
    assert f"postgres/auth: backup file {dump}: authentication failed at chunk 0;" in result.stderr

    # A correctly encrypted but broken archive (half a pg_dump file): the restore itself must fail.
    key = BackupKey(deployed.environ["BACKUP_ENCRYPTION_KEY"])
    archive = io.BytesIO()
    decrypt_stream(io.BytesIO(original), archive, key)
    broken = io.BytesIO()
    encrypt_stream(io.BytesIO(archive.getvalue()[: len(archive.getvalue()) // 2]), broken, key)
    believe(broken.getvalue())
    result = nndb(deployed, "backup", "verify", "local-db")
    assert result.returncode == BackupError.exit_code
    assert "restore of postgres/auth backup" in result.stderr
    with deployed.postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'nndb_verify_%%'").fetchone() == (0,)
    # The hooks notice the latest verified backup is gone bad? No: registration keeps the last *verified* one;
    # the failed verification is on record for `backup list`.
    assert "FAILED verification" in nndb(deployed, "backup", "list", "local-db").stdout
