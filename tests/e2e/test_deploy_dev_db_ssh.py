"""`cdktf deploy|diff|destroy dev-db` through ssh://deploy@pgdb.nn.local, as on the shared dev engine.

The engine is this machine's, reached the way the dev stack reaches pgdb.nn.local: the Docker provider
runs ssh to a real sshd (tests/fixtures/sshd.py) on 127.0.0.1 as user ``deploy``, key authentication
only, the host key checked against a known_hosts entry for ``pgdb.nn.local``, which the ssh client
config (added to the stack's ssh_opts as ``-F``) maps to 127.0.0.1. The copy's published ports bind to
127.0.0.1 on free ports; the hooks reach them through POSTGRES_HOST/_PORT etc.

1. A container that never becomes healthy: dev.toml's timescale preloads timescaledb, which the
   stand-in image lacks. The deploy fails fast with one line naming the container, its state and the
   log line with the cause — read over ssh from the engine the stack targets.
2. Without the preload the deploy completes, the hooks run in it; `cdktf diff` and a second deploy
   say "No changes."
3. Destroy without confirmation stops before anything is removed (dev is a shared engine); with
   NNDB_CONFIRM_DESTROY=dev-db it takes verified backups, then nothing of the stack is left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.fixtures.sshd import SshTarget
from tests.fixtures.toolchain import Toolchain
from tests.support.deploy import INSTANCES, DeployedCopy

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]

SSH_OPTS = 'opts = ["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]'


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, ssh_target: SshTarget) -> Iterator[DeployedCopy]:
    options = ", ".join(f'"{o}"' for o in ssh_target.ssh_opts)
    deployed = DeployedCopy.create(
        tmp_path_factory.mktemp("e2e-dev-ssh") / "project",
        toolchain,
        stack="dev-db",
        label="dev-db over ssh e2e",
        keep_timescale_preload=True,
        replacements={
            SSH_OPTS: SSH_OPTS.removesuffix("]") + f", {options}]",
            'bind_address = "0.0.0.0"': 'bind_address = "127.0.0.1"',  # the shared build machine publishes nothing outward
        },
    )
    try:
        yield deployed
    finally:
        deployed.teardown()


def test_dev_db_over_ssh_deploy_failure_noop_and_guarded_destroy(dev: DeployedCopy, ssh_target: SshTarget) -> None:
    log_before = ssh_target.log.read_text()

    # 1. timescale cannot start (preload of an extension the image lacks): one line with the cause, quickly
    failed = dev.cdktf("deploy with a timescale that cannot start", "deploy", expect_failure=True)
    (line,) = failed.lines("(local-exec): nndb: error:")
    match = re.search(
        rf"nndb: error: timescale: container {dev.prefix}-timescale did not answer on 127\.0\.0\.1:{dev.ports['timescale']} "
        r"after (\d+) s; it is (restarting|exited|running) \(([^)]*)\); last log lines: (.*); fix the cause, then run the deploy again$",
        line,
    )
    assert match, line
    assert int(match[1]) < 60, "a crash loop is reported at once, not after deploy_wait_timeout_s"
    assert 'could not access file "timescaledb"' in match[4], line
    assert dev.running("postgres") and dev.running("redis")
    # ... and it went through ssh: the stack's provider and the sshd agree
    (provider,) = json.loads((dev.root / "cdktf.out" / "stacks" / "dev-db" / "cdk.tf.json").read_text())["provider"]["docker"]
    assert provider["host"] == "ssh://deploy@pgdb.nn.local" and provider["ssh_opts"][-2:] == ssh_target.ssh_opts
    assert "Accepted publickey for deploy" in ssh_target.log.read_text().removeprefix(log_before)

    # 2. fixed: the deploy completes over ssh with the hooks; then nothing to change
    dev.edit_config('shared_preload_libraries = "timescaledb"\n', "")
    output = dev.cdktf("deploy over ssh", "deploy").output
    assert re.search(r"hooks: [1-9]\d* changes? in ", output), output[-3000:]
    assert all(dev.running(instance) for instance in INSTANCES)
    with dev.connect("postgres", "auth_app", dev.passwords["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("insert into auth.users (email, password_hash) values ('dev@nexanest.test', 'x')")
    ids = dev.container_ids()
    assert "No changes." in dev.cdktf("diff over ssh (no-op)", "diff").output
    assert "No changes." in dev.cdktf("redeploy over ssh (no-op)", "deploy").output
    assert dev.container_ids() == ids
    assert dev.leaks() == []

    # 3. destroy: refused without confirmation, nothing removed; confirmed: verified backups, then all gone
    refused = dev.cdktf("destroy without confirmation", "destroy", expect_failure=True)
    (line,) = refused.lines("(local-exec): nndb: error:")
    assert "dev-db: destroy not confirmed; its data volumes would be deleted: set NNDB_CONFIRM_DESTROY=dev-db" in line
    assert dev.container_ids() == ids and all(dev.running(instance) for instance in INSTANCES)
    assert len(dev.names_on_engine()["volumes"].split()) == 3
    output = dev.cdktf("destroy (confirmed)", "destroy", env={"NNDB_CONFIRM_DESTROY": "dev-db"}).output
    assert "before-destroy dev-db: 3 backups taken and proven by restore" in output
    assert dev.names_on_engine() == {"containers": "", "volumes": "", "networks": ""}
