"""The Swarm hand-off on a real single-node Swarm: published secrets, a service reading them through ``*_FILE``, a rotation.

A copy of the project whose local-db config has a ``[swarm]`` table naming the local engine (made a
Swarm manager by the ``swarm_manager`` fixture, left as it was found) and publishing the auth
service. The synthesized ``docker_secret`` blocks are applied with the docker CLI as Terraform would
(tests/support/swarm_secrets.py: values from the stack's own data source program, fed on stdin).
Then a Swarm service from the stand-in PostgreSQL image reads ``AUTH_DB_PASSWORD_FILE`` and logs in
to a real PostgreSQL 15 (tests/fixtures/servers.py) with it, and reports the SHA-256 of its Redis
password file (never the value).

The rotation: new values and ``generation = 2``; the apply creates v2 and keeps v1 (the service
still mounts it, Docker refuses to remove it, ``nndb swarm secrets`` says who has to move and exits
17); the service moves with ``docker service update`` and logs in with the new password; exit 0.
``generation = 3`` then retires v1, which nothing uses any more. Everything runs in ONE test: the
Swarm fixture is per xdist worker, so two tests on two workers would init and leave one swarm.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from nexanest_db.errors import SwarmError
from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.servers import PostgresServer
from tests.fixtures.swarm import SwarmManager
from tests.support.project import copy_project, synth
from tests.support.standins import standins
from tests.support.swarm_secrets import ApplyFailed, SecretState

pytestmark = pytest.mark.e2e
STACK = "local-db"
NNDB = str(Path(sys.executable).parent / "nndb")
# The stand-in of postgres:15 (tests/images/tags.txt): it has psql, sh, cat and sha256sum.
POSTGRES_IMAGE = next(s.tag for s in standins() if s.official == "postgres:15")
# The service's script: the password only ever inside the container's process, from the secret file.
SERVICE_SCRIPT = r"""
set -eu
PGPASSWORD="$(cat "$AUTH_DB_PASSWORD_FILE")" psql -X -q -tA "host=127.0.0.1 port=$DB_PORT user=$DB_USER dbname=postgres" \
  -c "SELECT 'login ok as ' || current_user"
echo "redis password file sha256 $(sha256sum < "$AUTH_REDIS_PASSWORD_FILE")"
"""
SWARM_TABLE = """
[swarm]
provider_alias = "swarm"
secret_prefix = "{prefix}"
keep_previous = 1
[swarm.docker]
host = "{host}"
[swarm.services.auth]
generation = {generation}
"""


def fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


class Scenario:
    def __init__(self, root: Path, manager: SwarmManager, prefix: str) -> None:
        self.root = root
        self.manager = manager
        self.prefix = prefix
        self.service = f"{prefix}-auth"
        self.base = (root / "config" / "local.toml").read_text()
        self.env = {k: v for k, v in os.environ.items() if not k.endswith("_FILE") and k not in {"NNDB_PROJECT_DIR", "DB_HOST"}}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.state = SecretState(engine_host=manager.engine_host, provider="docker.swarm")
        self.round = 0

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", "-H", self.manager.engine_host, *args], capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            fail(f"docker {' '.join(args[:2])} ... exited {result.returncode}: {result.stderr.strip()}")
        return result

    def name(self, credential: str, generation: int) -> str:
        return f"{self.prefix}-auth-{credential}-v{generation}"

    def deploy(self, generation: int, values: dict[str, str]) -> dict[str, Any]:
        """Synth with ``generation``, run the data source with ``values``, apply the docker_secret blocks."""
        (self.root / "config" / "local.toml").write_text(
            self.base + SWARM_TABLE.format(prefix=self.prefix, host=self.manager.engine_host, generation=generation)
        )
        self.round += 1
        outdir = self.root / f"cdktf.out.{self.round}"
        document = synth(self.root, outdir, environ={}, stacks=(STACK,))[STACK]
        assert document["provider"]["docker"][1] == {"alias": "swarm", "host": self.manager.engine_host}
        results: dict[str, dict[str, str]] = {}
        for source_id, source in document["data"]["external"].items():
            ran = subprocess.run(
                source["program"],
                input=json.dumps(source["query"]),
                cwd=outdir / "stacks" / STACK,
                env=self.env | values,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if ran.returncode != 0:
                fail(f"data.external.{source_id} exited {ran.returncode}: {ran.stderr.strip()}")
            results[source_id] = json.loads(ran.stdout)
        self.state.apply(document, results)
        return document

    def secrets_on_manager(self) -> set[str]:
        names = self.docker("secret", "ls", "--filter", f"name={self.prefix}", "--format", "{{.Name}}").stdout.split()
        return {n for n in names if n.startswith(self.prefix)}

    def mounted(self) -> list[tuple[str, str]]:
        spec = json.loads(self.docker("service", "inspect", self.service).stdout)[0]["Spec"]
        return sorted((s["SecretName"], s["File"]["Name"]) for s in spec["TaskTemplate"]["ContainerSpec"]["Secrets"])

    def wait_for_task(self, count: int, timeout_s: float = 90) -> dict[str, Any]:
        """The newest of the service's tasks once there are ``count`` and it has ended; fails on a failed task."""
        deadline = time.monotonic() + timeout_s
        while True:
            ids = self.docker("service", "ps", "--quiet", "--no-trunc", self.service).stdout.split()
            tasks = [json.loads(self.docker("inspect", task).stdout)[0] for task in ids]
            tasks.sort(key=lambda t: t["Version"]["Index"])
            if len(tasks) >= count:
                newest = tasks[-1]
                state = newest["Status"]["State"]
                if state in {"failed", "rejected"}:
                    fail(f"{self.service}: task {state}: {newest['Status'].get('Err', '')}\n{self.logs()}")
                if state == "complete":
                    return newest
            if time.monotonic() > deadline:
                fail(
                    f"{self.service}: no ended task #{count} within {timeout_s:.0f} s (tasks: {[t['Status']['State'] for t in tasks]})\n{self.logs()}"
                )
            time.sleep(1)

    def logs(self) -> str:
        result = self.docker("service", "logs", "--raw", self.service, check=False)
        return result.stdout + result.stderr

    def nndb_swarm(self, expect: int) -> dict[str, Any]:
        ran = subprocess.run(
            [NNDB, "swarm", "secrets", STACK, "--json"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == expect, f"nndb swarm secrets exited {ran.returncode}, expected {expect}:\n{ran.stdout}\n{ran.stderr}"
        document = json.loads(ran.stdout)
        assert document["schema"] == "nndb/swarm-secrets/1" and document["ok"] is (expect == 0)
        return document["result"]

    def teardown(self) -> None:
        self.docker("service", "rm", self.service, check=False)
        deadline = time.monotonic() + 60
        while self.docker(
            "ps", "-a", "--quiet", "--filter", f"label=com.docker.swarm.service.name={self.service}", check=False
        ).stdout.strip():
            if time.monotonic() > deadline:
                break
            time.sleep(1)
        self.state.destroy_all()
        for leftover in self.secrets_on_manager():
            self.docker("secret", "rm", leftover, check=False)


@pytest.fixture
def scenario(tmp_path: Path, swarm_manager: SwarmManager) -> Iterator[Scenario]:
    root = copy_project(tmp_path / "project")
    state = Scenario(root, swarm_manager, f"nndb-sw-{uuid.uuid4().hex[:8]}")
    try:
        yield state
    finally:
        state.teardown()


def by_name(report: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["secrets"] if s["name"].startswith(prefix)}


def test_services_read_published_secrets_and_a_rotation_keeps_the_old_one_until_they_move(
    scenario: Scenario, postgres_server: PostgresServer
) -> None:
    s = scenario
    role = f"swarm_auth_{uuid.uuid4().hex[:8]}"
    first = {"AUTH_DB_PASSWORD": f"sw1-{secrets.token_hex(12)}", "AUTH_REDIS_PASSWORD": f"sw1r-{secrets.token_hex(12)}"}
    second = {"AUTH_DB_PASSWORD": f"sw2-{secrets.token_hex(12)}", "AUTH_REDIS_PASSWORD": f"sw2r-{secrets.token_hex(12)}"}
    assert {"AUTH_DB_PASSWORD", "AUTH_REDIS_PASSWORD"} <= {spec.env_var for spec in SECRET_SPECS}

    def set_role_password(value: str) -> None:  # what the post-apply hooks do for <svc>_app at a rotation
        with postgres_server.connect() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(value)))

    with postgres_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        # 1. generation 1: the auth service's two credentials are published, with the stack's labels
        document = s.deploy(1, first)
        assert s.state.log == [f"create {s.name('db_password', 1)}", f"create {s.name('redis_password', 1)}"]
        assert "sw1-" not in json.dumps(document), "a value reached cdk.tf.json"
        assert s.secrets_on_manager() == {s.name("db_password", 1), s.name("redis_password", 1)}
        labels = json.loads(s.docker("secret", "inspect", s.name("db_password", 1)).stdout)[0]["Spec"]["Labels"]
        assert labels["com.nexanest.stack"] == STACK and labels["com.nexanest.swarm.generation"] == "1"
        set_role_password(first["AUTH_DB_PASSWORD"])

        # 2. a Swarm service reads them through *_FILE and logs in to the real PostgreSQL
        s.docker(
            "service", "create", "--detach", "--name", s.service, "--restart-condition", "none", "--network", "host",
            "--secret", f"source={s.name('db_password', 1)},target=auth_db_password",
            "--secret", f"source={s.name('redis_password', 1)},target=auth_redis_password",
            "--env", "AUTH_DB_PASSWORD_FILE=/run/secrets/auth_db_password",
            "--env", "AUTH_REDIS_PASSWORD_FILE=/run/secrets/auth_redis_password",
            "--env", f"DB_PORT={postgres_server.port}", "--env", f"DB_USER={role}",
            POSTGRES_IMAGE, "sh", "-c", SERVICE_SCRIPT,
        )  # fmt: skip
        task = s.wait_for_task(1)
        assert task["Status"]["ContainerStatus"]["ExitCode"] == 0, s.logs()
        logs = s.logs()
        assert f"login ok as {role}" in logs, logs
        assert f"redis password file sha256 {hashlib.sha256(first['AUTH_REDIS_PASSWORD'].encode()).hexdigest()}" in logs, logs
        report = s.nndb_swarm(expect=0)
        mine = by_name(report, s.prefix)
        assert {n: (e["state"], e["used_by"]) for n, e in mine.items()} == {
            s.name("db_password", 1): ("current", [s.service]),
            s.name("redis_password", 1): ("current", [s.service]),
        }

        # 3. rotation: new values, generation 2. v2 is created beside v1, which keeps its content
        s.state.log.clear()
        s.deploy(2, second)
        assert s.state.log == [f"create {s.name('db_password', 2)}", f"create {s.name('redis_password', 2)}"]
        assert s.secrets_on_manager() == {s.name(c, g) for c in ("db_password", "redis_password") for g in (1, 2)}
        set_role_password(second["AUTH_DB_PASSWORD"])
        assert s.mounted() == [(s.name("db_password", 1), "auth_db_password"), (s.name("redis_password", 1), "auth_redis_password")]
        refused = s.docker("secret", "rm", s.name("db_password", 1), check=False)
        assert refused.returncode != 0 and "in use" in refused.stderr, refused.stderr
        text = subprocess.run(
            [NNDB, "swarm", "secrets", STACK], cwd=s.root, env=s.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert text.returncode == SwarmError.exit_code, text.stderr
        assert f"problem: {s.service} still mounts {s.name('db_password', 1)}" in text.stdout, text.stdout
        assert text.stderr.strip().splitlines()[-1].startswith(f"nndb: error: {STACK}: Swarm hand-off incomplete"), text.stderr
        result = s.nndb_swarm(expect=SwarmError.exit_code)
        mine = by_name(result, s.prefix)
        assert mine[s.name("db_password", 1)]["state"] == "kept" and mine[s.name("db_password", 1)]["used_by"] == [s.service]
        assert mine[s.name("db_password", 2)]["state"] == "current" and mine[s.name("db_password", 2)]["used_by"] == []
        move = f"docker service update --secret-rm {s.name('db_password', 1)} --secret-add source={s.name('db_password', 2)},target=auth_db_password {s.service}"
        assert any(move in line for line in result["moves"]), result["moves"]

        # 4. the service moves to v2 (only the source changes; the file and its variable stay) and logs in with the new password
        s.docker(
            "service", "update", "--detach",
            "--secret-rm", s.name("db_password", 1), "--secret-add", f"source={s.name('db_password', 2)},target=auth_db_password",
            "--secret-rm", s.name("redis_password", 1), "--secret-add", f"source={s.name('redis_password', 2)},target=auth_redis_password",
            s.service,
        )  # fmt: skip
        task = s.wait_for_task(2)
        assert task["Status"]["ContainerStatus"]["ExitCode"] == 0, s.logs()
        logs = s.logs()
        assert logs.count(f"login ok as {role}") == 2, logs
        assert f"redis password file sha256 {hashlib.sha256(second['AUTH_REDIS_PASSWORD'].encode()).hexdigest()}" in logs, logs
        for value in (*first.values(), *second.values()):
            assert value not in logs, "a secret value reached the service's log"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host=postgres_server.host, port=postgres_server.port, user=role, password=first["AUTH_DB_PASSWORD"], dbname="postgres"
            )
        report = s.nndb_swarm(expect=0)
        assert by_name(report, s.prefix)[s.name("db_password", 1)] == {
            "name": s.name("db_password", 1), "service": "auth", "credential": "db_password", "generation": 1, "state": "kept", "used_by": [],
        }  # fmt: skip

        # 5. a value changed without a new generation: Terraform plans a replacement of the secret the service mounts; Docker refuses
        with pytest.raises(ApplyFailed, match=f"removing docker_secret {s.name('db_password', 2)}: .*in use"):
            s.deploy(2, second | {"AUTH_DB_PASSWORD": f"sw3-{secrets.token_hex(12)}"})

        # 6. generation 3 retires v1, which nothing uses any more; v2 stays (the service's), v3 is new
        s.state.log.clear()
        s.deploy(3, second)
        assert sorted(s.state.log) == sorted(
            [f"destroy {s.name(c, 1)}" for c in ("db_password", "redis_password")]
            + [f"create {s.name(c, 3)}" for c in ("db_password", "redis_password")]
        )
        assert s.secrets_on_manager() == {s.name(c, g) for c in ("db_password", "redis_password") for g in (2, 3)}
    finally:
        with postgres_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
