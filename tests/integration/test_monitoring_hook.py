"""The `monitoring` hook step against real servers: the exporters' identities exactly as
monitoring/identities.toml defines them, idempotent, repaired when they drift, rotated with their secrets."""

from __future__ import annotations

import psycopg
import pytest
import redis

from tests.fixtures.prometheus import IDENTITIES
from tests.fixtures.servers import DbStack
from tests.support.hooks import run_in_process, summaries
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration
ROLE = IDENTITIES["postgres"]["role"]
USER = IDENTITIES["redis"]["user"]
ONLY_MONITORING = ("init_sql", "migrations", "permissions", "redis_acl", "backup")


def monitoring_changes(db_stack: DbStack, **environ: str) -> list[str]:
    report = run_in_process(db_stack, disabled=ONLY_MONITORING, environ={**db_stack.environ, **environ})
    return summaries(report)


def test_the_identities_are_created_least_privilege_then_left_alone(db_stack: DbStack) -> None:
    for server in (db_stack.postgres, db_stack.timescale):  # as the containers' first-start script leaves it
        with server.connect() as conn:
            conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
    assert monitoring_changes(db_stack) == [
        f"postgres: created monitoring role {ROLE}",
        f"postgres: {ROLE} is a member of pg_monitor",
        f"postgres: {ROLE} may connect to the maintenance database postgres",
        f"timescale: created monitoring role {ROLE}",
        f"timescale: {ROLE} is a member of pg_monitor",
        f"timescale: {ROLE} may connect to the maintenance database postgres",
        f"redis: created Redis monitoring user {USER} (INFO/PING/CONFIG GET class only)",
    ]
    assert monitoring_changes(db_stack) == []
    for server, secret in ((db_stack.postgres, "POSTGRES_MONITOR_PASSWORD"), (db_stack.timescale, "TIMESCALE_MONITOR_PASSWORD")):
        with server.connect() as conn:
            role = conn.execute(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit FROM pg_roles WHERE rolname = %s",
                (ROLE,),
            ).fetchone()
        assert role == (True, False, False, False, False, False, IDENTITIES["postgres"]["connection_limit"])
        with server.connect(user=ROLE, password=STACK_PASSWORDS[secret]) as monitor:
            assert monitor.execute("SELECT pg_has_role('pg_monitor', 'MEMBER')").fetchone() == (True,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                monitor.execute("CREATE TABLE public.monitor_was_here (v int)")
    with db_stack.redis.client(username=USER, password=STACK_PASSWORDS["REDIS_MONITOR_PASSWORD"]) as monitor:
        assert monitor.ping() and "redis_version" in monitor.info("server")
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run the 'get' command"):
            monitor.get("auth:anything")
        with pytest.raises(redis.exceptions.NoPermissionError, match=r"no permissions to run the 'config\|set' command"):
            monitor.config_set("maxmemory", "1")


def test_drift_is_repaired_and_new_passwords_are_set(db_stack: DbStack) -> None:
    monitoring_changes(db_stack)
    with db_stack.postgres.connect() as conn:
        conn.execute(f"ALTER ROLE {ROLE} CREATEDB CONNECTION LIMIT 50")
        conn.execute(f"REVOKE pg_monitor FROM {ROLE}")
    with db_stack.redis.client() as admin:
        admin.execute_command("ACL", "SETUSER", USER, "+@all", "~*")
    assert monitoring_changes(db_stack) == [
        f"postgres: reset role {ROLE} to LOGIN without elevated attributes",
        f"postgres: {ROLE} is a member of pg_monitor",
        f"redis: reset Redis monitoring user {USER} (INFO/PING/CONFIG GET class only)",
    ]
    rotated = {"TIMESCALE_MONITOR_PASSWORD": "timescale-monitor-rotated-1", "REDIS_MONITOR_PASSWORD": "redis-monitor-rotated-1"}
    assert monitoring_changes(db_stack, **rotated) == [
        f"timescale: password rotated for {ROLE}",
        f"redis: reset Redis monitoring user {USER} (INFO/PING/CONFIG GET class only)",
    ]
    with db_stack.timescale.connect(user=ROLE, password=rotated["TIMESCALE_MONITOR_PASSWORD"]):
        pass
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        db_stack.timescale.connect(user=ROLE, password=STACK_PASSWORDS["TIMESCALE_MONITOR_PASSWORD"])
    with db_stack.redis.client(username=USER, password=rotated["REDIS_MONITOR_PASSWORD"]) as monitor:
        assert monitor.ping()
