"""What synth does to the files around ``cdk.tf.json``: private stack directories, private local
state, and the provider lock file of an offline machine. Called by ``synth_project`` only.

Why (docs/secrets.md, "Where secret values live"):

- ``cdktf deploy``/``diff`` save their plan as ``cdktf.out/stacks/<stack>/plan``, mode 0644, and a
  saved plan holds the secret values in clear. Each stack directory is made 0700, so nothing in it
  is readable by anyone but its owner, whatever mode Terraform gives the files inside.
- Local state (``terraform.<stack>.tfstate`` and Terraform's ``.backup`` of it) holds the secret
  values too. Terraform creates both with mode 0644 but keeps the mode of a file that exists, so
  synth creates them empty with mode 0600 (Terraform reads an empty state file as no state) and
  narrows an existing one.
- Provider locking (docs/deploy.md, "Providers"): cdktf runs ``terraform providers lock`` — which
  asks the public registry — whenever a stack directory has no ``.terraform.lock.hcl`` naming every
  provider it requires. With registry access that is Terraform's normal locking. On an offline
  machine the bootstrap records the lock file of its filesystem mirror and names it in
  ``NNDB_PROVIDER_LOCK_FILE``; synth puts it into every stack directory that lacks one, so cdktf
  skips the registry and ``terraform init`` checks the mirror's packages against it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from nexanest_db.config import EnvironmentConfig, LocalBackend
from nexanest_db.errors import ConfigError

LOCK_FILE_NAME = ".terraform.lock.hcl"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_LOCKED = re.compile(r'provider\s+"(?P<address>[^"]+)"\s*\{\s*version\s*=\s*"(?P<version>[^"]+)"')


def secure_stack_directory(stack_dir: Path) -> None:
    stack_dir.mkdir(parents=True, exist_ok=True)
    stack_dir.chmod(PRIVATE_DIR)


def local_state_files(stack_dir: Path, config: EnvironmentConfig) -> tuple[Path, ...]:
    """The state file of a local backend and Terraform's backup of it (none for a cloud backend)."""
    if not isinstance(config.backend, LocalBackend):
        return ()
    state = Path(os.path.normpath(stack_dir / config.backend.path))
    return (state, state.with_name(state.name + ".backup"))


def secure_local_state(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                if stat.S_IMODE(path.stat().st_mode) & 0o077:
                    path.chmod(PRIVATE_FILE)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
                os.close(fd)
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot make the local state file private ({exc.strerror}); fix its directory's permissions"
            ) from None


def locked_providers(lock_text: str) -> dict[str, str]:
    """``{"kreuzwerker/docker": "3.6.2", ...}`` from a ``.terraform.lock.hcl`` (registry host left out:
    terraform writes registry.terraform.io, tofu registry.opentofu.org)."""
    return {_short(m["address"]): m["version"] for m in _LOCKED.finditer(lock_text)}


def _short(address: str) -> str:
    return "/".join(address.split("/")[-2:])


def place_provider_lock(stack_dir: Path, lock_file: Path, required: dict[str, str]) -> None:
    """Copy ``lock_file`` into ``stack_dir`` unless the stack already has a lock naming ``required`` (namespace/type -> version)."""
    target = stack_dir / LOCK_FILE_NAME
    if target.is_file() and _covers(locked_providers(target.read_text(encoding="utf-8")), required):
        return
    try:
        text = lock_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"NNDB_PROVIDER_LOCK_FILE={lock_file}: cannot read it ({exc.strerror}); run scripts/bootstrap.sh again") from None
    if not _covers(locked_providers(text), required):
        missing = ", ".join(f"{a} {v}" for a, v in sorted(required.items()) if locked_providers(text).get(a) != v)
        raise ConfigError(f"NNDB_PROVIDER_LOCK_FILE={lock_file}: does not lock {missing}; run scripts/bootstrap.sh again")
    shutil.copyfile(lock_file, target)


def _covers(locked: dict[str, str], required: dict[str, str]) -> bool:
    return all(locked.get(address) == version for address, version in required.items())


def required_providers(document: dict) -> dict[str, str]:
    """namespace/type -> exact version of every provider a synthesized ``cdk.tf.json`` requires."""
    required = document.get("terraform", {}).get("required_providers", {})
    result = {}
    for spec in required.values():
        source = spec["source"]
        result[_short(source if "/" in source else f"hashicorp/{source}")] = spec["version"]
    return result
