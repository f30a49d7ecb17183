"""SCRAM-SHA-256 verifiers as PostgreSQL stores them in ``pg_authid.rolpassword``.

Format: ``SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`` (RFC 5802/7677).

Why client-side: ``ALTER ROLE ... PASSWORD 'plaintext'`` puts the password into the statement,
which the server logs under ``log_statement = all``; sending a verifier computed here keeps the
plaintext on this machine. ``verifies`` lets a run tell "already the current password" from
"needs rotating" without changing anything (idempotent rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass

PREFIX = "SCRAM-SHA-256"
DEFAULT_ITERATIONS = 4096  # PostgreSQL 15's fixed iteration count
SALT_BYTES = 16  # PostgreSQL's SCRAM_DEFAULT_SALT_LEN


@dataclass(frozen=True, kw_only=True)
class ScramVerifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __str__(self) -> str:
        b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
        return f"{PREFIX}${self.iterations}:{b64(self.salt)}${b64(self.stored_key)}:{b64(self.server_key)}"


def parse(stored: str | None) -> ScramVerifier | None:
    """The verifier in ``stored``, or None for NULL, md5 or anything malformed."""
    if not stored or not stored.startswith(PREFIX + "$"):
        return None
    try:
        _, params, keys = stored.split("$")
        iterations, salt = params.split(":")
        stored_key, server_key = keys.split(":")
        return ScramVerifier(
            iterations=int(iterations),
            salt=base64.b64decode(salt, validate=True),
            stored_key=base64.b64decode(stored_key, validate=True),
            server_key=base64.b64decode(server_key, validate=True),
        )
    except ValueError:
        return None


def _saslprep(password: str) -> bytes:
    """RFC 4013 SASLprep as PostgreSQL applies it; like PostgreSQL, fall back to the raw bytes when it fails."""
    raw = password.encode("utf-8")
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in password if not stringprep.in_table_b1(ch))
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return raw
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if any(check(ch) for ch in normalized for check in prohibited):
        return raw
    has_randal = any(stringprep.in_table_d1(ch) for ch in normalized)
    if has_randal and (
        any(stringprep.in_table_d2(ch) for ch in normalized)
        or not stringprep.in_table_d1(normalized[0])
        or not stringprep.in_table_d1(normalized[-1])
    ):
        return raw
    return normalized.encode("utf-8")


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def build(password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS) -> str:
    """A new verifier for ``password`` (random salt unless given)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    stored_key, server_key = _keys(password, salt, iterations)
    return str(ScramVerifier(iterations=iterations, salt=salt, stored_key=stored_key, server_key=server_key))


def verifies(password: str, stored: str | None) -> bool:
    """True when ``stored`` is a SCRAM verifier of exactly ``password``."""
    verifier = parse(stored)
    if verifier is None:
        return False
    stored_key, server_key = _keys(password, verifier.salt, verifier.iterations)
    return hmac.compare_digest(stored_key, verifier.stored_key) and hmac.compare_digest(server_key, verifier.server_key)


def current_verifier(password: str, stored: str | None) -> str:
    """The verifier to keep for ``password``: ``stored`` itself when it already verifies, else a fresh one.

    A step can then compare it with ``pg_authid.rolpassword``: equal means nothing to change.
    """
    return stored if stored and verifies(password, stored) else build(password)
