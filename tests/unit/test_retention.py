"""Pruning logical dumps never removes the only dump that reaches a point inside the retention window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nexanest_db.backups import BackupRecord, Catalog
from nexanest_db.operations.retention import prune_dumps

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SUBJECT = "postgres/portfolio"


def record(directory: Path, days_ago: float, verified: bool | None = True, subject: str = SUBJECT) -> BackupRecord:
    taken = NOW - timedelta(days=days_ago)
    rid = f"{taken:%Y%m%dT%H%M%S%f}-{subject.replace('/', '-')}"
    relative = f"{subject}/{rid}.dump.enc"
    (directory / relative).parent.mkdir(parents=True, exist_ok=True)
    (directory / relative).write_bytes(b"dump")
    return BackupRecord(
        id=rid,
        subject=subject,
        file=relative,
        sha256="-",
        size=4,
        taken_at=taken.isoformat(),
        server_version="15.18",
        row_counts={},
        verified=verified,
    )


def reaches(kept: list[BackupRecord], point: datetime) -> bool:
    return any(datetime.fromisoformat(b.taken_at) <= point and b.verified is not False for b in kept)


def test_the_dump_before_the_window_stays_while_older_ones_go(tmp_path: Path) -> None:
    catalog = Catalog(directory=tmp_path, stack="local-db")
    old, older, anchor, failed, inside = (
        record(tmp_path, 10),
        record(tmp_path, 5),
        record(tmp_path, 4),
        record(tmp_path, 3.5, verified=False),
        record(tmp_path, 1),
    )
    catalog.backups = [old, older, anchor, failed, inside]
    removed = prune_dumps(catalog, retention_days=3, now=NOW)
    assert {b.id for b in removed} == {old.id, older.id, failed.id}
    assert [b.id for b in catalog.backups] == [anchor.id, inside.id]
    assert not (tmp_path / old.file).exists() and (tmp_path / anchor.file).exists()
    # A point just inside the window, before the dump taken inside it: only the anchor reaches it.
    assert reaches(catalog.backups, NOW - timedelta(days=2.9))


def test_every_point_in_the_window_stays_reachable(tmp_path: Path) -> None:
    rng = random.Random(11)  # noqa: S311 -- reproducible test data, not cryptography
    for round_ in range(200):
        directory = tmp_path / str(round_)
        catalog = Catalog(directory=directory, stack="local-db")
        catalog.backups = [
            record(
                directory,
                rng.uniform(0, 12),
                verified=rng.choice([True, True, None, False]),
                subject=rng.choice([SUBJECT, "postgres/auth"]),
            )
            for _ in range(rng.randint(1, 8))
        ]
        before = list(catalog.backups)
        retention = rng.randint(1, 6)
        prune_dumps(catalog, retention_days=retention, now=NOW)
        for subject in (SUBJECT, "postgres/auth"):
            mine_before = [b for b in before if b.subject == subject]
            mine_after = [b for b in catalog.backups if b.subject == subject]
            for step in range(0, retention * 24 + 1):
                point = NOW - timedelta(days=retention) + timedelta(hours=step)
                assert reaches(mine_after, point) == reaches(mine_before, point), (round_, subject, point)
