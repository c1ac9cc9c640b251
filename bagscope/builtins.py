"""Every built-in stage by name, for pipeline files: the analyzers and the models.

It sits above ``pipeline`` and the stage packages so that the pipeline layer never imports
the stages it runs; commands and the Python API pass this table in.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from bagscope.analyzers import ANALYZERS
from bagscope.models import MODELS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BUILTIN_STAGES"]

BUILTIN_STAGES: Mapping[str, str] = MappingProxyType({**ANALYZERS, **MODELS})
