"""Backup files encrypted at rest (ADR-015): chunked AES-256-GCM, streamed, never a cleartext file.

File format, version 1 (all integers big-endian)::

    header (45 bytes)
      magic         8  b"NNDBENC\\n"
      version       1  1
      chunk size    4  plaintext bytes per chunk (default 1 MiB)
      key id        8  first 8 bytes of HMAC-SHA256(secret, b"nndb-backup-key-id")
      salt         16  random per file: HKDF salt
      nonce prefix  8  random per file
    chunk 0 .. n    ciphertext of the chunk's plaintext + 16-byte GCM tag

* File key: HKDF-SHA256(secret, salt, info=HKDF_INFO, 32 bytes): any high-entropy string works
  as the secret (minimum 16 characters outside local/dev: ``nexanest_db.secrets.BACKUP_KEY_MIN_LENGTH``).
* Chunk ``i``: nonce = nonce prefix || uint32(i); associated data = header || uint32(i) ||
  final flag (1 on the last chunk, else 0). Every chunk but the last holds exactly ``chunk size``
  plaintext bytes; the last holds fewer (0 when the input is empty or a multiple of the chunk
  size), so a reader knows the last chunk by its length and no chunk can pass for another:
  tampering, reordering, truncation (at a chunk boundary too), appended data and an edited
  header all fail authentication.
* The key id lets a reader say "encrypted with a different key" before trying to decrypt. It is
  an HMAC of the secret, not the secret: it reveals nothing a ciphertext does not already.

Decryption hands out a chunk's plaintext only after its tag checked out; the caller learns about a
missing tail only at the end, so consumers that must not act on a truncated stream (pg_restore)
abort on ``DecryptionError`` (``nexanest_db.errors``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nexanest_db.errors import AuthenticationError, KeyMismatchError, NotEncryptedError

MAGIC = b"NNDBENC\n"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
HKDF_INFO = b"nexanest-db backup file key v1 (AES-256-GCM)"
KEY_ID_MESSAGE = b"nndb-backup-key-id"
TAG_SIZE = 16
SALT_SIZE = 16
NONCE_PREFIX_SIZE = 8
_HEADER = struct.Struct(f">{len(MAGIC)}sBI8s{SALT_SIZE}s{NONCE_PREFIX_SIZE}s")
HEADER_SIZE = _HEADER.size
_MAX_CHUNKS = 1 << 32


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class BackupKey:
    """The backup encryption secret and where it came from (``location``: no value, for messages)."""

    secret: str = field(repr=False)
    location: str = "the backup encryption key"

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the backup encryption key is empty")

    @property
    def material(self) -> bytes:
        return self.secret.encode("utf-8")

    @property
    def key_id(self) -> str:
        """16 hex characters identifying the key (HMAC-SHA256(secret, "nndb-backup-key-id")), safe to record."""
        return hmac.new(self.material, KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Header:
    chunk_size: int
    key_id: str
    salt: bytes
    nonce_prefix: bytes
    version: int = FORMAT_VERSION

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, self.chunk_size, bytes.fromhex(self.key_id), self.salt, self.nonce_prefix)

    @classmethod
    def unpack(cls, raw: bytes) -> Header:
        if len(raw) < len(MAGIC) or raw[: len(MAGIC)] != MAGIC:
            raise NotEncryptedError("not an nndb encrypted backup (no encryption header)")
        if len(raw) < HEADER_SIZE:
            raise AuthenticationError(0, "file ends inside the header")
        _magic, version, chunk_size, key_id, salt, nonce_prefix = _HEADER.unpack(raw)
        if version != FORMAT_VERSION:
            raise NotEncryptedError(f"encryption format version {version} is not supported (this nndb reads version {FORMAT_VERSION})")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise AuthenticationError(0, f"implausible chunk size {chunk_size} in the header")
        return cls(chunk_size=chunk_size, key_id=key_id.hex(), salt=salt, nonce_prefix=nonce_prefix, version=version)


def _file_cipher(key: BackupKey, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=HKDF_INFO)
    return AESGCM(hkdf.derive(key.material))


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


class Encryptor:
    """A write-only binary stream: plaintext in, the encrypted file format out to ``sink``.

    ``close()`` writes the final chunk; without it the output is (detectably) truncated.
    """

    def __init__(self, sink: Writable, key: BackupKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        self._sink = sink
        self._chunk_size = chunk_size
        header = Header(chunk_size=chunk_size, key_id=key.key_id, salt=os.urandom(SALT_SIZE), nonce_prefix=os.urandom(NONCE_PREFIX_SIZE))
        self._header = header.pack()
        self._prefix = header.nonce_prefix
        self._cipher = _file_cipher(key, header.salt)
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        sink.write(self._header)

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed Encryptor")
        self._buffer += data
        while len(self._buffer) >= self._chunk_size:  # a full chunk is never the last one
            self._emit(bytes(self._buffer[: self._chunk_size]), final=False)
            del self._buffer[: self._chunk_size]
        return len(data)

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True

    def _emit(self, plaintext: bytes, *, final: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise ValueError("too many chunks for one file")
        self._sink.write(self._cipher.encrypt(_nonce(self._prefix, self._index), plaintext, _aad(self._header, self._index, final)))
        self._index += 1

    def __enter__(self) -> Encryptor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()


def _read_exact(source: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (pipes may return short reads)."""
    parts, remaining = [], size
    while remaining:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def read_header(source: BinaryIO) -> Header:
    return Header.unpack(_read_exact(source, HEADER_SIZE))


def decrypt_chunks(source: BinaryIO, key: BackupKey) -> Iterator[bytes]:
    """Authenticated plaintext chunks of ``source``; raises ``DecryptionError`` (never yields unauthenticated data)."""
    raw_header = _read_exact(source, HEADER_SIZE)
    header = Header.unpack(raw_header)
    if header.key_id != key.key_id:
        raise KeyMismatchError(header.key_id, key.key_id)
    cipher = _file_cipher(key, header.salt)
    sealed_size = header.chunk_size + TAG_SIZE
    index = 0
    while True:
        sealed = _read_exact(source, sealed_size)
        final = len(sealed) < sealed_size  # the last chunk is always shorter than a full one
        if final and len(sealed) < TAG_SIZE:
            raise AuthenticationError(index, "file truncated")
        try:
            plaintext = cipher.decrypt(_nonce(header.nonce_prefix, index), sealed, _aad(raw_header, index, final))
        except InvalidTag:
            raise AuthenticationError(index) from None
        yield plaintext
        if final:
            return
        index += 1
        if index >= _MAX_CHUNKS:
            raise AuthenticationError(index, "too many chunks")


def encrypt_stream(source: BinaryIO, sink: Writable, key: BackupKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Encrypt all of ``source`` into ``sink``; returns the plaintext size."""
    total = 0
    with Encryptor(sink, key, chunk_size=chunk_size) as encryptor:
        for block in iter(lambda: source.read(chunk_size), b""):
            encryptor.write(block)
            total += len(block)
    return total


def decrypt_stream(source: BinaryIO, sink: Writable | None, key: BackupKey) -> int:
    """Decrypt ``source`` into ``sink`` (``None``: authenticate only); returns the plaintext size."""
    total = 0
    for plaintext in decrypt_chunks(source, key):
        if sink is not None:
            sink.write(plaintext)
        total += len(plaintext)
    return total


def has_header(path: os.PathLike[str] | str) -> bool:
    """Whether the file at ``path`` starts with the encryption magic."""
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC
