"""Reading `nndb --json` documents (docs/cli.md#json) in tests: the envelope checked, the result returned."""

from __future__ import annotations

import json
from typing import Any


def json_result(stdout: str, command: str, *, ok: bool = True) -> dict[str, Any]:
    """The ``result`` of the one document on stdout, after checking its schema (``nndb/<command>/1``) and ``ok``."""
    document = json.loads(stdout)
    assert document["schema"] == f"nndb/{command}/1", document.get("schema")
    assert document["ok"] is ok, document
    result = document["result"]
    assert isinstance(result, dict)
    return result
