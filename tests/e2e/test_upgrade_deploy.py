"""`nndb upgrade` through the real `cdktf deploy` (the shipped apply command) with the upstream providers.

The CI variant (test_upgrade_engine.py) applies with the container-specs realizer; this one deploys
local-db with the providers (tests/support/deploy.py: unique names and ports, stand-in images), then
upgrades postgres to a newer build of the same major and to an image that never answers, as an
operator would: `nndb upgrade local-db postgres --image ...`, which runs `cdktf deploy local-db
--auto-approve` itself. Runs with `scripts/test.sh --deploy` (needs_providers).
"""

from __future__ import annotations

import shlex
import subprocess
import tomllib
from collections.abc import Iterator

import pytest

from nexanest_db.errors import UpgradeError
from tests.fixtures.toolchain import Toolchain
from tests.fixtures.upgrade_images import NEVER_READY_LOG, UpgradeImages
from tests.support.cli_json import json_result
from tests.support.deploy import DeployedCopy, docker

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]
WAIT_S = 20


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, upgrade_images: UpgradeImages) -> Iterator[DeployedCopy]:
    deployed = DeployedCopy.create(tmp_path_factory.mktemp("upgrade-deploy") / "project", toolchain, label="local-db upgrade e2e")
    try:
        deployed.cdktf("deploy", "deploy")
        yield deployed
    finally:
        deployed.teardown()


def upgrade(deployed: DeployedCopy, image: str) -> subprocess.CompletedProcess[str]:
    # The shipped default, with the toolchain's cdktf binary (not necessarily on PATH here).
    apply = shlex.join([str(deployed.toolchain.cdktf), "deploy", "{stack}", "--auto-approve"])
    return deployed.nndb(
        "upgrade", "local-db", "postgres", "--image", image, "--wait-timeout", str(WAIT_S), "--apply-command", apply, "--json"
    )


def configured_image(deployed: DeployedCopy) -> str:
    return tomllib.loads((deployed.root / "config" / "local.toml").read_text())["postgres"]["image"]


def running_image(deployed: DeployedCopy) -> str:
    return docker("container", "inspect", "--format", "{{.Image}}", deployed.container("postgres"))


def users(deployed: DeployedCopy) -> list[str]:
    with deployed.connect("postgres", "auth_app", deployed.passwords["AUTH_DB_PASSWORD"], "auth") as conn:
        return [row[0] for row in conn.execute("SELECT email FROM auth.users ORDER BY email").fetchall()]


def test_upgrade_and_rollback_through_cdktf_deploy(local: DeployedCopy, upgrade_images: UpgradeImages) -> None:
    with local.connect("postgres", "auth_app", local.passwords["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("INSERT INTO auth.users (email, password_hash) VALUES ('deploy-upgrade@nexanest.test', 'x')")
    volume = docker("volume", "inspect", "--format", "{{.CreatedAt}}", f"{local.prefix}-postgres-data")

    done = upgrade(local, upgrade_images.good)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    result = json_result(done.stdout, "upgrade")
    assert result["outcome"] == "upgraded" and result["before"]["system_identifier"] == result["after"]["system_identifier"]
    assert configured_image(local) == upgrade_images.good
    assert running_image(local) == docker("image", "inspect", "--format", "{{.Id}}", upgrade_images.good)
    assert users(local) == ["deploy-upgrade@nexanest.test"]
    assert "No changes." in local.cdktf("diff after upgrade", "diff").output  # the config and the deployed stack agree

    failed = upgrade(local, upgrade_images.never_ready)
    assert failed.returncode == UpgradeError.exit_code, failed.stdout[-4000:] + failed.stderr
    line = failed.stderr.strip()
    assert len(line.splitlines()) == 1 and NEVER_READY_LOG in line, line
    assert f"names {upgrade_images.good} again and it answers on the same data" in line, line
    assert configured_image(local) == upgrade_images.good
    assert running_image(local) == docker("image", "inspect", "--format", "{{.Id}}", upgrade_images.good)
    assert users(local) == ["deploy-upgrade@nexanest.test"]
    assert docker("volume", "inspect", "--format", "{{.CreatedAt}}", f"{local.prefix}-postgres-data") == volume
    assert "No changes." in local.cdktf("diff after rollback", "diff").output
