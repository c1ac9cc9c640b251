"""Topic names as a log records them, and as users type them.

ROS1 recorders keep a topic's name as the node gave it (``raspicam_node/image``), ROS 2 always
adds the leading slash; users type either. Names are reported exactly as recorded and found
under either spelling; a near miss gets a suggestion. One module, so the log, the frame stream
and the commands resolve names the same way.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from bagscope.replay.errors import TopicError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["resolve_topic", "unknown_topic_message"]


def unknown_topic_message(name: str, known: Iterable[str]) -> str:
    """``topic '/x' is not in the log``, with the closest name or the list of topics."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"topic {name!r} is not in the log; did you mean {close[0]!r}?"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"topic {name!r} is not in the log (topics: {shown or 'none'})"


def resolve_topic(name: str, known: Iterable[str]) -> str:
    """The topic as the log spells it: exact, else with the leading slash added or removed.

    ROS1 recorders keep a topic's name as the node gave it (``raspicam_node/image``), ROS2
    always adds the slash; users type either, so either finds it. Anything else is a
    :class:`TopicError` that suggests the closest name.
    """
    names = set(known)
    if name in names:
        return name
    other = name[1:] if name.startswith("/") else "/" + name
    if other in names:
        return other
    raise TopicError(unknown_topic_message(name, names))
