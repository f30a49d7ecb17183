"""PostgreSQL sessions for one run: superuser connections, clear connection errors, the run lock.

Every connection is bounded by ``connect_timeout_s`` and fails with one ``ConnectionFailed`` line
naming the instance, the address and what to check (never the password). Connections are cached for
the run, so five phases cost one login per database.

The run lock: the first connection a run opens to an instance takes a session-level advisory lock
in its maintenance database, held until the run ends. A second run waits for it (bounded by
``lock_timeout_s``) and then fails naming the holder, so two runs never interleave their steps —
two deploys at once, or a deploy racing ``nndb migrate apply``. Read-only commands (``migrate
status``, backups) open sessions with ``run_lock=False``.

Superuser rotation: the official image applies ``POSTGRES_PASSWORD_FILE`` only when it initializes
an empty data directory, so after a rotated superuser secret the server still has the old password.
When the first login of a run (the maintenance session, before anything else uses the instance) is
refused with an authentication failure, and only then, a run that takes the run lock logs in with
the previous credential (``CredentialSource.previous``), takes the run lock on that session, sets
the superuser's password to the current secret as a client-computed SCRAM verifier (never the
plaintext), and reconnects with the current secret. ``take_rotations`` hands the rotation to the
run report once. Read-only sessions never rotate: they fail as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import RV, PQGen

from nexanest_db import scram
from nexanest_db.client_tls import ClientTls
from nexanest_db.config import EnvironmentConfig, HostPort
from nexanest_db.errors import TLS_REQUIRED_HINT, ConnectionFailed, RunLockTimeout, tls_not_signed, tls_wrong_name
from nexanest_db.queries import load_query
from nexanest_db.roles import SUPERUSER_SECRETS

MAINTENANCE_DB = "postgres"
APPLICATION_NAME = "nndb"
# pg_advisory_lock(classid, objid): 'nndb' as an int4, then 1 = "hooks run". Documented in docs/hooks.md.
RUN_LOCK_KEY = (0x6E6E6462, 1)
RUN_LOCK = {"classid": RUN_LOCK_KEY[0], "objid": RUN_LOCK_KEY[1]}  # the parameters of sql/queries/run-lock-*.sql
REQUIRED_MAJOR = 15


# Every statement gets an answer within this long, or the run stops naming the host (a server that
# accepted the connection and then stopped answering — SIGSTOP, a frozen VM — would otherwise hang a
# deploy forever). The server cancels a statement itself a little earlier (statement_timeout), so a
# merely slow statement fails with the server's own message; the client deadline is for a silent server.
DEFAULT_STATEMENT_TIMEOUT_S = 300.0
CLIENT_GRACE_S = 5.0


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose every wait for the server is bounded (``deadline_s``)."""

    deadline_s: float | None = None
    where: str = "the server"

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        try:
            return super().wait(gen, interval, timeout if timeout is not None else self.deadline_s)
        except psycopg.errors._WaitTimeout:
            self.pgconn.finish()  # the reply may still come: this session is unusable now
            raise ConnectionFailed(
                f"{self.where}: no answer within {self.deadline_s:g}s after connecting (the server stopped answering); "
                "check that it is up and not overloaded, then run again (or raise --statement-timeout)"
            ) from None


def session_options(statement_timeout_s: float) -> dict[str, Any]:
    """libpq options every nndb session gets: TCP keepalives (a dead peer is noticed) and the server-side timeout."""
    return {
        "keepalives": 1,
        "keepalives_idle": 15,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30000,
        "options": f"-c statement_timeout={round(statement_timeout_s * 1000)}",
    }


def open_session(
    *,
    endpoint: HostPort,
    database: str,
    user: str,
    password: str,
    connect_timeout_s: float,
    application_name: str = APPLICATION_NAME,
    tls_kwargs: Mapping[str, str] | None = None,
    statement_timeout_s: float | None = None,
    where: str | None = None,
) -> psycopg.Connection:
    """The one way nndb opens a PostgreSQL session (autocommit): the run's sessions, scratch restores, failover nodes, PITR.

    With ``statement_timeout_s`` the session also gets TCP keepalives, the server-side statement
    timeout and a client deadline (``DeadlineConnection``, naming ``where`` when it expires); without it, libpq's defaults after connecting.
    Raises ``psycopg.OperationalError`` as libpq reports it: callers word it for their command.
    """
    params: dict[str, Any] = {
        "host": endpoint.host,
        "port": endpoint.port,
        "dbname": database,
        "user": user,
        "password": password,
        "connect_timeout": max(1, round(connect_timeout_s)),
        "application_name": application_name,
        **(tls_kwargs or {}),
    }
    if statement_timeout_s is None:
        return psycopg.connect(autocommit=True, **params)
    conn = DeadlineConnection.connect(autocommit=True, **params, **session_options(statement_timeout_s))
    conn.deadline_s = statement_timeout_s + CLIENT_GRACE_S
    conn.where = where or f"{endpoint.host}:{endpoint.port}"
    return conn


def is_auth_failure(exc: psycopg.OperationalError) -> bool:
    """The server refused the password (SQLSTATE 28P01; libpq reports it only as text on connect)."""
    return "password authentication failed" in str(exc)


def describe_connect_error(
    exc: psycopg.OperationalError,
    *,
    instance: str,
    endpoint: HostPort,
    user: str,
    secret_hint: str,
    timeout_s: float,
    tls_hint: str | None = None,
) -> str:
    text = str(exc).strip()
    where = f"{instance} at {endpoint.host}:{endpoint.port}"
    if tls_hint is not None and "certificate verify failed" in text:
        return tls_not_signed(where, tls_hint)
    if tls_hint is not None and "does not match host name" in text:
        return tls_wrong_name(where, endpoint.host)
    if "no pg_hba.conf entry" in text or "pg_hba.conf rejects connection" in text:
        tail = "" if tls_hint is not None else f"; {TLS_REQUIRED_HINT}"
        return f"{where}: refused by the server's pg_hba.conf for user {user}{tail}"
    if "password authentication failed" in text:
        return f"{where}: password authentication failed for user {user}; check {secret_hint}"
    if "timeout expired" in text or "timed out" in text:
        return f"{where}: no answer within {timeout_s:g}s; check {instance.upper()}_HOST/_PORT (or DB_HOST) and that the server is up"
    if "Connection refused" in text:
        return f"{where}: connection refused; is the server up and published on that port? (check {instance.upper()}_HOST/_PORT or DB_HOST)"
    if "does not exist" in text and "database" in text:
        return f"{where}: {text.splitlines()[-1].split('FATAL:')[-1].strip()}; run `nndb hooks run` to create it"
    last = text.splitlines()[-1] if text else type(exc).__name__
    return f"{where}: cannot connect: {last.split('FATAL:')[-1].strip()}"


class PostgresSessions:
    """Cached superuser connections per (instance, database), autocommit."""

    def __init__(
        self,
        *,
        config: EnvironmentConfig,
        sql_dir: Path,
        endpoints_for: Callable[[str], HostPort],
        password_for: Callable[[str], str],
        secret_hint: Callable[[str], str],
        logger: logging.Logger,
        previous_for: Callable[[str], str | None] | None = None,
        previous_hint: Callable[[str], str] | None = None,
        connect_timeout_s: float = 10.0,
        lock_timeout_s: float = 60.0,
        run_lock: bool = True,
        tls: Callable[[], ClientTls | None] | None = None,
        tls_hint: str | None = None,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    ) -> None:
        self._config = config
        self._sql_dir = sql_dir
        self.statement_timeout_s = statement_timeout_s
        self._tls = tls
        self._tls_hint = tls_hint
        self._endpoint = endpoints_for
        self._password = password_for
        self._secret_hint = secret_hint
        self._logger = logger
        self.connect_timeout_s = connect_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self._run_lock = run_lock
        self._previous = previous_for
        self._previous_hint = previous_hint
        self._connections: dict[tuple[str, str], psycopg.Connection] = {}
        # After a rotation the run lock stays with the session that logged in with the previous credential.
        self._lock_sessions: dict[str, psycopg.Connection] = {}
        self._rotations: list[tuple[str, str]] = []

    def superuser(self, instance: str) -> str:
        return self._config.instance(instance).superuser  # type: ignore[attr-defined]

    def endpoint(self, instance: str) -> HostPort:
        return self._endpoint(instance)

    def connect(self, instance: str, database: str = MAINTENANCE_DB) -> psycopg.Connection:
        """A superuser connection to ``database`` on ``instance`` (the run lock is taken first)."""
        key = (instance, database)
        conn = self._connections.get(key)
        if conn is not None and not conn.closed:
            return conn
        if database != MAINTENANCE_DB:
            self.connect(instance)  # the maintenance session owns the run lock (and rotates): before anything else
            conn = self._open(instance, database)
        else:
            conn = self._open_maintenance(instance)
        self._connections[key] = conn
        if database == MAINTENANCE_DB:
            self._check_version(instance, conn)
            if self._run_lock and instance not in self._lock_sessions:
                self._take_run_lock(instance, conn)
        return conn

    def close_database(self, instance: str, database: str) -> None:
        """Close the cached session on ``database`` (never the maintenance one): a rename or drop of it needs none open."""
        conn = self._connections.pop((instance, database), None) if database != MAINTENANCE_DB else None
        if conn is not None and not conn.closed:
            conn.close()

    def take_rotations(self) -> list[tuple[str, str]]:
        """(instance, superuser) rotated since the last call; each rotation is handed out once."""
        rotations, self._rotations = self._rotations, []
        return rotations

    def database_exists(self, instance: str, database: str) -> bool:
        row = self.connect(instance).execute(load_query(self._sql_dir, "database-exists"), {"database": database}).fetchone()
        return bool(row and row[0])

    def server_version(self, instance: str) -> int:
        return self.connect(instance).info.server_version

    def _login(self, instance: str, database: str, password: str, user: str | None = None) -> psycopg.Connection:
        endpoint = self._endpoint(instance)
        return open_session(
            endpoint=endpoint,
            database=database,
            user=user or self.superuser(instance),
            password=password,
            connect_timeout_s=self.connect_timeout_s,
            tls_kwargs=self.tls_kwargs(),
            statement_timeout_s=self.statement_timeout_s,
            where=f"{instance} at {endpoint.host}:{endpoint.port}",
        )

    def login_as(self, instance: str, database: str, *, user: str, password: str) -> psycopg.Connection:
        """A new (uncached) autocommit session of ``user`` — the migrator of a service; no run lock, no rotation."""
        try:
            return self._login(instance, database, password, user=user)
        except psycopg.OperationalError as exc:
            endpoint = self._endpoint(instance)
            raise ConnectionFailed(
                describe_connect_error(
                    exc,
                    instance=instance,
                    endpoint=endpoint,
                    user=user,
                    secret_hint="the one-run password nndb set for it (a pg_hba.conf must admit it like the service app role)",  # noqa: S106 -- a hint, not a password
                    timeout_s=self.connect_timeout_s,
                    tls_hint=self._tls_hint,
                )
            ) from None

    def tls_kwargs(self) -> dict[str, str]:
        """``sslmode``/``sslrootcert`` when the environment enables TLS, else nothing (libpq's defaults)."""
        tls = self._tls() if self._tls is not None else None
        return tls.connect_kwargs() if tls is not None else {}

    def _connect_failed(self, exc: psycopg.OperationalError, instance: str) -> ConnectionFailed:
        return ConnectionFailed(
            describe_connect_error(
                exc,
                instance=instance,
                endpoint=self._endpoint(instance),
                user=self.superuser(instance),
                secret_hint=self._secret_hint(SUPERUSER_SECRETS[instance]),
                timeout_s=self.connect_timeout_s,
                tls_hint=self._tls_hint,
            )
        )

    def _open(self, instance: str, database: str) -> psycopg.Connection:
        try:
            return self._login(instance, database, self._password(SUPERUSER_SECRETS[instance]))
        except psycopg.OperationalError as exc:
            raise self._connect_failed(exc, instance) from None

    def _open_maintenance(self, instance: str) -> psycopg.Connection:
        """The first login to ``instance``: with the current secret, or (refused password only) through a rotation."""
        try:
            return self._login(instance, MAINTENANCE_DB, self._password(SUPERUSER_SECRETS[instance]))
        except psycopg.OperationalError as exc:
            if not (self._run_lock and self._previous is not None and is_auth_failure(exc)):
                raise self._connect_failed(exc, instance) from None
        return self._rotate_superuser(instance)

    def _rotate_superuser(self, instance: str) -> psycopg.Connection:
        """The server refused the current secret: log in with the previous one, set the current one, reconnect."""
        assert self._previous is not None
        secret = SUPERUSER_SECRETS[instance]
        user = self.superuser(instance)
        current = self._password(secret)
        previous = self._previous(secret)
        if previous is None:
            raise ConnectionFailed(self._rotation_impossible(instance, "there is no previous credential to try"))
        if previous == current:
            raise ConnectionFailed(self._rotation_impossible(instance, "the previous credential is the current one"))
        try:
            old = self._login(instance, MAINTENANCE_DB, previous)
        except psycopg.OperationalError as exc:
            if not is_auth_failure(exc):
                raise self._connect_failed(exc, instance) from None
            try:  # a concurrent run may have rotated it in between
                return self._login(instance, MAINTENANCE_DB, current)
            except psycopg.OperationalError:
                raise ConnectionFailed(self._rotation_impossible(instance, "the previous credential is refused too")) from None
        try:
            self._check_version(instance, old)
            self._take_run_lock(instance, old)
            row = old.execute(load_query(self._sql_dir, "role-password"), {"role": user}).fetchone()
            if not scram.verifies(current, row[0] if row else None):  # else a concurrent run rotated it while we waited
                # A verifier computed here, never the plaintext: the statement may reach the server log.
                verifier = scram.build(current)
                old.execute(
                    sql.SQL(load_query(self._sql_dir, "role-set-password")).format(
                        role=sql.Identifier(user), verifier=sql.Literal(verifier)
                    )
                )
                self._rotations.append((instance, user))
                self._logger.debug("%s: logged in as %s with the previous credential, set the current one", instance, user)
            conn = self._open(instance, MAINTENANCE_DB)  # proves the current secret works
        except BaseException:
            old.close()
            raise
        self._lock_sessions[instance] = old
        return conn

    def _rotation_impossible(self, instance: str, state: str) -> str:
        endpoint = self._endpoint(instance)
        secret = SUPERUSER_SECRETS[instance]
        user = self.superuser(instance)
        hint = self._previous_hint(secret) if self._previous_hint is not None else "supply the previous credential"
        container = f"{self._config.name_prefix}-{instance}"
        return (
            f"{instance} at {endpoint.host}:{endpoint.port}: password authentication failed for user {user}; "
            f"check {self._secret_hint(secret)}; {state}: {hint}; "
            f"or reset it over the container's local socket: docker exec -it {container} psql -U {user} -d postgres -c '\\password {user}'"
        )

    def _check_version(self, instance: str, conn: psycopg.Connection) -> None:
        major = conn.info.server_version // 10000
        if major != REQUIRED_MAJOR:
            endpoint = self._endpoint(instance)
            raise ConnectionFailed(
                f"{instance} at {endpoint.host}:{endpoint.port}: PostgreSQL {major} answered, this tier needs {REQUIRED_MAJOR}; check the endpoint"
            )

    def _take_run_lock(self, instance: str, conn: psycopg.Connection) -> None:
        deadline = time.monotonic() + self.lock_timeout_s
        announced = False
        while True:
            row = conn.execute(load_query(self._sql_dir, "run-lock-take"), RUN_LOCK).fetchone()
            if row and row[0]:
                return
            holder = self._lock_holder(conn)
            if time.monotonic() >= deadline:
                endpoint = self._endpoint(instance)
                raise RunLockTimeout(
                    f"{instance} at {endpoint.host}:{endpoint.port}: another nndb run ({holder}) holds the run lock; "
                    f"gave up after {self.lock_timeout_s:g}s — let it finish, then run again (or raise --lock-timeout)"
                )
            if not announced:
                self._logger.info(
                    "%s: waiting up to %gs for the run lock held by another nndb run (%s)", instance, self.lock_timeout_s, holder
                )
                announced = True
            time.sleep(0.1)

    def _lock_holder(self, conn: psycopg.Connection) -> str:
        row = conn.execute(load_query(self._sql_dir, "run-lock-holder"), RUN_LOCK).fetchone()
        if not row:
            return "holder unknown"
        pid, addr, since = row
        return f"backend pid {pid} from {addr or 'local socket'}, connected {since:%Y-%m-%d %H:%M:%S}"

    def close(self) -> None:
        """Close every connection; closing the maintenance sessions releases the run locks."""
        for conn in [*self._connections.values(), *self._lock_sessions.values()]:
            if not conn.closed:
                conn.close()
        self._connections.clear()
        self._lock_sessions.clear()
