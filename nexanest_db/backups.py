"""Backups: the catalog, ``pg_dump -Fc`` with consistent row counts, and restore-to-prove.

Layout under the stack's backup directory (``<project>/<backup.directory>/<stack>/`` or
``$NNDB_BACKUP_DIR/<stack>/``)::

    catalog.json                         # policy per database + every backup taken
    <instance>/<database>/<UTC timestamp>.dump.enc

Encrypted at rest (ADR-015): pg_dump writes to a pipe, ``nexanest_db.backup_crypto`` encrypts the
stream into the file (AES-256-GCM in chunks, key derived from the ``backup_encryption_key`` secret),
and a restore decrypts the file into pg_restore's stdin. No cleartext dump ever touches the disk.
The catalog records ``encrypted`` and the key's id; its ``sha256`` is over the encrypted file.
Entries written before encryption (``.dump``, ``encrypted`` absent) are still verified as they are.

A backup is taken inside one REPEATABLE READ snapshot that both ``pg_dump --snapshot`` and the
row counts use, so "restore and compare row counts" is an exact test. Verification restores the
dump into a scratch database on the same instance (``nndb_verify_<db>_<random>``), compares every
table's count, and drops the scratch database whatever happens.

Passwords reach pg_dump/pg_restore through ``PGPASSWORD`` in their environment, never argv.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TypeVar

import psycopg

from nexanest_db.backup_crypto import BackupKey, Encryptor, decrypt_chunks
from nexanest_db.config import BackupPolicy, HostPort
from nexanest_db.errors import BackupError, DecryptionError, KeyMismatchError
from nexanest_db.queries import compose_query, load_query
from nexanest_db.repository import bound, pull, push
from nexanest_db.roles import ServiceRoles

T = TypeVar("T")

CATALOG = "catalog.json"
CATALOG_VERSION = 2  # 2: backups carry ``encrypted`` and ``key_id`` (version 1 entries read as unencrypted)
ENCRYPTED_SUFFIX = ".dump.enc"
PIPE_BLOCK = 1 << 16


def policy_dict(policy: BackupPolicy) -> dict[str, object]:
    return {"schedule": policy.schedule, "retention_days": policy.retention_days, "pitr": policy.pitr}


@dataclass(kw_only=True)
class BackupRecord:
    id: str
    subject: str  # <instance>/<database>
    file: str  # relative to the stack's backup directory
    sha256: str
    size: int
    taken_at: str
    server_version: str
    row_counts: dict[str, int]
    verified_at: str | None = None
    verified: bool | None = None
    verify_detail: str | None = None
    encrypted: bool = False  # False: a cleartext dump from before encryption at rest (read-only compatibility)
    key_id: str | None = None  # BackupKey.key_id of the key it was encrypted with


@dataclass(kw_only=True)
class DatabaseEntry:
    subject: str
    service: str
    instance: str
    database: str
    policy: dict[str, object]
    registered_at: str


@dataclass(kw_only=True)
class Catalog:
    directory: Path
    stack: str
    databases: dict[str, DatabaseEntry] = field(default_factory=dict)
    backups: list[BackupRecord] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path, stack: str) -> Catalog:
        """The catalog in ``directory``, every record checked (types, dates, files confined to ``directory``)."""
        path = directory / CATALOG
        remote = bound(directory)
        if remote is not None and directory.resolve() not in _HELD:
            pull(directory, remote)  # a reader: the repository's catalog as it is now (a writer pulled under the lock)
        if not path.exists() and not path.is_symlink():
            return cls(directory=directory, stack=stack)
        if path.is_symlink() or not path.is_file():
            raise BackupError(f"{path}: not a regular file; the backup catalog must be a plain file, move it aside")
        try:
            if path.stat().st_size > MAX_CATALOG_BYTES:
                raise ValueError(f"larger than {MAX_CATALOG_BYTES // (1 << 20)} MiB")
            raw = json.loads(path.read_text(encoding="utf-8"))
            catalog = cls(directory=directory, stack=stack)
            if not isinstance(raw, dict):
                raise ValueError(f"expected a JSON object, found {type(raw).__name__}")
            databases, backups = raw.get("databases", {}), raw.get("backups", [])
            if not isinstance(databases, dict) or not isinstance(backups, list):
                raise ValueError("'databases' must be an object and 'backups' a list")
            for key, value in databases.items():
                catalog.databases[key] = _checked(DatabaseEntry, value, f"databases[{key!r}]")
            for index, value in enumerate(backups):
                record = _checked(BackupRecord, value, f"backups[{index}]")
                _check_record(record, f"backups[{index}] ({record.id})")
                catalog.backups.append(record)
            return catalog
        except OSError as exc:
            raise BackupError(f"{path}: cannot read the backup catalog ({exc.strerror}); check the directory's permissions") from None
        except UnicodeDecodeError:
            raise BackupError(f"{path}: unreadable backup catalog (not UTF-8 text); restore it from a copy or move it aside") from None
        except (ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split())
            raise BackupError(f"{path}: unreadable backup catalog ({reason}); restore it from a copy or move it aside") from None

    def save(self) -> None:
        payload = {
            "version": CATALOG_VERSION,
            "stack": self.stack,
            "databases": {k: asdict(v) for k, v in sorted(self.databases.items())},
            "backups": [asdict(b) for b in self.backups],
        }
        tmp = self.directory / f".{CATALOG}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, self.directory / CATALOG)  # atomic: a crash never leaves half a catalog
        except OSError as exc:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise BackupError(disk_error(self.directory / CATALOG, exc, "cannot write the backup catalog")) from None

    @contextmanager
    def saved_afterwards(self) -> Iterator[Catalog]:
        """Save when the block ends, failure included (a failed verification is recorded too); a save
        that fails after the block failed does not hide the block's own error."""
        try:
            yield self
        except BaseException:
            with suppress(BackupError):
                self.save()
            raise
        self.save()

    def latest(self, subject: str, *, verified_only: bool = False) -> BackupRecord | None:
        candidates = [b for b in self.backups if b.subject == subject and (b.verified or not verified_only)]
        return max(candidates, key=lambda b: b.taken_at, default=None)

    def path_of(self, record: BackupRecord) -> Path:
        """The record's file — only ever inside the backup directory (a catalog is data, not a list of paths to trust)."""
        _check_file(record.file, f"backup {record.id}")
        path = self.directory / record.file
        try:
            inside = path.resolve().is_relative_to(self.directory.resolve())
        except (OSError, RuntimeError):
            inside = False
        if not inside or path.is_symlink():
            raise BackupError(
                f"{self.directory / CATALOG}: backup {record.id}: file {record.file!r} leads outside {self.directory}; "
                "the catalog was tampered with: restore it from a copy or move it aside"
            )
        return path

    def local_file(self, record: BackupRecord) -> Path:
        """``path_of(record)``, fetched from the off-host repository first when this directory caches one."""
        path = self.path_of(record)
        remote = bound(self.directory)
        if remote is not None and not path.is_file():
            remote.download(record.file, path, record.sha256)
        return path


MAX_CATALOG_BYTES = 64 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def disk_error(path: Path, exc: OSError, what: str) -> str:
    """One line for a failed write: the path, the cause (disk full, read-only, ...), what to do."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EFBIG: "the file size limit was reached",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a part of the path is not a directory",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return f"{path}: {what}: {reason}; free space or fix the directory (or set --backup-dir / NNDB_BACKUP_DIR), then run again"


def _checked(kind: type[T], value: object, where: str) -> T:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    try:
        return kind(**value)
    except TypeError as exc:
        raise ValueError(f"{where}: {str(exc).split('__init__() ')[-1]}") from None


def _check_file(file: object, where: str) -> None:
    if not isinstance(file, str) or not file:
        raise BackupError(f"{where}: its file is not a path; the catalog was tampered with")
    parts = PurePosixPath(file).parts
    if file.startswith("/") or "\\" in file or ".." in parts or "." in parts or any(part.startswith(".") for part in parts):
        raise BackupError(
            f"{where}: file {file!r} leads outside the backup directory; the catalog was tampered with: restore it from a copy or move it aside"
        )


def _check_record(record: BackupRecord, where: str) -> None:
    for name in ("id", "subject", "file", "sha256", "taken_at", "server_version"):
        if not isinstance(getattr(record, name), str):
            raise ValueError(f"{where}: {name} must be a string")
    if "/" not in record.subject:
        raise ValueError(f"{where}: subject must be <instance>/<database>")
    if not _SHA256.match(record.sha256):
        raise ValueError(f"{where}: sha256 is not 64 hex digits")
    if not isinstance(record.size, int) or isinstance(record.size, bool) or record.size < 0:
        raise ValueError(f"{where}: size must be a non-negative integer")
    try:
        taken = datetime.fromisoformat(record.taken_at)
    except ValueError:
        raise ValueError(f"{where}: taken_at {record.taken_at!r} is not an ISO date and time") from None
    if taken.tzinfo is None:
        raise ValueError(f"{where}: taken_at {record.taken_at!r} has no time zone")
    if not isinstance(record.row_counts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in record.row_counts.items()
    ):
        raise ValueError(f"{where}: row_counts must map table names to integers")
    try:
        _check_file(record.file, where)
    except BackupError as exc:
        raise ValueError(str(exc).split(": ", 1)[1]) from None


@contextmanager
def catalog_lock(directory: Path) -> Iterator[None]:
    """One writer per stack's catalog at a time (a deploy's hooks vs. a scheduled `nndb backup run`)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / ".catalog.lock", "w")  # noqa: SIM115 -- closed by the with below
    except OSError as exc:
        raise BackupError(disk_error(directory, exc, "cannot create the backup directory's lock file")) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            remote = bound(directory)
            if remote is None:
                yield
            else:
                with remote.locked():
                    remote.remove_partials()
                    before = pull(directory, remote)
                    _HELD.add(directory.resolve())
                    try:
                        yield
                    except BaseException:
                        with suppress(BackupError):  # what the block recorded (a failed verification) still reaches the catalog
                            push(directory, remote, before)
                        raise
                    finally:
                        _HELD.discard(directory.resolve())
                    push(directory, remote, before)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD: set[Path] = set()  # local directories whose repository lock this process holds (their catalog was pulled under it)


# --- client tools -------------------------------------------------------------------------------

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


def find_tool(name: str, major: int) -> str:
    """``pg_dump``/``pg_restore`` of the server's major version (Debian: postgresql-client-<major>)."""
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/{name}"), shutil.which(name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, check=False).stdout
            match = _VERSION.search(out)
            if match and int(match[1]) == major:
                return str(candidate)
    raise BackupError(
        f"{name} {major} not found (the server is PostgreSQL {major}); install it: apt-get install -y postgresql-client-{major}"
    )


@dataclass(frozen=True, kw_only=True)
class PgTarget:
    """How client tools reach one database (the password goes to the child's environment only)."""

    endpoint: HostPort
    user: str
    password: str
    connect_timeout_s: float
    tls_env: Mapping[str, str] = field(default_factory=dict)  # PGSSLMODE/PGSSLROOTCERT when TLS is enabled
    base_env: Mapping[str, str] = field(default_factory=dict)  # the process environment, handed down by the edge

    def argv(self, database: str) -> list[str]:
        return [
            "--host",
            self.endpoint.host,
            "--port",
            str(self.endpoint.port),
            "--username",
            self.user,
            "--dbname",
            database,
            "--no-password",
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in self.base_env.items() if not k.startswith("PG")}  # no stray PGHOST/PGPASSFILE
        env.update(PGPASSWORD=self.password, PGCONNECT_TIMEOUT=str(max(2, round(self.connect_timeout_s))), PGAPPNAME="nndb-backup")
        env.update(self.tls_env)
        return env


def _first_line(stderr: str, returncode: int) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[0] if lines else f"exit code {returncode}"


def _run_tool(argv: list[str], target: PgTarget, what: str) -> None:
    result = subprocess.run(argv, env=target.env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what}: {_first_line(result.stderr, result.returncode)}")


class _StderrDrain:
    """Collects a child's stderr on a thread (in memory), so a full stderr pipe never blocks the stdin/stdout stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=lambda: self._chunks.extend(iter(lambda: stream.read(4096), b"")), daemon=True)
        self._thread.start()

    def text(self, timeout_s: float = 10.0) -> str:
        """What the child wrote, once it closed stderr (bounded: a stray grandchild may keep the pipe open)."""
        self._thread.join(timeout_s)
        return b"".join(self._chunks).decode("utf-8", "replace")


class _HashingWriter:
    """Writes to ``sink`` and keeps the sha256 and size of what went through (the encrypted bytes on disk)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def dump_encrypted(argv: list[str], env: Mapping[str, str], path: Path, key: BackupKey, what: str) -> tuple[str, int]:
    """Run ``argv`` (pg_dump, or redis-cli --rdb, to stdout) and encrypt its output into ``path``; return (sha256, size) of the file.

    The file appears under its name only when pg_dump succeeded and the last chunk is written;
    a failure leaves nothing behind.
    """
    partial = path.with_name(f".{path.name}.partial")
    process = subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, _StderrDrain(process.stderr)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            writer = _HashingWriter(handle)
            encryptor = Encryptor(writer, key)
            for block in iter(lambda: stdout.read(PIPE_BLOCK), b""):
                encryptor.write(block)
            returncode = process.wait()
            if returncode != 0:
                raise BackupError(f"{what}: {_first_line(stderr.text(), returncode)}")
            encryptor.close()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as exc:
        if process.poll() is None:
            process.kill()
            process.wait()
        partial.unlink(missing_ok=True)
        raise BackupError(disk_error(path, exc, f"{what}: cannot write the backup file")) from None
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        partial.unlink(missing_ok=True)
        raise
    finally:
        stdout.close()
    stderr.text()
    return writer.digest.hexdigest(), writer.size


def _restore_decrypted(argv: list[str], target: PgTarget, path: Path, key: BackupKey, what: str, file_label: str) -> None:
    """Decrypt ``path`` into the stdin of ``argv`` (pg_restore reading the archive from stdin).

    A chunk that fails authentication stops the restore at once: pg_restore is killed before it
    sees the end of its input, so its single transaction never commits.
    """
    process = subprocess.Popen(argv, env=target.env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    stderr = _StderrDrain(process.stderr)
    try:
        with path.open("rb") as source:
            for plaintext in decrypt_chunks(source, key):
                process.stdin.write(plaintext)
        process.stdin.close()
    except DecryptionError as exc:
        process.kill()  # before pg_restore reaches the end of its input: its transaction never commits
        process.wait()
        raise BackupError(f"{file_label}: {exc}") from None
    except BrokenPipeError:
        pass  # pg_restore stopped reading: its exit code and stderr say why
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if not process.stdin.closed:
            with suppress(BrokenPipeError):
                process.stdin.close()
    returncode = process.wait()
    errors = stderr.text()
    if returncode != 0:
        raise BackupError(f"{what}: {_first_line(errors, returncode)}")


# --- taking and verifying -----------------------------------------------------------------------


def _row_counts(conn: psycopg.Connection, sql_dir: Path) -> dict[str, int]:
    counts = {}
    for schema, table in conn.execute(load_query(sql_dir, "backup-tables")).fetchall():
        row = conn.execute(compose_query(sql_dir, "count-rows", table=(schema, table))).fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def take_backup(
    conn: psycopg.Connection,
    *,
    service: ServiceRoles,
    target: PgTarget,
    pg_dump: str,
    catalog: Catalog,
    sql_dir: Path,
    key: BackupKey,
) -> BackupRecord:
    """``pg_dump -Fc`` of the service database, encrypted on its way to disk, plus its row counts, from one snapshot."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    relative = f"{service.instance}/{service.database}/{stamp}{ENCRYPTED_SUFFIX}"
    path = catalog.directory / relative
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(disk_error(path.parent, exc, "cannot create the backup directory")) from None
    with conn.transaction():
        conn.execute(load_query(sql_dir, "snapshot-export"))
        row = conn.execute(load_query(sql_dir, "snapshot-id")).fetchone()
        snapshot = row[0] if row else ""
        counts = _row_counts(conn, sql_dir)
        argv = [pg_dump, "--format=custom", f"--snapshot={snapshot}", *target.argv(service.database)]  # the archive goes to stdout
        digest, size = dump_encrypted(argv, target.env(), path, key, f"pg_dump of {service.subject}")
    return BackupRecord(
        id=f"{stamp}-{service.instance}-{service.database}",
        subject=service.subject,
        file=relative,
        sha256=digest,
        size=size,
        taken_at=now.isoformat(timespec="microseconds"),
        server_version=conn.info.parameter_status("server_version") or "",
        row_counts=counts,
        encrypted=True,
        key_id=key.key_id,
    )


def readable_with(record: BackupRecord, key: BackupKey) -> bool:
    """Whether ``record`` is an encrypted backup the current key decrypts (what registration requires)."""
    return record.encrypted and record.key_id == key.key_id


def verify_backup(
    maintenance: psycopg.Connection,
    *,
    record: BackupRecord,
    catalog: Catalog,
    target: PgTarget,
    pg_restore: str,
    sql_dir: Path,
    connect_scratch: Callable[[str], psycopg.Connection],
    key: BackupKey | None,
) -> str:
    """Restore ``record`` into a scratch database and compare row counts; return a summary or raise BackupError.

    ``connect_scratch(name)`` opens a superuser connection to the scratch database. An encrypted
    backup is authenticated whole with ``key`` first (a wrong key, an altered or truncated file
    fail before anything is restored), then decrypted again into pg_restore's stdin. ``key`` may
    be ``None`` only for an unencrypted backup from before encryption at rest.
    """
    path = catalog.local_file(record)
    if not path.is_file():
        raise BackupError(f"{record.subject}: backup {record.id} is missing its file {path}; run `nndb backup run`")
    if _sha256(path) != record.sha256:
        raise BackupError(
            f"{record.subject}: backup {record.id} does not match its recorded checksum (file altered or truncated); run `nndb backup run`"
        )
    file_label = f"{record.subject}: backup file {path}"
    if record.encrypted:
        if key is None:
            raise ValueError("an encrypted backup needs its key")
        _authenticate(path, key, file_label)
    database = record.subject.split("/", 1)[1]
    scratch = f"nndb_verify_{database}_{secrets.token_hex(4)}"[:63]
    maintenance.execute(compose_query(sql_dir, "scratch-create", database=scratch))
    try:
        # TimescaleDB: pre_restore before and post_restore after pg_restore, where the instance runs it.
        row = maintenance.execute(load_query(sql_dir, "timescaledb-preloaded")).fetchone()
        if row and row[0]:
            with connect_scratch(scratch) as conn:
                conn.execute(load_query(sql_dir, "timescaledb-restore-begin"))
        what = f"restore of {record.subject} backup {record.id} into scratch database {scratch}"
        argv = [pg_restore, "--exit-on-error", "--single-transaction", *target.argv(scratch)]
        if key is not None and record.encrypted:
            _restore_decrypted(argv, target, path, key, what, file_label)  # the archive comes from stdin
        else:
            _run_tool([*argv, str(path)], target, what)
        with connect_scratch(scratch) as conn:
            conn.execute(load_query(sql_dir, "timescaledb-restore-end"))
            restored = _row_counts(conn, sql_dir)
    finally:
        maintenance.execute(compose_query(sql_dir, "scratch-drop", database=scratch))
    if restored != record.row_counts:
        diff = sorted(set(restored.items()) ^ set(record.row_counts.items()))
        raise BackupError(
            f"{record.subject}: backup {record.id} restored with different row counts ({diff[:3]}); the dump is not trustworthy"
        )
    return f"{len(restored)} tables, {sum(restored.values())} rows"


def _authenticate(path: Path, key: BackupKey, file_label: str) -> None:
    """Decrypt ``path`` end to end, discarding the plaintext: one line naming the file when it fails."""
    try:
        with path.open("rb") as source:
            for _ in decrypt_chunks(source, key):
                pass
    except KeyMismatchError as exc:
        raise BackupError(
            f"{file_label}: the backup key does not match: the file is {exc}; "
            f"the current key comes from {key.location}: supply the key it was taken with, or take a new backup (`nndb backup run`)"
        ) from None
    except DecryptionError as exc:
        raise BackupError(f"{file_label}: {exc}; the file was altered or truncated, take a new backup (`nndb backup run`)") from None


def mark_verified(record: BackupRecord, *, ok: bool, detail: str) -> None:
    record.verified = ok
    record.verified_at = datetime.now(UTC).isoformat(timespec="seconds")
    record.verify_detail = detail


# --- what a killed run leaves behind ----------------------------------------------------------

SCRATCH_PREFIX = "nndb_verify_"
REDIS_SUFFIX = ".rdb.enc"  # Redis RDB snapshots (nexanest_db.operations.redis_backup)
_DUMP_SUFFIXES = (ENCRYPTED_SUFFIX, ".dump", REDIS_SUFFIX)


def leftover_files(catalog: Catalog) -> list[Path]:
    """Files a killed run left in the backup directory: ``.partial`` dumps and dumps no catalog record names.

    Called with the catalog lock held (no other run of this stack writes now), so none of them is in use.
    """
    if not catalog.directory.is_dir():
        return []
    known = {catalog.directory / record.file for record in catalog.backups}
    found = []
    for path in sorted(catalog.directory.glob("*/*/*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.endswith(".partial") or (path.name.endswith(_DUMP_SUFFIXES) and path not in known):
            found.append(path)
    stale_tmp = catalog.directory / f".{CATALOG}.tmp"
    if stale_tmp.is_file():
        found.append(stale_tmp)
    return found


def remove_leftover_files(catalog: Catalog) -> list[str]:
    """Remove ``leftover_files``; return what was removed (relative to the backup directory)."""
    removed = []
    for path in leftover_files(catalog):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BackupError(disk_error(path, exc, "cannot remove a file a killed backup left behind")) from None
        removed.append(path.relative_to(catalog.directory).as_posix())
    return removed


def clean_leftovers(catalog: Catalog, instances: Mapping[str, psycopg.Connection], sql_dir: Path) -> list[tuple[str, str]]:
    """(subject, what) for every leftover of a killed run removed: files here, scratch databases on ``instances``."""
    cleaned = [(catalog.stack, f"removed {name} (left behind by an interrupted backup)") for name in remove_leftover_files(catalog)]
    for instance, maintenance in instances.items():
        for name in drop_leftover_scratch_databases(maintenance, sql_dir):
            cleaned.append((instance, f"dropped scratch database {name} (left behind by an interrupted verification)"))
    return cleaned


def drop_leftover_scratch_databases(maintenance: psycopg.Connection, sql_dir: Path) -> list[str]:
    """Drop ``nndb_verify_*`` databases nobody is connected to (a verification killed before its cleanup)."""
    rows = maintenance.execute(load_query(sql_dir, "scratch-leftovers")).fetchall()
    dropped = []
    for (name,) in rows:
        maintenance.execute(compose_query(sql_dir, "scratch-drop", database=name))
        dropped.append(name)
    return dropped
