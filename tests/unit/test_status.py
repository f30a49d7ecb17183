"""The parts of `nndb status` that need no server: the backup schedule's allowance, the TLS metrics file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nexanest_db.errors import ConfigError
from nexanest_db.operations.status import InstanceStatus, StatusReport, TlsExpiry, backup_max_age_s, write_tls_textfile

NOW = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 2 * * *", 86400 + 3600),  # daily: the contract's example, 90000
        ("0 */6 * * *", 6 * 3600 + 3600),
        ("0 2 * * 1,4", 4 * 86400 + 3600),  # Monday and Thursday: the longest gap is Thursday to Monday
        ("30 1 1 * *", 31 * 86400 + 3600),  # monthly: the longest month
    ],
)
def test_the_newest_verified_backup_may_be_as_old_as_the_longest_gap_plus_an_hour(schedule: str, expected: int) -> None:
    assert backup_max_age_s(schedule, now=NOW) == expected


def test_a_schedule_that_is_not_cron_is_one_config_line() -> None:
    with pytest.raises(ConfigError, match=r"^backup.schedule: 'daily' is not a cron expression"):
        backup_max_age_s("daily", now=NOW)


def test_the_tls_metrics_file_follows_the_contract(tmp_path: Path) -> None:
    report = StatusReport(stack="prod-db", checked_at=NOW)
    report.instances["postgres"] = InstanceStatus(name="postgres", kind="postgres", endpoint="x:1")
    report.instances["postgres"].tls = TlsExpiry(not_after=NOW + timedelta(days=30), which="server certificate")
    report.instances["redis"] = InstanceStatus(name="redis", kind="redis", endpoint="x:2")  # no certificate read: no sample
    path = write_tls_textfile(report, tmp_path)
    assert path == tmp_path / "nndb-prod-db-tls.prom"
    assert path.read_text().splitlines() == [
        "# HELP nndb_tls_certificate_expiry_timestamp_seconds Unix time when the first certificate of the instance's chain expires.",
        "# TYPE nndb_tls_certificate_expiry_timestamp_seconds gauge",
        f'nndb_tls_certificate_expiry_timestamp_seconds{{stack="prod-db",instance="postgres"}} {int((NOW + timedelta(days=30)).timestamp())}',
    ]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not list(tmp_path.glob(".*.tmp"))
    assert write_tls_textfile(StatusReport(stack="prod-db", checked_at=NOW), tmp_path / "elsewhere") is None
