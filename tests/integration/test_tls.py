"""TLS-only PostgreSQL servers (ssl = on, hostssl-only pg_hba.conf) and `nndb` with ``[tls] enabled = true``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
import redis

from nexanest_db.client_tls import ClientTls
from nexanest_db.config import HostPort
from nexanest_db.errors import ConnectionFailed
from nexanest_db.redis_session import connect_redis
from tests.fixtures.pki import Pki
from tests.fixtures.servers import DbStack
from tests.support.hooks import context_for, nndb, run_in_process
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

TLS_NAMES = (
    "tls_ca_cert",
    "postgres_tls_cert",
    "postgres_tls_key",
    "timescale_tls_cert",
    "timescale_tls_key",
    "redis_tls_cert",
    "redis_tls_key",
)


def test_hooks_run_over_verified_tls(tls_db_stack: DbStack) -> None:
    result = nndb(tls_db_stack, "hooks", "run", "local-db")
    assert result.returncode == 0, result.stderr
    assert "hooks:" in result.stdout
    # Every session the hooks opened was TLS (the server would have refused anything else); the service role works too.
    with tls_db_stack.postgres.connect("auth", user="auth_app", password=STACK_PASSWORDS["AUTH_DB_PASSWORD"]) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    again = nndb(tls_db_stack, "hooks", "run", "local-db")
    assert again.returncode == 0, again.stderr
    assert "0 changes" in again.stdout


def test_plain_connection_is_refused_by_pg_hba(tls_db_stack: DbStack) -> None:
    assert nndb(tls_db_stack, "hooks", "run", "local-db").returncode == 0
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        tls_db_stack.postgres.connect("auth", user="auth_app", password=STACK_PASSWORDS["AUTH_DB_PASSWORD"], sslmode="disable")


def test_without_tls_config_the_hooks_say_the_server_wants_tls(tls_db_stack: DbStack) -> None:
    local = tls_db_stack.project / "config" / "local.toml"
    local.write_text(local.read_text().replace("[tls]\nenabled = true\n", ""))
    environ = {**tls_db_stack.environ}
    result = nndb(tls_db_stack, "hooks", "run", "local-db", environ={**environ, "PGSSLMODE": "disable"})
    assert result.returncode == ConnectionFailed.exit_code
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    # Whichever preflight connects first (PostgreSQL's pg_hba.conf or TLS-only Redis) says the server wants TLS.
    assert "[tls] enabled = true" in line
    assert "refused by the server's pg_hba.conf" in line or "redis at 127.0.0.1:" in line


def test_wrong_ca_fails_with_one_clear_line(tls_db_stack: DbStack, tls_pki: Pki) -> None:
    result = nndb(tls_db_stack, "hooks", "run", "local-db", environ={**tls_db_stack.environ, "TLS_CA_CERT": tls_pki.other_ca_cert})
    assert result.returncode == ConnectionFailed.exit_code
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        (
            "nndb: error: plugin 'init_sql' failed in nndb_preflight: postgres at 127.0.0.1:",
            "nndb: error: plugin 'redis_acl' failed in nndb_preflight: redis at 127.0.0.1:",
        )
    )
    assert "TLS certificate verification failed" in lines[0] and "$TLS_CA_CERT" in lines[0]
    for value in (*STACK_PASSWORDS.values(), "BEGIN CERTIFICATE", "PRIVATE KEY"):
        assert value not in result.stderr + result.stdout


def test_missing_ca_stops_the_preflight(tls_db_stack: DbStack) -> None:
    environ = {k: v for k, v in tls_db_stack.environ.items() if k != "TLS_CA_CERT"}
    result = nndb(tls_db_stack, "hooks", "run", "local-db", environ=environ)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "secret tls_ca_cert is missing: set TLS_CA_CERT or TLS_CA_CERT_FILE" in result.stderr.strip().splitlines()[-1]


def test_ca_file_is_private_and_removed_at_close(tls_db_stack: DbStack) -> None:
    context = context_for(tls_db_stack)
    tls = context.client_tls()
    assert tls is not None and tls.sslmode == "verify-full"
    mode = stat.S_IMODE(os.stat(tls.rootcert).st_mode)
    assert mode == 0o600
    assert Path(tls.rootcert).read_text() == tls_db_stack.environ["TLS_CA_CERT"]
    assert context.client_tls() == tls  # written once per run
    context.pg("postgres")
    context.close()
    assert not Path(tls.rootcert).exists()


def test_backups_use_tls_too(tls_db_stack: DbStack) -> None:
    report = run_in_process(tls_db_stack)  # includes the backup phase: pg_dump and the restore check over TLS
    assert any(plugin == "backup" for plugin, _ in report.changes), report.changes


def test_secrets_check_lists_tls_secrets_only_when_enabled(tls_db_stack: DbStack) -> None:
    enabled = nndb(tls_db_stack, "secrets", "check", "local-db")
    assert enabled.returncode == 0, enabled.stderr
    for name in TLS_NAMES:
        assert f"\n{name} " in enabled.stdout
    local = tls_db_stack.project / "config" / "local.toml"
    local.write_text(local.read_text().replace("[tls]\nenabled = true\n", ""))
    environ = {k: v for k, v in tls_db_stack.environ.items() if "TLS" not in k}
    disabled = nndb(tls_db_stack, "secrets", "check", "local-db", environ=environ)
    assert disabled.returncode == 0, disabled.stderr
    assert not any(name in disabled.stdout for name in TLS_NAMES)


# --- Redis (TLS-only: port 0, tls-port) -----------------------------------------------------------


def test_hooks_reach_redis_over_tls_and_its_acl_users_work(tls_db_stack: DbStack) -> None:
    result = nndb(tls_db_stack, "hooks", "run", "local-db")
    assert result.returncode == 0, result.stderr
    # The hooks' Redis step created the service users over TLS: they log in (over TLS, verified) with their passwords.
    auth = tls_db_stack.redis.client(username="auth", password=STACK_PASSWORDS["AUTH_REDIS_PASSWORD"], ssl_check_hostname=True)
    assert auth.set("auth:tls", "1") and auth.get("auth:tls") == "1"
    context = context_for(tls_db_stack)
    try:
        client = context.redis()
        assert client.connection_pool.connection_kwargs["ssl_check_hostname"] is True  # verify-full
        assert client.ping()
    finally:
        context.close()


def test_plain_redis_client_is_refused(tls_db_stack: DbStack) -> None:
    plain = tls_db_stack.redis.client(ssl=False)
    with pytest.raises(redis.ConnectionError):
        plain.ping()


def test_redis_with_a_wrong_ca_fails_with_one_clear_line(tls_db_stack: DbStack, tls_pki: Pki, tmp_path: Path) -> None:
    wrong = tmp_path / "other-ca.pem"
    wrong.write_text(tls_pki.other_ca_cert)
    with pytest.raises(ConnectionFailed) as failed:
        connect_redis(
            endpoint=HostPort(host=tls_db_stack.redis.host, port=tls_db_stack.redis.port),
            password=STACK_PASSWORDS["REDIS_PASSWORD"],
            secret_hint="$REDIS_PASSWORD",
            timeout_s=5,
            tls=ClientTls(sslmode="verify-full", rootcert=wrong),
            tls_hint="$TLS_CA_CERT",
        )
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"redis at {tls_db_stack.redis.host}:{tls_db_stack.redis.port}: TLS certificate verification failed")
    assert "$TLS_CA_CERT" in message


def test_plain_redis_session_against_a_tls_server_says_so(tls_db_stack: DbStack) -> None:
    with pytest.raises(ConnectionFailed) as failed:
        connect_redis(
            endpoint=HostPort(host=tls_db_stack.redis.host, port=tls_db_stack.redis.port),
            password=STACK_PASSWORDS["REDIS_PASSWORD"],
            secret_hint="$REDIS_PASSWORD",
            timeout_s=5,
        )
    assert "\n" not in str(failed.value)
    assert "[tls] enabled = true" in str(failed.value)
