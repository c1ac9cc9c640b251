"""A long log as time shards run in parallel, merged back into the run an unsharded run makes.

Exactness decides the shape. Each stage goes where its result stays exactly what it would be
in one read of the whole log:

- **in the shards**: :class:`~bagscope.pipeline.stage.Shardable` stages (the decoding
  analyzers, the per-frame models). Each shard reads its window plus an overlap on both
  sides, so the sync policy makes the same frames at the shard's edges, but gives the stages
  only what it owns (messages by log time, frames by their time); the states are merged in
  time order into one fresh stage, which then finishes.
- **in one whole-log pass**: every other stage - the byte-level health analyzers, whose state
  (a stream's previous message, a freeze in progress) crosses any boundary, and stateful
  models such as a tracker. They are cheap, or cannot be split. This pass also runs the sync
  policy over the whole log, so the frame accounting is exact, and records every frame, so
  the merge can prove the shards made the very same frames (else it fails loudly).
- **at the merge**: stages that only read what the run measured (``stage_timing``), set up
  with the merged timings.

Frame stages are split only together: if any frame stage that may read or write
``frame.outputs`` is not Shardable, every frame stage runs in the whole-log pass, since the
outputs a stage reads are made by the stages before it, in the same frame.
"""

from __future__ import annotations

import dataclasses
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from bagscope.errors import BagscopeError
from bagscope.pipeline.runner import (
    ErrorRecorder,
    RunResult,
    StageError,
    finish_stage,
    run_context,
    run_stages,
)
from bagscope.pipeline.stage import (
    FrameStage,
    MessageStage,
    NeedsSetup,
    Shardable,
    StageResult,
)
from bagscope.pipeline.timing import StageTimings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from bagscope.pipeline.runner import FrameKey
    from bagscope.pipeline.stage import Stage
    from bagscope.replay.framing import StampSource
    from bagscope.replay.log import Log
    from bagscope.replay.sync import SyncPolicy

__all__ = [
    "SHARD_OVERLAP_NS",
    "ColumnShards",
    "ShardError",
    "ShardOutput",
    "ShardPlan",
    "merge_run",
    "merge_values",
    "plan_shards",
    "run_shard",
    "run_whole",
]

# Read on each side of a shard: a sync partner, a late message or a reordered one is never
# further than this from the frame it belongs to (the merge checks that this held).
SHARD_OVERLAP_NS = 2_000_000_000


class ShardError(BagscopeError):
    """A sharded run that cannot be merged into what one read of the log gives."""


# -- merging stage states ---------------------------------------------------------------------
def merge_values(parts: Sequence[Any]) -> Any:
    """Shard states in time order as one: columns are concatenated, counts added, the first
    non-empty note kept, flags that must hold everywhere and-ed; dicts and dataclasses field by
    field. Anything else (a float: a sum or a maximum?) is the stage's to merge itself."""
    first = parts[0]
    if first is None and all(p is None for p in parts):
        return None
    if isinstance(first, bool):
        return all(parts)
    if isinstance(first, Counter):
        total: Counter[Any] = Counter()
        for part in parts:
            total.update(part)
        return total
    if isinstance(first, int):
        return sum(parts)
    if isinstance(first, str):
        return next((p for p in parts if p), first)
    if isinstance(first, array):
        merged = array(first.typecode)
        for part in parts:
            merged.extend(part)
        return merged
    if isinstance(first, list):
        return [item for part in parts for item in part]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for part in parts for k in part))
        return {k: merge_values([p[k] for p in parts if k in p]) for k in keys}
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        values = {
            f.name: merge_values([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(first)
        }
        return type(first)(**values)
    msg = f"no exact merge for a {type(first).__name__}; the stage must merge it itself"
    raise TypeError(msg)


class ColumnShards:
    """For a stage whose state is columns it appends to, per message or per frame: it is
    Shardable by naming those attributes in ``shard_fields``."""

    shard_fields: ClassVar[tuple[str, ...]] = ()

    def shard_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.shard_fields}

    def merge_shards(self, states: Sequence[Any]) -> None:
        for name in self.shard_fields:
            setattr(self, name, merge_values([s[name] for s in states]))


# -- which stage goes where ----------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ShardPlan:
    """Owned windows (log time, the first open at the start and the last at the end), and the
    stage names each part of a sharded run runs. ``reason`` says why a log is not sharded
    (then ``windows`` has one entry)."""

    windows: tuple[tuple[int | None, int | None], ...]
    sharded: tuple[str, ...]
    whole: tuple[str, ...]
    at_merge: tuple[str, ...]
    reason: str = ""

    @property
    def split(self) -> bool:
        return len(self.windows) > 1


def _uses_outputs(stage: Stage) -> bool:
    """Whether a frame stage may read or write ``frame.outputs``: yes unless it says not."""
    return bool(getattr(stage, "uses_outputs", True))


def plan_shards(
    stages: Sequence[Stage],
    *,
    start_ns: int,
    end_ns: int,
    shard_ns: int,
) -> ShardPlan:
    """Split ``[start_ns, end_ns)`` into shards of ``shard_ns`` and the stages among them."""
    frame = [s for s in stages if isinstance(s, FrameStage)]
    frames_split = all(isinstance(s, Shardable) or not _uses_outputs(s) for s in frame)
    sharded: list[str] = []
    whole: list[str] = []
    at_merge: list[str] = []
    for stage in stages:
        is_frame = isinstance(stage, FrameStage)
        if not is_frame and not isinstance(stage, MessageStage):
            at_merge.append(stage.name)
        elif isinstance(stage, Shardable) and (frames_split or not is_frame):
            sharded.append(stage.name)
        else:
            whole.append(stage.name)
    one = ((None, None),)
    if shard_ns <= 0:
        raise ShardError(f"the shard length must be positive, not {shard_ns} ns")
    if not sharded:
        reason = "no stage of this pipeline can be split into time shards"
        return ShardPlan(windows=one, sharded=(), whole=(*whole, *at_merge), at_merge=(),
                         reason=reason)  # fmt: skip
    count = max(1, -(-(end_ns - start_ns) // shard_ns))
    if count == 1:
        return ShardPlan(
            windows=one,
            sharded=(),
            whole=tuple(s.name for s in stages),
            at_merge=(),
            reason="the log is not longer than one shard",
        )
    cuts = [start_ns + i * shard_ns for i in range(1, count)]
    windows = tuple(zip([None, *cuts], [*cuts, None], strict=True))
    return ShardPlan(
        windows=windows, sharded=tuple(sharded), whole=tuple(whole), at_merge=tuple(at_merge)
    )


# -- the parts of a sharded run ---------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class ShardOutput:
    """What a shard hands to the merge (picklable)."""

    index: int
    owned: tuple[int | None, int | None]
    states: dict[str, Any]
    frame_keys: list[FrameKey]
    timings: StageTimings
    errors: list[StageError] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    wall_ns: int = 0


def _pick(stages: Sequence[Stage], names: Sequence[str]) -> list[Stage]:
    wanted = set(names)
    return [s for s in stages if s.name in wanted]


def run_shard(
    log: Log,
    stages: Sequence[Stage],
    plan: ShardPlan,
    *,
    index: int,
    sync: SyncPolicy[Any] | None,
    start_ns: int | None,
    end_ns: int | None,
    stamp_source: StampSource = "header",
    contract: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShardOutput:
    """Shard ``index`` of ``plan``: its Shardable stages over what it owns."""
    from bagscope.pipeline.runner import Slice

    lo, hi = plan.windows[index]
    read = (
        lo - SHARD_OVERLAP_NS if lo is not None else start_ns,
        hi + SHARD_OVERLAP_NS if hi is not None else end_ns,
    )
    if start_ns is not None and read[0] is not None:
        read = (max(read[0], start_ns), read[1])
    if end_ns is not None and read[1] is not None:
        read = (read[0], min(read[1], end_ns))
    result = run_stages(
        log,
        _pick(stages, plan.sharded),
        sync=sync,
        start_ns=start_ns,
        end_ns=end_ns,
        stamp_source=stamp_source,
        contract=contract,
        progress=progress,
        piece=Slice(read=read, owned=(lo, hi)),
    )
    if result.interrupted:
        raise KeyboardInterrupt
    return ShardOutput(
        index=index,
        owned=(lo, hi),
        states=result.states,
        frame_keys=result.frame_keys,
        timings=result.timings,
        errors=result.errors,
        error_counts=result.error_counts,
        wall_ns=result.wall_ns,
    )


def run_whole(
    log: Log,
    stages: Sequence[Stage],
    plan: ShardPlan,
    *,
    sync: SyncPolicy[Any] | None,
    start_ns: int | None,
    end_ns: int | None,
    stamp_source: StampSource = "header",
    contract: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """The whole-log pass: the stages that are not split, the sync policy over the whole log
    (the exact frame accounting) and every frame's key; what the shards' stages read is read
    too, so that the message count is the unsharded run's."""
    sharded = _pick(stages, plan.sharded)
    topics = sorted({t for s in sharded if isinstance(s, MessageStage) for t in s.message_topics})
    return run_stages(
        log,
        _pick(stages, plan.whole),
        sync=sync,
        start_ns=start_ns,
        end_ns=end_ns,
        stamp_source=stamp_source,
        contract=contract,
        progress=progress,
        count_topics=topics,
        keep_frame_keys=True,
    )


def _merged_timings(
    whole: StageTimings, shards: Sequence[ShardOutput], names: Sequence[str]
) -> StageTimings:
    merged = StageTimings(period_ns=whole.period_ns, read_ns=whole.read_ns)
    parts = [whole, *(s.timings for s in shards)]
    for name in names:
        series = [p.frames[name] for p in parts if name in p.frames]
        if series:
            merged.frames[name] = merge_values(series)
        for attr in ("messages", "message_calls", "finish"):
            found = [getattr(p, attr)[name] for p in parts if name in getattr(p, attr)]
            if found:
                getattr(merged, attr)[name] = sum(found)
    return merged


def _check_frames(whole: RunResult, shards: Sequence[ShardOutput]) -> None:
    """The shards must have made exactly the frames one read makes, each once."""
    made = [key for shard in shards for key in shard.frame_keys]
    if made == whole.frame_keys:
        return
    expected = whole.frame_keys
    i = next(
        (i for i, (a, b) in enumerate(zip(made, expected, strict=False)) if a != b),
        min(len(made), len(expected)),
    )
    at = expected[i][0] if i < len(expected) else made[i][0]
    msg = (
        f"the shards made {len(made)} frames where one read makes {len(expected)} (first "
        f"difference at frame time {at}): the sync needs more than "
        f"{SHARD_OVERLAP_NS // 1_000_000} ms around a shard; run this log without "
        "--shard-length"
    )
    raise ShardError(msg)


def merge_run(
    log: Log,
    stages: Sequence[Stage],
    plan: ShardPlan,
    *,
    whole: RunResult,
    shards: Sequence[ShardOutput],
    sync: SyncPolicy[Any] | None,
    start_ns: int | None,
    end_ns: int | None,
    stamp_source: StampSource = "header",
    contract: Mapping[str, Any] | None = None,
) -> RunResult:
    """One :class:`RunResult` from the whole-log pass and the shards (in any order), as an
    unsharded run of ``stages`` gives it. ``stages`` are fresh (not yet set up): those that
    did not run whole are set up here as in the run, with the merged timings."""
    shards = sorted(shards, key=lambda s: s.index)
    if [s.index for s in shards] != list(range(len(plan.windows))):
        raise ShardError(f"{len(shards)} shard results for {len(plan.windows)} shards")
    _check_frames(whole, shards)
    t0 = time.perf_counter_ns()
    names = tuple(s.name for s in stages)
    timings = _merged_timings(whole.timings, shards, names)
    ctx = run_context(
        log,
        sync=sync,
        stamp_source=stamp_source,
        start_ns=start_ns,
        end_ns=end_ns,
        contract=contract,
        frame_stats=lambda: whole.frame_stats,
        timings=timings,
    )
    recorder = ErrorRecorder(fail_fast=False)
    recorder.errors = [*whole.errors, *(e for s in shards for e in s.errors)]
    counts: Counter[str] = Counter(whole.error_counts)
    for shard in shards:
        counts.update(shard.error_counts)
    recorder.counts = dict(counts)
    results: dict[str, StageResult] = {}
    by_name = {s.name: s for s in stages}
    for name in names:
        if name in plan.whole:
            results[name] = whole.results[name]
            continue
        states = [s.states[name] for s in shards if name in s.states]
        if name in plan.sharded and len(states) < len(shards):
            results[name] = StageResult()  # a shard lost its state to an error, recorded there
            continue
        stage = by_name[name]

        def before(stage: Stage = stage, states: list[Any] = states) -> None:
            if isinstance(stage, NeedsSetup):
                stage.setup(ctx)
            if isinstance(stage, Shardable) and states:
                stage.merge_shards(states)

        results[name] = finish_stage(stage, name, recorder=recorder, timings=timings, before=before)
    return RunResult(
        info=whole.info,
        stages=names,
        results=results,
        timings=timings,
        frame_stats=whole.frame_stats,
        errors=recorder.errors,
        error_counts=dict(recorder.counts),
        messages=whole.messages,
        frames=whole.frames,
        wall_ns=whole.wall_ns + sum(s.wall_ns for s in shards) + time.perf_counter_ns() - t0,
        start_ns=whole.start_ns,
        end_ns=whole.end_ns,
        interrupted=whole.interrupted,
    )
