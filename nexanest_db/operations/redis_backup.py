"""Redis: an RDB snapshot per ``nndb backup run``, encrypted like the dumps, proven, restorable into the live server.

Take: ``redis-cli --rdb -`` (the replication protocol: the server forks a snapshot and streams it;
nothing runs inside the container, no file is left on the server) encrypted on its way into the
backup directory, ``redis/dataset/<UTC timestamp>.rdb.enc``. The default user's password reaches
redis-cli through ``REDISCLI_AUTH``, never argv.

Verify: the decrypted stream goes into ``redis-check-rdb``'s stdin (Debian's redis-tools): the
snapshot's checksum and every record are read; the key count it reports is the record's.

Restore (``nndb backup restore <stack> redis``), into the running server, without stopping it:
1. the backup is authenticated end to end; other clients refuse the restore unless ``--force``,
   which disconnects them (``CLIENT KILL TYPE normal SKIPME yes``);
2. a fresh snapshot of the current data is taken and proven first (the way back);
3. a scratch ``redis-server`` (same binary as redis-check-rdb) loads the backup from a named pipe
   the decrypted stream is written into: no cleartext touches the disk; it listens only on a unix
   socket in a private temporary directory;
4. every key is copied with ``DUMP`` (scratch) / ``RESTORE ... REPLACE`` (live, the key's remaining
   TTL kept), then the live keys the backup does not have are deleted; the key count per database
   is compared.
ACL users are not data (the aclfile on the volume keeps them): a restore leaves them as they are.
With ``appendonly yes`` the server logs the writes to its AOF as it would any others.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from nexanest_db.backup_crypto import BackupKey, decrypt_chunks
from nexanest_db.backups import REDIS_SUFFIX, BackupRecord, Catalog, dump_encrypted, mark_verified
from nexanest_db.context import HookContext
from nexanest_db.errors import BackupError, DecryptionError, RestoreError
from nexanest_db.operations.backup import backup_key
from nexanest_db.operations.restore import Report, Steps, authenticate_file, choose_backup
from nexanest_db.roles import REDIS_DEFAULT_SECRET

REDIS_SUBJECT = "redis/dataset"
REDIS_NAMES = ("redis", REDIS_SUBJECT)
_KEYS_READ = re.compile(r"\[info\] (\d+) keys read")
_BATCH = 500


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if found is None:
        raise BackupError(f"{name} not found (Redis backups need it here); install it: apt-get install -y redis-tools")
    return found


def _cli_env(context: HookContext) -> dict[str, str]:
    env = {k: v for k, v in context.tool_environ.items() if not k.startswith("REDISCLI_")}  # handed down by the edge
    env["REDISCLI_AUTH"] = context.password(REDIS_DEFAULT_SECRET)
    return env


def take_redis_backup(context: HookContext, catalog: Catalog, *, verify: bool = True) -> tuple[BackupRecord, str]:
    """Snapshot the stack's Redis into the catalog (encrypted) and, by default, prove it with redis-check-rdb."""
    key = backup_key(context)
    endpoint = context.endpoints.redis
    version = str(context.redis().info("server").get("redis_version", ""))
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    relative = f"{REDIS_SUBJECT}/{stamp}{REDIS_SUFFIX}"
    path = catalog.directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [_tool("redis-cli"), "-h", endpoint.host, "-p", str(endpoint.port), "--user", "default", "--no-auth-warning"]
    tls = context.client_tls()
    if tls is not None:
        argv += ["--tls", "--cacert", str(tls.rootcert)]
    digest, size = dump_encrypted([*argv, "--rdb", "-"], _cli_env(context), path, key, f"redis-cli --rdb of {REDIS_SUBJECT}")
    record = BackupRecord(
        id=f"{stamp}-redis-dataset",
        subject=REDIS_SUBJECT,
        file=relative,
        sha256=digest,
        size=size,
        taken_at=now.isoformat(timespec="microseconds"),
        server_version=version,
        row_counts={},
        encrypted=True,
        key_id=key.key_id,
    )
    catalog.backups.append(record)
    if not verify:
        return record, "not verified"
    return record, verify_redis_backup(context, catalog, record)


def verify_redis_backup(context: HookContext, catalog: Catalog, record: BackupRecord) -> str:
    """Decrypt ``record`` into ``redis-check-rdb``; the outcome (and the key count) is written into the record."""
    try:
        path = catalog.local_file(record)
        if not path.is_file():
            raise BackupError(f"{REDIS_SUBJECT}: backup {record.id} is missing its file {path}; run `nndb backup run {catalog.stack}`")
        process = subprocess.Popen(
            [_tool("redis-check-rdb"), "/dev/stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        key = backup_key(context) if record.encrypted else None  # an unencrypted record is read as it is
        output = _feed(process, path, key, f"{REDIS_SUBJECT}: backup file {path}")
        match = _KEYS_READ.search(output)
        if process.returncode != 0 or "RDB looks OK" not in output or match is None:
            lines = [line for line in output.splitlines() if "error" in line.lower() or "fail" in line.lower()]
            raise BackupError(f"{REDIS_SUBJECT}: backup {record.id} is not a readable RDB snapshot ({(lines or ['no detail'])[0].strip()})")
    except BackupError as exc:
        mark_verified(record, ok=False, detail=str(exc))
        raise
    record.row_counts = {"keys": int(match[1])}
    detail = f"RDB checked, {match[1]} keys"
    mark_verified(record, ok=True, detail=detail)
    return detail


def _feed(process: subprocess.Popen[bytes], path: Path, key: BackupKey | None, label: str) -> str:
    """Decrypt ``path`` into the process's stdin; its combined output once it exits."""
    assert process.stdin is not None and process.stdout is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: process.stdout.read(4096), b"")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        with path.open("rb") as source:
            blocks = decrypt_chunks(source, key) if key is not None else iter(lambda: source.read(1 << 20), b"")
            for plaintext in blocks:
                process.stdin.write(plaintext)
    except DecryptionError as exc:
        process.kill()
        process.wait()
        raise BackupError(f"{label}: {exc}; the file was altered or truncated, take a new backup (`nndb backup run`)") from None
    except BrokenPipeError:
        pass
    finally:
        with suppress(BrokenPipeError):
            process.stdin.close()
    process.wait()
    reader.join(10)
    return b"".join(chunks).decode("utf-8", "replace")


# --- restore ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RedisRestoreResult:
    restored: BackupRecord
    fresh: BackupRecord
    keys: int
    removed: int


@contextmanager
def _scratch_server(path: Path, key: BackupKey, label: str, timeout_s: float = 60.0) -> Iterator[redis.Redis]:
    """A private redis-server that loaded ``path`` (decrypted through a named pipe, never onto the disk)."""
    work = Path(tempfile.mkdtemp(prefix="nndb-redis-restore-"))
    work.chmod(0o700)
    fifo, sock, log = work / "dump.rdb", work / "redis.sock", work / "redis.log"
    os.mkfifo(fifo, 0o600)
    argv = ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--dir", str(work)]
    argv += ["--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--logfile", str(log), "--protected-mode", "yes"]
    process = subprocess.Popen(argv, executable=_tool("redis-check-rdb"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        try:
            fd = _open_fifo(fifo, process, timeout_s)
            with os.fdopen(fd, "wb") as sink, path.open("rb") as source:
                for plaintext in decrypt_chunks(source, key):
                    sink.write(plaintext)
        except DecryptionError as exc:
            raise RestoreError(f"{label}: {exc}") from None
        except BrokenPipeError:
            pass
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RestoreError(f"{label}: the scratch redis-server could not load it ({_last(log)})")
            try:
                if stat.S_ISSOCK(sock.stat().st_mode) and client.ping():
                    break
            except (OSError, redis.RedisError):
                pass
            if time.monotonic() > deadline:
                raise RestoreError(f"{label}: the scratch redis-server did not load it within {timeout_s:g}s ({_last(log)})")
            time.sleep(0.05)
        try:
            yield client
        finally:
            client.close()
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)


def _open_fifo(fifo: Path, process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """Open the pipe for writing once the server opened it for reading (bounded: it may fail first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RestoreError("the scratch redis-server did not start (is redis-tools installed?)") from None
            time.sleep(0.02)


def _last(log: Path) -> str:
    with suppress(OSError):
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1].split("* ", 1)[-1].strip()
    return "no log"


def _databases(client: redis.Redis) -> dict[int, int]:
    info = client.info("keyspace")
    return {int(name[2:]): int(value["keys"]) for name, value in info.items() if name.startswith("db")}


def other_clients(live: redis.Redis, own: set[int]) -> dict[int, str]:
    """id -> description of every normal client but this run's own connections."""
    return {
        int(c["id"]): f"id {c['id']} ({_text(c.get('user', '?'))}, {_text(c.get('addr', '?'))})"
        for c in live.client_list(_type="normal")
        if int(c["id"]) not in own
    }


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def copy_dataset(scratch: redis.Redis, live: redis.Redis) -> tuple[int, int]:
    """Every key of ``scratch`` into ``live`` (DUMP/RESTORE REPLACE, TTLs kept); live keys it lacks are deleted.

    Returns (keys copied, keys removed). One connection for the live side (SELECT travels with it).
    """
    copied = removed = 0
    wanted = _databases(scratch)
    present = _databases(live)
    for db in sorted(set(wanted) | set(present)):
        scratch.execute_command("SELECT", db)
        keys: set[bytes] = set()
        batch: list[bytes] = []
        for name in scratch.scan_iter(count=1000):
            batch.append(name)
            if len(batch) >= _BATCH:
                copied += _restore_batch(scratch, live, db, batch)
                keys.update(batch)
                batch = []
        if batch:
            copied += _restore_batch(scratch, live, db, batch)
            keys.update(batch)
        removed += _remove_others(live, db, keys)
    scratch.execute_command("SELECT", 0)
    return copied, removed


def _restore_batch(scratch: redis.Redis, live: redis.Redis, db: int, names: list[bytes]) -> int:
    read = scratch.pipeline(transaction=False)
    for name in names:
        read.pttl(name)
        read.dump(name)
    answers = read.execute()
    write = live.pipeline(transaction=False)
    write.execute_command("SELECT", db)
    count = 0
    for name, ttl, payload in zip(names, answers[0::2], answers[1::2], strict=True):
        if payload is None:
            continue  # expired between SCAN and DUMP
        write.execute_command("RESTORE", name, max(int(ttl), 0), payload, "REPLACE")
        count += 1
    write.execute_command("SELECT", 0)
    write.execute()
    return count


def _remove_others(live: redis.Redis, db: int, keep: set[bytes]) -> int:
    pipe = live.pipeline(transaction=False)
    pipe.execute_command("SELECT", db)
    pipe.execute_command("SCAN", 0, "COUNT", 1000)
    pipe.execute_command("SELECT", 0)
    cursor, names = pipe.execute()[1]
    removed = 0
    while True:
        extra = [n for n in names if (n.encode() if isinstance(n, str) else n) not in keep]
        cursor_int = int(cursor)
        step = live.pipeline(transaction=False)
        step.execute_command("SELECT", db)
        if extra:
            step.execute_command("UNLINK", *extra)
        if cursor_int != 0:
            step.execute_command("SCAN", cursor_int, "COUNT", 1000)
        step.execute_command("SELECT", 0)
        answers = step.execute()
        removed += len(extra)
        if cursor_int == 0:
            return removed
        cursor, names = answers[-2]


def live_client(context: HookContext) -> redis.Redis:
    """A binary-safe client for the live server (DUMP payloads are bytes), authenticated like the run's."""
    context.redis()  # checks the password and TLS with one clear line on failure
    tls = context.client_tls()
    return redis.Redis(
        **(tls.redis_kwargs() if tls is not None else {}),
        host=context.endpoints.redis.host,
        port=context.endpoints.redis.port,
        username="default",
        password=context.password(REDIS_DEFAULT_SECRET),
        socket_connect_timeout=context.connect_timeout_s,
        socket_timeout=max(60.0, context.connect_timeout_s),
        single_connection_client=True,
    )


def restore_redis(
    context: HookContext,
    catalog: Catalog,
    *,
    report: Report,
    backup_id: str | None = None,
    before: datetime | None = None,
    force: bool = False,
) -> RedisRestoreResult:
    """Put a Redis backup back into the live server (see the module docstring). The caller holds the catalog lock."""
    steps = Steps(report)
    key = backup_key(context)
    with steps.step("chose backup") as detail:
        record = choose_backup(catalog, REDIS_SUBJECT, backup_id=backup_id, before=before)
        path = authenticate_file(catalog, record, key)
        detail.append(f"{record.id} taken {record.taken_at}, {record.row_counts.get('keys', '?')} keys, file authenticated")
    live = live_client(context)
    try:
        with steps.step("checked clients") as detail:
            others = other_clients(live, {int(live.client_id()), int(context.redis().client_id())})
            if others and not force:
                raise RestoreError(
                    f"{REDIS_SUBJECT}: {len(others)} client(s) connected ({', '.join(list(others.values())[:3])}); stop the services "
                    "or pass --force to disconnect them; nothing was changed"
                )
            for client_id in others:
                with suppress(redis.RedisError):  # it may have left by itself
                    live.execute_command("CLIENT", "KILL", "ID", client_id)
            detail.append(f"{len(others)} connected" + (" (--force: disconnected)" if others else ""))
        with steps.step("fresh backup of the live data") as detail:
            try:
                fresh, proof = take_redis_backup(context, catalog)
            finally:
                catalog.save()
            detail.append(f"{fresh.id}, {proof}")
        label = f"{REDIS_SUBJECT}: backup file {path}"
        with ExitStack() as scratch_server:
            with steps.step("loaded into a scratch redis-server") as detail:
                scratch = scratch_server.enter_context(_scratch_server(path, key, label))
                wanted = _databases(scratch)
                detail.append(f"{sum(wanted.values())} keys in {len(wanted)} database(s)")
            with steps.step("copied into the live server") as copy_detail:
                try:
                    copied, removed = copy_dataset(scratch, live)
                except redis.RedisError as exc:
                    raise RestoreError(
                        f"{REDIS_SUBJECT}: the copy stopped halfway ({exc}); the live data is mixed: run "
                        f"`nndb backup restore {context.stack} redis --backup {fresh.id} --force` to go back"
                    ) from None
                copy_detail.append(f"{copied} keys restored (TTLs kept), {removed} keys not in the backup removed")
        with steps.step("compared key counts") as detail:
            now = _databases(live)
            if {db: n for db, n in now.items() if n} != {db: n for db, n in wanted.items() if n}:
                raise RestoreError(
                    f"{REDIS_SUBJECT}: after the copy the live key counts {now} differ from the backup's {wanted} "
                    "(a client wrote meanwhile, or keys expired); check and run the restore again"
                )
            detail.append(", ".join(f"db{db}: {n}" for db, n in sorted(now.items())) or "empty")
    finally:
        live.close()
    return RedisRestoreResult(restored=record, fresh=fresh, keys=copied, removed=removed)


def export_redis(context: HookContext, catalog: Catalog, record: BackupRecord, output: Path) -> int:
    """A plain RDB file at ``output`` (0600, never over an existing file), checked by redis-check-rdb; its size.

    What an operator puts in a stopped server's data directory as ``dump.rdb`` (with ``appendonly no``
    for that first start), or hands to any RDB tool.
    """
    source = authenticate_file(catalog, record, backup_key(context))
    if output.exists() or output.is_symlink():
        raise RestoreError(f"{output}: already exists; name a new file (export never overwrites)")
    if not output.parent.is_dir():
        raise RestoreError(f"{output.parent}: no such directory; create it first")
    partial = output.with_name(f".{output.name}.partial")
    size = 0
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle, source.open("rb") as encrypted:
            for plaintext in decrypt_chunks(encrypted, backup_key(context)):
                handle.write(plaintext)
                size += len(plaintext)
        check = subprocess.run([_tool("redis-check-rdb"), str(partial)], capture_output=True, text=True, check=False)
        if check.returncode != 0 or "RDB looks OK" not in check.stdout:
            raise RestoreError(f"{output}: redis-check-rdb cannot read the exported snapshot")
        os.replace(partial, output)
    except (DecryptionError, OSError) as exc:
        raise RestoreError(f"{output}: cannot export ({exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    return size
