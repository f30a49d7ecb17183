"""Shapes the pinned kreuzwerker/docker provider (3.6.2) crashes on or drifts with must never be synthesized.

Runs in CI without the provider: it checks every stack's ``cdk.tf.json`` (TLS on or off) against what
the provider's source does with each attribute (github.com/kreuzwerker/terraform-provider-docker,
tag v3.6.2, internal/provider/resource_docker_container*.go). Found by running real deploys:

- ``cpus`` is a string attribute, but create type-asserts it as ``float32`` (funcs.go:328): any value
  panics the plugin ("The terraform-provider-docker_v3.6.2 plugin crashed!"). Fixed upstream in
  3.7.0, whose read-back of ``cpus`` has its own round-trip gaps ("10." for 10 CPUs), so the stacks
  stay on 3.6.2 and send the same CFS limit as ``cpu_period``/``cpu_quota``.
- 3.6.2's update never sends ``cpu_period``/``cpu_quota`` (only restart, cpu_shares, memory, cpu_set,
  memory_swap), yet plans a change of them as an in-place update: the new limit would silently not
  apply. The limit is also a label (ForceNew), so a change replaces the container.
- Read sets ``memory_swap`` from Docker, which records twice the memory when only ``memory`` is
  given; the attribute is Optional, not Computed, so every plan showed ``memory_swap = 2048 -> null``.
  Every attribute of that kind — read back, not Computed, filled in by Docker — is set explicitly.
"""

from __future__ import annotations

import re

import pytest

from nexanest_db.constructs.shared import CPU_LIMIT_LABEL, CPU_PERIOD_US
from tests.support.project import REPO_ROOT, copy_project, synth

PINNED_DOCKER_PROVIDER = "3.6.2"
# Read back by 3.6.2 (resourceDockerContainerRead), Optional and not Computed, and given a value by
# Docker when the config has none: leaving one out makes every plan show a change.
DOCKER_FILLS_IN = {"memory_swap": "memory"}  # attribute -> the attribute whose presence makes Docker fill it in
CPUS_CRASH = "3.6.2 type-asserts this string as float32 on create and panics"


def container_violations(name: str, block: dict) -> list[str]:
    """What is wrong with one synthesized ``docker_container`` block for kreuzwerker/docker 3.6.2."""
    problems = []
    if "cpus" in block:
        problems.append(f"{name}: sends `cpus` ({CPUS_CRASH}); send cpu_period/cpu_quota")
    for attribute, trigger in DOCKER_FILLS_IN.items():
        if trigger in block and attribute not in block:
            problems.append(f"{name}: sets `{trigger}` but not `{attribute}`, which Docker fills in and 3.6.2 reads back (drift)")
    if "cpu_quota" in block or "cpu_period" in block:
        labels = {entry["label"]: entry["value"] for entry in block.get("labels", [])}
        if block.get("cpu_period") != CPU_PERIOD_US or not isinstance(block.get("cpu_quota"), int):
            problems.append(f"{name}: cpu_period must be {CPU_PERIOD_US} with an integer cpu_quota")
        elif labels.get(CPU_LIMIT_LABEL) != f"{block['cpu_quota'] / CPU_PERIOD_US:g}":
            problems.append(f"{name}: the CPU limit must also be the label {CPU_LIMIT_LABEL} (3.6.2 cannot update it in place)")
    if block.get("wait", False) is not False or "wait_timeout" in block:
        problems.append(
            f"{name}: the provider's `wait` polls the 30 s health check and fails without a cause; the deploy uses nndb wait-ready"
        )
    return problems


def stack_violations(document: dict) -> list[str]:
    problems = []
    docker = document["terraform"]["required_providers"]["docker"]
    if docker["version"] != PINNED_DOCKER_PROVIDER:
        problems.append(f"docker provider pinned to {docker['version']}: these rules are for {PINNED_DOCKER_PROVIDER}; re-check them")
    for key, block in document["resource"].get("docker_container", {}).items():
        problems += container_violations(key, block)
    return problems


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    plain = synth(REPO_ROOT, tmp_path_factory.mktemp("plain"), environ={})
    project = copy_project(tmp_path_factory.mktemp("tls") / "project")
    for env in ("local", "dev"):
        config = project / "config" / f"{env}.toml"
        config.write_text(config.read_text() + "\n[tls]\nenabled = true\n")
    tls = synth(project, tmp_path_factory.mktemp("tls-out"), environ={}, stacks=("local-db", "dev-db"))
    return {**plain, **{f"{stack} (tls)": doc for stack, doc in tls.items()}}


def test_no_stack_sends_a_shape_the_pinned_provider_mishandles(documents: dict[str, dict]) -> None:
    problems = [f"{stack}: {p}" for stack, document in documents.items() for p in stack_violations(document)]
    assert problems == []
    assert all(document["resource"]["docker_container"] for document in documents.values())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b.update(cpus="1.0"), "sends `cpus`"),
        (lambda b: b.pop("memory_swap"), "not `memory_swap`"),
        (lambda b: b.update(cpu_quota=50_000), "label com.nexanest.cpus"),
        (lambda b: b.update(wait=True, wait_timeout=60), "`wait`"),
    ],
)
def test_each_known_bad_shape_is_caught(documents: dict[str, dict], change, expected: str) -> None:  # type: ignore[no-untyped-def]
    (block, *_) = documents["local-db"]["resource"]["docker_container"].values()
    broken = dict(block)
    change(broken)
    assert any(expected in problem for problem in container_violations("c", broken))


def test_bootstrap_and_bindings_pin_the_same_providers(documents: dict[str, dict]) -> None:
    pieces = (REPO_ROOT / "scripts" / "bootstrap.d" / "providers.sh").read_text()
    pinned = dict(re.findall(r"^(DOCKER|EXTERNAL)_PROVIDER_VERSION=(\S+)$", pieces, re.MULTILINE))
    required = documents["local-db"]["terraform"]["required_providers"]
    assert pinned == {"DOCKER": required["docker"]["version"], "EXTERNAL": required["external"]["version"]}
    assert required["docker"]["version"] == PINNED_DOCKER_PROVIDER
