"""The pg_hba.conf staging and prod ship (TLS, pitr = true) against a real PostgreSQL 15: barman's role may stream
over TLS, nothing replicates in plain text, and no other role replicates at all."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexanest_db.constructs.postgres_instance import hba_content
from nexanest_db.roles import REPLICATION_ROLE
from tests.fixtures.pki import Pki
from tests.fixtures.postgres_server import PG_BINDIR, PostgresServer, start_postgres, write_owned
from tests.support.local_servers import STACK_PASSWORDS, ServerSetupError

pytestmark = pytest.mark.integration

PASSWORD = "replication-Secret-hba-1"  # the test role's password


@pytest.fixture
def shipped_hba_server(pg_template: Path, tls_pki: Pki) -> Iterator[PostgresServer]:
    try:
        server = start_postgres(pg_template, password=STACK_PASSWORDS["POSTGRES_PASSWORD"], tls=tls_pki)
    except ServerSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        write_owned(server.datadir / "pg_hba.conf", hba_content(REPLICATION_ROLE), 0o600)
        with server.connect() as conn:
            conn.execute(f"CREATE ROLE {REPLICATION_ROLE} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.stop()


def identify_system(server: PostgresServer, user: str, password: str, sslmode: str) -> subprocess.CompletedProcess[str]:
    """What barman's pg_receivewal does first: a replication connection, IDENTIFY_SYSTEM."""
    conninfo = f"host={server.host} port={server.port} user={user} dbname=replication replication=true sslmode={sslmode}"
    return subprocess.run(
        [str(PG_BINDIR / "psql"), conninfo, "-At", "-c", "IDENTIFY_SYSTEM"],
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_only_the_replication_role_streams_and_only_over_tls(shipped_hba_server: PostgresServer) -> None:
    ok = identify_system(shipped_hba_server, REPLICATION_ROLE, PASSWORD, "require")
    assert ok.returncode == 0 and ok.stdout.split("|")[0].isdigit(), ok.stdout + ok.stderr

    plain = identify_system(shipped_hba_server, REPLICATION_ROLE, PASSWORD, "disable")
    assert plain.returncode != 0 and "no pg_hba.conf entry for replication connection" in plain.stderr, plain.stderr
    assert "no encryption" in plain.stderr

    superuser = identify_system(shipped_hba_server, shipped_hba_server.superuser, shipped_hba_server.password, "require")
    assert superuser.returncode != 0 and "no pg_hba.conf entry for replication connection" in superuser.stderr, superuser.stderr

    wrong = identify_system(shipped_hba_server, REPLICATION_ROLE, "not-the-password", "require")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
