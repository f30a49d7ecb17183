"""Least privilege, proven by connecting as each role and being refused."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures.servers import DbStack
from tests.support.hooks import run_in_process, summaries
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

AUTH_APP = STACK_PASSWORDS["AUTH_DB_PASSWORD"]
PORTFOLIO_APP = STACK_PASSWORDS["PORTFOLIO_DB_PASSWORD"]
ANALYTICS_RO = STACK_PASSWORDS["ANALYTICS_READONLY_PASSWORD"]


@pytest.fixture(scope="module")
def deployed(module_db_stack: DbStack) -> DbStack:
    """One deployment for the module: each test below only reads, or uses objects of its own."""
    run_in_process(module_db_stack, disabled=("backup",))
    return module_db_stack


def refused(action, sqlstate: str) -> None:
    with pytest.raises(psycopg.Error) as excinfo:
        action()
    assert excinfo.value.sqlstate == sqlstate, excinfo.value


def login_refused(action, reason: str) -> None:
    """libpq reports a refused login without a SQLSTATE: match the server's FATAL line."""
    with pytest.raises(psycopg.OperationalError, match=reason):
        action()


def test_each_login_role_works_only_in_its_own_schema(deployed: DbStack) -> None:
    pg = deployed.postgres
    with pg.connect("auth", user="auth_app", password=AUTH_APP) as conn:
        conn.execute("INSERT INTO auth.users (email, password_hash) VALUES ('a@example.com', 'x')")
        assert conn.execute("SELECT count(*) FROM auth.users").fetchone() == (1,)
        refused(lambda: conn.execute("CREATE TABLE auth.sneaky (x int)"), "42501")  # no CREATE on its schema
        refused(lambda: conn.execute("CREATE TABLE public.sneaky (x int)"), "42501")  # PUBLIC stripped of CREATE
        refused(lambda: conn.execute("SELECT * FROM nndb.schema_migrations"), "42501")  # the ledger is not the app's
        refused(lambda: conn.execute("DROP TABLE auth.users"), "42501")  # only the owner may drop
    # Another service's login role cannot even connect to this service's database...
    login_refused(lambda: pg.connect("auth", user="portfolio_app", password=PORTFOLIO_APP), 'permission denied for database "auth"')
    login_refused(lambda: pg.connect("portfolio", user="auth_app", password=AUTH_APP), 'permission denied for database "portfolio"')
    # ...and an owner role cannot log in at all.
    login_refused(lambda: pg.connect("auth", user="auth_owner", password="anything"), "password authentication failed")


def test_a_stranger_role_gets_nothing(deployed: DbStack) -> None:
    with deployed.postgres.connect() as admin:
        admin.execute("CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw'")
    login_refused(
        lambda: deployed.postgres.connect("auth", user="stranger", password="stranger-pw"), 'permission denied for database "auth"'
    )
    # The test servers never ran the image's first-start hardening (like an existing volume): the hooks re-apply it.
    for maintenance in ("postgres", "template1"):
        login_refused(
            lambda maintenance=maintenance: deployed.postgres.connect(maintenance, user="stranger", password="stranger-pw"),
            f'permission denied for database "{maintenance}"',
        )
    login_refused(
        lambda: deployed.postgres.connect("postgres", user="auth_app", password=AUTH_APP), 'permission denied for database "postgres"'
    )
    with deployed.postgres.connect() as admin:
        assert admin.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone() == (False,)


def test_analytics_readonly_reads_but_cannot_write(deployed: DbStack) -> None:
    ts = deployed.timescale
    with ts.connect("analytics") as admin:
        admin.execute("INSERT INTO analytics.price_ticks (time, symbol, price) VALUES (now(), 'ACME', 1.5)")
    with ts.connect("analytics", user="analytics_readonly", password=ANALYTICS_RO) as conn:
        assert conn.execute("SELECT symbol FROM analytics.price_ticks").fetchall() == [("ACME",)]
        refused(lambda: conn.execute("INSERT INTO analytics.price_ticks (time, symbol, price) VALUES (now(), 'X', 1)"), "42501")
        refused(lambda: conn.execute("DELETE FROM analytics.price_ticks"), "42501")
    with ts.connect("analytics", user="analytics_app", password=STACK_PASSWORDS["ANALYTICS_DB_PASSWORD"]) as conn:
        conn.execute("INSERT INTO analytics.price_ticks (time, symbol, price) VALUES (now(), 'X', 1)")


def test_future_tables_follow_through_default_privileges(deployed: DbStack) -> None:
    with deployed.postgres.connect("auth") as admin:
        # What a later migration does: it runs as the owner role.
        admin.execute("SET ROLE auth_owner")
        admin.execute("CREATE TABLE auth.audit_log (id bigint GENERATED ALWAYS AS IDENTITY, note text)")
    with deployed.postgres.connect("auth", user="auth_app", password=AUTH_APP) as conn:
        conn.execute("INSERT INTO auth.audit_log (note) VALUES ('without re-running the hooks')")
        assert conn.execute("SELECT count(*) FROM auth.audit_log").fetchone() == (1,)


def test_permissions_rerun_writes_nothing_and_repairs_drift(deployed: DbStack) -> None:
    permissions_only = {"hooks": ("nndb_set_permissions",)}
    run_in_process(deployed, **permissions_only)  # other tests of this module may have added tables
    assert summaries(run_in_process(deployed, **permissions_only)) == []
    with deployed.postgres.connect("portfolio") as admin:
        admin.execute("REVOKE SELECT ON portfolio.holdings FROM portfolio_app")
        admin.execute("GRANT CONNECT ON DATABASE portfolio TO PUBLIC")
    repaired = summaries(run_in_process(deployed, **permissions_only))
    assert repaired == ["postgres/portfolio: privileges set on database portfolio, relation holdings"]
    with deployed.postgres.connect("portfolio", user="portfolio_app", password=PORTFOLIO_APP) as conn:
        conn.execute("SELECT count(*) FROM portfolio.holdings")
    assert summaries(run_in_process(deployed, **permissions_only)) == []
