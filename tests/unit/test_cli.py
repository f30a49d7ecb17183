"""The CLI's edges: every usage error of every command is one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from nexanest_db import __version__
from nexanest_db.cli import build_app, main
from nexanest_db.errors import BUG_EXIT_CODE, UsageError
from tests.support.project import REPO_ROOT, copy_project

NNDB = str(Path(sys.executable).parent / "nndb")


def command_paths() -> list[tuple[tuple[str, ...], bool]]:
    """(path, takes a required argument) of every leaf command, walking the real command tree."""
    found: list[tuple[tuple[str, ...], bool]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in sorted(children.items()):
                walk(child, (*path, name))
            return
        required = any(getattr(param, "required", False) for param in command.params)
        found.append((path, required))

    walk(get_command(build_app()), ())
    return found


def groups() -> list[tuple[str, ...]]:
    root = get_command(build_app())
    return [(name,) for name, child in sorted(root.commands.items()) if getattr(child, "commands", None)]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_usage_line(code: int, err: str, path: tuple[str, ...]) -> None:
    assert code == UsageError.exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nndb: error: ") and "--help" in lines[0], lines[0]
    assert "Traceback" not in err


def test_the_tree_has_every_command() -> None:
    paths = {path for path, _ in command_paths()}
    assert {("hooks", "run"), ("migrate", "apply"), ("backup", "run"), ("secrets", "check"), ("synth",), ("wait-ready",)} <= paths


@pytest.mark.parametrize(("path", "required"), command_paths(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_unknown_option_and_missing_argument_are_one_line(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], required: bool
) -> None:
    code, _, err = run_main(capsys, *path, "--no-such-option")
    assert_one_usage_line(code, err, path)
    assert "No such option: --no-such-option" in err and " ".join(("nndb", *path)) in err
    if required:
        code, _, err = run_main(capsys, *path)
        assert_one_usage_line(code, err, path)
        assert "Missing argument" in err
    code, out, _ = run_main(capsys, *path, "--help")
    assert code == 0 and "Usage:" in out


@pytest.mark.parametrize("group", groups(), ids=" ".join)
def test_a_group_without_its_command_is_one_line(capsys: pytest.CaptureFixture[str], group: tuple[str, ...]) -> None:
    code, _, err = run_main(capsys, *group)
    assert_one_usage_line(code, err, group)
    assert "missing command" in err
    code, _, err = run_main(capsys, *group, "no-such-command")
    assert_one_usage_line(code, err, group)
    assert "No such command 'no-such-command'" in err


def test_no_arguments_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys)
    assert_one_usage_line(code, err, ())
    assert "Usage:" in out  # the help, for a human, on stdout
    code, out, err = run_main(capsys, "--version")
    assert (code, out.strip(), err) == (0, f"nndb {__version__}", "")


def test_a_bug_is_one_line_with_exit_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nexanest_db.cli.build_app", lambda: (_ for _ in ()).throw(RuntimeError("boom\nsecond line")))
    code, _, err = run_main(capsys, "synth")
    assert code == BUG_EXIT_CODE
    assert err.strip().splitlines() == ["nndb: error: unexpected RuntimeError: boom (a bug in nndb; NNDB_DEBUG=1 shows the traceback)"]


@pytest.mark.parametrize("argv", [[], ["--version"], ["hooks", "run"], ["--bogus"], ["migrate", "status", "local-db", "--bogus"]])
def test_the_installed_nndb_never_prints_a_traceback(argv: list[str], tmp_path: Path) -> None:
    """As a user runs it: the console script, in a directory that is no project."""
    result = subprocess.run([NNDB, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in result.stderr
    if argv == ["--version"]:
        assert result.returncode == 0 and result.stdout.strip() == f"nndb {__version__}"
    else:
        assert result.returncode == UsageError.exit_code, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _nndb_in(project: Path, *argv: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(project), "PYTHONPATH": str(REPO_ROOT), **(environ or {})}
    return subprocess.run([NNDB, *argv], cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_secrets_check_calls_an_empty_variable_empty_not_unset(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    result = _nndb_in(project, "secrets", "check", "local-db", environ={"AUTH_DB_PASSWORD": ""})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "$AUTH_DB_PASSWORD (set but empty)" in result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00", b'DB_HOST="unterminated\n'])
def test_a_binary_or_broken_env_file_is_one_line_for_every_command(tmp_path: Path, content: bytes) -> None:
    project = copy_project(tmp_path / "project")
    (project / ".env.db").write_bytes(content)
    for argv in (
        ("secrets", "check", "local-db"),
        ("migrate", "status", "local-db"),
        ("hooks", "run", "local-db"),
        ("backup", "list", "local-db"),
    ):
        result = _nndb_in(project, *argv)
        assert result.returncode == 2, (argv, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"nndb: error: {project / '.env.db'}"), (argv, result.stderr)


# --- the conventions every command shares (docs/cli.md): --json, --quiet, --no-color, --help examples ---


def leaf_commands() -> list[tuple[tuple[str, ...], object]]:
    found: list[tuple[tuple[str, ...], object]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in sorted(children.items()):
                walk(child, (*path, name))
            return
        found.append((path, command))

    walk(get_command(build_app()), ())
    return found


def _options(command: object) -> set[str]:
    return {opt for param in getattr(command, "params", []) for opt in getattr(param, "opts", [])}


def _placeholders(command: object, skip: str = "") -> list[str]:
    """Values for every required argument and option (``x``): parsing then gets past "missing"."""
    argv: list[str] = []
    for param in getattr(command, "params", []):
        if not getattr(param, "required", False) or skip in param.opts:
            continue
        argv += ["x"] if param.param_type_name == "argument" else [param.opts[0], "x"]
    return argv


def _ids(value: object) -> str:
    return " ".join(value) if isinstance(value, tuple) else ""


LEAVES = leaf_commands()


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=_ids)
def test_every_command_has_the_common_options_and_help_examples(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], command: object
) -> None:
    assert {"--json", "--quiet", "--no-color"} <= _options(command), path
    code, out, _ = run_main(capsys, *path, "--help")
    assert code == 0 and "Example" in out, f"`nndb {' '.join(path)} --help` shows no example"


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=_ids)
def test_a_usage_error_with_json_is_a_json_document_on_stdout(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], command: object
) -> None:
    cases = [[*path, *_placeholders(command), "--no-such-option", "--json"], ["--json", *path, "--no-such-option"]]
    if any(getattr(p, "required", False) for p in getattr(command, "params", [])):
        cases.append([*path, "--json"])  # a missing argument
    for argv in cases:
        code, out, err = run_main(capsys, *argv)
        assert_one_usage_line(code, err, path)
        document = json.loads(out)
        assert document["schema"] == f"nndb/{'-'.join(path)}/1", (argv, document)
        assert document["ok"] is False and document["error"]["exit_code"] == code == 2
        assert document["error"]["kind"] == "UsageError"
        assert document["error"]["message"] == err.strip().removeprefix("nndb: error: ")


TIMEOUT_OPTIONS = ("--connect-timeout", "--timeout", "--lock-timeout", "--statement-timeout")


@pytest.mark.parametrize(
    ("path", "command", "option"),
    [(path, command, option) for path, command in LEAVES for option in TIMEOUT_OPTIONS if option in _options(command)],
    ids=lambda v: _ids(v) if isinstance(v, tuple) else (v if isinstance(v, str) else ""),
)
def test_negative_seconds_are_refused(capsys: pytest.CaptureFixture[str], path: tuple[str, ...], command: object, option: str) -> None:
    code, _, err = run_main(capsys, *path, *_placeholders(command), option, "-1")
    assert_one_usage_line(code, err, path)
    assert f"Invalid value for '{option}'" in err


@pytest.mark.parametrize(("path", "command"), [(p, c) for p, c in LEAVES if "--project-dir" in _options(c)], ids=_ids)
def test_a_missing_project_dir_is_refused(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], command: object, tmp_path: Path
) -> None:
    code, _, err = run_main(capsys, *path, *_placeholders(command), "--project-dir", str(tmp_path / "nonexistent"))
    assert_one_usage_line(code, err, path)
    assert "'--project-dir'" in err and "does not exist" in err


def test_backup_list_of_a_missing_directory_is_an_error_not_an_empty_catalog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_main(capsys, "backup", "list", "local-db", "--backup-dir", str(tmp_path / "nonexistent"))
    assert_one_usage_line(code, err, ("backup", "list"))
    assert "does not exist" in err and out == ""


def test_json_success_document_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "--json", "--version")
    assert code == 0 and err == ""
    assert json.loads(out) == {"schema": "nndb/nndb/1", "ok": True, "result": {"version": __version__}}
    code, out, _ = run_main(capsys, "completion", "zsh", "--json")
    document = json.loads(out)
    assert code == 0 and document["schema"] == "nndb/completion/1" and document["ok"] is True
    assert document["result"]["shell"] == "zsh" and "_NNDB_COMPLETE" in document["result"]["script"]
    for argv in (("--quiet", "completion", "bash"), ("completion", "bash", "-q")):
        code, out, err = run_main(capsys, *argv)
        assert (code, out, err) == (0, "", "")


def test_no_color_flag_and_variable(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from nexanest_db.commands import output

    monkeypatch.delenv("NO_COLOR", raising=False)
    run_main(capsys, "completion", "bash")
    assert output.console.no_color is False
    run_main(capsys, "completion", "bash", "--no-color")
    assert output.console.no_color is True
    monkeypatch.setenv("NO_COLOR", "1")
    run_main(capsys, "completion", "bash")
    assert output.console.no_color is True


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_complete_commands(shell: str, tmp_path: Path) -> None:
    script = subprocess.run([NNDB, "completion", shell], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "_NNDB_COMPLETE" in script
    # What the script asks nndb when Tab is pressed after `nndb backup l`:
    if shell == "bash":
        env = {"_NNDB_COMPLETE": "complete_bash", "COMP_WORDS": "nndb backup l", "COMP_CWORD": "2"}
    else:
        env = {"_NNDB_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": "nndb backup l"}
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    answer = subprocess.run(
        [NNDB], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert answer.returncode == 0 and "list" in answer.stdout, answer.stdout + answer.stderr


def test_bash_accepts_the_completion_script(tmp_path: Path) -> None:
    script = tmp_path / "nndb.bash"
    script.write_text(subprocess.run([NNDB, "completion", "bash"], capture_output=True, text=True, check=True, timeout=60).stdout)
    registered = subprocess.run(["bash", "-c", f"source {script} && complete -p nndb"], capture_output=True, text=True, check=False)
    assert registered.returncode == 0 and "_nndb_completion" in registered.stdout, registered.stderr


def test_nndb_synth_finds_the_project_from_a_subdirectory_and_takes_project_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _nndb_in(elsewhere, "synth")
    assert result.returncode == 2 and "not inside a nexanest-db project" in result.stderr and "--project-dir" in result.stderr
    code, _, err = run_main(capsys, "synth", "--project-dir", str(tmp_path / "missing"))
    assert_one_usage_line(code, err, ("synth",))
