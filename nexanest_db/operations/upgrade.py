"""Safe image upgrades of one instance (``nndb upgrade <stack> <instance> --image REF``).

One upgrade, in this order, and nothing changed before step 3:

1. **Versions.** The running server's major version (asked over the wire: ``server_version_num``,
   ``INFO server``) against the new image's (its ``PG_MAJOR``/``REDIS_VERSION`` environment, as the
   official images set it, else ``postgres --version``/``redis-server --version`` run in a throwaway
   container of it). A major change is refused unless an explicit path is chosen (``--path``); a
   downgrade and an image whose version cannot be told are refused always. The image is pulled on the
   stack's engine first when it is not there, so a mistyped reference stops here.
2. **A proven backup** of every database on the instance (dump, restore into a scratch database,
   compare row by row; Redis: an RDB snapshot checked by ``redis-check-rdb``), and a record of the
   data: PostgreSQL's system identifier (set by initdb, it names the data directory) and every
   table's row count.
3. **Apply.** The config names the new image (``[<instance>] image``, one tomlkit edit that keeps
   the file's layout, validated before it replaces the file) and the stack is applied by an
   ``Applier``: in the shipped path ``cdktf deploy <stack> --auto-approve``, which replaces exactly
   that container on its data volume and runs ``nndb wait-ready`` and the hooks
   (``NNDB_WAIT_READY_TIMEOUT_S`` bounds that wait by ``--wait-timeout`` too).
4. **Bounded wait** until the instance answers on its published port (what ``nndb wait-ready``
   means), then: the container runs the new image's ID, the system identifier is the one recorded
   (the same data directory, not a fresh one), and every table recorded is there, and a table
   that had rows still has some.
5. **Rollback** when the apply or any check of 4 fails: the config file gets its previous text back,
   the stack is applied again, and the same checks must pass for the previous image. The result is
   one line (``UpgradeError``, exit 16) that says the new image did not come up, why, and that the
   previous one runs again on the same data; or, if even that fails, what to do.

A major change with ``--path dump-restore`` is ``operations.upgrade_major`` (the data volume keeps the
old data directory beside the new one, for the rollback).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, closing, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import psycopg

from nexanest_db.backups import Catalog, catalog_lock
from nexanest_db.context import HookContext
from nexanest_db.engine import Engine
from nexanest_db.errors import BackupError, ConnectionFailed, UpgradeError, UsageError
from nexanest_db.operations.backup import take_and_verify
from nexanest_db.operations.redis_backup import take_redis_backup
from nexanest_db.queries import compose_query, load_query
from nexanest_db.readiness import Target, wait_ready

INSTANCES = ("postgres", "timescale", "redis")
UPGRADE_PATHS = ("dump-restore", "pg-upgrade")
DEFAULT_APPLY_COMMAND = "cdktf deploy {stack} --auto-approve"
WAIT_READY_TIMEOUT_VARIABLE = "NNDB_WAIT_READY_TIMEOUT_S"  # honoured by `nndb wait-ready` (the deploy's own wait)
RUNBOOK = "docs/runbooks/upgrade-image.md"
PULL_TIMEOUT_S = 900.0
APPLY_TIMEOUT_S = 3600.0
_TAIL_LINES = 40

_ENV_MAJOR = {"postgres": ("PG_MAJOR", "PG_VERSION"), "redis": ("REDIS_VERSION",)}
_VERSION_COMMAND = {"postgres": "postgres", "redis": "redis-server"}
_VERSION_OUTPUT = {
    "postgres": re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.\d+)?"),
    "redis": re.compile(r"\bv=(\d+)\.\d+"),
}
_LEADING_NUMBER = re.compile(r"^(\d+)(?:[.\s-]|$)")
_BOX = re.compile(r"^[\s│|╷╵┃]+")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, cursor moves and line erases of cdktf's terminal UI
_STACK_PREFIX = re.compile(r"^[a-z0-9-]+-db {2}")  # cdktf's "<stack>  " before each line of a stack's output
# A continuation line of a wrapped message in Terraform's error box: indentation, the box's bar, the text.
_BOX_CONTINUATION = re.compile(r"^\s+[│|┃] ?(?P<text>.*)$")


def kind_of(instance: str) -> str:
    """``postgres`` for the PostgreSQL instances (postgres, timescale), ``redis`` for Redis."""
    if instance not in INSTANCES:
        raise UsageError(f"instance {instance!r}: pick one of {', '.join(INSTANCES)}")
    return "redis" if instance == "redis" else "postgres"


def product(kind: str) -> str:
    return "Redis" if kind == "redis" else "PostgreSQL"


# --- what an image is ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImageFacts:
    ref: str
    image_id: str
    major: int | None
    source: str  # where the major came from: "PG_MAJOR", "postgres --version", ... or "unknown"


def major_from_env(env: Sequence[str], kind: str) -> tuple[int | None, str]:
    """The major version an image's environment declares (``PG_MAJOR=15``, ``REDIS_VERSION=7.2.4``), and the variable."""
    values = dict(entry.split("=", 1) for entry in env if "=" in entry)
    for name in _ENV_MAJOR[kind]:
        match = _LEADING_NUMBER.match(values.get(name, "").strip())
        if match:
            return int(match[1]), name
    return None, "unknown"


def major_from_version_output(text: str, kind: str) -> int | None:
    """``postgres (PostgreSQL) 15.5 (Debian ...)`` -> 15; ``Redis server v=7.0.15 sha=...`` -> 7."""
    match = _VERSION_OUTPUT[kind].search(text)
    return int(match[1]) if match else None


def short_id(image_id: str | None) -> str:
    if not image_id:
        return "unknown"
    return image_id.removeprefix("sha256:")[:12]


def inspect_image(engine: Engine, ref: str, kind: str, *, pull_timeout_s: float = PULL_TIMEOUT_S) -> ImageFacts:
    """``ref`` on the stack's engine (pulled there when missing): its ID and major version."""
    inspected = _image_inspect(engine, ref)
    if inspected is None:
        pulled = replace(engine, timeout_s=pull_timeout_s).run("pull", "--quiet", ref)
        if pulled is None or pulled.returncode != 0:
            why = _last_line(pulled.stderr if pulled is not None else "") or "no answer from the engine"
            raise UpgradeError(
                f"image {ref}: not on the engine at {engine.description} and the pull failed ({why}); "
                f"check the reference (and that the engine reaches its registry); nothing was changed"
            )
        inspected = _image_inspect(engine, ref)
        if inspected is None:
            raise UpgradeError(f"image {ref}: pulled, but the engine at {engine.description} cannot inspect it; nothing was changed")
    image_id, env = inspected
    major, source = major_from_env(env, kind)
    if major is None:
        command = _VERSION_COMMAND[kind]
        ran = engine.run("run", "--rm", "--network", "none", "--entrypoint", command, ref, "--version", merge_output=True)
        if ran is not None and ran.returncode == 0:
            major = major_from_version_output(ran.stdout, kind)
            source = f"{command} --version" if major is not None else source
    return ImageFacts(ref=ref, image_id=image_id, major=major, source=source)


def _image_inspect(engine: Engine, ref: str) -> tuple[str, list[str]] | None:
    result = engine.run("image", "inspect", "--format", "{{.Id}} {{json .Config.Env}}", ref)
    if result is None or result.returncode != 0:
        return None
    image_id, _, env = result.stdout.strip().partition(" ")
    try:
        values = json.loads(env) if env else []
    except ValueError:
        values = []
    return image_id, [str(v) for v in values or []]


def container_image_id(engine: Engine, container: str) -> str | None:
    """The image ID the container was created from, or ``None`` (no such container, engine unreachable)."""
    result = engine.run("container", "inspect", "--format", "{{.Image}}", container)
    if result is None or result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- the version verdict ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UpgradePlan:
    stack: str
    instance: str
    kind: str
    from_image: str
    to_image: str
    from_major: int
    new: ImageFacts
    path: str | None  # a major upgrade's path (--path), None for a same-major change

    @property
    def major_change(self) -> bool:
        return self.new.major != self.from_major

    def steps(self, *, apply: str, wait_timeout_s: float, config_file: Path) -> list[str]:
        what = "every database on it: dump, restore into a scratch database, compare" if self.kind == "postgres" else "an RDB snapshot"
        lines = [
            f"take a proven backup of {self.instance} ({what}) and record its data (tables, row counts"
            + (", the system identifier)" if self.kind == "postgres" else ")"),
            f'write [{self.instance}] image = "{self.to_image}" into {config_file}',
            f"apply the stack: {apply}",
            f"wait up to {wait_timeout_s:.0f}s for {self.instance} to answer; check it runs {short_id(self.new.image_id)} on the same data",
            f"if not: put {self.from_image} back (the file's previous text), apply again, check the same, exit 16",
        ]
        return [f"{number}. {line}" for number, line in enumerate(lines, 1)]


def plan_upgrade(
    *, stack: str, instance: str, from_image: str, to_image: str, from_major: int, new: ImageFacts, path: str | None
) -> UpgradePlan:
    """The upgrade ``to_image`` means, or ``UpgradeError`` (nothing changed) when it must not run as asked."""
    kind = kind_of(instance)
    name = product(kind)
    where = f"{stack}: {instance}"
    if path is not None and path not in UPGRADE_PATHS:
        raise UsageError(f"--path {path}: pick one of {', '.join(UPGRADE_PATHS)}")
    if kind == "redis" and path is not None:
        raise UsageError("--path is for a PostgreSQL major upgrade; Redis has none (docs/runbooks/upgrade-image.md#4-redis)")
    if new.major is None:
        raise UpgradeError(
            f"{where}: cannot tell which {name} major version {to_image} runs (no {' or '.join(_ENV_MAJOR[kind])} in its "
            f"environment, `{_VERSION_COMMAND[kind]} --version` gave none); refused, nothing was changed"
        )
    if new.major < from_major:
        raise UpgradeError(
            f"{where}: {to_image} is {name} {new.major}, older than the {from_major} running on the data volume: "
            f"a downgrade cannot read newer data files; refused, nothing was changed"
        )
    if new.major > from_major:
        if kind == "redis":
            raise UpgradeError(
                f"{where}: {to_image} is Redis {new.major}, the server runs {from_major}: after the new major writes its data "
                f"files the old one cannot read them, so there is no rollback; refused, nothing was changed "
                f"(Redis is a cache: {RUNBOOK}#4-redis)"
            )
        if path is None:
            raise UpgradeError(
                f"{where}: {to_image} is PostgreSQL {new.major}, the server runs {from_major} on its data volume: a major "
                f"release cannot start on the old data directory; refused, nothing was changed; choose an upgrade path: "
                f"--path dump-restore or --path pg-upgrade ({RUNBOOK}#3-a-major-release)"
            )
    elif path is not None:
        raise UsageError(f"--path {path}: {to_image} is {name} {new.major} like the running server; a minor upgrade needs no path, drop it")
    return UpgradePlan(
        stack=stack,
        instance=instance,
        kind=kind,
        from_image=from_image,
        to_image=to_image,
        from_major=from_major,
        new=new,
        path=path,
    )


# --- the data, before and after ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DataRecord:
    """What the instance held: PostgreSQL's system identifier and row counts per table, or Redis keys per database."""

    identity: str | None
    counts: dict[str, dict[str, int]]  # database -> table -> rows (Redis: "db0" -> {"keys": n})

    def summary(self) -> str:
        tables = sum(len(t) for t in self.counts.values())
        rows = sum(sum(t.values()) for t in self.counts.values())
        if self.identity is None:
            return f"{len(self.counts)} databases, {rows} keys"
        return f"system identifier {self.identity}, {len(self.counts)} databases, {tables} tables, {rows} rows"

    def as_dict(self) -> dict[str, Any]:
        return {"system_identifier": self.identity, "counts": self.counts}


def record_postgres(connect: Callable[[str], psycopg.Connection], databases: Sequence[str], sql_dir: Path) -> DataRecord:
    """The system identifier (maintenance database) and every user table's row count in ``databases``."""
    maintenance = connect("postgres")
    row = maintenance.execute(load_query(sql_dir, "upgrade-system-identifier")).fetchone()
    counts: dict[str, dict[str, int]] = {}
    for database in databases:
        conn = connect(database)
        tables: dict[str, int] = {}
        for schema, table in conn.execute(load_query(sql_dir, "backup-tables")).fetchall():
            counted = conn.execute(compose_query(sql_dir, "count-rows", table=(schema, table))).fetchone()
            tables[f"{schema}.{table}"] = int(counted[0]) if counted else 0
        counts[database] = tables
    return DataRecord(identity=str(row[0]) if row else None, counts=counts)


def record_redis(keyspace: Mapping[str, Any]) -> DataRecord:
    """``INFO keyspace`` (``{"db0": {"keys": 3, ...}}``) as a record."""
    return DataRecord(identity=None, counts={db: {"keys": int(v.get("keys", 0))} for db, v in keyspace.items() if isinstance(v, Mapping)})


def compare_records(before: DataRecord, after: DataRecord) -> list[str]:
    """What says the instance no longer holds the recorded data (writes since the record are no finding)."""
    problems = []
    if before.identity is not None and after.identity != before.identity:
        problems.append(f"system identifier {after.identity}, was {before.identity}: another data directory (initdb ran again)")
    for database, tables in before.counts.items():
        now = after.counts.get(database)
        if now is None:
            problems.append(f"database {database} is gone")
            continue
        for table, rows in tables.items():
            if table not in now:
                problems.append(f"{database}: table {table} is gone")
            elif rows > 0 and now[table] == 0:
                problems.append(
                    f"{database}: had {rows} keys, has none"
                    if before.identity is None
                    else f"{database}: {table} had {rows} rows, has none"
                )
    return problems


# --- applying the stack ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    ok: bool
    detail: str  # the failure's line (the last `nndb: error:` line, else the last line), or "" when ok


class Applier(Protocol):
    """Applies the stack as its config now says (the shipped one: ``cdktf deploy``)."""

    @property
    def description(self) -> str: ...

    def apply(self, *, wait_timeout_s: float, on_line: Callable[[str], None]) -> ApplyResult: ...


def apply_argv(template: str, stack: str) -> tuple[str, ...]:
    """``--apply-command`` split like a shell would (no shell runs it), ``{stack}`` replaced by the stack."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"--apply-command {template!r}: {exc}") from None
    if not words:
        raise UsageError("--apply-command is empty; give the command that applies the stack, e.g. 'cdktf deploy {stack} --auto-approve'")
    return tuple(word.replace("{stack}", stack) for word in words)


def failure_detail(lines: Sequence[str], returncode: int, command: str) -> str:
    """The line that says why an apply failed: nndb's own error line, else Terraform's last error, else the last line.

    cdktf's output carries terminal escapes and prefixes each line with the stack's name; Terraform's
    error box repeats nndb's line wrapped at the terminal's width, so a wrapped line is joined with its
    continuation lines in the box (the local-exec output has it whole).
    """
    plain = [_ANSI.sub("", line) for line in lines]
    errors: list[str] = []
    for index, line in enumerate(plain):
        if "nndb: error:" not in line:
            continue
        parts = [line[line.index("nndb: error:") + len("nndb: error:") :].strip()]
        for following in plain[index + 1 :]:
            continued = _BOX_CONTINUATION.match(following)
            if continued is None or not continued["text"].strip():
                break
            parts.append(continued["text"].strip())
        errors.append(" ".join(parts))
    if errors:
        return errors[-1]
    cleaned = [_BOX.sub("", _STACK_PREFIX.sub("", line)).strip() for line in plain]
    cleaned = [line for line in cleaned if line]
    terraform = [line.removeprefix("Error:").strip() for line in cleaned if line.startswith("Error:")]
    if terraform:
        return terraform[-1]
    return f"{command} exited {returncode}" + (f": {cleaned[-1]}" if cleaned else "")


@dataclass(frozen=True, kw_only=True)
class CommandApplier:
    """Runs a command (``cdktf deploy <stack> --auto-approve`` by default) in the project, its output passed on line by line."""

    argv: tuple[str, ...]
    cwd: Path
    environ: Mapping[str, str]
    timeout_s: float = APPLY_TIMEOUT_S

    @property
    def description(self) -> str:
        return shlex.join(self.argv)

    def apply(self, *, wait_timeout_s: float, on_line: Callable[[str], None]) -> ApplyResult:
        env = {**self.environ, WAIT_READY_TIMEOUT_VARIABLE: f"{wait_timeout_s:g}"}
        try:
            process = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group: a timeout ends cdktf, node and terraform together
            )
        except OSError as exc:
            return ApplyResult(ok=False, detail=f"{self.argv[0]}: cannot run it ({exc.strerror}); is it installed and on PATH?")
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)

        timer = threading.Timer(self.timeout_s, expire)
        timer.start()
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                on_line(line)
            returncode = process.wait()
        except BaseException:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait()
            raise
        finally:
            timer.cancel()
        if timed_out.is_set():
            return ApplyResult(ok=False, detail=f"{self.description} did not finish within {self.timeout_s:g}s and was stopped")
        if returncode != 0:
            return ApplyResult(ok=False, detail=failure_detail(list(tail), returncode, self.description))
        return ApplyResult(ok=True, detail="")


# --- the instance, live --------------------------------------------------------------------------------


class Instance(Protocol):
    """What an upgrade needs from the running instance (``LiveInstance``; fakes in the unit tests)."""

    container: str

    def server_major(self) -> int: ...

    def backup(self, note: Callable[[str], None]) -> list[str]: ...

    def record(self) -> DataRecord: ...

    def wait(self, timeout_s: float) -> None: ...

    def running_image_id(self) -> str | None: ...

    def describe(self) -> str: ...


@dataclass(kw_only=True)
class LiveInstance:
    """One instance of a stack as nndb reaches it: fresh sessions for every question (the container is replaced in between)."""

    instance: str
    container: str
    engine: Engine
    target: Target
    open_context: Callable[[], HookContext]

    @property
    def kind(self) -> str:
        return kind_of(self.instance)

    def server_major(self) -> int:
        with closing(self.open_context()) as context:
            if self.kind == "redis":
                version = str(context.redis().info("server").get("redis_version", ""))
                match = _LEADING_NUMBER.match(version)
                if not match:
                    raise ConnectionFailed(f"redis: INFO server gave no redis_version ({version!r}); check the endpoint")
                return int(match[1])
            return context.postgres.server_version(self.instance) // 10000

    def backup(self, note: Callable[[str], None]) -> list[str]:
        """Proven backups of every database on the instance (Redis: its dataset), in the stack's catalog; their IDs."""
        taken: list[str] = []
        with closing(self.open_context()) as context, catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, context.stack)
            with catalog.saved_afterwards():
                if self.kind == "redis":
                    record, detail = take_redis_backup(context, catalog, verify=True)
                    taken.append(record.id)
                    note(f"  + {record.subject:<20} {record.id} {detail}")
                for service in context.services:
                    if service.instance != self.instance:
                        continue
                    record, detail = take_and_verify(context, service, catalog, verify=True)
                    taken.append(record.id)
                    note(f"  + {service.subject:<20} {record.id} proven by restore ({detail})")
        return taken

    def record(self) -> DataRecord:
        with closing(self.open_context()) as context:
            if self.kind == "redis":
                return record_redis(context.redis().info("keyspace"))
            databases = [s.database for s in context.services if s.instance == self.instance]
            return record_postgres(lambda database: context.pg(self.instance, database), databases, context.paths.sql_dir)

    def wait(self, timeout_s: float) -> None:
        wait_ready([self.target], timeout_s=timeout_s, engine=self.engine)

    def running_image_id(self) -> str | None:
        return container_image_id(self.engine, self.container)

    def describe(self) -> str:
        state = self.engine.state(self.container)
        described = state.describe() if state is not None else f"state unknown (engine at {self.engine.description})"
        logs = " | ".join(self.engine.log_tail(self.container, 3)) if state is None or state.status != "missing" else ""
        return f"container {self.container} is {described}" + (f"; last log lines: {logs}" if logs else "")


# --- the upgrade -----------------------------------------------------------------------------------------


class Progress(Protocol):
    """``commands.progress.Steps``: a timed step, and a line."""

    def step(self, label: str) -> AbstractContextManager[None]: ...

    def note(self, line: str) -> None: ...


class ConfigChange(Protocol):
    """Writes the new image into the stack's config; ``revert`` puts the file's previous text back."""

    @property
    def path(self) -> Path: ...

    def write(self) -> None: ...

    def revert(self) -> None: ...


@dataclass(kw_only=True)
class UpgradeReport:
    plan: UpgradePlan
    outcome: str  # "upgraded", "rolled back", "rollback failed"
    backups: list[str] = field(default_factory=list)
    before: DataRecord | None = None
    after: DataRecord | None = None
    reason: str = ""
    rollback_reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "stack": plan.stack,
            "instance": plan.instance,
            "from_image": plan.from_image,
            "to_image": plan.to_image,
            "from_major": plan.from_major,
            "to_major": plan.new.major,
            "to_image_id": plan.new.image_id,
            "path": plan.path,
            "outcome": self.outcome,
            "backups": self.backups,
            "before": self.before.as_dict() if self.before else None,
            "after": self.after.as_dict() if self.after else None,
            "reason": self.reason or None,
            "rollback_reason": self.rollback_reason or None,
            "attempts": self.attempts,
        }


class _ApplyFailed(Exception):
    pass


def apply_step(applier: Applier, progress: Progress, label: str, wait_timeout_s: float) -> ApplyResult:
    """The apply as one timed step (``failed after`` when it fails), its output passed on as ``  | `` lines."""
    result = ApplyResult(ok=False, detail="")
    try:
        with progress.step(label):
            result = applier.apply(wait_timeout_s=wait_timeout_s, on_line=lambda line: progress.note(f"  | {line}"))
            if not result.ok:
                raise _ApplyFailed
    except _ApplyFailed:
        pass
    return result


def one_line(text: str) -> str:
    return " ".join(text.split())


def _without_deploy_advice(message: str) -> str:
    return message.removesuffix("; fix the cause, then run the deploy again")


def upgrade(
    plan: UpgradePlan,
    *,
    instance: Instance,
    applier: Applier,
    config: ConfigChange,
    wait_timeout_s: float,
    progress: Progress,
    on_report: Callable[[UpgradeReport], None] = lambda report: None,
) -> UpgradeReport:
    """Steps 2-5 of the module docstring for a same-major change; ``UpgradeError`` when it was rolled back (or could not be)."""
    if plan.major_change:
        raise UpgradeError(f"{plan.stack}: {plan.instance}: a major upgrade goes through its path, not this one (a bug)")
    where = f"{plan.stack}: {plan.instance}"
    with progress.step(f"upgrade {plan.instance}: proven backup first"):
        try:
            backups = instance.backup(progress.note)
            before = instance.record()
        except (BackupError, ConnectionFailed) as exc:
            raise UpgradeError(f"{where}: no proven backup, upgrade not started: {exc}; nothing was changed") from None
    report = UpgradeReport(plan=plan, outcome="", backups=backups, before=before)
    old_id = instance.running_image_id()

    def attempt(ref: str, image_id: str | None) -> str | None:
        """Apply, wait, check; the reason it failed, or None."""
        entry: dict[str, Any] = {"image": ref, "ok": False}
        report.attempts.append(entry)
        result = apply_step(applier, progress, f"apply {plan.instance} = {ref} ({applier.description})", wait_timeout_s)
        if not result.ok:
            detail = _without_deploy_advice(result.detail)
            if instance.container not in detail:
                detail = f"{detail}; {instance.describe()}"
            entry["reason"] = f"the apply failed: {detail}"
            return entry["reason"]
        try:
            with progress.step(f"waiting for {plan.instance} (up to {wait_timeout_s:.0f}s)"):
                instance.wait(wait_timeout_s)
        except ConnectionFailed as exc:
            entry["reason"] = _without_deploy_advice(str(exc))
            return entry["reason"]
        running = instance.running_image_id()
        if image_id is not None and running != image_id:
            entry["reason"] = (
                f"container {instance.container} runs image {short_id(running)}, not {ref} ({short_id(image_id)}): the apply did not replace it"
            )
            return entry["reason"]
        try:
            after = instance.record()
        except ConnectionFailed as exc:
            entry["reason"] = f"it answers, but its data cannot be read: {exc}"
            return entry["reason"]
        problems = compare_records(before, after)
        if problems:
            entry["reason"] = "not the data it had: " + "; ".join(problems)
            return entry["reason"]
        report.after = after
        entry["ok"] = True
        return None

    config.write()
    try:
        failure = attempt(plan.to_image, plan.new.image_id)
    except BaseException:
        config.revert()  # interrupted: the file names what ran before; the next deploy puts it back
        raise
    if failure is None:
        report.outcome = "upgraded"
        on_report(report)
        return report

    report.reason = failure
    config.revert()
    progress.note(f"{where}: {plan.to_image} did not come up ({one_line(failure)}); putting {plan.from_image} back")
    rollback_failure = attempt(plan.from_image, old_id)
    backups_line = f"backups taken first: {', '.join(backups)}" if backups else "no backup was needed"
    if rollback_failure is None:
        report.outcome = "rolled back"
        on_report(report)
        assert report.after is not None
        raise UpgradeError(
            one_line(
                f"{where}: {plan.to_image} did not come up within {wait_timeout_s:.0f}s ({failure}); rolled back: "
                f"{config.path} names {plan.from_image} again and it answers on the same data ({report.after.summary()}); {backups_line}"
            )
        )
    report.outcome = "rollback failed"
    report.rollback_reason = rollback_failure
    on_report(report)
    raise UpgradeError(
        one_line(
            f"{where}: {plan.to_image} did not come up ({failure}) and the rollback to {plan.from_image} failed too "
            f"({rollback_failure}); {config.path} names {plan.from_image} again and the data volume was not touched: "
            f"fix the cause and deploy the stack; {backups_line} (`nndb backup restore`)"
        )
    )
