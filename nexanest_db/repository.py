"""The backup repository off the database host: ``<path>/<stack>/`` on a backup host, over ssh.

``[backup.repository] url = "ssh://user@host/path"`` (docs/backups.md#repository). The repository
holds the one catalog of each stack (``catalog.json``, ``schedule.json``) and its encrypted dumps;
every operator machine and the scheduler read and write the same one. What nndb runs on the
operator's machine is unchanged: it works in its local backup directory, which is then a *cache*
bound to the repository (``.repository.json`` there names it):

- a writer (``catalog_lock``) holds the repository's lock — ``flock`` on the backup host, held by
  an ssh session for as long as the run lasts, so a killed run or a dropped connection releases it
  — pulls the catalog, works, then pushes: new dumps first (each written to a ``.partial`` name,
  its sha256 checked on the backup host, then renamed), then the catalog (atomic rename), then
  removes the dumps the catalog no longer names; the local copies of dumps are dropped afterwards;
- a reader (``Catalog.load`` outside a lock) pulls the catalog; a dump is fetched (and its sha256
  checked) only when a verification, restore or export needs its bytes.

Needs ``ssh`` here and a POSIX shell with ``flock``, ``sha256sum`` and ``mv`` on the backup host
(Debian's util-linux and coreutils). The ssh identity comes from the operator's ssh config or agent
(``ssh_opts`` may add ``-F <file>``): no key or password is in the config, argv or the state. The
files are the backup user's, mode 0600 in 0700 directories (``umask 077`` on the backup host).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from nexanest_db.config import BackupRepository
from nexanest_db.errors import BackupError

BINDING = ".repository.json"
METADATA = ("catalog.json", "schedule.json")
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")
_MISSING = 44  # the remote file does not exist
_MISMATCH = 42  # the uploaded bytes' sha256 differs on the backup host
_KEEPALIVE = ("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "BatchMode=yes")
_BLOCK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class SshRepository:
    """One stack's directory in the repository on the backup host."""

    url: str
    user: str
    host: str
    port: int | None
    path: str
    stack: str
    ssh_opts: tuple[str, ...] = ()
    lock_timeout_s: float = 900.0

    @classmethod
    def of(cls, repository: BackupRepository, stack: str) -> SshRepository:
        return cls(
            url=repository.url,
            user=repository.user,
            host=repository.host,
            port=repository.port,
            path=repository.path,
            stack=stack,
            ssh_opts=tuple(repository.ssh_opts),
            lock_timeout_s=repository.lock_timeout_s,
        )

    @property
    def where(self) -> str:
        return f"{self.url.rstrip('/')}/{self.stack}"

    @property
    def stack_dir(self) -> str:
        return f"{self.path.rstrip('/')}/{self.stack}"

    def remote(self, relative: str) -> str:
        if not _SAFE_FILE.match(relative) or ".." in relative.split("/"):
            raise BackupError(f"{self.where}: {relative!r} is not a file name inside the repository; the catalog was tampered with")
        return f"{self.stack_dir}/{relative}"

    def argv(self, command: str) -> list[str]:
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *self.ssh_opts, *_KEEPALIVE, *port, "-l", self.user, self.host, "--", command]

    def _fail(self, what: str, result: subprocess.CompletedProcess[bytes] | None, returncode: int) -> BackupError:
        stderr = result.stderr.decode("utf-8", "replace") if result is not None and result.stderr else ""
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("Warning: Permanently added")]
        reason = lines[0].strip() if lines else f"exit code {returncode}"
        hint = (
            "check that the backup host is reachable with your ssh identity (`ssh "
            + shlex.join([*self.ssh_opts, *(["-p", str(self.port)] if self.port else []), f"{self.user}@{self.host}", "true"])
            + "`)"
            if returncode == 255
            else "check the repository directory on the backup host (space, permissions)"
        )
        return BackupError(f"backup repository {self.where}: {what}: {reason}; {hint}")

    def run(self, command: str, what: str, *, data: bytes | None = None, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
        try:
            result = subprocess.run(self.argv(command), input=data, capture_output=True, timeout=300, check=False)
        except FileNotFoundError:
            raise BackupError(f"backup repository {self.where}: ssh is not installed here (apt-get install -y openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise BackupError(f"backup repository {self.where}: {what}: no answer within 300s; check the backup host") from None
        if result.returncode not in ok:
            raise self._fail(what, result, result.returncode)
        return result

    # --- files ----------------------------------------------------------------------------------

    def read(self, relative: str) -> bytes | None:
        path = shlex.quote(self.remote(relative))
        result = self.run(f"if test -f {path}; then exec cat {path}; else exit {_MISSING}; fi", f"cannot read {relative}", ok=(0, _MISSING))
        return None if result.returncode == _MISSING else result.stdout

    def _write_command(self, relative: str, sha256: str) -> str:
        final = self.remote(relative)
        directory, name = final.rsplit("/", 1)
        partial = shlex.quote(f"{directory}/.{name}.partial")
        return (
            f"umask 077 && mkdir -p {shlex.quote(directory)} && cat > {partial} && "
            f'test "$(sha256sum < {partial} | cut -c1-64)" = {sha256} && mv -f {partial} {shlex.quote(final)} '
            f"|| {{ rm -f {partial}; exit {_MISMATCH}; }}"
        )

    def write(self, relative: str, data: bytes) -> None:
        """``data`` into ``relative`` atomically (a reader sees the old file or the new one, whole)."""
        self.run(self._write_command(relative, hashlib.sha256(data).hexdigest()), f"cannot write {relative}", data=data)

    def upload(self, local: Path, relative: str, sha256: str) -> None:
        """Stream ``local`` to ``relative``; it appears under its name only once its sha256 matched there."""
        what = f"cannot upload {relative}"
        try:
            with local.open("rb") as source:
                result = subprocess.run(self.argv(self._write_command(relative, sha256)), stdin=source, capture_output=True, check=False)
        except FileNotFoundError as exc:
            if exc.filename == "ssh":
                raise BackupError(
                    f"backup repository {self.where}: ssh is not installed here (apt-get install -y openssh-client)"
                ) from None
            raise BackupError(f"backup repository {self.where}: {what}: the local file {local} is missing") from None
        if result.returncode == _MISMATCH:
            raise BackupError(f"backup repository {self.where}: {what}: the copy on the backup host does not match (disk full?); run again")
        if result.returncode != 0:
            raise self._fail(what, result, result.returncode)

    def download(self, relative: str, local: Path, sha256: str) -> None:
        """Fetch ``relative`` into ``local`` (0600), checked against ``sha256``; nothing is left behind on failure."""
        partial = local.with_name(f".{local.name}.partial")
        path = shlex.quote(self.remote(relative))
        what = f"cannot fetch {relative}"
        local.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as sink:
                process = subprocess.Popen(
                    self.argv(f"if test -f {path}; then exec cat {path}; else exit {_MISSING}; fi"),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                assert process.stdout is not None
                for block in iter(lambda: process.stdout.read(_BLOCK), b""):  # type: ignore[union-attr]
                    digest.update(block)
                    sink.write(block)
                _, stderr = process.communicate()
            if process.returncode == _MISSING:
                raise BackupError(f"backup repository {self.where}: {relative} is missing there; run `nndb backup run {self.stack}`")
            if process.returncode != 0:
                raise self._fail(what, subprocess.CompletedProcess([], process.returncode, b"", stderr), process.returncode)
            if digest.hexdigest() != sha256:
                raise BackupError(f"backup repository {self.where}: {relative} does not match its recorded checksum; run `nndb backup run`")
            os.replace(partial, local)
        except FileNotFoundError:
            raise BackupError(f"backup repository {self.where}: ssh is not installed here (apt-get install -y openssh-client)") from None
        finally:
            partial.unlink(missing_ok=True)

    def remove(self, relatives: list[str]) -> None:
        if relatives:
            paths = " ".join(shlex.quote(self.remote(r)) for r in relatives)
            self.run(f"rm -f -- {paths}", "cannot remove pruned dumps")

    def remove_partials(self) -> None:
        """Uploads a killed run left half-written (only ever called with the lock held)."""
        directory = shlex.quote(self.stack_dir)
        self.run(f"if test -d {directory}; then find {directory} -name '.*.partial' -type f -delete; fi", "cannot remove partial uploads")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The stack's repository lock: ``flock`` on the backup host, held while this ssh session lives."""
        directory = shlex.quote(self.stack_dir)
        lock = shlex.quote(f"{self.stack_dir}/.lock")
        command = (
            f"umask 077 && mkdir -p {directory} && exec flock -w {self.lock_timeout_s:g} {lock} sh -c 'echo locked && exec cat >/dev/null'"
        )
        try:
            process = subprocess.Popen(self.argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise BackupError(f"backup repository {self.where}: ssh is not installed here (apt-get install -y openssh-client)") from None
        assert process.stdin is not None and process.stdout is not None
        if process.stdout.readline().strip() != b"locked":
            _, stderr = process.communicate(timeout=60)  # closes stdin
            if process.returncode == 1 and not stderr.strip():
                raise BackupError(
                    f"backup repository {self.where}: another nndb run held the lock for {self.lock_timeout_s:g}s "
                    "(a scheduled run or another operator); wait for it and run again"
                )
            raise self._fail(
                "cannot take the repository lock", subprocess.CompletedProcess([], process.returncode, b"", stderr), process.returncode
            )
        try:
            yield
        finally:
            with suppress(OSError):
                process.stdin.close()  # EOF: the remote `cat` ends, flock releases the lock
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the local directory as a cache of the repository ------------------------------------------


def bind(directory: Path, repository: SshRepository | None) -> None:
    """Record (or forget) which repository ``directory`` caches: what the catalog code below consults."""
    binding = directory / BINDING
    if repository is None:
        with suppress(OSError):  # no directory (yet): nothing is bound; the backup code reports what is wrong with it
            binding.unlink(missing_ok=True)
        return
    payload = {
        "url": repository.url,
        "stack": repository.stack,
        "ssh_opts": list(repository.ssh_opts),
        "lock_timeout_s": repository.lock_timeout_s,
    }
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not binding.is_file() or binding.read_text(encoding="utf-8") != text:
            tmp = directory / f".{BINDING}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, binding)
    except OSError as exc:
        raise BackupError(f"{directory}: cannot write {BINDING} ({exc.strerror}); fix the backup directory's permissions") from None


def bound(directory: Path) -> SshRepository | None:
    """The repository ``directory`` caches, or None when the directory is the repository itself."""
    binding = directory / BINDING
    if not binding.is_file():
        return None
    try:
        raw = json.loads(binding.read_text(encoding="utf-8"))
        config = BackupRepository(url=raw["url"], ssh_opts=list(raw["ssh_opts"]), lock_timeout_s=float(raw["lock_timeout_s"]))
        return SshRepository.of(config, str(raw["stack"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise BackupError(f"{binding}: unreadable; delete it (the next nndb command rewrites it from the config)") from None


def _files(catalog_bytes: bytes | None) -> dict[str, str]:
    """file -> sha256 of every backup a catalog names."""
    if catalog_bytes is None:
        return {}
    try:
        backups = json.loads(catalog_bytes.decode("utf-8")).get("backups", [])
        return {str(b["file"]): str(b["sha256"]) for b in backups}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}  # Catalog.load reports what is wrong with it, naming the file


def pull(directory: Path, repository: SshRepository) -> dict[str, str]:
    """Copy the repository's catalog and schedule record into ``directory``; return the files its catalog names."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for name in METADATA:
        data = repository.read(name)
        local = directory / name
        if data is None:
            local.unlink(missing_ok=True)
            continue
        tmp = directory / f".{name}.pulled"
        tmp.write_bytes(data)
        os.replace(tmp, local)
        if name == "catalog.json":
            files = _files(data)
    return files


def push(directory: Path, repository: SshRepository, before: dict[str, str]) -> None:
    """Send what changed since ``pull``: new dumps, then the catalog and schedule record, then remove what it no longer names."""
    local_catalog = directory / "catalog.json"
    after = _files(local_catalog.read_bytes()) if local_catalog.is_file() else before
    for file, sha256 in sorted(after.items()):
        if file not in before:
            repository.upload(directory / file, file, sha256)
    for name in METADATA:
        local = directory / name
        if local.is_file():
            repository.write(name, local.read_bytes())
    repository.remove(sorted(set(before) - set(after)))
    drop_local_dumps(directory)


def drop_local_dumps(directory: Path) -> None:
    """The cache keeps no dump: each lives in the repository (fetched again when needed)."""
    for path in directory.glob("*/*/*"):
        if path.is_file() and not path.is_symlink() and path.name.endswith((".dump.enc", ".dump", ".rdb.enc")) and path.parts[-3] != "pitr":
            path.unlink(missing_ok=True)
