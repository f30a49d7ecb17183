"""`nndb status <stack>` against real servers: green on a healthy tier; red, by name, for a stopped server,
an overdue backup and a pending migration; the --json document; read-only.

One tier per test (``db_stack``: fresh PostgreSQL, TimescaleDB's stand-in and Redis), brought to the
deployed state by the real post-apply hooks (roles, migrations, ACL users, the monitoring identities,
verified backups), then broken one way per test.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from nexanest_db.errors import StatusRed
from tests.fixtures.replication import start_standby
from tests.fixtures.servers import DbStack
from tests.support.cli_json import json_result
from tests.support.hooks import nndb, run_in_process, write_migration

pytestmark = pytest.mark.integration
STACK = "local-db"


@pytest.fixture
def deployed(db_stack: DbStack) -> DbStack:
    report = run_in_process(db_stack)
    assert report.change_count > 0
    return db_stack


def status(db_stack: DbStack, *args: str):  # type: ignore[no-untyped-def]
    return nndb(db_stack, "status", STACK, *args, timeout=60)


def red_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("red: ")]


def test_a_healthy_tier_is_green_with_every_instance_and_service(deployed: DbStack) -> None:
    result = status(deployed)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].startswith("local-db: OK")
    for name in ("postgres", "timescale", "redis", "auth", "portfolio", "analytics"):
        assert any(line.startswith(f"{name} ") and " OK " in line for line in result.stdout.splitlines()), name

    document = json_result(status(deployed, "--json").stdout, "status")
    assert document["schema"] == 1 and document["stack"] == STACK and document["state"] == "ok"
    assert document["findings"] == []
    for name in ("postgres", "timescale"):
        instance = document["instances"][name]
        assert instance["reachable"] and instance["version"].startswith("15.")
        assert 1 <= instance["connections"]["used"] < instance["connections"]["max"]
        assert instance["uptime_s"] >= 0 and instance["tls"] is None
        assert instance["wal_archiving"] is None  # local-db has no PITR
        assert instance["replication"] == {"role": "primary", "clients": [], "nodes": {}}
    redis = document["instances"]["redis"]
    assert redis["version"].startswith("7.") and redis["memory"]["used_bytes"] > 0 and redis["memory"]["max_bytes"] >= 0
    assert redis["acl_users"] == {"present": ["analytics", "auth", "default", "nndb_monitor", "portfolio"], "missing": []}
    for name, (instance, migrations) in {
        "auth": ("postgres", 4),
        "portfolio": ("postgres", None),
        "analytics": ("timescale", None),
    }.items():
        service = document["services"][name]
        assert service["instance"] == instance and service["state"] == "ok"
        assert service["migrations"]["pending"] == [] and service["migrations"]["problems"] == []
        if migrations is not None:
            assert service["migrations"]["applied"] == migrations
        backup = service["backup"]
        assert backup["newest_verified"] is True and 0 <= backup["newest_verified_age_s"] < 600
        assert backup["max_age_s"] == 86400 + 3600  # local.toml: "0 2 * * *"


def test_a_stopped_server_is_red_and_named(deployed: DbStack) -> None:
    deployed.timescale.stop()
    result = status(deployed)
    assert result.returncode == StatusRed.exit_code, result.stderr
    (line,) = red_lines(result.stderr)
    assert line.startswith(f"red: timescale: unreachable: timescale at 127.0.0.1:{deployed.timescale.port}: connection refused")
    assert result.stderr.splitlines()[-1] == "nndb: error: local-db: 1 red item (listed above)"
    document = json_result(status(deployed, "--json").stdout, "status", ok=False)
    assert document["state"] == "red"
    assert document["instances"]["timescale"]["reachable"] is False
    assert document["services"]["analytics"]["checked"] is False  # its instance's red line says why
    assert document["services"]["analytics"]["state"] == "unknown"
    assert any(line.startswith("analytics ") and " UNKNOWN " in line for line in result.stdout.splitlines())
    assert document["instances"]["postgres"]["reachable"] is True


def test_an_overdue_backup_is_red_and_named(deployed: DbStack) -> None:
    catalog_file = deployed.backup_dir / STACK / "catalog.json"
    catalog = json.loads(catalog_file.read_text())
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    for record in catalog["backups"]:
        if record["subject"] == "postgres/portfolio":
            record["taken_at"] = three_days_ago.isoformat(timespec="microseconds")
    catalog_file.write_text(json.dumps(catalog))
    result = status(deployed)
    assert result.returncode == StatusRed.exit_code
    (line,) = red_lines(result.stderr)
    assert line.startswith("red: portfolio: backup overdue: newest verified backup of postgres/portfolio is 3d00h old")
    assert "(schedule '0 2 * * *' allows 1d01h)" in line


def test_a_pending_migration_is_red_and_named_and_status_applies_nothing(deployed: DbStack) -> None:
    write_migration(deployed, "portfolio", "V900__status_probe.sql", "CREATE TABLE portfolio.status_probe (id int);\n")
    result = status(deployed)
    assert result.returncode == StatusRed.exit_code
    assert red_lines(result.stderr) == ["red: portfolio: 1 pending migration(s) (V900); run `nndb migrate apply local-db`"]
    # read-only: the migration is still pending, the ledger untouched
    again = json_result(status(deployed, "--json").stdout, "status", ok=False)
    assert again["services"]["portfolio"]["migrations"]["pending"] == ["V900"]
    with deployed.postgres.connect(dbname="portfolio") as conn:
        assert conn.execute("SELECT to_regclass('portfolio.status_probe')").fetchone() == (None,)


def test_a_missing_acl_user_and_no_backup_at_all_are_red(deployed: DbStack) -> None:
    with deployed.redis.client() as admin:
        admin.execute_command("ACL", "DELUSER", "nndb_monitor")
    (deployed.backup_dir / STACK / "catalog.json").unlink()
    result = status(deployed)
    assert result.returncode == StatusRed.exit_code
    lines = red_lines(result.stderr)
    assert "red: redis: ACL users missing: nndb_monitor; run `nndb hooks run local-db`" in lines
    assert sum(line.startswith("red: ") and "no verified backup of" in line for line in lines) == 3


def test_tls_certificates_are_read_from_the_wire_and_one_about_to_expire_is_red(tls_db_stack: DbStack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The test PKI's server certificate expires in two days: under the 2-day line, so red on every instance."""
    run_in_process(tls_db_stack)
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    result = status(tls_db_stack, "--json", "--textfile-dir", str(textfiles))
    assert result.returncode == StatusRed.exit_code, result.stderr
    document = json_result(result.stdout, "status", ok=False)
    for name in ("postgres", "timescale", "redis"):
        tls = document["instances"][name]["tls"]
        assert tls["earliest"] == "server certificate" and 1.9 < tls["days_left"] <= 2.0, tls
    lines = red_lines(result.stderr)
    assert len(lines) == 3 and all("TLS: server certificate expires" in line and "renew it now" in line for line in lines), lines
    prom = (textfiles / "nndb-local-db-tls.prom").read_text()
    samples = [line for line in prom.splitlines() if not line.startswith("#")]
    assert [line.split(" ")[0] for line in samples] == [
        f'nndb_tls_certificate_expiry_timestamp_seconds{{stack="local-db",instance="{name}"}}'
        for name in ("postgres", "redis", "timescale")
    ]
    expected = datetime.fromisoformat(document["instances"]["redis"]["tls"]["not_after"].replace("Z", "+00:00")).timestamp()
    assert all(int(line.split(" ")[1]) == int(expected) for line in samples)


def test_a_streaming_standby_is_listed_with_its_lag_and_a_standby_behind_the_endpoint_is_red(deployed: DbStack) -> None:
    standby = start_standby(deployed.postgres)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while True:
            document = json_result(status(deployed, "--json").stdout, "status")
            clients = document["instances"]["postgres"]["replication"]["clients"]
            if clients or datetime.now(UTC) > deadline:
                break
            time.sleep(0.2)
        assert [c["state"] for c in clients] == ["streaming"], clients
        assert clients[0]["replay_lag_bytes"] >= 0 and document["instances"]["postgres"]["state"] == "ok"

        # The endpoint names the standby (a failover whose re-pointing was forgotten, or the reverse): red, by name.
        result = nndb(deployed, "status", STACK, environ={**deployed.environ, "POSTGRES_PORT": str(standby.port)}, timeout=60)
        assert result.returncode == StatusRed.exit_code
        assert "red: postgres: answers as a standby (read-only): the endpoint does not point at the primary" in red_lines(result.stderr)
    finally:
        standby.stop()


def test_every_replica_is_listed_and_a_second_writable_primary_is_red(deployed: DbStack) -> None:
    standby = start_standby(deployed.postgres)
    try:
        # The project declares the standby as postgres's replica (its engine is never asked: status only connects).
        local = deployed.project / "config" / "local.toml"
        local.write_text(
            local.read_text(encoding="utf-8")
            + "\n[replication.postgres.replicas.standby-1]\n"
            + 'docker = { host = "unix:///var/run/docker.sock" }\n'
            + f'endpoint_host = "{standby.host}"\nport = {standby.port}\n',
            encoding="utf-8",
        )
        deadline = time.monotonic() + 20
        while True:
            document = json_result(status(deployed, "--json").stdout, "status")
            nodes = document["instances"]["postgres"]["replication"]["nodes"]
            if nodes.get("standby-1", {}).get("receiver") == "streaming" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert nodes == {"standby-1": {"endpoint": f"{standby.host}:{standby.port}", "role": "standby", "receiver": "streaming"}}
        assert document["instances"]["postgres"]["state"] == "ok"

        # The standby promoted behind nndb's back (or an old primary started by hand): split brain, red, by name.
        with standby.connect() as conn:
            conn.execute("SELECT pg_promote(wait => true)")
        result = status(deployed)
        assert result.returncode == StatusRed.exit_code
        expected = f"red: postgres: standby-1 at {standby.host}:{standby.port} also takes writes (two writable primaries beside primary)"
        assert any(line.startswith(expected) for line in red_lines(result.stderr)), result.stderr

        # A replica that does not answer is a warning, not red.
        standby.stop()
        result = status(deployed)
        assert f"warn: postgres: replica standby-1 does not answer at {standby.host}:{standby.port}" in result.stdout + result.stderr
    finally:
        standby.stop()
