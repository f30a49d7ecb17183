"""The plugin manager, the runner, and the built-in post-apply steps.

Built-ins (each an ordinary plugin, registered through the ``nexanest_db`` entry-point group in
pyproject.toml exactly like a third-party one): ``init_sql``, ``migrations``, ``permissions``,
``redis_acl``, ``backup``. The hook contract is ``nexanest_db.hookspecs``; the runner is
``nexanest_db.plugins.manager``.
"""
