"""Redis backups against a real redis-server: an encrypted RDB per `nndb backup run`, verified, restored into the live server.

The stack gets its own Redis (a restore rewrites the whole dataset; the session-wide server is shared).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nexanest_db.errors import RestoreError
from tests.fixtures.redis_server import RedisServer, start_redis
from tests.fixtures.servers import DbStack, running_db_stack
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import STACK_PASSWORDS, ServerSetupError

pytestmark = pytest.mark.integration

SECRET_VALUE = "a-session-token-that-must-not-be-on-disk-in-clear"


@pytest.fixture
def own_stack(pg_template: Path, tmp_path: Path) -> Iterator[DbStack]:
    try:
        server = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    except ServerSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        with running_db_stack(pg_template, server, tmp_path) as stack:
            run_in_process(stack)
            yield stack
    finally:
        server.stop()


def client(server: RedisServer, db: int = 0) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, username="default", password=server.password, db=db, decode_responses=True)


def redis_records(stack: DbStack) -> list[dict]:
    raw = json.loads((stack.backup_dir / "local-db" / "catalog.json").read_text())
    return sorted((b for b in raw["backups"] if b["subject"] == "redis/dataset"), key=lambda b: b["taken_at"])


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert all(value not in result.stdout + result.stderr for value in STACK_PASSWORDS.values())
    return line


def test_redis_is_backed_up_encrypted_and_restored_into_the_running_server(own_stack: DbStack) -> None:
    live = client(own_stack.redis)
    with live.pipeline(transaction=False) as pipe:
        for i in range(300):
            pipe.set(f"auth:session:{i}", f"{SECRET_VALUE}-{i}")
        pipe.hset("portfolio:cache:1", mapping={"a": "1", "b": "2"})
        pipe.rpush("analytics:queue", "x", "y", "z")
        pipe.set("auth:ttl", "expires", ex=3600)
        pipe.execute()
    client(own_stack.redis, db=1).set("other-db-key", "kept")

    run = nndb(own_stack, "backup", "run", "local-db")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "backup: 4 backups taken" in run.stdout and "redis/dataset" in run.stdout and "RDB checked, 304 keys" in run.stdout
    (record,) = redis_records(own_stack)
    assert record["verified"] and record["encrypted"] and record["row_counts"] == {"keys": 304}
    stored = (own_stack.backup_dir / "local-db" / record["file"]).read_bytes()
    assert SECRET_VALUE.encode() not in stored and b"REDIS0" not in stored[:64], "the snapshot is encrypted at rest"
    listing = nndb(own_stack, "backup", "list", "local-db")
    assert record["id"] in listing.stdout

    # The data changes after the backup.
    live.delete(*[f"auth:session:{i}" for i in range(100)])
    live.set("auth:session:200", "changed")
    live.set("auth:created-after", "to be removed")
    client(own_stack.redis, db=1).delete("other-db-key")

    # A connected client refuses the restore; nothing changes.
    service = client(own_stack.redis)
    service_id = service.client_id()
    line = one_line(nndb(own_stack, "backup", "restore", "local-db", "redis"), RestoreError.exit_code)
    assert (
        "redis/dataset: 2 client(s) connected" in line
        and f"id {service_id} (default" in line
        and "--force" in line
        and "nothing was changed" in line
    )
    assert live.get("auth:session:200") == "changed" and len(redis_records(own_stack)) == 1

    restored = nndb(own_stack, "backup", "restore", "local-db", "redis", "--force")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    steps = [line.split("s  ", 1)[1].split(":")[0] for line in restored.stdout.splitlines()[:-1]]
    assert steps == [
        "chose backup",
        "checked clients",
        "fresh backup of the live data",
        "loaded into a scratch redis-server",
        "copied into the live server",
        "compared key counts",
    ]
    assert "304 keys restored (TTLs kept), 1 keys not in the backup removed" in restored.stdout
    live = client(own_stack.redis)
    assert service_id not in [int(c["id"]) for c in live.client_list()], "disconnected by --force"

    assert live.get("auth:session:0") == f"{SECRET_VALUE}-0" and live.get("auth:session:200") == f"{SECRET_VALUE}-200"
    assert live.get("auth:created-after") is None and live.dbsize() == 303
    assert live.hgetall("portfolio:cache:1") == {"a": "1", "b": "2"} and live.lrange("analytics:queue", 0, -1) == ["x", "y", "z"]
    assert 3500 < live.ttl("auth:ttl") <= 3600
    assert client(own_stack.redis, db=1).get("other-db-key") == "kept"
    assert any(user.startswith("user auth_app") or "auth" in user for user in live.acl_list()), "ACL users are not data"

    fresh = redis_records(own_stack)[-1]
    assert fresh["verified"] and fresh["row_counts"] == {"keys": 204}, "the state before the restore was kept"

    exported = own_stack.project / "redis.rdb"
    export = nndb(own_stack, "backup", "export", "local-db", "redis", "--backup", record["id"], "-o", str(exported))
    assert export.returncode == 0, export.stdout + export.stderr
    assert exported.read_bytes()[:5] == b"REDIS" and (exported.stat().st_mode & 0o777) == 0o600
    check = subprocess.run(["redis-check-rdb", str(exported)], capture_output=True, text=True, check=False)
    assert "[info] 304 keys read" in check.stdout

    verify = nndb(own_stack, "backup", "verify", "local-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"redis/dataset        {fresh['id']} RDB checked, 204 keys" in verify.stdout


def test_a_tampered_redis_backup_is_refused_before_anything_changes(own_stack: DbStack) -> None:
    live = client(own_stack.redis)
    live.set("auth:x", "before")
    assert nndb(own_stack, "backup", "run", "local-db").returncode == 0
    (record,) = redis_records(own_stack)
    path = own_stack.backup_dir / "local-db" / record["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    live.set("auth:x", "after")
    line = one_line(nndb(own_stack, "backup", "restore", "local-db", "redis", "--force"), RestoreError.exit_code)
    assert record["id"] in line and "checksum" in line
    assert live.get("auth:x") == "after" and len(redis_records(own_stack)) == 1
