"""Progress of long steps, with elapsed times, for every command that waits on a server or a tool.

Operations never print: they take a ``report`` callback (``Steps.note``), and commands wrap each
step that can take more than a second in ``Steps.step``. On a terminal a live spinner shows the
step and its elapsed time (rich, transient); anywhere else (a pipe, a CI log, Terraform's
provisioner) each step is plain lines stamped with ISO 8601 UTC time:

    2026-12-02T20:31:07Z backup postgres/auth: dump + restore ...
    2026-12-02T20:31:09Z backup postgres/auth: done in 1.8s

``summary`` prints the command's last line with the total time. ``--quiet`` and ``--json`` show
none of it (the console is quiet or held back).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from nexanest_db.commands.output import console as default_console


def utc_stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Steps:
    """One command's steps. ``live=None``: live when the console is a terminal."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.console = console or default_console
        self.live = self.console.is_terminal if live is None else live
        self._clock = clock
        self._now = now
        self.started = clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def note(self, line: str) -> None:
        """A line an operation reports (the ``report`` callback): stamped when not on a terminal."""
        self.console.print(line if self.live else f"{utc_stamp(self._now())} {line}", markup=False)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """``label`` while it runs, then ``label: done in N.Ns`` (or ``failed after``)."""
        begun = self._clock()
        ok = False
        try:
            if self.live:
                with Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console, transient=True
                ) as bar:
                    bar.add_task(label, total=None)
                    yield
            else:
                self.note(f"{label} ...")
                yield
            ok = True
        finally:
            took = self._clock() - begun
            self.note(f"{label}: {'done in' if ok else 'failed after'} {took:.1f}s")

    def summary(self, line: str) -> None:
        """The command's last line, with the total time."""
        self.console.print(f"{line} (total {self.elapsed():.1f}s)", markup=False)
