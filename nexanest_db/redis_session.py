"""The Redis connection of a run: the default user, bounded timeouts, one-line errors."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexanest_db.client_tls import ClientTls
from nexanest_db.config import HostPort
from nexanest_db.errors import TLS_REQUIRED_HINT, ConnectionFailed, tls_not_signed, tls_wrong_name


def connect_redis(
    *,
    endpoint: HostPort,
    password: str,
    secret_hint: str,
    timeout_s: float,
    tls: ClientTls | None = None,
    tls_hint: str | None = None,
) -> redis.Redis:
    """A client authenticated as ``default`` that has answered PING (over TLS when ``tls`` is given)."""
    where = f"redis at {endpoint.host}:{endpoint.port}"
    client = redis.Redis(
        **(tls.redis_kwargs() if tls is not None else {}),
        host=endpoint.host,
        port=endpoint.port,
        username="default",
        password=password,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        decode_responses=True,
        # No retries: redis-py retries timeouts with backoff by default, which turns a bounded wait into minutes.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except redis.AuthenticationError:
        raise ConnectionFailed(f"{where}: the default user refused the password; check {secret_hint}") from None
    except redis.ResponseError as exc:
        if "WRONGPASS" in str(exc) or "NOAUTH" in str(exc):
            raise ConnectionFailed(f"{where}: the default user refused the password; check {secret_hint}") from None
        raise ConnectionFailed(f"{where}: {exc}") from None
    except redis.TimeoutError:
        raise ConnectionFailed(
            f"{where}: no answer within {timeout_s:g}s; check REDIS_HOST/REDIS_PORT (or DB_HOST) and that the server is up"
        ) from None
    except redis.ConnectionError as exc:
        text = str(exc)
        if tls is not None and "certificate verify failed" in text:
            if "mismatch" in text:  # OpenSSL: "Hostname mismatch" / "IP address mismatch"
                raise ConnectionFailed(tls_wrong_name(where, endpoint.host)) from None
            raise ConnectionFailed(tls_not_signed(where, tls_hint)) from None
        if tls is None and ("closed by server" in text.lower() or "reset by peer" in text.lower()):
            # A TLS-only server (port 0, tls-port) drops a plain client's first command.
            raise ConnectionFailed(f"{where}: the server dropped the plain connection; {TLS_REQUIRED_HINT}") from None
        reason = "connection refused" if "refused" in text.lower() else (text.splitlines() or ["connection failed"])[0]
        raise ConnectionFailed(
            f"{where}: {reason}; is the server up and published on that port? (check REDIS_HOST/REDIS_PORT or DB_HOST)"
        ) from None
    return client


def acl_user(client: redis.Redis, name: str) -> dict[str, object] | None:
    """``ACL GETUSER`` as a flat dict of strings/lists (raw reply: redis-py's acl_getuser() reshapes it per version)."""
    reply = client.execute_command("ACL", "GETUSER", name)
    if not reply:
        return None
    if isinstance(reply, list):  # RESP2 without a response callback: [key, value, key, value, ...]
        reply = dict(zip(reply[::2], reply[1::2], strict=True))
    return {str(k): v for k, v in reply.items()}
