"""An ``nndb upgrade --apply-command`` for the real engine without the Terraform providers (CI has none).

``python -m tests.support.upgrade_apply <stack>``, run by ``nndb upgrade`` in a project copy, does
what ``cdktf deploy`` does for an image change, with the realizer of tests/support/realizer.py:

1. synth (``python main.py``) and evaluate the stack's ``docker_container`` blocks, secrets from its
   own ``data "external"`` program, exactly as the container-specs test realizes them;
2. every container whose image on the engine is not the synthesized one is replaced the way the
   provider replaces it: stopped (its stop timeout), removed *without* its volumes, created from the
   synthesized block on the same named data volume, its files uploaded, started;
3. if one was replaced (the post-apply resource's triggers changed), ``nndb wait-ready <stack>`` and
   ``nndb hooks run <stack>``, the post-apply provisioners, in that order.

It exits non-zero with one line when a step fails (``nndb: error: ...`` from wait-ready, as a deploy
would end), so the upgrade's rollback path is the one a real deploy takes. The real-provider variant
is tests/e2e/test_upgrade_deploy.py (needs_providers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.realizer import Terraform, create_args, upload_tar


def _docker(*args: str, stdin: bytes | None = None, timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout, check=False)


def _checked(*args: str, stdin: bytes | None = None, timeout: float = 180) -> None:
    result = _docker(*args, stdin=stdin, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:2])} ...: {result.stderr.decode(errors='replace').strip()}")


def evaluated_containers(root: Path, stack: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Synth the project at ``root`` and evaluate its container blocks (name -> block), as the realizer does."""
    synth = subprocess.run([sys.executable, "main.py"], cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    if synth.returncode != 0:
        raise SystemExit(f"python main.py exited {synth.returncode}: {(synth.stdout + synth.stderr).strip().splitlines()[-1:]}")
    stack_dir = root / "cdktf.out" / "stacks" / stack
    document = json.loads((stack_dir / "cdk.tf.json").read_text())
    secrets: dict[str, dict[str, str]] = {}
    for source_id, source in document.get("data", {}).get("external", {}).items():
        result = subprocess.run(
            source["program"],
            input=json.dumps(source.get("query", {})),
            cwd=stack_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"data.external.{source_id}: {result.stderr.strip()}")
        secrets[source_id] = json.loads(result.stdout)
    terraform = Terraform(document=document, secrets=secrets)
    blocks = {}
    for block_id, block in terraform.resources("docker_container").items():
        evaluated = terraform.evaluate(block, f"docker_container.{block_id}")
        blocks[evaluated["name"]] = evaluated
    return blocks


def replace_container(block: dict[str, Any]) -> None:
    """As the provider replaces a container: stop (its stop timeout), remove without volumes, create, upload, start."""
    name = block["name"]
    _docker("stop", "--time", str(block.get("stop_timeout", 10)), name, timeout=300)
    _checked("rm", name)
    _checked(*create_args(block, f"docker_container ({name})"))
    if block.get("upload"):
        _checked("cp", "-", f"{name}:/", stdin=upload_tar(block["upload"], name))
    _checked("start", name)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.upgrade_apply <stack>", file=sys.stderr)
        return 2
    stack, root, env = argv[0], Path.cwd(), dict(os.environ)
    replaced = []
    for name, block in evaluated_containers(root, stack, env).items():
        on_engine = _docker("container", "inspect", "--format", "{{.Config.Image}}", name)
        current = on_engine.stdout.decode().strip() if on_engine.returncode == 0 else None
        if current == block["image"]:
            continue
        print(f"upgrade-apply: {name}: {current} -> {block['image']}", flush=True)
        replace_container(block)
        replaced.append(name)
    if not replaced:
        print("upgrade-apply: no changes", flush=True)
        return 0
    for command in (["nndb", "wait-ready", stack], ["nndb", "hooks", "run", stack]):
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False)
        sys.stdout.write(result.stdout + result.stderr)
        sys.stdout.flush()
        if result.returncode != 0:
            return result.returncode
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit:
        raise
    except BaseException as exc:  # the realizer fails with pytest's Failed: one line, like a deploy's error
        print(f"upgrade-apply: {type(exc).__name__}: {str(exc).strip().splitlines()[:1]}", file=sys.stderr)
        sys.exit(1)
