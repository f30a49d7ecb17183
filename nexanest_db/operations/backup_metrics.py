"""``nndb-<stack>-backup.prom``: the backup state as metrics for node_exporter's textfile collector.

The contract is monitoring/README.md ("nndb-<stack>-backup.prom"): per service database, the Unix
time of its newest backup that passed verification (0 when there is none) and how old that may get
(the schedule's longest gap plus one hour). Written by ``nndb backup verify`` and ``nndb backup run``
with ``--textfile-dir`` (the scheduled run), so the alert NndbBackupOverdue sees what the catalog says.
Base backups (``kind="base"``) and Redis copies are not written yet: their writers do not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from nexanest_db.backups import Catalog
from nexanest_db.errors import BackupError
from nexanest_db.operations.schedule import GRACE, longest_gap

LAST_VERIFIED = "nndb_backup_last_verified_timestamp_seconds"
MAX_AGE = "nndb_backup_max_age_seconds"


def backup_textfile_lines(catalog: Catalog, subjects: Iterable[str], schedule: str, now: datetime | None = None) -> Iterator[str]:
    now = now or datetime.now(UTC)
    max_age = int((longest_gap(schedule, now) + GRACE).total_seconds())
    samples = []
    for subject in sorted(subjects):
        instance, database = subject.split("/", 1)
        labels = f'stack="{catalog.stack}",instance="{instance}",database="{database}",kind="dump"'
        newest = catalog.latest(subject, verified_only=True)
        taken = int(datetime.fromisoformat(newest.taken_at).timestamp()) if newest is not None else 0
        samples.append((labels, taken))
    yield f"# HELP {LAST_VERIFIED} Unix time of the newest backup that passed verification (0: none yet)."
    yield f"# TYPE {LAST_VERIFIED} gauge"
    yield from (f"{LAST_VERIFIED}{{{labels}}} {taken}" for labels, taken in samples)
    yield f"# HELP {MAX_AGE} Oldest the newest verified backup may be: the schedule's longest gap plus grace."
    yield f"# TYPE {MAX_AGE} gauge"
    yield from (f"{MAX_AGE}{{{labels}}} {max_age}" for labels, _ in samples)


def write_backup_textfile(catalog: Catalog, subjects: Iterable[str], schedule: str, directory: Path) -> Path:
    """``<directory>/nndb-<stack>-backup.prom``, replaced atomically (the collector never reads half a file)."""
    target = directory / f"nndb-{catalog.stack}-backup.prom"
    temp = directory / f".{target.name}.tmp"
    try:
        temp.write_text("\n".join(backup_textfile_lines(catalog, subjects, schedule)) + "\n", encoding="utf-8")
        temp.chmod(0o644)
        temp.replace(target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise BackupError(
            f"{directory}: cannot write {target.name} ({exc.strerror}); point --textfile-dir at node_exporter's textfile directory"
        ) from None
    return target
