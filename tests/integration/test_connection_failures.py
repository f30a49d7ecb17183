"""Wrong passwords and unreachable hosts: one clear line, a bounded wait, and nothing half-applied."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from nexanest_db.errors import ConnectionFailed
from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb
from tests.support.local_servers import STACK_PASSWORDS, free_port

pytestmark = pytest.mark.integration


def assert_untouched(db_stack: DbStack) -> None:
    """No service database, no service role, no Redis user: the preflight stopped the run."""
    for server in (db_stack.postgres, db_stack.timescale):
        with server.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname IN ('auth', 'portfolio', 'analytics')").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE '%%\\_app'").fetchone() == (0,)
    assert db_stack.redis.client().execute_command("ACL", "USERS") == ["default"]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a black-holed database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_wrong_superuser_password(db_stack: DbStack) -> None:
    result = nndb(db_stack, "hooks", "run", "local-db", environ={**db_stack.environ, "TIMESCALE_PASSWORD": "not-the-password"})
    assert result.returncode == ConnectionFailed.exit_code
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("nndb: error: plugin 'init_sql' failed in nndb_preflight: timescale at 127.0.0.1:")
    assert "password authentication failed for user nexanest; check $TIMESCALE_PASSWORD" in line
    assert "not-the-password" not in result.stdout + result.stderr
    assert_untouched(db_stack)


def test_wrong_redis_password_stops_before_postgres_changes(db_stack: DbStack) -> None:
    result = nndb(db_stack, "hooks", "run", "local-db", environ={**db_stack.environ, "REDIS_PASSWORD": "not-the-password"})
    assert result.returncode == ConnectionFailed.exit_code
    assert "the default user refused the password; check $REDIS_PASSWORD" in result.stderr
    assert_untouched(db_stack)


def test_refused_port_fails_fast(db_stack: DbStack) -> None:
    started = time.monotonic()
    result = nndb(db_stack, "hooks", "run", "local-db", environ={**db_stack.environ, "TIMESCALE_PORT": str(free_port())})
    assert time.monotonic() - started < 10
    assert result.returncode == ConnectionFailed.exit_code
    assert "connection refused; is the server up and published on that port? (check TIMESCALE_HOST/_PORT or DB_HOST)" in result.stderr
    assert_untouched(db_stack)


def test_silent_host_gives_up_within_the_connect_timeout(db_stack: DbStack, silent_listener: int) -> None:
    started = time.monotonic()
    result = nndb(
        db_stack, "hooks", "run", "local-db", "--connect-timeout", "2", environ={**db_stack.environ, "TIMESCALE_PORT": str(silent_listener)}
    )
    elapsed = time.monotonic() - started
    assert result.returncode == ConnectionFailed.exit_code, result.stderr
    assert f"timescale at 127.0.0.1:{silent_listener}: no answer within 2s" in result.stderr
    assert elapsed < 8, elapsed
    assert_untouched(db_stack)


def test_silent_redis_gives_up_within_the_connect_timeout(db_stack: DbStack, silent_listener: int) -> None:
    started = time.monotonic()
    result = nndb(
        db_stack, "hooks", "run", "local-db", "--connect-timeout", "1", environ={**db_stack.environ, "REDIS_PORT": str(silent_listener)}
    )
    assert result.returncode == ConnectionFailed.exit_code, result.stderr
    assert f"redis at 127.0.0.1:{silent_listener}: no answer within 1s" in result.stderr
    assert time.monotonic() - started < 8
    assert_untouched(db_stack)


def test_missing_secret_outside_dev_names_the_variable_not_a_value(db_stack: DbStack) -> None:
    environ = {k: v for k, v in db_stack.environ.items() if k != "AUTH_DB_PASSWORD"}
    # local-db allows the ADR dev default; the run still works and never prints it.
    result = nndb(db_stack, "hooks", "run", "local-db", "--disable-plugin", "backup", environ=environ)
    assert result.returncode == 0, result.stderr
    assert STACK_PASSWORDS["POSTGRES_PASSWORD"] not in result.stdout + result.stderr
