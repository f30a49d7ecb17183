"""The real thing: `cdktf deploy local-db` onto a Docker engine, hooks, redeploy, change, destroy.

One scenario, in order, against a copy of the project whose names and published ports are made
unique (so a developer's own local-db on the same engine is never touched). Each phase's wall
time is recorded and printed in the test summary.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.servers import free_port
from tests.fixtures.toolchain import Toolchain
from tests.support.project import REPO_ROOT, copy_project

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]
TIMINGS_FILE = REPO_ROOT / "benchmarks" / "out" / "e2e-timings.txt"  # scripts/test.sh prints it

# One distinct password per credential the stack has (nexanest_db.secrets.SECRET_SPECS).
PASSWORDS = {spec.env_var: f"e2e-{spec.name}-pw" for spec in SECRET_SPECS}


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=120).stdout.strip()


class Deployment:
    def __init__(self, root: Path, toolchain: Toolchain, prefix: str, ports: dict[str, int]) -> None:
        self.root = root
        self.toolchain = toolchain
        self.prefix = prefix
        self.ports = ports
        self.env = {
            **toolchain.environ,
            **PASSWORDS,
            "POSTGRES_HOST": "127.0.0.1",
            "TIMESCALE_HOST": "127.0.0.1",
            "REDIS_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(ports["postgres"]),
            "TIMESCALE_PORT": str(ports["timescale"]),
            "REDIS_PORT": str(ports["redis"]),
        }
        self.timings: dict[str, float] = {}

    def cdktf(self, phase: str, *args: str) -> str:
        start = time.perf_counter()
        result = self.toolchain.run(
            [str(self.toolchain.cdktf), *args, "local-db", "--auto-approve"], cwd=self.root, env=self.env, timeout=1200
        )
        self.timings[phase] = time.perf_counter() - start
        return result.stdout + result.stderr

    def nndb(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.toolchain.run(["nndb", *args], cwd=self.root, env=self.env, timeout=300)

    def container_ids(self) -> dict[str, str]:
        return {name: docker("inspect", "--format", "{{.Id}}", f"{self.prefix}-{name}") for name in ("postgres", "timescale", "redis")}

    def health(self, name: str) -> str:
        return docker("inspect", "--format", "{{.State.Health.Status}}", f"{self.prefix}-{name}")

    def connect(self, instance: str, user: str, password: str, dbname: str) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.ports[instance], user=user, password=password, dbname=dbname, connect_timeout=10)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain) -> Iterator[Deployment]:
    root = copy_project(tmp_path_factory.mktemp("e2e") / "project")
    prefix = f"nndb-e2e-{uuid.uuid4().hex[:8]}"
    config = root / "config" / "local.toml"
    text = config.read_text()
    text = text.replace('name_prefix = "nexanest-local"', f'name_prefix = "{prefix}"')
    text = text.replace('name = "nexanest-db-local"', f'name = "{prefix}-net"')
    config.write_text(text)
    ports = {"postgres": free_port(), "timescale": free_port(), "redis": free_port()}
    deployed = Deployment(root, toolchain, prefix, ports)
    yield deployed
    # Whatever happened, leave nothing behind on the engine.
    for name in ("postgres", "timescale", "redis"):
        subprocess.run(["docker", "rm", "-f", "-v", f"{prefix}-{name}"], capture_output=True, timeout=120)
    subprocess.run(["docker", "network", "rm", f"{prefix}-net"], capture_output=True, timeout=60)
    for name in ("postgres", "timescale", "redis"):
        subprocess.run(["docker", "volume", "rm", "-f", f"{prefix}-{name}-data"], capture_output=True, timeout=60)
    summary = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in deployed.timings.items())
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with TIMINGS_FILE.open("a") as timings:
        timings.write(f"local-db e2e phases: {summary}\n")


def test_deploy_local_db_end_to_end(deployment: Deployment) -> None:
    # 1. first deploy: containers healthy, hooks applied by the same command
    output = deployment.cdktf("deploy", "deploy")
    assert all(deployment.health(name) == "healthy" for name in ("postgres", "timescale", "redis"))
    assert re.search(r"hooks: \d+ changes?", output), "the post-apply hooks did not report from inside cdktf deploy"
    first_ids = deployment.container_ids()

    with (
        deployment.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("create schema intruder")
    with deployment.connect("postgres", "nexanest", PASSWORDS["POSTGRES_PASSWORD"], "auth") as conn:
        applied = conn.execute("select count(*) from nndb.schema_migrations where service = 'auth' and version > 0").fetchone()
        assert applied is not None and applied[0] >= 1
    with pytest.raises(psycopg.OperationalError):
        deployment.connect("postgres", "portfolio_app", PASSWORDS["AUTH_DB_PASSWORD"], "portfolio")
    with deployment.connect("timescale", "analytics_app", PASSWORDS["ANALYTICS_DB_PASSWORD"], "analytics") as conn:
        assert conn.execute("select count(*) from information_schema.tables where table_schema = 'analytics'").fetchone()[0] >= 1

    cache = redis.Redis(host="127.0.0.1", port=deployment.ports["redis"], username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"])
    cache.set("auth:e2e", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.set("portfolio:e2e", "1")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=deployment.ports["redis"]).ping()

    catalog = json.loads(deployment.nndb("backup", "list", "local-db", "--json").stdout)
    assert sorted(catalog["databases"]) == ["postgres/auth", "postgres/portfolio", "timescale/analytics"]
    assert catalog["backups"] and all(record["verified"] for record in catalog["backups"])

    with deployment.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("insert into auth.users (email, password_hash) values ('e2e@nexanest.test', 'x')")

    # 2. deploy again: nothing to change, hooks have nothing to do
    output = deployment.cdktf("redeploy (no-op)", "deploy")
    assert "No changes." in output or "0 to add, 0 to change, 0 to destroy" in output
    assert deployment.container_ids() == first_ids
    assert "0 changes" in deployment.nndb("hooks", "run", "local-db").stdout

    # 3. change one postgres.conf setting: only the postgres container is replaced, data stays
    config = deployment.root / "config" / "local.toml"
    config.write_text(config.read_text().replace("log_min_duration_statement = 1000", "log_min_duration_statement = 250"))
    deployment.cdktf("deploy after config change", "deploy")
    after = deployment.container_ids()
    assert after["postgres"] != first_ids["postgres"]
    assert {k: v for k, v in after.items() if k != "postgres"} == {k: v for k, v in first_ids.items() if k != "postgres"}
    with deployment.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        assert conn.execute("show log_min_duration_statement").fetchone()[0] == "250ms"
        assert conn.execute("select count(*) from auth.users where email = 'e2e@nexanest.test'").fetchone()[0] == 1

    # 4. destroy: no container and no network left; local data volumes go with the stack
    deployment.cdktf("destroy", "destroy")
    names = docker("ps", "-a", "--filter", f"name={deployment.prefix}", "--format", "{{.Names}}")
    assert names == ""
    assert docker("network", "ls", "--filter", f"name={deployment.prefix}", "--format", "{{.Name}}") == ""
    assert docker("volume", "ls", "--filter", f"name={deployment.prefix}", "--format", "{{.Name}}") == ""
