"""Realize synthesized ``cdk.tf.json`` blocks with the docker CLI, field by field (the e2e container tests).

This is NOT a deploy (the kreuzwerker/docker provider deploys: tests/e2e/test_deploy_local_db.py). It
turns ``docker_network``/``docker_volume``/``docker_container`` blocks into `docker network create`,
`docker volume create`, `docker create` + `docker cp` of the uploads, evaluating only the Terraform
expressions the stacks generate (``Terraform.evaluate``): any other expression, and any container
field not mapped, FAILS, so a growing stack cannot be mis-realized silently. Shared by
tests/e2e/test_container_specs.py and tests/e2e/test_replica_engine.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nexanest_db.secrets import SECRET_SPECS
from tests.support.standins import point_at_standins


def fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


def docker(*args: str, stdin: bytes | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        fail(f"docker {' '.join(args[:2])} ... exited {result.returncode}: {result.stderr.decode(errors='replace').strip()}")
    return result


def container_log(name: str, lines: int = 40) -> str:
    logs = docker("logs", "--tail", str(lines), name, check=False)
    return (logs.stdout + logs.stderr).decode(errors="replace").strip()


# docker_container arguments this test turns into `docker create` options (see create_args).
MAPPED_CONTAINER_FIELDS = frozenset(
    {
        "name",
        "image",
        "command",
        "entrypoint",
        "env",
        "healthcheck",
        "ports",
        "memory",
        "memory_swap",
        "cpu_period",
        "cpu_quota",
        "restart",
        "labels",
        "log_driver",
        "log_opts",
        "mounts",
        "networks_advanced",
        "stop_timeout",
        "upload",
    }
)
IGNORED_CONTAINER_FIELDS = frozenset(
    {
        "//",  # cdktf metadata, not a provider argument
        "wait",  # false: a deploy waits with `nndb wait-ready`; this test waits for "healthy" itself (wait_healthy)
        "must_run",  # the provider checks the container keeps running: wait_healthy fails on an exited one
        "destroy_grace_seconds",  # only used by `terraform destroy`; teardown here is `docker rm -f`
    }
)
NETWORK_FIELDS = frozenset({"//", "name", "driver", "internal", "labels"})
VOLUME_FIELDS = frozenset({"//", "name", "labels"})

# The only Terraform expressions the stacks generate. Anything else containing ${ or %{ fails.
_ID = r"[A-Za-z0-9_-]+"
_SECRET_REF = rf'data\.external\.(?P<source>{_ID})\.result\["(?P<name>[a-z0-9_]+)"\]'
SENSITIVE = re.compile(rf"\$\{{sensitive\({_SECRET_REF}\)\}}")
# The Redis ACL file: join("", [format("user %s on #%s %s\n", "<user>", sensitive(sha256(<secret>)), "<rules>"), ...])
_ACL_LINE = rf'format\("user %s on #%s %s\\n", "(?P<user>[A-Za-z0-9_-]+)", sensitive\(sha256\({_SECRET_REF}\)\), "(?P<rules>[^"\\$%]*)"\)'
ACL_LINE = re.compile(_ACL_LINE)
ACL_FILE = re.compile(
    r'\$\{join\("", \[' + re.sub(r"\(\?P<\w+>", "(?:", _ACL_LINE) + r"(?:, " + re.sub(r"\(\?P<\w+>", "(?:", _ACL_LINE) + r")*\]\)\}"
)
# The redis_exporter password map: format("{%s:%s}", jsonencode("<uri>"), jsonencode(sensitive(<secret>)))
PASSWORD_MAP = re.compile(
    rf'\$\{{format\("\{{%s:%s\}}", jsonencode\("(?P<uri>[a-z]+://[a-z0-9.-]+:[0-9]+)"\), jsonencode\(sensitive\({_SECRET_REF}\)\)\)\}}'
)
RESOURCE_REF = re.compile(rf"\$\{{(?P<type>docker_image|docker_volume|docker_network)\.(?P<id>{_ID})\.(?P<attr>image_id|name)\}}")
REF_ATTRIBUTE = {"docker_image": "image_id", "docker_volume": "name", "docker_network": "name"}
# A template sequence Terraform would evaluate: ${ or %{ not escaped as $${ / %%{ (a literal, e.g. a shell script's ${VAR}).
UNESCAPED = re.compile(r"(?<![$])[$][{]|(?<![%])[%][{]")


def unescape(literal: str) -> str:
    """A Terraform string literal's text: ``$${`` is ``${``, ``%%{`` is ``%{``."""
    return literal.replace("$${", "${").replace("%%{", "%{")


# A Redis replica's masterauth file: format("masterauth %s\n", sensitive(<secret>))
FORMAT_SECRET = re.compile(rf'\$\{{format\("(?P<format>[^"%$]*%s[^"%$]*)", sensitive\({_SECRET_REF}\)\)\}}')
LOCAL_REF = re.compile(rf"\$\{{local\.(?P<name>{_ID})\}}")  # a file shared by two uploads (nexanest_db.constructs.shared.shared_text)


@dataclass
class Terraform:
    """The parts of cdk.tf.json this test evaluates, and the secret values of its data.external source."""

    document: dict[str, Any]
    secrets: dict[str, dict[str, str]]  # data.external id -> result

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.document["resource"].get(kind, {})

    def evaluate(self, value: Any, where: str) -> Any:
        """``value`` with every string evaluated as Terraform would: literals as-is, our expressions resolved."""
        if isinstance(value, dict):
            return {k: self.evaluate(v, f"{where}.{k}") for k, v in value.items() if k != "//"}
        if isinstance(value, list):
            return [self.evaluate(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if match := SENSITIVE.fullmatch(value):
            return self.secret(match, where)
        if match := FORMAT_SECRET.fullmatch(value):
            return match["format"].replace("\\n", "\n") % self.secret(match, where)
        if match := PASSWORD_MAP.fullmatch(value):
            return json.dumps({match["uri"]: self.secret(match, where)})
        if ACL_FILE.fullmatch(value):
            return "".join(
                f"user {line['user']} on #{hashlib.sha256(self.secret(line, where).encode('utf-8')).hexdigest()} {line['rules']}\n"
                for line in ACL_LINE.finditer(value)
            )
        if match := LOCAL_REF.fullmatch(value):
            text = self.document.get("locals", {}).get(match["name"])
            if not isinstance(text, str) or UNESCAPED.search(text):
                fail(f"{where}: {value} is not a plain-text local of cdk.tf.json")
            return unescape(text)
        if match := RESOURCE_REF.fullmatch(value):
            if REF_ATTRIBUTE[match["type"]] != match["attr"]:
                fail(f"{where}: unsupported reference {value} (this test maps {match['type']}.*.{REF_ATTRIBUTE[match['type']]})")
            target = self.resources(match["type"]).get(match["id"])
            if target is None:
                fail(f"{where}: {value} refers to a resource that is not in cdk.tf.json")
            return target["name"]
        if UNESCAPED.search(value):
            fail(f"{where}: Terraform expression this test cannot evaluate (extend it deliberately): {value[:200]!r}")
        return unescape(value)

    def secret(self, match: re.Match[str], where: str) -> str:
        result = self.secrets.get(match["source"])
        if result is None or match["name"] not in result:
            fail(f"{where}: data.external.{match['source']} gives no {match['name']!r}")
        return result[match["name"]]


def upload_tar(uploads: list[dict[str, Any]], where: str) -> bytes:
    """One tar of the upload blocks: each file at its path, mode from ``permissions``, owned by root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i, upload in enumerate(uploads):
            unknown = set(upload) - {"file", "content", "permissions"}
            if unknown:
                fail(f"{where}.upload[{i}]: fields this test does not map: {sorted(unknown)}")
            data = upload["content"].encode("utf-8")
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(data)
            info.mode = int(upload.get("permissions", "0644"), 8)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_args(block: dict[str, Any], where: str, *, also_ignored: frozenset[str] = frozenset()) -> list[str]:
    """`docker create` arguments for one evaluated docker_container block; unmapped fields fail.

    ``also_ignored``: fields the caller realizes itself (a replica's ``provider`` alias and ``depends_on``).
    """
    unknown = set(block) - MAPPED_CONTAINER_FIELDS - IGNORED_CONTAINER_FIELDS - also_ignored
    if unknown:
        fail(f"{where}: docker_container fields this test does not map (extend create_args): {sorted(unknown)}")
    args = ["create", "--name", block["name"]]
    for entry in block.get("env", []):
        args += ["--env", entry]
    if hc := block.get("healthcheck"):
        extra = set(hc) - {"test", "interval", "timeout", "retries", "start_period"}
        if extra:
            fail(f"{where}.healthcheck: fields this test does not map: {sorted(extra)}")
        test = hc["test"]
        if len(test) != 2 or test[0] != "CMD-SHELL":
            fail(f"{where}.healthcheck.test: only [CMD-SHELL, <command>] maps to --health-cmd, got {test}")
        args += ["--health-cmd", test[1]]
        for key, option in (("interval", "interval"), ("timeout", "timeout"), ("retries", "retries"), ("start_period", "start-period")):
            if key in hc:
                args += [f"--health-{option}", str(hc[key])]
    for port in block.get("ports", []):
        if set(port) - {"internal", "external", "ip", "protocol"}:
            fail(f"{where}.ports: fields this test does not map: {sorted(port)}")
        args += ["--publish", f"{port.get('ip', '0.0.0.0')}:{port['external']}:{port['internal']}/{port.get('protocol', 'tcp')}"]
    if "memory" in block:
        args += ["--memory", f"{block['memory']}m"]  # the provider's memory is in MB
    if "memory_swap" in block:
        args += ["--memory-swap", f"{block['memory_swap']}m"]
    if "cpu_period" in block:
        args += ["--cpu-period", str(block["cpu_period"])]
    if "cpu_quota" in block:
        args += ["--cpu-quota", str(block["cpu_quota"])]
    if "restart" in block:
        args += ["--restart", block["restart"]]
    for label in block.get("labels", []):
        args += ["--label", f"{label['label']}={label['value']}"]
    if "log_driver" in block:
        args += ["--log-driver", block["log_driver"]]
    for key, value in block.get("log_opts", {}).items():
        args += ["--log-opt", f"{key}={value}"]
    for mount in block.get("mounts", []):
        if set(mount) != {"type", "source", "target"} or mount["type"] != "volume":
            fail(f"{where}.mounts: only type=volume with source/target is mapped, got {mount}")
        args += ["--mount", f"type=volume,source={mount['source']},target={mount['target']}"]
    networks = block.get("networks_advanced", [])
    if len(networks) > 1:
        fail(f"{where}.networks_advanced: `docker create` attaches one network with aliases; got {len(networks)}")
    for network in networks:
        if set(network) - {"name", "aliases"}:
            fail(f"{where}.networks_advanced: fields this test does not map: {sorted(network)}")
        args += ["--network", network["name"]]
        for alias in network.get("aliases", []):
            args += ["--network-alias", alias]
    if "stop_timeout" in block:
        args += ["--stop-timeout", str(block["stop_timeout"])]
    # `docker create --entrypoint` takes one executable: the rest of the entrypoint array goes before
    # the command, which gives the container the same argv as the provider's entrypoint + command.
    entrypoint = block.get("entrypoint", [])
    if entrypoint:
        args += ["--entrypoint", entrypoint[0]]
    return [*args, block["image"], *entrypoint[1:], *block.get("command", [])]


def base_environment() -> dict[str, str]:
    env = dict(os.environ)
    for spec in SECRET_SPECS:  # an outer *_FILE or .env.db-style override must not win over ours
        env.pop(f"{spec.env_var}_FILE", None)
    for key in ("NNDB_PROJECT_DIR", "DB_HOST"):
        env.pop(key, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def teardown(prefix: str) -> None:
    """Remove the containers (with anonymous volumes), network and volumes named with this run's prefix, nothing else."""

    def listed(*args: str) -> list[str]:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60).stdout.split()
        return [name for name in out if name.startswith(prefix)]

    for name in listed("ps", "-a", "--filter", f"name={prefix}", "--format", "{{.Names}}"):
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=120)
    for name in listed("network", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}"):
        subprocess.run(["docker", "network", "rm", name], capture_output=True, timeout=60)
    for name in listed("volume", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}"):
        subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, timeout=60)


def bridge_gateway() -> str:
    """The default bridge's gateway: an address of this host that containers reach too (replicas reach their primary there)."""
    out = docker("network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}").stdout.decode().strip()
    if not out:
        fail("docker network inspect bridge: no gateway address; the replica test publishes on it")
    return out


def configure_replica_copy(
    root: Path, prefix: str, gateway: str, ports: dict[str, int], *, instances: tuple[str, ...], replica: str
) -> None:
    """local.toml of a project copy: this run's names, published on ``gateway``, one replica per instance on this engine."""
    config_file = root / "config" / "local.toml"
    text = point_at_standins(config_file.read_text())
    for old, new in (
        ('name_prefix = "nexanest-local"', f'name_prefix = "{prefix}"'),
        ('name = "nexanest-db-local"', f'name = "{prefix}-net"'),
        ('bind_address = "127.0.0.1"', f'bind_address = "{gateway}"'),
        ('endpoint_host = "127.0.0.1"', f'endpoint_host = "{gateway}"'),
    ):
        assert old in text, f"config/local.toml no longer contains {old!r}: update this test's renaming"
        text = text.replace(old, new, 1)
    # The "other host" is this engine under its own alias (the replicas reach the primaries at the gateway too).
    for instance in instances:
        text += (
            f"\n[replication.{instance}.replicas.{replica}]\n"
            'docker = { host = "unix:///var/run/docker.sock" }\n'
            f'endpoint_host = "{gateway}"\nbind_address = "{gateway}"\nport = {ports[f"{instance}-{replica}"]}\n'
        )
    config_file.write_text(text)


def data_source_values(document: dict[str, Any], stack_dir: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each data.external source's program run as Terraform runs it: its query on stdin, from the stack directory."""
    values: dict[str, dict[str, str]] = {}
    for source_id, source in document.get("data", {}).get("external", {}).items():
        result = subprocess.run(
            source["program"],
            input=json.dumps(source.get("query", {})),
            cwd=stack_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            fail(f"data.external.{source_id} program exited {result.returncode}: {result.stderr.strip()}")
        values[source_id] = json.loads(result.stdout)
    return values
