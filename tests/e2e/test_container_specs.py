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

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.pki import Pki
from tests.support.realizer import PASSWORDS, STACK, Realized, container_log, docker, fail, realize_copy, scrape_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def realized(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine) -> Iterator[Realized]:
    yield from realize_copy(tmp_path_factory, "container-specs", "nndb-cs")


@pytest.fixture(scope="module")
def realized_tls(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine, tls_pki: Pki) -> Iterator[Realized]:
    yield from realize_copy(tmp_path_factory, "container-specs-tls", "nndb-cstls", tls=tls_pki)


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
        # healthy (wait_containers_healthy) with ssl = on: the wrapper's key copy is what the server reads
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
