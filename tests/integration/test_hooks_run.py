"""`nndb hooks run local-db` on fresh PostgreSQL, TimescaleDB-less PostgreSQL and Redis: everything in
place after one run, nothing to do on the second; `migrate status` and `backup list|verify` agree."""

from __future__ import annotations

import pytest

from tests.fixtures.servers import DbStack
from tests.support.cli_json import json_result
from tests.support.hooks import nndb
from tests.support.local_servers import STACK_PASSWORDS

pytestmark = pytest.mark.integration

SERVICES = {"auth": ("postgres", 3), "portfolio": ("postgres", 2), "analytics": ("timescale", 3)}


def test_first_run_sets_everything_up_and_second_run_changes_nothing(db_stack: DbStack) -> None:
    first = nndb(db_stack, "hooks", "run", "local-db")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "hooks: 0 changes" not in first.stdout
    assert "timescaledb extension not available: price_ticks and portfolio_snapshots stay plain tables" in first.stderr
    for secret in STACK_PASSWORDS.values():
        assert secret not in first.stdout + first.stderr

    for service, (instance, migrations) in SERVICES.items():
        server = db_stack.postgres if instance == "postgres" else db_stack.timescale
        with server.connect(service) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM nndb.schema_migrations WHERE service = %s ORDER BY 1", (service,))]
            assert versions == list(range(migrations + 1))
            owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (service,)).fetchone()
            assert owner == (f"{service}_owner",)
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (service,))}
            assert tables
            assert {r[0] for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = %s", (service,))} == {
                f"{service}_owner"
            }
    acl = db_stack.redis.aclfile.read_text()
    assert "user auth on" in acl and "~auth:*" in acl and "user analytics on" in acl

    second = nndb(db_stack, "hooks", "run", "local-db")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "hooks: 0 changes (up to date)" in second.stdout
    assert "  + " not in second.stdout

    status = nndb(db_stack, "migrate", "status", "local-db", "--json")
    assert status.returncode == 0, status.stderr
    payload = json_result(status.stdout, "migrate-status")
    assert payload["pending"] == 0 and payload["applied"] == sum(m + 1 for _, m in SERVICES.values())

    listing = nndb(db_stack, "backup", "list", "local-db", "--json")
    catalog = json_result(listing.stdout, "backup-list")
    assert set(catalog["databases"]) == {"postgres/auth", "postgres/portfolio", "timescale/analytics"}
    assert all(b["verified"] for b in catalog["backups"]) and len(catalog["backups"]) == 3
    assert catalog["databases"]["postgres/auth"]["policy"] == {"schedule": "0 2 * * *", "retention_days": 3, "pitr": False}

    verify = nndb(db_stack, "backup", "verify", "local-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "backup: 3 latest backups restored and verified" in verify.stdout


def test_json_output_and_disabled_plugin(db_stack: DbStack) -> None:
    result = nndb(db_stack, "hooks", "run", "local-db", "--json", environ={**db_stack.environ, "NNDB_DISABLE_PLUGINS": "backup"})
    assert result.returncode == 0, result.stderr
    report = json_result(result.stdout, "hooks-run")
    assert report["disabled"] == ["backup"]
    assert report["change_count"] == len(report["changes"]) > 0
    assert {c["plugin"] for c in report["changes"]} == {"init_sql", "migrations", "permissions", "redis_acl", "monitoring"}
    assert not (db_stack.backup_dir / "local-db" / "catalog.json").exists()

    unknown = nndb(db_stack, "hooks", "run", "local-db", "--disable-plugin", "bakup")
    assert unknown.returncode == 2
    assert "no plugin named 'bakup'" in unknown.stderr
