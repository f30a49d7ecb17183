"""A server that stops answering after the run connected to it (SIGSTOP) ends the run with one line
naming the host, within the statement deadline — it never hangs a deploy."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from nexanest_db.errors import ConnectionFailed, RunFailed
from tests.fixtures.servers import DbStack
from tests.support.hooks import MIGRATE_HOOKS, nndb, run_in_process, write_migration

pytestmark = pytest.mark.integration


def server_pids(datadir: Path) -> list[int]:
    """The postmaster (postmaster.pid) and every backend/auxiliary process it forked."""
    postmaster = int((datadir / "postmaster.pid").read_text().splitlines()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                pids.append(int(entry.name))
    return pids


def stop_when_running(db_stack: DbStack, statement: str, stopped: list[int], timeout_s: float = 60) -> threading.Thread:
    """SIGSTOP the postgres server as soon as ``statement`` is executing in it (not after a fixed delay: under load,
    `nndb` can take seconds to start and connect, and a server stopped before that is a different failure)."""

    def stop() -> None:
        deadline = time.monotonic() + timeout_s
        with db_stack.postgres.connect() as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
                    (f"%{statement}%",),
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.02)
        for pid in server_pids(db_stack.postgres.datadir):
            # A backend may exit between the listing and the signal (this poller's own, just closed): skip it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

    thread = threading.Thread(target=stop)
    thread.start()
    return thread


def resume(stopped: list[int]) -> None:
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_a_stopped_server_mid_migration_is_one_line_naming_the_host(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    write_migration(db_stack, "auth", "V004__slow.sql", "SELECT pg_sleep(1.5);\nCREATE TABLE after_sleep (id int);\n")
    stopped: list[int] = []
    thread = stop_when_running(db_stack, "pg_sleep(1.5)", stopped)  # while V004 sleeps in the server
    started = time.monotonic()
    try:
        with pytest.raises(RunFailed) as excinfo:
            run_in_process(db_stack, hooks=MIGRATE_HOOKS, statement_timeout_s=2)
        elapsed = time.monotonic() - started
    finally:
        thread.join()
        resume(stopped)
    message = str(excinfo.value)
    assert excinfo.value.exit_code == ConnectionFailed.exit_code
    assert f"postgres at 127.0.0.1:{db_stack.postgres.port}: no answer within 7s after connecting" in message, message
    assert "fix the file" not in message and "\n" not in message
    assert elapsed < 20
    # Resumed, the server rolled the migration back: the next run applies it.
    summaries = [c.summary.split(" (")[0] for _, c in run_in_process(db_stack, hooks=MIGRATE_HOOKS).changes]
    assert "applied V004 slow" in summaries


def test_nndb_hooks_run_against_a_stopped_server_exits_4_naming_the_host(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    write_migration(db_stack, "auth", "V004__slow.sql", "SELECT pg_sleep(3);\n")
    stopped: list[int] = []
    thread = stop_when_running(db_stack, "pg_sleep(3)", stopped)  # once `nndb` connected and runs V004
    try:
        result = nndb(db_stack, "migrate", "apply", "local-db", "--statement-timeout", "3", timeout=60)
    finally:
        thread.join()
        resume(stopped)
    assert result.returncode == ConnectionFailed.exit_code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"postgres at 127.0.0.1:{db_stack.postgres.port}: no answer within 8s" in lines[0], result.stderr
    assert ("migrate: " in result.stdout and "committed before the failure" in result.stdout) or "failed before any change" in result.stdout
