"""The container definitions synthesized for local-db boot healthy on a real Docker engine with the
real images, and the post-apply hooks work against them.

This is NOT a deploy. The kreuzwerker/docker Terraform provider is what deploys (see
test_deploy_local_db.py, which needs the provider binaries and so runs only with
`scripts/test.sh --deploy`). This test, which CI runs, realizes the synthesized ``docker_network``, ``docker_volume`` and ``docker_container`` blocks of
``cdktf.out/stacks/local-db/cdk.tf.json`` with the docker CLI, field by field, to prove that the
generated configuration works on real containers: the rendered postgresql.conf / redis.conf, the
first-start SQL, the Redis ACL file, the health check commands, the env and the password files.
Secret values come from the stack's own ``data "external"`` program, run the way Terraform runs it.
Only the Terraform expressions the stacks generate today are evaluated; any other expression, and
any container field not mapped below, FAILS the test so a growing stack cannot be mis-realized
silently.

The copy's config points at the stand-in images (tests/support/standins.py). One scenario on a copy of the project whose names and published ports are unique (a developer's
own local-db on the same engine is never touched); teardown removes only what it created. A second,
smaller scenario enables ``[tls]`` in its copy (certificates from the ``tls_pki`` fixture): the
entrypoint wrapper installs the key, the servers (PostgreSQL, TimescaleDB and TLS-only Redis, whose
health check verifies it with the uploaded CA) start healthy, accept a verified client and refuse a
plain one, and the hooks (the Redis ACL step included) run over TLS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.servers import Pki, free_port
from tests.support.project import REPO_ROOT, copy_project
from tests.support.realize import (
    NETWORK_FIELDS,
    VOLUME_FIELDS,
    Terraform,
    base_environment,
    container_log,
    create_args,
    docker,
    fail,
    teardown,
    upload_tar,
)
from tests.support.standins import point_at_standins

pytestmark = pytest.mark.e2e
STACK = "local-db"
INSTANCES = ("postgres", "timescale", "redis")
EXPORTERS = tuple(f"{instance}-exporter" for instance in INSTANCES)  # container names after the prefix
TIMINGS_FILE = REPO_ROOT / "benchmarks" / "out" / "e2e-timings.txt"  # scripts/test.sh prints it

# One distinct password per credential the stack has (nexanest_db.secrets.SECRET_SPECS).
PASSWORDS = {spec.env_var: f"cs-{spec.name}-pw" for spec in SECRET_SPECS}


@dataclass
class Realized:
    root: Path
    prefix: str
    ports: dict[str, int]
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance -> evaluated block
    config: dict[str, Any] = field(default_factory=dict)

    def name(self, instance: str) -> str:
        return f"{self.prefix}-{instance}"

    def superuser(self, instance: str) -> str:
        env = dict(entry.split("=", 1) for entry in self.containers[instance].get("env", []))
        return env["POSTGRES_USER"]

    def connect(self, instance: str, user: str, password: str, dbname: str, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.ports[instance],
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=10,
            autocommit=True,
            **kwargs,
        )

    def redis(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports["redis"], socket_timeout=10, decode_responses=True, **kwargs)

    def nndb(self, phase: str | None, *args: str) -> str:
        start = time.perf_counter()
        result = subprocess.run(["nndb", *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        if phase:
            self.timings[phase] = time.perf_counter() - start
        output = result.stdout + result.stderr
        if result.returncode != 0:
            fail(f"nndb {' '.join(args)} exited {result.returncode}:\n{output[-3000:]}")
        return output


def scrape_until(state: Realized, exporter: str, sample: str, timeout_s: float = 45) -> str:
    """GET /metrics of ``exporter`` (published port) until a line equals ``sample`` (e.g. ``pg_up 1``); fail with what it said."""
    import requests

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            response = requests.get(f"http://127.0.0.1:{state.ports[exporter]}/metrics", timeout=10)
            lines = response.text.splitlines()
            if response.status_code == 200 and sample in lines:
                return response.text
            name = sample.split()[0]
            last = f"HTTP {response.status_code}: {[line for line in lines if line.startswith(name + ' ')] or 'no ' + name}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}"
        if time.monotonic() > deadline:
            fail(f"{exporter}: /metrics never had {sample!r} within {timeout_s:.0f} s ({last})\n{container_log(state.name(exporter))}")
        time.sleep(1)


def wait_healthy(realized: Realized, started: dict[str, float], timeouts: dict[str, int]) -> None:
    """Poll until every container is healthy, each bounded by the config's deploy_wait_timeout_s; fail on exit/unhealthy."""
    pending = set(INSTANCES)
    while pending:
        for instance in sorted(pending):
            name = realized.name(instance)
            state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                pending.discard(instance)
                continue
            probes = [entry.get("Output", "").strip() for entry in (state.get("Health") or {}).get("Log", [])[-2:]]
            if state.get("Status") != "running" or health == "unhealthy":
                fail(f"{name} is {state.get('Status')}/{health} (exit {state.get('ExitCode')}); probes: {probes}\n{container_log(name)}")
            if time.monotonic() - started[instance] > timeouts[instance]:
                fail(
                    f"{name} not healthy within deploy_wait_timeout_s {timeouts[instance]} s (status {health}); probes: {probes}\n{container_log(name)}"
                )
        if pending:
            time.sleep(1)


@pytest.fixture(scope="module")
def realized(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine) -> Iterator[Realized]:
    yield from realize_copy(tmp_path_factory, "container-specs", "nndb-cs")


@pytest.fixture(scope="module")
def realized_tls(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine, tls_pki: Pki) -> Iterator[Realized]:
    yield from realize_copy(tmp_path_factory, "container-specs-tls", "nndb-cstls", tls=tls_pki)


def realize_copy(
    tmp_path_factory: pytest.TempPathFactory, directory: str, prefix_base: str, *, tls: Pki | None = None
) -> Iterator[Realized]:
    """Synthesize local-db in a renamed project copy (``tls``: with ``[tls] enabled = true``), realize it, tear it down."""
    root = copy_project(tmp_path_factory.mktemp(directory) / "project")
    prefix = f"{prefix_base}-{uuid.uuid4().hex[:8]}"
    config_file = root / "config" / "local.toml"
    # The stand-in images (tests/images/tags.txt), never the shipped config's official names.
    text = point_at_standins(config_file.read_text())
    if tls is not None:
        text += "\n[tls]\nenabled = true\n"
    for old, new in (
        ('name_prefix = "nexanest-local"', f'name_prefix = "{prefix}"'),
        ('name = "nexanest-db-local"', f'name = "{prefix}-net"'),
    ):
        assert old in text, f"config/local.toml no longer contains {old!r}: update this test's renaming"
        text = text.replace(old, new)
    config_file.write_text(text)
    ports = {name: free_port() for name in (*INSTANCES, *EXPORTERS)}
    env = {**base_environment(), **PASSWORDS, **(tls.environ if tls is not None else {})}
    for instance in INSTANCES:
        env[f"{instance.upper()}_HOST"] = "127.0.0.1"
        env[f"{instance.upper()}_PORT"] = str(ports[instance])
        env[f"{instance.upper()}_EXPORTER_PORT"] = str(ports[f"{instance}-exporter"])
    state = Realized(root=root, prefix=prefix, ports=ports, env=env, config=tomllib.loads(text))
    try:
        realize(state)
        yield state
    finally:
        teardown(prefix)
        summary = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in state.timings.items())
        TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
        with TIMINGS_FILE.open("a") as timings:
            label = "local-db container specs with TLS" if tls is not None else "local-db container specs"
            timings.write(f"{label} (docker CLI, not a deploy) phases: {summary}\n")


def realize(state: Realized) -> None:
    # 1. synth, as `python main.py` in the copy
    start = time.perf_counter()
    synth = subprocess.run([sys.executable, "main.py"], cwd=state.root, env=state.env, capture_output=True, text=True, timeout=300)
    state.timings["synth"] = time.perf_counter() - start
    if synth.returncode != 0:
        fail(f"python main.py exited {synth.returncode}:\n{(synth.stdout + synth.stderr)[-3000:]}")
    stack_dir = state.root / "cdktf.out" / "stacks" / STACK
    document = json.loads((stack_dir / "cdk.tf.json").read_text())

    # 2. secrets: the data.external program with its query on stdin, from the stack dir (as Terraform runs it)
    secrets: dict[str, dict[str, str]] = {}
    for source_id, source in document.get("data", {}).get("external", {}).items():
        result = subprocess.run(
            source["program"],
            input=json.dumps(source.get("query", {})),
            cwd=stack_dir,
            env=state.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            fail(f"data.external.{source_id} program {source['program']} exited {result.returncode}: {result.stderr.strip()}")
        values = json.loads(result.stdout)
        assert all(isinstance(v, str) for v in values.values()), "data.external results must be a map of strings"
        secrets[source_id] = values
    terraform = Terraform(document=document, secrets=secrets)

    # 3. evaluate every block; names must carry this run's prefix so nothing else on the engine is touched
    networks = {i: terraform.evaluate(b, f"docker_network.{i}") for i, b in terraform.resources("docker_network").items()}
    volumes = {i: terraform.evaluate(b, f"docker_volume.{i}") for i, b in terraform.resources("docker_volume").items()}
    for kind, blocks, allowed in (
        ("docker_network", terraform.resources("docker_network"), NETWORK_FIELDS),
        ("docker_volume", terraform.resources("docker_volume"), VOLUME_FIELDS),
    ):
        for block_id, block in blocks.items():
            if set(block) - allowed:
                fail(f"{kind}.{block_id}: fields this test does not map: {sorted(set(block) - allowed)}")
    containers: dict[str, dict[str, Any]] = {}
    for block_id, block in terraform.resources("docker_container").items():
        evaluated = terraform.evaluate(block, f"docker_container.{block_id}")
        instance = evaluated["name"].removeprefix(f"{state.prefix}-")
        assert instance in (*INSTANCES, *EXPORTERS), f"docker_container.{block_id} is named {evaluated['name']!r}, not <prefix>-<instance>"
        containers[instance] = evaluated
    assert sorted(containers) == sorted((*INSTANCES, *EXPORTERS))
    for name in [*(n["name"] for n in networks.values()), *(v["name"] for v in volumes.values())]:
        assert name.startswith(state.prefix), f"{name} does not carry the unique prefix {state.prefix}"
    for instance, block in containers.items():
        assert [p["external"] for p in block["ports"]] == [state.ports[instance]], (
            f"{instance}: the *_PORT override did not reach the stack"
        )
    state.containers = containers

    # 4. realize with the docker CLI: network, volumes, containers, uploads; start all, then wait
    start = time.perf_counter()
    for block in networks.values():
        args = ["network", "create", "--driver", block.get("driver", "bridge")]
        if block.get("internal"):
            args.append("--internal")
        for label in block.get("labels", []):
            args += ["--label", f"{label['label']}={label['value']}"]
        docker(*args, block["name"])
    for block in volumes.values():
        args = ["volume", "create"]
        for label in block.get("labels", []):
            args += ["--label", f"{label['label']}={label['value']}"]
        docker(*args, block["name"])
    for instance in (*INSTANCES, *EXPORTERS):
        block = containers[instance]
        where = f"docker_container ({instance})"
        docker(*create_args(block, where))
        if block.get("upload"):
            docker("cp", "-", f"{block['name']}:/", stdin=upload_tar(block["upload"], where))
    started: dict[str, float] = {}
    for instance in (*INSTANCES, *EXPORTERS):
        docker("start", containers[instance]["name"])
        started[instance] = time.monotonic()
    state.timings["create+start"] = time.perf_counter() - start

    start = time.perf_counter()
    wait_healthy(state, started, {i: int(state.config["healthcheck"]["deploy_wait_timeout_s"]) for i in INSTANCES})
    state.timings["healthy"] = time.perf_counter() - start


def test_synthesized_containers_boot_healthy_and_take_the_hooks(realized: Realized) -> None:
    state = realized
    pg_super = {"postgres": PASSWORDS["POSTGRES_PASSWORD"], "timescale": PASSWORDS["TIMESCALE_PASSWORD"]}

    # 5a. postgresql.conf is the server's config file, with config/local.toml's settings
    for instance in ("postgres", "timescale"):
        user = state.superuser(instance)
        with state.connect(instance, user, pg_super[instance], "postgres") as conn:
            assert conn.execute("SHOW config_file").fetchone()[0] == "/etc/postgresql/postgresql.conf"
            for key, value in state.config[instance]["settings"].items():
                setting, unit = conn.execute("SELECT setting, unit FROM pg_settings WHERE name = %s", (key,)).fetchone()
                shown = conn.execute(f"SHOW {key}").fetchone()[0]
                expected = str(value)
                assert expected in (setting, shown), f"{instance}: {key} is {shown} (setting {setting} {unit}), config says {value}"
        # 5b. the superuser password from the uploaded file works; a wrong one does not
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            state.connect(instance, user, "not-the-password", "postgres")
        # 5c. the first-start script ran: a non-superuser cannot connect to the maintenance database
        probe = f"cs_probe_{uuid.uuid4().hex[:8]}"
        with state.connect(instance, user, pg_super[instance], "postgres") as conn:
            conn.execute(f"CREATE ROLE {probe} LOGIN PASSWORD 'probe-pw'")
        try:
            with pytest.raises(psycopg.OperationalError, match='permission denied for database "postgres"'):
                state.connect(instance, probe, "probe-pw", "postgres")
        finally:
            with state.connect(instance, user, pg_super[instance], "postgres") as conn:
                conn.execute(f"DROP ROLE {probe}")

    # 5d. redis: the default user needs the password from the uploaded ACL file
    with pytest.raises(redis.exceptions.AuthenticationError):
        state.redis().ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        state.redis(password="not-the-password").ping()
    assert state.redis(password=PASSWORDS["REDIS_PASSWORD"]).ping()
    assert state.redis(password=PASSWORDS["REDIS_PASSWORD"]).config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    # ... and the service users are in that file too: a new container serves them before any hook has run
    early = state.redis(username="portfolio", password=PASSWORDS["PORTFOLIO_REDIS_PASSWORD"])
    early.set("portfolio:before-hooks", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        early.set("auth:before-hooks", "1")

    # 5e. the exporters: Redis's user is in the uploaded ACL file, so its exporter logs in at once; the
    # PostgreSQL monitoring role comes from the hooks, so until they run the exporters see pg_up 0.
    scrape_until(state, "redis-exporter", "redis_up 1")
    for instance in ("postgres", "timescale"):
        scrape_until(state, f"{instance}-exporter", "pg_up 0")

    # 6a. the real post-apply hooks, then what they promise
    output = state.nndb("hooks first run", "hooks", "run", STACK)
    assert re.search(r"^hooks: [1-9]\d* changes? in ", output, re.MULTILINE), output
    with state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("INSERT INTO auth.users (email, password_hash) VALUES ('cs@nexanest.test', 'x')")
        assert conn.execute("SELECT count(*) FROM auth.users WHERE email = 'cs@nexanest.test'").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match='permission denied for database "portfolio"'):
        state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "portfolio")
    with state.connect("timescale", "analytics_app", PASSWORDS["ANALYTICS_DB_PASSWORD"], "analytics") as conn:
        conn.execute("INSERT INTO analytics.price_ticks (time, symbol, price) VALUES (now(), 'ACME', 1)")
    auth = state.redis(username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"])
    auth.set("auth:cs", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.set("portfolio:cs", "1")

    # 6a'. the monitoring step created the exporters' login: pg_up 1 as nndb_monitor, a pg_monitor member
    assert "created monitoring role nndb_monitor" in output, output
    for instance in ("postgres", "timescale"):
        text = scrape_until(state, f"{instance}-exporter", "pg_up 1")
        assert any(line.startswith(("pg_settings_max_connections ", "pg_settings_max_connections{")) for line in text.splitlines())
    with state.redis(password=PASSWORDS["REDIS_PASSWORD"]) as admin:
        refused = [entry for entry in admin.acl_log() if entry.get("username") == "nndb_monitor"]
    assert refused == [], f"the exporter ran commands its ACL refuses: {refused}"

    # 6b. idempotent: a second run has nothing to do; the backup the hooks registered restores
    output = state.nndb("hooks second run", "hooks", "run", STACK)
    assert re.search(r"^hooks: 0 changes \(up to date\)", output, re.MULTILINE), output
    state.nndb("backup verify", "backup", "verify", STACK)

    # 6c. ACL SAVE persisted the service users to the ACL file on the data volume: they survive a restart
    start = time.perf_counter()
    redis_name = state.name("redis")
    docker("restart", redis_name)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert state.redis(username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"]).get("auth:cs") == "1"
            break
        except redis.exceptions.AuthenticationError:
            raise  # a subclass of ConnectionError in redis-py, and a real failure here
        except redis.exceptions.ConnectionError as exc:  # not listening yet
            if time.monotonic() > deadline:
                fail(f"{redis_name} not answering 30 s after docker restart: {exc}\n{container_log(redis_name)}")
            time.sleep(0.5)
    state.timings["redis restart"] = time.perf_counter() - start
    with pytest.raises(redis.exceptions.AuthenticationError):
        state.redis().ping()


def test_tls_containers_start_with_the_wrapper_and_refuse_plain_clients(realized_tls: Realized, tls_pki: Pki, tmp_path: Path) -> None:
    state = realized_tls
    pg_super = {"postgres": PASSWORDS["POSTGRES_PASSWORD"], "timescale": PASSWORDS["TIMESCALE_PASSWORD"]}
    ca = tmp_path / "ca.pem"
    ca.write_text(tls_pki.ca_cert)
    for instance in ("postgres", "timescale"):
        assert state.containers[instance]["entrypoint"][:2] == ["/bin/sh", "-c"]
        user = state.superuser(instance)
        # healthy (wait_healthy) with ssl = on: the wrapper's key copy is what the server reads
        with state.connect(instance, user, pg_super[instance], "postgres", sslmode="verify-full", sslrootcert=str(ca)) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SHOW ssl").fetchone() == ("on",)
            assert conn.execute("SHOW ssl_key_file").fetchone() == ("/run/secrets/tls/server-postgres.key",)
            assert conn.execute("SHOW hba_file").fetchone() == ("/etc/postgresql/pg_hba.conf",)
        key = docker("exec", state.name(instance), "stat", "-c", "%U %a", "/run/secrets/tls/server-postgres.key").stdout.decode().split()
        assert key == ["postgres", "600"]
        # a plain (non-TLS) client is refused by pg_hba.conf: the published port is not loopback inside the container
        with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
            state.connect(instance, user, pg_super[instance], "postgres", sslmode="disable")
    # the hooks connect with verify-full against the CA from TLS_CA_CERT
    output = state.nndb("hooks over TLS", "hooks", "run", STACK)
    assert re.search(r"^hooks: [1-9]\d* changes? in ", output, re.MULTILINE), output
    with state.connect("postgres", "auth_app", PASSWORDS["AUTH_DB_PASSWORD"], "auth", sslmode="verify-full", sslrootcert=str(ca)) as conn:
        assert conn.pgconn.ssl_in_use
    # Redis: healthy (its health check is redis-cli --tls --cacert), TLS only, the hooks' ACL users work over TLS
    assert state.containers["redis"]["entrypoint"][:2] == ["/bin/sh", "-c"]
    key = docker("exec", state.name("redis"), "stat", "-c", "%U %a", "/run/secrets/tls/server-redis.key").stdout.decode().split()
    assert key == ["redis", "600"]
    tls_kwargs = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    assert state.redis(password=PASSWORDS["REDIS_PASSWORD"], **tls_kwargs).config_get("port") == {"port": "0"}
    with pytest.raises(redis.exceptions.ConnectionError):
        state.redis(password=PASSWORDS["REDIS_PASSWORD"]).ping()
    auth = state.redis(username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"], **tls_kwargs)
    assert auth.set("auth:tls", "1") and auth.get("auth:tls") == "1"
    # the exporters verify the servers (verify-full / rediss:// against the uploaded CA, under the tier aliases)
    for instance in ("postgres", "timescale"):
        scrape_until(state, f"{instance}-exporter", "pg_up 1")
    scrape_until(state, "redis-exporter", "redis_up 1")
