"""NexaNest database tier: cdktf stacks plus post-apply hooks (see README.md)."""

__version__ = "0.1.0"
