"""The built-in post-apply hook steps, and nothing else.

Built-ins (each an ordinary plugin, registered through the ``nexanest_db`` entry-point group in
pyproject.toml exactly like a third-party one): ``init_sql``, ``migrations``, ``permissions``,
``redis_acl``, ``backup``, ``monitoring``. Each is a thin caller of ``nexanest_db.operations``
(what commands and hook steps share). The hook contract is ``nexanest_db.hookspecs``; the loader and
runner is ``nexanest_db.hook_manager``, the only module that reaches these (through the entry points,
never by import).
"""
