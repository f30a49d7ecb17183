"""Point a copy of the project at the stand-in images (tests/images/tags.txt), never the shipped config.

The shipped config/*.toml is what a user with the official images needs: ``timescale`` preloads the
``timescaledb`` extension. The stand-ins built by scripts/bootstrap.sh carry other names
(``nexanest-fixture/...``), and the timescale stand-in has no TimescaleDB (not packaged in Debian),
so a copy used with them gets the stand-in image names and loses that one setting. A test that runs a
real TimescaleDB (``HANDBUILT_TIMESCALEDB``) keeps it.

Also a command, for ``scripts/up.sh`` on an offline build machine:
``python -m tests.support.standins offline-project DEST`` copies the project to DEST with local-db
pointed at the stand-ins (config and sql are refreshed, Terraform state in DEST is kept).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.project import REPO_ROOT, copy_project

TAGS_FILE = REPO_ROOT / "tests" / "images" / "tags.txt"
EXPORTER_TAGS_FILE = REPO_ROOT / "tests" / "images" / "exporters" / "tags.txt"
TIMESCALE_PRELOAD = re.compile(r'^shared_preload_libraries\s*=\s*"timescaledb"\s*\n', re.MULTILINE)
# A PostgreSQL 15 image with TimescaleDB built by hand from its public source (never by this
# project's scripts, see docs/deploy.md): only the opt-in TimescaleDB deploy test uses it.
HANDBUILT_TIMESCALEDB = "nexanest-handbuilt/timescaledb:pg15"


@dataclass(frozen=True, kw_only=True)
class StandIn:
    official: str
    tag: str
    context: str


def standins() -> tuple[StandIn, ...]:
    """The database stand-ins (tests/images/tags.txt), then the exporters' (tests/images/exporters/tags.txt)."""
    rows = []
    for path in (TAGS_FILE, EXPORTER_TAGS_FILE):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            official, tag, context = line.split()[:3]
            rows.append(StandIn(official=official, tag=tag, context=context))
    return tuple(rows)


def standin_tags() -> tuple[str, ...]:
    return tuple(s.tag for s in standins())


def point_at_standins(config_text: str, *, timescale_image: str | None = None, keep_preload: bool = False) -> str:
    """``config_text`` (an environment TOML) with every official image replaced by its stand-in.

    ``timescale_image``: a real TimescaleDB image to use instead of the extension-less stand-in; the
    ``shared_preload_libraries = "timescaledb"`` line then stays, otherwise it goes (``keep_preload``
    keeps it anyway: a timescale container that cannot start, for the failure tests).
    """
    text = config_text
    for standin in standins():
        line = f'image = "{standin.official}"'
        if line not in text:
            raise AssertionError(f"config no longer contains {line!r}: update tests/support/standins.py")
        replacement = timescale_image if (timescale_image and standin.context == "timescaledb") else standin.tag
        text = text.replace(line, f'image = "{replacement}"')
    if timescale_image is None and not keep_preload:
        text = TIMESCALE_PRELOAD.sub("", text)
    return text


def local_copy_text(config_text: str, prefix: str, *, replacements: tuple[tuple[str, str], ...] = ()) -> str:
    """A project copy's local.toml for one test run: the stand-in images, containers ``<prefix>-*`` and network
    ``<prefix>-net``, then ``replacements`` (each must be found once: the shipped text changed otherwise)."""
    text = point_at_standins(config_text)
    for old, new in (
        ('name_prefix = "nexanest-local"', f'name_prefix = "{prefix}"'),
        ('name = "nexanest-db-local"', f'name = "{prefix}-net"'),
        *replacements,
    ):
        assert old in text, f"config/local.toml no longer contains {old!r}: update this test's renaming"
        text = text.replace(old, new, 1)
    return text


def offline_project(destination: Path) -> Path:
    root = copy_project(destination)
    config = root / "config" / "local.toml"
    config.write_text(point_at_standins(config.read_text(encoding="utf-8")), encoding="utf-8")
    return root


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "offline-project":
        print("usage: python -m tests.support.standins offline-project DEST", file=sys.stderr)
        return 2
    offline_project(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
