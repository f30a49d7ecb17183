"""A fourth service from config and SQL only (docs/runbooks/add-service.md, its `sh` blocks run as written):
the hooks create, migrate, isolate and back it up; removing it from config is refused while its database holds data."""

from __future__ import annotations

import re

import psycopg
import pytest
import redis

from nexanest_db.errors import ConfigError
from tests.fixtures.servers import DbStack
from tests.support.cli_json import json_result
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import STACK_PASSWORDS
from tests.support.project import REPO_ROOT
from tests.support.runbooks import run_blocks, sh_blocks

pytestmark = pytest.mark.integration

RUNBOOK = REPO_ROOT / "docs" / "runbooks" / "add-service.md"
BILLING_PASSWORDS = {"BILLING_DB_PASSWORD": "billing-app-Secret-17", "BILLING_REDIS_PASSWORD": "billing-redis-Secret-18"}
SERVICE_TABLE = re.compile(r"\n\[services\.billing\]\n(?:[a-z_]+ = .*\n)+")


def run_sections(db_stack: DbStack, environ: dict[str, str], *sections: str):  # type: ignore[no-untyped-def]
    blocks = [block for section in sections for block in sh_blocks(RUNBOOK, section=section)]
    return run_blocks(blocks, cwd=db_stack.project, environ=environ)


def test_a_fourth_service_from_config_and_sql_only_then_its_removal(db_stack: DbStack) -> None:
    run_in_process(db_stack)  # the tier as deployed: three services
    environ = {**db_stack.environ, **BILLING_PASSWORDS}

    # Config table, schema, migration, secrets check, the hooks the deploy runs, verification: as the runbook says.
    added = run_sections(
        db_stack, environ, "1. The config table", "2. The schema", "3. Its first migration", "4. The secrets", "5. Deploy", "6. Verify"
    )
    out = added.stdout + added.stderr
    assert added.returncode == 0, out[-4000:]
    assert "migrate: wrote sql/migrations/billing/V001__add_invoice_paid_at.sql" in out
    assert "billing_app" in out and "redis_billing" in out  # secrets check lists the new service's secrets
    report = " ".join(out.split())  # the hooks' report: "+ <plugin> <subject> <summary>" in aligned columns
    for line in (
        "+ init_sql postgres/billing created role billing_owner",
        "+ init_sql postgres/billing created database billing (owner billing_owner)",
        "+ migrations postgres/billing created schema billing (owner billing_owner)",
        "+ migrations postgres/billing applied V001 add invoice paid at",
        "+ redis_acl redis created Redis user billing (keys billing:*)",
        "+ permissions postgres/billing privileges set on database billing",
        "+ backup postgres/billing first backup",
        "local-db: no drift (billing;",
    ):
        assert line in report, line
    for secret in (*STACK_PASSWORDS.values(), *BILLING_PASSWORDS.values()):
        assert secret not in out

    # Created and migrated: the ledger has the baseline and V001, the owner owns the tables.
    with db_stack.postgres.connect("billing") as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM nndb.schema_migrations WHERE service = 'billing' ORDER BY 1")]
        owners = set(conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'billing'").fetchall())
        columns = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'invoices'")}
    assert versions == [0, 1]
    assert owners == {("billing_owner",)}
    assert "paid_at" in columns

    # Isolated: billing_app writes its own schema and reaches no other service's database; nobody else reaches billing.
    app_password = BILLING_PASSWORDS["BILLING_DB_PASSWORD"]
    with db_stack.postgres.connect("billing", user="billing_app", password=app_password) as app:
        app.execute("INSERT INTO billing.invoices (customer_id, amount) VALUES (1, 9.50)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("CREATE TABLE billing.sneaky (id int)")
    for database in ("auth", "portfolio", "postgres"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            db_stack.postgres.connect(database, user="billing_app", password=app_password)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        db_stack.postgres.connect("billing", user="auth_app", password=STACK_PASSWORDS["AUTH_DB_PASSWORD"])
    cache = db_stack.redis.client(username="billing", password=BILLING_PASSWORDS["BILLING_REDIS_PASSWORD"])
    cache.set("billing:invoice:1", "open")
    assert cache.get("billing:invoice:1") == "open"
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.get("auth:session:1")

    # Backed up: registered with a backup proven by a restore, beside the three others.
    listing = nndb(db_stack, "backup", "list", "local-db", "--json", environ=environ)
    catalog = json_result(listing.stdout, "backup-list")
    assert "postgres/billing" in catalog["databases"]
    assert any(b["subject"] == "postgres/billing" and b["verified"] for b in catalog["backups"])

    again = nndb(db_stack, "hooks", "run", "local-db", environ=environ)
    assert again.returncode == 0, again.stderr
    assert "hooks: 0 changes (up to date)" in again.stdout

    # Removal from config while the database holds data: refused before anything changes, one line.
    local = db_stack.project / "config" / "local.toml"
    with_service = local.read_text(encoding="utf-8")
    assert SERVICE_TABLE.search(with_service)
    local.write_text(SERVICE_TABLE.sub("\n", with_service), encoding="utf-8")
    refused = nndb(db_stack, "hooks", "run", "local-db", environ=environ)
    assert refused.returncode == ConfigError.exit_code, refused.stdout + refused.stderr
    error_lines = [line for line in refused.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, refused.stderr
    assert (
        "postgres/billing: database billing of service billing still holds data (1 table with rows, e.g. billing.invoices) "
        "but config/local.toml has no [services.billing] any more" in error_lines[0]
    )
    assert "docs/runbooks/add-service.md#removing-a-service" in error_lines[0]
    assert "hooks: failed before any change" in refused.stdout + refused.stderr
    with db_stack.postgres.connect("billing") as conn:
        assert conn.execute("SELECT count(*) FROM billing.invoices").fetchone() == (1,)

    # Put back, the hooks run again; then retired the runbook's way: last backup exported, database dropped, table deleted.
    local.write_text(with_service, encoding="utf-8")
    back = nndb(db_stack, "hooks", "run", "local-db", environ=environ)
    assert back.returncode == 0, back.stdout + back.stderr
    blocks = sh_blocks(RUNBOOK, section="Removing a service")
    assert len(blocks) == 2
    retired = run_blocks(blocks[:1], cwd=db_stack.project, environ=environ)
    assert retired.returncode == 0, (retired.stdout + retired.stderr)[-4000:]
    assert "export: postgres/billing backup" in retired.stdout
    assert (db_stack.project / "billing-final.pgdump").stat().st_size > 0
    with db_stack.postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'billing'").fetchone() == (0,)
    local.write_text(SERVICE_TABLE.sub("\n", with_service), encoding="utf-8")
    without = run_blocks(blocks[1:], cwd=db_stack.project, environ=environ)
    assert without.returncode == 0, (without.stdout + without.stderr)[-4000:]
    assert "billing" not in without.stdout


def test_an_emptied_removed_service_database_is_only_reported(db_stack: DbStack) -> None:
    """No data, nothing lost: the run goes on and says once which database is left over."""
    local = db_stack.project / "config" / "local.toml"
    original = local.read_text(encoding="utf-8")
    environ = {**db_stack.environ, "LEDGER_DB_PASSWORD": "ledger-app-Secret-19", "LEDGER_REDIS_PASSWORD": "ledger-redis-Secret-20"}
    (db_stack.project / "sql" / "schemas" / "ledger").mkdir()
    (db_stack.project / "sql" / "schemas" / "ledger" / "schema.sql").write_text("CREATE TABLE entries (id int);\n", encoding="utf-8")
    local.write_text(
        original + '\n[services.ledger]\ninstance = "timescale"\ndatabase = "ledger"\nschema = "ledger"\nredis_prefix = "ledger:"\n',
        encoding="utf-8",
    )
    first = nndb(db_stack, "hooks", "run", "local-db", environ=environ)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "+ init_sql timescale/ledger created database ledger (owner ledger_owner)" in " ".join(first.stdout.split())

    local.write_text(original, encoding="utf-8")  # removed while its only table is empty
    removed = nndb(db_stack, "hooks", "run", "local-db", environ=environ)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert (
        "timescale/ledger: database ledger belonged to service ledger, which config/local.toml no longer has; it holds no data"
        in removed.stderr
    )
    with db_stack.timescale.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'ledger'").fetchone() == (1,)  # never dropped by the tool
