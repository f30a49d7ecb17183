"""Where commands find config/ and sql/: the project, or the copies shipped in a stack directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexanest_db.edge import project_paths
from nexanest_db.errors import ConfigError


def make_project(root: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "sql").mkdir()
    (root / "cdktf.json").write_text("{}")
    return root


def test_walks_up_from_a_stack_directory(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    stack_dir = root / "cdktf.out" / "stacks" / "local-db"
    stack_dir.mkdir(parents=True)
    paths = project_paths(stack_dir, None, {})
    assert (paths.root, paths.config_dir, paths.sql_dir) == (root, root / "config", root / "sql")


def test_shipped_copies_win_and_need_no_project(tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent-workdir"
    agent_dir.mkdir()
    paths = project_paths(agent_dir, None, {"NNDB_CONFIG_DIR": "assets/config/abc", "NNDB_SQL_DIR": "assets/sql/def"})
    assert paths.root == agent_dir
    assert paths.config_dir == agent_dir / "assets/config/abc"
    assert paths.sql_dir == agent_dir / "assets/sql/def"


def test_shipped_copies_inside_a_project_keep_its_root_for_backups(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    stack_dir = root / "cdktf.out" / "stacks" / "dev-db"
    stack_dir.mkdir(parents=True)
    paths = project_paths(stack_dir, None, {"NNDB_CONFIG_DIR": "assets/c", "NNDB_SQL_DIR": "assets/s"})
    assert paths.root == root and paths.config_dir == stack_dir / "assets/c"


def test_half_shipped_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NNDB_CONFIG_DIR and NNDB_SQL_DIR go together"):
        project_paths(tmp_path, None, {"NNDB_CONFIG_DIR": "x"})


def test_outside_a_project_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not inside a nexanest-db project"):
        project_paths(tmp_path, None, {})
