"""What the test servers share (tests/fixtures/postgres_server.py, redis_server.py, servers.py) and what tests and
benchmarks use with them: the loopback host, free ports, the stack's passwords, setup errors that fail (never skip)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.support.project import REPO_ROOT

HOST = "127.0.0.1"

# `nndb` subprocesses import this checkout's package (not whatever an editable install points at).
CHILD_PYTHONPATH = {"PYTHONPATH": str(REPO_ROOT)}

# Passwords of the test stack: one per credential in nexanest_db.secrets.SECRET_SPECS (env var names).
STACK_PASSWORDS: dict[str, str] = {
    "POSTGRES_PASSWORD": "pg-super-Secret-1",
    "TIMESCALE_PASSWORD": "ts-super-Secret-2",
    "REDIS_PASSWORD": "redis-default-Secret-3",
    "AUTH_DB_PASSWORD": "auth-app-Secret-4",
    "PORTFOLIO_DB_PASSWORD": "portfolio-app-Secret-5",
    "ANALYTICS_DB_PASSWORD": "analytics-app-Secret-6",
    "ANALYTICS_READONLY_PASSWORD": "analytics-ro-Secret-7",
    "AUTH_REDIS_PASSWORD": "auth-redis-Secret-8",
    "PORTFOLIO_REDIS_PASSWORD": "portfolio-redis-Secret-9",
    "ANALYTICS_REDIS_PASSWORD": "analytics-redis-Secret-10",
    "BACKUP_ENCRYPTION_KEY": "backup-key-Secret-11-at-least-16-chars",
    "POSTGRES_MONITOR_PASSWORD": "postgres-monitor-Secret-12",
    "TIMESCALE_MONITOR_PASSWORD": "timescale-monitor-Secret-13",
    "REDIS_MONITOR_PASSWORD": "redis-monitor-Secret-14",
    "POSTGRES_REPLICATION_PASSWORD": "pg-replication-Secret-15",
    "TIMESCALE_REPLICATION_PASSWORD": "ts-replication-Secret-16",
}


class ServerSetupError(RuntimeError):
    """A server could not be started; the message says which package or log to look at."""


def require_binary(path: Path | str | None, package: str) -> str:
    found = shutil.which(str(path)) if path else None
    if not found:
        raise ServerSetupError(f"{path}: not found; install Debian's {package} (apt-get install -y {package})")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerSetupError("OS user 'postgres' missing; install Debian's postgresql-15 (it creates the user)") from None
    return ["runuser", "-u", "postgres", "--"]


def owned_tempdir(prefix: str) -> Path:
    """A temp directory the PostgreSQL OS user owns (pytest's tmp_path is root-only under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


def fail_setup(exc: ServerSetupError) -> None:
    pytest.fail(str(exc), pytrace=False)
