"""Load the plugins and run the phases in order (the only module that reaches ``nexanest_db/plugins/``).

``plugin_manager`` loads every entry point of group ``nexanest_db`` (the built-ins included) except
the disabled ones, then checks what it loaded: every built-in step (``BUILT_INS``, the entry points in
pyproject.toml) is there or disabled — else the installed metadata is stale and the run stops with one
line saying to reinstall (``PluginsMissing``) — and every hook implementation matches a hook spec
(pluggy's ``check_pending``: a misspelled ``nndb_*`` hook is one line, ``PluginInvalid``).

``run_phases`` calls the phase hooks in ``PHASE_HOOKS`` order; within a hook it calls each
implementation on its own, by plugin name from Z to A (``phase_order``; never in registration order,
which depends on how the installed metadata lists the entry points), so that a failure can name the
plugin and the hook. The first failure stops the run: later phases depend on earlier ones.

What the context itself changed while a step used it (``HookContext.take_changes``: a superuser
password rotated at the first connection) is reported as a step of its own, ``nndb``, just before
that step's changes, so it is printed and counted like any other change, exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import cast

import pluggy
import psycopg
import redis

from nexanest_db import hookspecs
from nexanest_db.context import Change, HookContext
from nexanest_db.errors import ConfigError, ConnectionFailed, HookError, NndbError, PluginInvalid, PluginsMissing, RunFailed

# The step name under which the run reports what the context itself changed (not a plugin).
CONTEXT_STEP = "nndb"
# The built-in steps: entry-point name -> module, as pyproject.toml's [project.entry-points.nexanest_db] lists them.
BUILT_INS: dict[str, str] = {
    "init_sql": "nexanest_db.plugins.init_sql",
    "migrations": "nexanest_db.plugins.migrations",
    "permissions": "nexanest_db.plugins.permissions",
    "redis_acl": "nexanest_db.plugins.redis_acl",
    "backup": "nexanest_db.plugins.backup",
    "monitoring": "nexanest_db.plugins.monitoring",
}
REINSTALL = "reinstall the tool: `pip install -e .` in the project (or scripts/setup.sh)"


@dataclass(frozen=True, kw_only=True)
class StepOutcome:
    plugin: str
    hook: str
    changes: tuple[Change, ...]
    seconds: float


@dataclass(kw_only=True)
class RunReport:
    stack: str
    outcomes: list[StepOutcome] = field(default_factory=list)
    disabled: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def changes(self) -> list[tuple[str, Change]]:
        return [(outcome.plugin, change) for outcome in self.outcomes for change in outcome.changes]

    @property
    def change_count(self) -> int:
        return sum(len(outcome.changes) for outcome in self.outcomes)

    def summary_line(self, label: str = "hooks") -> str:
        count = self.change_count
        if count == 0:
            return f"{label}: 0 changes (up to date)"
        return f"{label}: {count} change{'s' if count != 1 else ''}"

    def failure_line(self, label: str = "hooks") -> str:
        """After a failure: what was committed before it, never "up to date"."""
        count = self.change_count
        if count == 0:
            return f"{label}: failed before any change"
        return f"{label}: {count} change{'s' if count != 1 else ''} committed before the failure"

    def as_dict(self) -> dict[str, object]:
        return {
            "stack": self.stack,
            "changes": [{"plugin": plugin, "subject": c.subject, "summary": c.summary} for plugin, c in self.changes],
            "change_count": self.change_count,
            "steps": [
                {"plugin": o.plugin, "hook": o.hook, "changes": len(o.changes), "seconds": round(o.seconds, 4)} for o in self.outcomes
            ],
            "disabled": list(self.disabled),
            "seconds": round(self.seconds, 4),
        }


def parse_disabled(raw: str | None) -> tuple[str, ...]:
    """``NNDB_DISABLE_PLUGINS``: names separated by commas and/or spaces."""
    if not raw:
        return ()
    return tuple(name for name in raw.replace(",", " ").split() if name)


def plugin_manager(*, disabled: Iterable[str] = (), load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the hook specs and every installed plugin except ``disabled``.

    ``load_entry_points=False`` (tests that register their own plugins): the specs only, no built-ins checked.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    installed = {ep.name: ep.value for ep in entry_points(group=hookspecs.PROJECT_NAME)}
    if load_entry_points:
        check_built_ins_listed(installed)  # before the names are checked: stale metadata lacks them too
    disabled = tuple(disabled)
    if disabled:
        unknown = sorted(set(disabled) - set(installed))
        if unknown:
            raise ConfigError(
                f"NNDB_DISABLE_PLUGINS/--disable-plugin: no plugin named {unknown[0]!r}; installed: {', '.join(sorted(installed))}"
            )
        for name in disabled:
            manager.set_blocked(name)
    if load_entry_points:
        try:
            manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
        except pluggy.PluginValidationError as exc:
            raise PluginInvalid(
                f"a plugin does not fit the hook specs ({' '.join(str(exc).split())}); fix it, or skip it with --disable-plugin"
            ) from exc
        check_built_ins_loaded(manager)
    check_hooks_known(manager)
    check_no_wrappers(manager)
    return manager


def check_built_ins_listed(installed: Mapping[str, str]) -> None:
    """The installed metadata lists every built-in step with its module (``installed``: entry-point name -> value)."""
    missing = [name for name, module in BUILT_INS.items() if installed.get(name) != module]
    if missing:
        steps = f"step {missing[0]} is" if len(missing) == 1 else f"steps {', '.join(missing)} are"
        raise PluginsMissing(
            f"the built-in hook {steps} not installed (entry-point group {hookspecs.PROJECT_NAME!r}: "
            f"the installed metadata is missing or stale); {REINSTALL}"
        )


def check_built_ins_loaded(manager: pluggy.PluginManager) -> None:
    """Every built-in step was registered from its own module, unless disabled (another plugin may not take its name)."""
    for name, module in BUILT_INS.items():
        plugin = manager.get_plugin(name)
        if not manager.is_blocked(name) and getattr(plugin, "__name__", None) != module:
            raise PluginsMissing(f"the built-in hook step {name} did not load from {module}; {REINSTALL}")


def check_hooks_known(manager: pluggy.PluginManager) -> None:
    """pluggy's ``check_pending``: a hook implementation with no spec (a misspelled ``nndb_*``) is one line."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        unknown = sorted(
            f"{impl.plugin_name!r}: {caller.name}"
            for caller in vars(manager.hook).values()
            if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
            for impl in caller.get_hookimpls()
            if not impl.optionalhook
        )
        where = unknown[0] if unknown else _first_line(exc)
        raise PluginInvalid(
            f"plugin {where} is not a hook of nexanest_db (misspelled?); the hooks are {', '.join(hookspecs.PHASE_HOOKS)}; "
            "fix it, or skip the plugin with --disable-plugin"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def phase_order(impls: Sequence[pluggy.HookImpl]) -> list[pluggy.HookImpl]:
    """The implementations of one phase in the order they run: by plugin name, last first (never by registration).

    Z to A is the order the built-ins always ran in (pluggy calls the last registered first, and the
    installed metadata lists the entry points alphabetically), now fixed whoever registers when.
    """
    return sorted(impls, key=lambda impl: impl.plugin_name, reverse=True)


def check_no_wrappers(manager: pluggy.PluginManager) -> None:
    for hook_name in hookspecs.PHASE_HOOKS:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                raise ConfigError(f"plugin {impl.plugin_name!r}: {hook_name} is a wrapper; phase hooks take plain implementations only")


def plugin_table(manager: pluggy.PluginManager) -> list[tuple[str, list[str]]]:
    """(plugin name, phase hooks it implements), for ``nndb hooks list``."""
    rows = []
    for name, plugin in sorted(manager.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = [h.name for h in manager.get_hookcallers(plugin) or [] if h.name in hookspecs.PHASE_HOOKS]
        rows.append((name, sorted(hooks, key=hookspecs.PHASE_HOOKS.index)))
    return rows


def run_phases(
    manager: pluggy.PluginManager,
    context: HookContext,
    *,
    hooks: Sequence[str] = hookspecs.PHASE_HOOKS,
    on_outcome: Callable[[StepOutcome], None] | None = None,
) -> RunReport:
    """Run ``hooks`` (a subsequence of ``PHASE_HOOKS``) in phase order; close the context's connections at the end.

    ``on_outcome`` sees each finished step (for progress output). A failure raises ``RunFailed``
    carrying the partial report.
    """
    report = RunReport(stack=context.stack, disabled=tuple(sorted(name for name, plugin in manager.list_name_plugin() if plugin is None)))
    started = time.perf_counter()
    try:
        for hook_name in sorted(hooks, key=hookspecs.PHASE_HOOKS.index):
            caller = getattr(manager.hook, hook_name)
            for impl in phase_order(caller.get_hookimpls()):
                outcome = _call_one(impl, hook_name, context)
                if isinstance(outcome, StepFailure):
                    _record(report, _context_outcome(context, hook_name), on_outcome)
                    _record(report, outcome.partial, on_outcome)
                    raise RunFailed(outcome.message, report=report, step_error=outcome.error) from outcome.cause
                # What the context did while the step used it (a superuser rotation at its first connection) came first.
                _record(report, _context_outcome(context, hook_name), on_outcome)
                _record(report, outcome, on_outcome)
    finally:
        context.close()
        report.seconds = time.perf_counter() - started
    return report


def _context_outcome(context: HookContext, hook_name: str) -> StepOutcome | None:
    changes = tuple(context.take_changes())
    return StepOutcome(plugin=CONTEXT_STEP, hook=hook_name, changes=changes, seconds=0.0) if changes else None


def _record(report: RunReport, outcome: StepOutcome | None, on_outcome: Callable[[StepOutcome], None] | None) -> None:
    if outcome is None:
        return
    report.outcomes.append(outcome)
    if on_outcome is not None:
        on_outcome(outcome)


@dataclass(frozen=True, kw_only=True)
class StepFailure:
    """How one step failed: the run's one line, the error whose exit code the run takes, the exception it came from."""

    message: str
    error: NndbError
    cause: BaseException | None
    partial: StepOutcome | None = None  # what a step that failed part-way had committed (e.g. earlier migrations)


def _call_one(impl: pluggy.HookImpl, hook_name: str, context: HookContext) -> StepOutcome | StepFailure:
    arguments = {"context": context}
    plugin = impl.plugin_name
    started = time.perf_counter()
    prefix = f"plugin {plugin!r} failed in {hook_name}"

    def committed(exc: BaseException) -> StepOutcome | None:
        changes = tuple(cast("Iterable[Change]", getattr(exc, "committed", ())))
        return StepOutcome(plugin=plugin, hook=hook_name, changes=changes, seconds=time.perf_counter() - started) if changes else None

    try:
        result = impl.function(**{name: arguments[name] for name in impl.argnames})
    except NndbError as exc:
        return StepFailure(message=f"{prefix}: {exc}", error=exc, cause=exc, partial=committed(exc))
    except psycopg.OperationalError as exc:
        # The server went away mid-run (shut down, restarted, network): not the SQL's fault.
        message = (
            f"{prefix}: a PostgreSQL server closed the connection or stopped answering "
            f"({(str(exc).strip().splitlines() or [''])[0]}); check that the servers are up, then run again — what is committed stays"
        )
        return StepFailure(message=message, error=ConnectionFailed(message), cause=exc, partial=committed(exc))
    except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError) as exc:
        endpoint = context.endpoints.redis
        message = (
            f"{prefix}: redis at {endpoint.host}:{endpoint.port} stopped answering "
            f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}); check that it is up, then run again"
        )
        return StepFailure(message=message, error=ConnectionFailed(message), cause=exc)
    except Exception as exc:
        context.logger.debug("plugin %s failed in %s", plugin, hook_name, exc_info=True)
        # One line: a server error's DETAIL/HINT/query excerpt stays in the traceback (--verbose).
        message = (
            f"{prefix}: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]} (unexpected; --verbose shows the traceback)"
        )
        return StepFailure(message=message, error=HookError(message), cause=exc)
    changes: list[Change] = []
    for change in cast("Iterable[object]", result or ()):
        if not isinstance(change, Change):
            message = f"plugin {plugin!r} returned {type(change).__name__} from {hook_name}; return a list of nexanest_db.hookspecs.Change"
            return StepFailure(message=message, error=HookError(message), cause=None)
        changes.append(change)
    return StepOutcome(plugin=plugin, hook=hook_name, changes=tuple(changes), seconds=time.perf_counter() - started)
