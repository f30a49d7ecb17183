"""Superuser rotation: the server keeps its old superuser password (the official image applies
POSTGRES_PASSWORD_FILE only to an empty data directory), the secret moved on. The hooks log in with
the previous credential once, set the current one (a SCRAM verifier) and report it; the old password
stops working; nothing else is touched. Without a previous credential that works the run stops in
the preflight with one line and changes nothing.

Real PostgreSQL servers (tests/fixtures/servers.py); the hooks run as `cdktf deploy` runs them
(`nndb hooks run local-db` in a subprocess).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from nexanest_db.config import load_environment
from nexanest_db.errors import ConnectionFailed
from nexanest_db.pg import RUN_LOCK_KEY
from nexanest_db.secrets import DEV_DEFAULT_PASSWORD
from tests.fixtures.servers import DbStack
from tests.fixtures.vault_server import VaultTestServer
from tests.integration.test_connection_failures import assert_untouched
from tests.integration.test_rotation import VALUES_BY_NAME, VAULT_SECRETS_TABLE, assert_portfolio_untouched, can_login, plant_portfolio_data
from tests.support.hooks import context_for, nndb
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

OLD = STACK_PASSWORDS["POSTGRES_PASSWORD"]  # what the server was initialized with (password A)
NEW = "rotated-pg-super-Secret-v2"  # the rotated secret (password B)
ROTATED_LINE = "+ nndb         postgres             password rotated for superuser nexanest"


def hooks(db_stack: DbStack, environ: Mapping[str, str]):
    # The backup phase is not what rotation is about: skip it to stay lean.
    return nndb(db_stack, "hooks", "run", "local-db", environ={"NNDB_DISABLE_PLUGINS": "backup", **environ})


def run_ok(db_stack: DbStack, environ: Mapping[str, str]) -> str:
    result = hooks(db_stack, environ)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def deploy_with_data(db_stack: DbStack, environ: Mapping[str, str]) -> None:
    """The stack as deployed with the servers' first passwords, plus another service's data (settled: the
    second run grants on the witness table, so the rotation run has nothing else to change)."""
    run_ok(db_stack, environ)
    plant_portfolio_data(db_stack)
    run_ok(db_stack, environ)


def superuser_can_login(db_stack: DbStack, password: str, *, instance: str = "postgres") -> bool:
    return can_login(db_stack, instance=instance, database="postgres", user="nexanest", password=password)


def assert_rotated_once_then_up_to_date(db_stack: DbStack, environ: Mapping[str, str], *, old: str = OLD) -> None:
    output = run_ok(db_stack, environ)
    assert [line.strip() for line in output.splitlines() if "password rotated for superuser" in line] == [ROTATED_LINE.strip()]
    assert "hooks: 1 change in" in output  # the rotation, counted like any change; nothing else changed
    assert old not in output and NEW not in output
    assert superuser_can_login(db_stack, NEW)
    assert not superuser_can_login(db_stack, old)
    assert superuser_can_login(db_stack, STACK_PASSWORDS["TIMESCALE_PASSWORD"], instance="timescale")  # the other instance: untouched
    assert_portfolio_untouched(db_stack)

    again = run_ok(db_stack, environ)
    assert "password rotated" not in again
    assert "hooks: 0 changes (up to date)" in again
    assert superuser_can_login(db_stack, NEW)


def test_env_source_rotates_with_the_previous_variable(db_stack: DbStack) -> None:
    deploy_with_data(db_stack, db_stack.environ)
    with db_stack.postgres.connect() as conn:  # the server logs every statement: the rotation must send a verifier only
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")

    assert_rotated_once_then_up_to_date(db_stack, {**db_stack.environ, "POSTGRES_PASSWORD": NEW, "POSTGRES_PASSWORD_PREVIOUS": OLD})

    server_log = (db_stack.postgres.base / "server.log").read_text(errors="replace")
    assert 'ALTER ROLE "nexanest" PASSWORD \'SCRAM-SHA-256$4096:' in server_log
    assert NEW not in server_log and OLD not in server_log


def test_env_source_rotates_away_from_the_dev_default_in_local(db_stack: DbStack) -> None:
    """A local stack first deployed with the default password, then given a real one: no *_PREVIOUS needed."""
    environ = {k: v for k, v in db_stack.environ.items() if k != "POSTGRES_PASSWORD"}  # POSTGRES_PASSWORD unset: the dev default
    with db_stack.postgres.connect() as conn:
        conn.execute(f"ALTER ROLE nexanest PASSWORD '{DEV_DEFAULT_PASSWORD}'")
    db_stack.postgres.password = DEV_DEFAULT_PASSWORD  # what the fixture's own superuser sessions use from now on
    deploy_with_data(db_stack, environ)

    assert_rotated_once_then_up_to_date(db_stack, {**environ, "POSTGRES_PASSWORD": NEW}, old=DEV_DEFAULT_PASSWORD)


def test_vault_source_rotates_with_the_previous_version(db_stack: DbStack, vault_server: VaultTestServer) -> None:
    config_file = db_stack.project / "config" / "local.toml"
    config_file.write_text(config_file.read_text().replace('[secrets]\nsource = "env"\n', VAULT_SECRETS_TABLE))
    settings = load_environment("local-db", config_dir=db_stack.project / "config").secrets.vault
    assert settings is not None
    vault_server.seed(settings, VALUES_BY_NAME)  # version 1 of every path: what the servers have
    environ = {k: v for k, v in db_stack.environ.items() if k not in STACK_PASSWORDS}  # every password from Vault
    environ |= {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    deploy_with_data(db_stack, environ)

    assert vault_server.put("nexanest/local/db/postgres", {"password": NEW}) == 2
    assert_rotated_once_then_up_to_date(db_stack, environ)


@pytest.mark.parametrize(
    ("previous", "hint"),
    [
        ({"POSTGRES_PASSWORD_PREVIOUS": "not-the-old-password"}, "set POSTGRES_PASSWORD_PREVIOUS to the password the server still has"),
        (
            {},
            "set POSTGRES_PASSWORD_PREVIOUS (or POSTGRES_PASSWORD_PREVIOUS_FILE) to the password the server still has (the dev default was tried)",
        ),
    ],
    ids=["wrong-previous", "dev-default-tried"],
)
def test_no_previous_that_works_stops_the_run_with_one_line_and_changes_nothing(
    db_stack: DbStack, previous: dict[str, str], hint: str
) -> None:
    result = hooks(db_stack, {**db_stack.environ, "POSTGRES_PASSWORD": NEW, **previous})

    assert result.returncode == ConnectionFailed.exit_code
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    port = db_stack.postgres.port
    assert errors[0] == (
        f"nndb: error: plugin 'init_sql' failed in nndb_preflight: postgres at 127.0.0.1:{port}: "
        "password authentication failed for user nexanest; check $POSTGRES_PASSWORD; the previous credential is refused too: "
        f"{hint}; or reset it over the container's local socket: "
        "docker exec -it nexanest-local-postgres psql -U nexanest -d postgres -c '\\password nexanest'"
    )
    for value in (NEW, OLD, "not-the-old-password", DEV_DEFAULT_PASSWORD):
        assert value not in result.stdout + result.stderr
    assert "hooks: failed before any change" in result.stdout
    assert superuser_can_login(db_stack, OLD)
    assert not superuser_can_login(db_stack, NEW)
    assert_untouched(db_stack)


def test_read_only_commands_never_rotate(db_stack: DbStack) -> None:
    result = nndb(
        db_stack, "migrate", "status", "local-db", environ={**db_stack.environ, "POSTGRES_PASSWORD": NEW, "POSTGRES_PASSWORD_PREVIOUS": OLD}
    )

    assert result.returncode == ConnectionFailed.exit_code
    assert "password authentication failed for user nexanest; check $POSTGRES_PASSWORD" in result.stderr
    assert NEW not in result.stdout + result.stderr and OLD not in result.stdout + result.stderr
    assert superuser_can_login(db_stack, OLD)


def test_two_runs_racing_rotate_once(db_stack: DbStack) -> None:
    """Both runs log in with the previous credential while a third holds the run lock; the first to get
    the lock rotates (and holds the lock to its end), the second then finds the current password already
    set and reports nothing."""
    environ = {**db_stack.environ, "POSTGRES_PASSWORD": NEW, "POSTGRES_PASSWORD_PREVIOUS": OLD}
    contexts = [context_for(db_stack, environ, lock_timeout_s=30) for _ in range(2)]
    changes = []
    try:
        with db_stack.postgres.connect() as holder, ThreadPoolExecutor(max_workers=2) as pool:
            holder.execute("SELECT pg_advisory_lock(%s, %s)", RUN_LOCK_KEY)
            futures = {pool.submit(context.pg, "postgres"): context for context in contexts}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # both logged in with the previous credential, both waiting for the lock
                if holder.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nndb'").fetchone() == (2,):
                    break
                time.sleep(0.05)
            holder.execute("SELECT pg_advisory_unlock(%s, %s)", RUN_LOCK_KEY)
            for future in as_completed(futures, timeout=30):
                future.result()
                context = futures[future]
                changes += context.take_changes()
                assert context.take_changes() == []  # handed out once
                context.close()  # end of that run: releases the run lock for the other one
    finally:
        for context in contexts:
            context.close()
    assert [(c.subject, c.summary) for c in changes] == [("postgres", "password rotated for superuser nexanest")]
    assert superuser_can_login(db_stack, NEW)
    assert not superuser_can_login(db_stack, OLD)
