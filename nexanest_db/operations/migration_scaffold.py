"""``nndb migrate new``: the next versioned migration file of a service, empty but for its header."""

from __future__ import annotations

import re
from pathlib import Path

from nexanest_db.errors import ConfigError, MigrationError
from nexanest_db.migration_files import BASELINE_VERSION, discover

_NOT_WORD = re.compile(r"[^a-z0-9]+")
# Long enough to say what a migration does, short enough to read in `nndb migrate status`.
MAX_DESCRIPTION_CHARS = 60

HEADER = """\
-- {label}: {description}
--
-- Runs once, in its own transaction, as {service}_owner, with search_path = the service's schema:
-- write unqualified names, no BEGIN/COMMIT, no CREATE INDEX CONCURRENTLY. Never edit this file after
-- it has been applied anywhere; put the next change in a new migration (`nndb migrate new`).

"""


def known_services(sql_dir: Path) -> list[str]:
    """Services with SQL: a folder under sql/schemas/ or sql/migrations/."""
    names = {p.name for kind in ("schemas", "migrations") if (sql_dir / kind).is_dir() for p in (sql_dir / kind).iterdir() if p.is_dir()}
    return sorted(names)


def file_description(description: str) -> str:
    """``"Add e-mail index!"`` -> ``add_e_mail_index``: the part of the file name after ``V<n>__``."""
    slug = _NOT_WORD.sub("_", description.strip().lower()).strip("_")
    if not slug:
        raise ConfigError(
            f'migration description {description!r} has no letters or digits; say what the migration does, e.g. "add email index"'
        )
    if len(slug) > MAX_DESCRIPTION_CHARS:
        raise ConfigError(
            f"migration description is {len(slug)} characters; keep it to {MAX_DESCRIPTION_CHARS} (details go in the file's comments)"
        )
    return slug


def new_migration(sql_dir: Path, service: str, description: str) -> Path:
    """Write ``sql/migrations/<service>/V<next>__<description>.sql`` and return its path.

    The next version is one above the highest existing file (applied or not), three digits wide like
    the files already there. Existing files are validated the way the hooks read them, so a broken
    folder is reported before a new file joins it.
    """
    services = known_services(sql_dir)
    if service not in services:
        raise ConfigError(
            f"unknown service {service!r}: no sql/schemas/{service}/ or sql/migrations/{service}/; known services: {', '.join(services) or 'none'}"
        )
    slug = file_description(description)
    versions = [m.version for m in discover(sql_dir, service) if m.version != BASELINE_VERSION]
    version = max(versions, default=0) + 1
    label = f"V{version:03d}"
    folder = sql_dir / "migrations" / service
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}__{slug}.sql"
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(HEADER.format(label=label, description=slug.replace("_", " "), service=service))
    except FileExistsError:
        raise MigrationError(f"sql/migrations/{service}/{path.name} already exists; run the command again") from None
    except OSError as err:
        raise MigrationError(f"cannot write sql/migrations/{service}/{path.name}: {err.strerror}; check the folder's permissions") from None
    return path
