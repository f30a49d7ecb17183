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


def stop_after(datadir: Path, delay_s: float, stopped: list[int]) -> threading.Thread:
    def stop() -> None:
        time.sleep(delay_s)
        for pid in server_pids(datadir):
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
    thread = stop_after(db_stack.postgres.datadir, 0.7, stopped)  # while V004 sleeps in the server
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
    thread = stop_after(db_stack.postgres.datadir, 2.5, stopped)  # after `nndb` started and connected
    try:
        result = nndb(db_stack, "migrate", "apply", "local-db", "--statement-timeout", "3", timeout=60)
    finally:
        thread.join()
        resume(stopped)
    assert result.returncode == ConnectionFailed.exit_code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"postgres at 127.0.0.1:{db_stack.postgres.port}: no answer within 8s" in lines[0], result.stderr
    assert ("migrate: " in result.stdout and "committed before the failure" in result.stdout) or "failed before any change" in result.stdout
