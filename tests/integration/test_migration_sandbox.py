"""The migration sandbox against real PostgreSQL 15: a migration can never be more than its service's owner.

Every escape below is a migration file, applied the way `nndb migrate apply` applies it: the run
fails with one line and exit code 5, the migration is rolled back whole (its ledger row with it),
and what it tried is proven absent afterwards — no new role, no superuser, nothing written outside
its own database, nothing read from another service, the ledger untouched.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from nexanest_db.errors import MigrationError, RunFailed
from tests.fixtures.servers import DbStack
from tests.support.hooks import MIGRATE_HOOKS, run_in_process, summaries, write_migration
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

ESCAPE_FILE = "V004__escape.sql"
PORTFOLIO_APP = STACK_PASSWORDS["PORTFOLIO_DB_PASSWORD"]


@pytest.fixture(scope="module")
def deployed(module_db_stack: DbStack) -> DbStack:
    run_in_process(module_db_stack, hooks=MIGRATE_HOOKS)
    return module_db_stack


@pytest.fixture
def stack(deployed: DbStack) -> DbStack:
    yield deployed
    (deployed.project / "sql" / "migrations" / "auth" / ESCAPE_FILE).unlink(missing_ok=True)


def one(conn: psycopg.Connection, query: str, *params: object) -> object:
    row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None


def ledger(stack: DbStack) -> list[tuple[int, str]]:
    with stack.postgres.connect("auth") as conn:
        return conn.execute("SELECT version, applied_by FROM nndb.schema_migrations WHERE service = 'auth' ORDER BY 1").fetchall()


def sandbox_closed(stack: DbStack) -> None:
    """Between runs the migrator cannot log in, no run token is left, nobody else can become owner or migrator."""
    with stack.postgres.connect("auth") as conn:
        assert one(conn, "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'auth_migrator'") is True
        assert one(conn, "SELECT count(*) FROM nndb.run_tokens") == 0
        members = conn.execute(
            "SELECT m.roleid::regrole::text, m.member::regrole::text FROM pg_auth_members m "
            "WHERE m.roleid IN ('auth_owner'::regrole, 'auth_migrator'::regrole) OR m.member IN ('auth_owner'::regrole, 'auth_migrator'::regrole)"
        ).fetchall()
        assert members == [("auth_owner", "auth_migrator")]
        assert one(conn, "SELECT count(*) FROM pg_db_role_setting WHERE setrole IN ('auth_owner'::regrole, 'auth_migrator'::regrole)") == 0
        assert one(conn, "SELECT count(*) FROM pg_roles WHERE rolsuper") == 1


def no_role(name: str):
    def check(stack: DbStack, tmp_path: Path) -> None:
        with stack.postgres.connect() as conn:
            assert one(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", name) == 0

    return check


def no_file(name: str):
    def check(stack: DbStack, tmp_path: Path) -> None:
        assert not (tmp_path / name).exists()

    return check


def not_superuser(role: str):
    def check(stack: DbStack, tmp_path: Path) -> None:
        with stack.postgres.connect() as conn:
            assert one(conn, "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = %s", role) is False

    return check


def no_database(name: str):
    def check(stack: DbStack, tmp_path: Path) -> None:
        with stack.postgres.connect() as conn:
            assert one(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", name) == 0

    return check


def nothing_else(stack: DbStack, tmp_path: Path) -> None:
    """The generic checks (ledger, closed sandbox) cover it."""


def portfolio_untouched(stack: DbStack, tmp_path: Path) -> None:
    with stack.postgres.connect("portfolio") as conn:
        assert one(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'portfolio'") == "portfolio_owner"
        assert one(conn, "SELECT count(*) FROM portfolio.holdings") == 0


ESCAPES: dict[str, tuple[str, object]] = {
    "reset role, create superuser": ("RESET ROLE;\nCREATE ROLE pwned SUPERUSER LOGIN;\n", no_role("pwned")),
    "create role as owner": ("CREATE ROLE pwned LOGIN;\n", no_role("pwned")),
    "set role to the superuser": ("SET ROLE nexanest;\nCREATE ROLE pwned SUPERUSER;\n", no_role("pwned")),
    "set_config role": ("SELECT set_config('role', 'nexanest', false);\nCREATE ROLE pwned;\n", no_role("pwned")),
    "set session authorization": ("SET SESSION AUTHORIZATION nexanest;\nCREATE ROLE pwned SUPERUSER;\n", no_role("pwned")),
    "reset session authorization": ("RESET SESSION AUTHORIZATION;\nRESET ROLE;\nCREATE ROLE pwned;\n", no_role("pwned")),
    "set role to another service's owner": (
        "RESET ROLE;\nSET ROLE portfolio_owner;\nDROP TABLE portfolio.holdings;\n",
        portfolio_untouched,
    ),
    "set role to the app role": ("SET ROLE auth_app;\n", nothing_else),
    "set role to a predefined role": ("RESET ROLE;\nSET ROLE pg_execute_server_program;\n", nothing_else),
    "alter own role superuser": ("ALTER ROLE auth_owner SUPERUSER;\n", not_superuser("auth_owner")),
    "alter migrator createrole": ("RESET ROLE;\nALTER ROLE auth_migrator CREATEROLE;\n", not_superuser("auth_migrator")),
    "DO block with dynamic SQL": (
        "DO $$ BEGIN EXECUTE 'RESET ROLE'; EXECUTE 'CREATE ROLE pwned SUPERUSER'; END $$;\n",
        no_role("pwned"),
    ),
    "DO block that commits": ("CREATE TABLE half_done (id int);\nDO $$ BEGIN COMMIT; END $$;\n", nothing_else),
    "grant the migrator to another service (self-admin)": ("RESET ROLE;\nGRANT auth_migrator TO portfolio_app;\n", nothing_else),
    "grant the owner to the app": ("GRANT auth_owner TO auth_app;\n", nothing_else),
    "set the migrator's own password": ("RESET ROLE;\nALTER ROLE auth_migrator PASSWORD 'known-Password-1';\n", nothing_else),
    "role settings on the migrator": ("RESET ROLE;\nALTER ROLE auth_migrator SET search_path = evil;\n", nothing_else),
    "role settings on the owner": ("ALTER ROLE auth_owner SET statement_timeout = 1;\n", nothing_else),
    "read a server file": ("CREATE TABLE loot AS SELECT pg_read_file('/etc/passwd') AS x;\n", nothing_else),
    "list a server directory": ("SELECT pg_ls_dir('/');\n", nothing_else),
    "COPY TO PROGRAM": ("COPY (SELECT 1) TO PROGRAM 'touch {tmp}/pwned-program';\n", no_file("pwned-program")),
    "COPY TO a server file": ("COPY (SELECT 1) TO '{tmp}/pwned-copy';\n", no_file("pwned-copy")),
    "COPY FROM a server file": ("CREATE TABLE loot (x text);\nCOPY loot FROM '/etc/passwd';\n", nothing_else),
    "lo_export to a server file": ("SELECT lo_export(lo_from_bytea(0, 'x'), '{tmp}/pwned-lo');\n", no_file("pwned-lo")),
    "lo_import a server file": ("SELECT lo_import('/etc/passwd');\n", nothing_else),
    "dblink to another database": ("CREATE EXTENSION dblink;\n", nothing_else),
    "postgres_fdw to another database": ("CREATE EXTENSION postgres_fdw;\n", nothing_else),
    "file_fdw": ("CREATE EXTENSION file_fdw;\n", nothing_else),
    "untrusted language": ("CREATE FUNCTION f() RETURNS int LANGUAGE c AS '/lib/x86_64-linux-gnu/libc.so.6', 'getpid';\n", nothing_else),
    "load a library": ("LOAD 'auto_explain';\n", nothing_else),
    "ALTER SYSTEM": ("ALTER SYSTEM SET log_statement = 'all';\n", nothing_else),
    "superuser setting": ("SET session_replication_role = replica;\n", nothing_else),
    "event trigger": (
        "CREATE FUNCTION auth.et() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;\n"
        "CREATE EVENT TRIGGER pwned ON ddl_command_start EXECUTE FUNCTION auth.et();\n",
        nothing_else,
    ),
    "read another service's schema": ("CREATE TABLE loot AS SELECT * FROM portfolio.holdings;\n", nothing_else),
    "create a database": ("CREATE DATABASE pwned;\n", no_database("pwned")),
    "drop another database": ("DROP DATABASE portfolio;\n", portfolio_untouched),
    "take over another database": ("ALTER DATABASE portfolio OWNER TO auth_owner;\n", portfolio_untouched),
    "rename its own database": ("ALTER DATABASE auth RENAME TO pwned;\n", no_database("pwned")),
    "tablespace": ("CREATE TABLESPACE pwned LOCATION '{tmp}';\n", nothing_else),
    "subscription": ("CREATE SUBSCRIPTION pwned CONNECTION 'dbname=portfolio' PUBLICATION p;\n", nothing_else),
    "terminate the superuser's session": (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'nexanest';\n",
        nothing_else,
    ),
    "default privileges of the superuser": ("ALTER DEFAULT PRIVILEGES FOR ROLE nexanest GRANT ALL ON TABLES TO auth_app;\n", nothing_else),
    "delete ledger rows": ("DELETE FROM nndb.schema_migrations;\n", nothing_else),
    "forge a ledger row": (
        "INSERT INTO nndb.schema_migrations (service, version, description, script, checksum, execution_ms) "
        "VALUES ('auth', 5, 'x', 'x', repeat('a', 64), 1);\n",
        nothing_else,
    ),
    "read the run token": ("CREATE TABLE loot AS SELECT * FROM nndb.run_tokens;\n", nothing_else),
    "record a migration without the token": (
        "RESET ROLE;\nSELECT nndb.record_migration('guess', 'auth', 5, 'x', 'sql/x', repeat('a', 64), 1);\n",
        nothing_else,
    ),
    "drop the ledger schema": ("DROP SCHEMA nndb CASCADE;\n", nothing_else),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_an_escape_attempt_fails_and_leaves_nothing(stack: DbStack, tmp_path: Path, name: str) -> None:
    text, check = ESCAPES[name]
    tmp_path.chmod(0o777)  # the server's OS user could write here: only its privileges stop it
    before = ledger(stack)
    write_migration(stack, "auth", ESCAPE_FILE, "-- an escape attempt\nCREATE TABLE escape_marker (id int);\n" + text.format(tmp=tmp_path))
    with pytest.raises(RunFailed) as excinfo:
        run_in_process(stack, hooks=MIGRATE_HOOKS)
    message = str(excinfo.value)
    assert excinfo.value.exit_code == MigrationError.exit_code, message
    assert "sql/migrations/auth/V004__escape.sql" in message and "\n" not in message
    assert "rolled back whole" in message or "is not recorded" in message
    assert ledger(stack) == before  # nothing recorded, nothing removed
    with stack.postgres.connect("auth") as conn:
        assert one(conn, "SELECT to_regclass('auth.escape_marker') IS NULL") is True  # the migration's first statement rolled back too
    check(stack, tmp_path)  # type: ignore[operator]
    sandbox_closed(stack)


def test_a_migration_runs_as_the_migrator_with_the_owner_role_and_the_sandbox_closes(stack: DbStack) -> None:
    write_migration(
        stack,
        "auth",
        ESCAPE_FILE,
        "-- legitimate: RESET ROLE and SET ROLE back to the owner are harmless\n"
        "RESET ROLE;\nSET ROLE auth_owner;\n"
        "CREATE TABLE sandbox_probe AS SELECT session_user::text AS session_role, current_user::text AS acting_role;\n",
    )
    changes = summaries(run_in_process(stack, hooks=MIGRATE_HOOKS))
    assert [c.split(" (")[0] for c in changes] == ["postgres/auth: applied V004 escape"]
    with stack.postgres.connect("auth") as conn:
        assert conn.execute("SELECT session_role, acting_role FROM auth.sandbox_probe").fetchall() == [("auth_migrator", "auth_owner")]
        assert one(conn, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'auth.sandbox_probe'::regclass") == "auth_owner"
        conn.execute("DROP TABLE auth.sandbox_probe")
        conn.execute("DELETE FROM nndb.schema_migrations WHERE service = 'auth' AND version = 4")
    assert ledger(stack)[-1] == (3, "auth_migrator")
    sandbox_closed(stack)


def test_the_migrator_cannot_reach_another_database_even_with_a_password(stack: DbStack) -> None:
    """Its CONNECT is on its own database only; NOINHERIT keeps the owner's rights behind SET ROLE."""
    pg = stack.postgres
    with pg.connect() as conn:
        conn.execute("ALTER ROLE auth_migrator PASSWORD 'probe-Password-1'")
    try:
        with pytest.raises(psycopg.OperationalError, match='permission denied for database "portfolio"'):
            pg.connect("portfolio", user="auth_migrator", password="probe-Password-1")
        with pytest.raises(psycopg.OperationalError, match='permission denied for database "postgres"'):
            pg.connect("postgres", user="auth_migrator", password="probe-Password-1")
        with pg.connect("auth", user="auth_migrator", password="probe-Password-1") as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE auth.not_without_set_role (id int)")  # NOINHERIT: nothing of the owner's
            # Outside a transaction block too (a migration always runs inside one), as the owner:
            conn.execute("SET ROLE auth_owner")
            for statement in (
                "CREATE DATABASE pwned",
                "DROP DATABASE portfolio",
                "ALTER SYSTEM SET log_statement = 'all'",
                "CREATE TABLESPACE pwned LOCATION '/tmp'",
                "CREATE SUBSCRIPTION pwned CONNECTION 'dbname=portfolio' PUBLICATION p WITH (connect = false)",
                "SET SESSION AUTHORIZATION nexanest",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with pg.connect() as conn:
            conn.execute("ALTER ROLE auth_migrator PASSWORD NULL")


def test_hand_made_grants_and_a_left_open_login_are_repaired_on_the_next_run(stack: DbStack) -> None:
    with stack.postgres.connect() as conn:
        conn.execute("GRANT auth_owner TO portfolio_app")
        conn.execute("GRANT pg_read_server_files TO auth_owner")
        conn.execute("ALTER ROLE auth_migrator PASSWORD 'left-Open-1'")  # a run killed before it closed the login
        conn.execute("ALTER ROLE auth_owner SET search_path = evil")
    changes = summaries(run_in_process(stack, hooks=MIGRATE_HOOKS))
    assert "postgres/auth: removed other members and role settings of auth_owner and auth_migrator" in changes
    assert "postgres/auth: closed the login of auth_migrator (left open by an interrupted run)" in changes
    sandbox_closed(stack)
    with pytest.raises(psycopg.OperationalError):
        stack.postgres.connect("auth", user="portfolio_app", password=PORTFOLIO_APP)
    assert summaries(run_in_process(stack, hooks=MIGRATE_HOOKS)) == []
