"""Fixtures shared by every test directory, registered as plugins so each lives in its own module."""

pytest_plugins = [
    "tests.fixtures.pki",
    "tests.fixtures.postgres_server",
    "tests.fixtures.redis_server",
    "tests.fixtures.servers",
    "tests.fixtures.vault_server",
    "tests.fixtures.toolchain",
    "tests.fixtures.docker_engine",
    "tests.fixtures.sshd",
    "tests.fixtures.prometheus",
    "tests.fixtures.replication",
    "tests.fixtures.swarm",
    "tests.fixtures.upgrade_images",
]
