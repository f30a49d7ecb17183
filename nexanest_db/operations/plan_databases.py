"""What the post-apply hooks would do to the live databases, computed read-only (``nndb plan``).

* pending migrations per service, with their SQL (the ledger read as ``nndb migrate status`` reads it);
* the role and database statements of ``sql/init/00-harden-maintenance.sql`` and
  ``01-create-databases.sql`` whose ``run-if`` holds now (the same conditions the ``init_sql`` step
  evaluates, against the current state: a step that only an earlier step of the same run would
  enable is shown as the current state says);
* the objects whose privileges ``sql/init/03-set-permissions.sql`` would change
  (``sql/queries/plan-permissions.sql``) and, where there are any, that file's statements;
* the Redis ``ACL SETUSER`` commands the ``redis_acl`` step would send (password hashes named, never shown).

Every query runs in a ``READ ONLY`` transaction, without the run lock, and no superuser rotation is
tried: a plan changes nothing. When an instance cannot be reached the plan says so in one line
(``DatabasePlan.note``) and, given a base checkout, lists the migration files new since that ref instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from nexanest_db.context import HookContext
from nexanest_db.errors import NndbError
from nexanest_db.migration_files import BASELINE_VERSION, Migration, discover
from nexanest_db.operations.init_roles import MAINTENANCE_STEP_FILE, step_values
from nexanest_db.operations.init_roles import STEP_FILE as ROLES_STEP_FILE
from nexanest_db.operations.migrations import plan_service
from nexanest_db.operations.permissions import STEP_FILE as PERMISSIONS_STEP_FILE
from nexanest_db.operations.permissions import permission_values
from nexanest_db.operations.redis_acl import acl_text, service_user
from nexanest_db.queries import load_query
from nexanest_db.redis_session import acl_user
from nexanest_db.roles import REDIS_DEFAULT_SECRET, ServiceRoles, postgres_instances
from nexanest_db.sqlfiles import StepFile, StepValues, load_step_file, one_line


@dataclass(frozen=True, kw_only=True)
class PendingMigration:
    label: str
    description: str
    script: str
    sql: str

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "description": self.description, "script": self.script, "sql": self.sql}


@dataclass(kw_only=True)
class ServiceMigrations:
    service: str
    subject: str
    checked: bool  # the ledger was read; False: listed from the files only (see note)
    note: str | None = None
    pending: list[PendingMigration] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "subject": self.subject,
            "checked": self.checked,
            "note": self.note,
            "pending": [m.as_dict() for m in self.pending],
            "problems": list(self.problems),
        }


@dataclass(frozen=True, kw_only=True)
class PlannedStatement:
    kind: str  # "role", "grant" or "redis-acl"
    subject: str  # postgres, postgres/auth, redis
    step: str  # what the hook would report, e.g. "created role auth_owner"
    statement: str  # SQL or a Redis command; secrets shown as <...> placeholders

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "step": self.step, "statement": self.statement}


@dataclass(kw_only=True)
class DatabasePlan:
    unreachable: dict[str, str] = field(default_factory=dict)  # instance -> one-line reason
    note: str | None = None  # the one line said when something could not be reached
    migrations: list[ServiceMigrations] = field(default_factory=list)
    statements: list[PlannedStatement] = field(default_factory=list)
    privileges: dict[str, list[str]] = field(default_factory=dict)  # service -> objects whose privileges change
    problems: list[str] = field(default_factory=list)  # what could not be computed, one line each

    @property
    def pending_count(self) -> int:
        return sum(len(m.pending) for m in self.migrations)

    def as_dict(self) -> dict[str, object]:
        return {
            "reachable": not self.unreachable,
            "unreachable": dict(self.unreachable),
            "note": self.note,
            "migrations": [m.as_dict() for m in self.migrations],
            "statements": [s.as_dict() for s in self.statements],
            "privileges": {k: list(v) for k, v in self.privileges.items()},
            "problems": list(self.problems),
        }


@contextmanager
def _read_only(conn: psycopg.Connection, sql_dir: Path) -> Iterator[psycopg.Connection]:
    with conn.transaction():
        conn.execute(load_query(sql_dir, "transaction-read-only"))
        yield conn


def _pending(migration: Migration) -> PendingMigration:
    return PendingMigration(
        label=migration.label,
        description=migration.description,
        script=migration.script,
        sql="\n".join(source.text.rstrip() for source in migration.sources) + "\n",
    )


def _render(conn: psycopg.Connection, body: str, values: StepValues) -> str:
    """A step's SQL with its placeholders filled; a literal that holds a password verifier is shown as a placeholder."""
    composables: dict[str, sql.Composable] = {k: sql.Identifier(v) for k, v in values.identifiers.items() if v is not None}
    for key, value in values.literals.items():
        if value is None:
            continue
        composables[key] = sql.SQL("'<SCRAM verifier of the current secret>'") if key.endswith("_password") else sql.Literal(value)
    lines = sql.SQL(body).format(**composables).as_string(conn).rstrip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
        lines.pop()  # a comment at a step's end introduces the next step
    return "\n".join(lines)


def _due_steps(
    conn: psycopg.Connection, steps: StepFile, values: StepValues, *, kind: str, subject: str, sql_dir: Path
) -> list[PlannedStatement]:
    out = []
    params = values.params()
    with _read_only(conn, sql_dir):
        for step in steps.steps:
            if step.run_if is not None:
                row = conn.execute(step.run_if, params).fetchone()
                if not row or not row[0]:
                    continue
            out.append(
                PlannedStatement(
                    kind=kind, subject=subject, step=step.title.format_map(values.display()), statement=_render(conn, step.body, values)
                )
            )
    return out


class _Planner:
    def __init__(self, context: HookContext, plan: DatabasePlan, base_sql_dir: Path | None, base_label: str | None) -> None:
        self.context = context
        self.plan = plan
        self.base_sql_dir = base_sql_dir
        self.base_label = base_label
        self.sql_dir = context.paths.sql_dir

    def reach(self) -> None:
        for instance in postgres_instances(self.context.config):
            try:
                self.context.pg(instance)
            except NndbError as exc:
                self.plan.unreachable[instance] = str(exc)
        try:
            self.context.redis()
        except NndbError as exc:
            self.plan.unreachable["redis"] = str(exc)
        if self.plan.unreachable:
            names = ", ".join(self.plan.unreachable)
            first = next(iter(self.plan.unreachable.values()))
            self.plan.note = (
                f"live databases not reachable ({names}: {first}): pending migrations and role/grant/ACL statements "
                "for them are not computed"
                + (f"; migrations listed are the files new since {self.base_label}" if self.base_sql_dir else "")
            )

    def migrations(self, service: ServiceRoles) -> None:
        entry = ServiceMigrations(service=service.service, subject=service.subject, checked=False)
        self.plan.migrations.append(entry)
        if service.instance in self.plan.unreachable:
            if self.base_sql_dir is None:
                entry.note = f"ledger not read ({service.instance} unreachable)"
                return
            try:
                known = {m.version for m in discover(self.base_sql_dir, service.service)}
                new = [m for m in discover(self.sql_dir, service.service) if m.version not in known and m.version != BASELINE_VERSION]
            except NndbError as exc:
                entry.problems.append(str(exc))
                return
            entry.note = f"ledger not read ({service.instance} unreachable): files new since {self.base_label}"
            entry.pending = [_pending(m) for m in new]
            return
        try:
            service_plan = plan_service(self.context, service)
        except NndbError as exc:
            entry.problems.append(str(exc))
            return
        except psycopg.Error as exc:
            entry.problems.append(f"{service.subject}: ledger not readable: {one_line(exc)}")
            return
        entry.checked = True
        if not service_plan.ledger_exists:
            entry.note = "no ledger yet: the baseline and every migration run"
        entry.pending = [_pending(m) for m in service_plan.pending]
        entry.problems = service_plan.problems()

    def roles(self) -> None:
        maintenance = load_step_file(self.sql_dir, MAINTENANCE_STEP_FILE)
        roles_steps = load_step_file(self.sql_dir, ROLES_STEP_FILE)
        for instance in postgres_instances(self.context.config):
            if instance not in self.plan.unreachable:
                self._guard(instance, partial(self._maintenance_of, instance, maintenance))
        for service in self.context.services:
            if service.instance not in self.plan.unreachable:
                self._guard(service.subject, partial(self._roles_of, service, roles_steps))

    def _maintenance_of(self, instance: str, steps: StepFile) -> list[PlannedStatement]:
        return _due_steps(self.context.pg(instance), steps, StepValues(), kind="role", subject=instance, sql_dir=self.context.paths.sql_dir)

    def _roles_of(self, service: ServiceRoles, steps: StepFile) -> list[PlannedStatement]:
        values = step_values(self.context, service)
        return _due_steps(
            self.context.pg(service.instance), steps, values, kind="role", subject=service.subject, sql_dir=self.context.paths.sql_dir
        )

    def grants(self) -> None:
        steps = load_step_file(self.sql_dir, PERMISSIONS_STEP_FILE)
        query = load_query(self.sql_dir, "plan-permissions")
        for service in self.context.services:
            if service.instance not in self.plan.unreachable:
                self._guard(service.subject, partial(self._grants_of, service, steps, query))

    def _grants_of(self, service: ServiceRoles, steps: StepFile, query: str) -> list[PlannedStatement]:
        values = permission_values(service)
        if not self.context.postgres.database_exists(service.instance, service.database):
            objects = [f"database {service.database} (created by this run)"]
            conn = self.context.pg(service.instance)
        else:
            conn = self.context.pg(service.instance, service.database)
            params = {**values.params(), "readonly_enabled": service.readonly is not None}
            with _read_only(conn, self.context.paths.sql_dir):
                objects = [f"{kind} {name}" for kind, name in conn.execute(query, params).fetchall()]
        if not objects:
            return []
        self.plan.privileges[service.service] = objects
        return [
            PlannedStatement(
                kind="grant",
                subject=service.subject,
                step=step.title.format_map(values.display()),
                statement=_render(conn, step.body, values),
            )
            for step in steps.steps
            if step.run_if is None or service.readonly is not None  # the file's one run-if is readonly_role_enabled
        ]

    def redis_acl(self) -> None:
        if "redis" in self.plan.unreachable:
            return
        self._guard("redis", self._acl_statements)

    def _acl_statements(self) -> list[PlannedStatement]:
        client = self.context.redis()
        out = []
        default = acl_user(client, "default") or {}
        if "nopass" in acl_text(default.get("flags")).split() or not acl_text(default.get("passwords")):
            out.append(
                PlannedStatement(
                    kind="redis-acl",
                    subject="redis",
                    step="default user password-protected",
                    statement=f"ACL SETUSER default on resetpass #<sha256 of secret {REDIS_DEFAULT_SECRET}>",
                )
            )
        for service in self.context.services:
            wanted = service_user(service, self.context.password(service.redis_secret))
            actual = acl_user(client, service.redis_user)
            if not wanted.differences(actual):
                continue
            if actual is None:
                step = f"created Redis user {service.redis_user} (keys {service.redis_prefix}*)"
            elif not wanted.differences({**actual, "passwords": [wanted.password_sha256]}):
                step = f"password rotated for Redis user {service.redis_user}"
            else:
                step = f"reset Redis user {service.redis_user} to keys {service.redis_prefix}*"
            rules = " ".join(service.redis_rules)
            out.append(
                PlannedStatement(
                    kind="redis-acl",
                    subject="redis",
                    step=step,
                    statement=f"ACL SETUSER {service.redis_user} reset on #<sha256 of secret {service.redis_secret}> {rules}",
                )
            )
        if out:
            out.append(PlannedStatement(kind="redis-acl", subject="redis", step="ACL file saved", statement="ACL SAVE"))
        return out

    def _guard(self, subject: str, compute: Callable[[], list[PlannedStatement]]) -> None:
        try:
            self.plan.statements += compute()
        except NndbError as exc:
            self.plan.problems.append(f"{subject}: not computed: {exc}")
        except psycopg.Error as exc:
            self.plan.problems.append(f"{subject}: not computed: {one_line(exc)}")
        except redis.RedisError as exc:
            self.plan.problems.append(f"{subject}: not computed: {exc}")


def plan_databases(context: HookContext, *, base_sql_dir: Path | None = None, base_label: str | None = None) -> DatabasePlan:
    """Everything above, read-only. ``context`` must not take the run lock (``run_lock=False``)."""
    if context.run_lock:
        raise ValueError("plan reads only: build its context with run_lock=False")
    plan = DatabasePlan()
    planner = _Planner(context, plan, base_sql_dir, base_label)
    planner.reach()
    for service in context.services:
        planner.migrations(service)
    planner.roles()
    planner.grants()
    planner.redis_acl()
    return plan
