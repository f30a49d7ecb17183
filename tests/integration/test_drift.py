"""`nndb drift <stack>` against real servers: nothing on a tier the hooks just deployed; each change made by
hand (a column, a grant, default privileges, a role attribute or membership, a role or Redis user nobody
declared, an ACL rule) and an applied migration edited afterwards reported as one line naming the
object; an unreachable server as one line with the connection exit code; and the scratch database the
reference is built in gone afterwards every time, Ctrl-C included.

One tier per test (``db_stack``: fresh PostgreSQL, TimescaleDB's stand-in and Redis, a project copy),
brought to the deployed state by the real post-apply hooks.
"""

from __future__ import annotations

import json

import pytest

from nexanest_db.errors import ConfigError, ConnectionFailed, DriftFound
from nexanest_db.operations.drift import check_stack
from tests.fixtures.postgres_server import PostgresServer
from tests.fixtures.servers import DbStack
from tests.support.cli_json import json_result
from tests.support.hooks import context_for, nndb, run_in_process, write_migration

pytestmark = pytest.mark.integration
STACK = "local-db"


@pytest.fixture
def deployed(db_stack: DbStack) -> DbStack:
    report = run_in_process(db_stack)
    assert report.change_count > 0
    return db_stack


def drift(db_stack: DbStack, *args: str):  # type: ignore[no-untyped-def]
    return nndb(db_stack, "drift", STACK, *args, timeout=120)


def scratch_databases(server: PostgresServer) -> list[str]:
    with server.connect() as conn:
        return [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'nndb\\_drift\\_%'").fetchall()]


def assert_no_scratch_left(db_stack: DbStack) -> None:
    assert scratch_databases(db_stack.postgres) == []
    assert scratch_databases(db_stack.timescale) == []


def finding_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if not line.startswith(("note: ", f"{STACK}: "))]


def test_a_freshly_deployed_tier_has_no_drift(deployed: DbStack) -> None:
    result = drift(deployed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [result.stdout.splitlines()[-1]]
    assert result.stdout.startswith(f"{STACK}: no drift (auth, portfolio, analytics; checked in ")

    document = json_result(drift(deployed, "--json").stdout, "drift")
    assert document["schema"] == 1 and document["stack"] == STACK
    assert document["drift"] is False and document["findings"] == [] and document["error"] is None
    assert document["services"] == ["auth", "portfolio", "analytics"]
    assert_no_scratch_left(deployed)
    with deployed.postgres.connect() as conn:  # the sandbox's one-run password is cleared again
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'auth_migrator'").fetchone()
        assert row == (None,)


def test_changes_made_by_hand_are_each_reported_by_name(deployed: DbStack) -> None:
    with deployed.postgres.connect("portfolio") as conn:
        conn.execute("ALTER TABLE portfolio.holdings ADD COLUMN note text")
    with deployed.postgres.connect("auth") as conn:
        conn.execute("GRANT SELECT ON auth.users TO portfolio_app")
        conn.execute("ALTER DEFAULT PRIVILEGES FOR ROLE auth_owner IN SCHEMA auth GRANT DELETE ON TABLES TO portfolio_app")
        conn.execute("DROP INDEX auth.users_email_lower_key")
    with deployed.postgres.connect() as conn:
        conn.execute("ALTER ROLE auth_app CREATEDB")
        conn.execute("GRANT auth_app TO portfolio_app")
        conn.execute("CREATE ROLE intruder LOGIN")
        conn.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")
    client = deployed.redis.client()
    client.execute_command("ACL", "SETUSER", "auth", "~other:*")
    client.execute_command("ACL", "SETUSER", "backdoor", "on", ">pw", "~*", "+@all")

    result = drift(deployed)
    assert result.returncode == DriftFound.exit_code, result.stdout + result.stderr
    assert finding_lines(result.stdout) == [
        "auth: index auth.users_email_lower_key: in the schema files but missing (dropped by hand?)",
        "auth: grant SELECT on table auth.users to portfolio_app: not expected (granted by hand?)",
        "auth: default privilege DELETE on tables to portfolio_app for objects of auth_owner in schema auth: not expected (granted by hand?)",
        "portfolio: column portfolio.holdings.note: not in the schema files (added by hand?)",
        "postgres: grant CONNECT on database postgres to PUBLIC: not expected (granted by hand? `nndb hooks run` takes PUBLIC's back)",
        "postgres: role auth_app: attribute CREATEDB, the files set NOCREATEDB",
        "postgres: role intruder: not expected (created by hand?)",
        "postgres: role portfolio_app: member of auth_app: not expected (granted by hand?)",
        "redis: ACL user auth: rule differs: keys '~auth:* ~other:*', wanted '~auth:*'",
        "redis: ACL user backdoor: not expected (created by hand?)",
    ]
    assert result.stdout.splitlines()[-1].startswith(f"{STACK}: 10 drift findings (")
    assert result.stderr.strip().splitlines() == [
        "nndb: error: local-db: 10 drift findings (listed above); docs/drift.md says what to do for each kind"
    ]
    assert "pw" not in result.stdout.replace("portfolio", "")  # the hand-set password never shows

    document = json_result(drift(deployed, "--json").stdout, "drift", ok=False)
    assert document["drift"] is True and document["error"] is None
    column = next(f for f in document["findings"] if f["kind"] == "column")
    assert column == {
        "subject": "portfolio",
        "kind": "column",
        "object": "portfolio.holdings.note",
        "problem": "unexpected",
        "message": "not in the schema files (added by hand?)",
        "live": "text",
        "expected": None,
        "line": "portfolio: column portfolio.holdings.note: not in the schema files (added by hand?)",
    }
    assert_no_scratch_left(deployed)

    # The hooks reset role attributes, ACL users and the maintenance database; what they do not undo (a column, an extra grant or
    # membership, a role or user nobody declared) drift keeps reporting.
    run_in_process(deployed)
    assert finding_lines(drift(deployed).stdout) == [
        "auth: index auth.users_email_lower_key: in the schema files but missing (dropped by hand?)",
        "auth: grant SELECT on table auth.users to portfolio_app: not expected (granted by hand?)",
        "auth: default privilege DELETE on tables to portfolio_app for objects of auth_owner in schema auth: not expected (granted by hand?)",
        "portfolio: column portfolio.holdings.note: not in the schema files (added by hand?)",
        "postgres: role intruder: not expected (created by hand?)",
        "postgres: role portfolio_app: member of auth_app: not expected (granted by hand?)",
        "redis: ACL user backdoor: not expected (created by hand?)",
    ]


def test_an_applied_migration_edited_afterwards_is_reported(deployed: DbStack) -> None:
    path = deployed.project / "sql" / "migrations" / "auth" / "V001__add_email_index.sql"
    path.write_text(path.read_text(encoding="utf-8") + "\n-- an afterthought\n", encoding="utf-8")
    result = drift(deployed)
    assert result.returncode == DriftFound.exit_code, result.stdout + result.stderr
    (line,) = finding_lines(result.stdout)
    assert line.startswith("auth: migration sql/migrations/auth/V001__add_email_index.sql: changed after it was applied on ")
    assert "restore the applied text and put the change in a new migration" in line


def test_files_that_no_longer_apply_are_reported_and_the_scratch_database_still_goes(deployed: DbStack) -> None:
    path = deployed.project / "sql" / "migrations" / "portfolio" / "V001__add_transactions_history_index.sql"
    path.write_text("SELECT * FROM no_such_table;\n", encoding="utf-8")
    result = drift(deployed)
    assert result.returncode == DriftFound.exit_code, result.stdout + result.stderr
    lines = finding_lines(result.stdout)
    assert lines[0].startswith("portfolio: migration sql/migrations/portfolio/V001__add_transactions_history_index.sql: changed after")
    assert lines[1].startswith(
        "portfolio: reference postgres/portfolio: the files do not apply to an empty database, so nothing was compared: "
    )
    assert "no_such_table" in lines[1] and len(lines) == 2
    assert_no_scratch_left(deployed)


def test_a_pending_migration_is_a_note_not_drift(deployed: DbStack) -> None:
    write_migration(deployed, "auth", "V900__later.sql", "CREATE TABLE later (id int);\n")
    result = drift(deployed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: auth: 1 migration(s) not applied yet (V900): not drift, not compared" in result.stdout


def test_service_filter_and_unknown_service(deployed: DbStack) -> None:
    with deployed.postgres.connect("portfolio") as conn:
        conn.execute("CREATE TABLE portfolio.scratchpad (id int)")
    only_auth = drift(deployed, "--service", "auth")
    assert only_auth.returncode == 0, only_auth.stdout + only_auth.stderr
    assert only_auth.stdout.startswith(f"{STACK}: no drift (auth; checked in ")
    only_portfolio = drift(deployed, "--service", "portfolio")
    assert finding_lines(only_portfolio.stdout) == ["portfolio: table portfolio.scratchpad: not in the schema files (added by hand?)"]

    unknown = drift(deployed, "--service", "billing")
    assert unknown.returncode == ConfigError.exit_code
    assert unknown.stderr.strip() == "nndb: error: --service billing: no such service in local-db; known: analytics, auth, portfolio"
    document = json.loads(drift(deployed, "--service", "billing", "--json").stdout)
    assert document["ok"] is False and document["error"]["message"] == unknown.stderr.strip().removeprefix("nndb: error: ")
    assert document["error"]["exit_code"] == ConfigError.exit_code


def test_an_unreachable_server_is_one_line_with_the_connection_exit_code(deployed: DbStack) -> None:
    deployed.timescale.stop()
    result = drift(deployed, "--connect-timeout", "2")
    assert result.returncode == ConnectionFailed.exit_code, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"nndb: error: timescale at 127.0.0.1:{deployed.timescale.port}: connection refused")
    assert result.stdout == ""

    document = json.loads(drift(deployed, "--json", "--connect-timeout", "2").stdout)
    assert document["error"]["exit_code"] == ConnectionFailed.exit_code
    assert document["error"]["message"] == line.removeprefix("nndb: error: ")
    assert document["result"]["findings"] == [] and document["result"]["error"]["message"] == document["error"]["message"]
    assert scratch_databases(deployed.postgres) == []


def test_ctrl_c_while_the_reference_is_built_drops_it_and_a_killed_runs_leftover_goes_next_time(deployed: DbStack) -> None:
    seen: list[str] = []

    def interrupt(event: str, name: str) -> None:
        seen.append(name)
        if event == "reference built":
            assert name in scratch_databases(deployed.postgres)
            raise KeyboardInterrupt

    context = context_for(deployed, run_lock=True)
    try:
        with pytest.raises(KeyboardInterrupt):
            check_stack(context, observer=interrupt)
    finally:
        context.close()
    assert seen and seen[0].startswith("nndb_drift_")
    assert_no_scratch_left(deployed)

    with deployed.postgres.connect() as conn:  # what a run killed with SIGKILL leaves behind
        conn.execute("CREATE DATABASE nndb_drift_0123456789ab")
    result = drift(deployed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: postgres: dropped 1 scratch database(s) a killed drift run left behind (nndb_drift_0123456789ab)" in result.stdout
    assert_no_scratch_left(deployed)


def test_sigterm_while_the_reference_is_built_drops_it(deployed: DbStack) -> None:
    """A real process, stopped mid-reference: a transaction holding auth_migrator's row makes the sandbox wait there."""
    import subprocess
    import time

    from tests.support.hooks import NNDB
    from tests.support.local_servers import CHILD_PYTHONPATH

    blocker = deployed.postgres.connect(autocommit=False)
    blocker.execute("ALTER ROLE auth_migrator CONNECTION LIMIT -1")  # row lock on auth_migrator until rollback
    env = {"PATH": "/usr/bin:/bin", "HOME": str(deployed.project), **CHILD_PYTHONPATH, **deployed.environ}
    process = subprocess.Popen(
        [NNDB, "drift", STACK], cwd=deployed.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        with deployed.postgres.connect() as watcher:
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nndb' AND wait_event_type = 'Lock'"
                ).fetchone()
                if waiting and waiting[0] and scratch_databases(deployed.postgres):
                    break
                time.sleep(0.05)
            else:
                pytest.fail("drift never reached the migrator's sandbox")
        process.terminate()
        time.sleep(0.5)
    finally:
        blocker.rollback()
        blocker.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert stderr.strip().splitlines() == ["nndb: error: aborted"]
    assert_no_scratch_left(deployed)
    with deployed.postgres.connect() as conn:
        assert conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'auth_migrator'").fetchone() == (None,)


def test_a_superuser_rotation_the_server_had_not_seen_is_completed_and_said(deployed: DbStack) -> None:
    environ = {
        **deployed.environ,
        "POSTGRES_PASSWORD": "pg-super-Rotated-99",
        "POSTGRES_PASSWORD_PREVIOUS": deployed.environ["POSTGRES_PASSWORD"],
    }
    result = nndb(deployed, "drift", STACK, environ=environ, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: postgres: password rotated for superuser nexanest (the server still had the previous credential)" in result.stdout
    assert "pg-super-" not in result.stdout + result.stderr


def test_a_server_that_goes_away_mid_check_is_one_connection_error_naming_it(deployed: DbStack) -> None:
    def stop_timescale(event: str, name: str) -> None:
        if event == "scratch created" and name not in scratch_databases(deployed.postgres):
            deployed.timescale.stop()  # the analytics reference, on timescale, is being built

    context = context_for(deployed, run_lock=True, connect_timeout_s=2)
    try:
        with pytest.raises(ConnectionFailed) as failure:
            check_stack(context, observer=stop_timescale)
    finally:
        context.close()
    assert str(failure.value).startswith(f"timescale at 127.0.0.1:{deployed.timescale.port}: ")
    assert "\n" not in str(failure.value)
    assert scratch_databases(deployed.postgres) == []
