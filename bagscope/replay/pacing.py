"""Playback pacing: as fast as possible for analysis, or log time mapped onto wall time.

Analysis wants every frame as soon as it can be read; a viewer or a live-like replay wants the
log's own rhythm (optionally sped up or slowed down). One small object decides how long to wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bagscope.replay.errors import ReplayError

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(slots=True, kw_only=True)
class Pacer:
    """Waits so that log time advances ``rate`` times as fast as wall time (None: no waiting).

    The first call anchors log time to the wall clock; later calls sleep until their log time is
    due. A replay that falls behind (slow stages) is not made to catch up by skipping: it just
    stops sleeping until it is on time again.
    """

    rate: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _anchor: tuple[int, float] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            msg = f"playback rate must be positive, got {self.rate}"
            raise ReplayError(msg)

    def wait(self, t_ns: int) -> float:
        """Block until log time ``t_ns`` is due; returns the seconds slept."""
        if self.rate is None:
            return 0.0
        now = self.clock()
        if self._anchor is None:
            self._anchor = (t_ns, now)
            return 0.0
        t0, wall0 = self._anchor
        due = wall0 + (t_ns - t0) / 1e9 / self.rate
        delay = due - now
        if delay > 0:
            self.sleep(delay)
            return delay
        return 0.0

    def reset(self) -> None:
        """Forget the anchor (after a pause, a seek, or when a loop starts over)."""
        self._anchor = None
