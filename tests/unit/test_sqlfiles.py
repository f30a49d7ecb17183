"""Step files: the format, and the real sql/init + sql/ledger files against the values the plugins pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from psycopg import sql

from nexanest_db.errors import ConfigError
from nexanest_db.sqlfiles import StepValues, load_step_file
from tests.support.project import REPO_ROOT

REPO_SQL = REPO_ROOT / "sql"
PLACEHOLDER = re.compile(r"(?<!\{)\{([a-z_]+)\}(?!\})")

# What the plugins fill each file with (see nexanest_db/plugins/*.py).
FILE_VALUES = {
    "init/00-harden-maintenance.sql": set(),
    "init/01-create-databases.sql": {
        "owner_role",
        "migrator_role",
        "app_role",
        "readonly_role",
        "database",
        "app_password",
        "readonly_password",
        "owner_name",
        "migrator_name",
    },
    "init/02-apply-schemas.sql": {"schema", "owner_role", "migrator_role", "database"},
    "init/03-set-permissions.sql": {"database", "schema", "owner_role", "app_role", "readonly_role"},
    "ledger/01-create-ledger.sql": {"migrator_role"},
}


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "init").mkdir(exist_ok=True)
    (tmp_path / "init" / "x.sql").write_text(text)
    return tmp_path


def test_steps_titles_guards_and_lines(tmp_path: Path) -> None:
    sql_dir = write(
        tmp_path,
        "-- header\n\n-- step: made {thing}\n-- run-if: SELECT %(flag)s\nCREATE TABLE {thing} (a int);\n\n-- step: always\nSELECT 1;\nSELECT 2;\n",
    )
    steps = load_step_file(sql_dir, "init/x.sql")
    assert steps.display == "sql/init/x.sql"
    first, second = steps.steps
    assert (first.title, first.run_if, first.body, first.line) == ("made {thing}", "SELECT %(flag)s", "CREATE TABLE {thing} (a int);", 3)
    assert (second.run_if, second.body, second.line) == (None, "SELECT 1;\nSELECT 2;", 7)


def test_a_step_without_sql_or_a_file_without_steps_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sql/init/x.sql:1: step 'empty' has no SQL"):
        load_step_file(write(tmp_path, "-- step: empty\n-- step: next\nSELECT 1;\n"), "init/x.sql")
    with pytest.raises(ConfigError, match="no '-- step:' found"):
        load_step_file(write(tmp_path, "SELECT 1;\n"), "init/x.sql")


def test_values_compose_identifiers_and_literals_never_text() -> None:
    values = StepValues(identifiers={"role": 'we"ird'}, literals={"secret": "it's"}, flags={"on": True})
    composed = sql.SQL("ALTER ROLE {role} PASSWORD {secret}").format(**values.composables())
    assert composed.as_string(None) == "ALTER ROLE \"we\"\"ird\" PASSWORD 'it''s'"
    assert values.display() == {"role": 'we"ird', "on": True}  # titles never show literals


@pytest.mark.parametrize("relative", sorted(FILE_VALUES))
def test_real_step_files_use_only_the_values_their_plugin_passes(relative: str) -> None:
    steps = load_step_file(REPO_SQL, relative)
    used = {name for step in steps.steps for name in PLACEHOLDER.findall(step.body)}
    assert used <= FILE_VALUES[relative], used - FILE_VALUES[relative]
    for step in steps.steps:
        # Every body composes (braces balanced / escaped) with dummy identifiers.
        sql.SQL(step.body).format(**{name: sql.Identifier("x") for name in FILE_VALUES[relative]}).as_string(None)
        assert step.run_if is None or step.run_if.upper().startswith("SELECT")


@pytest.mark.parametrize(
    "text",
    [
        "-- step: a\n-- why this step exists\n-- run-if: SELECT true\nSELECT 1;\n",
        "-- run-if: SELECT true\n-- step: a\nSELECT 1;\n",
        "-- step: a\n-- run-if: SELECT true\n-- run-if: SELECT false\nSELECT 1;\n",
    ],
)
def test_a_run_if_away_from_its_step_line_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "steps.sql").write_text(text)
    with pytest.raises(ConfigError, match=r"sql/steps\.sql:\d: '-- run-if:' must be the line right after its '-- step:' line"):
        load_step_file(tmp_path, "steps.sql")
