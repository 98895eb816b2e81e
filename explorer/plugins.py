"""Loading plugins: the built-in primitives and third-party ones, through one entry-point group.

Every plugin, built-in or not, is a module (or object) with ``@hookimpl`` functions, named by an
entry point in the ``normx`` group. A plugin that fails to import is named in a warning on
stderr and the others load; ``NORMX_STRICT_PLUGINS=1`` turns that into an error.
``NORMX_DISABLE_PLUGINS=1`` stops third-party plugins from loading (the built-ins still load).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from typing import Any, TypeVar

import pluggy

from explorer import hookspecs
from explorer.errors import PluginError, plugin_failure
from explorer.registry import ModelEntry, PredictorEntry, Preset, Primitive, Registry

ENTRY_POINT_GROUP = "normx"
BUILTIN_DISTRIBUTION = "norm-explorer"
STRICT_ENV = "NORMX_STRICT_PLUGINS"
DISABLE_ENV = "NORMX_DISABLE_PLUGINS"

_manager: pluggy.PluginManager | None = None
_registry: Registry | None = None
_versions: dict[str, str] = {}
_failed: dict[str, str] = {}

R = TypeVar("R", Primitive, Preset, ModelEntry, PredictorEntry)


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _fail(plugin: str, err: BaseException) -> None:
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    _failed[plugin] = last
    if _truthy(STRICT_ENV):
        raise PluginError(f"plugin {plugin!r} failed to load: {last}")
    print(f"normx: warning: plugin {plugin!r} failed to load and was skipped: {last}", file=sys.stderr)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every entry-point plugin loaded once."""
    global _manager
    if _manager is not None:
        return _manager
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    disable_third_party = _truthy(DISABLE_ENV)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        builtin = dist == BUILTIN_DISTRIBUTION
        if disable_third_party and not builtin:
            continue
        name = ep.name if builtin else f"{dist}:{ep.name}" if dist != ep.name else ep.name
        if pm.has_plugin(name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=name)
        except BaseException as err:  # noqa: BLE001 - any import error (or exit) of a plugin is a warning
            if not plugin_failure(err):
                raise  # a real Ctrl-C
            _fail(name, err)
            continue
        _versions[name] = ep.dist.version if ep.dist is not None else "?"
    _manager = pm
    return pm


def register(plugin: object, name: str | None = None, version: str = "0") -> None:
    """Register a plugin object or module from Python (no entry point needed)."""
    pm = get_plugin_manager()
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    pm.register(plugin, name=name)
    _versions[name] = str(getattr(plugin, "__version__", version))
    reset_registry()


def unregister(name: str) -> None:
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _versions.pop(name, None)
    reset_registry()


def reset_registry() -> None:
    """Forget the built registry so that the next :func:`get_registry` re-runs the hooks."""
    global _registry
    _registry = None


def _collect(pm: pluggy.PluginManager, hook_name: str, kind: type[R], add: Callable[[R], None]) -> None:
    """Call one hook of every plugin; a plugin's registrations count only if its hook returns.

    ``register(item)`` calls are buffered per plugin and checked to be a ``kind``, so a hook
    that registers something and then raises, or registers something malformed, leaves nothing
    half-registered: the plugin is named in a warning (an error in strict mode) and the others
    keep working. A name clash between two plugins is always an error naming both.
    """
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):  # registration order
        plugin_name = impl.plugin_name
        calls: list[tuple[tuple, dict]] = []

        def callback(*args: Any, _calls: list = calls, **kwargs: Any) -> None:
            _calls.append((args, kwargs))

        try:
            impl.function(register=callback)
            items = [replace(_instance_of(kind, args, kwargs), plugin=plugin_name) for args, kwargs in calls]
        except BaseException as err:  # noqa: BLE001 - a broken (or exiting) plugin must not take the others down
            if not plugin_failure(err):
                raise  # a real Ctrl-C
            _fail(plugin_name, err)
            continue
        for item in items:
            add(item)


def _instance_of(kind: type[R], args: tuple, kwargs: dict) -> R:
    """The one ready-made ``kind`` object a ``register(...)`` call passed."""
    item = args[0] if args else next(iter(kwargs.values()), None)
    if not isinstance(item, kind):
        raise PluginError(f"it registered {item!r}, which is not an explorer.{kind.__name__}")
    return item


def get_registry() -> Registry:
    """Every primitive, preset, model and predictor the loaded plugins contribute."""
    global _registry
    if _registry is not None:
        return _registry
    pm = get_plugin_manager()
    registry = Registry()
    _collect(pm, "register_primitives", Primitive, registry.add_primitive)
    _collect(pm, "register_presets", Preset, registry.add_preset)
    _collect(pm, "register_models", ModelEntry, registry.add_model)
    _collect(pm, "register_predictors", PredictorEntry, registry.add_predictor)
    registry.plugin_versions = {
        name: _versions.get(name, "?") for name, _ in pm.list_name_plugin() if name not in _failed
    }
    registry.failed = dict(_failed)
    _registry = registry
    return registry

