"""bagscope: replay robot sensor logs as synced camera + lidar frames and analyse them offline.

The top-level names are imported lazily so that the command line starts instantly and reading a
log never pulls in the visualisation stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bagscope._lazy import lazy_getattr

__version__ = "0.1.0"
__all__ = ["Frame", "Log", "Message", "__version__", "open_log"]

if TYPE_CHECKING:
    from bagscope.replay.frame import Frame
    from bagscope.replay.log import Log, open_log
    from bagscope.replay.message import Message

_LAZY = {
    "open_log": "bagscope.replay.log",
    "Log": "bagscope.replay.log",
    "Message": "bagscope.replay.message",
    "Frame": "bagscope.replay.frame",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
