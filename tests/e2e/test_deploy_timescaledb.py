"""`cdktf deploy local-db` on a real TimescaleDB: hypertables, every analytics migration, a backup that restores.

The project's timescale stand-in has no extension (Debian does not package TimescaleDB), so this test
needs an image with it: PostgreSQL 15 plus TimescaleDB built by hand from its public source, tagged
``nexanest-handbuilt/timescaledb:pg15`` (tests/support/standins.HANDBUILT_TIMESCALEDB), or, where a
registry answers, the official image (``NNDB_TIMESCALEDB_TEST_IMAGE=timescale/timescaledb:latest-pg15``,
which the stack pulls). By policy this project ships no recipe that builds the first, so CI cannot run
this test; it is opt-in with the other deploy tests (``scripts/test.sh --deploy``), and a missing
image FAILS it, saying what it needs.

1. The upgrade of an existing local-db: deployed by the project as it was (no timescaledb preload,
   the first text of V001, no V003) it has plain tables and V001 in its ledger. Deployed again with
   today's files (preload, the fixed V001 that supersedes that checksum, V003), TimescaleDB is created,
   the ledger is accepted, and V003 turns both tables into hypertables, rows kept.
2. Destroy: the guard's backups of the analytics database restore (timescaledb_pre_restore/post_restore).
3. From nothing with today's files: hypertables from the baseline, every analytics migration applied,
   and `nndb backup run` + `nndb backup verify` prove the analytics backup restores.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.fixtures.toolchain import Toolchain
from tests.support.cli_json import json_result
from tests.support.deploy import DeployedCopy
from tests.support.project import REPO_ROOT
from tests.support.standins import HANDBUILT_TIMESCALEDB

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]

PRELOAD = 'shared_preload_libraries = "timescaledb"\n'
V001 = "sql/migrations/analytics/V001__add_price_ticks_time_index.sql"
V003 = "sql/migrations/analytics/V003__hypertables_where_timescaledb_runs.sql"
FIRST_V001_TEXT = "-- Dashboards read the latest ticks across all symbols.\nCREATE INDEX price_ticks_time_idx ON price_ticks (time DESC);\n"


@pytest.fixture(scope="module")
def timescale(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain) -> Iterator[DeployedCopy]:
    # NNDB_TIMESCALEDB_TEST_IMAGE=timescale/timescaledb:latest-pg15 runs it on the official image where a registry answers.
    image = os.environ.get("NNDB_TIMESCALEDB_TEST_IMAGE") or HANDBUILT_TIMESCALEDB
    inspected = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30)
    if inspected.returncode != 0 and image == HANDBUILT_TIMESCALEDB:
        pytest.fail(
            f"TimescaleDB deploy test: image {image} is not on the engine. It needs PostgreSQL 15 with the timescaledb "
            "extension built from TimescaleDB's public source into the postgres stand-in (nexanest-fixture/postgres:15), "
            "tagged with that name (this project ships no recipe for it, docs/deploy.md); or, where a registry answers, "
            "NNDB_TIMESCALEDB_TEST_IMAGE=timescale/timescaledb:latest-pg15",
            pytrace=False,
        )
    deployed = DeployedCopy.create(
        tmp_path_factory.mktemp("e2e-timescaledb") / "project", toolchain, label=f"local-db on TimescaleDB ({image})", timescale_image=image
    )
    try:
        yield deployed
    finally:
        deployed.teardown()


def analytics(deployed: DeployedCopy):  # type: ignore[no-untyped-def]
    return deployed.connect("timescale", "nexanest", deployed.passwords["TIMESCALE_PASSWORD"], "analytics")


def hypertables(deployed: DeployedCopy) -> set[str]:
    with analytics(deployed) as conn:
        if conn.execute("select count(*) from pg_extension where extname = 'timescaledb'").fetchone() == (0,):
            return set()
        return {r[0] for r in conn.execute("select hypertable_name from timescaledb_information.hypertables")}


def ledger(deployed: DeployedCopy) -> list[int]:
    with analytics(deployed) as conn:
        return [r[0] for r in conn.execute("select version from nndb.schema_migrations where service = 'analytics' order by 1")]


def test_timescaledb_upgrade_fresh_deploy_and_restorable_backups(timescale: DeployedCopy) -> None:
    pw = timescale.passwords
    current = {path: (REPO_ROOT / path).read_text() for path in (V001, V003)}

    # 1a. local-db as the project deployed it before: no preload, the first V001, no V003
    timescale.edit_config(PRELOAD, "")
    (timescale.root / V001).write_text(FIRST_V001_TEXT)
    (timescale.root / V003).unlink()
    output = timescale.cdktf("deploy as before the fix (plain tables)", "deploy").output
    assert "timescaledb extension not available: price_ticks and portfolio_snapshots stay plain tables" in output
    assert hypertables(timescale) == set() and ledger(timescale) == [0, 1, 2]
    with timescale.connect("timescale", "analytics_app", pw["ANALYTICS_DB_PASSWORD"], "analytics") as conn:
        conn.execute("insert into analytics.price_ticks (time, symbol, price) values ('2026-01-02T03:04:05Z', 'ACME', 42)")

    # 1b. today's files: the extension arrives, the old V001 checksum is accepted, V003 converts with the rows
    timescale.edit_config("[timescale.settings]\n", f"[timescale.settings]\n{PRELOAD}")
    for path, text in current.items():
        (timescale.root / path).write_text(text)
    output = timescale.cdktf("deploy with today's files (upgrade)", "deploy").output
    assert "created extension timescaledb" in output and "checksum mismatch" not in output
    assert hypertables(timescale) == {"price_ticks", "portfolio_snapshots"}
    assert ledger(timescale) == [0, 1, 2, 3]
    with timescale.connect("timescale", "analytics_app", pw["ANALYTICS_DB_PASSWORD"], "analytics") as conn:
        assert conn.execute("select price from analytics.price_ticks where symbol = 'ACME'").fetchone() == (42,)

    # 2. destroy: the guard's backup of the TimescaleDB database restores (pre/post restore) before anything goes
    output = timescale.cdktf("destroy", "destroy").output
    assert "timescale/analytics" in output and "before-destroy local-db: 3 backups taken and proven by restore" in output
    assert timescale.names_on_engine() == {"containers": "", "volumes": "", "networks": ""}

    # 3. from nothing with today's files: hypertables from the baseline, every migration applies
    output = timescale.cdktf("deploy from nothing", "deploy").output
    # V001 finds the hypertable's own time index: a notice, not the error it was
    assert 'V001: relation "price_ticks_time_idx" already exists, skipping' in output and "nndb: error" not in output
    assert hypertables(timescale) == {"price_ticks", "portfolio_snapshots"}
    assert ledger(timescale) == [0, 1, 2, 3]
    with analytics(timescale) as conn:
        time_indexes = conn.execute(
            "select count(*) from pg_indexes where schemaname = 'analytics' and tablename = 'price_ticks' and indexdef like '%(\"time\" DESC)'"
        ).fetchone()
        assert time_indexes == (1,), "one time index: the hypertable's, which V001 leaves alone"
        assert conn.execute("select cash_value from analytics.portfolio_snapshots limit 0").description is not None  # V002
    with timescale.connect("timescale", "analytics_app", pw["ANALYTICS_DB_PASSWORD"], "analytics") as conn:
        for day in range(1, 4):
            conn.execute(
                "insert into analytics.price_ticks (time, symbol, price) values (%s, 'ACME', %s)", (f"2026-0{day}-01T00:00:00Z", day)
            )
    backup = timescale.nndb("backup", "run", "local-db")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    catalog = json_result(timescale.nndb("backup", "list", "local-db", "--json").stdout, "backup-list")
    latest = max((b for b in catalog["backups"] if b["subject"] == "timescale/analytics"), key=lambda b: b["taken_at"])
    # restored into a scratch database (timescaledb_pre_restore/post_restore) with the hypertable's rows counted
    assert latest["verified"] is True and latest["row_counts"]["analytics.price_ticks"] == 3, latest
    verify = timescale.nndb("backup", "verify", "local-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "backup: 4 latest backups restored and verified" in verify.stdout  # 3 databases and Redis
