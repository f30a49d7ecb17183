"""Redis ACL users against a real redis-server 7: confined to their prefix, persisted, idempotent."""

from __future__ import annotations

import pytest
import redis

from tests.fixtures.servers import DbStack
from tests.support.hooks import run_in_process, summaries
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

REDIS_HOOKS = ("nndb_preflight", "nndb_set_permissions")


def test_service_users_are_confined_to_their_prefix(db_stack: DbStack) -> None:
    changes = summaries(
        run_in_process(db_stack, hooks=REDIS_HOOKS, disabled=("init_sql", "migrations", "permissions", "backup", "monitoring"))
    )
    assert changes == [
        "redis: created Redis user auth (keys auth:*)",
        "redis: created Redis user portfolio (keys portfolio:*)",
        "redis: created Redis user analytics (keys analytics:*)",
    ]
    auth = db_stack.redis.client(username="auth", password=STACK_PASSWORDS["AUTH_REDIS_PASSWORD"])
    auth.set("auth:session:1", "ok")
    assert auth.get("auth:session:1") == "ok"
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.set("portfolio:1", "nope")
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.get("analytics:1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.execute_command("ACL", "LIST")
    with pytest.raises(redis.AuthenticationError):
        db_stack.redis.client(username="auth", password=STACK_PASSWORDS["PORTFOLIO_REDIS_PASSWORD"]).ping()
    with pytest.raises(redis.AuthenticationError):
        db_stack.redis.client(password="not-the-default-password").ping()

    # ACL SAVE wrote them to the ACL file, hashed: they survive a restart and no plaintext is on disk.
    acl = db_stack.redis.aclfile.read_text()
    assert "user portfolio on" in acl and "~portfolio:*" in acl
    assert STACK_PASSWORDS["AUTH_REDIS_PASSWORD"] not in acl


def test_second_run_changes_nothing_and_rotation_is_reported(db_stack: DbStack) -> None:
    only_redis = {"hooks": REDIS_HOOKS, "disabled": ("init_sql", "migrations", "permissions", "backup")}
    run_in_process(db_stack, **only_redis)
    saved = db_stack.redis.aclfile.stat().st_mtime_ns
    assert summaries(run_in_process(db_stack, **only_redis)) == []
    assert db_stack.redis.aclfile.stat().st_mtime_ns == saved  # no ACL SAVE when nothing changed

    environ = {**db_stack.environ, "AUTH_REDIS_PASSWORD": "new-auth-redis-Secret"}
    rotated = run_in_process(db_stack, environ=environ, **only_redis)
    assert summaries(rotated) == ["redis: password rotated for Redis user auth"]
    db_stack.redis.client(username="auth", password="new-auth-redis-Secret").ping()

    # Drift (someone widened the user by hand) is put back.
    db_stack.redis.client().execute_command("ACL", "SETUSER", "portfolio", "~*")
    assert summaries(run_in_process(db_stack, environ=environ, **only_redis)) == ["redis: reset Redis user portfolio to keys portfolio:*"]


def test_default_user_without_password_gets_one(db_stack: DbStack) -> None:
    admin = db_stack.redis.client()
    admin.execute_command("ACL", "SETUSER", "default", "nopass")
    changes = summaries(
        run_in_process(db_stack, hooks=REDIS_HOOKS, disabled=("init_sql", "migrations", "permissions", "backup", "monitoring"))
    )
    assert "redis: default user password-protected" in changes
    with pytest.raises(redis.AuthenticationError):
        db_stack.redis.client(password="anything-else").ping()
