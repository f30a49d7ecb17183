"""Load the plugins and run the phases in order.

``plugin_manager`` loads every entry point of group ``nexanest_db`` (the built-ins included) except
the disabled ones. ``run_phases`` calls the phase hooks in ``PHASE_HOOKS`` order; within a hook it
calls each implementation on its own, in pluggy's own order, so that a failure can name the plugin
and the hook. The first failure stops the run: later phases depend on earlier ones.

What the context itself changed while a step used it (``HookContext.take_changes``: a superuser
password rotated at the first connection) is reported as a step of its own, ``nndb``, just before
that step's changes, so it is printed and counted like any other change, exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy
import psycopg
import redis

from nexanest_db import hookspecs
from nexanest_db.context import Change, HookContext
from nexanest_db.errors import ConfigError, ConnectionFailed, HookError, NndbError

# The step name under which the run reports what the context itself changed (not a plugin).
CONTEXT_STEP = "nndb"


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
    """A plugin manager with the hook specs and every installed plugin except ``disabled``."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    disabled = tuple(disabled)
    if disabled:
        installed = {ep.name for ep in entry_points(group=hookspecs.PROJECT_NAME)}
        unknown = sorted(set(disabled) - installed)
        if unknown:
            raise ConfigError(
                f"NNDB_DISABLE_PLUGINS/--disable-plugin: no plugin named {unknown[0]!r}; installed: {', '.join(sorted(installed))}"
            )
        for name in disabled:
            manager.set_blocked(name)
    if load_entry_points:
        manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    check_no_wrappers(manager)
    return manager


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


class RunFailed(HookError):
    """A phase failed; ``report`` holds what the earlier steps changed before it."""

    def __init__(self, message: str, *, report: RunReport, exit_code: int) -> None:
        super().__init__(message)
        self.report = report
        self.exit_code = exit_code


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
            # get_hookimpls() is in pluggy's registration/tryfirst order; pluggy calls it reversed.
            for impl in reversed(caller.get_hookimpls()):
                try:
                    outcome = _call_one(impl, hook_name, context)
                except HookError as exc:
                    _record(report, _context_outcome(context, hook_name), on_outcome)
                    _record(report, getattr(exc, "partial", None), on_outcome)
                    raise RunFailed(str(exc), report=report, exit_code=exc.exit_code) from exc.__cause__
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


def _call_one(impl: pluggy.HookImpl, hook_name: str, context: HookContext) -> StepOutcome:
    arguments = {"context": context}
    plugin = impl.plugin_name
    started = time.perf_counter()
    try:
        result = impl.function(**{name: arguments[name] for name in impl.argnames})
    except NndbError as exc:
        error = HookError(f"plugin {plugin!r} failed in {hook_name}: {exc}")
        error.exit_code = exc.exit_code
        committed = tuple(getattr(exc, "committed", ()))
        if committed:  # a step that failed part-way reports what it had committed (e.g. earlier migrations)
            error.partial = StepOutcome(plugin=plugin, hook=hook_name, changes=committed, seconds=time.perf_counter() - started)  # type: ignore[attr-defined]
        raise error from exc
    except psycopg.OperationalError as exc:
        # The server went away mid-run (shut down, restarted, network): not the SQL's fault.
        first_line = (str(exc).strip().splitlines() or [""])[0]
        error = HookError(
            f"plugin {plugin!r} failed in {hook_name}: a PostgreSQL server closed the connection or stopped answering "
            f"({first_line}); check that the servers are up, then run again — what is committed stays"
        )
        error.exit_code = ConnectionFailed.exit_code
        committed = tuple(getattr(exc, "committed", ()))
        if committed:
            error.partial = StepOutcome(plugin=plugin, hook=hook_name, changes=committed, seconds=time.perf_counter() - started)  # type: ignore[attr-defined]
        raise error from exc
    except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError) as exc:
        endpoint = context.endpoints.redis
        error = HookError(
            f"plugin {plugin!r} failed in {hook_name}: redis at {endpoint.host}:{endpoint.port} stopped answering "
            f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}); check that it is up, then run again"
        )
        error.exit_code = ConnectionFailed.exit_code
        raise error from exc
    except Exception as exc:
        context.logger.debug("plugin %s failed in %s", plugin, hook_name, exc_info=True)
        # One line: a server error's DETAIL/HINT/query excerpt stays in the traceback (--verbose).
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise HookError(
            f"plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {first_line} (unexpected; --verbose shows the traceback)"
        ) from exc
    changes = tuple(result or ())
    for change in changes:
        if not isinstance(change, Change):
            raise HookError(
                f"plugin {plugin!r} returned {type(change).__name__} from {hook_name}; return a list of nexanest_db.hookspecs.Change"
            )
    return StepOutcome(plugin=plugin, hook=hook_name, changes=changes, seconds=time.perf_counter() - started)
