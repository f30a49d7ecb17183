"""`nndb drift <stack>`: the live databases against the ledger and the files (thin over ``nexanest_db.operations.drift``)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S, build_context, configure_logging
from nexanest_db.commands.hooks import AsJson, ConnectTimeout, LockTimeout, ProjectDir, Stack, StatementTimeout
from nexanest_db.commands.output import set_result
from nexanest_db.errors import DriftFound, NndbError
from nexanest_db.operations.drift import DriftReport, check_stack

INTERRUPTED_EXIT_CODE = 130  # nexanest_db.cli prints "aborted" and exits with it

DEFAULT_DRIFT_CONNECT_TIMEOUT_S = 5.0
Service = Annotated[
    list[str] | None, typer.Option("--service", help="check only this service (repeatable): its database, roles and Redis user")
]


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the check like Ctrl-C: through the ``finally`` that drops the scratch database."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_failure(as_json: bool, stack: str, started: datetime, service: list[str] | None, line: str, exit_code: int) -> None:
    """With ``--json``, a check that could not finish still prints its document: the error in it, no findings."""
    if as_json:
        failed = DriftReport(stack=stack, checked_at=started, services=list(service or ()))
        set_result(failed.as_dict(error=line, exit_code=exit_code))


def render(report: DriftReport) -> str:
    scope = ", ".join(report.services)
    lines = [finding.line for finding in report.findings]
    lines += [f"note: {note}" for note in report.notes]
    if report.findings:
        count = len(report.findings)
        lines.append(f"{report.stack}: {count} drift finding{'s' if count != 1 else ''} ({scope}; checked in {report.seconds:.2f} s)")
    else:
        lines.append(f"{report.stack}: no drift ({scope}; checked in {report.seconds:.2f} s)")
    return "\n".join(lines)


def drift(
    stack: Stack,
    project_dir: ProjectDir = None,
    service: Service = None,
    connect_timeout: ConnectTimeout = DEFAULT_DRIFT_CONNECT_TIMEOUT_S,
    lock_timeout: LockTimeout = DEFAULT_LOCK_TIMEOUT_S,
    statement_timeout: StatementTimeout = DEFAULT_STATEMENT_TIMEOUT_S,
    as_json: AsJson = False,
) -> None:
    """Tables, columns, indexes, constraints, functions, grants, roles, default privileges, Redis ACLs and applied files against the repository.

    Examples: `nndb drift local-db`, `nndb drift prod-db --service auth --json`.

    One line per finding on stdout; exits 12 when anything drifted, 0 for "no drift". Builds the
    reference in a scratch database on the same server (always dropped) under the hooks' run lock.
    """
    logger = configure_logging(False)
    started = datetime.now(UTC)
    try:
        resolved = resolve(stack, project_dir)
        context = build_context(
            resolved,
            logger=logger,
            connect_timeout_s=connect_timeout,
            lock_timeout_s=lock_timeout,
            statement_timeout_s=statement_timeout,
            run_lock=True,
        )
        try:
            with _terminate_as_interrupt():
                report = check_stack(context, only=tuple(service or ()))
        finally:
            context.close()
    except NndbError as exc:
        _print_failure(as_json, stack, started, service, str(exc), exc.exit_code)
        raise
    except KeyboardInterrupt:
        # typer would turn it into a silent exit status the CLI does not see: make it the CLI's "aborted", exit 130.
        _print_failure(as_json, stack, started, service, "aborted", INTERRUPTED_EXIT_CODE)
        raise typer.Abort() from None
    if as_json:
        set_result(report.as_dict())
    else:
        print(render(report))
    if report.findings:
        sys.stdout.flush()
        count = len(report.findings)
        raise DriftFound(
            f"{stack}: {count} drift finding{'s' if count != 1 else ''} (listed above); docs/drift.md says what to do for each kind"
        )
