"""The one loop every command runs: read once, feed messages and frames to the stages.

The log is read in a single pass over the union of what the stages ask for: the frame
stream's topics (the synced ones and their CameraInfo) and each message stage's topics. Every
message is shown to the message stages that want it, then handed on to the sync policy if it
is one of the synced topics - so a rate analysis and a detector share one read of the disk.

A stage that raises is recorded (time, stage, error) and left out of the rest of that frame;
the run goes on unless ``fail_fast``. Ctrl-C ends the read, still calls every ``finish()``, and
marks the result incomplete, so what was seen so far can be written as a valid run.
"""

from __future__ import annotations

import itertools
import time
import traceback
from array import array
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import (
    FrameStage,
    MessageStage,
    NeedsSetup,
    RunContext,
    StageResult,
)
from bagscope.pipeline.timing import StageTimings

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

    from bagscope.pipeline.stage import Stage
    from bagscope.replay.framing import FrameStats, StampSource
    from bagscope.replay.log import Log, LogInfo
    from bagscope.replay.message import Message
    from bagscope.replay.sync import SyncPolicy

__all__ = [
    "MAX_ERRORS_KEPT",
    "ErrorRecorder",
    "FrameKey",
    "RunResult",
    "Slice",
    "StageError",
    "StageFailedError",
    "finish_stage",
    "frame_key",
    "run_context",
    "run_stages",
]

# Per stage: a stage that fails on every frame of a long log must not fill run.json.
MAX_ERRORS_KEPT = 20
_PROGRESS_EVERY_NS = 50_000_000  # call progress at most every 50 ms of wall time


class StageFailedError(BagscopeError):
    """A stage raised and the run was asked to stop at the first failure (``--fail-fast``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StageError:
    """A stage that raised: where (``phase``: setup, message, frame, finish), when, and why."""

    stage: str
    phase: str
    t_ns: int | None
    error: str
    traceback: str

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "phase": self.phase,
            "t_ns": self.t_ns,
            "error": self.error,
            "traceback": self.traceback,
        }


@dataclass(slots=True, kw_only=True)
class RunResult:
    """Everything a run produced in memory; :mod:`bagscope.pipeline.rundir` writes it out."""

    info: LogInfo
    stages: tuple[str, ...]
    results: dict[str, StageResult]
    timings: StageTimings
    frame_stats: FrameStats | None
    errors: list[StageError] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    frames: int = 0
    wall_ns: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    interrupted: bool = False
    # a shard's run (see ``Slice``): its stages' states instead of results, and its frames
    states: dict[str, Any] = field(default_factory=dict)
    frame_keys: list[FrameKey] = field(default_factory=list)
    # how a sharded run was split (run.json's "sharding"); None for one read
    sharding: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return not self.interrupted


FrameKey = tuple[int, tuple[tuple[str, int], ...]]
"""What makes a frame that frame: its time and its members' stamps (compared across shards)."""


def frame_key(frame: Any) -> FrameKey:
    return (frame.t_ns, tuple(sorted(frame.stamps_ns.items())))


@dataclass(frozen=True, slots=True, kw_only=True)
class Slice:
    """One time shard of a run: read ``read`` (wider, so that sync sees the partners of the
    frames at the edges), give the stages only what ``owned`` holds (messages by log time,
    frames by their time), record the owned frames' :data:`FrameKey`, and collect
    ``shard_state()`` instead of finishing. Either end None is open."""

    read: tuple[int | None, int | None]
    owned: tuple[int | None, int | None]


def _inside(window: tuple[int | None, int | None]) -> Callable[[int], bool]:
    lo, hi = window
    return lambda t: (lo is None or t >= lo) and (hi is None or t < hi)


def run_context(
    log: Log,
    *,
    sync: SyncPolicy[Any] | None,
    stamp_source: StampSource,
    start_ns: int | None,
    end_ns: int | None,
    contract: Mapping[str, Any] | None,
    frame_stats: Callable[[], FrameStats | None],
    timings: StageTimings,
) -> RunContext:
    """What a stage is set up with: the same for a run and for a sharded run's merge."""
    return RunContext(
        log=log,
        info=log.info(),
        sync_topics=tuple(log.resolve_topic(t) for t in sync.topics) if sync else (),
        sync=sync,
        stamp_source=stamp_source,
        start_ns=start_ns,
        end_ns=end_ns,
        contract=dict(contract or {}),
        frame_stats=frame_stats,
        timings=timings,
    )


def _stage_names(stages: Sequence[Stage]) -> tuple[str, ...]:
    names = tuple(stage.name for stage in stages)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            msg = f"two stages are named {name!r}; give one of them another name"
            raise BagscopeError(msg)
        seen.add(name)
    return names


class ErrorRecorder:
    """Keeps the stage errors and decides whether to go on after one."""

    def __init__(self, *, fail_fast: bool) -> None:
        self.fail_fast = fail_fast
        self.errors: list[StageError] = []
        self.counts: dict[str, int] = {}

    def record(self, stage: str, phase: str, *, t_ns: int | None, err: Exception) -> None:
        count = self.counts[stage] = self.counts.get(stage, 0) + 1
        if self.fail_fast:
            when = "" if t_ns is None else f" at log time {t_ns}"
            msg = f"stage {stage!r} failed in {phase}{when}: {type(err).__name__}: {err}"
            raise StageFailedError(msg) from err
        if count <= MAX_ERRORS_KEPT:
            self.errors.append(
                StageError(
                    stage=stage,
                    phase=phase,
                    t_ns=t_ns,
                    error=f"{type(err).__name__}: {err}",
                    traceback="".join(traceback.format_exception(err)),
                )
            )


def run_stages(
    log: Log,
    stages: Sequence[Stage],
    *,
    sync: SyncPolicy[Any] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    stamp_source: StampSource = "header",
    contract: Mapping[str, Any] | None = None,
    fail_fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
    piece: Slice | None = None,
    count_topics: Sequence[str] = (),
    keep_frame_keys: bool = False,
) -> RunResult:
    """Run ``stages`` over ``log`` (``start_ns <= log time < end_ns``) in one read.

    ``sync`` makes frames for the frame stages; without it only messages flow. ``progress``
    is called with (log time reached, frames so far) now and then. ``piece`` runs one time
    shard of that run; ``count_topics`` are read (and counted in ``messages``) though no stage
    here wants them, and ``keep_frame_keys`` records every frame's key - both for the
    whole-log pass of a sharded run (:mod:`bagscope.pipeline.shards`).
    """
    names = _stage_names(stages)
    info = log.info()
    timings = StageTimings()
    recorder = ErrorRecorder(fail_fast=fail_fast)
    stream_holder: list[Any] = []

    def context() -> RunContext:
        return run_context(
            log,
            sync=sync,
            stamp_source=stamp_source,
            start_ns=start_ns,
            end_ns=end_ns,
            contract=contract,
            frame_stats=lambda: stream_holder[0].stats if stream_holder else None,
            timings=timings,
        )

    for stage, name in zip(stages, names, strict=True):
        if isinstance(stage, NeedsSetup):
            try:
                stage.setup(context())
            except BagscopeError:
                raise  # a bad parameter is the user's mistake: one line, before any reading
            except Exception as err:  # a plugin's bug is recorded, not fatal
                recorder.record(name, "setup", t_ns=None, err=err)

    listeners: dict[str, list[tuple[str, MessageStage]]] = {}
    for stage, name in zip(stages, names, strict=True):
        if isinstance(stage, MessageStage) and name not in recorder.counts:
            for topic in stage.message_topics:
                listeners.setdefault(log.resolve_topic(topic), []).append((name, stage))
    frame_stages = [
        (name, stage)
        for stage, name in zip(stages, names, strict=True)
        if isinstance(stage, FrameStage) and name not in recorder.counts
    ]
    for name, _ in frame_stages:
        timings.frames[name] = array("q")

    result = RunResult(
        info=info,
        stages=names,
        results={},
        timings=timings,
        frame_stats=None,
        start_ns=start_ns,
        end_ns=end_ns,
    )
    counter = [0]
    owns = _inside(piece.owned) if piece is not None else None
    tap = _make_tap(listeners, timings=timings, recorder=recorder, counter=counter, owns=owns)
    read_window = piece.read if piece is not None else (start_ns, end_ns)
    counted = {log.resolve_topic(t) for t in count_topics}
    started = time.perf_counter_ns()
    try:
        if sync is not None:
            stream = _frame_stream(
                log,
                sync,
                listeners=listeners,
                tap=tap,
                window=read_window,
                stamp_source=stamp_source,
                counted=counted,
                carry_in=piece is not None and read_window[0] is not None,
            )
            stream_holder.append(stream)
            _run_frames(
                stream,
                frame_stages,
                timings=timings,
                recorder=recorder,
                result=result,
                progress=progress,
                owns=owns,
                keys=result.frame_keys if keep_frame_keys or piece is not None else None,
            )
            result.frame_stats = stream.stats
        else:
            _run_messages(
                log,
                listeners,
                tap=tap,
                window=read_window,
                progress=progress,
                counted=counted,
            )
    except KeyboardInterrupt:
        result.interrupted = True
        if stream_holder:
            result.frame_stats = stream_holder[0].stats
    result.messages = counter[0]
    result.wall_ns = time.perf_counter_ns() - started
    if result.frame_stats is not None and len(result.frame_stats.frame_times_ns) > 1:
        times = sorted(result.frame_stats.frame_times_ns)
        spacings = sorted(b - a for a, b in itertools.pairwise(times))
        timings.period_ns = spacings[len(spacings) // 2]
    if piece is not None:
        _collect(stages, names, result=result, recorder=recorder)
        return result
    for stage, name in zip(stages, names, strict=True):
        result.results[name] = finish_stage(stage, name, recorder=recorder, timings=timings)
    result.errors = recorder.errors
    result.error_counts = dict(recorder.counts)
    return result


def finish_stage(
    stage: Stage,
    name: str,
    *,
    recorder: ErrorRecorder,
    timings: StageTimings,
    before: Callable[[], None] | None = None,
) -> StageResult:
    """``stage.finish()`` (after ``before()``, which a merge uses to set the stage up and hand
    it the shards' states), timed; an error is recorded and leaves an empty result, so the
    other stages still finish. Events and checks are stamped with the stage's name."""
    t0 = time.perf_counter_ns()
    try:
        if before is not None:
            before()
        res = stage.finish()
    except BagscopeError:
        raise
    except Exception as err:  # recorded; the other stages still finish
        recorder.record(name, "finish", t_ns=None, err=err)
        res = StageResult()
    timings.finish[name] = timings.finish.get(name, 0) + time.perf_counter_ns() - t0
    res.events = [e if e.stage else replace(e, stage=name) for e in res.events]
    res.checks = [c if c.stage else replace(c, stage=name) for c in res.checks]
    return res


def _collect(
    stages: Sequence[Stage], names: Sequence[str], *, result: RunResult, recorder: ErrorRecorder
) -> None:
    """A shard's end: each stage's state (a stage that is not Shardable has no place here)."""
    from bagscope.pipeline.stage import Shardable

    for stage, name in zip(stages, names, strict=True):
        if not isinstance(stage, Shardable):
            msg = f"stage {name!r} cannot be split into time shards"
            raise BagscopeError(msg)
        try:
            result.states[name] = stage.shard_state()
        except Exception as err:  # recorded as a finish error, as an unsharded run would
            recorder.record(name, "finish", t_ns=None, err=err)
    result.errors = recorder.errors
    result.error_counts = dict(recorder.counts)


def _make_tap(
    listeners: Mapping[str, list[tuple[str, MessageStage]]],
    *,
    timings: StageTimings,
    recorder: ErrorRecorder,
    counter: list[int],
    owns: Callable[[int], bool] | None = None,
) -> Callable[[Message], None]:
    broken: set[str] = set()
    perf = time.perf_counter_ns

    def tap(msg: Message) -> None:
        counter[0] += 1
        if owns is not None and not owns(msg.log_time_ns):
            return  # read for the frames at a shard's edge; another shard owns it
        for name, stage in listeners.get(msg.topic, ()):
            if name in broken:
                continue
            t0 = perf()
            try:
                stage.on_message(msg)
            except Exception as err:  # isolation is the point
                recorder.record(name, "message", t_ns=msg.log_time_ns, err=err)
                if recorder.counts[name] >= MAX_ERRORS_KEPT:
                    broken.add(name)
            timings.messages[name] = timings.messages.get(name, 0) + perf() - t0
            timings.message_calls[name] = timings.message_calls.get(name, 0) + 1

    return tap


def _frame_stream(
    log: Log,
    sync: SyncPolicy[Any],
    *,
    listeners: Mapping[str, Any],
    tap: Callable[[Message], None],
    window: tuple[int | None, int | None],
    stamp_source: StampSource,
    counted: Collection[str] = (),
    carry_in: bool = False,
) -> Any:
    from bagscope.replay.framing import FrameStream

    start_ns, end_ns = window

    def read(frame_topics: Sequence[str]) -> Iterator[Message]:
        wanted = frozenset(frame_topics)
        if carry_in and start_ns is not None:
            yield from _latest_camera_infos(log, wanted, before_ns=start_ns)
        topics = sorted(wanted | set(listeners) | set(counted))
        for msg in log.messages(start_ns, end_ns, topics=topics):
            tap(msg)
            if msg.topic in wanted:
                yield msg

    has_tf = bool(log.tf_topics())
    return FrameStream(
        read=read,
        connections=log.connections(),
        sync=sync,
        tf=lambda: log.tf() if has_tf else None,
        stamp_source=stamp_source,
        strict=log.strict,
        windowed=start_ns is not None or end_ns is not None,
    )


def _latest_camera_infos(log: Log, topics: Collection[str], *, before_ns: int) -> list[Message]:
    """The CameraInfo each camera had when a shard begins: a frame at the shard's start must
    get the camera model it gets in a run from the log's start (a driver may latch it once)."""
    from bagscope.replay.framing import CAMERA_INFO_TYPES

    infos = sorted(
        t.name for t in log.info().topics if t.name in topics and t.msgtype in CAMERA_INFO_TYPES
    )
    return log.latest_before(infos, before_ns)


def _run_frames(
    stream: Iterable[Any],
    frame_stages: Sequence[tuple[str, FrameStage]],
    *,
    timings: StageTimings,
    recorder: ErrorRecorder,
    result: RunResult,
    progress: Callable[[int, int], None] | None,
    owns: Callable[[int], bool] | None = None,
    keys: list[FrameKey] | None = None,
) -> None:
    perf = time.perf_counter_ns
    last_report = perf()
    series = [timings.frames[name] for name, _ in frame_stages]
    for frame in stream:
        if owns is not None and not owns(frame.t_ns):
            continue  # made only so that the sync state at the shard's edge is right
        if keys is not None:
            keys.append(frame_key(frame))
        result.frames += 1
        for (name, stage), spent in zip(frame_stages, series, strict=True):
            t0 = perf()
            try:
                out = stage.process(frame)
            except Exception as err:  # recorded; the next frame goes on
                recorder.record(name, "frame", t_ns=frame.t_ns, err=err)
                out = None
            spent.append(perf() - t0)
            if out is not None:
                frame.outputs[name] = out
        if progress is not None and (now := perf()) - last_report > _PROGRESS_EVERY_NS:
            last_report = now
            progress(frame.t_ns, result.frames)
    if progress is not None and result.frames:
        progress(frame.t_ns, result.frames)


def _run_messages(
    log: Log,
    listeners: Mapping[str, Any],
    *,
    tap: Callable[[Message], None],
    window: tuple[int | None, int | None],
    progress: Callable[[int, int], None] | None,
    counted: Collection[str] = (),
) -> None:
    if not listeners and not counted:
        return
    start_ns, end_ns = window
    perf = time.perf_counter_ns
    last_report = perf()
    topics = sorted(set(listeners) | set(counted))
    for i, msg in enumerate(log.messages(start_ns, end_ns, topics=topics)):
        tap(msg)
        if (
            progress is not None
            and not i % 256
            and (now := perf()) - last_report > (_PROGRESS_EVERY_NS)
        ):
            last_report = now
            progress(msg.log_time_ns, 0)
