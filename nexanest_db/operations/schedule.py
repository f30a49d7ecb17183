"""The backup schedule: how old the newest verified backup may be, and the record of scheduled runs.

``[backup] schedule`` is a cron expression (croniter reads it). A backup is overdue when the newest
verified one is older than the longest gap between two scheduled runs plus a grace period (a run
takes time; a slow one must not page anyone). ``nndb backup run --scheduled`` (what the scheduler
calls) appends each run to ``<stack dir>/schedule.json``: when, outcome, backup IDs — what
``nndb backup list`` shows as "scheduled runs".
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from nexanest_db.backups import Catalog, catalog_lock
from nexanest_db.errors import ConfigError

RUNS_FILE = "schedule.json"
GRACE = timedelta(hours=1)
KEEP_RUNS = 200


def longest_gap(schedule: str, now: datetime) -> timedelta:
    """The longest interval between consecutive runs of ``schedule`` over the coming week's runs."""
    if not croniter.is_valid(schedule):
        raise ConfigError(f"[backup] schedule {schedule!r}: not a cron expression (e.g. '0 2 * * *')")
    it = croniter(schedule, now)
    runs = [it.get_next(datetime) for _ in range(8)]
    return max(b - a for a, b in itertools.pairwise(runs))


def overdue(catalog: Catalog, subject: str, schedule: str, now: datetime | None = None) -> str | None:
    """One line when ``subject``'s newest verified backup is older than the schedule allows, else None."""
    now = now or datetime.now(UTC)
    allowed = longest_gap(schedule, now) + GRACE
    newest = catalog.latest(subject, verified_only=True)
    if newest is None:
        return f"{subject}: no verified backup at all; the schedule ({schedule}) is not running: run `nndb backup run {catalog.stack}`"
    age = now - datetime.fromisoformat(newest.taken_at)
    if age <= allowed:
        return None
    return (
        f"{subject}: newest verified backup {newest.id} is {_hours(age)} old, the schedule ({schedule}) allows {_hours(allowed)}; "
        f"is the scheduler running? (docs/backups.md#schedule) run `nndb backup run {catalog.stack}` now"
    )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def record_run(directory: Path, *, started: datetime, ok: bool, backup_ids: list[str], detail: str = "") -> None:
    """Append one scheduled run to ``schedule.json`` (atomically; the last ``KEEP_RUNS`` are kept).

    Under the catalog lock: with an off-host repository the record is pulled, appended and pushed back.
    """
    with catalog_lock(directory):
        runs = scheduled_runs(directory)
        runs.append({"started_at": started.isoformat(timespec="seconds"), "ok": ok, "backups": backup_ids, "detail": detail})
        tmp = directory / f".{RUNS_FILE}.tmp"
        tmp.write_text(json.dumps({"runs": runs[-KEEP_RUNS:]}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, directory / RUNS_FILE)


def scheduled_runs(directory: Path) -> list[dict]:
    path = directory / RUNS_FILE
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("runs", []))
    except ValueError:
        return []
