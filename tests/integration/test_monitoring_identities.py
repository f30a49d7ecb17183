"""The exporters' least-privilege identities (monitoring/identities.toml) against real servers.

Each exporter logs in as its monitoring identity and gets everything the rules read, while the
identity itself can read no service data and change nothing; the Redis user is refused nothing the
exporter asks for (ACL LOG stays empty over several scrapes) and everything else.
"""

from __future__ import annotations

import psycopg
import pytest
import redis
import requests

from tests.fixtures.prometheus import IDENTITIES, ExportedServers

pytestmark = pytest.mark.integration


def scrape(servers: ExportedServers, instance: str) -> str:
    response = requests.get(f"{servers.exporters[instance].url}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith((f"{name} ", f"{name}{{"))]


@pytest.mark.parametrize("instance", ["postgres", "timescale"])
def test_postgres_exporter_sees_the_instance_as_pg_monitor(exported_servers: ExportedServers, instance: str) -> None:
    text = scrape(exported_servers, instance)
    assert samples(text, "pg_up") == ["pg_up 1"]
    assert samples(text, "pg_exporter_last_scrape_error") == ["pg_exporter_last_scrape_error 0"]
    # pg_read_all_settings / pg_read_all_stats (through pg_monitor): every database's sessions and settings
    assert samples(text, "pg_settings_max_connections")
    databases = {"auth", "portfolio"} if instance == "postgres" else {"analytics"}
    for database in databases:
        assert any(f'datname="{database}"' in line for line in samples(text, "pg_stat_activity_count")), database
        assert any(f'datname="{database}"' in line for line in samples(text, "pg_stat_database_deadlocks")), database


def test_postgres_monitor_role_reads_no_data_and_changes_nothing(exported_servers: ExportedServers) -> None:
    server = exported_servers.postgres
    login = exported_servers.logins["postgres"]
    with server.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS monitored_secret (v text)")
        role = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit FROM pg_roles WHERE rolname = %s",
            (login.user,),
        ).fetchone()
        groups = conn.execute(
            "SELECT array_agg(g.rolname ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s",
            (login.user,),
        ).fetchone()[0]
    assert role == (False, False, False, False, False, IDENTITIES["postgres"]["connection_limit"])
    assert groups == IDENTITIES["postgres"]["member_of"]
    with server.connect(user=login.user, password=login.password) as monitor:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            monitor.execute("SELECT * FROM monitored_secret")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            monitor.execute("CREATE TABLE public.monitor_was_here (v int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            monitor.execute("ALTER SYSTEM SET max_connections = 10")


def test_redis_exporter_needs_nothing_beyond_the_acl(exported_servers: ExportedServers) -> None:
    server = exported_servers.redis
    with server.client() as admin:
        admin.execute_command("ACL", "LOG", "RESET")
    for _ in range(3):
        text = scrape(exported_servers, "redis")
    assert samples(text, "redis_up") == ["redis_up 1"]
    for name in ("redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total", "redis_rejected_connections_total"):
        assert samples(text, name), name
    with server.client() as admin:
        refused = [entry for entry in admin.acl_log() if entry.get("username") == IDENTITIES["redis"]["user"]]
    assert refused == [], f"the exporter ran commands its ACL refuses: {refused}"


@pytest.mark.parametrize(
    "command",
    [("GET", "auth:session:1"), ("SET", "x", "1"), ("KEYS", "*"), ("CONFIG", "SET", "maxmemory", "1"), ("FLUSHALL",), ("ACL", "LIST")],
    ids=lambda command: " ".join(command[:2]),
)
def test_redis_monitor_user_is_refused_data_and_changes(exported_servers: ExportedServers, command: tuple[str, ...]) -> None:
    login = exported_servers.logins["redis"]
    with exported_servers.redis.client(username=login.user, password=login.password) as monitor:
        assert monitor.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            monitor.execute_command(*command)


def test_no_exporter_has_a_password_on_its_command_line(exported_servers: ExportedServers) -> None:
    for instance, daemon in exported_servers.exporters.items():
        with open(f"/proc/{daemon.process.pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode(errors="replace")
        assert exported_servers.logins[instance].password not in argv, instance
        assert exported_servers.logins[instance].password not in daemon.log.read_text(errors="replace"), instance
