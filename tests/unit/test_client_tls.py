"""Client side of TLS: the run's CA file, what libpq and pg_dump get, and the one-line TLS errors."""

from __future__ import annotations

import os
import stat

import psycopg

from nexanest_db.backups import PgTarget
from nexanest_db.client_tls import CaFile, ClientTls
from nexanest_db.config import HostPort
from nexanest_db.pg import describe_connect_error

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


def test_ca_file_is_private_and_removed() -> None:
    ca = CaFile(PEM)
    assert ca.path.read_text() == PEM + "\n"
    assert stat.S_IMODE(os.stat(ca.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ca.path.parent).st_mode) == 0o700
    ca.remove()
    assert not ca.path.exists() and not ca.path.parent.exists()
    ca.remove()  # idempotent (close, then atexit)


def test_client_tls_for_libpq_and_tools(tmp_path) -> None:
    tls = ClientTls(sslmode="verify-full", rootcert=tmp_path / "ca.pem")
    assert tls.connect_kwargs() == {"sslmode": "verify-full", "sslrootcert": str(tmp_path / "ca.pem")}
    target = PgTarget(endpoint=HostPort(host="h", port=1), user="u", password="SENTINEL-pw", connect_timeout_s=1, tls_env=tls.env())
    env = target.env()
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == str(tmp_path / "ca.pem")
    plain = PgTarget(endpoint=HostPort(host="h", port=1), user="u", password="SENTINEL-pw", connect_timeout_s=1).env()
    assert "PGSSLMODE" not in plain and "PGSSLROOTCERT" not in plain


def _describe(text: str, tls_hint: str | None) -> str:
    return describe_connect_error(
        psycopg.OperationalError(text),
        instance="postgres",
        endpoint=HostPort(host="pgdb.nn.local", port=5432),
        user="nexanest",
        secret_hint="$POSTGRES_PASSWORD",
        timeout_s=10,
        tls_hint=tls_hint,
    )


def test_tls_errors_are_one_clear_line() -> None:
    failed = 'connection to server at "pgdb.nn.local" (10.0.0.1), port 5432 failed: SSL error: certificate verify failed'
    assert _describe(failed, "$TLS_CA_CERT") == (
        "postgres at pgdb.nn.local:5432: TLS certificate verification failed; the server certificate is not signed "
        "by the CA bundle in $TLS_CA_CERT (check that bundle and the server's certificate)"
    )
    mismatch = 'server certificate for "db.example" does not match host name "pgdb.nn.local"'
    assert "does not name pgdb.nn.local" in _describe(mismatch, "$TLS_CA_CERT")
    hba = 'FATAL:  pg_hba.conf rejects connection for host "10.0.0.2", user "nexanest", database "postgres", no encryption'
    assert _describe(hba, None) == (
        "postgres at pgdb.nn.local:5432: refused by the server's pg_hba.conf for user nexanest; "
        "if the server requires TLS, set [tls] enabled = true in the environment's config"
    )


def test_redis_kwargs_verify_the_chain_and_the_host_name_only_for_verify_full(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    full = ClientTls(sslmode="verify-full", rootcert=ca).redis_kwargs()
    assert full == {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    for mode in ("verify-ca", "require"):
        kwargs = ClientTls(sslmode=mode, rootcert=ca).redis_kwargs()
        assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is False
