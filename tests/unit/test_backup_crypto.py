"""nexanest_db.backup_crypto: the encrypted backup file format, without any server."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from pathlib import Path

import pytest

from nexanest_db.backup_crypto import (
    HEADER_SIZE,
    HKDF_INFO,
    MAGIC,
    TAG_SIZE,
    BackupKey,
    Encryptor,
    decrypt_stream,
    encrypt_stream,
    read_header,
)
from nexanest_db.backups import PgTarget, _restore_decrypted, dump_encrypted
from nexanest_db.config import HostPort
from nexanest_db.errors import AuthenticationError, BackupError, DecryptionError, KeyMismatchError, NotEncryptedError

KEY = BackupKey("SENTINEL-backup-key-5d1e0a7c9b", location="$BACKUP_ENCRYPTION_KEY")
OTHER = BackupKey("SENTINEL-other-key-88c2f01d4e", location="$BACKUP_ENCRYPTION_KEY")
CHUNK = 64  # small chunks so every boundary case is cheap


def encrypt(plaintext: bytes, key: BackupKey = KEY, chunk_size: int = CHUNK) -> bytes:
    sink = io.BytesIO()
    assert encrypt_stream(io.BytesIO(plaintext), sink, key, chunk_size=chunk_size) == len(plaintext)
    return sink.getvalue()


def decrypt(ciphertext: bytes, key: BackupKey = KEY) -> bytes:
    sink = io.BytesIO()
    decrypt_stream(io.BytesIO(ciphertext), sink, key)
    return sink.getvalue()


def failure(ciphertext: bytes, key: BackupKey = KEY) -> DecryptionError:
    with pytest.raises(DecryptionError) as caught:
        decrypt(ciphertext, key)
    message = str(caught.value)
    assert "\n" not in message and "SENTINEL" not in message, message
    return caught.value


def chunk_offsets(ciphertext: bytes, chunk_size: int = CHUNK) -> list[tuple[int, int]]:
    """(start, end) of every sealed chunk in the file."""
    sealed, offsets, start = chunk_size + TAG_SIZE, [], HEADER_SIZE
    while start < len(ciphertext):
        offsets.append((start, min(start + sealed, len(ciphertext))))
        start += sealed
    return offsets


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17])
def test_round_trip_across_chunk_boundaries(size: int) -> None:
    plaintext = os.urandom(size)
    ciphertext = encrypt(plaintext)
    assert decrypt(ciphertext) == plaintext
    # Full chunks, then one shorter final chunk (empty when the size is a multiple of the chunk size).
    assert len(ciphertext) == HEADER_SIZE + (size // CHUNK + 1) * TAG_SIZE + size
    assert ciphertext.startswith(MAGIC)


def test_empty_input_is_a_header_and_one_authenticated_empty_chunk() -> None:
    ciphertext = encrypt(b"")
    assert len(ciphertext) == HEADER_SIZE + TAG_SIZE
    assert decrypt(ciphertext) == b""
    assert isinstance(failure(ciphertext[:HEADER_SIZE]), AuthenticationError)  # the final chunk is missing


def test_writes_of_any_size_give_the_same_plaintext_back() -> None:
    plaintext = os.urandom(1000)
    sink = io.BytesIO()
    with Encryptor(sink, KEY, chunk_size=CHUNK) as encryptor:
        for start in range(0, len(plaintext), 7):  # many writes smaller than a chunk, crossing boundaries
            encryptor.write(plaintext[start : start + 7])
    assert decrypt(sink.getvalue()) == plaintext


def test_default_chunk_size_round_trip() -> None:
    plaintext = os.urandom((1 << 20) * 2 + 5)
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(plaintext), sink, KEY)
    assert read_header(io.BytesIO(sink.getvalue())).chunk_size == 1 << 20
    assert decrypt(sink.getvalue()) == plaintext


def test_no_cleartext_and_a_fresh_salt_per_file() -> None:
    plaintext = b"NNDB-CLEARTEXT-CANARY " * 50
    first, second = encrypt(plaintext), encrypt(plaintext)
    assert b"CANARY" not in first and KEY.secret.encode() not in first
    assert first != second
    one, two = read_header(io.BytesIO(first)), read_header(io.BytesIO(second))
    assert one.salt != two.salt and one.nonce_prefix != two.nonce_prefix
    assert one.key_id == two.key_id == KEY.key_id


def test_key_id_is_the_documented_hmac_and_reveals_no_key() -> None:
    expected = hmac.new(KEY.secret.encode(), b"nndb-backup-key-id", hashlib.sha256).hexdigest()[:16]
    assert KEY.key_id == expected and len(KEY.key_id) == 16
    assert KEY.key_id != OTHER.key_id
    assert "SENTINEL" not in repr(KEY)
    assert HKDF_INFO.startswith(b"nexanest-db backup")


def test_wrong_key_is_named_as_such() -> None:
    error = failure(encrypt(b"data" * 100), OTHER)
    assert isinstance(error, KeyMismatchError)
    assert str(error) == f"encrypted with a different key (key id {KEY.key_id}; the current key's id is {OTHER.key_id})"


def test_same_key_id_but_another_key_fails_authentication() -> None:
    # A key-id collision (or an edited key id) must still not decrypt: the tag check is the real test.
    impostor = BackupKey("SENTINEL-impostor-key-0000000")
    ciphertext = bytearray(encrypt(b"data" * 100))
    ciphertext[9 + 4 : 9 + 4 + 8] = bytes.fromhex(impostor.key_id)
    error = failure(bytes(ciphertext), impostor)
    assert isinstance(error, AuthenticationError) and str(error) == "authentication failed at chunk 0"


@pytest.mark.parametrize("chunk", [0, 1, 3])
def test_a_flipped_byte_fails_at_its_chunk(chunk: int) -> None:
    ciphertext = bytearray(encrypt(os.urandom(3 * CHUNK + 10)))
    start, end = chunk_offsets(bytes(ciphertext))[chunk]
    ciphertext[(start + end) // 2] ^= 0x01
    error = failure(bytes(ciphertext))
    assert isinstance(error, AuthenticationError) and error.chunk == chunk
    assert str(error) == f"authentication failed at chunk {chunk}"


@pytest.mark.parametrize("offset", [9, 9 + 2, HEADER_SIZE - 1])  # chunk size, salt... every header field is authenticated
def test_an_edited_header_fails(offset: int) -> None:
    ciphertext = bytearray(encrypt(os.urandom(2 * CHUNK)))
    ciphertext[offset] ^= 0x01
    assert isinstance(failure(bytes(ciphertext)), DecryptionError)


def test_truncation_inside_a_chunk_and_at_a_chunk_boundary() -> None:
    ciphertext = encrypt(os.urandom(3 * CHUNK + 10))
    offsets = chunk_offsets(ciphertext)
    # Cut in the middle of chunk 1: what is left of it cannot pass for the final chunk.
    error = failure(ciphertext[: (offsets[1][0] + offsets[1][1]) // 2])
    assert isinstance(error, AuthenticationError) and error.chunk == 1
    # Cut exactly after chunk 2: every remaining chunk is intact, but none is marked final.
    error = failure(ciphertext[: offsets[2][1]])
    assert isinstance(error, AuthenticationError) and str(error) == "authentication failed at chunk 3 (file truncated)"
    # Drop only the final chunk's tag bytes.
    assert isinstance(failure(ciphertext[:-1]), AuthenticationError)
    # Inside the header.
    assert str(failure(ciphertext[: HEADER_SIZE - 3])) == "authentication failed at chunk 0 (file ends inside the header)"


def test_truncation_when_the_size_is_a_multiple_of_the_chunk_size() -> None:
    ciphertext = encrypt(os.urandom(2 * CHUNK))
    assert len(ciphertext) == HEADER_SIZE + 2 * (CHUNK + TAG_SIZE) + TAG_SIZE
    error = failure(ciphertext[:-TAG_SIZE])  # the empty final chunk removed: two valid non-final chunks remain
    assert isinstance(error, AuthenticationError) and error.chunk == 2


def test_reordered_and_duplicated_chunks_fail() -> None:
    ciphertext = encrypt(os.urandom(3 * CHUNK + 10))
    (a0, a1), (b0, b1), *_ = chunk_offsets(ciphertext)
    swapped = ciphertext[:a0] + ciphertext[b0:b1] + ciphertext[a0:a1] + ciphertext[b1:]
    error = failure(swapped)
    assert isinstance(error, AuthenticationError) and error.chunk == 0
    duplicated = ciphertext[:b1] + ciphertext[b0:b1] + ciphertext[b1:]
    error = failure(duplicated)
    assert isinstance(error, AuthenticationError) and error.chunk == 2


def test_appended_data_fails() -> None:
    ciphertext = encrypt(os.urandom(CHUNK + 10))
    assert isinstance(failure(ciphertext + b"\x00"), AuthenticationError)
    assert isinstance(failure(ciphertext + encrypt(b"more")[HEADER_SIZE:]), AuthenticationError)


def test_chunks_of_another_file_with_the_same_key_do_not_fit() -> None:
    one, two = encrypt(os.urandom(2 * CHUNK + 5)), encrypt(os.urandom(2 * CHUNK + 5))
    spliced = one[:HEADER_SIZE] + two[HEADER_SIZE:]
    assert str(failure(spliced)) == "authentication failed at chunk 0"


def test_a_cleartext_dump_is_not_mistaken_for_an_encrypted_one() -> None:
    error = failure(b"PGDMP\x01\x0e\x00" + os.urandom(100))
    assert isinstance(error, NotEncryptedError)
    assert isinstance(failure(b""), NotEncryptedError)


def test_a_future_format_version_is_refused() -> None:
    ciphertext = bytearray(encrypt(b"x"))
    ciphertext[len(MAGIC)] = 2
    error = failure(bytes(ciphertext))
    assert isinstance(error, NotEncryptedError) and "version 2 is not supported" in str(error)


def test_short_reads_from_a_pipe_are_fine() -> None:
    class Trickle(io.RawIOBase):
        """A pipe that hands out at most 5 bytes per read."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self._data.read(min(5, size) if size >= 0 else 5)

    plaintext = os.urandom(3 * CHUNK + 1)
    sink = io.BytesIO()
    decrypt_stream(Trickle(encrypt(plaintext)), sink, KEY)  # type: ignore[arg-type]
    assert sink.getvalue() == plaintext


def test_an_empty_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        BackupKey("")


# --- the pipes around pg_dump / pg_restore (nexanest_db.backups), with stand-in programs -------------


def stand_in_target() -> PgTarget:
    return PgTarget(endpoint=HostPort(host="127.0.0.1", port=1), user="nobody", password="SENTINEL-pw-0f3e", connect_timeout_s=1)


def test_a_dump_streams_into_an_encrypted_file_with_its_checksum(tmp_path: Path) -> None:
    path = tmp_path / "x.dump.enc"
    script = "head -c 3000000 /dev/zero | tr '\\0' 'A'"  # 3 MB of one letter: any cleartext would show
    digest, size = dump_encrypted(["sh", "-c", script], stand_in_target().env(), path, KEY, "pg_dump of postgres/x")
    data = path.read_bytes()
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert b"AAAA" not in data and (path.stat().st_mode & 0o777) == 0o600
    assert decrypt(data) == b"A" * 3_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dump.enc"]


def test_a_failing_dump_leaves_no_file_and_says_why_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.dump.enc"
    script = "printf partial-archive; echo 'pg_dump: error: connection to server failed' >&2; exit 1"
    with pytest.raises(BackupError) as caught:
        dump_encrypted(["sh", "-c", script], stand_in_target().env(), path, KEY, "pg_dump of postgres/x")
    assert str(caught.value) == "pg_dump of postgres/x: pg_dump: error: connection to server failed"
    assert list(tmp_path.iterdir()) == []


def test_a_restore_reads_the_decrypted_archive_on_stdin(tmp_path: Path) -> None:
    path, received = tmp_path / "x.dump.enc", tmp_path / "received"
    plaintext = os.urandom(3 * CHUNK + 5)
    path.write_bytes(encrypt(plaintext))
    _restore_decrypted(["sh", "-c", f"exec cat > {received}"], stand_in_target(), path, KEY, "restore of x", "x: backup file")
    assert received.read_bytes() == plaintext  # (a stand-in; pg_restore keeps it in memory)


def test_a_restore_stops_at_the_first_bad_chunk(tmp_path: Path) -> None:
    path = tmp_path / "x.dump.enc"
    ciphertext = bytearray(encrypt(os.urandom(3 * CHUNK + 5)))
    ciphertext[chunk_offsets(bytes(ciphertext))[2][0] + 3] ^= 0x10
    path.write_bytes(bytes(ciphertext))
    with pytest.raises(BackupError) as caught:
        _restore_decrypted(["sh", "-c", "exec cat > /dev/null"], stand_in_target(), path, KEY, "restore of x", f"x: backup file {path}")
    assert str(caught.value) == f"x: backup file {path}: authentication failed at chunk 2"


def test_a_failing_restore_says_why_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.dump.enc"
    path.write_bytes(encrypt(os.urandom(10 * CHUNK)))
    script = "head -c 10 > /dev/null; echo 'pg_restore: error: input file is too short' >&2; exit 1"
    with pytest.raises(BackupError) as caught:
        _restore_decrypted(["sh", "-c", script], stand_in_target(), path, KEY, "restore of x", "x: backup file")
    assert str(caught.value) == "restore of x: pg_restore: error: input file is too short"
