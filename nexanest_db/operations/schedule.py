"""The backup schedule: how old the newest verified backup may be, and the record of scheduled runs.

``[backup] schedule`` is a cron expression (croniter reads it). A backup is overdue when the newest
verified one is older than the longest gap between two scheduled runs plus a grace period (a run
takes time; a slow one must not page anyone). ``nndb backup run --scheduled`` (what the scheduler
calls) appends each run to ``<stack dir>/schedule.json``: when, outcome, backup IDs — what
``nndb backup list`` shows as "scheduled runs".
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from nexanest_db.backups import Catalog, catalog_lock
from nexanest_db.errors import ConfigError, ScheduleError

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


# --- the host unit: a cron.d entry on the backup host (docs/backups.md#schedule) ---------------------

CRON_DIR = Path("/etc/cron.d")
_HASH_LINE = "# nndb-schedule-sha256: "


@dataclass(frozen=True, kw_only=True)
class CronEntry:
    """What ``nndb backup schedule install`` writes for one stack: its lines follow the environment's config."""

    stack: str
    schedule: str
    pitr: bool
    project_root: Path
    nndb: Path
    user: str
    log: Path
    textfile_dir: Path | None = None

    def file(self, cron_dir: Path) -> Path:
        return cron_dir / f"nndb-{self.stack}"  # cron.d ignores names with dots

    def render(self) -> str:
        if not croniter.is_valid(self.schedule):
            raise ConfigError(f"[backup] schedule {self.schedule!r}: not a cron expression (e.g. '0 2 * * *')")
        if len(self.schedule.split()) != 5:
            raise ConfigError(f"[backup] schedule {self.schedule!r}: cron.d takes five fields (minute hour day month weekday)")
        prefix = f"cd {shlex.quote(str(self.project_root))} && {shlex.quote(str(self.nndb))}"
        log = f">> {shlex.quote(str(self.log))} 2>&1"
        metrics = f" --textfile-dir {shlex.quote(str(self.textfile_dir))}" if self.textfile_dir else ""
        lines = [f"{self.schedule} {self.user} {prefix} backup run {self.stack} --scheduled{metrics} {log}"]
        if self.pitr:
            base = _thirty_minutes_later(self.schedule)
            lines.append(f"{base} {self.user} {prefix} backup pitr base {self.stack} {log}")
            lines.append(f"* * * * * {self.user} {prefix} backup pitr cron {self.stack} {log}")
        body = "\n".join(["SHELL=/bin/sh", "PATH=/usr/local/bin:/usr/bin:/bin", *lines]) + "\n"
        digest = hashlib.sha256(body.encode()).hexdigest()
        header = (
            f"# Backups of {self.stack}: written by `nndb backup schedule install {self.stack}` from config ([backup] schedule);\n"
            f"# checked by `nndb backup schedule check {self.stack}`. Do not edit: run install again after a config change.\n"
            f"# Secrets come from the project's .env.db (mode 0600) or Vault, never from this file.\n"
            f"{_HASH_LINE}{digest}\n"
        )
        return header + body


def _thirty_minutes_later(schedule: str) -> str:
    """The base backup's slot: the dump schedule's minute + 30 when it is a plain minute, else the same schedule."""
    minute, *rest = schedule.split()
    if minute.isdigit():
        return " ".join([str((int(minute) + 30) % 60), *rest])
    return schedule


def install_cron(entry: CronEntry, cron_dir: Path) -> Path:
    """Write the entry (0644, atomically: cron never reads half a file); the path written."""
    path = entry.file(cron_dir)
    text = entry.render()
    if not cron_dir.is_dir():
        raise ScheduleError(f"{cron_dir}: no such directory; is cron installed on this host? (apt-get install -y cron)")
    tmp = cron_dir / f".{path.name}.tmp"  # a dotted name: cron skips it
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ScheduleError(f"{path}: cannot write ({exc.strerror}); run as root on the backup host, or pass --cron-dir") from None
    return path


def check_cron(entry: CronEntry, cron_dir: Path, directory: Path, now: datetime | None = None) -> list[str]:
    """Problems with the installed schedule (empty: installed, current, and its runs happen and succeed)."""
    now = now or datetime.now(UTC)
    path = entry.file(cron_dir)
    problems = []
    if not path.is_file():
        return [f"{path}: not installed; run `nndb backup schedule install {entry.stack}` on the backup host"]
    if path.read_text(encoding="utf-8", errors="replace") != entry.render():
        problems.append(
            f"{path}: stale (it differs from what config/{entry.stack.removesuffix('-db')}.toml gives now); "
            f"run `nndb backup schedule install {entry.stack}` again"
        )
    allowed = longest_gap(entry.schedule, now) + GRACE
    runs = scheduled_runs(directory)
    installed_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if not runs:
        if now - installed_at > allowed:
            problems.append(f"{path}: installed {_hours(now - installed_at)} ago but no scheduled run was recorded; is cron running?")
        return problems
    last = runs[-1]
    started = datetime.fromisoformat(str(last["started_at"]))
    if now - started > allowed:
        problems.append(
            f"last scheduled run {started.isoformat()} is {_hours(now - started)} old, the schedule allows {_hours(allowed)}; is cron running?"
        )
    if not last.get("ok"):
        problems.append(f"last scheduled run {started.isoformat()} FAILED: {last.get('detail', '')}")
    return problems
