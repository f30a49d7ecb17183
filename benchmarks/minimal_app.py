"""Baseline for bench_synth.py: the smallest cdktf app with one container per stack."""

import os
import sys

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktf import App, LocalBackend, TerraformStack
from cdktf_cdktf_provider_docker.container import Container
from cdktf_cdktf_provider_docker.provider import DockerProvider


def main(outdir: str) -> None:
    app = App(outdir=outdir, stack_traces=False)
    for name in ("local-db", "dev-db", "staging-db", "prod-db"):
        stack = TerraformStack(app, name)
        LocalBackend(stack, path=f"../../../terraform.{name}.tfstate")
        DockerProvider(stack, "docker", host="unix:///var/run/docker.sock")
        Container(stack, "postgres", name=f"{name}-postgres", image="postgres:15")
    app.synth()


if __name__ == "__main__":
    main(sys.argv[1])
