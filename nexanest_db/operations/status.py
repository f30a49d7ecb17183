"""One look at a stack for the person on call: every instance, service, backup and certificate, each green or red.

``check_stack`` reads (never writes, never locks) what ``nndb status`` shows:

* per instance: reachable, version, client connections used / ``max_connections`` (``maxclients`` for
  Redis), uptime; where ``backup.pitr`` is on, WAL archiving (``pg_stat_archiver``); where
  ``tls.enabled``, the days left on the certificate the server presents on a real handshake (and on
  the CA bundle clients verify it with: whichever expires first); for Redis, memory used /
  ``maxmemory`` and the ACL users it must have (default, one per service, the exporter's);
* per service: the migration ledger (pending migrations, applied files changed since, out-of-order
  ones) and the newest backup in the catalog: its age, whether it passed verification, and whether
  the newest verified one is older than ``backup.schedule`` allows (the same rule as
  NndbBackupOverdue: the schedule's longest gap plus one hour).

Each finding is ``ok``, ``warn`` (act today) or ``red`` (now). The thresholds follow the shipped
alert rules (monitoring/rules/), so status and Prometheus agree on what is red. The JSON form
(``StatusReport.as_dict``) is documented in docs/status.md; change both together.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import psycopg
import redis
from croniter import croniter
from cryptography import x509

from nexanest_db.backups import Catalog
from nexanest_db.client_tls import CA_SECRET
from nexanest_db.config import PRIMARY_NODE
from nexanest_db.context import HookContext
from nexanest_db.errors import ConfigError, NndbError
from nexanest_db.ledger import make_plan, read_ledger
from nexanest_db.migration_files import discover
from nexanest_db.monitoring import load_identities
from nexanest_db.operations.replication import node_state
from nexanest_db.operations.replication_nodes import build_node, node_addresses
from nexanest_db.queries import load_query
from nexanest_db.roles import SUPERUSER_SECRETS, ServiceRoles
from nexanest_db.sqlfiles import one_line

Level = Literal["ok", "warn", "red"]
_RANK: dict[str, int] = {"ok": 0, "warn": 1, "red": 2}

# Thresholds, as the shipped rules have them (monitoring/rules/*.yml; docs/monitoring.md says why).
CONNECTIONS_WARN_RATIO = 0.8  # NndbPostgresConnectionsNearLimit
REPLICATION_LAG_WARN_BYTES = 64 * 1024 * 1024  # NndbReplicationLagHigh: four WAL segments
CONNECTIONS_RED_RATIO = 0.95  # a few sessions left: new clients are about to be refused
REDIS_MEMORY_WARN_RATIO = 0.9  # NndbRedisMemoryNearLimit
TLS_WARN_DAYS = 14  # NndbTlsCertificateExpiringSoon
TLS_RED_DAYS = 2  # NndbTlsCertificateExpiringImminently
BACKUP_GRACE_S = 3600  # monitoring/README.md: the schedule's longest gap plus one hour for the run and its verification
_SCHEDULE_RUNS = 64  # consecutive runs of backup.schedule whose gaps are compared (covers weekly and monthly schedules)
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest message


@dataclass(frozen=True, kw_only=True)
class Finding:
    level: Level
    subject: str  # an instance (postgres, timescale, redis) or a service (auth, ...)
    message: str

    @property
    def line(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass(kw_only=True)
class TlsExpiry:
    not_after: datetime  # the earliest notAfter of the server certificate and the CA bundle
    which: str  # "server certificate" or "CA bundle"

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


@dataclass(kw_only=True)
class InstanceStatus:
    name: str
    kind: Literal["postgres", "redis"]
    endpoint: str
    reachable: bool = False
    error: str | None = None
    version: str | None = None
    connections_used: int | None = None
    connections_max: int | None = None
    uptime_s: int | None = None
    wal_archiving: dict[str, object] | None = None  # PostgreSQL with backup.pitr only
    replication: dict[str, object] | None = None  # PostgreSQL: its role and each streaming client's lag
    tls: TlsExpiry | None = None  # tls.enabled only
    memory_used_bytes: int | None = None  # Redis only
    memory_max_bytes: int | None = None
    acl_users_present: list[str] | None = None
    acl_users_missing: list[str] | None = None


@dataclass(kw_only=True)
class ServiceStatus:
    name: str
    instance: str
    database: str
    checked: bool = False  # False: its instance did not answer
    database_exists: bool | None = None
    applied: int | None = None
    pending: list[str] = field(default_factory=list)  # labels, e.g. ["V004"]
    migration_problems: list[str] = field(default_factory=list)
    newest_backup_at: datetime | None = None
    newest_backup_verified: bool | None = None  # None: not verified (yet), False: verification failed
    newest_verified_at: datetime | None = None
    backup_max_age_s: int = 0


@dataclass(kw_only=True)
class StatusReport:
    stack: str
    checked_at: datetime
    seconds: float = 0.0
    instances: dict[str, InstanceStatus] = field(default_factory=dict)
    services: dict[str, ServiceStatus] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def level(self) -> Level:
        return max((f.level for f in self.findings), key=_RANK.__getitem__, default="ok")

    def level_of(self, subject: str) -> Level:
        return max((f.level for f in self.findings if f.subject == subject), key=_RANK.__getitem__, default="ok")

    def service_state(self, service: ServiceStatus) -> str:
        """``ok``/``warn``/``red``; ``unknown`` when its instance did not answer and nothing else about it is red."""
        level = self.level_of(service.name)
        return "unknown" if level == "ok" and not service.checked else level

    @property
    def red(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "red"]

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` document (schema: docs/status.md)."""
        now = self.checked_at

        def stamp(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None

        instances = {}
        for name, s in self.instances.items():
            tls = None
            if s.tls is not None:
                tls = {"not_after": stamp(s.tls.not_after), "days_left": round(s.tls.days_left(now), 2), "earliest": s.tls.which}
            entry: dict[str, object] = {
                "kind": s.kind,
                "endpoint": s.endpoint,
                "state": self.level_of(name),
                "reachable": s.reachable,
                "error": s.error,
                "version": s.version,
                "connections": {"used": s.connections_used, "max": s.connections_max} if s.connections_max is not None else None,
                "uptime_s": s.uptime_s,
                "tls": tls,
            }
            if s.kind == "postgres":
                entry["wal_archiving"] = s.wal_archiving
                entry["replication"] = s.replication
            else:
                entry["memory"] = {"used_bytes": s.memory_used_bytes, "max_bytes": s.memory_max_bytes} if s.reachable else None
                entry["acl_users"] = {"present": s.acl_users_present, "missing": s.acl_users_missing} if s.reachable else None
            instances[name] = entry
        services = {}
        for name, v in self.services.items():
            age = round((now - v.newest_verified_at).total_seconds()) if v.newest_verified_at else None
            services[name] = {
                "instance": v.instance,
                "database": v.database,
                "state": self.service_state(v),
                "checked": v.checked,
                "database_exists": v.database_exists,
                "migrations": {"applied": v.applied, "pending": v.pending, "problems": v.migration_problems} if v.checked else None,
                "backup": {
                    "newest_at": stamp(v.newest_backup_at),
                    "newest_verified": v.newest_backup_verified,
                    "newest_verified_at": stamp(v.newest_verified_at),
                    "newest_verified_age_s": age,
                    "max_age_s": v.backup_max_age_s,
                },
            }
        return {
            "schema": 1,
            "stack": self.stack,
            "checked_at": stamp(self.checked_at),
            "seconds": round(self.seconds, 3),
            "state": self.level,
            "instances": instances,
            "services": services,
            "findings": [{"level": f.level, "subject": f.subject, "message": f.message} for f in self.findings],
        }


# --- schedule ---------------------------------------------------------------------------------


def backup_max_age_s(schedule: str, *, now: datetime) -> int:
    """How old the newest verified backup may be: the longest gap between consecutive runs of ``schedule``, plus grace."""
    try:
        runs = croniter(schedule, now)
        times = [runs.get_next(float) for _ in range(_SCHEDULE_RUNS)]
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"backup.schedule: {schedule!r} is not a cron expression ({exc}); e.g. '0 2 * * *'") from None
    return round(max(b - a for a, b in itertools.pairwise(times))) + BACKUP_GRACE_S


# --- certificates from the wire --------------------------------------------------------------


def _unverified_context() -> ssl.SSLContext:
    # Only to read what the server presents (its expiry); trusting it is the clients' job (verify-full).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def presented_certificate(host: str, port: int, *, postgres: bool, timeout_s: float) -> x509.Certificate:
    """The certificate the server presents on a TLS handshake (PostgreSQL: after its SSLRequest)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        if postgres:
            sock.sendall(_SSL_REQUEST)
            if sock.recv(1) != b"S":
                raise OSError("the server does not offer TLS")
        with _unverified_context().wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError("no certificate presented")
    return x509.load_der_x509_certificate(der)


def earliest_expiry(server: x509.Certificate, ca_bundle_pem: str) -> TlsExpiry:
    expiry = TlsExpiry(not_after=server.not_valid_after_utc, which="server certificate")
    for ca in x509.load_pem_x509_certificates(ca_bundle_pem.encode("utf-8")):
        if ca.not_valid_after_utc < expiry.not_after:
            expiry = TlsExpiry(not_after=ca.not_valid_after_utc, which="CA bundle")
    return expiry


# --- the checks ---------------------------------------------------------------------------------


class _Checker:
    def __init__(self, context: HookContext, report: StatusReport, now: datetime) -> None:
        self.context = context
        self.report = report
        self.now = now
        self.sql_dir = context.paths.sql_dir

    def find(self, level: Level, subject: str, message: str) -> None:
        if level != "ok":
            self.report.findings.append(Finding(level=level, subject=subject, message=message))

    def tls_expiry(self, instance: InstanceStatus, host: str, port: int, *, postgres: bool) -> None:
        try:
            server = presented_certificate(host, port, postgres=postgres, timeout_s=self.context.connect_timeout_s)
            instance.tls = earliest_expiry(server, self.context.password(CA_SECRET))
        except (OSError, ValueError) as exc:
            self.find("red", instance.name, f"TLS: could not read the certificate the server presents ({exc})")
            return
        days = instance.tls.days_left(self.now)
        when = f"{instance.tls.which} expires {instance.tls.not_after:%Y-%m-%d %H:%M}Z ({days:.1f} days left)"
        if days < TLS_RED_DAYS:
            self.find("red", instance.name, f"TLS: {when}; renew it now")
        elif days < TLS_WARN_DAYS:
            self.find("warn", instance.name, f"TLS: {when}; renew it")

    def postgres(self, name: str) -> InstanceStatus:
        context = self.context
        endpoint = context.endpoints.for_instance(name)
        status = InstanceStatus(name=name, kind="postgres", endpoint=f"{endpoint.host}:{endpoint.port}")
        self.report.instances[name] = status
        try:
            conn = context.pg(name)
        except NndbError as exc:
            status.error = str(exc)
            self.find("red", name, f"unreachable: {exc}")
            return status
        status.reachable = True
        try:
            row = conn.execute(load_query(self.sql_dir, "status-instance")).fetchone()
            assert row is not None
            status.version, status.connections_used, status.connections_max, status.uptime_s, archive_mode = row
            used, limit = status.connections_used or 0, status.connections_max or 1
            if used / limit >= CONNECTIONS_RED_RATIO:
                self.find("red", name, f"connections {used}/{limit}: new clients are about to be refused")
            elif used / limit > CONNECTIONS_WARN_RATIO:
                self.find("warn", name, f"connections {used}/{limit} (over {CONNECTIONS_WARN_RATIO:.0%} of max_connections)")
            if context.config.backup.pitr:
                self.wal_archiving(conn, status, archive_mode)
            self.replication(conn, status)
        except psycopg.Error as exc:
            self.find("red", name, f"status query failed: {one_line(exc)}")
        if context.config.tls.enabled:
            self.tls_expiry(status, endpoint.host, endpoint.port, postgres=True)
        return status

    def replication(self, conn: psycopg.Connection, status: InstanceStatus) -> None:
        """The instance's role, and how far each streaming client (a standby, barman's WAL receiver) lags."""
        node = conn.execute(load_query(self.sql_dir, "replication-node")).fetchone()
        assert node is not None
        in_recovery = bool(node[0])
        clients = [] if in_recovery else conn.execute(load_query(self.sql_dir, "replication-standbys")).fetchall()
        status.replication = {
            "role": "standby" if in_recovery else "primary",
            "clients": [
                {"application_name": name, "state": state, "replay_lag_bytes": int(lag_bytes), "replay_lag_s": round(float(lag_s), 3)}
                for name, state, lag_bytes, lag_s in clients
            ],
        }
        if in_recovery:
            # The stack's endpoint should name the primary: after a failover, re-point it (docs/runbooks/failover.md).
            self.find("red", status.name, "answers as a standby (read-only): the endpoint does not point at the primary")
        status.replication["nodes"] = self.other_nodes(status.name)
        for name, state, lag_bytes, _lag_s in clients:
            if int(lag_bytes) > REPLICATION_LAG_WARN_BYTES:
                self.find(
                    "warn",
                    status.name,
                    f"{name} ({state}) lags {int(lag_bytes) // (1024 * 1024)} MiB behind; see docs/runbooks/replication.md",
                )

    def other_nodes(self, instance: str) -> dict[str, dict[str, str]]:
        """Every configured node but the endpoint's (``[replication.<instance>]``): its role as it answers.

        Red on a second writable primary (split brain: fence it, docs/runbooks/failover.md); a warning for a
        replica that does not answer or does not stream. The fenced old primary after a failover is expected down.
        """
        config = self.context.config
        if not config.replicas_of(instance):
            return {}
        current = config.replication[instance].primary  # type: ignore[index]
        addresses = node_addresses(config, instance, current_primary_endpoint=self.context.endpoints.for_instance(instance))
        password = self.context.password(SUPERUSER_SECRETS[instance])
        tls_kwargs = self.context.postgres.tls_kwargs()
        superuser = config.instance(instance).superuser  # type: ignore[attr-defined]
        nodes: dict[str, dict[str, str]] = {}
        for name, address in addresses.items():
            if name == current:
                continue
            node = build_node(
                address, superuser=superuser, password=password, tls_kwargs=tls_kwargs, connect_timeout_s=self.context.connect_timeout_s
            )
            state = node_state(node, self.sql_dir)
            where = f"{address.endpoint.host}:{address.endpoint.port}"
            fenced = name == PRIMARY_NODE  # the stack's own container, after a failover moved the primary away
            role = "fenced" if fenced and not state.reachable else state.role
            nodes[name] = {"endpoint": where, "role": role, "receiver": state.receiver_status or ""}
            if state.reachable and not state.in_recovery:
                self.find(
                    "red",
                    instance,
                    f"{name} at {where} also takes writes (two writable primaries beside {current}): fence it now "
                    "(docs/runbooks/failover.md)",
                )
            elif not state.reachable and not fenced:
                self.find("warn", instance, f"replica {name} does not answer at {where}; see docs/runbooks/replication.md")
            elif state.reachable and state.receiver_status != "streaming":
                self.find(
                    "warn",
                    instance,
                    f"replica {name} at {where} is a standby but does not stream (receiver: {state.receiver_status or 'none'}); "
                    "see docs/runbooks/replication.md",
                )
        return nodes

    def wal_archiving(self, conn: psycopg.Connection, status: InstanceStatus, archive_mode: str) -> None:
        row = conn.execute(load_query(self.sql_dir, "status-archiver")).fetchone()
        assert row is not None
        archived, failed, last_archived, last_failed, last_failed_wal = row
        failing = bool(failed) and (last_archived is None or (last_failed is not None and last_failed > last_archived))
        state = "off" if archive_mode != "on" else ("failing" if failing else "ok")
        status.wal_archiving = {
            "archive_mode": archive_mode,
            "state": state,
            "archived_count": archived,
            "failed_count": failed,
            "last_archived_at": last_archived,
            "last_failed_at": last_failed,
        }
        if state == "off":
            self.find("red", status.name, f"WAL archiving: archive_mode is {archive_mode} although backup.pitr is on; redeploy")
        elif failing:
            self.find("red", status.name, f"WAL archiving failing: {failed} failures, last {last_failed_wal}; check archive_command")

    def redis(self) -> InstanceStatus:
        context = self.context
        endpoint = context.endpoints.redis
        status = InstanceStatus(name="redis", kind="redis", endpoint=f"{endpoint.host}:{endpoint.port}")
        self.report.instances["redis"] = status
        try:
            client = context.redis()
        except NndbError as exc:
            status.error = str(exc)
            self.find("red", "redis", f"unreachable: {exc}")
            return status
        status.reachable = True
        try:
            info = client.info("everything")
            status.version = str(info.get("redis_version"))
            status.uptime_s = int(info.get("uptime_in_seconds") or 0)
            status.connections_used = int(info.get("connected_clients", 0))
            status.connections_max = int(str(info.get("maxclients") or client.config_get("maxclients")["maxclients"]))
            status.memory_used_bytes = int(info.get("used_memory", 0))
            status.memory_max_bytes = int(info.get("maxmemory", 0))
            present = sorted(str(user) for user in client.execute_command("ACL", "USERS"))
        except redis.RedisError as exc:
            self.find("red", "redis", f"status commands failed: {exc}")
            return status
        expected = {"default", load_identities(context.paths.monitoring_dir).redis.user, *(s.redis_user for s in context.services)}
        status.acl_users_present = present
        status.acl_users_missing = sorted(expected - set(present))
        if status.acl_users_missing:
            self.find("red", "redis", f"ACL users missing: {', '.join(status.acl_users_missing)}; run `nndb hooks run {context.stack}`")
        unexpected = sorted(set(present) - expected)
        if unexpected:
            self.find("warn", "redis", f"ACL users nndb does not manage: {', '.join(unexpected)}")
        if status.memory_max_bytes and status.memory_used_bytes / status.memory_max_bytes > REDIS_MEMORY_WARN_RATIO:
            self.find(
                "warn", "redis", f"memory {status.memory_used_bytes}/{status.memory_max_bytes} bytes (over {REDIS_MEMORY_WARN_RATIO:.0%})"
            )
        if context.config.tls.enabled:
            self.tls_expiry(status, endpoint.host, endpoint.port, postgres=False)
        return status

    def service(self, roles: ServiceRoles, catalog: Catalog, max_age_s: int) -> ServiceStatus:
        status = ServiceStatus(name=roles.service, instance=roles.instance, database=roles.database, backup_max_age_s=max_age_s)
        self.report.services[roles.service] = status
        self.backups(status, roles, catalog)
        if not self.report.instances[roles.instance].reachable:
            return status  # the instance's own red line says why
        context = self.context
        try:
            status.database_exists = context.postgres.database_exists(roles.instance, roles.database)
            if not status.database_exists:
                self.find("red", roles.service, f"database {roles.subject} does not exist; run `nndb hooks run {context.stack}`")
                status.checked = True
                return status
            exists, applied = read_ledger(context.pg(roles.instance, roles.database), roles.service, self.sql_dir)
        except (NndbError, psycopg.Error) as exc:
            self.find("red", roles.service, f"ledger not readable: {one_line(exc) if isinstance(exc, psycopg.Error) else exc}")
            return status
        plan = make_plan(roles, discover(self.sql_dir, roles.service), applied, ledger_exists=exists)
        status.checked = True
        status.applied = len(applied)
        status.pending = [m.label for m in plan.pending]
        status.migration_problems = plan.problems()
        if status.pending:
            self.find(
                "red",
                roles.service,
                f"{len(status.pending)} pending migration(s) ({', '.join(status.pending)}); run `nndb migrate apply {context.stack}`",
            )
        for problem in status.migration_problems:
            self.find("red", roles.service, f"migration: {problem}")
        return status

    def backups(self, status: ServiceStatus, roles: ServiceRoles, catalog: Catalog) -> None:
        newest = catalog.latest(roles.subject)
        verified = catalog.latest(roles.subject, verified_only=True)
        if newest is not None:
            status.newest_backup_at = datetime.fromisoformat(newest.taken_at)
            status.newest_backup_verified = newest.verified
        if verified is None:
            self.find(
                "red",
                roles.service,
                f"no verified backup of {roles.subject} in {catalog.directory}; run `nndb backup run {self.context.stack}`",
            )
            return
        status.newest_verified_at = datetime.fromisoformat(verified.taken_at)
        age = (self.now - status.newest_verified_at).total_seconds()
        if age > status.backup_max_age_s:
            self.find(
                "red",
                roles.service,
                f"backup overdue: newest verified backup of {roles.subject} is {_age(age)} old "
                f"(schedule {self.context.config.backup.schedule!r} allows {_age(status.backup_max_age_s)})",
            )
        if newest is not None and newest.verified is False:
            self.find("warn", roles.service, f"the newest backup of {roles.subject} failed verification: {newest.verify_detail}")


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def check_stack(context: HookContext, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> StatusReport:
    """Everything ``nndb status`` reports, read-only. ``context`` must not take the run lock (``run_lock=False``)."""
    if context.run_lock:
        raise ValueError("status reads only: build its context with run_lock=False")
    started = time.perf_counter()
    checked_at = now()
    report = StatusReport(stack=context.stack, checked_at=checked_at)
    checker = _Checker(context, report, checked_at)
    max_age_s = backup_max_age_s(context.config.backup.schedule, now=checked_at)
    catalog = Catalog.load(context.backup_dir, context.stack)
    for name in ("postgres", "timescale"):  # every stack deploys both, whether or not a service lives there
        checker.postgres(name)
    checker.redis()
    for roles in context.services:
        checker.service(roles, catalog, max_age_s)
    report.seconds = time.perf_counter() - started
    return report


# --- nndb's TLS metrics file (monitoring/README.md, "nndb-<stack>-tls.prom") -------------------------

TLS_METRIC = "nndb_tls_certificate_expiry_timestamp_seconds"


def tls_textfile_lines(report: StatusReport) -> Iterator[str]:
    yield f"# HELP {TLS_METRIC} Unix time when the first certificate of the instance's chain expires."
    yield f"# TYPE {TLS_METRIC} gauge"
    for name, instance in sorted(report.instances.items()):
        if instance.tls is not None:
            yield f'{TLS_METRIC}{{stack="{report.stack}",instance="{name}"}} {int(instance.tls.not_after.timestamp())}'


def write_tls_textfile(report: StatusReport, directory: Path) -> Path | None:
    """``<directory>/nndb-<stack>-tls.prom``, replaced atomically; ``None`` when no instance presented a certificate."""
    lines = list(tls_textfile_lines(report))
    if len(lines) == 2:
        return None
    target = directory / f"nndb-{report.stack}-tls.prom"
    temp = directory / f".{target.name}.tmp"
    try:
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temp.chmod(0o644)
        temp.replace(target)
    except OSError as exc:
        raise ConfigError(
            f"{directory}: cannot write {target.name} ({exc.strerror}); point --textfile-dir at node_exporter's directory"
        ) from None
    return target
