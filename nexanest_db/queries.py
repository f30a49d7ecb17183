"""Named queries from ``sql/queries/<name>.sql`` (SQL lives in sql/, not in code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from psycopg import sql

from nexanest_db.errors import ConfigError


@lru_cache(maxsize=64)
def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read query ({exc.strerror}); restore it from git") from None


def load_query(sql_dir: Path, name: str) -> str:
    """The text of ``sql/queries/<name>.sql`` (leading ``--`` comments are harmless SQL)."""
    return _read(sql_dir / "queries" / f"{name}.sql")


def compose_query(sql_dir: Path, name: str, **identifiers: str | tuple[str, ...]) -> sql.Composed:
    """``sql/queries/<name>.sql`` with ``{placeholders}`` filled by ``psycopg.sql.Identifier``.

    A tuple value becomes a qualified name: ``("auth", "users")`` -> ``"auth"."users"``.
    """
    values = {key: sql.Identifier(*value) if isinstance(value, tuple) else sql.Identifier(value) for key, value in identifiers.items()}
    return sql.SQL(load_query(sql_dir, name)).format(**values)
