"""Migration files on disk: discovery, checksums, statements with their line numbers.

Per service:

* the baseline — every ``*.sql`` in ``sql/schemas/<service>/`` (sorted by name), applied together as
  ledger version 0;
* versioned migrations — ``sql/migrations/<service>/V<number>__<description>.sql``, e.g.
  ``V002__add_email_index.sql`` (version 2, "add email index").

Files are split into statements with pglast (PostgreSQL's own parser), so a syntax error is reported
as ``file:line`` before anything touches a database, and a failing statement can be named by line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pglast import parser

from nexanest_db.errors import MigrationError

FILE_NAME = re.compile(r"^V(?P<version>\d+)__(?P<description>[A-Za-z0-9_]+)\.sql$")
# Migrations run inside a transaction the tool owns; one of these inside a file would break that.
_TRANSACTION_CONTROL = re.compile(
    r"^(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b", re.IGNORECASE
)
BASELINE_VERSION = 0
# The ledger's version column is a PostgreSQL integer.
MAX_VERSION = 2**31 - 1
# A comment line in a migration that names the checksum of an earlier text of the same file, so a
# ledger that applied that text stays valid after a deliberate, reviewed fix (see docs/hooks.md).
_SUPERSEDES = re.compile(r"^--\s*nndb:\s*supersedes checksum ([0-9a-f]{64})\s*$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class Statement:
    text: str
    display: str  # file, project-relative
    line: int  # 1-based line where the statement starts


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    path: Path
    display: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Migration:
    service: str
    version: int
    description: str
    sources: tuple[SourceFile, ...]

    @property
    def label(self) -> str:
        return "baseline" if self.version == BASELINE_VERSION else f"V{self.version:03d}"

    @property
    def script(self) -> str:
        """What the ledger records as the script: the file, or the baseline directory."""
        if len(self.sources) == 1:
            return self.sources[0].display
        return self.sources[0].display.rsplit("/", 1)[0] + "/"

    @cached_property
    def checksum(self) -> str:
        digest = hashlib.sha256()
        for source in self.sources:
            if len(self.sources) > 1:
                digest.update(source.display.rsplit("/", 1)[-1].encode() + b"\0")
            # Line endings are normalised so a checkout with CRLF does not look like an edit.
            digest.update(source.text.replace("\r\n", "\n").encode("utf-8"))
        return digest.hexdigest()

    @cached_property
    def superseded_checksums(self) -> frozenset[str]:
        """Checksums of earlier texts this file declares it replaces (``-- nndb: supersedes checksum <sha256>``)."""
        return frozenset(match for source in self.sources for match in _SUPERSEDES.findall(source.text))

    @cached_property
    def statements(self) -> tuple[Statement, ...]:
        return tuple(statement for source in self.sources for statement in split_statements(source))


def split_statements(source: SourceFile) -> list[Statement]:
    text = source.text
    try:
        slices = parser.split(text, with_parser=True, only_slices=True)
    except parser.ParseError as exc:
        message, position = exc.args[0], exc.args[1] if len(exc.args) > 1 else 0
        line = text.count("\n", 0, position) + 1
        raise MigrationError(f"{source.display}:{line}: {message}; fix the SQL (nothing was applied)") from None
    statements = []
    # Lines are counted from the previous statement on, never from the start of the file: linear in
    # the file's size (benchmarks/bench_parse.py), not quadratic in its number of statements.
    line, counted_to = 1, 0
    for piece in slices:
        body = text[piece]
        line += text.count("\n", counted_to, piece.start)
        counted_to = piece.start
        if _TRANSACTION_CONTROL.match(body):
            raise MigrationError(
                f"{source.display}:{line}: {body.split()[0].upper()} found; each migration already runs in its own transaction, remove it"
            )
        statements.append(Statement(text=body, display=source.display, line=line))
    return statements


def _display(path: Path, sql_dir: Path) -> str:
    # Named "sql/..." wherever sql/ lives (project, or the copy shipped with a stack): the ledger stays stable.
    return f"sql/{path.relative_to(sql_dir).as_posix()}"


def _check_plain(path: Path, sql_dir: Path, what: str) -> None:
    """Only real files and directories inside sql/: a symlink could make any file on the machine a migration."""
    display = _display(path, sql_dir)
    if path.is_symlink():
        raise MigrationError(
            f"{display}: is a symbolic link; {what} must be plain files in the repository (replace the link with the file)"
        )
    if what == "directory":
        return
    if not path.is_file():
        raise MigrationError(f"{display}: not a regular file; {what} must be plain .sql files (remove it)")


def _read(path: Path, sql_dir: Path) -> SourceFile:
    display = _display(path, sql_dir)
    _check_plain(path, sql_dir, "migrations")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MigrationError(f"{display}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise MigrationError(f"{display}: cannot read it ({exc.strerror}); check the file's permissions") from None
    if "\0" in text:
        raise MigrationError(f"{display}: contains a NUL byte; not SQL text")
    return SourceFile(path=path, display=display, text=text)


def discover(sql_dir: Path, service: str) -> list[Migration]:
    """The baseline (if any) and every versioned migration of ``service``, by version."""
    migrations: list[Migration] = []
    schema_dir = sql_dir / "schemas" / service
    migration_dir = sql_dir / "migrations" / service
    for directory in (sql_dir / "schemas", sql_dir / "migrations", schema_dir, migration_dir):
        if directory.is_symlink():
            _check_plain(directory, sql_dir, "directory")
    baseline_files = sorted(schema_dir.glob("*.sql")) if schema_dir.is_dir() else []
    if baseline_files:
        sources = tuple(_read(path, sql_dir) for path in baseline_files)
        migrations.append(Migration(service=service, version=BASELINE_VERSION, description="schema", sources=sources))
    seen: dict[int, str] = {}
    for path in sorted(migration_dir.iterdir()) if migration_dir.is_dir() else []:
        if path.name.startswith(".") or (path.is_dir() and not path.is_symlink()):
            continue
        display = _display(path, sql_dir)
        match = FILE_NAME.match(path.name)
        if not match:
            _check_plain(path, sql_dir, "migrations")
            raise MigrationError(f"{display}: not a migration file name; expected V<number>__<description>.sql, e.g. V004__add_index.sql")
        version = int(match["version"])
        if version > MAX_VERSION:
            raise MigrationError(
                f"{display}: version {version} is larger than the ledger holds ({MAX_VERSION}); use the next number after the latest migration"
            )
        source = _read(path, sql_dir)
        if version == BASELINE_VERSION:
            raise MigrationError(f"{source.display}: version 0 is the baseline (sql/schemas/{service}/); number migrations from V001")
        if version in seen:
            raise MigrationError(
                f"{source.display}: version {version} is also used by {seen[version]}; give one of them the next free number"
            )
        seen[version] = source.display
        description = match["description"].replace("_", " ")
        migrations.append(Migration(service=service, version=version, description=description, sources=(source,)))
    return sorted(migrations, key=lambda m: m.version)
