"""How every ``nndb`` command talks to its operator: text lines, ``--json`` documents, ``--quiet``, colour.

One invocation per process run (``begin`` is called by ``cli.main`` with what the edge handed it:
the process environment and the working directory). Commands print text through ``console`` and
hand their structured result to ``set_result``; with ``--json`` the text is held back and
``cli.main`` prints one document on stdout (docs/cli.md#json):

    {"schema": "nndb/<command>/1", "ok": true,  "result": {...}}
    {"schema": "nndb/<command>/1", "ok": false, "error": {"message": ..., "exit_code": N, "kind": ...}, "result": {...}?}

A command that hands no result gets ``{"lines": [<its text lines>]}``.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

SCHEMA_VERSION = 1

console = Console(highlight=False, soft_wrap=True, emoji=False)


@dataclass
class Invocation:
    environ: dict[str, str] = field(default_factory=dict)
    cwd: Path = field(default_factory=Path.cwd)
    json: bool = False
    quiet: bool = False
    no_color: bool = False
    command: tuple[str, ...] = ()
    result: dict[str, Any] | None = None
    held: io.StringIO | None = None


_current = Invocation()


def begin(*, environ: Mapping[str, str], cwd: Path) -> Invocation:
    """A fresh invocation (``cli.main``): nothing carried over from an earlier one in this process."""
    global _current
    _current = Invocation(environ=dict(environ), cwd=cwd)
    console.file = None  # type: ignore[assignment]  # None: rich writes to the current sys.stdout
    console.quiet = False
    console.no_color = "NO_COLOR" in environ
    return _current


def current() -> Invocation:
    return _current


def configure(*, as_json: bool = False, quiet: bool = False, no_color: bool = False, command: tuple[str, ...] = ()) -> None:
    """Called as the options are parsed (global and per command: each flag only switches on)."""
    if command:
        _current.command = command
    if no_color:
        _current.no_color = True
        console.no_color = True
    if quiet:
        _current.quiet = True
        console.quiet = True
    if as_json and not _current.json:
        _current.json = True
        _current.held = io.StringIO()
        console.file = _current.held


def set_result(result: Mapping[str, Any]) -> None:
    """The command's structured result (the ``result`` of its ``--json`` document)."""
    _current.result = dict(result)


def is_json() -> bool:
    return _current.json


def schema(command: tuple[str, ...]) -> str:
    return f"nndb/{'-'.join(command) or 'nndb'}/{SCHEMA_VERSION}"


def _result() -> dict[str, Any]:
    if _current.result is not None:
        return _current.result
    text = _current.held.getvalue() if _current.held is not None else ""
    return {"lines": [line for line in text.splitlines() if line.strip()]}


def ok_document() -> dict[str, Any]:
    return {"schema": schema(_current.command), "ok": True, "result": _result()}


def error_document(message: str, exit_code: int, kind: str, command: tuple[str, ...] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": schema(command if command is not None else _current.command),
        "ok": False,
        "error": {"message": message, "exit_code": exit_code, "kind": kind},
    }
    if _current.result is not None:
        document["result"] = _current.result
    return document


def print_document(document: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()
