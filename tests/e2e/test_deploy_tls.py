"""`cdktf deploy local-db` with ``[tls] enabled = true``: the TLS-only servers come up and the hooks run over TLS.

A copy of the project with TLS on and the certificates of the ``tls_pki`` fixture (a throwaway CA; the
server certificate names 127.0.0.1) in the secrets: the deploy waits for the databases (Redis answers
only on its TLS port), the hooks connect with ``verify-full`` against the CA, plain clients are refused,
no file others can read holds a key or password, and the destroy leaves nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.fixtures.pki import Pki
from tests.fixtures.toolchain import Toolchain
from tests.support.deploy import DeployedCopy

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, tls_pki: Pki) -> Iterator[DeployedCopy]:
    deployed = DeployedCopy.create(
        tmp_path_factory.mktemp("e2e-tls") / "project",
        toolchain,
        label="local-db with TLS e2e",
        extra_toml="\n[tls]\nenabled = true\n",
        extra_env=tls_pki.environ,
    )
    deployed.passwords.update({name: value for name, value in tls_pki.environ.items() if name.endswith("_KEY")})
    try:
        yield deployed
    finally:
        deployed.teardown()


def test_tls_deploy_hooks_over_tls_and_plain_clients_refused(tls: DeployedCopy, tls_pki: Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(tls_pki.ca_cert)
    output = tls.cdktf("deploy with TLS", "deploy").output
    assert re.search(r"ready local-db: .*redis 127\.0\.0\.1:\d+", output)
    assert re.search(r"hooks: [1-9]\d* changes? in ", output), output[-3000:]
    verified = {"sslmode": "verify-full", "sslrootcert": str(ca)}
    for instance, secret in (("postgres", "POSTGRES_PASSWORD"), ("timescale", "TIMESCALE_PASSWORD")):
        with tls.connect(instance, "nexanest", tls.passwords[secret], "postgres", **verified) as conn:
            assert conn.pgconn.ssl_in_use and conn.execute("show ssl").fetchone() == ("on",)
        with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
            tls.connect(instance, "nexanest", tls.passwords[secret], "postgres", sslmode="disable")
    # what the hooks created over TLS works over TLS
    with tls.connect("postgres", "auth_app", tls.passwords["AUTH_DB_PASSWORD"], "auth", **verified) as conn:
        conn.execute("insert into auth.users (email, password_hash) values ('tls@nexanest.test', 'x')")
    tls_kwargs = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    auth = redis.Redis(
        host="127.0.0.1", port=tls.ports["redis"], username="auth", password=tls.passwords["AUTH_REDIS_PASSWORD"], **tls_kwargs
    )
    assert auth.set("auth:tls", "1") and auth.get("auth:tls") == b"1"
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(host="127.0.0.1", port=tls.ports["redis"], password=tls.passwords["REDIS_PASSWORD"], socket_timeout=5).ping()
    # the exporters verify the servers against the uploaded CA, under the tier aliases the certificate names
    tls.scrape("postgres-exporter", "pg_up 1")
    tls.scrape("timescale-exporter", "pg_up 1")
    tls.scrape("redis-exporter", "redis_up 1")
    assert tls.leaks() == []
    assert "No changes." in tls.cdktf("redeploy with TLS (no-op)", "deploy").output
    tls.cdktf("destroy", "destroy")
    assert tls.names_on_engine() == {"containers": "", "volumes": "", "networks": ""}
