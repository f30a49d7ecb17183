"""Apply a stack's synthesized ``docker_secret`` blocks to a real Swarm manager with the docker CLI, as Terraform would.

This is not a deploy (the kreuzwerker/docker provider deploys; CI has no provider binaries). It
evaluates the one expression the stacks generate for a secret's data,
``${base64encode(sensitive(data.external.<id>.result["<name>"]))}``, with the values of the stack's
own data source program, decodes it as the provider does (standard base64) and feeds the bytes to
``docker secret create <name> -`` on stdin: never a command line. Any other expression or field FAILS.

What Terraform does with the blocks of kreuzwerker/docker 3.6.2's ``docker_secret`` (name, data,
labels all ForceNew; Read never returns the data), ``SecretState`` replays across applies:

* a block not in state is created;
* a block in state whose data changed is replaced (``docker secret rm``, then create), unless its
  ``lifecycle.ignore_changes`` has ``data``: then it is left alone;
* a secret in state whose block is gone is destroyed.

Docker refuses to remove a secret a service uses; the apply then stops with Docker's message, as
Terraform's would (``ApplyFailed``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

SECRET_FIELDS = frozenset({"//", "name", "data", "labels", "provider", "lifecycle"})
DATA = re.compile(r'\$\{base64encode\(sensitive\(data\.external\.(?P<source>[A-Za-z0-9_-]+)\.result\["(?P<name>[a-z0-9_]+)"\]\)\)\}')


class ApplyFailed(AssertionError):
    """Docker refused a step of the apply (e.g. removing a secret a service still uses)."""


@dataclass
class Applied:
    id: str
    digest: str  # SHA-256 of the content it was created with (state keeps the data; this test keeps its digest)


@dataclass
class SecretState:
    """What Terraform's state would hold of the docker_secret resources: address -> the secret on the manager."""

    engine_host: str
    provider: str  # e.g. docker.swarm: only blocks of this provider are applied
    resources: dict[str, tuple[str, Applied]] = field(default_factory=dict)  # address -> (name, applied)
    log: list[str] = field(default_factory=list)  # "create <name>", "replace <name>", "destroy <name>"

    def docker(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", "-H", self.engine_host, *args], input=stdin, capture_output=True, timeout=60, check=False)

    def apply(self, document: dict[str, Any], results: dict[str, dict[str, str]]) -> None:
        """One apply of ``document``'s docker_secret blocks with the data sources' ``results``."""
        blocks = document.get("resource", {}).get("docker_secret", {})
        wanted: dict[str, tuple[dict[str, Any], bytes]] = {}
        for address, block in blocks.items():
            unknown = set(block) - SECRET_FIELDS
            if unknown:
                raise AssertionError(f"docker_secret.{address}: fields this test does not map: {sorted(unknown)}")
            if block.get("provider") != self.provider:
                raise AssertionError(f"docker_secret.{address}: provider {block.get('provider')!r}, expected {self.provider}")
            match = DATA.fullmatch(block["data"])
            if match is None:
                raise AssertionError(f"docker_secret.{address}: data is not a sensitive data-source reference: {block['data'][:120]!r}")
            value = results.get(match["source"], {}).get(match["name"])
            if value is None:
                raise AssertionError(f"docker_secret.{address}: data.external.{match['source']} gives no {match['name']!r}")
            # base64encode in Terraform, then the provider's base64.StdEncoding.DecodeString: the value's UTF-8 bytes.
            wanted[address] = (block, base64.b64decode(base64.b64encode(value.encode("utf-8"))))
        for address in sorted(set(self.resources) - set(wanted)):
            name, applied = self.resources[address]
            self._remove(name, applied)
            del self.resources[address]
            self.log.append(f"destroy {name}")
        for address, (block, content) in sorted(wanted.items()):
            digest = hashlib.sha256(content).hexdigest()
            action = "create"
            if address in self.resources:
                name, applied = self.resources[address]
                ignored = "data" in (block.get("lifecycle") or {}).get("ignore_changes", [])
                if name == block["name"] and (applied.digest == digest or ignored):
                    continue
                self._remove(name, applied)  # ForceNew: destroy, then create
                del self.resources[address]
                action = "replace"
            self.resources[address] = (block["name"], self._create(block, content, digest))
            self.log.append(f"{action} {block['name']}")

    def _create(self, block: dict[str, Any], content: bytes, digest: str) -> Applied:
        args = ["secret", "create"]
        for label in block.get("labels", []):
            args += ["--label", f"{label['label']}={label['value']}"]
        created = self.docker(*args, block["name"], "-", stdin=content)
        if created.returncode != 0:
            raise ApplyFailed(f"creating docker_secret {block['name']}: {created.stderr.decode(errors='replace').strip()}")
        return Applied(id=created.stdout.decode().strip(), digest=digest)

    def _remove(self, name: str, applied: Applied) -> None:
        removed = self.docker("secret", "rm", applied.id)
        if removed.returncode != 0:
            raise ApplyFailed(f"removing docker_secret {name}: {removed.stderr.decode(errors='replace').strip()}")

    def destroy_all(self) -> None:
        """Teardown: remove whatever this state created (best effort; the services using them must be gone first)."""
        for _address, (_name, applied) in sorted(self.resources.items()):
            self.docker("secret", "rm", applied.id)
        self.resources.clear()
