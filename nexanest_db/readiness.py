"""Wait until every database of a stack answers on its published port, or say exactly why not.

A deploy creates the containers with the provider's ``wait = false`` and then runs
``nndb wait-ready <stack>`` (the first step of the post-apply resource), so ``cdktf deploy`` still
returns only once the databases answer, without waiting for the first Docker health check (which
comes only after the ADR's 30 s interval; the health check itself stays, for steady state).

"Answers" is what ``pg_isready`` and ``redis-cli ping`` mean: a PostgreSQL ping (libpq's
``PQping``: the server accepts connections; no credentials needed) and a Redis ``PING`` that gets
``+PONG`` or ``-NOAUTH`` (a server that is up but wants a password; ``-LOADING`` is not ready). Over
TLS the Redis probe completes a handshake first; it sends nothing but ``PING``.

When an instance does not answer in time — or its container has stopped, or restarts over and
over, which no wait will mend — the error is one line naming the container, its state as the
stack's Docker engine reports it (local socket or ``ssh://``, see ``nexanest_db.engine``) and its
last log lines, where the cause usually is (e.g. ``FATAL: could not access file "timescaledb"``).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from psycopg import pq

from nexanest_db.config import EnvironmentConfig, HostPort
from nexanest_db.engine import ContainerState
from nexanest_db.errors import ConnectionFailed

POLL_INTERVAL_S = 0.2
INSPECT_INTERVAL_S = 3.0  # how often the engine is asked about instances that do not answer yet
PROBE_TIMEOUT_S = 2.0
LOG_LINES = 4


class EngineView(Protocol):
    """What the wait needs from the stack's engine (``nexanest_db.engine.Engine``)."""

    @property
    def description(self) -> str: ...  # read-only: Engine is a frozen dataclass

    def state(self, name: str) -> ContainerState | None: ...

    def log_tail(self, name: str, lines: int = 5) -> list[str]: ...


@dataclass(frozen=True, kw_only=True)
class Target:
    instance: str  # postgres, timescale, redis
    container: str
    endpoint: HostPort
    kind: str  # "postgres" or "redis"
    tls: bool = False

    @property
    def where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"


def targets_for(config: EnvironmentConfig, endpoint_for: Callable[[str], HostPort]) -> list[Target]:
    return [
        Target(
            instance=instance,
            container=f"{config.name_prefix}-{instance}",
            endpoint=endpoint_for(instance),
            kind="redis" if instance == "redis" else "postgres",
            tls=config.tls.enabled,
        )
        for instance in ("postgres", "timescale", "redis")
    ]


def postgres_answers(endpoint: HostPort) -> bool:
    """``pg_isready``: the server accepts connections (an authentication failure still means it answers)."""
    conninfo = f"host={endpoint.host} port={endpoint.port} dbname=postgres connect_timeout={round(PROBE_TIMEOUT_S)}"
    return pq.PGconn.ping(conninfo.encode()) == pq.Ping.OK


def redis_answers(endpoint: HostPort, *, tls: bool) -> bool:
    """``redis-cli ping``: ``+PONG``, or ``-NOAUTH`` from a server that is up but wants a password."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=PROBE_TIMEOUT_S) as raw:
            if tls:
                context = ssl.create_default_context()
                # Liveness only: nothing but PING is sent; the hooks verify the certificate right after.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(raw, server_hostname=endpoint.host) as wrapped:
                    return _ping(wrapped)
            return _ping(raw)
    except (OSError, ssl.SSLError):
        return False


def _ping(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    reply = sock.recv(64)
    return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")


def answers(target: Target) -> bool:
    if target.kind == "redis":
        return redis_answers(target.endpoint, tls=target.tls)
    return postgres_answers(target.endpoint)


@dataclass(kw_only=True)
class Readiness:
    """How long each instance took to answer (seconds since the wait began)."""

    seconds: dict[str, float]


def wait_ready(
    targets: Sequence[Target],
    *,
    timeout_s: float,
    engine: EngineView,
    probe: Callable[[Target], bool] = answers,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Readiness:
    """Poll every target until it answers; raise ``ConnectionFailed`` (one line) on the first that cannot."""
    started = clock()
    ready: dict[str, float] = {}
    next_inspect = started + INSPECT_INTERVAL_S
    while True:
        for target in targets:
            if target.instance not in ready and probe(target):
                ready[target.instance] = clock() - started
        pending = [t for t in targets if t.instance not in ready]
        if not pending:
            return Readiness(seconds=ready)
        now = clock()
        if now - started >= timeout_s:
            raise not_ready(pending[0], engine, waited_s=now - started, state=engine.state(pending[0].container))
        if now >= next_inspect:
            next_inspect = now + INSPECT_INTERVAL_S
            for target in pending:
                state = engine.state(target.container)
                # A stopped or crash-looping container never answers: say so now, not after the timeout.
                if state is not None and state.crashed and not probe(target):
                    raise not_ready(target, engine, waited_s=clock() - started, state=state)
        sleep(POLL_INTERVAL_S)


def not_ready(target: Target, engine: EngineView, *, waited_s: float, state: ContainerState | None) -> ConnectionFailed:
    described = state.describe() if state is not None else f"state unknown (could not ask the engine at {engine.description})"
    lines = engine.log_tail(target.container, LOG_LINES) if state is None or state.status != "missing" else []
    log = " | ".join(_clip(line) for line in lines) if lines else "(no log output)"
    return ConnectionFailed(
        f"{target.instance}: container {target.container} did not answer on {target.where} after {waited_s:.0f} s; "
        f"it is {described}; last log lines: {log}; fix the cause, then run the deploy again"
    )


def _clip(line: str, limit: int = 240) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
