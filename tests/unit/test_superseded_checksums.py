"""A migration may declare the checksum of an earlier text it replaces; only that one is accepted in a ledger."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from nexanest_db.config import ServiceConfig
from nexanest_db.ledger import LedgerRow, make_plan
from nexanest_db.migration_files import discover
from nexanest_db.roles import service_roles
from tests.support.project import REPO_ROOT

ROLES = service_roles("analytics", ServiceConfig(instance="timescale", database="analytics", schema="analytics", redis_prefix="analytics:"))
FIRST_V001 = "-- Dashboards read the latest ticks across all symbols.\nCREATE INDEX price_ticks_time_idx ON price_ticks (time DESC);\n"


def row(version: int, checksum: str) -> LedgerRow:
    return LedgerRow(
        version=version, description="d", script="s", checksum=checksum, applied_at=datetime.now(UTC), execution_ms=1, applied_by="t"
    )


def test_the_shipped_v001_fix_accepts_ledgers_that_applied_its_first_text() -> None:
    migrations = discover(REPO_ROOT / "sql", "analytics")
    v001 = next(m for m in migrations if m.version == 1)
    first = hashlib.sha256(FIRST_V001.encode()).hexdigest()
    assert v001.superseded_checksums == {first}
    assert "IF NOT EXISTS" in v001.sources[0].text
    applied = {m.version: row(m.version, first if m.version == 1 else m.checksum) for m in migrations if m.version <= 2}
    plan = make_plan(ROLES, migrations, applied, ledger_exists=True)
    assert plan.changed == [] and plan.problems() == []
    assert [m.version for m in plan.pending] == [v for v in (m.version for m in migrations) if v > 2]


def test_any_other_earlier_text_is_still_a_checksum_mismatch() -> None:
    migrations = discover(REPO_ROOT / "sql", "analytics")
    applied = {0: row(0, migrations[0].checksum), 1: row(1, "0" * 64)}
    plan = make_plan(ROLES, migrations, applied, ledger_exists=True)
    (problem,) = plan.problems()
    assert problem.startswith("sql/migrations/analytics/V001__add_price_ticks_time_index.sql: checksum mismatch")
