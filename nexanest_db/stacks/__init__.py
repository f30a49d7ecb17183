"""Stacks compose constructs per environment; ``app.build_app`` is the entry point."""
