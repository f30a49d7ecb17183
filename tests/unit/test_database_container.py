"""The container skeleton PostgreSQL, Redis and the exporters share, on its own."""

from __future__ import annotations

import json
from dataclasses import replace

import cdktf
import pytest
from cdktf import TerraformStack

from nexanest_db.constructs import ContainerLimits, DatabaseContainerProps, DataVolume, FileUpload, PublishedPort, database_container

PROPS = DatabaseContainerProps(
    container_name="t-thing",
    image="example/thing:1",
    published=PublishedPort(container_port=9000, host_port=19000, bind_address="127.0.0.1"),
    limits=ContainerLimits(memory_mb=128, cpus=0.25, restart="unless-stopped"),
    network_name="t-net",
    labels={"com.nexanest.environment": "test"},
)


def synth(build) -> dict:  # type: ignore[no-untyped-def]
    stack = TerraformStack(cdktf.Testing.app(), "test")
    build(stack)
    return json.loads(cdktf.Testing.synth(stack))["resource"]


def test_a_container_without_volumes_or_health_check_gets_neither() -> None:
    resources = synth(lambda scope: database_container(scope, PROPS, network_alias="thing", files=[FileUpload(path="/a", content="x")]))
    (container,) = resources["docker_container"].values()
    assert "docker_volume" not in resources
    for absent in ("mounts", "healthcheck", "command", "env", "entrypoint", "stop_timeout", "destroy_grace_seconds"):
        assert absent not in container, absent
    assert container["networks_advanced"] == [{"aliases": ["thing"], "name": "t-net"}]
    assert container["log_driver"] == "json-file" and container["log_opts"] == {"max-file": "3", "max-size": "10m"}
    (image,) = resources["docker_image"].values()
    assert image == {"keep_locally": True, "name": "example/thing:1"}


def test_volumes_are_named_after_the_container_and_mounted_in_order() -> None:
    volumes = [DataVolume(id="data", target="/data", protect=True), DataVolume(id="extra", target="/extra", protect=False)]

    def build(scope) -> None:  # type: ignore[no-untyped-def]
        built = database_container(scope, PROPS, network_alias="thing", files=(), env=["B=2", "A=1"], volumes=volumes, stop_timeout_s=30)
        assert sorted(built.volumes) == ["data", "extra"]

    resources = synth(build)
    by_name = {v["name"]: v for v in resources["docker_volume"].values()}
    assert sorted(by_name) == ["t-thing-data", "t-thing-extra"]
    assert by_name["t-thing-data"]["lifecycle"] == {"prevent_destroy": True} and "lifecycle" not in by_name["t-thing-extra"]
    (container,) = resources["docker_container"].values()
    assert [m["target"] for m in container["mounts"]] == ["/data", "/extra"]
    assert container["env"] == ["A=1", "B=2"]
    assert container["stop_timeout"] == 30 and container["destroy_grace_seconds"] == 30


def test_every_container_props_refuses_an_image_that_is_not_a_reference() -> None:
    with pytest.raises(ValueError, match="image must be a reference like name:tag"):
        replace(PROPS, image="thing 1")
