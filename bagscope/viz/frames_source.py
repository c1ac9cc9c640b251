"""A log replayed as scenes at a fixed output rate: the pipeline's stages run on the fly and
every output time shows the latest synced frame at or before it.

Rendering rides on :func:`~bagscope.pipeline.runner.run_stages` as one more frame stage
(appended last, so it sees every other stage's output): the stages get their setup, their
messages and their timings exactly as in ``replay run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bagscope.replay.decode.boxes import Boxes
from bagscope.viz.view import ViewError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bagscope.pipeline.config import PipelineConfig, SyncConfig
    from bagscope.pipeline.stage import Stage, StageResult
    from bagscope.replay.frame import Frame
    from bagscope.replay.log import Log

__all__ = ["OutputTimes", "SceneTap", "choose_sync", "play"]

_LOOKBACK_NS = 1_000_000_000  # read this much before the first output time for its frame


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputTimes:
    """``start_ns + k / fps`` for every k with the time before ``end_ns``."""

    start_ns: int
    end_ns: int
    fps: float

    @property
    def step_ns(self) -> int:
        return max(1, round(1e9 / self.fps))

    def __len__(self) -> int:
        return max(0, -(-(self.end_ns - self.start_ns) // self.step_ns))

    def at(self, k: int) -> int:
        return self.start_ns + k * self.step_ns


class _Stop(BaseException):
    """Leaves run_stages early (every output time drawn) or with the renderer's own error:
    run_stages records a stage's ``Exception`` and goes on, which a renderer must not."""

    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.error = error


@dataclass(slots=True, kw_only=True)
class SceneTap:
    """The frame stage that emits: ``emit(frame, k)`` for output k, once its time is passed."""

    times: OutputTimes
    emit: Callable[[Frame, int], None]
    name: str = "render"
    _held: Frame | None = field(default=None, init=False)
    _next: int = field(default=0, init=False)

    def process(self, frame: Frame) -> None:
        try:
            while self._next < len(self.times) and self.times.at(self._next) < frame.t_ns:
                self._emit(self._held or frame)  # before the first frame: show the first
            self._held = frame
            if self._next >= len(self.times):
                raise _Stop
        except _Stop:
            raise
        except BaseException as err:
            raise _Stop(err) from err

    def _emit(self, frame: Frame) -> None:
        self.emit(frame, self._next)
        self._next += 1

    def flush(self) -> None:
        """Emit the remaining output times with the last frame (the log ended before them)."""
        while self._held is not None and self._next < len(self.times):
            self._emit(self._held)

    @property
    def emitted(self) -> int:
        return self._next

    def finish(self) -> StageResult:
        from bagscope.pipeline.stage import StageResult

        return StageResult()


def choose_sync(log: Log, config: PipelineConfig) -> tuple[SyncConfig, str | None]:
    """The pipeline file's ``[sync]``, else every cloud and image topic plus the ground truth
    (``nearest``); and the ground-truth topic among the synced ones (None without one)."""
    from bagscope.pipeline.session import auto_sync, truth_topics

    truths = truth_topics(log)
    sync = config.sync or auto_sync(log, also=truths[:1])
    if sync is None:
        msg = "nothing to render: the log has no point cloud synced with an image"
        raise ViewError(msg)
    synced = {log.resolve_topic(t) for t in sync.topics}
    truth = next((t for t in truths if t in synced), None)
    return sync, truth


def box_stages(frame: Frame) -> list[str]:
    """The stages whose output on this frame is boxes (drawn as ``stage:<name>``)."""
    return [name for name, value in frame.outputs.items() if isinstance(value, Boxes)]


def play(
    log: Log,
    config: PipelineConfig,
    stages: Sequence[Stage],
    *,
    times: OutputTimes,
    emit: Callable[[Frame, int], None],
) -> int:
    """Run ``stages`` over the log and call ``emit(frame, k)`` for every output time k, in
    order; returns how many were emitted (all of them unless the log has no frame at all)."""
    from bagscope.pipeline.runner import run_stages
    from bagscope.pipeline.session import sync_policy

    sync, _ = choose_sync(log, config)
    tap = SceneTap(times=times, emit=emit)
    info = log.info()
    read_from = max(info.start_ns, times.start_ns - _LOOKBACK_NS)
    read_to = min(info.end_ns + 1, times.end_ns)
    try:
        result: Any = run_stages(
            log,
            [*stages, tap],
            sync=sync_policy(log, sync),
            start_ns=read_from,
            end_ns=max(read_to, read_from + 1),
            stamp_source=sync.stamp,  # type: ignore[arg-type]
            contract=config.contract_json(),
        )
    except _Stop as stop:
        if stop.error is not None:
            raise stop.error from None
    else:
        if result.interrupted:
            raise KeyboardInterrupt
    tap.flush()
    return tap.emitted
