"""``nndb drift``: the live tier against what the ledger and the repository's files say.

What the files say is not written down twice: per service, ``build_reference`` applies them exactly as
the hooks do into a scratch database on the same server — ``sql/init/02-apply-schemas.sql``, the
ledger, the baseline and every migration the live ledger records as applied (in the migrator's
sandbox, ``nexanest_db.ledger.MigrationApplier``), then ``sql/init/03-set-permissions.sql`` — and
``sql/queries/drift-catalog.sql`` reads both databases into comparable rows
(``nexanest_db.operations.drift_compare``). The scratch database (``nndb_drift_<random>``) is dropped
whatever happens, Ctrl-C included; one a killed run left behind is dropped by the next run.

Cluster-wide state is compared with what ``sql/init/`` sets: the service roles' attributes,
memberships, role settings and passwords (against the secrets, as SCRAM verifiers: no value leaves
this process), the monitoring role (monitoring/identities.toml), the replication role where
``backup.pitr``, and roles nobody declared. Redis: every ACL user against the rules the hook steps
set (``nexanest_db.operations.redis_acl``). The ledger: an applied file whose checksum changed, a
ledger row whose file is gone.

The run takes the hooks' run lock (a hooks run and a drift check never interleave: the sandbox sets the
migrator's one-run password) and changes nothing live but that password, cleared again at the end —
and, like any run holding the lock, a superuser rotation the server had not seen yet (said in a note).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg
import redis

from nexanest_db import scram
from nexanest_db.context import HookContext
from nexanest_db.errors import ConfigError, ConnectionFailed, MigrationError, NndbError, StepFailed
from nexanest_db.ledger import MigrationApplier, make_plan, read_ledger
from nexanest_db.migration_files import discover
from nexanest_db.monitoring import MONITOR_SECRETS, load_identities
from nexanest_db.operations.drift_compare import (
    CatalogRow,
    DriftFinding,
    LiveRole,
    WantedRole,
    compare_catalogs,
    compare_memberships,
    compare_role,
    rename_database,
    sort_key,
)
from nexanest_db.operations.permissions import STEP_FILE as PERMISSION_STEPS
from nexanest_db.operations.permissions import permission_values
from nexanest_db.operations.pitr import REPLICATION_ROLE
from nexanest_db.operations.redis_acl import WantedAclUser, default_user_differences, monitor_user, service_user
from nexanest_db.operations.replica_setup import redis_replication_user
from nexanest_db.queries import compose_query, load_query
from nexanest_db.redis_session import acl_user
from nexanest_db.roles import REDIS_REPLICATION_SECRET, SUPERUSER_SECRETS, ServiceRoles
from nexanest_db.secrets.catalogue import REPLICATION_SECRETS
from nexanest_db.sqlfiles import StepValues, load_step_file, one_line, run_steps

SCHEMA_STEPS = "init/02-apply-schemas.sql"
LEDGER_STEPS = "ledger/01-create-ledger.sql"
SCRATCH_PREFIX = "nndb_drift_"
JSON_SCHEMA_VERSION = 1

# Called with (event, detail) at points a test may interrupt: "scratch created" (its name), ...
Observer = Callable[[str, str], None]


@dataclass(kw_only=True)
class DriftReport:
    stack: str
    checked_at: datetime
    services: list[str]
    seconds: float = 0.0
    findings: list[DriftFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not drift: pending migrations, what was not compared

    def as_dict(self, error: str | None = None, exit_code: int | None = None) -> dict[str, object]:
        """The ``--json`` document (schema: docs/drift.md); ``error``: the one line of a check that could not finish."""
        return {
            "schema": JSON_SCHEMA_VERSION,
            "stack": self.stack,
            "checked_at": self.checked_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "seconds": round(self.seconds, 3),
            "services": self.services,
            "drift": bool(self.findings),
            "findings": [finding.as_dict() for finding in self.findings],
            "notes": self.notes,
            "error": None if error is None else {"message": error, "exit_code": exit_code},
        }


def server_gone(exc: psycopg.Error) -> bool:
    """The session ended under us (server down, connection lost), as opposed to an SQL error of the files or queries."""
    state = exc.sqlstate or ""
    return state.startswith(("08", "57P")) or (not state and isinstance(exc, psycopg.OperationalError))


@contextmanager
def lost_connections_named(context: HookContext, instance: str) -> Iterator[None]:
    """A server that goes away mid-check: one ``ConnectionFailed`` line naming it (exit 4), not a traceback."""
    try:
        yield
    except psycopg.Error as exc:
        if not server_gone(exc):
            raise
        endpoint = context.endpoints.for_instance(instance)
        raise ConnectionFailed(
            f"{instance} at {endpoint.host}:{endpoint.port}: the connection was lost during the drift check ({one_line(exc)}); "
            "check that the server is up, then run again"
        ) from None


def selected_services(context: HookContext, only: Sequence[str]) -> tuple[ServiceRoles, ...]:
    if not only:
        return context.services
    known = {service.service: service for service in context.services}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ConfigError(f"--service {unknown[0]}: no such service in {context.stack}; known: {', '.join(sorted(known))}")
    return tuple(service for service in context.services if service.service in only)


# --- the reference database -------------------------------------------------------------------


def drop_database(context: HookContext, instance: str, name: str) -> None:
    """Drop a scratch database; a broken maintenance session (Ctrl-C mid-statement) is replaced by a fresh login."""
    context.postgres.close_database(instance, name)
    statement = compose_query(context.paths.sql_dir, "scratch-drop", database=name)
    try:
        context.pg(instance).execute(statement)
        return
    except (psycopg.Error, NndbError):
        pass
    superuser = context.postgres.superuser(instance)
    fresh = context.postgres.login_as(instance, "postgres", user=superuser, password=context.password(SUPERUSER_SECRETS[instance]))
    try:
        fresh.execute(statement)
    finally:
        fresh.close()


def drop_leftovers(context: HookContext, instance: str) -> list[str]:
    """Scratch databases a killed run left behind (nobody connected): dropped now; their names."""
    rows = context.pg(instance).execute(load_query(context.paths.sql_dir, "drift-scratch-leftovers")).fetchall()
    for (name,) in rows:
        drop_database(context, instance, name)
    return [name for (name,) in rows]


def read_catalog(conn: psycopg.Connection, query: str) -> list[CatalogRow]:
    return [(str(a), str(b), str(c or ""), str(d or "")) for a, b, c, d in conn.execute(query).fetchall()]


def build_reference(
    context: HookContext, service: ServiceRoles, applied_versions: set[int], observer: Observer | None = None
) -> list[CatalogRow]:
    """The catalog the files give ``service``: applied to a scratch database exactly as the hooks do, read, dropped."""
    sql_dir = context.paths.sql_dir
    scratch = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    schema_steps = load_step_file(sql_dir, SCHEMA_STEPS)
    ledger_steps = load_step_file(sql_dir, LEDGER_STEPS)
    permission_steps = load_step_file(sql_dir, PERMISSION_STEPS)
    migrations = [m for m in discover(sql_dir, service.service) if m.version in applied_versions]
    admin = context.pg(service.instance)
    try:
        admin.execute(compose_query(sql_dir, "drift-scratch-create", database=scratch, owner_role=service.owner_role))
        if observer is not None:
            observer("scratch created", scratch)
        reference = replace(service, database=scratch)
        conn = context.pg(service.instance, scratch)
        values = StepValues(
            identifiers={
                "schema": service.schema,
                "owner_role": service.owner_role,
                "migrator_role": service.migrator_role,
                "database": scratch,
            }
        )
        run_steps(conn, schema_steps, values)
        run_steps(conn, ledger_steps, values)
        if migrations:

            def login(password: str) -> psycopg.Connection:
                return context.postgres.login_as(service.instance, scratch, user=service.migrator_role, password=password)

            applier = MigrationApplier(conn, login, reference, sql_dir)
            try:
                for migration in migrations:
                    applier.apply(migration)
            finally:
                applier.close()
        run_steps(conn, permission_steps, permission_values(reference))
        if observer is not None:
            observer("reference built", scratch)
        return rename_database(read_catalog(conn, load_query(sql_dir, "drift-catalog")), scratch, service.database)
    finally:
        drop_database(context, service.instance, scratch)


# --- per service: ledger and objects ---------------------------------------------------------------


def check_service(context: HookContext, service: ServiceRoles, report: DriftReport, observer: Observer | None) -> None:
    subject = service.service
    sql_dir = context.paths.sql_dir
    if not context.postgres.database_exists(service.instance, service.database):
        report.findings.append(
            DriftFinding(
                subject=subject,
                kind="database",
                name=service.subject,
                problem="missing",
                message=f"missing; run `nndb hooks run {context.stack}` to create it",
            )
        )
        return
    live_conn = context.pg(service.instance, service.database)
    exists, applied = read_ledger(live_conn, service.service, sql_dir)
    migrations = discover(sql_dir, service.service)
    plan = make_plan(service, migrations, applied, ledger_exists=exists)
    if not exists:
        report.findings.append(
            DriftFinding(
                subject=subject,
                kind="database",
                name=service.subject,
                problem="missing",
                message=f"has no migration ledger (nndb.schema_migrations); run `nndb hooks run {context.stack}`",
            )
        )
    for migration, row in plan.changed:
        report.findings.append(
            DriftFinding(
                subject=subject,
                kind="migration",
                name=migration.script,
                problem="changed",
                message=(
                    f"changed after it was applied on {row.applied_at:%Y-%m-%d %H:%M} (ledger {row.checksum[:12]}, file "
                    f"{migration.checksum[:12]}); restore the applied text and put the change in a new migration"
                ),
                live=row.checksum,
                expected=migration.checksum,
            )
        )
    for row in plan.missing_files:
        report.findings.append(
            DriftFinding(
                subject=subject,
                kind="migration",
                name=row.script,
                problem="missing",
                message=f"V{row.version:03d} is in the ledger but its file is gone; restore it from git",
                live=row.checksum,
            )
        )
    waiting = [m.label for m in [*plan.pending, *plan.out_of_order]]
    if waiting:
        report.notes.append(
            f"{subject}: {len(waiting)} migration(s) not applied yet ({', '.join(waiting)}): not drift, not compared; "
            f"`nndb migrate status {context.stack}`"
        )
    live_rows = read_catalog(live_conn, load_query(sql_dir, "drift-catalog"))
    try:
        expected_rows = build_reference(context, service, set(applied), observer)
    except (MigrationError, StepFailed, psycopg.Error) as exc:
        if isinstance(exc, psycopg.Error) and server_gone(exc):
            raise
        reason = one_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
        report.findings.append(
            DriftFinding(
                subject=subject,
                kind="reference",
                name=service.subject,
                problem="differs",
                message=f"the files do not apply to an empty database, so nothing was compared: {reason}",
            )
        )
        return
    report.findings += compare_catalogs(subject, live_rows, expected_rows)


# --- cluster-wide: roles ---------------------------------------------------------------------------


def wanted_roles(context: HookContext, instance: str, services: Sequence[ServiceRoles], *, everything: bool) -> list[WantedRole]:
    """The roles sql/init/ creates on ``instance`` for ``services`` (and, with ``everything``, the tier's own)."""
    roles: list[WantedRole] = []
    for service in services:
        if service.instance != instance:
            continue
        name = service.service
        roles.append(WantedRole(subject=name, name=service.owner_role, login=False))
        roles.append(WantedRole(subject=name, name=service.migrator_role, login=True, inherit=False, member_of=(service.owner_role,)))
        for login in service.login_roles:
            roles.append(WantedRole(subject=name, name=login.name, login=True, secret=login.secret))
    if everything:
        identity = load_identities(context.paths.monitoring_dir).postgres
        roles.append(
            WantedRole(
                subject=instance,
                name=identity.role,
                login=True,
                connection_limit=identity.connection_limit,
                secret=MONITOR_SECRETS[instance],
                member_of=identity.member_of,
            )
        )
        if context.config.backup.pitr or context.config.replicas_of(instance):
            roles.append(
                WantedRole(
                    subject=instance,
                    name=REPLICATION_ROLE,
                    login=True,
                    replication=True,
                    secret=REPLICATION_SECRETS[instance],
                    member_of=("pg_read_all_settings", "pg_read_all_stats"),
                )
            )
    return roles


def check_roles(context: HookContext, instance: str, services: Sequence[ServiceRoles], report: DriftReport, *, everything: bool) -> None:
    sql_dir = context.paths.sql_dir
    conn = context.pg(instance)
    wanted = wanted_roles(context, instance, services, everything=everything)
    by_name = {role.name: role for role in wanted}
    live: dict[str, LiveRole] = {}
    for name, superuser, inherit, createrole, createdb, login, replication, bypassrls, connlimit, stored in conn.execute(
        load_query(sql_dir, "drift-roles")
    ).fetchall():
        role = by_name.get(name)
        matches = None
        if role is not None and role.secret is not None and stored is not None:
            matches = scram.verifies(context.password(role.secret), stored)
        elif role is not None and role.secret is not None:
            matches = False
        live[name] = LiveRole(
            name=name,
            superuser=superuser,
            inherit=inherit,
            create_role=createrole,
            create_db=createdb,
            login=login,
            replication=replication,
            bypass_rls=bypassrls,
            connection_limit=connlimit,
            has_password=stored is not None,
            password_matches=matches,
        )
    for role in wanted:
        report.findings += compare_role(instance, role, live.get(role.name))
    managed = set(by_name)
    memberships = {(role.name, granted) for role in wanted for granted in role.member_of}
    rows = [(m, g, bool(a)) for m, g, a in conn.execute(load_query(sql_dir, "drift-memberships")).fetchall()]
    report.findings += compare_memberships(instance, managed, memberships, rows)
    for name, database, settings in conn.execute(load_query(sql_dir, "drift-role-settings")).fetchall():
        if name in managed:
            where = f" in database {database}" if database else ""
            report.findings.append(
                DriftFinding(
                    subject=instance,
                    kind="role",
                    name=name,
                    problem="unexpected",
                    message=f"role setting{where} {settings}: not expected (ALTER ROLE ... SET by hand?)",
                    live=settings,
                )
            )
    if everything:
        check_maintenance(context, instance, wanted, report)
        superuser = context.postgres.superuser(instance)
        for name in sorted(live.keys() - managed - {superuser}):
            report.findings.append(
                DriftFinding(subject=instance, kind="role", name=name, problem="unexpected", message="not expected (created by hand?)")
            )


def check_maintenance(context: HookContext, instance: str, wanted: Sequence[WantedRole], report: DriftReport) -> None:
    """The maintenance databases: closed to PUBLIC (00-harden-maintenance.sql), CONNECT on postgres for the tier's own logins only."""
    expected = {("database postgres", "CONNECT", role.name) for role in wanted if role.subject == instance}
    live = {
        (str(o), str(p), str(g)) for o, p, g in context.pg(instance).execute(load_query(context.paths.sql_dir, "drift-maintenance-acl"))
    }
    for target, privilege, grantee in sorted(live - expected):
        report.findings.append(
            DriftFinding(
                subject=instance,
                kind="grant",
                name=f"{privilege} on {target} to {grantee}",
                problem="unexpected",
                message="not expected (granted by hand? `nndb hooks run` takes PUBLIC's back)",
            )
        )
    for target, privilege, grantee in sorted(expected - live):
        report.findings.append(
            DriftFinding(
                subject=instance,
                kind="grant",
                name=f"{privilege} on {target} to {grantee}",
                problem="missing",
                message="missing (revoked by hand?)",
            )
        )


# --- Redis --------------------------------------------------------------------------------------


def check_redis(context: HookContext, services: Sequence[ServiceRoles], report: DriftReport, *, everything: bool) -> None:
    client = context.redis()
    wanted: list[WantedAclUser] = [service_user(service, context.password(service.redis_secret)) for service in services]
    identity = load_identities(context.paths.monitoring_dir).redis
    if everything:
        wanted.append(monitor_user(identity, context.password(MONITOR_SECRETS["redis"]), MONITOR_SECRETS["redis"]))
        if context.config.replicas_of("redis"):
            wanted.append(redis_replication_user(context.password(REDIS_REPLICATION_SECRET)))
    try:
        for user in wanted:
            actual = acl_user(client, user.name)
            for problem in user.differences(actual):
                missing = problem == "missing"
                report.findings.append(
                    DriftFinding(
                        subject="redis",
                        kind="ACL user",
                        name=user.name,
                        problem="missing" if missing else "differs",
                        message=f"missing; run `nndb hooks run {context.stack}`" if missing else f"rule differs: {problem}",
                    )
                )
        if not everything:
            return
        for problem in default_user_differences(acl_user(client, "default")):
            report.findings.append(
                DriftFinding(subject="redis", kind="ACL user", name="default", problem="differs", message=f"rule differs: {problem}")
            )
        known = {"default", *(user.name for user in wanted)}
        for name in sorted(str(user) for user in client.execute_command("ACL", "USERS")):
            if name not in known:
                report.findings.append(
                    DriftFinding(
                        subject="redis", kind="ACL user", name=name, problem="unexpected", message="not expected (created by hand?)"
                    )
                )
    except redis.RedisError as exc:
        endpoint = context.endpoints.redis
        raise ConnectionFailed(f"redis at {endpoint.host}:{endpoint.port}: {exc}; check that it is up, then run again") from None


# --- the whole stack --------------------------------------------------------------------------------


def check_stack(
    context: HookContext,
    *,
    only: Sequence[str] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    observer: Observer | None = None,
) -> DriftReport:
    """Every drift finding of the stack (or of the ``only`` services). ``context`` must take the run lock."""
    if not context.run_lock:
        raise ValueError("drift builds its reference in the migrator's sandbox: build its context with run_lock=True")
    started = time.perf_counter()
    services = selected_services(context, only)
    everything = not only
    report = DriftReport(stack=context.stack, checked_at=now(), services=[s.service for s in services])
    instances = sorted({s.instance for s in services})
    for instance in instances:
        with lost_connections_named(context, instance):
            left = drop_leftovers(context, instance)
            if left:
                report.notes.append(
                    f"{instance}: dropped {len(left)} scratch database(s) a killed drift run left behind ({', '.join(left)})"
                )
            check_roles(context, instance, services, report, everything=everything)
    for service in services:
        with lost_connections_named(context, service.instance):
            check_service(context, service, report, observer)
    check_redis(context, services, report, everything=everything)
    for change in context.take_changes():  # the run lock's login completes a pending superuser rotation, as a hooks run would
        report.notes.append(f"{change.subject}: {change.summary} (the server still had the previous credential)")
    report.findings.sort(key=sort_key)
    report.seconds = time.perf_counter() - started
    return report
