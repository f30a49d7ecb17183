"""Backups encrypted at rest (ADR-015), against real PostgreSQL: no cleartext in any file, restores through decryption,
a wrong key, a flipped byte and a truncated file each fail `nndb backup verify` with one line and exit 7.

The portfolio database gets enough rows for its dump to span several 1 MiB chunks, so pg_dump's
stream and pg_restore's stdin both cross chunk boundaries. Each test keeps its own catalog
(``--backup-dir``) on the module's servers.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from nexanest_db.backup_crypto import DEFAULT_CHUNK_SIZE, HEADER_SIZE, MAGIC, TAG_SIZE, BackupKey, decrypt_chunks
from nexanest_db.backups import Catalog, find_tool, verify_backup
from nexanest_db.errors import BackupError
from nexanest_db.operations.backup import backup_key, target_for
from nexanest_db.operations.backup import scratch_connector as _scratch_connector
from tests.fixtures.postgres_server import PG_MAJOR
from tests.fixtures.servers import DbStack
from tests.support.hooks import context_for, nndb, run_in_process, summaries
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

CANARY = f"NNDB-CLEARTEXT-CANARY-{secrets.token_hex(6)}"
KEY = BackupKey(STACK_PASSWORDS["BACKUP_ENCRYPTION_KEY"])
OTHER_KEY = "another-backup-key-SENTINEL-4c7e19a2"
SEALED_CHUNK = DEFAULT_CHUNK_SIZE + TAG_SIZE


@pytest.fixture(scope="module")
def deployed(module_db_stack: DbStack) -> DbStack:
    run_in_process(module_db_stack)
    with module_db_stack.postgres.connect("portfolio") as conn:
        conn.execute("INSERT INTO portfolio.portfolios (owner_user_id, name) VALUES (-1, %s)", (CANARY,))
        # Hex text compresses about 2:1 in pg_dump -Fc: a dump of a few MiB, so several chunks.
        conn.execute(
            "INSERT INTO portfolio.portfolios (owner_user_id, name) "
            "SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 60000) g"
        )
    return module_db_stack


def backup_run(stack: DbStack, backup_dir: Path, **env: str) -> dict:
    # --no-redis: these are the dumps' tests (tests/integration/test_redis_backup.py checks the Redis snapshot's encryption)
    result = nndb(stack, "backup", "run", "local-db", "--no-redis", "--backup-dir", str(backup_dir), environ=stack.environ | env)
    assert result.returncode == 0, result.stderr
    return json.loads((backup_dir / "local-db" / "catalog.json").read_text())


def verify(stack: DbStack, backup_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return nndb(stack, "backup", "verify", "local-db", "--backup-dir", str(backup_dir), environ=stack.environ | env)


def latest(entries: dict, subject: str) -> dict:
    return max((b for b in entries["backups"] if b["subject"] == subject), key=lambda b: b["taken_at"])


def rewrite(backup_dir: Path, record: dict, data: bytes, *, update_checksum: bool) -> Path:
    """Put ``data`` in place of the record's file; optionally make the catalog believe it (to reach the decryption)."""
    path = backup_dir / "local-db" / record["file"]
    path.write_bytes(data)
    if update_checksum:
        catalog_file = backup_dir / "local-db" / "catalog.json"
        entries = json.loads(catalog_file.read_text())
        for entry in entries["backups"]:
            if entry["id"] == record["id"]:
                entry["sha256"] = hashlib.sha256(data).hexdigest()
        catalog_file.write_text(json.dumps(entries))
    return path


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == BackupError.exit_code, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    for value in (KEY.secret, OTHER_KEY, *STACK_PASSWORDS.values()):
        assert value not in result.stdout + result.stderr
    return line


def no_scratch_databases(stack: DbStack) -> bool:
    with stack.postgres.connect() as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'nndb_verify_%%'").fetchone() == (0,)


def test_backup_files_hold_no_cleartext_and_restore_it(deployed: DbStack, tmp_path: Path) -> None:
    entries = backup_run(deployed, tmp_path)
    stack_dir = tmp_path / "local-db"
    files = sorted(p for p in stack_dir.rglob("*") if p.is_file())
    dumps = [p for p in files if p.name.endswith(".dump.enc")]
    assert len(dumps) == 3
    assert {p.name for p in files} - {p.name for p in dumps} == {"catalog.json", ".catalog.lock"}, "no cleartext or partial file left"
    for path in files:
        data = path.read_bytes()
        assert CANARY.encode() not in data and b"PGDMP" not in data and KEY.secret.encode() not in data, path.name
    for record in entries["backups"]:
        path = stack_dir / record["file"]
        assert record["encrypted"] is True and record["key_id"] == KEY.key_id
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and record["size"] == path.stat().st_size
        assert path.read_bytes().startswith(MAGIC)
    portfolio = latest(entries, "postgres/portfolio")
    assert portfolio["size"] > HEADER_SIZE + SEALED_CHUNK, "the portfolio dump spans several chunks"
    assert portfolio["row_counts"]["portfolio.portfolios"] == 60001

    # The plaintext does hold the canary (so the scan above means something): decrypted in memory into
    # pg_restore, which writes the archive out as SQL to a pipe.
    restore_sql = subprocess.Popen(
        [find_tool("pg_restore", PG_MAJOR), "--data-only", "--file=-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    with (stack_dir / portfolio["file"]).open("rb") as source:
        plaintext = b"".join(decrypt_chunks(source, KEY))
    sql_text, _ = restore_sql.communicate(plaintext)
    assert restore_sql.returncode == 0 and CANARY.encode() in sql_text

    # verify's restore (decrypting into pg_restore's stdin) brings the canary row back in the scratch database.
    context = context_for(deployed, backup_dir=tmp_path, run_lock=False)
    found: list[int] = []
    connect = _scratch_connector(context, "postgres")

    def connect_and_look(name: str):
        conn = connect(name)
        found.append(conn.execute("SELECT count(*) FROM portfolio.portfolios WHERE name = %s", (CANARY,)).fetchone()[0])
        return conn

    try:
        catalog = Catalog.load(context.backup_dir, "local-db")
        record = catalog.latest("postgres/portfolio")
        assert record is not None
        detail = verify_backup(
            context.pg("postgres"),
            record=record,
            catalog=catalog,
            target=target_for(context, "postgres"),
            pg_restore=find_tool("pg_restore", PG_MAJOR),
            sql_dir=context.paths.sql_dir,
            connect_scratch=connect_and_look,
            key=backup_key(context),
        )
    finally:
        context.close()
    assert found == [1], "the canary row is back after the restore"
    assert detail.endswith(" rows") and "tables" in detail

    result = verify(deployed, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" restored: ") == 3
    listing = nndb(deployed, "backup", "list", "local-db", "--backup-dir", str(tmp_path))
    assert listing.stdout.count(f"verified, encrypted (key id {KEY.key_id})") == 3
    assert no_scratch_databases(deployed)


def test_verify_with_another_key_fails_in_one_line_and_a_deploy_re_takes_the_backups(deployed: DbStack, tmp_path: Path) -> None:
    backup_run(deployed, tmp_path)
    other = BackupKey(OTHER_KEY)
    line = one_error_line(verify(deployed, tmp_path, BACKUP_ENCRYPTION_KEY=OTHER_KEY))
    assert line.startswith("nndb: error: backup verify: 3 of 3 latest backups cannot be restored — first: postgres/auth: backup file ")
    assert ".dump.enc: the backup key does not match: the file is encrypted with a different key " in line
    assert f"(key id {KEY.key_id}; the current key's id is {other.key_id}); the current key comes from $BACKUP_ENCRYPTION_KEY" in line
    assert no_scratch_databases(deployed)

    # The hooks with the new key (a key rotation): each database gets a backup the new key restores.
    report = run_in_process(
        deployed,
        hooks=("nndb_preflight", "nndb_register_backups"),
        environ=deployed.environ | {"BACKUP_ENCRYPTION_KEY": OTHER_KEY},
        backup_dir=tmp_path,
    )
    taken = [c for c in summaries(report) if "taken and proven by restore" in c]  # (the rest: registration, new to this catalog)
    assert len(taken) == 3 and all(c.endswith("; the previous one is encrypted with another key") for c in taken), taken
    assert verify(deployed, tmp_path, BACKUP_ENCRYPTION_KEY=OTHER_KEY).returncode == 0
    assert "different key" in one_error_line(verify(deployed, tmp_path))  # and now the old key is the wrong one


def test_a_flipped_byte_and_a_truncated_file_fail_verify(deployed: DbStack, tmp_path: Path) -> None:
    entries = backup_run(deployed, tmp_path)
    record = latest(entries, "postgres/portfolio")
    path = tmp_path / "local-db" / record["file"]
    original = path.read_bytes()

    flipped = bytearray(original)
    flipped[HEADER_SIZE + SEALED_CHUNK + 1000] ^= 0x40  # inside chunk 1
    rewrite(tmp_path, record, bytes(flipped), update_checksum=False)
    assert "postgres/portfolio: backup" in (line := one_error_line(verify(deployed, tmp_path))) and "checksum" in line
    rewrite(tmp_path, record, bytes(flipped), update_checksum=True)  # the catalog believes it: the decryption must notice
    line = one_error_line(verify(deployed, tmp_path))
    assert f"postgres/portfolio: backup file {path}: authentication failed at chunk 1; the file was altered or truncated" in line

    rewrite(tmp_path, record, original[: HEADER_SIZE + SEALED_CHUNK + 500], update_checksum=True)  # cut inside chunk 1
    line = one_error_line(verify(deployed, tmp_path))
    assert f"postgres/portfolio: backup file {path}: authentication failed at chunk 1;" in line

    rewrite(tmp_path, record, original[: HEADER_SIZE + 2 * SEALED_CHUNK], update_checksum=True)  # cut at a chunk boundary
    line = one_error_line(verify(deployed, tmp_path))
    assert f"postgres/portfolio: backup file {path}: authentication failed at chunk 2 (file truncated);" in line

    assert no_scratch_databases(deployed)
    rewrite(tmp_path, record, original, update_checksum=True)
    assert verify(deployed, tmp_path).returncode == 0


def test_an_unencrypted_backup_from_before_still_verifies_and_is_replaced(deployed: DbStack, tmp_path: Path) -> None:
    """Catalog entries written before encryption at rest (a cleartext .dump, no encrypted/key_id fields)."""
    entries = backup_run(deployed, tmp_path)
    catalog_file = tmp_path / "local-db" / "catalog.json"
    for record in entries["backups"]:
        encrypted = tmp_path / "local-db" / record["file"]
        with encrypted.open("rb") as source:
            archive = b"".join(decrypt_chunks(source, KEY))
        legacy = encrypted.with_name(encrypted.name.removesuffix(".enc"))
        legacy.write_bytes(archive)  # what an older nndb left on disk
        encrypted.unlink()
        record.update(file=str(legacy.relative_to(tmp_path / "local-db")), sha256=hashlib.sha256(archive).hexdigest(), size=len(archive))
        del record["encrypted"], record["key_id"]
    catalog_file.write_text(json.dumps(entries | {"version": 1}))

    result = verify(deployed, tmp_path, BACKUP_ENCRYPTION_KEY=OTHER_KEY)  # no key is needed to read them
    assert result.returncode == 0, result.stdout + result.stderr
    assert nndb(deployed, "backup", "list", "local-db", "--backup-dir", str(tmp_path)).stdout.count("verified, unencrypted") == 3

    report = run_in_process(deployed, hooks=("nndb_preflight", "nndb_register_backups"), backup_dir=tmp_path)
    taken = [c for c in summaries(report) if "taken and proven by restore" in c]
    assert len(taken) == 3 and all(c.endswith("; the previous one is unencrypted") for c in taken), taken
    assert all(latest(json.loads(catalog_file.read_text()), s)["encrypted"] for s in ("postgres/auth", "postgres/portfolio"))
    assert verify(deployed, tmp_path).returncode == 0
