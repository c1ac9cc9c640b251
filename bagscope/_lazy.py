"""Lazy package attributes: a name is imported from its module the first time it is used.

Keeps ``import bagscope`` (and so the CLI's start-up) from pulling in the reading stack, while
``dir()`` and tab completion still show every name a user can type.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving ``names`` (attribute → module) on demand."""

    def resolve(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        msg = f"module {package!r} has no attribute {name!r}"
        raise AttributeError(msg)

    return resolve


def lazy_dir(namespace: Mapping[str, Any], names: Mapping[str, str]) -> Callable[[], list[str]]:
    """A module-level ``__dir__`` listing the lazy names beside those already defined."""

    def listing() -> list[str]:
        return sorted({*namespace, *names})

    return listing
