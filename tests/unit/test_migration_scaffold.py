"""`nndb migrate new`'s file naming and numbering (nexanest_db/operations/migration_scaffold.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexanest_db.errors import ConfigError, MigrationError
from nexanest_db.operations.migration_scaffold import MAX_DESCRIPTION_CHARS, file_description, new_migration


@pytest.mark.parametrize(
    ("description", "expected"),
    [("add email index", "add_email_index"), ("  Add E-mail index!  ", "add_e_mail_index"), ("V2 of  users", "v2_of_users")],
)
def test_description_becomes_a_file_name_part(description: str, expected: str) -> None:
    assert file_description(description) == expected


@pytest.mark.parametrize("description", ["", "  ", "!!!", "-- --"])
def test_description_without_words_is_refused(description: str) -> None:
    with pytest.raises(ConfigError, match="has no letters or digits"):
        file_description(description)


def test_overlong_description_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"keep it to {MAX_DESCRIPTION_CHARS}"):
        file_description("x" * (MAX_DESCRIPTION_CHARS + 1))


def test_next_version_is_one_above_the_highest_file(tmp_path: Path) -> None:
    folder = tmp_path / "migrations" / "auth"
    folder.mkdir(parents=True)
    (folder / "V001__a.sql").write_text("SELECT 1;\n")
    (folder / "V007__b.sql").write_text("SELECT 1;\n")
    path = new_migration(tmp_path, "auth", "add c")
    assert path == folder / "V008__add_c.sql"
    assert path.read_text().splitlines()[0] == "-- V008: add c"
    assert new_migration(tmp_path, "auth", "add d").name == "V009__add_d.sql"


def test_first_migration_of_a_service_with_only_a_baseline(tmp_path: Path) -> None:
    (tmp_path / "schemas" / "billing").mkdir(parents=True)
    (tmp_path / "schemas" / "billing" / "001-tables.sql").write_text("CREATE TABLE invoices (id int);\n")
    assert new_migration(tmp_path, "billing", "add totals") == tmp_path / "migrations" / "billing" / "V001__add_totals.sql"


def test_unknown_service_and_broken_folder(tmp_path: Path) -> None:
    (tmp_path / "migrations" / "auth").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"unknown service 'billing'.*known services: auth"):
        new_migration(tmp_path, "billing", "x")
    (tmp_path / "migrations" / "auth" / "notes.txt").write_text("scratch\n")
    with pytest.raises(MigrationError, match="not a migration file name"):
        new_migration(tmp_path, "auth", "x")
    assert sorted(p.name for p in (tmp_path / "migrations" / "auth").iterdir()) == ["notes.txt"]
