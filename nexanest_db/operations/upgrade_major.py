"""A PostgreSQL major upgrade by dump and restore on the instance's own data volume (``nndb upgrade --path dump-restore``).

A new major cannot start on the old data directory, and Terraform would delete a data volume whose
name changed; so the old directory is kept *beside* the new one on the same volume. The stacks set
``PGDATA=<mount>/pgdata`` (a subdirectory of the volume), which makes that a rename:

1. **Writes stop**: the services' login roles on the instance become ``NOLOGIN`` and their sessions
   end (the superuser, which the backup and the restore use, is not affected).
2. **Proven backups** of every service database on the instance, and the data record (row counts).
   Nothing changed so far but the logins: any failure here gives them back.
3. **The old directory aside**: the container stops, and a throwaway container of the *old* image
   with the volume mounted renames ``pgdata`` to ``pgdata-<old major>-<UTC stamp>``.
4. **The new major**: the config names the new image and the stack is applied; the new server's
   entrypoint runs initdb on the empty ``pgdata`` and the deploy's hooks create roles (with their
   logins), databases, schemas and migrations.
5. **The data back**: each service database is restored from its backup of step 2 (``nndb backup
   restore``'s swap by rename) and every table must have exactly the recorded row count.
6. **Rollback** when 4 or 5 fail: the file's previous text, the new container stopped, the new
   directory removed and the old one renamed back, the stack applied again; the old server must
   answer with its own system identifier and the recorded data; the logins are given back.

After a success the old directory stays on the volume (the way back by hand, and disk space used)
until the operator removes it; the one line says how. Only the service databases are carried over
(the tier's contract: the hooks recreate roles and grants from config and secrets).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from nexanest_db.backups import Catalog, catalog_lock
from nexanest_db.errors import BackupError, ConnectionFailed, RestoreError, UpgradeError
from nexanest_db.operations.restore import restore_service
from nexanest_db.operations.upgrade import (
    Applier,
    ConfigChange,
    DataRecord,
    Instance,
    LiveInstance,
    Progress,
    UpgradePlan,
    UpgradeReport,
    apply_step,
    compare_records,
    one_line,
    short_id,
)
from nexanest_db.queries import compose_query, load_query

STOP_TIMEOUT_S = 90.0  # the container's stop_timeout is 60 s; the CLI call waits a little longer
HELPER_TIMEOUT_S = 600.0  # rm -rf of a large new data directory


@dataclass(frozen=True, kw_only=True)
class DataDirectory:
    """Where a PostgreSQL container keeps its data: ``pgdata`` strictly below the named volume's mount point."""

    volume: str
    mount: str
    pgdata: str

    def aside(self, major: int, stamp: str) -> str:
        return f"{self.pgdata}-{major}-{stamp}"


def data_directory_of(mounts: list[dict[str, Any]], env: list[str], container: str) -> DataDirectory:
    """``PGDATA`` from the container's environment and the named volume it lives on (``UpgradeError`` if it is the volume's root)."""
    values = dict(entry.split("=", 1) for entry in env if "=" in entry)
    pgdata = values.get("PGDATA", "/var/lib/postgresql/data").rstrip("/")
    for mount in mounts:
        target = str(mount.get("Destination", "")).rstrip("/")
        if mount.get("Type") == "volume" and mount.get("Name") and pgdata.startswith(target + "/"):
            return DataDirectory(volume=str(mount["Name"]), mount=target, pgdata=pgdata)
    raise UpgradeError(
        f"{container}: PGDATA {pgdata} is not a directory below a named volume's mount point, so the old data directory "
        f"cannot be kept beside the new one; refused, nothing was changed (docs/runbooks/upgrade-image.md#3-a-major-release)"
    )


def compare_restored(before: DataRecord, after: DataRecord) -> list[str]:
    """After a dump and restore: every table recorded, with exactly its row count (writes were stopped)."""
    problems = compare_records(replace(before, identity=None), after)
    for database, tables in before.counts.items():
        for table, rows in tables.items():
            now = after.counts.get(database, {}).get(table)
            if now is not None and now != rows and not (rows > 0 and now == 0):
                problems.append(f"{database}: {table} has {now} rows, the backup had {rows}")
    return problems


class MajorInstance(Instance, Protocol):
    """What the dump-and-restore path needs besides an ``Instance``."""

    def data_directory(self) -> DataDirectory: ...

    def stop_writes(self) -> list[str]: ...

    def allow_writes(self, roles: list[str]) -> None: ...

    def stop_container(self) -> None: ...

    def start_container(self) -> None: ...

    def run_helper(self, image: str, directory: DataDirectory, script: str, *args: str) -> None: ...

    def restore(self, backups: list[str], note: Callable[[str], None]) -> None: ...


def dump_restore_steps(plan: UpgradePlan, *, apply: str, wait_timeout_s: float, config_file: Path) -> list[str]:
    """What ``--path dump-restore`` will do, for ``--dry-run``."""
    lines = [
        f"stop writes: the service login roles on {plan.instance} NOLOGIN, their sessions ended",
        f"take a proven backup of every service database on {plan.instance} and record its row counts",
        f"stop the container; keep its data directory on the volume as pgdata-{plan.from_major}-<UTC stamp>",
        f'write [{plan.instance}] image = "{plan.to_image}" into {config_file} and apply the stack: {apply}',
        f"wait up to {wait_timeout_s:.0f}s for PostgreSQL {plan.new.major} on a fresh data directory (the hooks create roles and schemas)",
        "restore every service database from its backup; every table must have its recorded row count",
        f"if not: put {plan.from_image} and its data directory back, apply again, logins back on, exit 16",
    ]
    return [f"{number}. {line}" for number, line in enumerate(lines, 1)]


MOVE_ASIDE = 'set -e; test -d "$1"; test ! -e "$2"; mv "$1" "$2"'
PUT_BACK = 'set -e; test -d "$2"; rm -rf "$1"; mv "$2" "$1"'


@dataclass(kw_only=True)
class LiveMajorInstance(LiveInstance):
    """``LiveInstance`` plus the engine steps and sessions of the dump-and-restore path."""

    def data_directory(self) -> DataDirectory:
        result = self.engine.run("container", "inspect", "--format", "{{json .Mounts}} {{json .Config.Env}}", self.container)
        if result is None or result.returncode != 0:
            raise UpgradeError(f"{self.container}: cannot inspect it on the engine at {self.engine.description}; nothing was changed")
        mounts_json, _, env_json = result.stdout.strip().partition(" ")
        return data_directory_of(json.loads(mounts_json) or [], json.loads(env_json) or [], self.container)

    def _roles(self) -> tuple[list[str], list[str]]:
        with closing(self.open_context()) as context:
            services = [s for s in context.services if s.instance == self.instance]
            roles = [r.name for s in services for r in s.login_roles] + [s.migrator_role for s in services]
            return roles, [s.database for s in services]

    def stop_writes(self) -> list[str]:
        roles, databases = self._roles()
        with closing(self.open_context()) as context:
            conn = context.pg(self.instance)
            sql_dir = context.paths.sql_dir
            for role in roles:
                conn.execute(compose_query(sql_dir, "upgrade-role-nologin", role=role))
            for database in databases:
                conn.execute(load_query(sql_dir, "restore-terminate"), {"database": database})
        return roles

    def allow_writes(self, roles: list[str]) -> None:
        with closing(self.open_context()) as context:
            conn = context.pg(self.instance)
            for role in roles:
                conn.execute(compose_query(context.paths.sql_dir, "upgrade-role-login", role=role))

    def stop_container(self) -> None:
        result = replace(self.engine, timeout_s=STOP_TIMEOUT_S).run("stop", "--time", "60", self.container)
        if result is None or (result.returncode != 0 and "No such container" not in result.stderr):
            why = result.stderr.strip() if result is not None else "no answer from the engine"
            raise UpgradeError(f"{self.container}: docker stop failed ({why})")

    def start_container(self) -> None:
        replace(self.engine, timeout_s=STOP_TIMEOUT_S).run("start", self.container)

    def run_helper(self, image: str, directory: DataDirectory, script: str, *args: str) -> None:
        argv = ["run", "--rm", "--network", "none", "--user", "root", "--entrypoint", "/bin/sh"]
        argv += ["--mount", f"type=volume,source={directory.volume},target={directory.mount}", image, "-c", script, "sh", *args]
        result = replace(self.engine, timeout_s=HELPER_TIMEOUT_S).run(*argv, merge_output=True)
        if result is None or result.returncode != 0:
            why = one_line(result.stdout)[-300:] if result is not None else "no answer from the engine"
            raise UpgradeError(
                f"a helper container on {directory.volume} failed ({why or 'exit ' + str(result.returncode if result else '?')})"
            )

    def restore(self, backups: list[str], note: Callable[[str], None]) -> None:
        with closing(self.open_context()) as context, catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, context.stack)
            with catalog.saved_afterwards():
                by_subject = {record.subject: record.id for record in catalog.backups if record.id in backups}
                for service in context.services:
                    if service.instance != self.instance:
                        continue
                    result = restore_service(
                        context,
                        catalog,
                        service,
                        report=functools.partial(_note_for, note, service.subject),
                        backup_id=by_subject[service.subject],
                        force=True,
                    )
                    note(f"  + {service.subject:<20} restored {result.restored.id}: {result.tables} tables, {result.rows} rows")


def _note_for(note: Callable[[str], None], subject: str, line: str) -> None:
    note(f"  {subject}: {line.strip()}")


def dump_restore(
    plan: UpgradePlan,
    *,
    instance: MajorInstance,
    applier: Applier,
    config: ConfigChange,
    wait_timeout_s: float,
    progress: Progress,
    on_report: Callable[[UpgradeReport], None] = lambda report: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[UpgradeReport, DataDirectory, str]:
    """The module docstring's steps; the report, the data directory and where the old one was kept."""
    if not plan.major_change or plan.path != "dump-restore":
        raise UpgradeError(f"{plan.stack}: {plan.instance}: dump-restore is the path of a major upgrade chosen with --path (a bug)")
    where = f"{plan.stack}: {plan.instance}"
    directory = instance.data_directory()
    with progress.step(f"upgrade {plan.instance}: stop writes (service logins off), proven backup"):
        roles = instance.stop_writes()
        try:
            backups = instance.backup(progress.note)
            before = instance.record()
        except (BackupError, ConnectionFailed) as exc:
            instance.allow_writes(roles)
            raise UpgradeError(f"{where}: no proven backup, upgrade not started: {exc}; the logins are back, nothing was changed") from None
    report = UpgradeReport(plan=plan, outcome="", backups=backups, before=before)
    old_id = instance.running_image_id() or plan.from_image
    aside = directory.aside(plan.from_major, now().strftime("%Y%m%dT%H%M%SZ"))
    with progress.step(f"stop {instance.container}, keep its data directory as {aside}"):
        try:
            instance.stop_container()
            instance.run_helper(old_id, directory, MOVE_ASIDE, directory.pgdata, aside)
        except UpgradeError as exc:
            instance.start_container()
            instance.allow_writes(roles)
            raise UpgradeError(f"{where}: {exc}; started it again with its data, the logins are back, nothing else changed") from None

    def attempt(ref: str, image_id: str | None, *, restore: bool) -> str | None:
        entry: dict[str, Any] = {"image": ref, "ok": False}
        report.attempts.append(entry)
        result = apply_step(applier, progress, f"apply {plan.instance} = {ref} ({applier.description})", wait_timeout_s)
        try:
            if not result.ok:
                raise UpgradeError(f"the apply failed: {result.detail.removesuffix('; fix the cause, then run the deploy again')}")
            with progress.step(f"waiting for {plan.instance} (up to {wait_timeout_s:.0f}s)"):
                instance.wait(wait_timeout_s)
            running = instance.running_image_id()
            if image_id is not None and running != image_id:
                raise UpgradeError(f"container {instance.container} runs image {short_id(running)}, not {ref}")
            if restore:
                with progress.step(f"restore the service databases of {plan.instance} from {', '.join(backups)}"):
                    instance.restore(backups, progress.note)
            after = instance.record()
            problems = compare_restored(before, after) if restore else compare_records(before, after)
            if problems:
                raise UpgradeError("not the data it had: " + "; ".join(problems))
        except (UpgradeError, ConnectionFailed, RestoreError, BackupError) as exc:
            entry["reason"] = str(exc).removesuffix("; fix the cause, then run the deploy again")
            return str(entry["reason"])
        report.after = after
        entry["ok"] = True
        return None

    config.write()
    try:
        failure = attempt(plan.to_image, plan.new.image_id, restore=True)
    except BaseException:
        config.revert()
        raise
    if failure is None:
        report.outcome = "upgraded"
        on_report(report)
        return report, directory, aside

    report.reason = failure
    config.revert()
    progress.note(f"{where}: {plan.to_image} did not take the data ({one_line(failure)}); putting {plan.from_image} back on its directory")
    try:
        with progress.step(f"stop {instance.container}, put {aside} back as {directory.pgdata}"):
            instance.stop_container()
            instance.run_helper(old_id, directory, PUT_BACK, directory.pgdata, aside)
        rollback_failure = attempt(plan.from_image, old_id if old_id.startswith("sha256:") else None, restore=False)
    except UpgradeError as exc:
        rollback_failure = str(exc)
    backups_line = f"backups taken first: {', '.join(backups)}"
    if rollback_failure is None:
        instance.allow_writes(roles)
        report.outcome = "rolled back"
        on_report(report)
        assert report.after is not None
        raise UpgradeError(
            one_line(
                f"{where}: {plan.to_image} (PostgreSQL {plan.new.major}) did not take the data ({failure}); rolled back: "
                f"{config.path} names {plan.from_image} again and it answers on its old data directory ({report.after.summary()}), "
                f"the service logins are back; {backups_line}"
            )
        )
    report.outcome = "rollback failed"
    report.rollback_reason = rollback_failure
    on_report(report)
    raise UpgradeError(
        one_line(
            f"{where}: {plan.to_image} did not take the data ({failure}) and the rollback to {plan.from_image} failed too "
            f"({rollback_failure}); {config.path} names {plan.from_image} again; the old data directory is {aside} or "
            f"{directory.pgdata} on volume {directory.volume}: put it at {directory.pgdata}, deploy, then `ALTER ROLE ... LOGIN` "
            f"for {', '.join(roles)}; {backups_line} (`nndb backup restore`)"
        )
    )
