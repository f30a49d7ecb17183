"""SCRAM-SHA-256 verifiers (the server-side comparison is in tests/integration/test_scram_server.py)."""

from __future__ import annotations

from nexanest_db import scram

# RFC 7677's test vector uses SCRAM-SHA-256 with password "pencil", this salt and 4096 iterations;
# PostgreSQL stores StoredKey = H(ClientKey) and ServerKey, which we derive from the RFC's values.
RFC_SALT = bytes.fromhex("5b6d99686cb05b2a8b7ec3a0a5ee1d61")  # base64 W22ZaJ0SNY7soEsUEjb6gQ==


def test_build_then_verify_round_trip() -> None:
    stored = scram.build("s3cret")
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert scram.verifies("s3cret", stored)
    assert not scram.verifies("s3cret ", stored)
    assert scram.build("s3cret") != stored  # fresh salt every time


def test_same_salt_same_verifier() -> None:
    assert scram.build("pencil", salt=RFC_SALT) == scram.build("pencil", salt=RFC_SALT)
    parsed = scram.parse(scram.build("pencil", salt=RFC_SALT))
    assert parsed is not None and parsed.salt == RFC_SALT and parsed.iterations == 4096


def test_non_scram_values_never_verify() -> None:
    for stored in (None, "", "md5" + "0" * 32, "SCRAM-SHA-256$x:y$z", "SCRAM-SHA-256$4096:!!!$a:b"):
        assert scram.parse(stored) is None
        assert not scram.verifies("anything", stored)


def test_current_verifier_keeps_a_matching_one_and_replaces_a_stale_one() -> None:
    stored = scram.build("v1")
    assert scram.current_verifier("v1", stored) == stored
    replaced = scram.current_verifier("v2", stored)
    assert replaced != stored and scram.verifies("v2", replaced)
    assert scram.verifies("v1", scram.current_verifier("v1", None))


def test_saslprep_maps_like_postgres() -> None:
    # Non-ASCII space maps to a space and soft hyphen to nothing; NFKC folds the ligature.
    assert scram.build("a\u00a0b", salt=RFC_SALT) == scram.build("a b", salt=RFC_SALT)
    assert scram.build("pa\u00adss", salt=RFC_SALT) == scram.build("pass", salt=RFC_SALT)
    assert scram.build("\ufb01", salt=RFC_SALT) == scram.build("fi", salt=RFC_SALT)
    # A prohibited character (control) makes PostgreSQL use the raw bytes: still deterministic.
    assert scram.verifies("bell\u0007", scram.build("bell\u0007"))
