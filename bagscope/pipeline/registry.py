"""Where stages come from: built-ins, the ``bagscope.stages`` entry points, ``module:Class``.

The built-ins are passed in by the caller (``bagscope.builtins``) rather than imported here:
the pipeline layer sits below the analyzers and models that it runs. A plugin package that
fails to import is a warning naming it - one broken plugin must not take the CLI down - and
only becomes an error when a pipeline actually asks for that stage.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["ENTRY_POINT_GROUP", "PluginWarning", "StageSpecError", "plugin_stages", "resolve_stage"]

ENTRY_POINT_GROUP = "bagscope.stages"


class StageSpecError(BagscopeError):
    """A stage name or ``module:Class`` spec that names nothing loadable."""


class PluginWarning(UserWarning):
    """A third-party stage plugin that could not be loaded."""


def plugin_stages() -> dict[str, Any]:
    """Entry points of the ``bagscope.stages`` group by name (not yet loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_object(target: str, *, what: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        msg = f"bad stage spec {what!r}: expected a stage name or module:Class"
        raise StageSpecError(msg)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        msg = f"stage {what!r}: cannot import module {module_name!r} ({err})"
        raise StageSpecError(msg) from err
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            msg = f"stage {what!r}: module {module_name!r} has no {attr!r}"
            raise StageSpecError(msg) from err
    return obj


def resolve_stage(spec: str, *, builtins: Mapping[str, str]) -> Callable[..., Any]:
    """The factory (usually a class) that ``spec`` names.

    ``builtins`` maps built-in names to ``module:Class`` targets. A name that is neither a
    built-in nor a plugin gets the list of those that exist and, where close, a suggestion.
    """
    if ":" in spec:
        return _load_object(spec, what=spec)  # type: ignore[no-any-return]
    if spec in builtins:
        return _load_object(builtins[spec], what=spec)  # type: ignore[no-any-return]
    plugins = plugin_stages()
    if spec in plugins:
        try:
            return plugins[spec].load()  # type: ignore[no-any-return]
        except Exception as err:  # any plugin failure is reported, not raised
            msg = f"stage plugin {spec!r} ({plugins[spec].value}) failed to load: {err}"
            raise StageSpecError(msg) from err
    known = sorted({*builtins, *plugins})
    close = difflib.get_close_matches(spec, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    msg = f"unknown stage {spec!r}; {hint}stages: {', '.join(known)}"
    raise StageSpecError(msg)


def check_plugins() -> list[str]:
    """Load every plugin once and warn (naming it) for each one that fails; returns the names
    that loaded. Used by ``replay run`` so a broken plugin is visible even when unused."""
    loaded = []
    for name, ep in plugin_stages().items():
        try:
            ep.load()
        except Exception as err:  # a plugin's failure is a warning
            warnings.warn(
                f"stage plugin {name!r} ({ep.value}) failed to load: {err}",
                PluginWarning,
                stacklevel=2,
            )
        else:
            loaded.append(name)
    return loaded
