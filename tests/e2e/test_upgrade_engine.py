"""`nndb upgrade` on the real Docker engine, with two stand-in versions of the postgres image.

local-db is realized from its synthesized container definitions in a renamed project copy (the
realizer of test_container_specs.py: CI has no Terraform providers), and the hooks run on it. Then,
as an operator runs it, `nndb upgrade local-db postgres --image ...` with ``--apply-command`` set to
tests/support/upgrade_apply.py (what `cdktf deploy` does for an image change, through the same
realizer): a major version is refused before anything changes; a newer build of the same major is
taken after a proven backup, on the same data; an image whose server never answers is put back
within the bounded wait, one line and exit 16, the data volume intact. The stand-in versions are
built from the postgres stand-in for this module and removed afterwards (tests/fixtures/upgrade_images.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator

import pytest

from nexanest_db.errors import UpgradeError
from tests.fixtures.upgrade_images import NEVER_READY_LOG, UpgradeImages
from tests.support.cli_json import json_result
from tests.support.e2e_run import record_phases
from tests.support.local_servers import free_port
from tests.support.project import REPO_ROOT, copy_project
from tests.support.realizer import INSTANCES, PASSWORDS, Realized, base_environment, port_environment, realize, teardown
from tests.support.standins import local_copy_text

pytestmark = pytest.mark.e2e
STACK = "local-db"
APPLY = shlex.join([sys.executable, "-m", "tests.support.upgrade_apply", "{stack}"])
WAIT_S = 12


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr.strip()}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, upgrade_images: UpgradeImages) -> Iterator[Realized]:
    root = copy_project(tmp_path_factory.mktemp("upgrade") / "project")
    prefix = f"nndb-up-{uuid.uuid4().hex[:8]}"
    config_file = root / "config" / "local.toml"
    text = local_copy_text(config_file.read_text(), prefix)
    config_file.write_text(text)
    ports = {name: free_port() for name in (*INSTANCES, *(f"{i}-exporter" for i in INSTANCES))}
    # PYTHONPATH: the apply command is a module of this checkout's tests/, run from the copy.
    env = {**base_environment(), **PASSWORDS, "PYTHONPATH": str(REPO_ROOT), "NNDB_BACKUP_REPOSITORY": "local"}
    env.pop("NNDB_BACKUP_DIR", None)
    env |= port_environment(ports, INSTANCES, host="127.0.0.1")
    state = Realized(root=root, prefix=prefix, ports=ports, env=env, config=tomllib.loads(text))
    try:
        realize(state)
        state.nndb(None, "hooks", "run", STACK)
        yield state
    finally:
        teardown(prefix)
        record_phases("local-db image upgrade (realized, docker CLI)", state.timings)


def upgrade(state: Realized, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["nndb", "upgrade", STACK, "postgres", *args, "--apply-command", APPLY, "--wait-timeout", str(WAIT_S), "--json"]
    return subprocess.run(argv, cwd=state.root, env=state.env, capture_output=True, text=True, timeout=900, check=False)


def configured_image(state: Realized) -> str:
    return tomllib.loads((state.root / "config" / "local.toml").read_text())["postgres"]["image"]


def catalog_ids(state: Realized) -> list[str]:
    catalog = state.root / "backups" / STACK / "catalog.json"
    return [b["id"] for b in json.loads(catalog.read_text())["backups"]] if catalog.exists() else []


def users(state: Realized) -> list[str]:
    with state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        return [row[0] for row in conn.execute("SELECT email FROM auth.users ORDER BY email").fetchall()]


def image_id(ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref)


def running_image(state: Realized) -> str:
    return docker("container", "inspect", "--format", "{{.Image}}", state.name("postgres"))


def test_upgrade_refuses_a_major_takes_a_minor_and_rolls_back_an_image_that_never_answers(
    stack: Realized, upgrade_images: UpgradeImages
) -> None:
    state = stack
    volume_before = docker("volume", "inspect", "--format", "{{.CreatedAt}}", f"{state.prefix}-postgres-data")
    with state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("INSERT INTO auth.users (email, password_hash) VALUES ('before-upgrade@nexanest.test', 'x')")
    config_before = (state.root / "config" / "local.toml").read_text()
    assert configured_image(state) == upgrade_images.base and running_image(state) == image_id(upgrade_images.base)

    # 0. usage errors: one line, exit 2, before anything runs
    backups_before = catalog_ids(state)
    for args, needle in (
        (["--image", upgrade_images.good, "--path", "dump-restore"], "a minor upgrade needs no path"),
        (["--image", "not an image"], "is not an image reference"),
    ):
        result = upgrade(state, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr, result.stderr

    # 1. a major version (the stand-in declares PG_MAJOR=16): one line, exit 16, nothing touched, no backup
    refused = upgrade(state, "--image", upgrade_images.major)
    assert refused.returncode == UpgradeError.exit_code, refused.stdout + refused.stderr
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("nndb: error: local-db: postgres: "), line
    assert "is PostgreSQL 16, the server runs 15" in line and "--path dump-restore or --path pg-upgrade" in line, line
    assert json.loads(refused.stdout)["error"]["kind"] == "UpgradeError"
    assert (state.root / "config" / "local.toml").read_text() == config_before
    assert running_image(state) == image_id(upgrade_images.base) and catalog_ids(state) == backups_before

    # 2. --dry-run of the good one: the steps, nothing changed
    dry = upgrade(state, "--image", upgrade_images.good, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json_result(dry.stdout, "upgrade")["dry_run"] is True and (state.root / "config" / "local.toml").read_text() == config_before

    # 3. the same major, a newer build: proven backup, applied, answers on the same data
    started = time.monotonic()
    done = upgrade(state, "--image", upgrade_images.good)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    result = json_result(done.stdout, "upgrade")
    assert result["outcome"] == "upgraded" and result["from_major"] == result["to_major"] == 15
    assert configured_image(state) == upgrade_images.good
    assert running_image(state) == image_id(upgrade_images.good) == result["to_image_id"]
    assert users(state) == ["before-upgrade@nexanest.test"]
    assert result["before"]["system_identifier"] == result["after"]["system_identifier"]
    assert result["after"]["counts"]["auth"]["auth.users"] == 1
    # the backup came first, and it is proven: one per database on the instance
    new_backups = [b for b in catalog_ids(state) if b not in backups_before]
    assert sorted(result["backups"]) == sorted(new_backups) and len(new_backups) == 2, new_backups
    catalog = json.loads((state.root / "backups" / STACK / "catalog.json").read_text())
    assert all(b["verified"] for b in catalog["backups"] if b["id"] in new_backups)
    # the config edit is that one line, the file's comments kept
    assert (state.root / "config" / "local.toml").read_text() == config_before.replace(
        f'image = "{upgrade_images.base}"', f'image = "{upgrade_images.good}"', 1
    )
    state.timings["upgrade"] = time.monotonic() - started

    # 4. an image whose server never answers: the bounded wait ends it, the previous image runs again
    with state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("INSERT INTO auth.users (email, password_hash) VALUES ('after-upgrade@nexanest.test', 'x')")
    config_good = (state.root / "config" / "local.toml").read_text()
    started = time.monotonic()
    failed = upgrade(state, "--image", upgrade_images.never_ready)
    took = time.monotonic() - started
    assert failed.returncode == UpgradeError.exit_code, failed.stdout[-3000:] + failed.stderr
    line = failed.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert line.startswith(f"nndb: error: local-db: postgres: {upgrade_images.never_ready} did not come up within {WAIT_S}s"), line
    assert NEVER_READY_LOG in line, line  # the container's own log line says why
    assert f"rolled back: {state.root / 'config' / 'local.toml'} names {upgrade_images.good} again" in line, line
    assert "answers on the same data" in line, line
    result = json_result(failed.stdout, "upgrade", ok=False)
    assert result["outcome"] == "rolled back" and [a["ok"] for a in result["attempts"]] == [False, True]
    assert (state.root / "config" / "local.toml").read_text() == config_good
    assert running_image(state) == image_id(upgrade_images.good)
    assert users(state) == ["after-upgrade@nexanest.test", "before-upgrade@nexanest.test"]
    assert docker("volume", "inspect", "--format", "{{.CreatedAt}}", f"{state.prefix}-postgres-data") == volume_before
    state.timings["failed upgrade + rollback"] = took


def data_dirs(state: Realized, image: str) -> list[str]:
    """The entries of the postgres data volume (pgdata, and any directory kept aside), read by a throwaway container."""
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "ls", "-v", f"{state.prefix}-postgres-data:/data", image, "/data")
    return sorted(out.split())


def system_identifier(state: Realized) -> str:
    with state.connect("postgres", state.superuser("postgres"), PASSWORDS["POSTGRES_PASSWORD"], "postgres") as conn:
        return str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])


def test_a_major_upgrade_by_dump_restore_keeps_the_old_directory_and_rolls_back_onto_it(
    stack: Realized, upgrade_images: UpgradeImages
) -> None:
    state = stack
    previous = configured_image(state)  # base, or good when the other test ran first on this worker
    with state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("INSERT INTO auth.users (email, password_hash) VALUES ('before-major@nexanest.test', 'x')")
    rows = users(state)
    identity = system_identifier(state)
    config_before = (state.root / "config" / "local.toml").read_text()

    # pg-upgrade is by hand: one line, nothing changed
    by_hand = upgrade(state, "--image", upgrade_images.major, "--path", "pg-upgrade")
    assert by_hand.returncode == UpgradeError.exit_code and "--path pg-upgrade is done by hand" in by_hand.stderr, by_hand.stderr
    assert (state.root / "config" / "local.toml").read_text() == config_before

    # 1. a new major that never answers: the old data directory goes back, same cluster, logins back
    failed = upgrade(state, "--image", upgrade_images.major_never_ready, "--path", "dump-restore")
    assert failed.returncode == UpgradeError.exit_code, failed.stdout[-3000:] + failed.stderr
    line = failed.stderr.strip()
    assert len(line.splitlines()) == 1 and "(PostgreSQL 16) did not take the data" in line, line
    assert f"names {previous} again and it answers on its old data directory" in line and "the service logins are back" in line, line
    assert (state.root / "config" / "local.toml").read_text() == config_before
    assert system_identifier(state) == identity and users(state) == rows  # auth_app logs in: LOGIN is back
    assert data_dirs(state, upgrade_images.base) == ["pgdata"]

    # 2. the new major: fresh data directory (another system identifier), every row restored, the old one kept aside
    done = upgrade(state, "--image", upgrade_images.major, "--path", "dump-restore")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    result = json_result(done.stdout, "upgrade")
    assert result["outcome"] == "upgraded" and (result["from_major"], result["to_major"], result["path"]) == (15, 16, "dump-restore")
    assert configured_image(state) == upgrade_images.major and running_image(state) == image_id(upgrade_images.major)
    assert system_identifier(state) != identity
    assert users(state) == rows  # as auth_app: the hooks recreated the login, the restore brought the rows
    assert result["after"]["counts"] == result["before"]["counts"]
    kept = [entry for entry in data_dirs(state, upgrade_images.base) if entry != "pgdata"]
    assert len(kept) == 1 and kept[0].startswith("pgdata-15-"), kept
