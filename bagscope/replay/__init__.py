"""Reading and time: logs, messages, decoders, transforms, sync policies, frames.

Names are resolved lazily so that importing one piece (say, ``replay.sync``) does not open the
whole reading stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bagscope._lazy import lazy_dir, lazy_getattr

__all__ = ["Frame", "Log", "LogInfo", "Message", "TopicInfo", "open_log"]

if TYPE_CHECKING:
    from bagscope.replay.frame import Frame
    from bagscope.replay.log import Log, LogInfo, TopicInfo, open_log
    from bagscope.replay.message import Message

_LAZY = {
    "open_log": "bagscope.replay.log",
    "Log": "bagscope.replay.log",
    "LogInfo": "bagscope.replay.log",
    "TopicInfo": "bagscope.replay.log",
    "Message": "bagscope.replay.message",
    "Frame": "bagscope.replay.frame",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
