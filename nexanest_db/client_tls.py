"""How nndb's own clients (hooks, migrate, backups) use TLS when the environment enables it.

The CA bundle comes from the ``tls_ca_cert`` secret (PEM). libpq wants a file, so the PEM is
written once per run to a private temp file (0600, in a 0700 directory) that is removed when the
run closes its context, and at interpreter exit at the latest. Connections then use
``sslmode = tls.client_sslmode`` (default ``verify-full``: the endpoint host name must be in the
server certificate's SANs, e.g. ``pgdb.nn.local``) and ``sslrootcert = <that file>``; pg_dump and
pg_restore get the same through ``PGSSLMODE``/``PGSSLROOTCERT``. The Redis client (redis-py) uses the
same file: ``ssl_ca_certs``, a required certificate, and host name checking exactly for ``verify-full``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexanest_db.secrets.catalogue import CA_SECRET  # noqa: F401 -- re-exported: the steps and the context import it from here


@dataclass(frozen=True, kw_only=True)
class ClientTls:
    """``sslmode`` and the CA file every connection of the run uses."""

    sslmode: str
    rootcert: Path

    def connect_kwargs(self) -> dict[str, str]:
        return {"sslmode": self.sslmode, "sslrootcert": str(self.rootcert)}

    def redis_kwargs(self) -> dict[str, Any]:
        """redis-py's TLS arguments: always verify the chain; check the host name only for ``verify-full``."""
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.rootcert),
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": self.sslmode == "verify-full",
        }

    def env(self) -> dict[str, str]:
        return {"PGSSLMODE": self.sslmode, "PGSSLROOTCERT": str(self.rootcert)}


class CaFile:
    """The CA PEM in a private temp file for one run; ``remove`` (or interpreter exit) deletes it."""

    def __init__(self, pem: str) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="nndb-tls-"))  # mkdtemp: 0700
        self.path = self._directory / "ca.pem"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(pem if pem.endswith("\n") else pem + "\n")
        atexit.register(self.remove)

    def remove(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)
