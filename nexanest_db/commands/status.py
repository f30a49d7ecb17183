"""`nndb status <stack>`: one screen for on-call (thin over ``nexanest_db.operations.status``)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import build_context, configure_logging
from nexanest_db.commands.hooks import MIN_TIMEOUT_S, AsJson, BackupDir, ProjectDir, Stack
from nexanest_db.commands.output import console, set_result
from nexanest_db.errors import StatusRed
from nexanest_db.operations.status import InstanceStatus, ServiceStatus, StatusReport, check_stack, write_tls_textfile

DEFAULT_STATUS_CONNECT_TIMEOUT_S = 3.0
ConnectTimeout = Annotated[float, typer.Option("--connect-timeout", min=MIN_TIMEOUT_S, help="seconds to wait for each server (> 0)")]
TextfileDir = Annotated[
    Path | None,
    typer.Option("--textfile-dir", help="also write nndb-<stack>-tls.prom there (node_exporter's textfile directory; tls.enabled only)"),
]


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024  # type: ignore[assignment]
    return "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _instance_extra(status: InstanceStatus, now: datetime) -> str:
    parts = []
    if status.error:
        return status.error
    if status.wal_archiving is not None:
        parts.append(f"WAL archiving {status.wal_archiving['state']} ({status.wal_archiving['failed_count']} failed)")
    if status.kind == "redis" and status.reachable:
        limit = _size(status.memory_max_bytes) if status.memory_max_bytes else "no limit"
        parts.append(f"memory {_size(status.memory_used_bytes)}/{limit}")
        missing = f", missing {','.join(status.acl_users_missing or [])}" if status.acl_users_missing else ""
        parts.append(f"ACL users {len(status.acl_users_present or [])}{missing}")
    if status.tls is not None:
        parts.append(f"TLS {status.tls.days_left(now):.0f} days left")
    return "; ".join(parts)


def _service_line(status: ServiceStatus, report: StatusReport) -> list[str]:
    if not status.checked:
        migrations = "not checked (instance down)"
    elif status.database_exists is False:
        migrations = "database missing"
    else:
        migrations = f"{status.applied} applied, {len(status.pending)} pending" + (
            f", {len(status.migration_problems)} problem(s)" if status.migration_problems else ""
        )
    if status.newest_verified_at is None:
        backup = "no verified backup"
    else:
        age = (report.checked_at - status.newest_verified_at).total_seconds()
        backup = f"verified {_duration(age)} ago (max {_duration(status.backup_max_age_s)})"
    if status.newest_backup_at is not None and status.newest_backup_verified is not True:
        backup += "; newest " + ("FAILED verification" if status.newest_backup_verified is False else "not verified")
    return [status.name, report.service_state(status).upper(), f"{status.instance}/{status.database}", migrations, backup]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows]


def render(report: StatusReport) -> str:
    now = report.checked_at
    lines = [f"{report.stack}: {report.level.upper()}  (checked {now:%Y-%m-%d %H:%M:%S}Z in {report.seconds:.2f} s)", ""]
    rows = [["instance", "state", "endpoint", "version", "conns", "uptime", "details"]]
    for name, s in report.instances.items():
        conns = f"{s.connections_used}/{s.connections_max}" if s.connections_max is not None else "-"
        version = s.version.split()[0] if s.version else "-"
        up = "up" if s.reachable else "DOWN"
        rows.append(
            [
                name,
                f"{report.level_of(name).upper()}",
                s.endpoint,
                f"{version}" if s.reachable else up,
                conns,
                _duration(s.uptime_s),
                _instance_extra(s, now),
            ]
        )
    lines += _table(rows)
    lines.append("")
    rows = [["service", "state", "database", "migrations", "backup"]]
    rows += [_service_line(s, report) for s in report.services.values()]
    lines += _table(rows)
    warnings = [f for f in report.findings if f.level == "warn"]
    if warnings:
        lines.append("")
        lines += [f"warn: {f.line}" for f in warnings]
    return "\n".join(lines)


def status(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_STATUS_CONNECT_TIMEOUT_S,
    textfile_dir: TextfileDir = None,
    as_json: AsJson = False,
) -> None:
    """Instances, migrations, backups, WAL archiving, certificates: green or red. Read-only.

    Exits 9 when anything is red, naming each red item on stderr (one line each); 0 otherwise.

    Examples: `nndb status local-db`, `nndb status prod-db --json --connect-timeout 5` (docs/status.md).
    """
    logger = configure_logging(False)
    resolved = resolve(stack, project_dir)
    context = build_context(resolved, logger=logger, backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False)
    try:
        report = check_stack(context)
    finally:
        context.close()
    if textfile_dir is not None:
        write_tls_textfile(report, textfile_dir)
    set_result(report.as_dict())
    console.print(render(report), markup=False)
    red = report.red
    if red:
        sys.stdout.flush()
        for finding in red:
            print(f"red: {finding.line}", file=sys.stderr)
        raise StatusRed(f"{stack}: {len(red)} red item{'s' if len(red) != 1 else ''} (listed above)")
