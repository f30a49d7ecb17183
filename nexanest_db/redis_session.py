"""The Redis connection of a run: the default user, bounded timeouts, one-line errors."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexanest_db.config import HostPort
from nexanest_db.errors import ConnectionFailed


def connect_redis(*, endpoint: HostPort, password: str, secret_hint: str, timeout_s: float) -> redis.Redis:
    """A client authenticated as ``default`` that has answered PING."""
    where = f"redis at {endpoint.host}:{endpoint.port}"
    client = redis.Redis(
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
        reason = "connection refused" if "refused" in str(exc).lower() else str(exc).splitlines()[0]
        raise ConnectionFailed(
            f"{where}: {reason}; is the server up and published on that port? (check REDIS_HOST/REDIS_PORT or DB_HOST)"
        ) from None
    return client
