"""Retention of logical dumps: what `nndb backup run` prunes, never the backup a point in the window needs.

A restore "as of" a point P inside the window (now - retention_days .. now) needs the newest
usable dump taken at or before P. For P between the window's start and the first dump inside it,
that is the newest usable dump taken *before* the window: it is kept too (the anchor), with every
dump inside the window and each database's latest verified one. "Usable" means not failed
verification; a verified anchor is preferred. (Base backups and WAL: barman's recovery-window
policy does the same for PITR, docs/backups.md.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nexanest_db.backups import BackupRecord, Catalog, disk_error
from nexanest_db.errors import BackupError


def kept_ids(records: list[BackupRecord], *, cutoff: datetime) -> set[str]:
    """IDs of one database's dumps that must stay: inside the window, the anchor before it, the latest verified."""
    ordered = sorted(records, key=lambda b: b.taken_at)
    keep = {b.id for b in ordered if datetime.fromisoformat(b.taken_at) >= cutoff}
    before = [b for b in ordered if datetime.fromisoformat(b.taken_at) < cutoff and b.verified is not False]
    anchor = next((b for b in reversed(before) if b.verified), before[-1] if before else None)
    if anchor is not None:
        keep.add(anchor.id)
    verified = [b for b in ordered if b.verified]
    if verified:
        keep.add(verified[-1].id)
    return keep


def prune_dumps(catalog: Catalog, *, retention_days: int, now: datetime | None = None) -> list[BackupRecord]:
    """Remove (files and entries) the dumps no point inside the retention window needs; the removed records."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    keep: set[str] = set()
    for subject in {b.subject for b in catalog.backups}:
        keep |= kept_ids([b for b in catalog.backups if b.subject == subject], cutoff=cutoff)
    removed = [b for b in catalog.backups if b.id not in keep]
    for record in removed:
        path = catalog.path_of(record)  # confined to the backup directory
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise BackupError(disk_error(path, exc, "cannot remove a backup past the retention")) from None
    catalog.backups = [b for b in catalog.backups if b.id in keep]
    return removed
