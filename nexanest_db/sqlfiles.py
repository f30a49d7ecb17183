"""Step files: the idempotent SQL under ``sql/init/`` and ``sql/ledger/``, run with psycopg.sql.

A step file is plain SQL cut into named steps::

    -- step: created role {owner_role}
    -- run-if: SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(owner_role)s)
    CREATE ROLE {owner_role} NOLOGIN;

* ``-- step: <title>`` starts a step; the title is what a run reports when the step changed something.
* ``-- run-if: <query>`` (optional, one line) returns one boolean; the step runs only when it is true,
  which is what makes a re-run change nothing. Values are bound server-side (``%(name)s``).
* The body is one or more statements. ``{name}`` placeholders are filled with ``psycopg.sql.Identifier``
  (role, database, schema names) or ``psycopg.sql.Literal`` (values such as a SCRAM verifier): never by
  string formatting. Write a literal brace as ``{{`` / ``}}``.

Lines before the first step are the file's header (comments saying when and where it runs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from nexanest_db.errors import ConfigError, StepFailed

_STEP = re.compile(r"^--\s*step:\s*(?P<title>.+?)\s*$")
_RUN_IF = re.compile(r"^--\s*run-if:\s*(?P<query>.+?)\s*$")


@dataclass(frozen=True, kw_only=True)
class Step:
    title: str
    run_if: str | None
    body: str
    line: int  # 1-based line of the "-- step:" comment


@dataclass(frozen=True, kw_only=True)
class StepFile:
    path: Path
    display: str  # project-relative path for messages
    steps: tuple[Step, ...]


@dataclass(frozen=True, kw_only=True)
class StepValues:
    """What fills a step file: identifiers, literals and plain flags (the latter only usable in ``run-if``)."""

    identifiers: Mapping[str, str | None] = field(default_factory=dict)
    literals: Mapping[str, str | int | None] = field(default_factory=dict)
    flags: Mapping[str, bool] = field(default_factory=dict)

    def params(self) -> dict[str, object]:
        return {**self.identifiers, **self.literals, **self.flags}

    def composables(self) -> dict[str, sql.Composable]:
        return {
            **{k: sql.Identifier(v) for k, v in self.identifiers.items() if v is not None},
            **{k: sql.Literal(v) for k, v in self.literals.items() if v is not None},
        }

    def display(self) -> dict[str, object]:
        """Values for step titles: identifiers and flags, never literals (they may be verifiers)."""
        return {**self.identifiers, **self.flags}


def load_step_file(sql_dir: Path, relative: str) -> StepFile:
    """``sql/<relative>`` parsed into steps; messages name it ``sql/<relative>`` wherever sql/ lives."""
    path = sql_dir / relative
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read step file ({exc.strerror}); restore it from git") from None
    display = f"sql/{relative}"
    steps: list[Step] = []
    title: str | None = None
    run_if: str | None = None
    start = 0
    body: list[str] = []

    def close() -> None:
        if title is None:
            return
        statement = "\n".join(body).strip()
        if not statement:
            raise ConfigError(f"{display}:{start}: step {title!r} has no SQL")
        steps.append(Step(title=title, run_if=run_if, body=statement, line=start))

    for number, line in enumerate(text.splitlines(), start=1):
        if match := _STEP.match(line):
            close()
            title, run_if, start, body = match["title"], None, number, []
        elif match := _RUN_IF.match(line):
            if title is None or body or run_if is not None:
                # Anywhere else it would be a plain comment in the body: the step would run every time, silently.
                raise ConfigError(f"{display}:{number}: '-- run-if:' must be the line right after its '-- step:' line")
            run_if = match["query"]
        elif title is not None:
            body.append(line)
    close()
    if not steps:
        raise ConfigError(f"{display}: no '-- step:' found; see nexanest_db/sqlfiles.py for the format")
    return StepFile(path=path, display=display, steps=tuple(steps))


def run_steps(conn: psycopg.Connection, steps: StepFile, values: StepValues) -> list[str]:
    """Run each step whose ``run-if`` holds; return the titles of those that ran (the changes)."""
    changed: list[str] = []
    params = values.params()
    composables = values.composables()
    for step in steps.steps:
        where = f"{steps.display}:{step.line} ({step.title.split('{')[0].strip()})"
        try:
            if step.run_if is not None:
                row = conn.execute(step.run_if, params).fetchone()
                if not row or not row[0]:
                    continue
            statement = sql.SQL(step.body).format(**composables)
            conn.execute(statement)
        except KeyError as exc:
            raise ConfigError(f"{where}: unknown placeholder {exc}; known: {', '.join(sorted(composables))}") from None
        except psycopg.Error as exc:
            raise StepFailed(f"{where}: {one_line(exc)}") from exc
        changed.append(step.title.format_map(values.display()))
    return changed


def one_line(exc: BaseException) -> str:
    """A server error as one line (psycopg messages can carry DETAIL/HINT lines)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = primary or first_line
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text
