"""Client-side SCRAM against PostgreSQL's own: same verifiers, idempotent rotation reports."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from nexanest_db import scram
from tests.fixtures.postgres_server import PostgresServer
from tests.fixtures.servers import DbStack
from tests.support.hooks import run_in_process, summaries
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

PASSWORDS = [
    "plain-ascii-1",
    "with space and ünïcödé",
    "ﬁligature\u00a0nbsp",
    "Ⅸ-roman-numeral",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
]


def test_server_made_verifiers_verify_and_ours_log_in(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as admin:
        for number, password in enumerate(PASSWORDS):
            role = f"scram_probe_{number}"
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()[0]
            assert scram.verifies(password, stored), password  # same SASLprep and derivation as the server
            assert not scram.verifies(password + "x", stored)
            assert scram.current_verifier(password, stored) == stored

            ours = scram.build(password)
            admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(ours)))
            postgres_server.connect(user=role, password=password).close()  # the server accepts our verifier


def test_rotation_is_reported_only_when_the_password_changes(db_stack: DbStack) -> None:
    init = ("nndb_preflight", "nndb_init_sql")
    first = summaries(run_in_process(db_stack, hooks=init, disabled=("backup",)))
    assert "postgres/auth: password rotated for auth_app" in first
    assert summaries(run_in_process(db_stack, hooks=init, disabled=("backup",))) == []
    rotated = summaries(
        run_in_process(db_stack, hooks=init, disabled=("backup",), environ={**db_stack.environ, "AUTH_DB_PASSWORD": "auth-v2-Secret"})
    )
    assert rotated == ["postgres/auth: password rotated for auth_app"]
    # The maintenance database is closed to service roles (00-harden-maintenance.sql): a refusal for
    # CONNECT comes only after the password was accepted, so it proves the new password works.
    with pytest.raises(psycopg.OperationalError, match='permission denied for database "postgres"'):
        db_stack.postgres.connect("postgres", user="auth_app", password="auth-v2-Secret")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        db_stack.postgres.connect("postgres", user="auth_app", password="not-the-password")
    with db_stack.postgres.connect() as admin:
        stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'auth_app'").fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$4096:") and "auth-v2-Secret" not in stored
    assert STACK_PASSWORDS["AUTH_DB_PASSWORD"] != "auth-v2-Secret"
