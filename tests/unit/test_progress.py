"""Progress lines: stamped with ISO 8601 UTC time off a terminal, elapsed time per step, a total at the end."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rich.console import Console

from nexanest_db.commands.progress import Steps

STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"


def ticking(*values: float) -> Iterator[float]:
    yield from values


def make(live: bool, *clock: float) -> tuple[Steps, io.StringIO]:
    out = io.StringIO()
    ticks = ticking(*clock)
    steps = Steps(
        Console(file=out, highlight=False, soft_wrap=True),
        live=live,
        clock=lambda: next(ticks),
        now=lambda: datetime(2026, 12, 2, 20, 31, 7, tzinfo=UTC),
    )
    return steps, out


def test_plain_lines_have_timestamps_and_elapsed_times() -> None:
    steps, out = make(False, 0.0, 1.0, 3.5, 4.0)
    with steps.step("backup postgres/auth: dump"):
        pass
    steps.note("restore auth: renamed")
    steps.summary("backup: 1 backups taken")
    assert out.getvalue().splitlines() == [
        "2026-12-02T20:31:07Z backup postgres/auth: dump ...",
        "2026-12-02T20:31:07Z backup postgres/auth: dump: done in 2.5s",
        "2026-12-02T20:31:07Z restore auth: renamed",
        "backup: 1 backups taken (total 4.0s)",
    ]


def test_a_failed_step_says_so_and_the_error_goes_on() -> None:
    steps, out = make(False, 0.0, 0.0, 1.25)
    with pytest.raises(RuntimeError), steps.step("verify postgres/auth"):
        raise RuntimeError("boom")
    assert re.fullmatch(rf"{STAMP} verify postgres/auth: failed after 1\.2s", out.getvalue().splitlines()[-1])


def test_live_on_a_terminal_leaves_only_the_result_line() -> None:
    out = io.StringIO()
    ticks = ticking(0.0, 0.0, 2.0)
    steps = Steps(Console(file=out, force_terminal=True, width=100, highlight=False), clock=lambda: next(ticks))
    assert steps.live
    with steps.step("wait-ready local-db"):
        pass
    final = out.getvalue().rsplit("\r", 1)[-1]
    assert "wait-ready local-db: done in 2.0s" in out.getvalue() and not re.search(STAMP, final)


def test_not_a_terminal_means_plain() -> None:
    assert Steps(Console(file=io.StringIO())).live is False
